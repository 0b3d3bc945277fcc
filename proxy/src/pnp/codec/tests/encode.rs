//! Encoding tests: exact bytes of what the agent sends, escaping, and round
//! trips through the parsers in both directions.

use std::time::Duration;

use super::*;

fn envelope() -> Envelope {
    Envelope::agent(udi(), None)
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB\">";

#[test]
fn vendor_strings_byte_exact() {
    assert_eq!(
        PNP_ERROR_UNSUPPORTED_REQUEST,
        "SMI PROXY:Not supported service request"
    );
    assert_eq!(
        XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED,
        "SMI PROXY: Config upgrade apply to Running Config is not supported"
    );
    assert_eq!(
        XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_HARDWARE,
        "SMI PROXY:Client device hardware info not supported"
    );
    assert_eq!(
        XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM,
        "SMI PROXY:Client device filesystem info not supported"
    );
    assert_eq!(
        SmiRefusal::UnsupportedRequest.code(),
        "PNP_ERROR_UNSUPPORTED_REQUEST"
    );
    assert_eq!(
        SmiRefusal::ConfigUpgradeRunning.code(),
        "XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED"
    );
    assert_eq!(
        SmiRefusal::DeviceInfoHardware.code(),
        "XSVC_ERROR_DEVICE_INFO_UNSUPPORTED"
    );
    assert_eq!(
        SmiRefusal::DeviceInfoFilesystem.code(),
        "XSVC_ERROR_DEVICE_INFO_UNSUPPORTED"
    );
    assert_eq!(
        SmiRefusal::DeviceInfoFilesystem.message(),
        XSVC_ERROR_DEVICE_INFO_UNSUPPORTED_FILESYSTEM
    );
    assert_eq!(CAPABILITY_SERVICES.len(), 7);
}

#[test]
fn encode_work_request_exact() {
    let request = WorkRequest {
        correlator: CORR.into(),
        udi: Some(udi()),
        hostname: Some("Switch".into()),
        auth_required: false,
        via_proxy: true,
    };
    let expected = format!(
        "{HEAD}<info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{CORR}\"><deviceId><udi>{UDI}</udi><hostname>Switch</hostname><authRequired>false</authRequired><viaProxy>true</viaProxy></deviceId></info></pnp>"
    );
    assert_eq!(encode_work_request(&envelope(), &request), expected);
    let not_proxy = WorkRequest {
        via_proxy: false,
        ..request
    };
    assert!(encode_work_request(&envelope(), &not_proxy).contains("<viaProxy>false</viaProxy>"));
}

#[test]
fn encode_with_sid() {
    let env = Envelope::agent(udi(), Some("abc\"1".into()));
    let out = encode_response(&env, &Response::ok(Service::Backoff, CORR));
    assert_eq!(
        out,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{UDI}\" sid=\"abc&quot;1\"><response xmlns=\"urn:cisco:pnp:backoff\" correlator=\"{CORR}\" success=\"1\"/></pnp>"
        )
    );
    assert_eq!(agent(&out).envelope.sid.as_deref(), Some("abc\"1"));
}

#[test]
fn encode_refusals_exact() {
    let out = encode_response(
        &envelope(),
        &Response::refused(
            Service::ConfigUpgrade,
            CORR,
            SmiRefusal::ConfigUpgradeRunning,
        ),
    );
    assert_eq!(
        out,
        format!(
            "{HEAD}<response xmlns=\"urn:cisco:pnp:config-upgrade\" correlator=\"{CORR}\" success=\"0\"><errorInfo><errorSeverity>ERROR</errorSeverity><errorCode>XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED</errorCode><errorMessage>SMI PROXY: Config upgrade apply to Running Config is not supported</errorMessage></errorInfo></response></pnp>"
        )
    );
    let out = encode_response(
        &envelope(),
        &Response::refused(
            Service::Other("cli-exec".into()),
            "c9",
            SmiRefusal::UnsupportedRequest,
        ),
    );
    assert_eq!(
        out,
        format!(
            "{HEAD}<response xmlns=\"urn:cisco:pnp:cli-exec\" correlator=\"c9\" success=\"0\"><errorInfo><errorSeverity>ERROR</errorSeverity><errorCode>PNP_ERROR_UNSUPPORTED_REQUEST</errorCode><errorMessage>SMI PROXY:Not supported service request</errorMessage></errorInfo></response></pnp>"
        )
    );
    for refusal in [
        SmiRefusal::DeviceInfoHardware,
        SmiRefusal::DeviceInfoFilesystem,
    ] {
        let out = encode_response(
            &envelope(),
            &Response::refused(Service::DeviceInfo, CORR, refusal),
        );
        assert!(out.contains(&format!(
            "<errorMessage>{}</errorMessage>",
            refusal.message()
        )));
        let AgentBody::Response(r) = agent(&out).body else {
            panic!()
        };
        assert_eq!(r.error, Some(refusal.error_info()));
        assert!(!r.success);
    }
}

