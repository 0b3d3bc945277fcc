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
//! Everything else passes untouched. Frames the classifier cannot parse pass
//! too (fail open) and are counted. Nothing is copied to user space but the
//! events, and known clients cause no events.
//!
//! This file owns the entry points and the parse up to the L4 ports; the
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
use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::LruHashMap;
use aya_ebpf::programs::XdpContext;
use network_types::eth::{EthHdr, EtherType};
use network_types::ip::{IpProto, Ipv4Hdr};
use network_types::udp::UdpHdr;
use network_types::vlan::VlanHdr;
use proxy_common::{ClientEntry, ClientKey, SMI_PORT, TELNET_PORT, TFTP_PORT, counter, state};

use headers::{L4_DST_PORT, L4_SRC_PORT, be16_at, ether_type, ptr_at, src_mac};
use maps::{POLICY, add, admission, count, count_pass};

const BOOTPS: u16 = 67;
const BOOTPC: u16 = 68;

/// Why classification stopped early; every variant passes the frame.
enum Stop {
    /// The frame ended inside a header we parse.
    Truncated,
    /// A DHCP frame whose options are malformed.
    DhcpMalformed,
    /// The policy map is not readable (should not happen).
    NoPolicy,
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
        Err(Stop::NoPolicy) => XDP_PASS,
    }
}

/// Where the L2 headers put the client.
struct L2 {
    src: [u8; 6],
    vlan: u16,
    svlan: u16,
    /// Offset of the IPv4 header.
    l3: usize,
    /// Bytes in the frame.
    len: u64,
}

/// A frame's headers up to its L4 ports: what [`classify`] decides on.
struct Headers {
    src: [u8; 6],
    tags: [u16; 2],
    ntags: usize,
    /// Offset of the IPv4 header.
    l3: usize,
    /// Offset of the L4 header.
    l4: usize,
    /// L4 bytes (header and payload), as the IPv4 header claims.
    l4_len: usize,
    tcp: bool,
    udp: bool,
    sport: u16,
    dport: u16,
}

/// Bytes of an untagged IPv4 frame without options, up to its L4 ports.
const PLAIN_LEN: usize = size_of::<EthHdr>() + size_of::<Ipv4Hdr>() + 4;

/// Whether a TCP or UDP segment with these ports is the classifier's:
/// DHCP, SMI, or a TFTP request or reverse telnet to the director.
#[inline(always)]
fn wanted(tcp: bool, udp: bool, sport: u16, dport: u16) -> bool {
    (udp && (sport == BOOTPC || sport == BOOTPS || dport == TFTP_PORT))
        || (tcp && (sport == SMI_PORT || dport == SMI_PORT || dport == TELNET_PORT))
}

/// The headers of a frame the classifier decides on ([`wanted`]), or
/// `None` for anything else.
#[inline(always)]
fn headers(ctx: &XdpContext) -> Result<Option<Headers>, Stop> {
    // Most frames on a port are untagged IPv4 without options: read with
    // one bounds check, they cost the classifier a few loads.
    if let Ok(p) = ptr_at::<[u8; PLAIN_LEN]>(ctx, 0) {
        // Read through the raw pointer, each byte where it is needed: from
        // a reference LLVM would load the whole prefix up front, before
        // the checks that send most frames away.
        let at = |i: usize| -> u8 {
            // SAFETY: `i < PLAIN_LEN`, bounds checked by `ptr_at`.
            unsafe { p.cast::<u8>().add(i).read() }
        };
        let be = |i: usize| u16::from_be_bytes([at(i), at(i + 1)]);
        if be(12) == 0x0800 && at(14) == 0x45 {
            let proto = at(23);
            let (tcp, udp) = (proto == IpProto::Tcp as u8, proto == IpProto::Udp as u8);
            let (sport, dport) = (be(34), be(36));
            // Decided before anything else is read: most frames end here.
            if be(20) & 0x1fff != 0 || !wanted(tcp, udp, sport, dport) {
                return Ok(None);
            }
            let l3 = size_of::<EthHdr>();
            return Ok(Some(Headers {
                src: [at(6), at(7), at(8), at(9), at(10), at(11)],
                tags: [0; 2],
                ntags: 0,
                l3,
                l4: l3 + size_of::<Ipv4Hdr>(),
                l4_len: usize::from(be(16)).saturating_sub(size_of::<Ipv4Hdr>()),
                tcp,
                udp,
                sport,
                dport,
            }));
        }
    }
    headers_tagged(ctx)
}

