//! The local DHCP server's codec: bytes in, values out, no I/O.
//!
//! [`decode_request`] turns a datagram received on UDP 67 into a
//! [`ClientMessage`] (dhcproto does the parsing; this module only checks
//! what it found). [`offer`], [`ack`] and [`nak`] build the replies, and
//! [`reply_destination`] says where RFC 2131 section 4.1 sends them.
//!
//! Every OFFER and ACK carries: `yiaddr`, `siaddr` = the proxy, options 1
//! (subnet mask), 3 (router), 51 (lease), 58/59 (T1 = 1/2, T2 = 7/8 of the
//! lease), 54 (server identifier = the proxy), 150 (TFTP server = the proxy,
//! one 4-byte address), 66 (the same address as text) and 12 (host name: the
//! client's own if it sent a usable one, else `switch-<mac, 12 hex digits>`).
//! Option 82 of a relayed request is echoed (RFC 3046).
use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable as _, Decoder, Encodable as _, Encoder};

/// UDP port of DHCP servers (and relay agents).
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
/// Replies are padded to this length, the BOOTP minimum some clients insist on.
pub const MIN_REPLY_LEN: usize = 300;
/// Length of the fixed BOOTP header, before the magic cookie.
pub const BOOTP_FIXED_LEN: usize = 236;
/// The DHCP magic cookie (RFC 2131 section 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Longest host name handed out or accepted from a client (one DNS label).
pub const HOSTNAME_MAX: usize = 63;

/// Why a datagram is not a DHCP request this server serves.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Shorter than the BOOTP header and the magic cookie.
    #[error("{0} bytes: too short for a BOOTP header and the DHCP magic cookie")]
    TooShort(usize),
    /// The four bytes after the BOOTP header are not the DHCP cookie.
    #[error("no DHCP magic cookie (plain BOOTP or garbage)")]
    BadMagic,
    /// dhcproto could not parse the message.
    #[error("does not parse: {0}")]
    Parse(#[from] dhcproto::error::DecodeError),
    /// `op` is not BOOTREQUEST (1).
    #[error("op {0} is not BOOTREQUEST")]
    NotRequest(u8),
    /// Not Ethernet (`htype` 1, `hlen` 6).
    #[error("hardware type {htype}, length {hlen}: only Ethernet (1, 6) is served")]
    BadHardware {
        /// The `htype` field.
        htype: u8,
        /// The `hlen` field.
        hlen: u8,
    },
    /// Option 53 is missing.
    #[error("no DHCP message type (option 53)")]
    NoMessageType,
    /// Option 53 names a server-to-client message (OFFER, ACK, NAK, ...).
    #[error("message type {0} is not sent by clients")]
    NotClientType(u8),
    /// The reply could not be encoded.
    #[error("cannot encode the reply: {0}")]
    Encode(#[from] dhcproto::error::EncodeError),
}

/// What a client asks for (option 53 of a BOOTREQUEST).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// DHCPDISCOVER: looking for servers.
    Discover,
    /// DHCPREQUEST: selecting, init-reboot, renewing or rebinding.
    Request,
    /// DHCPDECLINE: the offered address is already in use.
    Decline,
    /// DHCPRELEASE: the client gives its address back.
    Release,
    /// DHCPINFORM: configuration only (not served).
    Inform,
}

/// A decoded client request: the fields the server acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientMessage {
    /// Option 53.
    pub kind: RequestKind,
    /// Transaction id.
    pub xid: u32,
    /// The client's hardware address (`chaddr`).
    pub mac: [u8; 6],
    /// The broadcast flag.
    pub broadcast: bool,
    /// `ciaddr`: set by a client that has (renews) an address.
    pub ciaddr: Ipv4Addr,
    /// `giaddr`: set when a relay agent forwarded the request.
    pub giaddr: Ipv4Addr,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54: the server the client chose (selecting state).
    pub server_id: Option<Ipv4Addr>,
    /// Option 12, as sent.
    pub hostname: Option<String>,
    /// Option 61, as sent.
    pub client_id: Option<Vec<u8>>,
    /// Option 82, echoed in replies.
    relay_info: Option<DhcpOption>,
}

