//! XDP classifier for the switch-facing ports of smi-pnp-proxy.
//!
//! For every received frame it parses Ethernet, up to two VLAN tags (802.1Q,
//! 802.1ad/QinQ), IPv4 (with options) and then either
//!
//! - DHCP (UDP 68 -> 67 requests, 67 -> 68 replies): learns clients into the
//!   `CLIENTS` map keyed by `chaddr`, the address from the ACK, and tells user
//!   space about new clients and learned addresses through `EVENTS`;
//! - Smart Install (TCP to or from port 4786): admits or drops the frame by
//!   the client's state, its VLAN and the SMI header's length word.
//!
//! Everything else passes untouched and uncounted. Frames the classifier
//! cannot parse pass too (fail open) and are counted. Nothing is copied to
//! user space but the events, and known clients cause no events.
//!
//! The common frame (untagged IPv4 without options) takes a fast path that
//! reads it at constant offsets under one bounds check; every other frame,
//! and what the fast path leaves, takes the general parse.
//!
//! This file owns the entry points and both parses up to the L4 ports; the
//! protocols are in `dhcp` and `smi`, the wire layouts in `headers`, the
//! maps in `maps`, the aya-log lines of rare events in `log`.
#![no_std]
#![no_main]

mod dhcp;
mod headers;
mod log;
mod maps;
mod smi;

use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{DevMap, LruHashMap};
use aya_ebpf::programs::XdpContext;
use network_types::eth::{EthHdr, EtherType};
use network_types::ip::{IpProto, Ipv4Hdr};
use network_types::udp::UdpHdr;
use network_types::vlan::VlanHdr;
use proxy_common::{ClientEntry, ClientKey, SMI_PORT, TELNET_PORT, TFTP_PORT, counter, state};

use headers::{L4_DST_PORT, L4_SRC_PORT, Plain, be16_at, ether_type, ptr_at, src_key};
use maps::{Policy, add, admission, count, count_pass, count_smi, now_ns};

const BOOTPS: u16 = 67;
const BOOTPC: u16 = 68;

/// Why classification stopped early; every variant passes the frame.
enum Stop {
    /// The frame ended inside a header we parse.
    Truncated,
    /// A DHCP frame whose options are malformed.
    DhcpMalformed,
    /// The option walk's scratch map is not readable (should not happen).
    NoScratch,
}

/// The classifier: parses the frame and returns its verdict.
#[xdp]
pub fn smi_classifier(ctx: XdpContext) -> u32 {
    match classify(&ctx) {
        Ok(action) => action,
        Err(Stop::Truncated) => count_pass(counter::TRUNCATED_PASS),
        Err(Stop::DhcpMalformed) => {
            log::dhcp_malformed(ctx.ctx);
            count_pass(counter::DHCP_MALFORMED_PASS)
        }
        Err(Stop::NoScratch) => XDP_PASS,
    }
}

/// Where the L2 headers put the client.
struct L2 {
    /// The source MAC, as a client map key.
    src: ClientKey,
    vlan: u16,
    svlan: u16,
    /// Offset of the IPv4 header.
    l3: usize,
    /// Bytes in the frame.
    len: u64,
}

impl L2 {
    /// An untagged frame's client, whose source MAC is `src`: on the
    /// policy's untagged VLAN.
    #[inline(always)]
    fn untagged(ctx: &XdpContext, src: ClientKey) -> Self {
        L2 {
            src,
            vlan: Policy.untagged_vlan(),
            svlan: 0,
            l3: size_of::<EthHdr>(),
            len: (ctx.data_end() - ctx.data()) as u64,
        }
    }
}

/// A frame's headers up to its L4 ports, as the general parse
/// ([`headers`]) found them: what [`classify`] decides on. The source MAC
/// and the tags are read again where needed, at fixed offsets.
struct Headers {
    /// VLAN tags in front of the IPv4 header (0..=2).
    ntags: usize,
    /// Offset of the L4 header.
    l4: usize,
    /// L4 bytes (header and payload), as the IPv4 header claims.
    l4_len: usize,
    class: Class,
}

