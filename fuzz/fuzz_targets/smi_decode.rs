//! Feeds arbitrary bytes to the SMI codec, both as a whole frame and through
//! the streaming path (header, then `payload_len`, then `decode_parts`).
//! Besides "never panics" it checks that whatever decodes and re-encodes
//! decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::smi::codec::{self, HEADER_LEN, Header, PAYLOAD_CAP};

fuzz_target!(|data: &[u8]| {
    let whole = codec::decode(data);

    if let Some((head, rest)) = data.split_first_chunk::<HEADER_LEN>() {
        let header = Header::decode(head);
        assert_eq!(&header.encode(), head, "header encoding is not the inverse of decoding");
        let payload = codec::payload_len(&header, PAYLOAD_CAP)
            .ok()
            .and_then(|len| rest.get(..len));
        if let Some(payload) = payload {
            let parts = codec::decode_parts(&header, payload);
            if payload.len() == rest.len() {
                assert_eq!(parts, whole, "streaming and whole-frame decoding disagree");
            }
        }
    }

    if let Some(encoded) = whole.as_ref().ok().and_then(|message| message.encode().ok()) {
        assert_eq!(
            codec::decode(&encoded).as_ref(),
            whole.as_ref(),
            "decode(encode(message)) differs from message"
        );
    }
});