/// The settings every OFFER and ACK carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyOptions {
    /// Server identifier (option 54), `siaddr` and TFTP server (options
    /// 150 and 66): the proxy address.
    pub server_ip: Ipv4Addr,
    /// Option 1.
    pub netmask: Ipv4Addr,
    /// Option 3: the configured default router, else the proxy address.
    pub router: Ipv4Addr,
    /// Option 51, seconds.
    pub lease_secs: u32,
}

/// The three replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// DHCPOFFER.
    Offer,
    /// DHCPACK.
    Ack,
    /// DHCPNAK.
    Nak,
}

/// Decodes a client's BOOTREQUEST. Refuses replies, non-Ethernet hardware,
/// a missing magic cookie or message type, and server message types.
pub fn decode_request(bytes: &[u8]) -> Result<ClientMessage, CodecError> {
    let cookie = bytes
        .get(BOOTP_FIXED_LEN..BOOTP_FIXED_LEN + MAGIC_COOKIE.len())
        .ok_or(CodecError::TooShort(bytes.len()))?;
    if cookie != MAGIC_COOKIE {
        return Err(CodecError::BadMagic);
    }
    let msg = Message::decode(&mut Decoder::new(&served_options_only(bytes)))?;
    if msg.opcode() != Opcode::BootRequest {
        return Err(CodecError::NotRequest(u8::from(msg.opcode())));
    }
    let (htype, hlen) = (u8::from(msg.htype()), msg.hlen());
    let bad_hardware = CodecError::BadHardware { htype, hlen };
    // Checked before `chaddr()`, which slices its 16 bytes by `hlen` and
    // panics beyond them (found by the dhcp_parse fuzz target).
    if msg.htype() != HType::Eth || hlen != 6 {
        return Err(bad_hardware);
    }
    let mac: [u8; 6] = msg
        .chaddr()
        .get(..6)
        .and_then(|m| m.try_into().ok())
        .ok_or(bad_hardware)?;
    let opts = msg.opts();
    let kind = match opts.msg_type().ok_or(CodecError::NoMessageType)? {
        MessageType::Discover => RequestKind::Discover,
        MessageType::Request => RequestKind::Request,
        MessageType::Decline => RequestKind::Decline,
        MessageType::Release => RequestKind::Release,
        MessageType::Inform => RequestKind::Inform,
        other => return Err(CodecError::NotClientType(u8::from(other))),
    };
    let requested_ip = match opts.get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    let server_id = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let hostname = match opts.get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(name)) => Some(name.clone()),
        _ => None,
    };
    let client_id = match opts.get(OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) => Some(id.clone()),
        _ => None,
    };
    Ok(ClientMessage {
        kind,
        xid: msg.xid(),
        mac,
        broadcast: msg.flags().broadcast(),
        ciaddr: msg.ciaddr(),
        giaddr: msg.giaddr(),
        requested_ip,
        server_id,
        hostname,
        client_id,
        relay_info: opts.get(OptionCode::RelayAgentInformation).cloned(),
    })
}

/// The options [`decode_request`] reads: 12, 50, 53, 54, 61, 82.
const READ_OPTIONS: [u8; 6] = [12, 50, 53, 54, 61, 82];

/// `bytes` with only the [`READ_OPTIONS`] left in its options field.
///
/// dhcproto 0.15 asserts lengths of some options it decodes
/// (`debug_assert!`, and `len - 1` on option 151), which panic in debug
/// builds on hostile input; the fuzz target found them. The options are
/// walked here only to skip the others: each step checks that the
/// option's declared length lies within the datagram, and a truncated
/// option ends the walk, as it would end dhcproto's.
fn served_options_only(bytes: &[u8]) -> Vec<u8> {
    let start = BOOTP_FIXED_LEN + MAGIC_COOKIE.len();
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.extend_from_slice(bytes.get(..start).unwrap_or(bytes));
    let mut rest = bytes.get(start..).unwrap_or_default();
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            0 => rest = tail,
            255 => break,
            _ => {
                let Some((&len, tail)) = tail.split_first() else {
                    break;
                };
                let Some(value) = tail.get(..usize::from(len)) else {
                    break;
                };
                if READ_OPTIONS.contains(&code) {
                    out.extend_from_slice(&[code, len]);
                    out.extend_from_slice(value);
                }
                rest = &tail[value.len()..];
            }
        }
    }
    out.push(255);
    out
}

