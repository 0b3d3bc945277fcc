//! Parsing tests: the examples of `docs/pnp-protocol.md` in both directions,
//! the variants servers and agents send, and structural errors.

use std::time::Duration;

use super::*;

#[test]
fn doc_device_info_request() {
    let msg = server(DOC_DEVICE_INFO);
    assert_eq!(msg.envelope.udi, Some(udi()));
    assert_eq!(msg.envelope.sid, None);
    assert_eq!(msg.envelope.credentials, None);
    assert_eq!(msg.correlator(), Some(CORR));
    assert_eq!(job(DOC_DEVICE_INFO), Job::DeviceInfo(DeviceInfoType::All));
}

#[test]
fn doc_prefixed_openpnpy_form() {
    let msg = server(DOC_PREFIXED);
    assert_eq!(msg.envelope.udi, Some(udi()));
    assert_eq!(job(DOC_PREFIXED), Job::DeviceInfo(DeviceInfoType::All));
}

#[test]
fn prefix_declared_on_request_itself_and_other_prefixes() {
    let xml = r#"<p:pnp xmlns:p="urn:cisco:pnp"><x:request xmlns:x="urn:cisco:pnp:device-info" correlator="CiscoPnP-1.0-1465-25A1212C"><y:deviceInfo xmlns:y="urn:other" y:type="image"/></x:request></p:pnp>"#;
    assert_eq!(job(xml), Job::DeviceInfo(DeviceInfoType::Image));
    let empty = r#"<pnp><q:request xmlns:q="urn:cisco:pnp:capability" correlator="CiscoPnP-1.0-1465-25A1212C"/></pnp>"#;
    assert_eq!(job(empty), Job::Capability);
}

#[test]
fn device_info_types() {
    for (name, kind) in [
        ("image", DeviceInfoType::Image),
        ("hardware", DeviceInfoType::Hardware),
        ("filesystem", DeviceInfoType::Filesystem),
        ("udi", DeviceInfoType::Udi),
        ("profile", DeviceInfoType::Profile),
        ("ALL", DeviceInfoType::All),
        ("license", DeviceInfoType::Other("license".into())),
    ] {
        let xml = DOC_DEVICE_INFO.replace("type=\"all\"", &format!("type=\"{name}\""));
        assert_eq!(job(&xml), Job::DeviceInfo(kind));
    }
    let bare = DOC_DEVICE_INFO.replace("<deviceInfo type=\"all\"/>", "");
    assert_eq!(job(&bare), Job::DeviceInfo(DeviceInfoType::All));
}

#[test]
fn doc_config_upgrade_startup() {
    let expected = ConfigUpgrade {
        details: Some("all".into()),
        source: Source {
            location: "http://198.51.100.10/configs/FOC1234X0AB.cfg".into(),
            checksum: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
        },
        apply_to: ApplyTo::Startup,
        abort_on_syntax_fault: false,
        reload: ReloadPolicy::Reload(Reload {
            reason: Some("pnp config upgrade".into()),
            delay_in: Some(0),
            user: None,
            save_config: None,
        }),
    };
    assert_eq!(job(DOC_CONFIG_STARTUP), Job::ConfigUpgrade(expected));
}

#[test]
fn doc_config_upgrade_running() {
    let Job::ConfigUpgrade(c) = job(DOC_CONFIG_RUNNING) else {
        panic!("not config-upgrade")
    };
    assert_eq!(c.apply_to, ApplyTo::Running);
    assert_eq!(c.reload, ReloadPolicy::NoReload);
    assert_eq!(c.source.checksum, None);
}

