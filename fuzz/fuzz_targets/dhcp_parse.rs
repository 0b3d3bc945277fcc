//! Feeds arbitrary bytes to the local DHCP server's request decoder.
//! Besides "never panics" it checks that whatever decodes can be answered:
//! an OFFER, an ACK and a NAK encode, are padded to the BOOTP minimum,
//! decode again as requests would not (they are BOOTREPLYs), and carry the
//! client's transaction id and MAC.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use proxy::dhcp::codec::{
    CodecError, MIN_REPLY_LEN, ReplyKind, ReplyOptions, ack, decode_request, nak, offer,
    reply_destination,
};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_request(data) else {
        return;
    };
    let opts = ReplyOptions {
        server_ip: Ipv4Addr::new(192, 0, 2, 1),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        router: Ipv4Addr::new(192, 0, 2, 1),
        lease_secs: 86_400,
    };
    let yiaddr = Ipv4Addr::new(192, 0, 2, 100);
    for (kind, reply) in [
        (ReplyKind::Offer, offer(&req, yiaddr, &opts)),
        (ReplyKind::Ack, ack(&req, yiaddr, &opts)),
        (ReplyKind::Nak, nak(&req, opts.server_ip, "fuzz")),
    ] {
        let bytes = reply.expect("a reply to a decoded request encodes");
        assert!(bytes.len() >= MIN_REPLY_LEN);
        assert_eq!(&bytes[4..8], &req.xid.to_be_bytes());
        assert_eq!(&bytes[28..34], &req.mac);
        assert!(matches!(
            decode_request(&bytes),
            Err(CodecError::NotRequest(2))
        ));
        let _ = reply_destination(&req, kind);
    }
});