/// What a frame is to the classifier, told by its L4 protocol and ports.
#[derive(Clone, Copy)]
enum Class {
    /// DHCP, UDP 68 -> 67 (`from_client`) or 67 -> 68.
    Dhcp { from_client: bool },
    /// Smart Install, TCP to port 4786 (`to_director`) or from it.
    Smi { to_director: bool },
    /// A TFTP request to the director (UDP 69).
    TftpRequest,
    /// Reverse telnet to the director.
    Telnet,
}

/// The class of an IPv4 payload of protocol `proto` with these L4 ports,
/// or `None` when it is not the classifier's (it passes).
#[inline(always)]
fn class_of(proto: u8, sport: u16, dport: u16) -> Option<Class> {
    if proto == IpProto::Udp as u8 {
        match (sport, dport) {
            (BOOTPC, BOOTPS) => Some(Class::Dhcp { from_client: true }),
            (BOOTPS, BOOTPC) => Some(Class::Dhcp { from_client: false }),
            (_, TFTP_PORT) => Some(Class::TftpRequest),
            _ => None,
        }
    } else if proto == IpProto::Tcp as u8 {
        match (sport, dport) {
            (_, SMI_PORT) => Some(Class::Smi { to_director: true }),
            (SMI_PORT, _) => Some(Class::Smi { to_director: false }),
            (_, TELNET_PORT) => Some(Class::Telnet),
            _ => None,
        }
    } else {
        None
    }
}

/// A first look at an IPv4 protocol and the high bytes of the L4 source
/// and destination ports: `false` when no port [`class_of`] takes can be
/// behind them, in a few instructions where `class_of` takes tens.
#[inline(always)]
fn may_be_wanted(proto: u8, sport_hi: u8, dport_hi: u8) -> bool {
    const fn hi(port: u16) -> u8 {
        port.to_be_bytes()[0]
    }
    const _: () = assert!(hi(BOOTPC) == 0 && hi(BOOTPS) == 0 && hi(TFTP_PORT) == 0);
    if proto == IpProto::Udp as u8 {
        sport_hi == 0 || dport_hi == 0
    } else if proto == IpProto::Tcp as u8 {
        sport_hi == hi(SMI_PORT) || dport_hi == hi(SMI_PORT) || dport_hi == hi(TELNET_PORT)
    } else {
        false
    }
}

/// The fast path, for the common frame: untagged IPv4 without options,
/// read with one bounds check at constant offsets ([`Plain`]). It decides
/// the frames the classifier does not want, DHCP requests of known
/// clients in a steady state, and SMI; `None` leaves the frame to the
/// general path ([`headers`]), which reads it again.
///
/// No call here goes through [`Class`], and DHCP's direction is a
/// constant (requests only): through the class, LLVM kept the class and
/// the direction in registers, and on the stack, across the protocol's
/// code.
#[inline(always)]
fn fast(ctx: &XdpContext) -> Option<u32> {
    let p = Plain::of(ctx)?;
    if !p.is_ipv4_plain() {
        return None;
    }
    let proto = p.proto();
    // Decided before anything else is read: most frames end here.
    if !may_be_wanted(proto, p.at::<34>(), p.at::<36>()) {
        return Some(XDP_PASS);
    }
    if p.is_later_fragment() {
        return Some(XDP_PASS);
    }
    // A DHCP request: both ports in one word.
    let [c0, c1] = BOOTPC.to_be_bytes();
    let [s0, s1] = BOOTPS.to_be_bytes();
    if proto == IpProto::Udp as u8 && p.wire32::<34>() == u32::from_ne_bytes([c0, c1, s0, s1]) {
        return dhcp::steady_plain(ctx).then_some(XDP_PASS);
    }
    let (sport, dport) = (p.be16::<34>(), p.be16::<36>());
    if proto == IpProto::Tcp as u8 && (sport == SMI_PORT || dport == SMI_PORT) {
        let to_director = dport == SMI_PORT;
        return match smi::steady_plain(ctx, p, to_director) {
            Ok(verdict) => Some(verdict),
            Err(entry) => smi::plain_other(ctx, p, to_director, entry).ok(),
        };
    }
    class_of(proto, sport, dport).is_none().then_some(XDP_PASS)
}

