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
use std::os::fd::{AsRawFd as _, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, setsockopt, socket,
    sockopt,
};
use nix::sys::time::TimeVal;

/// Why a neighbour entry could not be added.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// No interface holds the given address.
    #[error("no interface holds {0}")]
    NoInterface(Ipv4Addr),
    /// A netlink socket call failed.
    #[error("netlink {what}: {source}")]
    Io {
        /// The call.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The kernel refused the entry.
    #[error("kernel refused neighbour {ip}: {source}")]
    Refused {
        /// The client address.
        ip: Ipv4Addr,
        /// The kernel's reason.
        source: std::io::Error,
    },
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
    fd: std::sync::Mutex<OwnedFd>,
    ifindex: u32,
    seq: std::sync::atomic::AtomicU32,
}

/// `RTM_NEWNEIGH` and `RTM_GETNEIGH` of `<linux/rtnetlink.h>`.
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
/// `NLMSG_ERROR`: the kernel's acknowledgement.
const NLMSG_ERROR: u16 = 2;
/// `NUD_STALE`: usable at once, confirmed by a unicast probe on first use.
const NUD_STALE: u16 = 0x04;
/// `NUD_REACHABLE`, `NUD_NOARP`, `NUD_PERMANENT`: confirmed or static,
/// left alone.
const NUD_REACHABLE: u16 = 0x02;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
/// `NUD_FAILED`.
const NUD_FAILED: u16 = 0x20;
/// `NDA_DST` and `NDA_LLADDR`.
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Length of the request: nlmsghdr 16 + ndmsg 12 + NDA_DST 8 + NDA_LLADDR 12.
const REQUEST_LEN: usize = 48;

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
        let fd = route_socket().map_err(|source| NeighError::Io {
            what: "netlink socket",
            source,
        })?;
        Ok(Self {
            fd: std::sync::Mutex::new(fd),
            ifindex,
            seq: std::sync::atomic::AtomicU32::new(1),
        })
    }

    /// Makes sure the kernel will not broadcast for `ip` in the next few
    /// seconds: adds `ip -> mac` as a `STALE` entry if there is none, and
    /// sets it back to `STALE` unless it is `STALE` already, `REACHABLE` or
    /// static. One to three netlink round trips of a few microseconds each.
    pub fn seed(&self, ip: Ipv4Addr, mac: [u8; 6]) -> Result<Seeded, NeighError> {
        let fd = self
            .fd
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let create = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        match self.call(&fd, &set_request(self.ifindex, ip, mac, create))? {
            Reply::Ack => return Ok(Seeded::Added),
            Reply::Errno(e) if e == libc::EEXIST => {}
            Reply::Errno(e) => return Err(refused(ip, e)),
            Reply::State(_) => {}
        }
        let state = match self.call(&fd, &get_request(self.ifindex, ip))? {
            Reply::State(state) => state,
            // Removed meanwhile (garbage collection): as good as failed.
            Reply::Errno(e) if e == libc::ENOENT => NUD_FAILED,
            Reply::Errno(e) => return Err(refused(ip, e)),
            Reply::Ack => return Ok(Seeded::Kept),
        };
        if state == NUD_STALE || state & (NUD_REACHABLE | NUD_NOARP | NUD_PERMANENT) != 0 {
            return Ok(Seeded::Kept);
        }
        let replace = (libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
        match self.call(&fd, &set_request(self.ifindex, ip, mac, replace))? {
            Reply::Ack | Reply::State(_) => Ok(Seeded::Refreshed),
            Reply::Errno(e) => Err(refused(ip, e)),
        }
    }

    /// Sends one request and reads until its answer.
    fn call(&self, fd: &OwnedFd, req: &[u8]) -> Result<Reply, NeighError> {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = req.to_vec();
        req[8..12].copy_from_slice(&seq.to_ne_bytes());
        send(fd.as_raw_fd(), &req, MsgFlags::empty()).map_err(|e| NeighError::Io {
            what: "send",
            source: e.into(),
        })?;
        let mut buf = [0u8; 512];
        loop {
            let n =
                recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| NeighError::Io {
                    what: "recv",
                    source: e.into(),
                })?;
            if let Some(reply) = parse_reply(&buf[..n], seq) {
                return Ok(reply);
            }
        }
    }
}

fn refused(ip: Ipv4Addr, errno: i32) -> NeighError {
    NeighError::Refused {
        ip,
        source: std::io::Error::from_raw_os_error(errno),
    }
}

/// A `NETLINK_ROUTE` socket in the calling thread's network namespace,
/// whose reads give up after 1 s (a kernel that never answers does not
/// hang the caller).
pub fn route_socket() -> std::io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(1, 0))?;
    Ok(fd)
}

/// The kernel's answer to one request.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// Done.
    Ack,
    /// Refused with this (positive) errno.
    Errno(i32),
    /// The entry asked for, in this `NUD_*` state.
    State(u16),
}