#[test]
fn encode_capability_exact() {
    let response = Response {
        body: ResponseBody::smi_proxy_capabilities(),
        ..Response::ok(Service::Capability, CORR)
    };
    let out = encode_response(&envelope(), &response);
    assert_eq!(
        out,
        format!(
            "{HEAD}<response xmlns=\"urn:cisco:pnp:capability\" correlator=\"{CORR}\" success=\"1\"><serviceList><service>capabilities</service><service>config-upgrade</service><service>device-info</service><service>image-install</service><service>topology</service><service>backoff</service><service>bye</service></serviceList></response></pnp>"
        )
    );
    let AgentBody::Response(back) = agent(&out).body else {
        panic!()
    };
    assert_eq!(back, response);
}

#[test]
fn encode_topology_exact() {
    let response = Response {
        body: ResponseBody::Topology(Topology {
            interface: Some("GigabitEthernet1/0/1".into()),
            vlan: Some(1),
            mac_address: Some("0011.2233.4455".into()),
            ip_address: Some("192.0.2.10".parse().unwrap()),
        }),
        ..Response::ok(Service::Topology, CORR)
    };
    let out = encode_response(&envelope(), &response);
    assert_eq!(
        out,
        format!(
            "{HEAD}<response xmlns=\"urn:cisco:pnp:topology\" correlator=\"{CORR}\" success=\"1\"><topology><interface>GigabitEthernet1/0/1</interface><vlan>1</vlan><macAddress>0011.2233.4455</macAddress><ipAddress>192.0.2.10</ipAddress></topology></response></pnp>"
        )
    );
    let AgentBody::Response(back) = agent(&out).body else {
        panic!()
    };
    assert_eq!(back, response);
    let bad = out.replace("192.0.2.10", "192.0.2.300");
    assert!(matches!(
        parse_agent_message(bad.as_bytes()),
        Err(PnpError::BadAddress {
            field: "ipAddress",
            ..
        })
    ));
}

#[test]
fn encode_device_info_exact() {
    let response = Response {
        body: ResponseBody::DeviceInfo(DeviceInfoReply {
            udi: Some(udi()),
            image: Some(ImageInfo {
                version_string: Some("15.2(7)E8".into()),
                image_file: Some("flash:c2960x-universalk9-mz.152-7.E8.bin".into()),
            }),
            hardware: None,
        }),
        ..Response::ok(Service::DeviceInfo, CORR)
    };
    let out = encode_response(&envelope(), &response);
    assert_eq!(
        out,
        format!(
            "{HEAD}<response xmlns=\"urn:cisco:pnp:device-info\" correlator=\"{CORR}\" success=\"1\"><udi><primary-chassis>{UDI}</primary-chassis></udi><imageInfo><versionString>15.2(7)E8</versionString><imageFile>flash:c2960x-universalk9-mz.152-7.E8.bin</imageFile></imageInfo></response></pnp>"
        )
    );
}

#[test]
fn encode_fault_exact() {
    let fault = Fault::client("An unknown XML tag has been received", "struct");
    let out = encode_fault(&envelope(), &fault);
    assert_eq!(
        out,
        format!(
            "{HEAD}<response xmlns=\"urn:cisco:pnp:fault\"><fault><faultcode>XSVC:Client</faultcode><faultstring>An unknown XML tag has been received</faultstring><detail><xsvc-err:error xmlns:xsvc-err=\"urn:cisco:pnp:error\"><xsvc-err:details>struct</xsvc-err:details></xsvc-err:error></detail></fault></response></pnp>"
        )
    );
    assert!(!out.contains("correlator"));
    assert_eq!(agent(&out).body, AgentBody::Fault(fault));
}

#[test]
fn escaping_round_trips() {
    let nasty = "a<b>&c\"d'e\tf\ng\rh";
    let request = WorkRequest {
        correlator: nasty.into(),
        udi: Some(udi()),
        hostname: Some(nasty.into()),
        auth_required: true,
        via_proxy: false,
    };
    let env = Envelope::agent(udi(), Some(nasty.into()));
    let out = encode_work_request(&env, &request);
    assert!(!out.contains("a<b"));
    let back = agent(&out);
    assert_eq!(back.envelope.sid.as_deref(), Some(nasty.trim()));
    let AgentBody::WorkRequest(w) = back.body else {
        panic!()
    };
    assert_eq!(w.correlator, nasty);
    assert_eq!(w.hostname.as_deref(), Some(nasty));
    assert!(w.auth_required);

    let control = WorkRequest {
        hostname: Some("x\u{1}y\u{0}z\u{fffe}".into()),
        ..request
    };
    let out = encode_work_request(&envelope(), &control);
    let AgentBody::WorkRequest(w) = agent(&out).body else {
        panic!()
    };
    assert_eq!(w.hostname.as_deref(), Some("x\u{fffd}y\u{fffd}z\u{fffd}"));
}