/// `switch-<mac as 12 lower-case hex digits>`, the host name given to a
/// client that sent none.
pub fn default_hostname(mac: &[u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("switch-{hex}")
}

/// Whether `name` is handed out as is: 1 to [`HOSTNAME_MAX`] letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn is_usable_hostname(name: &str) -> bool {
    (1..=HOSTNAME_MAX).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl ClientMessage {
    /// The host name (option 12) for this client: its own if usable, else
    /// [`default_hostname`].
    pub fn reply_hostname(&self) -> String {
        match &self.hostname {
            Some(name) if is_usable_hostname(name) => name.clone(),
            _ => default_hostname(&self.mac),
        }
    }

    /// The MAC as the daemon's logs write it (`001e.f700.0007`).
    pub fn mac_text(&self) -> String {
        crate::mac::Mac(self.mac).to_string()
    }
}

/// A DHCPOFFER of `yiaddr` answering a DISCOVER.
pub fn offer(
    req: &ClientMessage,
    yiaddr: Ipv4Addr,
    opts: &ReplyOptions,
) -> Result<Vec<u8>, CodecError> {
    encode(&granted(req, MessageType::Offer, yiaddr, opts))
}

/// A DHCPACK of `yiaddr` answering a REQUEST.
pub fn ack(
    req: &ClientMessage,
    yiaddr: Ipv4Addr,
    opts: &ReplyOptions,
) -> Result<Vec<u8>, CodecError> {
    encode(&granted(req, MessageType::Ack, yiaddr, opts))
}

/// A DHCPNAK answering a REQUEST, with `reason` as option 56.
pub fn nak(req: &ClientMessage, server_ip: Ipv4Addr, reason: &str) -> Result<Vec<u8>, CodecError> {
    let mut msg = base(req, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    // RFC 2131 4.3.2: a NAK through a relay has the broadcast bit set.
    if !req.giaddr.is_unspecified() {
        msg.set_flags(Flags::default().set_broadcast());
    }
    let o = msg.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Nak));
    o.insert(DhcpOption::ServerIdentifier(server_ip));
    let reason: String = reason.chars().take(200).collect();
    if !reason.is_empty() {
        o.insert(DhcpOption::Message(reason));
    }
    if let Some(relay) = &req.relay_info {
        o.insert(relay.clone());
    }
    encode(&msg)
}

/// Where a reply to `req` goes (RFC 2131 section 4.1): a relay's `giaddr`
/// on port 67; else a NAK, or a client without `ciaddr`, by broadcast to
/// port 68; else unicast to `ciaddr`:68.
pub fn reply_destination(req: &ClientMessage, kind: ReplyKind) -> SocketAddrV4 {
    if !req.giaddr.is_unspecified() {
        SocketAddrV4::new(req.giaddr, SERVER_PORT)
    } else if kind == ReplyKind::Nak || req.ciaddr.is_unspecified() {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
    } else {
        SocketAddrV4::new(req.ciaddr, CLIENT_PORT)
    }
}

/// A BOOTREPLY skeleton for `req`: same xid, flags, giaddr and chaddr.
fn base(req: &ClientMessage, ciaddr: Ipv4Addr, yiaddr: Ipv4Addr) -> Message {
    let mut msg = Message::new_with_id(
        req.xid,
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        req.giaddr,
        &req.mac,
    );
    let flags = if req.broadcast {
        Flags::default().set_broadcast()
    } else {
        Flags::default()
    };
    msg.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_flags(flags);
    msg
}

