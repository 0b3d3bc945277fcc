//! The switch's DHCP client, as a Catalyst sends it at first boot (doc
//! section 8): DISCOVER, OFFER, REQUEST, ACK over an AF_PACKET socket,
//! broadcast flag set, option 61 `00 "cisco-<dotted mac>-Vl1"`, option 55
//! `1 66 6 15 44 3 67 12 33 150 43 125`, option 12 host name; each step is
//! resent with exponential backoff and the exchange restarts on NAK.
use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, UnknownOption};
use dhcproto::{Decodable as _, Decoder, Encodable as _, Encoder};
use serde::Serialize;

use super::net::{PacketSocket, udp_payload};
use crate::frames::{CISCO_PARAM_REQUEST, L2, cisco_client_id, ipv4, udp};

/// Retransmission timing of the DHCP client.
#[derive(Clone, Debug)]
pub struct DhcpTiming {
    /// First wait for an answer.
    pub initial: Duration,
    /// Longest wait (the wait doubles up to this).
    pub max: Duration,
    /// Sends of one message before the exchange starts over.
    pub attempts: u32,
}

impl Default for DhcpTiming {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            attempts: 4,
        }
    }
}

/// What the switch learned from its DHCP ACK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The address (`yiaddr`).
    pub ip: Ipv4Addr,
    /// Prefix length from option 1 (24 if absent).
    pub prefix_len: u8,
    /// First router of option 3.
    pub router: Option<Ipv4Addr>,
    /// Option 54.
    pub server: Option<Ipv4Addr>,
    /// Option 150, else option 66 if it holds an IPv4 literal.
    pub tftp_server: Option<Ipv4Addr>,
    /// Option 66 as text.
    pub tftp_server_name: Option<String>,
    /// Option 67.
    pub bootfile: Option<String>,
    /// Option 125, enterprise 9, sub-option 5: the image-list file name.
    pub image_list: Option<String>,
    /// Option 51, seconds.
    pub lease_secs: Option<u32>,
    /// Transaction id of the exchange.
    pub xid: u32,
}

/// Where the client's frames go: an AF_PACKET socket in the switch's
/// namespace, or the switch's port on the packet stack.
pub trait FramePort {
    /// Sends one whole Ethernet frame.
    fn send(&self, frame: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Receives one frame addressed to the client (truncated to `buf`).
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send;
}

impl FramePort for PacketSocket {
    fn send(&self, frame: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        PacketSocket::send(self, frame)
    }

    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send {
        PacketSocket::recv(self, buf)
    }
}

impl FramePort for super::packet::DhcpPort<'_> {
    fn send(&self, frame: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        super::packet::DhcpPort::send(self, frame)
    }

    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send {
        super::packet::DhcpPort::recv(self, buf)
    }
}

/// Runs DISCOVER..ACK until a lease is bound (cancel by dropping the future).
pub async fn acquire(
    sock: &impl FramePort,
    mac: [u8; 6],
    hostname: &str,
    timing: &DhcpTiming,
) -> Lease {
    loop {
        let xid: u32 = rand::random();
        let discover = frame(mac, &request(mac, xid, hostname, MessageType::Discover));
        let Some(offer) = exchange(sock, &discover, mac, xid, timing, |t| {
            t == MessageType::Offer
        })
        .await
        else {
            continue;
        };
        let mut req = request(mac, xid, hostname, MessageType::Request);
        req.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        if let Some(DhcpOption::ServerIdentifier(server)) =
            offer.opts().get(OptionCode::ServerIdentifier)
        {
            req.opts_mut().insert(DhcpOption::ServerIdentifier(*server));
        }
        let request_frame = frame(mac, &req);
        let answer = exchange(sock, &request_frame, mac, xid, timing, |t| {
            matches!(t, MessageType::Ack | MessageType::Nak)
        })
        .await;
        match answer {
            Some(ack) if ack.opts().msg_type() == Some(MessageType::Ack) => {
                return lease(&ack, xid);
            }
            _ => log::debug!(
                "{}: no ACK for xid {xid:#x}, starting over",
                cisco_client_id(&mac)
            ),
        }
    }
}

/// Sends `frame` and waits for a reply to `xid` whose type `want` accepts,
/// resending with backoff; `None` after `timing.attempts` sends.
async fn exchange(
    sock: &impl FramePort,
    frame: &[u8],
    mac: [u8; 6],
    xid: u32,
    timing: &DhcpTiming,
    want: impl Fn(MessageType) -> bool,
) -> Option<Message> {
    let mut wait = timing.initial;
    let mut buf = vec![0u8; 2048];
    for _ in 0..timing.attempts {
        if let Err(e) = sock.send(frame).await {
            // ENOBUFS is expected in boot storms (every broadcast is cloned
            // to every macvlan); the retransmission covers it.
            log::debug!("{}: DHCP send: {e}", cisco_client_id(&mac));
        }
        let jitter = Duration::from_millis(rand::random_range(0..100));
        let deadline = tokio::time::Instant::now() + wait + jitter;
        loop {
            let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    log::warn!("{}: DHCP recv: {e}", cisco_client_id(&mac));
                    break;
                }
                Ok(Ok(n)) => n,
            };
            let Some(reply) = parse_reply(&buf[..n], mac, xid) else {
                continue;
            };
            if reply.opts().msg_type().is_some_and(&want) {
                return Some(reply);
            }
        }
        wait = (wait * 2).min(timing.max);
    }
    None
}

/// A BOOTREPLY to `mac` with transaction `xid`, from a frame to UDP port 68.
fn parse_reply(frame: &[u8], mac: [u8; 6], xid: u32) -> Option<Message> {
    let (_, sport, dport, payload) = udp_payload(frame)?;
    if sport != 67 || dport != 68 {
        return None;
    }
    let msg = Message::decode(&mut Decoder::new(payload)).ok()?;
    let ours = msg.opcode() == Opcode::BootReply
        && msg.xid() == xid
        && msg.chaddr().get(..6) == Some(&mac[..]);
    ours.then_some(msg)
}

