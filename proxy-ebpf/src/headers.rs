//! The wire layouts the classifier reads and bounds-checked access to them:
//! network-types' Ethernet, VLAN, IPv4, UDP and TCP headers, plus the two
//! it lacks (the BOOTP fixed header, the SMI header).

use core::mem::{offset_of, size_of};

use aya_ebpf::programs::XdpContext;
use network_types::eth::EthHdr;
use network_types::ip::Ipv4Hdr;
use network_types::tcp::TcpHdr;
use network_types::udp::UdpHdr;

use proxy_common::ClientKey;

use crate::Stop;
use crate::maps::key_at;

/// Pointer to a `T` at `off`, or `Truncated` when the frame is shorter.
///
/// The verifier widens a packet pointer's readable range only from a
/// comparison `(pkt + N) > pkt_end` where the access then goes through that
/// same `pkt`. Left alone, LLVM (which knows `data` fits in 32 bits) folds
/// `p + 1 > end` into `p >= end` and re-derives `p` from its parts after the
/// check; `black_box` makes `p` opaque so neither happens.
#[inline(always)]
pub(crate) fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Result<*const T, Stop> {
    let p = core::hint::black_box(ctx.data() + off);
    if p + size_of::<T>() > ctx.data_end() {
        return Err(Stop::Truncated);
    }
    Ok(p as *const T)
}

/// The byte at `off`, or `Truncated`.
#[inline(always)]
pub(crate) fn u8_at(ctx: &XdpContext, off: usize) -> Result<u8, Stop> {
    // SAFETY: bounds checked by `ptr_at`.
    Ok(unsafe { *ptr_at::<u8>(ctx, off)? })
}

/// The frame's source MAC address, or `Truncated`.
#[inline(always)]
pub(crate) fn src_mac(ctx: &XdpContext) -> Result<[u8; 6], Stop> {
    let eth = head::<EthHdr>(ctx)?;
    // SAFETY: bounds checked by `head`; a byte array needs no alignment.
    Ok(unsafe { (*eth).src_addr })
}

/// The frame's source MAC address as a client map key, or `Truncated`.
#[inline(always)]
pub(crate) fn src_key(ctx: &XdpContext) -> Result<ClientKey, Stop> {
    let eth = head::<EthHdr>(ctx)?;
    // SAFETY: bounds checked by `head`.
    Ok(unsafe { key_at(&raw const (*eth).src_addr) })
}

/// Pointer to a `T` at the start of the frame, or `Truncated` when the
/// frame is shorter: [`ptr_at`] for offset 0, checked on `data` itself.
/// At offset 0 LLVM has nothing to re-derive, so the check needs no
/// `black_box`, and the store and load it costs are spared; a caller may
/// read any field of `T` at its constant offset from the one check.
#[inline(always)]
pub(crate) fn head<T>(ctx: &XdpContext) -> Result<*const T, Stop> {
    let data = ctx.data();
    if data + size_of::<T>() > ctx.data_end() {
        return Err(Stop::Truncated);
    }
    Ok(data as *const T)
}

/// Where the L4 header of an untagged IPv4 frame without options starts:
/// the common frame, which the fast paths read at constant offsets.
pub(crate) const PLAIN_L4: usize = size_of::<EthHdr>() + size_of::<Ipv4Hdr>();
/// Bytes of that frame up to its L4 ports.
pub(crate) const PLAIN_LEN: usize = PLAIN_L4 + 4;

/// The first [`PLAIN_LEN`] bytes of a frame, under one bounds check: the
/// common frame's headers up to its L4 ports, read at constant offsets.
/// Each read is one load (see `build.rs`) of the field as it lies on the
/// wire, and its offset is checked against `PLAIN_LEN` when it compiles.
///
/// Read a field where it is needed: from a reference LLVM would load the
/// whole prefix up front, before the checks that send most frames away.
#[derive(Clone, Copy)]
pub(crate) struct Plain(*const u8);

impl Plain {
    /// The frame's prefix, or `None` when the frame is shorter. Checked on
    /// `data` itself: at offset 0, LLVM has nothing to re-derive (what
    /// [`ptr_at`]'s `black_box` is there for).
    #[inline(always)]
    pub(crate) fn of(ctx: &XdpContext) -> Option<Self> {
        let data = ctx.data();
        if data + PLAIN_LEN > ctx.data_end() {
            return None;
        }
        Some(Plain(data as *const u8))
    }

    /// The byte at `I`.
    #[inline(always)]
    pub(crate) fn at<const I: usize>(self) -> u8 {
        const { assert!(I < PLAIN_LEN) };
        // SAFETY: `I < PLAIN_LEN`, within the frame by `of`.
        unsafe { self.0.add(I).read() }
    }

    /// The two bytes at `I`, as they lie on the wire.
    #[inline(always)]
    pub(crate) fn wire16<const I: usize>(self) -> u16 {
        const { assert!(I + 2 <= PLAIN_LEN) };
        // SAFETY: `I + 2 <= PLAIN_LEN`, within the frame by `of`.
        unsafe { self.0.add(I).cast::<u16>().read_unaligned() }
    }

    /// The four bytes at `I`, as they lie on the wire.
    #[inline(always)]
    pub(crate) fn wire32<const I: usize>(self) -> u32 {
        const { assert!(I + 4 <= PLAIN_LEN) };
        // SAFETY: `I + 4 <= PLAIN_LEN`, within the frame by `of`.
        unsafe { self.0.add(I).cast::<u32>().read_unaligned() }
    }

