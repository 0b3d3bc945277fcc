//! One AF_PACKET socket on the switch segment with a PACKET_MMAP receive
//! ring (TPACKET_V2): the kernel writes each frame into a shared slot and
//! flips its status word; reading a burst costs no system call per frame.
//!
//! Why V2 and not V3: a V3 ring hands frames over in blocks that the kernel
//! retires when full or when a timer in jiffies fires (4 ms at HZ=250), so
//! every lock-step exchange (a TFTP block, a TCP handshake) would wait for
//! that timer whenever the segment is quiet. V2 hands each frame over as it
//! arrives, and bursts are still read without system calls.
//!
//! Frames are sent with `send(2)` on the same socket, bypassing the qdisc;
//! the socket ignores its own (and every) outgoing frame.
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};
use tokio::io::unix::AsyncFd;

/// Bytes per ring block (a multiple of the page size).
const BLOCK_SIZE: u32 = 1 << 20;
/// Blocks in the ring: 64 MiB, 32,768 slots of [`FRAME_SIZE`] (a boot
/// storm of tens of thousands of switches must not overrun it).
const BLOCK_COUNT: u32 = 64;
/// Bytes per slot: the slot header, then a 1,514-byte frame.
const FRAME_SIZE: u32 = 2048;
/// Socket send buffer: room for a burst of replies to thousands of switches.
const SNDBUF: i32 = 8 << 20;

/// The segment's packet socket with its mapped receive ring.
pub struct Ring {
    fd: AsyncFd<OwnedFd>,
    map: Mapping,
    slots: usize,
    next: usize,
}

/// The ring's memory, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by one Ring and read only through
// `&mut Ring` (`recv`); nothing reachable from `&Ring` touches it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `Ring::from_fd`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Fails with the OS error of the last call when `rc` is negative.
fn check(rc: libc::c_int, what: &str) -> anyhow::Result<()> {
    if rc < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt(fd, SOL_PACKET or SOL_SOCKET, name, value)`.
fn set<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> anyhow::Result<()> {
    // SAFETY: `value` is a live T and the length says so.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc, what)
}

impl Ring {
    /// Opens the socket on `iface` of the calling thread's namespace (call
    /// it inside `net::in_netns`), promiscuous, with its ring; finish with
    /// [`Ring::from_fd`] in the runtime.
    pub fn open_fd(iface: &str) -> anyhow::Result<OwnedFd> {
        let index =
            proxy::dataplane::ifindex(iface).with_context(|| format!("no interface {iface}"))?;
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: a plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        check(raw, "AF_PACKET socket")?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let v2 = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        set(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &v2,
            "PACKET_VERSION",
        )?;
        let one: libc::c_int = 1;
        set(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "PACKET_IGNORE_OUTGOING",
        )?;
        set(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one,
            "PACKET_QDISC_BYPASS",
        )?;
        set(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &SNDBUF, "SO_SNDBUF")?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_COUNT,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_COUNT,
        };
        set(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        // SAFETY: zeroed sockaddr_ll and packet_mreq are valid; fields set below.
        let (mut sll, mut mreq): (libc::sockaddr_ll, libc::packet_mreq) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = index as i32;
        // SAFETY: bind with a sockaddr_ll of the right length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(rc, "bind AF_PACKET")?;
        mreq.mr_ifindex = index as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        set(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_MR_PROMISC",
        )?;
        Ok(fd)
    }

    /// Maps the ring of a socket from [`Ring::open_fd`] and registers the
    /// socket with the runtime.
    pub fn from_fd(fd: OwnedFd) -> anyhow::Result<Self> {
        let len = (BLOCK_SIZE * BLOCK_COUNT) as usize;
        // SAFETY: maps the ring the socket owns; checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            bail!(
                "mmap of the packet ring: {}",
                std::io::Error::last_os_error()
            );
        }
        let map = Mapping {
            ptr: NonNull::new(map.cast::<u8>()).context("mmap returned null")?,
            len,
        };
        let slots = (BLOCK_SIZE / FRAME_SIZE * BLOCK_COUNT) as usize;
        // SAFETY: the OwnedFd is a valid socket, owned by the AsyncFd from
        // here on and closed only when it drops.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(Self {
            fd,
            map,
            slots,
            next: 0,
        })
    }

    /// Waits until the socket is readable, hands every frame waiting in the
    /// ring to `each`, and returns how many were read (zero clears the
    /// readiness, so the next call waits for the kernel).
    pub async fn recv(&mut self, each: impl FnMut(&[u8])) -> std::io::Result<usize> {
        let Self {
            fd,
            map,
            slots,
            next,
            ..
        } = self;
        let mut guard = fd.readable().await?;
        let n = drain(map.ptr, *slots, next, each);
        if n == 0 {
            guard.clear_ready();
        }
        Ok(n)
    }

    /// Frames the kernel dropped because the ring was full, since the last
    /// call (PACKET_STATISTICS resets on read).
    pub fn take_drops(&self) -> std::io::Result<u32> {
        // SAFETY: zeroed tpacket_stats is valid; the kernel fills at most
        // `len` bytes of it.
        let mut stats: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: valid fd, buffer and length.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stats.tp_drops)
    }

    /// Sends one whole Ethernet frame; a full send buffer waits.
    pub async fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        crate::emulator::net::send_frame(&self.fd, frame).await
    }
}

/// Reads the slots from `*next` on while the kernel has handed them over,
/// gives each untagged frame to `each` (VLAN-tagged frames are skipped: the
/// switches are untagged) and hands the slot back; how many were read.
fn drain(map: NonNull<u8>, slots: usize, next: &mut usize, mut each: impl FnMut(&[u8])) -> usize {
    let mut count = 0;
    loop {
        let slot_ptr = map.as_ptr().wrapping_add(*next * FRAME_SIZE as usize);
        // SAFETY: the slot lies inside the mapping and starts with the
        // 4-byte-aligned tp_status of a tpacket2_hdr, shared with the kernel.
        let status = unsafe { AtomicU32::from_ptr(slot_ptr.cast()) };
        let word = status.load(Ordering::Acquire);
        if word & libc::TP_STATUS_USER == 0 {
            return count;
        }
        // SAFETY: the slot is ours until its status goes back to
        // TP_STATUS_KERNEL; the kernel keeps tp_mac + tp_snaplen inside it
        // (checked anyway).
        unsafe {
            let hdr = slot_ptr.cast::<libc::tpacket2_hdr>().read();
            let (mac, snap) = (usize::from(hdr.tp_mac), hdr.tp_snaplen as usize);
            if word & libc::TP_STATUS_VLAN_VALID == 0 && mac + snap <= FRAME_SIZE as usize {
                each(std::slice::from_raw_parts(slot_ptr.add(mac), snap));
            }
        }
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        *next = (*next + 1) % slots;
        count += 1;
    }
}