#[test]
fn config_upgrade_variants() {
    let no_apply = DOC_CONFIG_STARTUP.replace("<applyTo>startup</applyTo>", "");
    let Job::ConfigUpgrade(c) = job(&no_apply) else {
        panic!()
    };
    assert_eq!(c.apply_to, ApplyTo::Startup);

    let ap = DOC_CONFIG_STARTUP.replace("<applyTo>startup</applyTo>", "<applyTo>AP</applyTo>");
    let Job::ConfigUpgrade(c) = job(&ap) else {
        panic!()
    };
    assert_eq!(c.apply_to, ApplyTo::Other("AP".into()));

    let under_copy = DOC_CONFIG_STARTUP.replace("</applyTo>", "</applyTo><abortOnSyntaxFault/>");
    let Job::ConfigUpgrade(c) = job(&under_copy) else {
        panic!()
    };
    assert!(c.abort_on_syntax_fault);

    let under_request = DOC_CONFIG_STARTUP.replace("<reload>", "<abortOnSyntaxFault/><reload>");
    let Job::ConfigUpgrade(c) = job(&under_request) else {
        panic!()
    };
    assert!(c.abort_on_syntax_fault);

    let off = DOC_CONFIG_STARTUP.replace(
        "<reload>",
        "<abortOnSyntaxFault>false</abortOnSyntaxFault><reload>",
    );
    let Job::ConfigUpgrade(c) = job(&off) else {
        panic!()
    };
    assert!(!c.abort_on_syntax_fault);

    for (text, value) in [("1", true), ("0", false), ("true", true), ("FALSE", false)] {
        let xml = DOC_CONFIG_STARTUP.replace(
            "<delayIn>0</delayIn>",
            &format!("<delayIn>0</delayIn><user>pnp</user><saveConfig>{text}</saveConfig>"),
        );
        let Job::ConfigUpgrade(c) = job(&xml) else {
            panic!()
        };
        let ReloadPolicy::Reload(r) = c.reload else {
            panic!()
        };
        assert_eq!(r.save_config, Some(value));
        assert_eq!(r.user.as_deref(), Some("pnp"));
    }

    let no_reload = DOC_CONFIG_STARTUP.replace(
        "<reload><reason>pnp config upgrade</reason><delayIn>0</delayIn></reload>",
        "",
    );
    let Job::ConfigUpgrade(c) = job(&no_reload) else {
        panic!()
    };
    assert_eq!(c.reload, ReloadPolicy::Unspecified);
    assert_eq!(c.details.as_deref(), Some("all"));
}

#[test]
fn config_upgrade_errors() {
    let both = DOC_CONFIG_STARTUP.replace("<reload>", "<noReload/><reload>");
    assert!(matches!(
        server_err(both.as_bytes()),
        PnpError::Conflicting {
            first: "reload",
            second: "noReload"
        }
    ));
    let bad_save =
        DOC_CONFIG_STARTUP.replace("<delayIn>0</delayIn>", "<saveConfig>yes</saveConfig>");
    let err = server_err(bad_save.as_bytes());
    assert!(matches!(&err, PnpError::BadBool { field: "saveConfig", value } if value == "yes"));
    assert_eq!(
        err.to_string(),
        "saveConfig is \"yes\", not 1, 0, true or false"
    );
    let bad_delay = DOC_CONFIG_STARTUP.replace("<delayIn>0</delayIn>", "<delayIn>-1</delayIn>");
    assert!(matches!(
        server_err(bad_delay.as_bytes()),
        PnpError::BadNumber {
            field: "delayIn",
            ..
        }
    ));
    let no_location = DOC_CONFIG_STARTUP.replace(
        "<location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location>",
        "",
    );
    assert!(matches!(
        server_err(no_location.as_bytes()),
        PnpError::MissingElement {
            parent: "source",
            element: "location"
        }
    ));
    let empty_location = DOC_CONFIG_STARTUP.replace(
        "<location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location>",
        "<location> </location>",
    );
    assert!(matches!(
        server_err(empty_location.as_bytes()),
        PnpError::EmptyElement {
            element: "location"
        }
    ));
    let no_source = DOC_CONFIG_RUNNING.replace(
        "<source><location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location></source>",
        "",
    );
    assert!(matches!(
        server_err(no_source.as_bytes()),
        PnpError::MissingElement {
            element: "source",
            ..
        }
    ));
}

#[test]
fn doc_image_install() {
    let expected = ImageInstall {
        source: Source {
            location: "http://198.51.100.10/images/c2960x-universalk9-tar.152-7.E8.tar".into(),
            checksum: Some("0cc175b9c0f1b6a831c399e269772661".into()),
        },
        destination: Some("flash:c2960x-universalk9-tar.152-7.E8.tar".into()),
        reload: ReloadPolicy::Reload(Reload {
            reason: Some("pnp image installation".into()),
            delay_in: Some(0),
            user: Some("pnp-install-image".into()),
            save_config: Some(true),
        }),
    };
    assert_eq!(job(DOC_IMAGE), Job::ImageInstall(expected));
}