/// [`headers`] for every other frame: up to two VLAN tags (802.1Q,
/// 802.1ad/QinQ), IPv4 options, and frames cut inside a header.
#[inline(always)]
fn headers_tagged(ctx: &XdpContext) -> Result<Option<Headers>, Stop> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by `ptr_at`; copied out (a byte array).
    let src = unsafe { (*eth).src_addr };
    // SAFETY: bounds checked by `ptr_at`.
    let mut ethertype = unsafe { ether_type(eth) };
    let mut off = size_of::<EthHdr>();
    let mut tags = [0u16; 2];
    let mut ntags = 0usize;
    // Unrolled: at most two tags (QinQ).
    if is_vlan_tpid(ethertype) {
        // SAFETY: bounds checked by `ptr_at`; copied out, as the frame does
        // not promise the header's alignment.
        let tag = unsafe { ptr_at::<VlanHdr>(ctx, off)?.read_unaligned() };
        tags[0] = tag.vid();
        ethertype = tag.ether_type;
        off += size_of::<VlanHdr>();
        ntags = 1;
        if is_vlan_tpid(ethertype) {
            // SAFETY: as above.
            let tag = unsafe { ptr_at::<VlanHdr>(ctx, off)?.read_unaligned() };
            tags[1] = tag.vid();
            ethertype = tag.ether_type;
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
    let (tcp, udp) = (proto == IpProto::Tcp as u8, proto == IpProto::Udp as u8);
    if !(tcp || udp) {
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
    if !wanted(tcp, udp, sport, dport) {
        return Ok(None);
    }
    Ok(Some(Headers {
        src,
        tags,
        ntags,
        l3: off,
        l4,
        l4_len: ip_total.saturating_sub(ihl),
        tcp,
        udp,
        sport,
        dport,
    }))
}

fn classify(ctx: &XdpContext) -> Result<u32, Stop> {
    let Some(h) = headers(ctx)? else {
        return Ok(count_pass(counter::OTHER_PASS));
    };
    let (tcp, udp, sport, dport) = (h.tcp, h.udp, h.sport, h.dport);
    let is_dhcp_request = udp && sport == BOOTPC && dport == BOOTPS;
    let is_dhcp_reply = udp && sport == BOOTPS && dport == BOOTPC;
    let is_smi = tcp && (sport == SMI_PORT || dport == SMI_PORT);
    if !(is_dhcp_request || is_dhcp_reply || is_smi) {
        if udp && dport == TFTP_PORT {
            return director_port(h.src, counter::TFTP_DROP_NOT_ADMITTED);
        }
        if tcp && dport == TELNET_PORT {
            return director_port(h.src, counter::TELNET_DROP_NOT_ADMITTED);
        }
        return Ok(count_pass(counter::OTHER_PASS));
    }

    let policy = POLICY.get(0).ok_or(Stop::NoPolicy)?;
    let (vlan, svlan) = match h.ntags {
        0 => (policy.untagged_vlan, 0),
        1 => (h.tags[0], 0),
        _ => (h.tags[1], h.tags[0]),
    };
    let l2 = L2 {
        src: h.src,
        vlan,
        svlan,
        l3: h.l3,
        len: (ctx.data_end() - ctx.data()) as u64,
    };
    if is_smi {
        smi::smi(ctx, policy, &l2, h.l4, h.l4_len, dport == SMI_PORT)
    } else {
        dhcp::dhcp(
            ctx,
            policy,
            &l2,
            h.l4 + size_of::<UdpHdr>(),
            is_dhcp_request,
        )
    }
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
/// `dropped` is the counter of a refusal.
#[inline(never)]
fn director_port(src: [u8; 6], dropped: u32) -> Result<u32, Stop> {
    let key = ClientKey::new(src);
    if admission(&key).is_some_and(state::admits_smi) {
        return Ok(count_pass(counter::OTHER_PASS));
    }
    count(dropped);
    let policy = POLICY.get(0).ok_or(Stop::NoPolicy)?;
    if policy.enforce == 0 {
        return Ok(count_pass(counter::SMI_WOULD_DROP));
    }
    Ok(XDP_DROP)
}

/// Benchmark reference: the cheapest XDP program there is.
#[xdp]
pub fn ref_pass(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Benchmark reference map (never used by the classifier).
#[map(name = "REF_CLIENTS")]
static REF_CLIENTS: LruHashMap<ClientKey, ClientEntry> = LruHashMap::with_max_entries(1024, 0);

/// Benchmark reference: one hash lookup and update keyed by the source MAC,
/// the least any stateful classifier must do per frame.
#[xdp]
pub fn ref_lookup_update(ctx: XdpContext) -> u32 {
    let Ok(src) = src_mac(&ctx) else {
        return XDP_PASS;
    };
    let key = ClientKey::new(src);
    match REF_CLIENTS.get_ptr_mut(&key) {
        // SAFETY: map value pointer from a successful lookup.
        Some(e) => unsafe {
            (*e).last_seen_ns = bpf_ktime_get_ns();
            add(&raw mut (*e).dhcp_pkts, 1);
        },
        None => {
            let _ = REF_CLIENTS.insert(&key, &ClientEntry::default(), 0);
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
