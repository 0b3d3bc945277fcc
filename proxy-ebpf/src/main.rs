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
#![no_std]
#![no_main]

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::bindings::xdp_action::{XDP_DROP, XDP_PASS};
use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::macros::{map, xdp};
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::XdpContext;
use proxy_common::{
    CLIENTS_MAX, ClientEntry, ClientKey, DHCP_TRUSTED_MAX, EVENTS_BYTES, Event, OPT_BYTES, Policy,
    SMI_PORT, TELNET_PORT, TFTP_PORT, counter, drop_reason, event, state,
};

/// Client MAC -> state; pinned so that a daemon restart keeps it.
#[map(name = "CLIENTS")]
static CLIENTS: LruHashMap<ClientKey, ClientEntry> = LruHashMap::pinned(CLIENTS_MAX, 0);

/// Client MAC -> admission state (one of `state`), written only by the
/// daemon: it overrides the learned state of `CLIENTS`, which only this
/// program writes after the daemon created an entry. One writer per field,
/// so neither side's update can undo the other's. Pinned beside `CLIENTS`.
#[map(name = "ADMISSION")]
static ADMISSION: LruHashMap<ClientKey, u32> = LruHashMap::pinned(CLIENTS_MAX, 0);

/// The daemon's policy, at index 0.
#[map(name = "POLICY")]
static POLICY: Array<Policy> = Array::with_max_entries(1, 0);

/// Per-CPU counters, indexed by `proxy_common::counter`.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Ports (ifindex -> 1) whose DHCP OFFERs are believed when the policy
/// trusts only some ([`Policy::dhcp_trusted_only`]).
#[map(name = "DHCP_TRUSTED")]
static DHCP_TRUSTED: HashMap<u32, u32> = HashMap::with_max_entries(DHCP_TRUSTED_MAX, 0);

/// Time of the last `DHCP_SERVER_SEEN` event on this CPU (rate limit).
#[map(name = "SERVER_EVENT_TS")]
static SERVER_EVENT_TS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Time of the last `SMI_DROPPED` event on this CPU (rate limit).
#[map(name = "DROP_EVENT_TS")]
static DROP_EVENT_TS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Events for the daemon.
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ_OLD: u16 = 0x9100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const BOOTPS: u16 = 67;
const BOOTPC: u16 = 68;
/// BOOTP fixed header (236 bytes) plus the magic cookie.
const BOOTP_FIXED: usize = 240;
const DHCP_MAGIC: u32 = 0x6382_5363;
const DHCPDISCOVER: u32 = 1;
const DHCPOFFER: u8 = 2;
const DHCPACK: u8 = 5;
/// Most options walked in one DHCP message; more is treated as malformed.
const MAX_OPTIONS: u32 = 48;
/// Options must start within this many bytes of the frame start (verifier bound).
const MAX_OPT_OFFSET: usize = 1536;
/// At most one SMI-dropped event per CPU per this many nanoseconds.
const DROP_EVENT_GAP_NS: u64 = 1_000_000;
/// At most one server-seen event per CPU per this many nanoseconds (the
/// daemon holds its DHCP server quiet for minutes after one).
const SERVER_EVENT_GAP_NS: u64 = 100_000_000;

/// Why classification stopped early; every variant passes the frame.
enum Stop {
    /// The frame ended inside a header we parse.
    Truncated,
    /// A DHCP frame whose options are malformed.
    DhcpMalformed,
    /// The policy map is not readable (should not happen).
    NoPolicy,
}

#[xdp]
pub fn smi_classifier(ctx: XdpContext) -> u32 {
    match classify(&ctx) {
        Ok(action) => action,
        Err(Stop::Truncated) => count_pass(counter::TRUNCATED_PASS),
        Err(Stop::DhcpMalformed) => count_pass(counter::DHCP_MALFORMED_PASS),
        Err(Stop::NoPolicy) => XDP_PASS,
    }
}

#[inline(always)]
fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no other writer on this CPU during the program.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn count_pass(index: u32) -> u32 {
    count(index);
    XDP_PASS
}

/// Pointer to `N` bytes at `off`, or `Truncated` when the frame is shorter.
///
/// The verifier widens a packet pointer's readable range only from a
/// comparison `(pkt + N) > pkt_end` where the access then goes through that
/// same `pkt`. Left alone, LLVM (which knows `data` fits in 32 bits) folds
/// `p + 1 > end` into `p >= end` and re-derives `p` from its parts after the
/// check; `black_box` makes `p` opaque so neither happens.
#[inline(always)]
fn bytes_at<const N: usize>(ctx: &XdpContext, off: usize) -> Result<*const [u8; N], Stop> {
    let p = core::hint::black_box(ctx.data() + off);
    if p + N > ctx.data_end() {
        return Err(Stop::Truncated);
    }
    Ok(p as *const [u8; N])
}