/// A client message with the options a Catalyst sends.
fn request(mac: [u8; 6], xid: u32, hostname: &str, kind: MessageType) -> Message {
    let mut msg = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    msg.set_flags(Flags::default().set_broadcast());
    let mut client_id = vec![0u8];
    client_id.extend_from_slice(cisco_client_id(&mac).as_bytes());
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::MaxMessageSize(1152));
    opts.insert(DhcpOption::ClientIdentifier(client_id));
    opts.insert(DhcpOption::Hostname(hostname.to_owned()));
    opts.insert(DhcpOption::ParameterRequestList(
        CISCO_PARAM_REQUEST
            .iter()
            .map(|&c| OptionCode::from(c))
            .collect(),
    ));
    msg
}

/// The broadcast frame 0.0.0.0:68 -> 255.255.255.255:67 carrying `msg`.
fn frame(mac: [u8; 6], msg: &Message) -> Vec<u8> {
    let mut payload = Vec::with_capacity(300);
    // Encoding a message built above cannot fail (all options fit a byte length).
    if let Err(e) = msg.encode(&mut Encoder::new(&mut payload)) {
        log::error!("DHCP encode: {e}");
    }
    ipv4(
        &L2::broadcast(mac),
        [0; 4],
        [255; 4],
        17,
        &[],
        &udp(68, 67, &payload),
    )
}

fn lease(ack: &Message, xid: u32) -> Lease {
    let opts = ack.opts();
    let prefix_len = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => u32::from(*mask).leading_ones() as u8,
        _ => 24,
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(routers)) => routers.first().copied(),
        _ => None,
    };
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let tftp_server_name = match opts.get(OptionCode::TFTPServerName) {
        Some(DhcpOption::TFTPServerName(name)) => Some(text(name)),
        _ => None,
    };
    let tftp_server = match opts.get(OptionCode::TFTPServerAddress) {
        Some(DhcpOption::TFTPServerAddress(ip)) => Some(*ip),
        _ => tftp_server_name.as_deref().and_then(|n| n.parse().ok()),
    };
    let bootfile = match opts.get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(name)) => Some(text(name)),
        _ => None,
    };
    let lease_secs = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(secs)) => Some(*secs),
        _ => None,
    };
    let image_list = match opts.get(OptionCode::from(125)) {
        Some(DhcpOption::Unknown(opt)) => cisco_image_list(opt),
        _ => None,
    };
    Lease {
        ip: ack.yiaddr(),
        prefix_len,
        router,
        server,
        tftp_server,
        tftp_server_name,
        bootfile,
        image_list,
        lease_secs,
        xid,
    }
}

/// Text of an option, without trailing NULs.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .to_owned()
}

/// Option 125 (RFC 3925): enterprise 9, sub-option 5.
fn cisco_image_list(opt: &UnknownOption) -> Option<String> {
    let mut rest = opt.data();
    while let Some((head, tail)) = rest.split_first_chunk::<5>() {
        let [e0, e1, e2, e3, len] = *head;
        let data = tail.get(..usize::from(len))?;
        rest = &tail[usize::from(len)..];
        if u32::from_be_bytes([e0, e1, e2, e3]) != 9 {
            continue;
        }
        let mut subs = data;
        while let Some((&[code, sub_len], sub_tail)) = subs.split_first_chunk::<2>() {
            let value = sub_tail.get(..usize::from(sub_len))?;
            if code == 5 {
                return Some(text(value));
            }
            subs = &sub_tail[usize::from(sub_len)..];
        }
    }
    None
}

/// Option 125 value carrying enterprise 9 sub-option 5 = `name`.
pub fn image_list_option(name: &str) -> DhcpOption {
    let mut data = 9u32.to_be_bytes().to_vec();
    let name = &name.as_bytes()[..name.len().min(250)];
    data.push(name.len() as u8 + 2);
    data.push(5);
    data.push(name.len() as u8);
    data.extend_from_slice(name);
    DhcpOption::Unknown(UnknownOption::new(OptionCode::from(125), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_has_the_catalyst_options() {
        let mac = [0x00, 0x1e, 0xf7, 0, 0, 7];
        let bytes = frame(mac, &request(mac, 0x1234, "Switch", MessageType::Discover));
        let (_, sport, dport, payload) = udp_payload(&bytes).unwrap();
        assert_eq!((sport, dport), (68, 67));
        let msg = Message::decode(&mut Decoder::new(payload)).unwrap();
        assert!(msg.flags().broadcast());
        let Some(DhcpOption::ClientIdentifier(id)) = msg.opts().get(OptionCode::ClientIdentifier)
        else {
            panic!("option 61");
        };
        assert_eq!(id.as_slice(), b"\0cisco-001e.f700.0007-Vl1");
        let Some(DhcpOption::ParameterRequestList(list)) =
            msg.opts().get(OptionCode::ParameterRequestList)
        else {
            panic!("option 55");
        };
        let codes: Vec<u8> = list.iter().map(|&c| u8::from(c)).collect();
        assert_eq!(codes, CISCO_PARAM_REQUEST);
    }

    #[test]
    fn option_125_round_trip() {
        let DhcpOption::Unknown(opt) = image_list_option("c2960-lanbasek9-tar.150-2.SE11.txt")
        else {
            panic!("unknown option");
        };
        assert_eq!(opt.data().len(), 41);
        assert_eq!(
            cisco_image_list(&opt).as_deref(),
            Some("c2960-lanbasek9-tar.150-2.SE11.txt")
        );
    }
}