#[test]
fn image_install_without_destination_or_reload() {
    let xml = DOC_IMAGE
        .replace(
            "<destination><location>flash:c2960x-universalk9-tar.152-7.E8.tar</location></destination>",
            "",
        )
        .replace(
            "<reload><reason>pnp image installation</reason><delayIn>0</delayIn>\n      <user>pnp-install-image</user><saveConfig>true</saveConfig></reload>",
            "",
        );
    let Job::ImageInstall(i) = job(&xml) else {
        panic!()
    };
    assert_eq!(i.destination, None);
    assert_eq!(i.reload, ReloadPolicy::Unspecified);
    assert!(i.source.location.ends_with(".tar"));
}

#[test]
fn doc_capability() {
    assert_eq!(job(DOC_CAPABILITY), Job::Capability);
    let alias = DOC_CAPABILITY.replace("pnp:capability", "pnp:capabilities");
    assert_eq!(job(&alias), Job::Capability);
}

#[test]
fn topology_request() {
    let xml = DOC_CAPABILITY.replace("pnp:capability", "pnp:topology");
    assert_eq!(job(&xml), Job::Topology);
}

#[test]
fn doc_backoff() {
    assert_eq!(
        job(DOC_BACKOFF),
        Job::Backoff(Backoff {
            reason: Some("nothing to do".into()),
            action: BackoffAction::CallbackAfter(Duration::from_secs(300)),
        })
    );
}

fn backoff_action(inner: &str) -> Result<BackoffAction, PnpError> {
    let xml = format!(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0"><request xmlns="urn:cisco:pnp:backoff" correlator="{CORR}"><backoff>{inner}</backoff></request></pnp>"#
    );
    match parse_server_message(xml.as_bytes())?.body {
        ServerBody::Request(Request {
            job: Job::Backoff(b),
            ..
        }) => Ok(b.action),
        other => panic!("not a backoff: {other:?}"),
    }
}

fn action(inner: &str) -> Option<BackoffAction> {
    backoff_action(inner).ok()
}

#[test]
fn backoff_spellings_and_defaults() {
    use BackoffAction::*;
    let secs = |s| Some(CallbackAfter(Duration::from_secs(s)));
    assert_eq!(
        action("<callBackAfter><minutes>2</minutes></callBackAfter>"),
        secs(120)
    );
    assert_eq!(
        action("<callbackAfter><hours>1</hours><seconds>7</seconds></callbackAfter>"),
        secs(3607)
    );
    assert_eq!(action("<callbackAfter/>"), secs(0));
    assert_eq!(action("<callbackAfter><hours/></callbackAfter>"), secs(0));
    assert_eq!(
        action(
            "<callbackAfter><hours>47</hours><minutes>59</minutes><seconds>59</seconds></callbackAfter>"
        ),
        Some(CallbackAfter(MAX_CALLBACK))
    );
    assert_eq!(
        action("<defaultMinutes>30</defaultMinutes>"),
        Some(DefaultMinutes(30))
    );
    assert_eq!(action("<terminate/>"), Some(Terminate));
}

#[test]
fn backoff_clamping() {
    use BackoffAction::*;
    assert_eq!(
        action("<callbackAfter><minutes>90</minutes></callbackAfter>"),
        Some(CallbackAfter(Duration::from_secs(5400)))
    );
    assert_eq!(
        action("<callbackAfter><hours>48</hours></callbackAfter>"),
        Some(CallbackAfter(MAX_CALLBACK))
    );
    assert_eq!(
        action("<callbackAfter><hours>18446744073709551615</hours></callbackAfter>"),
        Some(CallbackAfter(MAX_CALLBACK))
    );
    assert_eq!(
        action("<defaultMinutes>0</defaultMinutes>"),
        Some(DefaultMinutes(1))
    );
    assert_eq!(
        action("<defaultMinutes>9999</defaultMinutes>"),
        Some(DefaultMinutes(2880))
    );
    assert_eq!(
        action("<defaultMinutes>99999999999999</defaultMinutes>"),
        Some(DefaultMinutes(2880))
    );
}

#[test]
fn backoff_errors() {
    assert!(matches!(
        backoff_action("<callbackAfter><minutes>-5</minutes></callbackAfter>"),
        Err(PnpError::BadNumber {
            field: "minutes",
            ..
        })
    ));
    assert!(matches!(
        backoff_action("<callbackAfter><hours>one</hours></callbackAfter>"),
        Err(PnpError::BadNumber { field: "hours", .. })
    ));
    assert!(matches!(
        backoff_action("<callbackAfter><hours>99999999999999999999999</hours></callbackAfter>"),
        Err(PnpError::BadNumber { field: "hours", .. })
    ));
    assert!(matches!(
        backoff_action("<defaultMinutes/>"),
        Err(PnpError::EmptyElement {
            element: "defaultMinutes"
        })
    ));
    assert!(matches!(
        backoff_action("<terminate/><callbackAfter/>"),
        Err(PnpError::Conflicting {
            first: "callbackAfter",
            second: "terminate"
        })
    ));
    assert!(matches!(
        backoff_action("<reason>x</reason>"),
        Err(PnpError::MissingElement {
            parent: "backoff",
            ..
        })
    ));
}