#[inline(always)]
fn u8_at(ctx: &XdpContext, off: usize) -> Result<u8, Stop> {
    // SAFETY: bounds checked by `bytes_at`.
    Ok(unsafe { (*bytes_at::<1>(ctx, off)?)[0] })
}

#[inline(always)]
fn be16_at(ctx: &XdpContext, off: usize) -> Result<u16, Stop> {
    // SAFETY: bounds checked by `bytes_at`.
    Ok(u16::from_be_bytes(unsafe { *bytes_at::<2>(ctx, off)? }))
}

#[inline(always)]
fn be32_at(ctx: &XdpContext, off: usize) -> Result<u32, Stop> {
    // SAFETY: bounds checked by `bytes_at`.
    Ok(u32::from_be_bytes(unsafe { *bytes_at::<4>(ctx, off)? }))
}

#[inline(always)]
fn mac_at(ctx: &XdpContext, off: usize) -> Result<[u8; 6], Stop> {
    // SAFETY: bounds checked by `bytes_at`.
    Ok(unsafe { *bytes_at::<6>(ctx, off)? })
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
    let mut ethertype = be16_at(ctx, 12)?;
    let mut off = ETH_HLEN;
    let mut tags = [0u16; 2];
    let mut ntags = 0usize;
    // Unrolled: at most two tags (QinQ).
    if is_vlan_tpid(ethertype) {
        tags[0] = be16_at(ctx, off)? & 0x0fff;
        ethertype = be16_at(ctx, off + 2)?;
        off += 4;
        ntags = 1;
        if is_vlan_tpid(ethertype) {
            tags[1] = be16_at(ctx, off)? & 0x0fff;
            ethertype = be16_at(ctx, off + 2)?;
            off += 4;
            ntags = 2;
        }
    }
    if ethertype != ETH_P_IPV4 {
        return Ok(count_pass(counter::OTHER_PASS));
    }

    let ver_ihl = u8_at(ctx, off)?;
    let ihl = ((ver_ihl & 0x0f) as usize) * 4;
    if ver_ihl >> 4 != 4 || ihl < 20 {
        return Ok(count_pass(counter::OTHER_PASS));
    }
    let frag = be16_at(ctx, off + 6)?;
    if frag & 0x1fff != 0 {
        // A later fragment carries no L4 header.
        return Ok(count_pass(counter::OTHER_PASS));
    }
    let proto = u8_at(ctx, off + 9)?;
    if proto != IPPROTO_UDP && proto != IPPROTO_TCP {
        return Ok(count_pass(counter::OTHER_PASS));
    }
    let ip_total = be16_at(ctx, off + 2)? as usize;
    // Make sure the whole IPv4 header (with options) is in the frame.
    bytes_at::<1>(ctx, off + ihl - 1)?;
    let l4 = off + ihl;
    let sport = be16_at(ctx, l4)?;
    let dport = be16_at(ctx, l4 + 2)?;

    let is_dhcp_request = proto == IPPROTO_UDP && sport == BOOTPC && dport == BOOTPS;
    let is_dhcp_reply = proto == IPPROTO_UDP && sport == BOOTPS && dport == BOOTPC;
    let is_smi = proto == IPPROTO_TCP && (sport == SMI_PORT || dport == SMI_PORT);
    if !(is_dhcp_request || is_dhcp_reply || is_smi) {
        if proto == IPPROTO_UDP && dport == TFTP_PORT {
            return director_port(ctx, counter::TFTP_DROP_NOT_ADMITTED);
        }
        if proto == IPPROTO_TCP && dport == TELNET_PORT {
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
        src: mac_at(ctx, 6)?,
        vlan,
        svlan,
        l3: off,
        len: (ctx.data_end() - ctx.data()) as u64,
    };
    if is_smi {
        let payload_len = ip_total.saturating_sub(ihl);
        smi(ctx, policy, &l2, l4, payload_len, dport == SMI_PORT)
    } else {
        dhcp(ctx, policy, &l2, l4 + 8, is_dhcp_request)
    }
}

#[inline(always)]
fn is_vlan_tpid(t: u16) -> bool {
    t == ETH_P_8021Q || t == ETH_P_8021AD || t == ETH_P_QINQ_OLD
}

/// Where the DHCP options the classifier reads are (offsets from the frame
/// start, 0 = absent).
///
/// It lives in a per-CPU scratch map rather than on the stack: the verifier
/// does not track values stored in map memory, so every path out of the
/// option walk reaches the code after it in the same state, and that code is
/// verified once instead of once per path (which exceeds the 1M-instruction
/// budget).
#[repr(C)]
struct Options {
    msg_type: u32,
    requested: u32,
    client_id: u32,
    client_id_len: u32,
    vendor_class: u32,
    vendor_class_len: u32,
}

/// Per-CPU scratch space for the option walk.
#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<Options> = PerCpuArray::with_max_entries(1, 0);

/// Walks the options with a bounded loop, recording where the interesting
/// ones are in `SCRATCH`; returns a pointer to that record.
#[inline(always)]
fn walk_options(ctx: &XdpContext, start: usize) -> Result<&'static Options, Stop> {
    let o = SCRATCH.get_ptr_mut(0).ok_or(Stop::NoPolicy)?;
    // SAFETY: per-CPU map value, no other user on this CPU while we run.
    unsafe {
        (*o).msg_type = 0;
        (*o).requested = 0;
        (*o).client_id = 0;
        (*o).client_id_len = 0;
        (*o).vendor_class = 0;
        (*o).vendor_class_len = 0;
    }
    let mut p = start;
    let mut ended = false;
    for _ in 0..MAX_OPTIONS {
        // Forget p's exact range (LLVM may not drop the mask: `p` is opaque
        // to it): every iteration then starts in one verifier state, so
        // pruning keeps the walk linear in the number of iterations.
        p = core::hint::black_box(p) & 0x7ff;
        if p > MAX_OPT_OFFSET {
            return Err(Stop::DhcpMalformed);
        }
        let code = u8_at(ctx, p).map_err(|_| Stop::DhcpMalformed)?;
        if code == 255 {
            ended = true;
            break;
        }
        if code == 0 {
            p += 1;
            continue;
        }
        let len = u8_at(ctx, p + 1).map_err(|_| Stop::DhcpMalformed)? as usize;
        let value = p + 2;
        // The whole value must be inside the frame.
        if len > 0 {
            bytes_at::<1>(ctx, value + len - 1).map_err(|_| Stop::DhcpMalformed)?;
        }
        // SAFETY: as above.
        unsafe {
            match code {
                53 if len >= 1 => (*o).msg_type = u32::from(u8_at(ctx, value)?),
                50 if len == 4 => (*o).requested = value as u32,
                61 => {
                    (*o).client_id = value as u32;
                    (*o).client_id_len = len as u32;
                }
                60 => {
                    (*o).vendor_class = value as u32;
                    (*o).vendor_class_len = len as u32;
                }
                _ => {}
            }
        }
        p = value + len;
    }
    if !ended {
        return Err(Stop::DhcpMalformed);
    }
    // SAFETY: map values live as long as the program.
    Ok(unsafe { &*o })
}

