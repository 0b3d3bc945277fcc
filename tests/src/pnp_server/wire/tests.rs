//! Every XML text here is copied from `docs/pnp-protocol.md`, so the test
//! server is anchored to the document, not to the proxy's codec.
use super::*;

const UDI: &str = "PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB";
const CORRELATOR: &str = "CiscoPnP-1.0-1465-25A1212C";

/// The document's sample without the white space between tags (the server
/// writes compact XML).
fn compact(xml: &str) -> String {
    let mut out = String::new();
    let mut pending = String::new();
    for ch in xml.trim().chars() {
        if ch.is_whitespace() {
            pending.push(ch);
            continue;
        }
        if !(ch == '<' && out.ends_with('>')) {
            out.push_str(&pending);
        }
        pending.clear();
        out.push(ch);
    }
    out
}

fn env() -> Envelope {
    Envelope {
        udi: Some(UDI.parse().expect("UDI")),
        sid: None,
    }
}

fn request(job: &Job) -> String {
    encode_request(&env(), CORRELATOR, job, WireOptions::default()).expect("encode")
}

fn parse(xml: &str) -> AgentMessage {
    parse_agent_message(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

#[test]
fn work_request_of_section_5() {
    let message = parse(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <info xmlns="urn:cisco:pnp:work-info" correlator="CiscoPnP-1.0-1465-25A1212C">
    <deviceId>
      <udi>PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB</udi>
      <hostname>Switch</hostname>
      <authRequired>false</authRequired>
      <viaProxy>true</viaProxy>
      <securityAdvise>Password in clear text in unsecured transport</securityAdvise>
    </deviceId>
  </info>
</pnp>"#,
    );
    assert_eq!(message.udi.as_ref().map(Udi::as_str), Some(UDI));
    assert_eq!(message.sid, None);
    assert_eq!(
        message.body,
        AgentBody::WorkRequest(WorkRequest {
            correlator: CORRELATOR.into(),
            udi: Some(UDI.parse().expect("UDI")),
            hostname: Some("Switch".into()),
            auth_required: false,
            via_proxy: true,
            mac_address: None,
        })
    );
}

#[test]
fn device_info_response_of_section_6_1() {
    let message = parse(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:device-info" correlator="CiscoPnP-1.0-1465-25A1212C" success="1">
    <udi><primary-chassis>PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB</primary-chassis></udi>
    <imageInfo><versionString>15.2(7)E8</versionString>
      <imageFile>flash:c2960x-universalk9-mz.152-7.E8.bin</imageFile><imageHash/>
      <returnToRomReason>power-on</returnToRomReason><bootVariable/><bootLdrVariable/>
      <configVariable/><configReg>0xF</configReg><configRegNext/></imageInfo>
    <hardwareInfo><hostname>Switch</hostname><vendor>Cisco</vendor>
      <platformName>WS-C2960X-48TS-L</platformName><processorType/><hwRevision>1.0</hwRevision>
      <mainMemSize>524288000</mainMemSize><ioMemSize>0</ioMemSize><boardId>FOC1234X0AB</boardId>
      <boardReworkId/><processorRev/><midplaneVersion/><location/></hardwareInfo>
    <fileSystemList><fileSystem name="flash" type="disk" writable="true" readable="true"
      size="122185728" freespace="80000000"/></fileSystemList>
  </response>
</pnp>"#,
    );
    assert_eq!(
        message.body,
        AgentBody::Response(Response {
            service: Service::DeviceInfo,
            correlator: CORRELATOR.into(),
            success: true,
            error: None,
            body: ResponseBody::DeviceInfo(DeviceInfoReply {
                udi: Some(UDI.into()),
                version: Some("15.2(7)E8".into()),
                image_file: Some("flash:c2960x-universalk9-mz.152-7.E8.bin".into()),
                hostname: Some("Switch".into()),
                platform: Some("WS-C2960X-48TS-L".into()),
                board_id: Some("FOC1234X0AB".into()),
            }),
        })
    );
}

#[test]
fn success_error_and_capability_responses() {
    let ok = parse(&format!(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="{UDI}"><response xmlns="urn:cisco:pnp:config-upgrade" correlator="{CORRELATOR}" success="1"/></pnp>"#
    ));
    assert!(matches!(
        ok.body,
        AgentBody::Response(Response {
            service: Service::ConfigUpgrade,
            success: true,
            error: None,
            body: ResponseBody::Empty,
            ..
        })
    ));

    // Section 7.1.
    let failed = parse(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C" success="0">
    <errorInfo><errorSeverity>ERROR</errorSeverity><errorCode>PnP Service Error 1803</errorCode>
      <errorMessage>Source file not found</errorMessage></errorInfo>
  </response>
</pnp>"#,
    );
    let AgentBody::Response(r) = failed.body else {
        panic!("not a response");
    };
    assert!(!r.success);
    assert_eq!(
        r.error,
        Some(ErrorInfo {
            severity: "ERROR".into(),
            code: "PnP Service Error 1803".into(),
            message: "Source file not found".into(),
        })
    );

    // Section 6.4's project-defined answer, in an envelope.
    let capability = parse(&format!(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="{UDI}">
<response xmlns="urn:cisco:pnp:capability" correlator="{CORRELATOR}" success="1">
  <serviceList><service>capability</service><service>config-upgrade</service>
    <service>device-info</service><service>image-install</service>
    <service>topology</service><service>backoff</service><service>bye</service></serviceList>
</response></pnp>"#
    ));
    let AgentBody::Response(r) = capability.body else {
        panic!("not a response");
    };
    assert_eq!(
        r.body,
        ResponseBody::Capability(
            [
                "capability",
                "config-upgrade",
                "device-info",
                "image-install",
                "topology",
                "backoff",
                "bye"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    // success as true/false is tolerated (section 11 rule 3).
    let truthy = parse(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0"><response xmlns="urn:cisco:pnp:backoff" correlator="c" success="TRUE"/></pnp>"#,
    );
    assert!(matches!(
        truthy.body,
        AgentBody::Response(Response { success: true, .. })
    ));
}

#[test]
fn fault_of_section_7_2() {
    let message = parse(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:fault">
    <fault><faultcode>XSVC:Client</faultcode>
      <faultstring>An unknown XML tag has been received</faultstring>
      <detail><xsvc-err:error xmlns:xsvc-err="urn:cisco:pnp:error">
        <xsvc-err:details>struct</xsvc-err:details></xsvc-err:error></detail>
    </fault>
  </response>
</pnp>"#,
    );
    assert_eq!(
        message.body,
        AgentBody::Fault(Fault {
            code: "XSVC:Client".into(),
            string: "An unknown XML tag has been received".into(),
            details: Some("struct".into()),
        })
    );
}

#[test]
fn device_info_request_of_section_6_1_and_its_prefixed_form_of_section_2() {
    let doc = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:device-info" correlator="CiscoPnP-1.0-1465-25A1212C"><deviceInfo type="all"/></request>
</pnp>"#;
    assert_eq!(request(&Job::DeviceInfo(DeviceInfoType::All)), compact(doc));
    let prefixed = r#"<ns0:pnp xmlns:ns0="urn:cisco:pnp" xmlns:ns1="urn:cisco:pnp:device-info" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <ns1:request correlator="CiscoPnP-1.0-1465-25A1212C"><deviceInfo type="all"/></ns1:request>
</ns0:pnp>"#;
    let options = WireOptions {
        prefixed: true,
        alt_spellings: false,
    };
    assert_eq!(
        encode_request(
            &env(),
            CORRELATOR,
            &Job::DeviceInfo(DeviceInfoType::All),
            options
        )
        .expect("encode"),
        compact(prefixed)
    );
}

#[test]
fn config_upgrade_requests_of_section_6_2() {
    let startup = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C">
    <config details="all">
      <copy>
        <source><location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location>
          <checksum>9e107d9d372bb6826bd81d3542a419d6</checksum></source>
        <applyTo>startup</applyTo>
      </copy>
    </config>
    <reload><reason>pnp config upgrade</reason><delayIn>0</delayIn></reload>
  </request>
</pnp>"#;
    assert_eq!(
        request(&Job::ConfigUpgrade {
            location: "http://198.51.100.10/configs/FOC1234X0AB.cfg".into(),
            checksum: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
            apply_to: ApplyTo::Startup,
            reload: Some(Reload {
                reason: "pnp config upgrade".into(),
                delay_in: 0,
                user: None,
                save_config: None,
            }),
        }),
        compact(startup)
    );
    let running = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C">
    <config details="all"><copy>
      <source><location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location></source>
      <applyTo>running</applyTo>
    </copy></config>
    <noReload/>
  </request>
</pnp>"#;
    assert_eq!(
        request(&Job::ConfigUpgrade {
            location: "http://198.51.100.10/configs/FOC1234X0AB.cfg".into(),
            checksum: None,
            apply_to: ApplyTo::Running,
            reload: None,
        }),
        compact(running)
    );
}

fn image_job() -> Job {
    Job::ImageInstall {
        location: "http://198.51.100.10/images/c2960x-universalk9-tar.152-7.E8.tar".into(),
        checksum: Some("0cc175b9c0f1b6a831c399e269772661".into()),
        destination: Some("flash:c2960x-universalk9-tar.152-7.E8.tar".into()),
        reload: Some(Reload {
            reason: "pnp image installation".into(),
            delay_in: 0,
            user: Some("pnp-install-image".into()),
            save_config: Some(true),
        }),
    }
}

#[test]
fn image_install_request_of_section_6_3() {
    let doc = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:image-install" correlator="CiscoPnP-1.0-1465-25A1212C">
    <image><copy>
      <source><location>http://198.51.100.10/images/c2960x-universalk9-tar.152-7.E8.tar</location>
        <checksum>0cc175b9c0f1b6a831c399e269772661</checksum></source>
      <destination><location>flash:c2960x-universalk9-tar.152-7.E8.tar</location></destination>
    </copy></image>
    <reload><reason>pnp image installation</reason><delayIn>0</delayIn>
      <user>pnp-install-image</user><saveConfig>true</saveConfig></reload>
  </request>
</pnp>"#;
    assert_eq!(request(&image_job()), compact(doc));
}

#[test]
fn capability_backoff_and_bye_of_sections_6_4_to_6_6() {
    let capability = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:capability" correlator="CiscoPnP-1.0-1465-25A1212C"/>
</pnp>"#;
    assert_eq!(request(&Job::Capability), compact(capability));

    let backoff = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:backoff" correlator="CiscoPnP-1.0-1465-25A1212C">
    <backoff>
      <reason>nothing to do</reason>
      <callbackAfter><hours>0</hours><minutes>5</minutes><seconds>0</seconds></callbackAfter>
    </backoff>
  </request>
</pnp>"#;
    let job = Job::Backoff {
        reason: Some("nothing to do".into()),
        action: BackoffAction::after_secs(300),
    };
    assert_eq!(request(&job), compact(backoff));

    let bye = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <info xmlns="urn:cisco:pnp:work-info" correlator="CiscoPnP-1.0-1465-25A1212C"><workInfo><bye/></workInfo></info>
</pnp>"#;
    assert_eq!(
        encode_bye(&env(), Some(CORRELATOR), WireOptions::default()).expect("bye"),
        compact(bye)
    );
}

#[test]
fn alternative_spellings_of_section_11() {
    let alt = WireOptions {
        prefixed: false,
        alt_spellings: true,
    };
    let backoff = Job::Backoff {
        reason: None,
        action: BackoffAction::after_secs(90),
    };
    let text = encode_request(&env(), "c", &backoff, alt).expect("encode");
    assert!(
        text.contains("<callBackAfter><minutes>1</minutes><seconds>30</seconds></callBackAfter>"),
        "{text}"
    );
    let text = encode_request(&env(), "c", &image_job(), alt).expect("encode");
    assert!(text.contains("<saveConfig>1</saveConfig>"), "{text}");
    let text = encode_request(
        &env(),
        "c",
        &Job::Backoff {
            reason: None,
            action: BackoffAction::Terminate,
        },
        WireOptions::default(),
    )
    .expect("encode");
    assert!(text.contains("<backoff><terminate/></backoff>"), "{text}");
}

#[test]
fn udi_grammar_of_section_4() {
    for good in [
        "PID:WS-C3750X-24T-E,VID:V04,SN:FDO1703P2EB",
        "PID:CISCO2921/K9,VID:,SN:FOC1234",
        "PID:ISR4451-X/K9,VID:V01,SN:FGL1",
    ] {
        assert_eq!(good.parse::<Udi>().map(|u| u.to_string()), Ok(good.into()));
    }
    for bad in [
        "PID:,VID:V01,SN:X",
        "PID:A,VID:V01,SN:",
        "PID:A B,VID:V01,SN:X",
        "PID:A,SN:X",
        "A,VID:V01,SN:X",
    ] {
        assert!(bad.parse::<Udi>().is_err(), "{bad}");
    }
}

#[test]
fn hostile_bodies_are_refused() {
    let dtd = r#"<?xml version="1.0"?><!DOCTYPE pnp [<!ENTITY x "y">]><pnp xmlns="urn:cisco:pnp" version="1.0"><info xmlns="urn:cisco:pnp:work-info" correlator="&x;"><deviceId/></info></pnp>"#;
    assert_eq!(parse_agent_message(dtd.as_bytes()), Err(ParseError::Dtd));
    let entity = r#"<pnp xmlns="urn:cisco:pnp" version="1.0"><info xmlns="urn:cisco:pnp:work-info" correlator="c"><deviceId><hostname>&x;</hostname></deviceId></info></pnp>"#;
    assert!(matches!(
        parse_agent_message(entity.as_bytes()),
        Err(ParseError::Entity(_))
    ));
    let deep = format!(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0">{}{}</pnp>"#,
        "<a>".repeat(DEPTH_CAP + 1),
        "</a>".repeat(DEPTH_CAP + 1)
    );
    assert_eq!(
        parse_agent_message(deep.as_bytes()),
        Err(ParseError::TooComplex)
    );
    let wide = format!(
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0">{}</pnp>"#,
        "<x/>".repeat(ELEMENT_CAP)
    );
    assert_eq!(
        parse_agent_message(wide.as_bytes()),
        Err(ParseError::TooComplex)
    );
    assert_eq!(
        parse_agent_message(&vec![b' '; BODY_CAP + 1]),
        Err(ParseError::TooLarge(BODY_CAP + 1))
    );
    for bad in [
        "<pnp><oops",
        r#"<pnp version="1.0"/>"#,
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0"/>"#,
        r#"<pnp xmlns="urn:cisco:pnp"><info xmlns="urn:cisco:pnp:work-info" correlator="c"><deviceId/></info></pnp>"#,
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0"><info correlator="c"><deviceId/></info></pnp>"#,
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0"><response xmlns="urn:cisco:pnp:backoff" correlator="c"/></pnp>"#,
        r#"<pnp xmlns="urn:cisco:pnp" version="1.0"/><pnp/>"#,
    ] {
        assert!(parse_agent_message(bad.as_bytes()).is_err(), "{bad}");
    }
    // A BOM and leading white space are tolerated; escapes are read.
    let bom = "\u{feff}\n <pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"a&amp;b\"><deviceId><hostname>R&amp;D&#33;</hostname></deviceId></info></pnp>";
    let AgentBody::WorkRequest(w) = parse(bom).body else {
        panic!("not a work-request");
    };
    assert_eq!(
        (w.correlator.as_str(), w.hostname.as_deref()),
        ("a&b", Some("R&D!"))
    );
}