/// An OFFER or ACK with every option of [`ReplyOptions`].
fn granted(
    req: &ClientMessage,
    kind: MessageType,
    yiaddr: Ipv4Addr,
    opts: &ReplyOptions,
) -> Message {
    // An ACK to a renewing client echoes its ciaddr; an OFFER never has one.
    let ciaddr = if kind == MessageType::Ack {
        req.ciaddr
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut msg = base(req, ciaddr, yiaddr);
    msg.set_siaddr(opts.server_ip);
    let lease = u64::from(opts.lease_secs);
    let o = msg.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(opts.server_ip));
    o.insert(DhcpOption::AddressLeaseTime(opts.lease_secs));
    o.insert(DhcpOption::Renewal((lease / 2) as u32));
    o.insert(DhcpOption::Rebinding((lease * 7 / 8) as u32));
    o.insert(DhcpOption::SubnetMask(opts.netmask));
    o.insert(DhcpOption::Router(vec![opts.router]));
    o.insert(DhcpOption::TFTPServerAddress(opts.server_ip));
    o.insert(DhcpOption::TFTPServerName(
        opts.server_ip.to_string().into_bytes(),
    ));
    o.insert(DhcpOption::Hostname(req.reply_hostname()));
    if let Some(relay) = &req.relay_info {
        o.insert(relay.clone());
    }
    msg
}