    /// The big-endian `u16` at `I`.
    #[inline(always)]
    pub(crate) fn be16<const I: usize>(self) -> u16 {
        u16::from_be(self.wire16::<I>())
    }

    /// Whether the frame is IPv4 with a 20-byte header: its EtherType and
    /// the IPv4 version and header length (bytes 12 to 14), one word.
    #[inline(always)]
    pub(crate) fn is_ipv4_plain(self) -> bool {
        let ipv4_plain = u32::from_ne_bytes([0x08, 0x00, 0x45, 0]);
        self.wire32::<12>() & u32::from_ne_bytes([0xff, 0xff, 0xff, 0]) == ipv4_plain
    }

    /// Whether the IPv4 packet is a later fragment (offset bits of bytes
    /// 20 and 21), which has no L4 header.
    #[inline(always)]
    pub(crate) fn is_later_fragment(self) -> bool {
        self.wire16::<20>() & u16::from_ne_bytes([0x1f, 0xff]) != 0
    }

    /// The IPv4 protocol.
    #[inline(always)]
    pub(crate) fn proto(self) -> u8 {
        self.at::<23>()
    }

    /// The source MAC, as a client map key.
    #[inline(always)]
    pub(crate) fn src_key(self) -> ClientKey {
        const { assert!(offset_of!(EthHdr, src_addr) + 6 <= PLAIN_LEN) };
        // SAFETY: the source MAC is within `PLAIN_LEN`.
        unsafe { key_at(self.0.add(offset_of!(EthHdr, src_addr)).cast()) }
    }
}

/// The EtherType of `eth` as it is on the wire (compare it with
/// `network_types::eth::EtherType as u16`, which is in network order too).
///
/// # Safety
/// `eth` must come from `ptr_at`.
#[inline(always)]
pub(crate) unsafe fn ether_type(eth: *const EthHdr) -> u16 {
    // SAFETY: in bounds by the caller; the read does not assume the `u16`'s
    // alignment, which the frame does not promise.
    unsafe { core::ptr::addr_of!((*eth).ether_type).read_unaligned() }
}

/// The big-endian `u16` at `off`, or `Truncated`.
#[inline(always)]
pub(crate) fn be16_at(ctx: &XdpContext, off: usize) -> Result<u16, Stop> {
    // SAFETY: bounds checked by `ptr_at`.
    Ok(u16::from_be_bytes(unsafe { *ptr_at::<[u8; 2]>(ctx, off)? }))
}

/// Where a TCP or UDP header keeps its source port.
pub(crate) const L4_SRC_PORT: usize = offset_of!(UdpHdr, src);
/// Where a TCP or UDP header keeps its destination port.
pub(crate) const L4_DST_PORT: usize = offset_of!(UdpHdr, dst);
const _: () = assert!(L4_SRC_PORT == offset_of!(TcpHdr, source));
const _: () = assert!(L4_DST_PORT == offset_of!(TcpHdr, dest));

/// The BOOTP fixed header (RFC 951) and the DHCP magic cookie (RFC 2131):
/// everything before the options. Fields the classifier does not read
/// start with `_`.
#[repr(C)]
pub(crate) struct Bootp {
    /// 1 request, 2 reply.
    pub op: u8,
    /// Hardware type (1 Ethernet).
    pub htype: u8,
    /// Hardware address length (6 for Ethernet).
    pub hlen: u8,
    /// Relay hops.
    pub _hops: u8,
    /// Transaction id, big-endian.
    pub xid: [u8; 4],
    /// Seconds since the client began, and flags.
    pub _secs_flags: [u8; 4],
    /// Client's own address.
    pub _ciaddr: [u8; 4],
    /// The address the server gives the client.
    pub yiaddr: [u8; 4],
    /// Next server and relay agent addresses.
    pub _siaddr_giaddr: [u8; 8],
    /// Client hardware address (Ethernet: the first 6 of 16 bytes).
    pub chaddr: [u8; 6],
    /// The rest of `chaddr`.
    pub _chaddr_pad: [u8; 10],
    /// Server host name and boot file name.
    pub _sname_file: [u8; 192],
    /// The DHCP magic cookie, big-endian.
    pub cookie: [u8; 4],
}

const _: () = assert!(size_of::<Bootp>() == 240);
const _: () = assert!(offset_of!(Bootp, xid) == 4);
const _: () = assert!(offset_of!(Bootp, yiaddr) == 16);
const _: () = assert!(offset_of!(Bootp, chaddr) == 28);
const _: () = assert!(offset_of!(Bootp, cookie) == 236);

/// The 16-byte header in front of every Smart Install message: four
/// big-endian words (`w0`..`w3`).
#[repr(C)]
pub(crate) struct SmiHdr {
    /// `w0`: sender role (1..=4).
    pub from: [u8; 4],
    /// `w1`: protocol version (0 or 1).
    pub version: [u8; 4],
    /// `w2`: message type.
    pub _msg_type: [u8; 4],
    /// `w3`: payload bytes after the header, as the sender claims.
    pub payload_len: [u8; 4],
}

const _: () = assert!(size_of::<SmiHdr>() == 16);
const _: () = assert!(offset_of!(SmiHdr, payload_len) == 12);