/// An acknowledged `RTM_NEWNEIGH` request setting `ip -> mac`, `STALE`,
/// with `flags` (`NLM_F_CREATE` and `NLM_F_EXCL` or `NLM_F_REPLACE`);
/// the sequence number is filled in by the caller.
fn set_request(ifindex: u32, ip: Ipv4Addr, mac: [u8; 6], flags: u16) -> [u8; REQUEST_LEN] {
    let mut m = [0u8; REQUEST_LEN];
    header(
        &mut m,
        RTM_NEWNEIGH,
        flags | libc::NLM_F_ACK as u16,
        ifindex,
        ip,
    );
    m[24..26].copy_from_slice(&NUD_STALE.to_ne_bytes());
    m[27] = libc::RTN_UNICAST;
    // NDA_LLADDR: rtattr (len 10, type) + MAC, padded to 12.
    m[36..38].copy_from_slice(&10u16.to_ne_bytes());
    m[38..40].copy_from_slice(&NDA_LLADDR.to_ne_bytes());
    m[40..46].copy_from_slice(&mac);
    m
}

/// An `RTM_GETNEIGH` request for the one entry of `ip` (state and type
/// must be zero, or the kernel refuses it).
fn get_request(ifindex: u32, ip: Ipv4Addr) -> [u8; 36] {
    let mut m = [0u8; 36];
    header(&mut m, RTM_GETNEIGH, 0, ifindex, ip);
    m
}

/// nlmsghdr (length, type, `NLM_F_REQUEST | flags`), ndmsg and `NDA_DST`.
fn header(m: &mut [u8], kind: u16, flags: u16, ifindex: u32, ip: Ipv4Addr) {
    let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
    // ndmsg: family, pad, pad, ifindex, state, flags, type.
    m[16] = libc::AF_INET as u8;
    m[20..24].copy_from_slice(&ifindex.to_ne_bytes());
    // NDA_DST: rtattr (len 8, type) + address.
    m[28..30].copy_from_slice(&8u16.to_ne_bytes());
    m[30..32].copy_from_slice(&NDA_DST.to_ne_bytes());
    m[32..36].copy_from_slice(&ip.octets());
}

/// The answer to request `seq` in `reply`, `None` if `reply` is something
/// else. Bounds-checked.
fn parse_reply(reply: &[u8], seq: u32) -> Option<Reply> {
    let word = |at: usize| -> Option<[u8; 4]> { reply.get(at..at + 4)?.try_into().ok() };
    let half = |at: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(reply.get(at..at + 2)?.try_into().ok()?))
    };
    if u32::from_ne_bytes(word(8)?) != seq {
        return None;
    }
    match half(4)? {
        NLMSG_ERROR => match i32::from_ne_bytes(word(16)?).saturating_neg() {
            0 => Some(Reply::Ack),
            e => Some(Reply::Errno(e)),
        },
        RTM_NEWNEIGH => Some(Reply::State(half(24)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        let m = set_request(
            7,
            Ipv4Addr::new(198, 18, 0, 10),
            [0, 0x1e, 0xf7, 0, 0, 1],
            flags,
        );
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 48);
        assert_eq!(
            u16::from_ne_bytes(m[4..6].try_into().unwrap()),
            RTM_NEWNEIGH
        );
        let sent = u16::from_ne_bytes(m[6..8].try_into().unwrap());
        assert_eq!(sent, flags | (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(u16::from_ne_bytes(m[24..26].try_into().unwrap()), NUD_STALE);
        assert_eq!(&m[32..36], &[198, 18, 0, 10]);
        assert_eq!(&m[40..46], &[0, 0x1e, 0xf7, 0, 0, 1]);
        let g = get_request(7, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(u32::from_ne_bytes(g[0..4].try_into().unwrap()), 36);
        assert_eq!(
            u16::from_ne_bytes(g[4..6].try_into().unwrap()),
            RTM_GETNEIGH
        );
        assert_eq!(&g[32..36], &[198, 18, 0, 10]);
    }

    #[test]
    fn replies() {
        let mut ack = [0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(parse_reply(&ack, 5), Some(Reply::Ack));
        assert_eq!(parse_reply(&ack, 6), None, "another request's");
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(parse_reply(&ack, 5), Some(Reply::Errno(libc::EEXIST)));
        assert_eq!(parse_reply(&ack[..10], 5), None, "truncated");
        let mut entry = [0u8; 40];
        entry[4..6].copy_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
        entry[8..12].copy_from_slice(&5u32.to_ne_bytes());
        entry[24..26].copy_from_slice(&NUD_FAILED.to_ne_bytes());
        assert_eq!(parse_reply(&entry, 5), Some(Reply::State(NUD_FAILED)));
        assert_eq!(parse_reply(&entry[..25], 5), None, "truncated");
    }
}
