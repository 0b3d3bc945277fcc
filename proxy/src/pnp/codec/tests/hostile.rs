//! Hostile input: DTDs and entities, and every cap (depth, body, value,
//! element and attribute counts) refused with a specific error.

use super::*;

#[test]
fn billion_laughs_refused() {
    let xml = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol9 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<pnp xmlns="urn:cisco:pnp"><info xmlns="urn:cisco:pnp:work-info" correlator="&lol9;"><workInfo><bye/></workInfo></info></pnp>"#;
    let err = server_err(xml.as_bytes());
    assert!(
        matches!(&err, PnpError::DtdRefused { found } if found == "DOCTYPE"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("DTDs and entity declarations are refused")
    );
}

#[test]
fn external_entity_refused() {
    let xml = r#"<?xml version="1.0"?><!DOCTYPE pnp [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><pnp><info correlator="&xxe;"><bye/></info></pnp>"#;
    assert!(matches!(
        server_err(xml.as_bytes()),
        PnpError::DtdRefused { .. }
    ));
    let lower = xml.replace("DOCTYPE", "doctype");
    assert!(matches!(
        server_err(lower.as_bytes()),
        PnpError::DtdRefused { .. }
    ));
    let bare_entity = r#"<pnp><!ENTITY x "y"></pnp>"#;
    assert!(
        matches!(server_err(bare_entity.as_bytes()), PnpError::DtdRefused { found } if found == "ENTITY")
    );
    // Without a DTD the reference is simply unknown: never resolved.
    let undeclared = r#"<pnp><info correlator="&xxe;"><bye/></info></pnp>"#;
    assert!(
        matches!(server_err(undeclared.as_bytes()), PnpError::UnknownEntity { name } if name == "xxe")
    );
    let in_text = r#"<pnp><info correlator="c"><bye>&xxe;</bye></info></pnp>"#;
    assert!(
        matches!(server_err(in_text.as_bytes()), PnpError::UnknownEntity { name } if name == "xxe")
    );
}

#[test]
fn deep_nesting_refused() {
    let mut xml = String::from("<pnp>");
    for _ in 0..10_000 {
        xml.push_str("<a>");
    }
    for _ in 0..10_000 {
        xml.push_str("</a>");
    }
    xml.push_str("</pnp>");
    assert!(matches!(
        server_err(xml.as_bytes()),
        PnpError::TooDeep { cap: DEPTH_CAP }
    ));
    let empty_leaf = format!(
        "{}<x/>{}",
        "<a>".repeat(DEPTH_CAP),
        "</a>".repeat(DEPTH_CAP)
    );
    assert!(matches!(
        server_err(empty_leaf.as_bytes()),
        PnpError::TooDeep { .. }
    ));
    let just_fits = format!("{}{}", "<a>".repeat(DEPTH_CAP), "</a>".repeat(DEPTH_CAP));
    assert!(matches!(
        server_err(just_fits.as_bytes()),
        PnpError::NotPnp { .. }
    ));
}

#[test]
fn oversized_body_refused() {
    let mut xml = DOC_BYE.to_owned().into_bytes();
    xml.resize(2 * 1024 * 1024, b' ');
    let err = server_err(&xml);
    assert!(matches!(err, PnpError::BodyTooLarge { len, cap: BODY_CAP } if len == 2 * 1024 * 1024));
    assert!(matches!(
        parse_agent_message(&xml),
        Err(PnpError::BodyTooLarge { .. })
    ));
    let mut at_cap = DOC_BYE.to_owned().into_bytes();
    at_cap.resize(BODY_CAP, b' ');
    assert!(parse_server_message(&at_cap).is_ok());
}

#[test]
fn huge_attribute_and_text_refused() {
    let big = "A".repeat(VALUE_CAP + 1);
    let attr = DOC_BYE.replace(CORR, &big);
    assert!(matches!(
        server_err(attr.as_bytes()),
        PnpError::ValueTooLong { element, cap: VALUE_CAP } if element == "info"
    ));
    let text = DOC_CONFIG_RUNNING.replace("http://198.51.100.10/configs/FOC1234X0AB.cfg", &big);
    assert!(matches!(
        server_err(text.as_bytes()),
        PnpError::ValueTooLong { element, .. } if element == "location"
    ));
    let pieces = DOC_CONFIG_RUNNING.replace(
        "http://198.51.100.10/configs/FOC1234X0AB.cfg",
        &"&amp;".repeat(VALUE_CAP + 1),
    );
    assert!(matches!(
        server_err(pieces.as_bytes()),
        PnpError::ValueTooLong { .. }
    ));
}

#[test]
fn too_many_elements_and_attributes_refused() {
    let xml = format!("<pnp>{}</pnp>", "<a/>".repeat(ELEMENT_CAP));
    assert!(matches!(
        server_err(xml.as_bytes()),
        PnpError::TooManyElements { cap: ELEMENT_CAP }
    ));
    let attrs: String = (0..=ATTRIBUTE_CAP)
        .map(|i| format!(" a{i}=\"x\""))
        .collect();
    let xml = format!("<pnp{attrs}/>");
    assert!(matches!(
        server_err(xml.as_bytes()),
        PnpError::TooManyAttributes { element, cap: ATTRIBUTE_CAP } if element == "pnp"
    ));
}

#[test]
fn non_utf8_refused() {
    let mut xml = DOC_BYE.as_bytes().to_vec();
    xml.insert(10, 0xff);
    assert!(matches!(server_err(&xml), PnpError::NotUtf8 { offset: 10 }));
    let utf16: Vec<u8> = "<pnp/>".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut bom16 = vec![0xff, 0xfe];
    bom16.extend(utf16);
    assert!(matches!(
        server_err(&bom16),
        PnpError::NotUtf8 { offset: 0 }
    ));
}

#[test]
fn error_messages_are_specific() {
    assert_eq!(
        PnpError::TooDeep { cap: 32 }.to_string(),
        "XML elements nest deeper than 32 levels"
    );
    assert_eq!(
        PnpError::BodyTooLarge { len: 2, cap: 1 }.to_string(),
        "PnP body is 2 bytes, over the 1-byte cap"
    );
    assert_eq!(
        PnpError::NoService {
            element: "request",
            namespace: Some("urn:x".into())
        }
        .to_string(),
        "<request> is in namespace Some(\"urn:x\"), not urn:cisco:pnp:<service>"
    );
}