fn encode(msg: &Message) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(MIN_REPLY_LEN + 64);
    msg.encode(&mut Encoder::new(&mut out))?;
    if out.len() < MIN_REPLY_LEN {
        // Zero bytes after the End option are padding.
        out.resize(MIN_REPLY_LEN, 0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x00, 0x1e, 0xf7, 0x00, 0x00, 0x07];
    const PROXY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    /// A client message as a Catalyst sends it.
    fn client(kind: MessageType, hostname: Option<&str>) -> Message {
        let mut msg = Message::new_with_id(
            0x1234_5678,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &MAC,
        );
        msg.set_flags(Flags::default().set_broadcast());
        let o = msg.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        o.insert(DhcpOption::ClientIdentifier(
            b"\0cisco-001e.f700.0007-Vl1".to_vec(),
        ));
        if let Some(name) = hostname {
            o.insert(DhcpOption::Hostname(name.to_owned()));
        }
        msg
    }

    fn bytes(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        msg.encode(&mut Encoder::new(&mut out)).unwrap();
        out
    }

    fn settings() -> ReplyOptions {
        ReplyOptions {
            server_ip: PROXY,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            router: Ipv4Addr::new(192, 0, 2, 254),
            lease_secs: 3600,
        }
    }

    fn parse_reply(out: &[u8]) -> Message {
        assert!(out.len() >= MIN_REPLY_LEN, "padded to {MIN_REPLY_LEN}");
        Message::decode(&mut Decoder::new(out)).unwrap()
    }

    fn opt(msg: &Message, code: u8) -> Option<&DhcpOption> {
        msg.opts().get(OptionCode::from(code))
    }

    #[test]
    fn decodes_a_catalyst_discover() {
        let req = decode_request(&bytes(&client(MessageType::Discover, Some("Switch")))).unwrap();
        assert_eq!(req.kind, RequestKind::Discover);
        assert_eq!(req.xid, 0x1234_5678);
        assert_eq!(req.mac, MAC);
        assert!(req.broadcast);
        assert_eq!(req.hostname.as_deref(), Some("Switch"));
        assert_eq!(
            req.client_id.as_deref(),
            Some(&b"\0cisco-001e.f700.0007-Vl1"[..])
        );
        assert_eq!(req.requested_ip, None);
        assert_eq!(req.server_id, None);
        assert_eq!(req.mac_text(), "001e.f700.0007");
    }

    #[test]
    fn decodes_a_selecting_request() {
        let mut msg = client(MessageType::Request, None);
        msg.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(
                192, 0, 2, 100,
            )));
        msg.opts_mut().insert(DhcpOption::ServerIdentifier(PROXY));
        let req = decode_request(&bytes(&msg)).unwrap();
        assert_eq!(req.kind, RequestKind::Request);
        assert_eq!(req.requested_ip, Some(Ipv4Addr::new(192, 0, 2, 100)));
        assert_eq!(req.server_id, Some(PROXY));
    }

    #[test]
    fn offer_carries_every_option() {
        let req = decode_request(&bytes(&client(MessageType::Discover, Some("Switch")))).unwrap();
        let yiaddr = Ipv4Addr::new(192, 0, 2, 100);
        let reply = parse_reply(&offer(&req, yiaddr, &settings()).unwrap());
        assert_eq!(reply.opcode(), Opcode::BootReply);
        assert_eq!(reply.xid(), 0x1234_5678);
        assert_eq!(reply.chaddr(), &MAC);
        assert_eq!(reply.hlen(), 6);
        assert!(reply.flags().broadcast());
        assert_eq!(reply.yiaddr(), yiaddr);
        assert_eq!(reply.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.siaddr(), PROXY);
        assert_eq!(reply.opts().msg_type(), Some(MessageType::Offer));
        assert_eq!(
            opt(&reply, 1),
            Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert_eq!(
            opt(&reply, 3),
            Some(&DhcpOption::Router(vec![Ipv4Addr::new(192, 0, 2, 254)]))
        );
        assert_eq!(opt(&reply, 51), Some(&DhcpOption::AddressLeaseTime(3600)));
        assert_eq!(opt(&reply, 58), Some(&DhcpOption::Renewal(1800)));
        assert_eq!(opt(&reply, 59), Some(&DhcpOption::Rebinding(3150)));
        assert_eq!(opt(&reply, 54), Some(&DhcpOption::ServerIdentifier(PROXY)));
        assert_eq!(
            opt(&reply, 150),
            Some(&DhcpOption::TFTPServerAddress(PROXY))
        );
        assert_eq!(
            opt(&reply, 66),
            Some(&DhcpOption::TFTPServerName(b"192.0.2.1".to_vec()))
        );
        assert_eq!(
            opt(&reply, 12),
            Some(&DhcpOption::Hostname("Switch".into()))
        );
    }

    #[test]
    fn option_150_is_one_four_byte_address_on_the_wire() {
        let req = decode_request(&bytes(&client(MessageType::Discover, None))).unwrap();
        let out = offer(&req, Ipv4Addr::new(192, 0, 2, 100), &settings()).unwrap();
        let options = &out[BOOTP_FIXED_LEN + 4..];
        let found = options.windows(6).any(|w| w == [150, 4, 192, 0, 2, 1]);
        assert!(found, "150 04 c0 00 02 01 in {options:02x?}");
    }

    #[test]
    fn hostname_defaults_to_the_mac() {
        let req = decode_request(&bytes(&client(MessageType::Discover, None))).unwrap();
        let reply = parse_reply(&offer(&req, Ipv4Addr::new(192, 0, 2, 100), &settings()).unwrap());
        assert_eq!(
            opt(&reply, 12),
            Some(&DhcpOption::Hostname("switch-001ef7000007".into()))
        );
        // A name that is not a usable label is replaced too.
        for bad in ["", "-x", "a b", "a\tb", &"x".repeat(64), "é"] {
            let req = decode_request(&bytes(&client(MessageType::Discover, Some(bad)))).unwrap();
            assert_eq!(req.reply_hostname(), "switch-001ef7000007", "{bad:?}");
        }
        assert!(is_usable_hostname("sw-1.lab_a"));
    }

    #[test]
    fn ack_echoes_ciaddr_of_a_renewing_client() {
        let mut msg = client(MessageType::Request, Some("sw1"));
        let ip = Ipv4Addr::new(192, 0, 2, 100);
        msg.set_ciaddr(ip).set_flags(Flags::default());
        let req = decode_request(&bytes(&msg)).unwrap();
        let reply = parse_reply(&ack(&req, ip, &settings()).unwrap());
        assert_eq!(reply.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(reply.ciaddr(), ip);
        assert_eq!(reply.yiaddr(), ip);
        assert!(!reply.flags().broadcast());
        assert_eq!(
            opt(&reply, 150),
            Some(&DhcpOption::TFTPServerAddress(PROXY))
        );
        assert_eq!(opt(&reply, 12), Some(&DhcpOption::Hostname("sw1".into())));
        assert_eq!(
            reply_destination(&req, ReplyKind::Ack),
            SocketAddrV4::new(ip, CLIENT_PORT)
        );
    }

    #[test]
    fn nak_has_only_type_server_and_message() {
        let mut msg = client(MessageType::Request, Some("sw1"));
        msg.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 5)));
        let req = decode_request(&bytes(&msg)).unwrap();
        let reply = parse_reply(&nak(&req, PROXY, "wrong address").unwrap());
        assert_eq!(reply.opts().msg_type(), Some(MessageType::Nak));
        assert_eq!(reply.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.siaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(opt(&reply, 54), Some(&DhcpOption::ServerIdentifier(PROXY)));
        assert_eq!(
            opt(&reply, 56),
            Some(&DhcpOption::Message("wrong address".into()))
        );
        for code in [1, 3, 12, 51, 66, 150] {
            assert_eq!(opt(&reply, code), None, "option {code} in a NAK");
        }
        assert_eq!(
            reply_destination(&req, ReplyKind::Nak),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        );
    }

    #[test]
    fn relayed_requests_are_answered_to_the_relay() {
        let mut msg = client(MessageType::Discover, None);
        msg.set_giaddr(Ipv4Addr::new(10, 1, 1, 1))
            .set_flags(Flags::default());
        let req = decode_request(&bytes(&msg)).unwrap();
        let out = offer(&req, Ipv4Addr::new(192, 0, 2, 100), &settings()).unwrap();
        assert_eq!(parse_reply(&out).giaddr(), Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(
            reply_destination(&req, ReplyKind::Offer),
            SocketAddrV4::new(Ipv4Addr::new(10, 1, 1, 1), SERVER_PORT)
        );
        let nak = parse_reply(&nak(&req, PROXY, "").unwrap());
        assert!(nak.flags().broadcast(), "relayed NAK has the broadcast bit");
        assert_eq!(opt(&nak, 56), None);
        // Without giaddr or ciaddr: broadcast.
        let req = decode_request(&bytes(&client(MessageType::Discover, None))).unwrap();
        assert_eq!(
            reply_destination(&req, ReplyKind::Offer),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        );
    }

    #[test]
    fn refuses_a_bootreply() {
        let mut msg = client(MessageType::Discover, None);
        msg.set_opcode(Opcode::BootReply);
        assert!(matches!(
            decode_request(&bytes(&msg)),
            Err(CodecError::NotRequest(2))
        ));
    }

    #[test]
    fn refuses_wrong_hardware() {
        let mut msg = client(MessageType::Discover, None);
        msg.set_htype(HType::from(6));
        assert!(matches!(
            decode_request(&bytes(&msg)),
            Err(CodecError::BadHardware { htype: 6, hlen: 6 })
        ));
        let mut raw = bytes(&client(MessageType::Discover, None));
        raw[2] = 16;
        assert!(matches!(
            decode_request(&raw),
            Err(CodecError::BadHardware { htype: 1, hlen: 16 })
        ));
        raw[2] = 0;
        assert!(matches!(
            decode_request(&raw),
            Err(CodecError::BadHardware { hlen: 0, .. })
        ));
        // Longer than chaddr's 16 bytes: refused, not a panic in dhcproto.
        for hlen in [17, 100, 255] {
            raw[2] = hlen;
            assert!(matches!(
                decode_request(&raw),
                Err(CodecError::BadHardware { htype: 1, hlen: h }) if h == hlen
            ));
        }
    }

    #[test]
    fn refuses_a_missing_or_server_message_type() {
        let mut msg = client(MessageType::Discover, None);
        msg.opts_mut().remove(OptionCode::MessageType);
        assert!(matches!(
            decode_request(&bytes(&msg)),
            Err(CodecError::NoMessageType)
        ));
        let msg = client(MessageType::Offer, None);
        assert!(matches!(
            decode_request(&bytes(&msg)),
            Err(CodecError::NotClientType(2))
        ));
    }

    #[test]
    fn refuses_truncated_and_cookieless_input() {
        let raw = bytes(&client(MessageType::Discover, None));
        for len in [0, 1, 100, BOOTP_FIXED_LEN, BOOTP_FIXED_LEN + 3] {
            assert!(
                matches!(decode_request(&raw[..len]), Err(CodecError::TooShort(n)) if n == len),
                "{len}"
            );
        }
        // Cookie but no options at all: no message type.
        assert!(matches!(
            decode_request(&raw[..BOOTP_FIXED_LEN + 4]),
            Err(CodecError::NoMessageType)
        ));
        let mut plain_bootp = raw.clone();
        plain_bootp[BOOTP_FIXED_LEN] = 0;
        assert!(matches!(
            decode_request(&plain_bootp),
            Err(CodecError::BadMagic)
        ));
    }

    #[test]
    fn an_option_overrunning_the_datagram_is_not_trusted() {
        let mut raw = bytes(&client(MessageType::Discover, None));
        // Replace the End option with a host name option claiming 200 bytes.
        let end = raw.iter().rposition(|&b| b == 255).unwrap();
        raw.truncate(end);
        raw.extend_from_slice(&[12, 200, b'x', b'y']);
        let req = decode_request(&raw).unwrap();
        assert_eq!(req.hostname, None, "the overrunning option is dropped");
        // Every prefix of a message decodes or is refused, never panics.
        for len in 0..raw.len() {
            let _ = decode_request(&raw[..len]);
        }
    }

    #[test]
    fn options_dhcproto_would_assert_on_are_skipped() {
        let mut raw = bytes(&client(MessageType::Discover, Some("Switch")));
        raw.truncate(BOOTP_FIXED_LEN + 4);
        // Rapid commit with a value, client network interface and FQDN too
        // short, bulk lease query status code and start time with wrong
        // lengths: all before the message type.
        for (code, len) in [(80, 1), (94, 0), (81, 0), (151, 0), (154, 1)] {
            raw.extend_from_slice(&[code, len]);
            raw.extend(std::iter::repeat_n(7, usize::from(len)));
        }
        raw.extend_from_slice(&[53, 1, 1, 12, 2, b's', b'1', 255]);
        let req = decode_request(&raw).unwrap();
        assert_eq!(req.kind, RequestKind::Discover);
        assert_eq!(req.hostname.as_deref(), Some("s1"));
        // An option whose length runs past the datagram ends the walk.
        raw.truncate(raw.len() - 5);
        raw.extend_from_slice(&[12, 9, b's']);
        let req = decode_request(&raw).unwrap();
        assert_eq!(req.hostname, None);
    }

    #[test]
    fn seed_corpus_decodes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dhcp_parse");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut n = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let req = decode_request(&data);
            assert!(req.is_ok(), "{}: {req:?}", path.display());
            let req = req.unwrap();
            let out = offer(&req, Ipv4Addr::new(192, 0, 2, 100), &settings()).unwrap();
            let reply = parse_reply(&out);
            assert_eq!(
                reply.giaddr(),
                req.giaddr,
                "{}: giaddr echoed",
                path.display()
            );
            if !req.giaddr.is_unspecified() {
                assert!(
                    reply
                        .opts()
                        .get(OptionCode::RelayAgentInformation)
                        .is_some(),
                    "{}: option 82 echoed",
                    path.display()
                );
            }
            n += 1;
        }
        assert!(n >= 3, "seed corpus has {n} files");
    }
}