#[test]
fn doc_bye() {
    let msg = server(DOC_BYE);
    assert_eq!(
        msg.body,
        ServerBody::Bye {
            correlator: Some(CORR.into())
        }
    );
    let bare = r#"<pnp xmlns="urn:cisco:pnp"><info xmlns="urn:cisco:pnp:work-info"><workInfo><bye/></workInfo></info></pnp>"#;
    assert_eq!(server(bare).body, ServerBody::Bye { correlator: None });
    let no_bye = DOC_BYE.replace("<bye/>", "");
    assert!(matches!(
        server_err(no_bye.as_bytes()),
        PnpError::MissingElement {
            parent: "info",
            element: "bye"
        }
    ));
}

#[test]
fn unsupported_services() {
    for service in [
        "cli-exec",
        "cli-config",
        "file-transfer",
        "licensing",
        "reload",
        "certificate-install",
    ] {
        let xml = format!(
            r#"<pnp xmlns="urn:cisco:pnp"><request xmlns="urn:cisco:pnp:{service}" correlator="c1"><execCLI maxWait="PT30S" xsd="false"><cmd>show version</cmd></execCLI></request></pnp>"#
        );
        let ServerBody::Request(r) = server(&xml).body else {
            panic!()
        };
        assert_eq!(r.correlator, "c1");
        assert_eq!(
            r.job,
            Job::Unsupported {
                service: service.into()
            }
        );
        assert_eq!(r.job.service(), Service::Other(service.into()));
    }
}

#[test]
fn doc_work_request() {
    let msg = agent(DOC_WORK_REQUEST);
    assert_eq!(msg.envelope.udi, Some(udi()));
    assert_eq!(
        msg.body,
        AgentBody::WorkRequest(WorkRequest {
            correlator: CORR.into(),
            udi: Some(udi()),
            hostname: Some("Switch".into()),
            auth_required: false,
            via_proxy: true,
        })
    );
}

#[test]
fn work_request_variants_ignored_elements() {
    let xml = DOC_WORK_REQUEST
        .replace("<hostname>", "<macAddress>0011.2233.4455</macAddress><hostname>")
        .replace(
            "</deviceId>",
            "</deviceId><reason><reload><message>factory-reset</message><code>PnP Service Info 2408</code><startupConfigPresent>false</startupConfigPresent></reload></reason><SUDI>x</SUDI>",
        );
    let AgentBody::WorkRequest(w) = agent(&xml).body else {
        panic!()
    };
    assert_eq!(w.hostname.as_deref(), Some("Switch"));
    assert!(w.via_proxy);
}

#[test]
fn doc_device_info_response() {
    let msg = agent(DOC_DEVICE_INFO_RESPONSE);
    let AgentBody::Response(r) = msg.body else {
        panic!()
    };
    assert_eq!(r.service, Service::DeviceInfo);
    assert_eq!(r.correlator, CORR);
    assert!(r.success);
    assert_eq!(r.error, None);
    assert_eq!(
        r.body,
        ResponseBody::DeviceInfo(DeviceInfoReply {
            udi: Some(udi()),
            image: Some(ImageInfo {
                version_string: Some("15.2(7)E8".into()),
                image_file: Some("flash:c2960x-universalk9-mz.152-7.E8.bin".into()),
            }),
            hardware: Some(HardwareInfo {
                hostname: Some("Switch".into()),
                platform_name: Some("WS-C2960X-48TS-L".into()),
                board_id: Some("FOC1234X0AB".into()),
            }),
        })
    );
}

#[test]
fn doc_error_response() {
    let AgentBody::Response(r) = agent(DOC_ERROR_RESPONSE).body else {
        panic!()
    };
    assert_eq!(r.service, Service::ConfigUpgrade);
    assert!(!r.success);
    assert_eq!(r.body, ResponseBody::Empty);
    assert_eq!(
        r.error,
        Some(ErrorInfo {
            severity: "ERROR".into(),
            code: "PnP Service Error 1803".into(),
            message: "Source file not found".into(),
        })
    );
}

