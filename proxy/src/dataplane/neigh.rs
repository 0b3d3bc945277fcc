//! Seeds the kernel's neighbour (ARP) table from the DHCP snoop.
//!
//! The XDP classifier sees each client's DHCP ACK, so the daemon knows the
//! client's MAC and address before it first connects to it. Without a
//! neighbour entry that first connect broadcasts an ARP request, which a
//! segment of thousands of switches copies to every one of them; in a boot
//! storm this is what loses probes, and what a whole segment then pays for
//! each retry. As DHCP snooping switches do, the daemon adds a `STALE` entry
//! (the kernel confirms it with a unicast probe when it is first used), and
//! puts it back to `STALE` before each attempt to reach the client unless
//! the kernel holds it confirmed (`REACHABLE`) or static: an unconfirmed
//! entry (`DELAY`, `PROBE`) would otherwise turn `FAILED` after a few
//! seconds of unicast probes, and the next packet to it (a retransmitted
//! SYN) would broadcast. The binding is known, so there is never a reason
//! to broadcast for it.
use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourHeader, NeighbourMessage,
    NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::host::netlink::{Answer, NetlinkError, RouteSocket};

/// Why a neighbour entry could not be added.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// No interface holds the given address.
    #[error("no interface holds {0}")]
    NoInterface(Ipv4Addr),
    /// The interfaces could not be listed.
    #[error("{what}: {source}")]
    Io {
        /// The call.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The netlink socket could not be opened, or the request sent or
    /// answered.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The kernel refused the entry.
    #[error("kernel refused neighbour {ip}: {source}")]
    Refused {
        /// The client address.
        ip: Ipv4Addr,
        /// The kernel's reason.
        source: std::io::Error,
    },
    /// The kernel answered the query for the entry with another kind of
    /// message than a neighbour entry.
    #[error("kernel answered the query for neighbour {0} with another message")]
    Unexpected(Ipv4Addr),
}

/// What [`NeighbourSeeder::seed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seeded {
    /// There was no entry; a `STALE` one was added.
    Added,
    /// The entry was unconfirmed or given up on; it is `STALE` again.
    Refreshed,
    /// The entry was usable (or static) and is left alone.
    Kept,
}

/// A netlink route socket bound to one interface's neighbour table.
pub struct NeighbourSeeder {
    /// One request and its answer at a time.
    socket: std::sync::Mutex<RouteSocket>,
    ifindex: u32,
}

impl NeighbourSeeder {
    /// A seeder for the interface that holds `local` (the proxy address),
    /// in the calling thread's network namespace.
    pub fn for_address(local: Ipv4Addr) -> Result<Self, NeighError> {
        let addrs = crate::host::LocalAddrs::system().map_err(|source| NeighError::Io {
            what: "getifaddrs",
            source,
        })?;
        let name = addrs
            .names()
            .find(|n| addrs.interface(n).is_some_and(|a| a.contains(&local)))
            .ok_or(NeighError::NoInterface(local))?;
        let ifindex = super::ifindex(name).ok_or(NeighError::NoInterface(local))?;
        Ok(Self {
            socket: std::sync::Mutex::new(RouteSocket::open()?),
            ifindex,
        })
    }

    /// Makes sure the kernel will not broadcast for `ip` in the next few
    /// seconds: adds `ip -> mac` as a `STALE` entry if there is none, and
    /// sets it back to `STALE` unless it is `STALE` already, `REACHABLE` or
    /// static. One to three netlink round trips of a few microseconds each.
    pub fn seed(&self, ip: Ipv4Addr, mac: [u8; 6]) -> Result<Seeded, NeighError> {
        let mut socket = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let create = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
        match socket.request(stale_entry(self.ifindex, ip, mac), create)? {
            Answer::Ack => return Ok(Seeded::Added),
            Answer::Refused(e) if e == libc::EEXIST => {}
            Answer::Refused(e) => return Err(refused(ip, e)),
            Answer::Message(_) => {}
        }
        let state = match socket.request(query(self.ifindex, ip), 0)? {
            Answer::Message(RouteNetlinkMessage::NewNeighbour(entry)) => entry.header.state,
            Answer::Message(_) => return Err(NeighError::Unexpected(ip)),
            // Removed meanwhile (garbage collection): as good as failed.
            Answer::Refused(e) if e == libc::ENOENT => NeighbourState::Failed,
            Answer::Refused(e) => return Err(refused(ip, e)),
            Answer::Ack => return Ok(Seeded::Kept),
        };
        if left_alone(state) {
            return Ok(Seeded::Kept);
        }
        let replace = NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
        match socket.request(stale_entry(self.ifindex, ip, mac), replace)? {
            Answer::Ack | Answer::Message(_) => Ok(Seeded::Refreshed),
            Answer::Refused(e) => Err(refused(ip, e)),
        }
    }
}