/// The headers of a frame the classifier decides on ([`class_of`]), or
/// `None` for anything else: up to two VLAN tags (802.1Q, 802.1ad/QinQ),
/// IPv4 options, and frames cut inside a header.
#[inline(always)]
fn headers(ctx: &XdpContext) -> Result<Option<Headers>, Stop> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by `ptr_at`.
    let mut ethertype = unsafe { ether_type(eth) };
    let mut off = size_of::<EthHdr>();
    let mut ntags = 0usize;
    // Unrolled: at most two tags (QinQ).
    if is_vlan_tpid(ethertype) {
        // SAFETY: bounds checked by `ptr_at`; copied out, as the frame does
        // not promise the header's alignment.
        ethertype = unsafe { ptr_at::<VlanHdr>(ctx, off)?.read_unaligned() }.ether_type;
        off += size_of::<VlanHdr>();
        ntags = 1;
        if is_vlan_tpid(ethertype) {
            // SAFETY: as above.
            ethertype = unsafe { ptr_at::<VlanHdr>(ctx, off)?.read_unaligned() }.ether_type;
            off += size_of::<VlanHdr>();
            ntags = 2;
        }
    }
    if ethertype != EtherType::Ipv4 as u16 {
        return Ok(None);
    }

    let ip = ptr_at::<Ipv4Hdr>(ctx, off)?;
    // SAFETY: bounds checked by `ptr_at`; `Ipv4Hdr` is all bytes (align 1).
    let ip = unsafe { &*ip };
    let ihl = usize::from(ip.ihl());
    if ip.version() != 4 || ihl < size_of::<Ipv4Hdr>() {
        return Ok(None);
    }
    if ip.frag_offset() != 0 {
        // A later fragment carries no L4 header.
        return Ok(None);
    }
    let proto = ip.proto;
    if proto != IpProto::Tcp as u8 && proto != IpProto::Udp as u8 {
        return Ok(None);
    }
    let ip_total = usize::from(ip.tot_len());
    // Make sure the whole IPv4 header (with options) is in the frame.
    ptr_at::<u8>(ctx, off + ihl - 1)?;
    let l4 = off + ihl;
    // Each port on its own: a frame cut inside its L4 header is still
    // judged by its ports.
    let sport = be16_at(ctx, l4 + L4_SRC_PORT)?;
    let dport = be16_at(ctx, l4 + L4_DST_PORT)?;
    let Some(class) = class_of(proto, sport, dport) else {
        return Ok(None);
    };
    Ok(Some(Headers {
        ntags,
        l4,
        l4_len: ip_total.saturating_sub(ihl),
        class,
    }))
}

fn classify(ctx: &XdpContext) -> Result<u32, Stop> {
    if let Some(verdict) = fast(ctx) {
        return Ok(verdict);
    }
    let Some(h) = headers(ctx)? else {
        return Ok(XDP_PASS);
    };
    match h.class {
        Class::TftpRequest => director_port(src_key(ctx)?, counter::TFTP_DROP_NOT_ADMITTED),
        Class::Telnet => director_port(src_key(ctx)?, counter::TELNET_DROP_NOT_ADMITTED),
        Class::Smi { to_director } => {
            let policy = Policy;
            let l2 = l2(ctx, &h, policy)?;
            let len_word = || smi::len_word(ctx, h.l4, h.l4_len);
            smi::smi(policy, &l2, to_director, len_word)
        }
        Class::Dhcp { from_client } => {
            let policy = Policy;
            let l2 = l2(ctx, &h, policy)?;
            let bootp = h.l4 + size_of::<UdpHdr>();
            dhcp::dhcp(ctx.ctx, policy, &l2, bootp, from_client)
        }
    }
}

/// Where the frame's L2 headers put its client (an untagged frame is on
/// the policy's untagged VLAN).
#[inline(always)]
fn l2(ctx: &XdpContext, h: &Headers, policy: Policy) -> Result<L2, Stop> {
    let vid = |tag: usize| {
        let off = size_of::<EthHdr>() + tag * size_of::<VlanHdr>();
        // SAFETY: bounds checked by `ptr_at`; copied out, as the frame does
        // not promise the header's alignment.
        Ok::<_, Stop>(unsafe { ptr_at::<VlanHdr>(ctx, off)?.read_unaligned() }.vid())
    };
    let (vlan, svlan) = match h.ntags {
        0 => (policy.untagged_vlan(), 0),
        1 => (vid(0)?, 0),
        _ => (vid(1)?, vid(0)?),
    };
    Ok(L2 {
        src: src_key(ctx)?,
        vlan,
        svlan,
        l3: size_of::<EthHdr>() + h.ntags * size_of::<VlanHdr>(),
        len: (ctx.data_end() - ctx.data()) as u64,
    })
}