fn dhcp(
    ctx: &XdpContext,
    policy: &Policy,
    l2: &L2,
    bootp: usize,
    from_client: bool,
) -> Result<u32, Stop> {
    // The fixed header and magic cookie must be present.
    bytes_at::<BOOTP_FIXED>(ctx, bootp)?;
    let op = u8_at(ctx, bootp)?;
    let htype = u8_at(ctx, bootp + 1)?;
    let hlen = u8_at(ctx, bootp + 2)?;
    if be32_at(ctx, bootp + 236)? != DHCP_MAGIC || htype != 1 || hlen != 6 {
        return Err(Stop::DhcpMalformed);
    }
    if op != if from_client { 1 } else { 2 } {
        return Err(Stop::DhcpMalformed);
    }
    let xid = be32_at(ctx, bootp + 4)?;
    let chaddr = mac_at(ctx, bootp + 28)?;
    let opts = walk_options(ctx, bootp + BOOTP_FIXED)?;
    let key = ClientKey::new(chaddr);
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };

    if from_client {
        count(counter::DHCP_REQUEST_PASS);
        if let Some(e) = CLIENTS.get_ptr_mut(&key) {
            // SAFETY: map value pointer from a successful lookup.
            unsafe { touch_dhcp(e, now, l2, xid, opts.msg_type as u8) };
            // A DISCOVER while the daemon has the client upgrading: it
            // reloaded. The daemon moves it on when it reads the event.
            let restarted =
                admission(&key) == Some(state::UPGRADING) && opts.msg_type == DHCPDISCOVER;
            if restarted {
                emit(
                    ctx,
                    event::CLIENT_RESTARTED,
                    now,
                    chaddr,
                    l2,
                    xid,
                    opts,
                    [0; 4],
                );
            }
            return Ok(XDP_PASS);
        }
        if !policy.is_startup_vlan(l2.vlan) {
            return Ok(count_pass(counter::DHCP_OTHER_VLAN));
        }
        // Masks re-bound offsets read back from scratch (stored values
        // are below 2048, so nothing is lost).
        let requested = (opts.requested & 0x7ff) as usize;
        let ipv4 = if requested != 0 {
            // SAFETY: bounds checked by `bytes_at`.
            unsafe { *bytes_at::<4>(ctx, requested)? }
        } else {
            [0; 4]
        };
        new_entry(&key, now, l2, xid, opts.msg_type as u8, state::NEW, [0; 4]);
        emit(ctx, event::NEW_CLIENT, now, chaddr, l2, xid, &opts, ipv4);
        count(counter::NEW_CLIENT);
        return Ok(XDP_PASS);
    }

    count(counter::DHCP_REPLY_PASS);
    let msg_type = opts.msg_type as u8;
    if msg_type == DHCPOFFER {
        // The daemon's own DHCP server stays quiet where another one
        // answers, if that one answers on a trusted port: an OFFER from a
        // switch port is counted, not believed.
        // SAFETY: the context pointer is valid for the program's run.
        let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
        // SAFETY: read-only lookup of a plain value.
        let trusted =
            policy.dhcp_trusted_only == 0 || unsafe { DHCP_TRUSTED.get(&ifindex) }.is_some();
        if !trusted {
            count(counter::DHCP_OFFER_UNTRUSTED);
        } else if rate_allows(&SERVER_EVENT_TS, now, SERVER_EVENT_GAP_NS) {
            // SAFETY: bounds checked by `bytes_at`.
            let server_ip = unsafe { *bytes_at::<4>(ctx, l2.l3 + 12)? };
            emit(
                ctx,
                event::DHCP_SERVER_SEEN,
                now,
                l2.src,
                l2,
                xid,
                &opts,
                server_ip,
            );
        } else {
            count(counter::SERVER_EVENT_LIMITED);
        }
    }
    if msg_type != DHCPACK {
        return Ok(XDP_PASS);
    }
    // SAFETY: bounds checked: yiaddr is inside the fixed header.
    let yiaddr = unsafe { *bytes_at::<4>(ctx, bootp + 16)? };
    if let Some(e) = CLIENTS.get_ptr_mut(&key) {
        // SAFETY: map value pointer from a successful lookup.
        let changed = unsafe {
            touch_dhcp(e, now, l2, xid, opts.msg_type as u8);
            let changed = (*e).ipv4 != yiaddr || (*e).state == state::NEW;
            (*e).ipv4 = yiaddr;
            if (*e).state == state::NEW {
                (*e).state = state::DISCOVERED;
            }
            changed
        };
        if changed {
            emit(
                ctx,
                event::ADDRESS_LEARNED,
                now,
                chaddr,
                l2,
                xid,
                &opts,
                yiaddr,
            );
            count(counter::ADDRESS_LEARNED);
        }
    } else if policy.is_startup_vlan(l2.vlan) {
        // A client that got its lease before the proxy started.
        new_entry(
            &key,
            now,
            l2,
            xid,
            opts.msg_type as u8,
            state::DISCOVERED,
            yiaddr,
        );
        emit(
            ctx,
            event::ADDRESS_LEARNED,
            now,
            chaddr,
            l2,
            xid,
            &opts,
            yiaddr,
        );
        count(counter::ADDRESS_LEARNED);
    }
    Ok(XDP_PASS)
}