fn refused(ip: Ipv4Addr, errno: i32) -> NeighError {
    NeighError::Refused {
        ip,
        source: std::io::Error::from_raw_os_error(errno),
    }
}

/// Whether an entry in `state` stays as it is: `STALE` already (usable at
/// once, confirmed by a unicast probe on first use), confirmed
/// (`REACHABLE`) or static (`NOARP`, `PERMANENT`).
fn left_alone(state: NeighbourState) -> bool {
    let settled = u16::from(NeighbourState::Reachable)
        | u16::from(NeighbourState::Noarp)
        | u16::from(NeighbourState::Permanent);
    state == NeighbourState::Stale || u16::from(state) & settled != 0
}

/// `RTM_NEWNEIGH` of `ip -> mac` on interface `ifindex`, `STALE`.
fn stale_entry(ifindex: u32, ip: Ipv4Addr, mac: [u8; 6]) -> RouteNetlinkMessage {
    let mut entry = NeighbourMessage::default();
    entry.header = NeighbourHeader {
        family: AddressFamily::Inet,
        ifindex,
        state: NeighbourState::Stale,
        flags: NeighbourFlags::empty(),
        kind: RouteType::Unicast,
    };
    entry.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)),
        NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
    ];
    RouteNetlinkMessage::NewNeighbour(entry)
}

/// `RTM_GETNEIGH` for the one entry of `ip` on interface `ifindex` (state
/// and type must be zero, or the kernel refuses it).
fn query(ifindex: u32, ip: Ipv4Addr) -> RouteNetlinkMessage {
    let mut entry = NeighbourMessage::default();
    entry.header = NeighbourHeader {
        family: AddressFamily::Inet,
        ifindex,
        ..NeighbourHeader::default()
    };
    entry.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Inet(ip))];
    RouteNetlinkMessage::GetNeighbour(entry)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};

    use super::*;
    use crate::host::netlink::{answer, encode};

    const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const MAC: [u8; 6] = [0, 0x1e, 0xf7, 0, 0, 1];

    /// `message` on the wire as request `seq`, decoded back by the library.
    fn decoded(message: RouteNetlinkMessage, flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
        let bytes = encode(message, flags, 5);
        NetlinkMessage::deserialize(&bytes).expect("the request decodes")
    }

    #[test]
    fn requests_decode_to_what_was_meant() {
        let flags = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
        let sent = decoded(stale_entry(7, IP, MAC), flags);
        assert_eq!(sent.header.flags, flags | NLM_F_REQUEST);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(entry)) = sent.payload
        else {
            panic!("not RTM_NEWNEIGH: {:?}", sent.payload);
        };
        assert_eq!(entry.header.family, AddressFamily::Inet);
        assert_eq!(entry.header.ifindex, 7);
        assert_eq!(entry.header.state, NeighbourState::Stale);
        assert_eq!(entry.header.kind, RouteType::Unicast);
        assert_eq!(
            entry.attributes,
            [
                NeighbourAttribute::Destination(NeighbourAddress::Inet(IP)),
                NeighbourAttribute::LinkLayerAddress(MAC.to_vec()),
            ]
        );

        let asked = decoded(query(7, IP), 0);
        assert_eq!(asked.header.flags, NLM_F_REQUEST);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetNeighbour(entry)) = asked.payload
        else {
            panic!("not RTM_GETNEIGH: {:?}", asked.payload);
        };
        assert_eq!(entry.header.ifindex, 7);
        assert_eq!(entry.header.state, NeighbourState::None, "must be zero");
        assert_eq!(entry.header.kind, RouteType::Unspec, "must be zero");
        assert_eq!(
            entry.attributes,
            [NeighbourAttribute::Destination(NeighbourAddress::Inet(IP))]
        );
    }

    #[test]
    fn entry_answers_give_their_state() {
        let mut failed = NeighbourMessage::default();
        failed.header.state = NeighbourState::Failed;
        let failed = RouteNetlinkMessage::NewNeighbour(failed);
        let bytes = encode(failed.clone(), 0, 5);
        assert_eq!(answer(&bytes, 5), Some(Answer::Message(failed)));
        assert_eq!(answer(&bytes, 6), None, "another request's");
        assert_eq!(answer(&bytes[..25], 5), None, "truncated");
    }

    #[test]
    fn confirmed_and_static_entries_are_left_alone() {
        use NeighbourState as S;
        for state in [S::Stale, S::Reachable, S::Noarp, S::Permanent] {
            assert!(left_alone(state), "{state:?}");
        }
        for state in [S::Delay, S::Probe, S::Failed, S::Incomplete, S::None] {
            assert!(!left_alone(state), "{state:?}");
        }
    }
}
