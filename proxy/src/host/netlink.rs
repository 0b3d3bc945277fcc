//! Route netlink (rtnetlink) requests to the kernel of the calling thread's
//! network namespace, one at a time: a request goes out with the next
//! sequence number and the socket is read until the kernel's answer to that
//! number, an acknowledgement, a refusal or the message asked for. The
//! messages are built and read by netlink-packet-route; the daemon's
//! neighbour seeder and the test emulator's links go through here.
use std::time::Duration;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::{TimeVal, TimeValLike as _};

/// How long one read waits: a kernel that never answers does not hang the
/// caller.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// Room for one answer: the kernel sends at most a page per datagram
/// (`NLMSG_GOODSIZE`), a refusal echoes the request.
const ANSWER_MAX: usize = 8192;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or given its receive timeout.
    #[error("netlink socket: {0}")]
    Open(#[source] std::io::Error),
    /// The request could not be sent.
    #[error("netlink send: {0}")]
    Send(#[source] std::io::Error),
    /// The kernel did not answer within [`ANSWER_TIMEOUT`].
    #[error("netlink: no answer from the kernel within {ANSWER_TIMEOUT:?}")]
    NoAnswer,
    /// No answer could be read.
    #[error("netlink recv: {0}")]
    Recv(#[source] std::io::Error),
}

/// The kernel's answer to one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done: an `NLMSG_ERROR` with code 0.
    Ack,
    /// Refused with this (positive) errno.
    Refused(i32),
    /// The message asked for.
    Message(RouteNetlinkMessage),
}

/// A `NETLINK_ROUTE` socket of the network namespace the calling thread
/// was in when it was opened, with its own sequence numbers.
pub struct RouteSocket {
    socket: Socket,
    seq: u32,
}

impl RouteSocket {
    /// Opens the socket, whose reads give up after [`ANSWER_TIMEOUT`].
    pub fn open() -> Result<Self, NetlinkError> {
        let socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Open)?;
        let millis = i64::try_from(ANSWER_TIMEOUT.as_millis()).unwrap_or(i64::MAX);
        setsockopt(
            &socket,
            sockopt::ReceiveTimeout,
            &TimeVal::milliseconds(millis),
        )
        .map_err(|e| NetlinkError::Open(e.into()))?;
        Ok(Self { socket, seq: 0 })
    }

    /// Sends `message` with `NLM_F_REQUEST | flags` and reads until the
    /// kernel answers it. Without `NLM_F_ACK` in `flags` a request that
    /// succeeds without a message gets no answer (and fails with
    /// [`NetlinkError::NoAnswer`]).
    pub fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Answer, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let request = encode(message, flags, self.seq);
        self.socket.send(&request, 0).map_err(NetlinkError::Send)?;
        let mut buf = [0u8; ANSWER_MAX];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0).map_err(|e| {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    NetlinkError::NoAnswer
                } else {
                    NetlinkError::Recv(e)
                }
            })?;
            if let Some(answer) = answer(&buf[..n.min(ANSWER_MAX)], self.seq) {
                return Ok(answer);
            }
        }
    }
}

/// `message` as request number `seq`, with `NLM_F_REQUEST | flags`.
pub(crate) fn encode(message: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    serialize(NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(message),
    ))
}

/// `packet` on the wire, its length and type filled in.
fn serialize(mut packet: NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

/// The answer to request `seq` in `datagram` (the kernel answers a request
/// in a datagram of its own), `None` if `datagram` is something else or
/// does not decode.
pub(crate) fn answer(datagram: &[u8], seq: u32) -> Option<Answer> {
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(datagram).ok()?;
    if message.header.sequence_number != seq {
        return None;
    }
    match message.payload {
        NetlinkPayload::Error(e) => Some(match e.code {
            None => Answer::Ack,
            Some(code) => Answer::Refused(code.get().saturating_neg()),
        }),
        NetlinkPayload::InnerMessage(m) => Some(Answer::Message(m)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_core::{ErrorMessage, NLM_F_ACK};
    use netlink_packet_route::link::LinkMessage;

    use super::*;

    /// An `NLMSG_ERROR` answer to request `seq` with `code` (0: an ACK).
    fn error(seq: u32, code: i32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(code);
        serialize(NetlinkMessage::new(header, NetlinkPayload::Error(e)))
    }

    #[test]
    fn requests_carry_their_number_and_flags() {
        let link = RouteNetlinkMessage::GetLink(LinkMessage::default());
        let bytes = encode(link.clone(), NLM_F_ACK, 9);
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).expect("decodes");
        assert_eq!(back.header.sequence_number, 9);
        assert_eq!(back.header.flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(back.header.length as usize, bytes.len());
        assert_eq!(back.payload, NetlinkPayload::InnerMessage(link));
    }

    #[test]
    fn answers_by_sequence_number() {
        assert_eq!(answer(&error(5, 0), 5), Some(Answer::Ack));
        assert_eq!(answer(&error(5, 0), 6), None, "another request's");
        assert_eq!(
            answer(&error(5, -libc::EEXIST), 5),
            Some(Answer::Refused(libc::EEXIST))
        );
        assert_eq!(answer(&error(5, 0)[..10], 5), None, "truncated");
        assert_eq!(answer(&[], 5), None, "empty");
        let link = RouteNetlinkMessage::NewLink(LinkMessage::default());
        assert_eq!(
            answer(&encode(link.clone(), 0, 5), 5),
            Some(Answer::Message(link))
        );
    }
}