#[test]
fn agent_messages_round_trip() {
    let messages = [
        AgentBody::WorkRequest(WorkRequest {
            correlator: correlator(7, 0xdead_beef),
            udi: Some(udi()),
            hostname: None,
            auth_required: false,
            via_proxy: true,
        }),
        AgentBody::Response(Response::ok(Service::ConfigUpgrade, CORR)),
        AgentBody::Response(Response::failed(
            Service::ImageInstall,
            CORR,
            ErrorInfo {
                severity: "ERROR".into(),
                code: "PnP Service Error 1829".into(),
                message: "Image copy was unsuccessful".into(),
            },
        )),
        AgentBody::Response(Response {
            body: ResponseBody::DeviceInfo(DeviceInfoReply {
                udi: None,
                image: Some(ImageInfo::default()),
                hardware: Some(HardwareInfo {
                    hostname: Some("sw1".into()),
                    platform_name: Some("WS-C2960-24TT-L".into()),
                    board_id: Some("FOC1".into()),
                }),
            }),
            ..Response::ok(Service::DeviceInfo, CORR)
        }),
        AgentBody::Response(Response {
            body: ResponseBody::Topology(Topology {
                ip_address: Some("2001:db8::1".parse().unwrap()),
                ..Topology::default()
            }),
            ..Response::ok(Service::Topology, CORR)
        }),
        AgentBody::Fault(Fault::client("bad", "")),
    ];
    for body in messages {
        let message = AgentMessage {
            envelope: Envelope::agent(udi(), Some("sid-1".into())),
            body,
        };
        let out = encode_agent_message(&message);
        assert!(out.starts_with(XML_DECLARATION));
        assert_eq!(
            parse_agent_message(out.as_bytes()).unwrap(),
            message,
            "{out}"
        );
    }
}

#[test]
fn server_messages_round_trip() {
    let jobs = [
        Job::DeviceInfo(DeviceInfoType::Filesystem),
        Job::ConfigUpgrade(ConfigUpgrade {
            details: None,
            source: Source {
                location: "http://198.51.100.10/c?a=1&b=2".into(),
                checksum: None,
            },
            apply_to: ApplyTo::Running,
            abort_on_syntax_fault: true,
            reload: ReloadPolicy::NoReload,
        }),
        Job::ImageInstall(ImageInstall {
            source: Source {
                location: "http://198.51.100.10/images/x.tar".into(),
                checksum: Some("0cc175b9c0f1b6a831c399e269772661".into()),
            },
            destination: None,
            reload: ReloadPolicy::Reload(Reload {
                reason: None,
                delay_in: Some(5),
                user: None,
                save_config: Some(false),
            }),
        }),
        Job::Capability,
        Job::Topology,
        Job::Backoff(Backoff {
            reason: None,
            action: BackoffAction::CallbackAfter(Duration::from_secs(3 * 3600 + 4 * 60 + 5)),
        }),
        Job::Backoff(Backoff {
            reason: Some("idle".into()),
            action: BackoffAction::DefaultMinutes(15),
        }),
        Job::Backoff(Backoff {
            reason: None,
            action: BackoffAction::Terminate,
        }),
        Job::Unsupported {
            service: "cli-exec".into(),
        },
    ];
    let envelope = Envelope {
        udi: Some(udi()),
        sid: Some("s".into()),
        credentials: Some(Credentials {
            username: "admin".into(),
            password: "p<w>".into(),
        }),
    };
    let mut bodies: Vec<ServerBody> = jobs
        .into_iter()
        .map(|job| {
            ServerBody::Request(Request {
                correlator: CORR.into(),
                job,
            })
        })
        .collect();
    bodies.push(ServerBody::Bye {
        correlator: Some(CORR.into()),
    });
    bodies.push(ServerBody::Bye { correlator: None });
    for body in bodies {
        let message = ServerMessage {
            envelope: envelope.clone(),
            body,
        };
        let out = encode_server_message(&message);
        assert_eq!(
            parse_server_message(out.as_bytes()).unwrap(),
            message,
            "{out}"
        );
    }
}

#[test]
fn encode_server_bye_exact() {
    let out = encode_server_message(&ServerMessage {
        envelope: Envelope::agent(udi(), None),
        body: ServerBody::Bye {
            correlator: Some(CORR.into()),
        },
    });
    assert_eq!(
        out,
        format!(
            "{HEAD}<info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"{CORR}\"><workInfo><bye/></workInfo></info></pnp>"
        )
    );
}

#[test]
fn correlator_format() {
    assert_eq!(correlator(1465, 0x25A1_212C), CORR);
    assert_eq!(correlator(0, 1), "CiscoPnP-1.0-0-00000001");
}

#[test]
fn service_names() {
    for s in [
        Service::Capability,
        Service::ConfigUpgrade,
        Service::DeviceInfo,
        Service::ImageInstall,
        Service::Topology,
        Service::Backoff,
        Service::Other("x-y".into()),
    ] {
        assert_eq!(Service::from_name(s.name()), s);
        assert_eq!(s.namespace(), format!("urn:cisco:pnp:{s}"));
    }
    assert_eq!(Service::from_name("Device-Info"), Service::DeviceInfo);
}
