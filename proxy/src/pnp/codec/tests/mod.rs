//! Unit tests of the PnP codec, by concern: `parse` (both directions, the
//! examples of `docs/pnp-protocol.md` and the tolerated variants), `hostile`
//! (the caps and refusals), `encode` (exact bytes and round trips). This file
//! holds the fixtures they share.

use super::*;
use crate::udi::Udi;

mod encode;
mod hostile;
mod parse;

const UDI: &str = "PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB";
const CORR: &str = "CiscoPnP-1.0-1465-25A1212C";

fn udi() -> Udi {
    UDI.parse().unwrap()
}

fn server(xml: &str) -> ServerMessage {
    parse_server_message(xml.as_bytes()).unwrap()
}

fn job(xml: &str) -> Job {
    match server(xml).body {
        ServerBody::Request(r) => {
            assert_eq!(r.correlator, CORR);
            r.job
        }
        other => panic!("not a request: {other:?}"),
    }
}

fn agent(xml: &str) -> AgentMessage {
    parse_agent_message(xml.as_bytes()).unwrap()
}

fn server_err(xml: &[u8]) -> PnpError {
    parse_server_message(xml).unwrap_err()
}

// --- Examples of docs/pnp-protocol.md -------------------------------

const DOC_WORK_REQUEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
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
</pnp>"#;

const DOC_PREFIXED: &str = r#"<ns0:pnp xmlns:ns0="urn:cisco:pnp" xmlns:ns1="urn:cisco:pnp:device-info" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <ns1:request correlator="CiscoPnP-1.0-1465-25A1212C"><deviceInfo type="all"/></ns1:request>
</ns0:pnp>"#;

const DOC_DEVICE_INFO: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:device-info" correlator="CiscoPnP-1.0-1465-25A1212C"><deviceInfo type="all"/></request>
</pnp>"#;

const DOC_DEVICE_INFO_RESPONSE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
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
</pnp>"#;

const DOC_CONFIG_STARTUP: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
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

const DOC_CONFIG_RUNNING: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C">
    <config details="all"><copy>
      <source><location>http://198.51.100.10/configs/FOC1234X0AB.cfg</location></source>
      <applyTo>running</applyTo>
    </copy></config>
    <noReload/>
  </request>
</pnp>"#;

const DOC_IMAGE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
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

const DOC_CAPABILITY: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:capability" correlator="CiscoPnP-1.0-1465-25A1212C"/>
</pnp>"#;

const DOC_BACKOFF: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <request xmlns="urn:cisco:pnp:backoff" correlator="CiscoPnP-1.0-1465-25A1212C">
    <backoff>
      <reason>nothing to do</reason>
      <callbackAfter><hours>0</hours><minutes>5</minutes><seconds>0</seconds></callbackAfter>
    </backoff>
  </request>
</pnp>"#;

const DOC_BYE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <info xmlns="urn:cisco:pnp:work-info" correlator="CiscoPnP-1.0-1465-25A1212C"><workInfo><bye/></workInfo></info>
</pnp>"#;

const DOC_ERROR_RESPONSE: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:config-upgrade" correlator="CiscoPnP-1.0-1465-25A1212C" success="0">
    <errorInfo><errorSeverity>ERROR</errorSeverity><errorCode>PnP Service Error 1803</errorCode>
      <errorMessage>Source file not found</errorMessage></errorInfo>
  </response>
</pnp>"#;

const DOC_FAULT: &str = r#"<pnp xmlns="urn:cisco:pnp" version="1.0" udi="PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB">
  <response xmlns="urn:cisco:pnp:fault">
    <fault><faultcode>XSVC:Client</faultcode>
      <faultstring>An unknown XML tag has been received</faultstring>
      <detail><xsvc-err:error xmlns:xsvc-err="urn:cisco:pnp:error">
        <xsvc-err:details>struct</xsvc-err:details></xsvc-err:error></detail>
    </fault>
  </response>
</pnp>"#;

/// Every example above, for `parse::doc_examples_parse_in_one_direction`.
const DOC_EXAMPLES: [&str; 13] = [
    DOC_WORK_REQUEST,
    DOC_PREFIXED,
    DOC_DEVICE_INFO,
    DOC_DEVICE_INFO_RESPONSE,
    DOC_CONFIG_STARTUP,
    DOC_CONFIG_RUNNING,
    DOC_IMAGE,
    DOC_CAPABILITY,
    DOC_BACKOFF,
    DOC_BYE,
    DOC_ERROR_RESPONSE,
    DOC_FAULT,
    DOC_CONFIG_STARTUP,
];