#[test]
fn doc_fault_any_prefix_case() {
    let expected = AgentBody::Fault(Fault {
        code: "XSVC:Client".into(),
        string: "An unknown XML tag has been received".into(),
        details: "struct".into(),
    });
    assert_eq!(agent(DOC_FAULT).body, expected);
    let upper = DOC_FAULT.replace("xsvc-err", "XSVC-ERR");
    assert_eq!(agent(&upper).body, expected);
}

#[test]
fn success_spellings() {
    let base = r#"<pnp xmlns="urn:cisco:pnp"><response xmlns="urn:cisco:pnp:backoff" correlator="c" success="S"/></pnp>"#;
    for (text, value) in [
        ("1", true),
        ("0", false),
        ("true", true),
        ("false", false),
        ("TRUE", true),
        ("False", false),
        (" 1 ", true),
    ] {
        let AgentBody::Response(r) = agent(&base.replace('S', text)).body else {
            panic!()
        };
        assert_eq!(r.success, value, "{text}");
    }
    let bad = base.replace('S', "yes");
    assert!(matches!(
        parse_agent_message(bad.as_bytes()),
        Err(PnpError::BadBool {
            field: "success",
            ..
        })
    ));
    let missing = base.replace(r#" success="S""#, "");
    assert!(matches!(
        parse_agent_message(missing.as_bytes()),
        Err(PnpError::MissingAttribute {
            element: "response",
            attribute: "success"
        })
    ));
}

#[test]
fn bom_no_declaration_leading_whitespace_crlf() {
    let body = format!("\u{feff}\r\n  \t{}", DOC_BACKOFF.replace('\n', "\r\n"));
    let Job::Backoff(b) = job(&body) else {
        panic!()
    };
    assert_eq!(
        b.action,
        BackoffAction::CallbackAfter(Duration::from_secs(300))
    );
    let with_decl = format!("\u{feff}\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{DOC_BYE}");
    assert!(matches!(server(&with_decl).body, ServerBody::Bye { .. }));
    let no_ns = r#"<pnp><request xmlns="urn:cisco:pnp:capability" correlator="CiscoPnP-1.0-1465-25A1212C"/></pnp>"#;
    assert_eq!(job(no_ns), Job::Capability);
}

#[test]
fn credentials_and_sid() {
    let xml = DOC_BYE.replace(
        " version=",
        r#" sid="S-42" usr="admin" pwd="s3cr&amp;t" version="#,
    );
    let env = server(&xml).envelope;
    assert_eq!(env.sid.as_deref(), Some("S-42"));
    let creds = env.credentials.clone().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("admin", "s3cr&t")
    );
    let debug = format!("{env:?}");
    assert!(!debug.contains("s3cr"), "{debug}");
    assert!(debug.contains("admin") && debug.contains("redacted"));

    let long = DOC_BYE.replace(" version=", r#" username="u" password="p" version="#);
    let creds = server(&long).envelope.credentials.unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("u", "p")
    );

    let only_user = DOC_BYE.replace(" version=", r#" usr="u" version="#);
    let creds = server(&only_user).envelope.credentials.unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.password.as_str()),
        ("u", "")
    );

    let empty_sid = DOC_BYE.replace(" version=", r#" sid="" version="#);
    assert_eq!(server(&empty_sid).envelope.sid, None);
}

#[test]
fn udi_with_slash_and_empty_vid() {
    let xml = DOC_BYE.replace(UDI, "PID:CISCO2921/K9,VID:,SN:FOC1234");
    let u = server(&xml).envelope.udi.unwrap();
    assert_eq!((u.pid(), u.vid(), u.sn()), ("CISCO2921/K9", "", "FOC1234"));
    let bad = DOC_BYE.replace(UDI, "WS-C2960X");
    assert!(matches!(
        server_err(bad.as_bytes()),
        PnpError::BadUdi {
            field: "pnp udi attribute",
            ..
        }
    ));
}

#[test]
fn references_and_cdata_in_text() {
    let xml = DOC_CONFIG_RUNNING.replace(
        "http://198.51.100.10/configs/FOC1234X0AB.cfg",
        "http://h/c?a=1&amp;b=&#x32;&#51;<![CDATA[&x<]]>",
    );
    let Job::ConfigUpgrade(c) = job(&xml) else {
        panic!()
    };
    assert_eq!(c.source.location, "http://h/c?a=1&b=23&x<");
}