/// Whether an EtherType (as on the wire) is a VLAN tag's TPID.
#[inline(always)]
fn is_vlan_tpid(t: u16) -> bool {
    t == EtherType::Ieee8021q as u16
        || t == EtherType::Ieee8021ad as u16
        || t == EtherType::Ieee8021QinQ1 as u16
}

/// TFTP requests and reverse telnet to the proxy: only from a client the
/// daemon admitted (it answered the probe); anything else is dropped (or,
/// without enforcement, counted and passed), before an skb exists.
/// `src` is the frame's source MAC, `dropped` the counter of a refusal.
#[inline(never)]
fn director_port(src: ClientKey, dropped: u32) -> Result<u32, Stop> {
    if admission(&src).is_some_and(state::admits_smi) {
        return Ok(XDP_PASS);
    }
    count(dropped);
    if !Policy.enforce() {
        return Ok(count_pass(counter::SMI_WOULD_DROP));
    }
    Ok(XDP_DROP)
}

/// Benchmark reference: the cheapest XDP program there is.
#[xdp]
pub fn ref_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Benchmark reference: drops every frame, the least an XDP drop costs on
/// the interface it is attached to.
#[xdp]
pub fn ref_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

/// Benchmark feeder's target: the interface at index 0 (never used by the
/// classifier).
#[map(name = "REF_REDIRECT")]
static REF_REDIRECT: DevMap = DevMap::with_max_entries(1, 0);

/// Benchmark feeder: redirects every frame to the interface in
/// `REF_REDIRECT`. Redirected into a veth, a frame reaches the XDP program
/// of the veth's peer as a frame in its ring, not as an skb: as a NIC
/// driver with native XDP hands frames over.
#[xdp]
pub fn ref_redirect(_ctx: XdpContext) -> u32 {
    REF_REDIRECT.redirect(0, 0).unwrap_or(XDP_PASS)
}

/// Benchmark reference map (never used by the classifier).
#[map(name = "REF_CLIENTS")]
static REF_CLIENTS: LruHashMap<ClientKey, ClientEntry> = LruHashMap::with_max_entries(1024, 0);

/// Benchmark reference: one hash lookup and update keyed by the source MAC
/// (the last-seen time, on the classifier's clock, and a counter), the
/// least any stateful classifier must do per frame.
#[xdp]
pub fn ref_lookup_update(ctx: XdpContext) -> u32 {
    let Ok(key) = src_key(&ctx) else {
        return XDP_PASS;
    };
    match REF_CLIENTS.get_ptr_mut(key) {
        // SAFETY: map value pointer from a successful lookup.
        Some(e) => unsafe {
            (*e).last_seen_ns = now_ns();
            add(&raw mut (*e).dhcp_pkts, 1);
        },
        None => {
            let _ = REF_CLIENTS.insert(key, ClientEntry::default(), 0);
        }
    }
    XDP_PASS
}

/// Benchmark reference: the floor of an admitted SMI segment, the least an
/// SMI path that keeps per-client counters can do. The common frame's
/// parse up to the SMI port, as the fast path reads it (the IPv4 header,
/// the fragment bits, the protocol, the ports), then one lookup of the
/// source MAC and the client's SMI counters; none of the classifier's
/// checks (admission, VLAN, length word) and no verdict counter.
#[xdp]
pub fn ref_smi_floor(ctx: XdpContext) -> u32 {
    let Some(p) = Plain::of(&ctx) else {
        return XDP_PASS;
    };
    if !p.is_ipv4_plain() || p.is_later_fragment() || p.proto() != IpProto::Tcp as u8 {
        return XDP_PASS;
    }
    let smi = SMI_PORT.to_be();
    if p.wire16::<34>() != smi && p.wire16::<36>() != smi {
        return XDP_PASS;
    }
    let key = p.src_key();
    match REF_CLIENTS.get_ptr_mut(key) {
        // SAFETY: map value pointer from a successful lookup.
        Some(e) => unsafe { count_smi(e, now_ns(), (ctx.data_end() - ctx.data()) as u64) },
        None => {
            let _ = REF_CLIENTS.insert(key, ClientEntry::default(), 0);
        }
    }
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
