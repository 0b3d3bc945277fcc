//! Feeds arbitrary bytes to both PnP parsers (server-to-agent and
//! agent-to-server). Besides "never panics" it checks that whatever parses
//! re-encodes to a body that parses to the same message (when that body fits
//! under the body cap: escaping may lengthen it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::pnp::codec::{
    BODY_CAP, encode_agent_message, encode_server_message, parse_agent_message,
    parse_server_message,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = parse_server_message(data) {
        let encoded = encode_server_message(&message);
        if encoded.len() <= BODY_CAP {
            let again = parse_server_message(encoded.as_bytes());
            assert_eq!(
                again.ok().as_ref(),
                Some(&message),
                "server message round trip: {encoded}"
            );
        }
    }
    if let Ok(message) = parse_agent_message(data) {
        let encoded = encode_agent_message(&message);
        if encoded.len() <= BODY_CAP {
            let again = parse_agent_message(encoded.as_bytes());
            assert_eq!(
                again.ok().as_ref(),
                Some(&message),
                "agent message round trip: {encoded}"
            );
        }
    }
});