#[test]
fn forbidden_characters_become_replacement() {
    let xml = DOC_BYE.replace(CORR, "a&#1;b\u{1}c");
    assert_eq!(server(&xml).correlator(), Some("a\u{fffd}b\u{fffd}c"));
    let text = DOC_CONFIG_RUNNING.replace(".cfg</location>", ".cfg&#x1F;</location>");
    let Job::ConfigUpgrade(c) = job(&text) else {
        panic!()
    };
    assert!(c.source.location.ends_with(".cfg\u{fffd}"));
}

#[test]
fn service_name_must_be_a_token() {
    let xml = DOC_CAPABILITY.replace("pnp:capability", "pnp:a&amp;b");
    assert!(matches!(
        server_err(xml.as_bytes()),
        PnpError::NoService {
            element: "request",
            ..
        }
    ));
    let upper = DOC_CAPABILITY.replace("urn:cisco:pnp:capability", "URN:Cisco:PnP:CLI_exec.v2");
    assert_eq!(
        job(&upper),
        Job::Unsupported {
            service: "CLI_exec.v2".into()
        }
    );
}

#[test]
fn unknown_elements_and_attributes_ignored() {
    let xml = DOC_BACKOFF
        .replace("<backoff>", r#"<backoff foo="bar"><future><x/></future>"#)
        .replace("<request ", r#"<extra/><request extra="1" "#);
    // <extra/> comes before <request>: the first child decides the kind.
    assert!(matches!(
        server_err(xml.as_bytes()),
        PnpError::UnexpectedMessage { .. }
    ));
    let xml = DOC_BACKOFF
        .replace(
            "<backoff>",
            r#"<backoff foo="bar"><future><x/></future><!-- note --><?pi x?>"#,
        )
        .replace("<request ", r#"<request extra="1" "#);
    assert!(matches!(job(&xml), Job::Backoff(_)));
}

#[test]
fn structural_errors() {
    assert!(matches!(server_err(b""), PnpError::Empty));
    assert!(matches!(server_err(b"  \n "), PnpError::Empty));
    assert!(matches!(server_err(b"<!-- only -->"), PnpError::Empty));
    assert!(
        matches!(server_err(b"<html><body/></html>"), PnpError::NotPnp { found } if found == "html")
    );
    assert!(matches!(
        server_err(b"<pnp/>"),
        PnpError::MissingElement { parent: "pnp", .. }
    ));
    assert!(matches!(
        server_err(b"<pnp/><pnp/>"),
        PnpError::MultipleRoots
    ));
    assert!(
        matches!(server_err(b"<pnp><request>"), PnpError::Truncated { element } if element == "request")
    );
    assert!(matches!(
        server_err(b"<pnp><a></b></pnp>"),
        PnpError::Xml { .. }
    ));
    assert!(matches!(
        server_err(b"<pnp><response xmlns='urn:cisco:pnp:backoff' correlator='c' success='1'/></pnp>"),
        PnpError::UnexpectedMessage { found, .. } if found == "response"
    ));
    assert!(matches!(
        server_err(b"<pnp><request correlator='c'/></pnp>"),
        PnpError::NoService {
            element: "request",
            namespace: None
        }
    ));
    assert!(matches!(
        server_err(b"<pnp><request xmlns='urn:cisco:pnp:' correlator='c'/></pnp>"),
        PnpError::NoService { .. }
    ));
    assert!(matches!(
        server_err(b"<pnp><request xmlns='urn:cisco:pnp:capability'/></pnp>"),
        PnpError::MissingAttribute {
            element: "request",
            attribute: "correlator"
        }
    ));
    assert!(matches!(
        parse_agent_message(b"<pnp><info xmlns='urn:cisco:pnp:work-info' correlator='c'/></pnp>"),
        Err(PnpError::MissingElement {
            parent: "info",
            element: "deviceId"
        })
    ));
    assert!(matches!(
        parse_agent_message(DOC_BACKOFF.as_bytes()),
        Err(PnpError::UnexpectedMessage { .. })
    ));
}

#[test]
fn doc_examples_parse_in_one_direction() {
    for example in DOC_EXAMPLES {
        let server = parse_server_message(example.as_bytes());
        let agent = parse_agent_message(example.as_bytes());
        assert!(server.is_ok() != agent.is_ok(), "{example}");
    }
}

#[test]
fn fuzz_corpus_seeds_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pnp_parse");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.path().extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let body = std::fs::read(entry.path()).unwrap();
        let ok = parse_server_message(&body).is_ok() || parse_agent_message(&body).is_ok();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(ok, !name.starts_with("hostile"), "{name}");
    }
}