/// Updates a known client's DHCP fields.
///
/// # Safety
/// `e` must come from a successful `CLIENTS` lookup.
#[inline(always)]
unsafe fn touch_dhcp(e: *mut ClientEntry, now: u64, l2: &L2, xid: u32, msg: u8) {
    unsafe {
        (*e).last_seen_ns = now;
        add(&raw mut (*e).dhcp_pkts, 1);
        add(&raw mut (*e).dhcp_bytes, l2.len);
        (*e).xid = xid;
        (*e).dhcp_msg = msg;
        (*e).vlan = l2.vlan;
        (*e).svlan = l2.svlan;
    }
}

/// Adds to a per-client counter. Not atomic (the BPF target has no atomic
/// read-modify-write in core): two CPUs updating the same client in the same
/// instant may lose a count. Verdict counters are per-CPU and exact.
///
/// # Safety
/// `p` must point into a map value.
#[inline(always)]
unsafe fn add(p: *mut u64, v: u64) {
    // SAFETY: map values are 8-byte aligned and live while the program runs.
    unsafe { *p = (*p).wrapping_add(v) };
}

/// TFTP requests and reverse telnet to the proxy: only from a client the
/// daemon admitted (it answered the probe); anything else is dropped (or,
/// without enforcement, counted and passed), before an skb exists.
/// `dropped` is the counter of a refusal.
#[inline(never)]
fn director_port(ctx: &XdpContext, dropped: u32) -> Result<u32, Stop> {
    let key = ClientKey::new(mac_at(ctx, 6)?);
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

/// The daemon's admission state of `key`, if it set one.
#[inline(always)]
fn admission(key: &ClientKey) -> Option<u8> {
    // SAFETY: read-only lookup of a plain value.
    unsafe { ADMISSION.get(key) }.map(|s| *s as u8)
}

#[inline(always)]
fn new_entry(key: &ClientKey, now: u64, l2: &L2, xid: u32, msg: u8, st: u8, ipv4: [u8; 4]) {
    let entry = ClientEntry {
        first_seen_ns: now,
        last_seen_ns: now,
        dhcp_pkts: 1,
        dhcp_bytes: l2.len,
        smi_pkts: 0,
        smi_bytes: 0,
        smi_dropped: 0,
        ipv4,
        xid,
        vlan: l2.vlan,
        svlan: l2.svlan,
        state: st,
        dhcp_msg: msg,
        _pad: [0; 2],
    };
    if CLIENTS.insert(key, &entry, BPF_NOEXIST as u64).is_err() {
        count(counter::MAP_INSERT_FAILED);
    }
}

/// Copies up to `OPT_BYTES` option bytes from the frame into `dst`; returns the count.
#[inline(always)]
fn copy_option(ctx: &XdpContext, off: u32, len: u32, dst: &mut [u8; OPT_BYTES]) -> u8 {
    // Offsets read back from scratch are below 2048 and lengths below 256:
    // the masks only re-bound them for the verifier.
    let (off, len) = ((off & 0x7ff) as usize, (len & 0xff) as usize);
    let mut n = 0usize;
    if off == 0 {
        return 0;
    }
    while n < OPT_BYTES && n < len {
        match u8_at(ctx, off + n) {
            Ok(b) => dst[n] = b,
            Err(_) => break,
        }
        n += 1;
    }
    n as u8
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn emit(
    ctx: &XdpContext,
    kind: u32,
    now: u64,
    mac: [u8; 6],
    l2: &L2,
    xid: u32,
    opts: &Options,
    ipv4: [u8; 4],
) {
    let Some(mut slot) = EVENTS.reserve::<Event>(0) else {
        count(counter::EVENT_LOST);
        return;
    };
    let ev = slot.as_mut_ptr();
    // SAFETY: `ev` points to a reserved, writable, 8-byte aligned record.
    unsafe {
        (*ev).ts_ns = now;
        (*ev).kind = kind;
        (*ev).xid = xid;
        (*ev).mac = mac;
        (*ev).vlan = l2.vlan;
        (*ev).svlan = l2.svlan;
        (*ev).dhcp_msg = opts.msg_type as u8;
        (*ev).reason = 0;
        (*ev).ipv4 = ipv4;
        (*ev)._pad = [0; 6];
        (*ev).client_id = [0; OPT_BYTES];
        (*ev).vendor_class = [0; OPT_BYTES];
        (*ev).client_id_len = copy_option(
            ctx,
            opts.client_id,
            opts.client_id_len,
            &mut (*ev).client_id,
        );
        (*ev).vendor_class_len = copy_option(
            ctx,
            opts.vendor_class,
            opts.vendor_class_len,
            &mut (*ev).vendor_class,
        );
    }
    slot.submit(0);
}

fn smi(
    ctx: &XdpContext,
    policy: &Policy,
    l2: &L2,
    l4: usize,
    l4_len: usize,
    to_director: bool,
) -> Result<u32, Stop> {
    let key = ClientKey::new(l2.src);
    let entry = CLIENTS.get_ptr_mut(&key);
    let learned = match entry {
        // SAFETY: map value pointer from a successful lookup.
        Some(e) => unsafe { (*e).state },
        None => 0,
    };
    let st = admission(&key).unwrap_or(learned);
    let admitted = if to_director {
        state::admits_smi(st)
    } else {
        state::admits_smi_reply(st)
    };
    let mut reason = 0u8;
    let mut len_word = 0u32;
    if !policy.is_startup_vlan(l2.vlan) {
        reason = drop_reason::WRONG_VLAN;
    } else if !admitted {
        reason = drop_reason::NOT_ADMITTED;
    } else if policy.smi_len_cap != 0 {
        len_word = smi_len_word(ctx, l4, l4_len)?;
        if len_word > policy.smi_len_cap {
            reason = drop_reason::OVERSIZE;
        }
    }
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if reason == 0 {
        if let Some(e) = entry {
            // SAFETY: map value pointer from a successful lookup.
            unsafe {
                (*e).last_seen_ns = now;
                add(&raw mut (*e).smi_pkts, 1);
                add(&raw mut (*e).smi_bytes, l2.len);
            }
        }
        return Ok(count_pass(counter::SMI_PASS));
    }
    if policy.enforce == 0 {
        return Ok(count_pass(counter::SMI_WOULD_DROP));
    }
    count(match reason {
        drop_reason::WRONG_VLAN => counter::SMI_DROP_WRONG_VLAN,
        drop_reason::NOT_ADMITTED => counter::SMI_DROP_NOT_ADMITTED,
        _ => counter::SMI_DROP_OVERSIZE,
    });
    if let Some(e) = entry {
        // SAFETY: map value pointer from a successful lookup.
        unsafe { add(&raw mut (*e).smi_dropped, 1) };
    }
    emit_drop(now, l2, reason, len_word);
    Ok(XDP_DROP)
}

/// The SMI header's length word (w3) when the segment starts with a header,
/// else 0. A header is recognised by w0 in 1..=4 and w1 in 0..=1: text and
/// continuation bytes do not look like that, and real SMI messages (at most
/// 1,048 bytes) travel in one segment.
#[inline(always)]
fn smi_len_word(ctx: &XdpContext, l4: usize, l4_len: usize) -> Result<u32, Stop> {
    let doff = ((u8_at(ctx, l4 + 12)? >> 4) as usize) * 4;
    if doff < 20 || l4_len < doff + 16 {
        return Ok(0);
    }
    let payload = l4 + doff;
    let w0 = be32_at(ctx, payload)?;
    let w1 = be32_at(ctx, payload + 4)?;
    if !(1..=4).contains(&w0) || w1 > 1 {
        return Ok(0);
    }
    be32_at(ctx, payload + 12)
}

/// Whether an event may go out now: at most one per CPU per `gap_ns`,
/// by the time kept in `slot`.
#[inline(always)]
fn rate_allows(slot: &PerCpuArray<u64>, now: u64, gap_ns: u64) -> bool {
    let Some(last) = slot.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, no other writer on this CPU during the program.
    unsafe {
        if now.wrapping_sub(*last) < gap_ns {
            return false;
        }
        *last = now;
    }
    true
}

#[inline(always)]
fn emit_drop(now: u64, l2: &L2, reason: u8, len_word: u32) {
    if !rate_allows(&DROP_EVENT_TS, now, DROP_EVENT_GAP_NS) {
        return;
    }
    let Some(mut slot) = EVENTS.reserve::<Event>(0) else {
        count(counter::EVENT_LOST);
        return;
    };
    let ev = slot.as_mut_ptr();
    // SAFETY: `ev` points to a reserved, writable, 8-byte aligned record.
    unsafe {
        (*ev).ts_ns = now;
        (*ev).kind = event::SMI_DROPPED;
        (*ev).xid = len_word;
        (*ev).mac = l2.src;
        (*ev).vlan = l2.vlan;
        (*ev).svlan = l2.svlan;
        (*ev).dhcp_msg = 0;
        (*ev).reason = reason;
        (*ev).ipv4 = [0; 4];
        (*ev).client_id_len = 0;
        (*ev).vendor_class_len = 0;
        (*ev)._pad = [0; 6];
        (*ev).client_id = [0; OPT_BYTES];
        (*ev).vendor_class = [0; OPT_BYTES];
    }
    slot.submit(0);
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
    let Ok(src) = mac_at(&ctx, 6) else {
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
