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

fn classify(ctx: &XdpContext) -> Result<u32, Stop> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
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
        return Ok(count_pass(counter::OTHER_PASS));
    }

    let ip = ptr_at::<Ipv4Hdr>(ctx, off)?;
    // SAFETY: bounds checked by `ptr_at`; `Ipv4Hdr` is all bytes (align 1).
    let ip = unsafe { &*ip };
    let ihl = usize::from(ip.ihl());
    if ip.version() != 4 || ihl < size_of::<Ipv4Hdr>() {
        return Ok(count_pass(counter::OTHER_PASS));
    }
    if ip.frag_offset() != 0 {
        // A later fragment carries no L4 header.
        return Ok(count_pass(counter::OTHER_PASS));
    }
    let proto = ip.proto;
    let (tcp, udp) = (proto == IpProto::Tcp as u8, proto == IpProto::Udp as u8);
    if !(tcp || udp) {
        return Ok(count_pass(counter::OTHER_PASS));
    }
    let ip_total = usize::from(ip.tot_len());
    // Make sure the whole IPv4 header (with options) is in the frame.
    ptr_at::<u8>(ctx, off + ihl - 1)?;
    let l4 = off + ihl;
    // Each port on its own, a frame cut inside its L4 header is still
    // judged by its ports. (One 4-byte read of both ports was tried: LLVM
    // then branches so that the verifier no longer prunes the DHCP option
    // walk and runs over its 1M-instruction budget.)
    let sport = be16_at(ctx, l4 + L4_SRC_PORT)?;
    let dport = be16_at(ctx, l4 + L4_DST_PORT)?;
    let is_dhcp_request = udp && sport == BOOTPC && dport == BOOTPS;
    let is_dhcp_reply = udp && sport == BOOTPS && dport == BOOTPC;
    let is_smi = tcp && (sport == SMI_PORT || dport == SMI_PORT);
    if !(is_dhcp_request || is_dhcp_reply || is_smi) {
        if udp && dport == TFTP_PORT {
            return director_port(ctx, counter::TFTP_DROP_NOT_ADMITTED);
        }
        if tcp && dport == TELNET_PORT {
            return director_port(ctx, counter::TELNET_DROP_NOT_ADMITTED);
        }
        return Ok(count_pass(counter::OTHER_PASS));
    }

    let policy = POLICY.get(0).ok_or(Stop::NoPolicy)?;
    let (vlan, svlan) = match ntags {
        0 => (policy.untagged_vlan, 0),
        1 => (tags[0], 0),
        _ => (tags[1], tags[0]),
    };
    let l2 = L2 {
        src: src_mac(ctx)?,
        vlan,
        svlan,
        l3: off,
        len: (ctx.data_end() - ctx.data()) as u64,
    };
    if is_smi {
        let payload_len = ip_total.saturating_sub(ihl);
        smi::smi(ctx, policy, &l2, l4, payload_len, dport == SMI_PORT)
    } else {
        dhcp::dhcp(ctx, policy, &l2, l4 + size_of::<UdpHdr>(), is_dhcp_request)
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
fn director_port(ctx: &XdpContext, dropped: u32) -> Result<u32, Stop> {
    let key = ClientKey::new(src_mac(ctx)?);
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
