//! Seeds the kernel's neighbour (ARP) table from the DHCP snoop.
//!
//! The XDP classifier sees each client's DHCP ACK, so the daemon knows the
//! client's MAC and address before it first connects to it. Without a
//! neighbour entry that first connect broadcasts an ARP request, which a
//! segment of thousands of switches copies to every one of them; in a boot
//! storm this is what loses probes. As DHCP snooping switches do, the daemon
//! adds a `STALE` entry (the kernel confirms it with a unicast probe when
//! it is first used). An entry that already exists, static or learned, is
//! left alone.
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

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

/// A netlink route socket bound to one interface's neighbour table.
pub struct NeighbourSeeder {
    fd: OwnedFd,
    ifindex: u32,
    seq: std::sync::atomic::AtomicU32,
}

/// `RTM_NEWNEIGH` of `<linux/rtnetlink.h>`.
const RTM_NEWNEIGH: u16 = 28;
/// `NLMSG_ERROR`: the kernel's acknowledgement.
const NLMSG_ERROR: u16 = 2;
/// `NUD_STALE`: usable at once, confirmed by a unicast probe on first use.
const NUD_STALE: u16 = 0x04;
/// `NDA_DST` and `NDA_LLADDR`.
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Length of the request: nlmsghdr 16 + ndmsg 12 + NDA_DST 8 + NDA_LLADDR 12.
const REQUEST_LEN: usize = 48;

impl NeighbourSeeder {
    /// A seeder for the interface that holds `local` (the proxy address),
    /// in the calling thread's network namespace.
    pub fn for_address(local: Ipv4Addr) -> Result<Self, NeighError> {
        let addrs = crate::config::LocalAddrs::system().map_err(|source| NeighError::Io {
            what: "getifaddrs",
            source,
        })?;
        let name = addrs
            .names()
            .find(|n| addrs.interface(n).is_some_and(|a| a.contains(&local)))
            .ok_or(NeighError::NoInterface(local))?;
        let cname = std::ffi::CString::new(name).map_err(|_| NeighError::NoInterface(local))?;
        // SAFETY: a valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(NeighError::NoInterface(local));
        }
        // SAFETY: plain socket(2); the fd is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(NeighError::Io {
                what: "socket",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: raw is a fresh, valid descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: valid fd and a timeval option value.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as u32,
            )
        };
        if r != 0 {
            return Err(NeighError::Io {
                what: "SO_RCVTIMEO",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Self {
            fd,
            ifindex,
            seq: std::sync::atomic::AtomicU32::new(1),
        })
    }

    /// Adds `ip -> mac` as a `STALE` entry unless one exists. Returns
    /// whether an entry was added. One send and one acknowledgement, a few
    /// microseconds.
    pub fn seed(&self, ip: Ipv4Addr, mac: [u8; 6]) -> Result<bool, NeighError> {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let req = request(self.ifindex, ip, mac, seq);
        // SAFETY: valid fd; the buffer outlives the call.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            return Err(NeighError::Io {
                what: "send",
                source: std::io::Error::last_os_error(),
            });
        }
        let mut buf = [0u8; 256];
        loop {
            // SAFETY: valid fd; the buffer outlives the call.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else {
                return Err(NeighError::Io {
                    what: "recv",
                    source: std::io::Error::last_os_error(),
                });
            };
            match ack_errno(&buf[..n], seq) {
                None => continue,
                Some(0) => return Ok(true),
                Some(e) if e == libc::EEXIST => return Ok(false),
                Some(e) => {
                    return Err(NeighError::Refused {
                        ip,
                        source: std::io::Error::from_raw_os_error(e),
                    });
                }
            }
        }
    }
}

/// The `RTM_NEWNEIGH` request (create only, acknowledged).
fn request(ifindex: u32, ip: Ipv4Addr, mac: [u8; 6], seq: u32) -> [u8; REQUEST_LEN] {
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut m = [0u8; REQUEST_LEN];
    m[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // ndmsg: family, pad, pad, ifindex, state, flags, type.
    m[16] = libc::AF_INET as u8;
    m[20..24].copy_from_slice(&ifindex.to_ne_bytes());
    m[24..26].copy_from_slice(&NUD_STALE.to_ne_bytes());
    m[27] = libc::RTN_UNICAST;
    // NDA_DST: rtattr (len 8, type) + address.
    m[28..30].copy_from_slice(&8u16.to_ne_bytes());
    m[30..32].copy_from_slice(&NDA_DST.to_ne_bytes());
    m[32..36].copy_from_slice(&ip.octets());
    // NDA_LLADDR: rtattr (len 10, type) + MAC, padded to 12.
    m[36..38].copy_from_slice(&10u16.to_ne_bytes());
    m[38..40].copy_from_slice(&NDA_LLADDR.to_ne_bytes());
    m[40..46].copy_from_slice(&mac);
    m
}

/// The (positive) errno of the acknowledgement of `seq` in `reply`, `Some(0)`
/// for success, `None` if `reply` is something else. Bounds-checked.
fn ack_errno(reply: &[u8], seq: u32) -> Option<i32> {
    let word = |at: usize| -> Option<[u8; 4]> { reply.get(at..at + 4)?.try_into().ok() };
    let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if kind != NLMSG_ERROR || u32::from_ne_bytes(word(8)?) != seq {
        return None;
    }
    Some(i32::from_ne_bytes(word(16)?).saturating_neg())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = request(
            7,
            Ipv4Addr::new(198, 18, 0, 10),
            [0, 0x1e, 0xf7, 0, 0, 1],
            9,
        );
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 48);
        assert_eq!(
            u16::from_ne_bytes(m[4..6].try_into().unwrap()),
            RTM_NEWNEIGH
        );
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 9);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(&m[32..36], &[198, 18, 0, 10]);
        assert_eq!(&m[40..46], &[0, 0x1e, 0xf7, 0, 0, 1]);
    }

    #[test]
    fn acknowledgements() {
        let mut ack = [0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(ack_errno(&ack, 5), Some(0));
        assert_eq!(ack_errno(&ack, 6), None);
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(ack_errno(&ack, 5), Some(libc::EEXIST));
        assert_eq!(ack_errno(&ack[..10], 5), None, "truncated");
    }
}
