//! DHCP: the bounded option walk, learning clients and their addresses into
//! `CLIENTS`, and the events that tell the daemon about them.

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::bindings::xdp_action::XDP_PASS;
use aya_ebpf::bindings::xdp_md;
use aya_ebpf::macros::map;
use aya_ebpf::maps::PerCpuArray;
use aya_ebpf::programs::XdpContext;
use network_types::eth::EthHdr;
use network_types::ip::Ipv4Hdr;
use network_types::udp::UdpHdr;
use proxy_common::{ClientEntry, ClientKey, Event, OPT_BYTES, counter, event, state};

use crate::headers::{Bootp, head, ptr_at, u8_at};
use crate::maps::{
    CLIENTS, DHCP_TRUSTED, EVENTS, Policy, SERVER_EVENT_TS, add, admission, count, count_pass,
    key_at, now_ns, rate_allows,
};
use crate::{L2, Stop};

const DHCP_MAGIC: u32 = 0x6382_5363;
const DHCPDISCOVER: u32 = 1;
const DHCPOFFER: u8 = 2;
const DHCPACK: u8 = 5;
/// Most options walked in one DHCP message; more is treated as malformed.
const MAX_OPTIONS: u32 = 48;
/// Options must start within this many bytes of the frame start (verifier bound).
const MAX_OPT_OFFSET: usize = 1536;
/// Re-bounds option offsets for the verifier: the walk's cursor each step,
/// and the offsets read back from `SCRATCH`.
const OFFSET_MASK: usize = 0x7ff;
// The mask keeps the low bits of a power of two...
const _: () = assert!((OFFSET_MASK + 1).is_power_of_two());
// ...and loses none of them: the largest cursor one step makes (an option
// at MAX_OPT_OFFSET, its code and length bytes, a 255-byte value) fits, so
// an overrun is seen as one and never wraps into a bogus in-range offset.
const _: () = assert!(MAX_OPT_OFFSET + 2 + u8::MAX as usize <= OFFSET_MASK);
/// At most one server-seen event per CPU per this many nanoseconds (the
/// daemon holds its DHCP server quiet for minutes after one).
const SERVER_EVENT_GAP_NS: u64 = 100_000_000;

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

/// What [`walk_options`] returns: the options are recorded in `SCRATCH`.
const WALK_OK: u32 = 0;
/// What [`walk_options`] returns: the options are malformed.
const WALK_MALFORMED: u32 = 1;
/// What [`walk_options`] returns: no scratch space (should not happen).
const WALK_NO_SCRATCH: u32 = 2;

/// Walks the options from `start` with a bounded loop, recording where the
/// interesting ones are in `SCRATCH`; returns a pointer to that record.
#[inline(always)]
fn options(ctx: &XdpContext, start: usize) -> Result<&'static Options, Stop> {
    match walk_options(ctx.ctx, start as u32) {
        WALK_OK => {}
        WALK_MALFORMED => return Err(Stop::DhcpMalformed),
        _ => return Err(Stop::NoScratch),
    }
    let o = SCRATCH.get_ptr_mut(0).ok_or(Stop::NoScratch)?;
    // SAFETY: map values live as long as the program.
    Ok(unsafe { &*o })
}

/// The option walk, as a global BPF function (context and integer
/// arguments, integer result): the verifier checks it once, on its own,
/// instead of once per state of the paths around its call, which keeps
/// the classifier far under the 1M-instruction budget and leaves room for
/// the fast paths. Returns `WALK_OK` with the options in `SCRATCH`,
/// `WALK_MALFORMED` or `WALK_NO_SCRATCH`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn walk_options(raw: *mut xdp_md, start: u32) -> u32 {
    let ctx = XdpContext::new(raw);
    let Some(o) = SCRATCH.get_ptr_mut(0) else {
        return WALK_NO_SCRATCH;
    };
    // SAFETY: per-CPU map value, no other user on this CPU while we run.
    unsafe {
        (*o).msg_type = 0;
        (*o).requested = 0;
        (*o).client_id = 0;
        (*o).client_id_len = 0;
        (*o).vendor_class = 0;
        (*o).vendor_class_len = 0;
    }
    let mut p = start as usize;
    for _ in 0..MAX_OPTIONS {
        // Forget p's exact range (LLVM may not drop the mask: `p` is opaque
        // to it): every iteration then starts in one verifier state, so
        // pruning keeps the walk linear in the number of iterations.
        p = core::hint::black_box(p) & OFFSET_MASK;
        if p > MAX_OPT_OFFSET {
            return WALK_MALFORMED;
        }
        let Ok(code) = u8_at(&ctx, p) else {
            return WALK_MALFORMED;
        };
        if code == 255 {
            return WALK_OK;
        }
        if code == 0 {
            p += 1;
            continue;
        }
        let Ok(len) = u8_at(&ctx, p + 1) else {
            return WALK_MALFORMED;
        };
        let len = usize::from(len);
        let value = p + 2;
        // The whole value must be inside the frame.
        if len > 0 && ptr_at::<u8>(&ctx, value + len - 1).is_err() {
            return WALK_MALFORMED;
        }
        // SAFETY: as above.
        unsafe {
            match code {
                53 if len >= 1 => {
                    let Ok(t) = u8_at(&ctx, value) else {
                        return WALK_MALFORMED;
                    };
                    (*o).msg_type = u32::from(t);
                }
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
    WALK_MALFORMED
}

/// Classifies a DHCP message whose BOOTP header starts at `bootp`: learns
/// and reports clients from requests, addresses from ACKs and servers from
/// OFFERs. DHCP always passes.
///
/// A function of its own, called on the frames [`steady_plain`] leaves
/// (tagged or with IPv4 options, new clients, replies, requests whose
/// message type is not the first option). The classifier's own function
/// is then smaller, and its fast paths measured lower and steadier: DHCP
/// 1.20x to 1.21x against 1.20x to 1.26x inlined, non-matching 1.18x to
/// 1.23x against 1.19x to 1.26x (`bench dataplane`). It takes the
/// context's raw pointer: given a reference, LLVM may pass the packet
/// pointers themselves (it did for `director_port`), which the verifier
/// refuses to follow.
#[inline(never)]
pub(crate) fn dhcp(
    raw: *mut xdp_md,
    policy: Policy,
    l2: &L2,
    bootp: usize,
    from_client: bool,
) -> Result<u32, Stop> {
    let ctx = &XdpContext::new(raw);
    // The fixed header and magic cookie must be present.
    let b = ptr_at::<Bootp>(ctx, bootp)?;
    // SAFETY: bounds checked by `ptr_at`.
    if !unsafe { well_formed(b, from_client) } {
        return Err(Stop::DhcpMalformed);
    }
    let start = bootp + size_of::<Bootp>();
    if let Ok(first) = ptr_at::<[u8; 3]>(ctx, start) {
        // SAFETY: bounds checked by `ptr_at`; a byte array needs no alignment.
        if unsafe { steady(l2, b, *first, from_client) } {
            return Ok(XDP_PASS);
        }
    }
    // SAFETY: bounds checked by `ptr_at`; `Bootp` is all bytes (align 1).
    let (xid, yiaddr, key) = unsafe {
        (
            u32::from_be_bytes((*b).xid),
            (*b).yiaddr,
            key_at(&raw const (*b).chaddr),
        )
    };
    let chaddr = key.mac;
    let now = now_ns();
    // One walk for every other case (a single call site keeps the
    // verifier's work on it linear).
    let opts = options(ctx, start)?;

    if from_client {
        count(counter::DHCP_REQUEST_PASS);
        if let Some(e) = CLIENTS.get_ptr_mut(key) {
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
        // The mask re-bounds an offset read back from scratch (it loses
        // nothing: see OFFSET_MASK).
        let requested = opts.requested as usize & OFFSET_MASK;
        let ipv4 = if requested != 0 {
            // SAFETY: bounds checked by `ptr_at`.
            unsafe { *ptr_at::<[u8; 4]>(ctx, requested)? }
        } else {
            [0; 4]
        };
        new_entry(&key, now, l2, xid, opts.msg_type as u8, state::NEW, [0; 4]);
        emit(ctx, event::NEW_CLIENT, now, chaddr, l2, xid, opts, ipv4);
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
        let trusted = !policy.dhcp_trusted_only() || unsafe { DHCP_TRUSTED.get(ifindex) }.is_some();
        if !trusted {
            count(counter::DHCP_OFFER_UNTRUSTED);
        } else if rate_allows(&SERVER_EVENT_TS, now, SERVER_EVENT_GAP_NS) {
            let ip = ptr_at::<Ipv4Hdr>(ctx, l2.l3)?;
            // SAFETY: bounds checked by `ptr_at`; `Ipv4Hdr` is all bytes.
            let server_ip = unsafe { (*ip).src_addr };
            emit(
                ctx,
                event::DHCP_SERVER_SEEN,
                now,
                l2.src.mac,
                l2,
                xid,
                opts,
                server_ip,
            );
        } else {
            count(counter::SERVER_EVENT_LIMITED);
        }
    }
    if msg_type != DHCPACK {
        return Ok(XDP_PASS);
    }
    if let Some(e) = CLIENTS.get_ptr_mut(key) {
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
                opts,
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
            opts,
            yiaddr,
        );
        count(counter::ADDRESS_LEARNED);
    }
    Ok(XDP_PASS)
}

/// Whether the BOOTP header at `b` is one the classifier reads: Ethernet
/// addresses, the DHCP magic cookie, and a request from a client
/// (`from_client`) or a reply to one.
///
/// # Safety
/// `b` must be within the frame.
#[inline(always)]
unsafe fn well_formed(b: *const Bootp, from_client: bool) -> bool {
    let op = if from_client { 1 } else { 2 };
    // `op`, `htype` and `hlen` in one word, as they lie in the frame.
    let (want, mask) = (
        u32::from_ne_bytes([op, 1, 6, 0]),
        u32::from_ne_bytes([0xff, 0xff, 0xff, 0]),
    );
    // SAFETY: within the frame (caller); unaligned reads of its bytes.
    let (first, cookie) = unsafe {
        (
            b.cast::<u32>().read_unaligned(),
            (&raw const (*b).cookie).read_unaligned(),
        )
    };
    cookie == DHCP_MAGIC.to_be_bytes() && first & mask == want
}

/// The fast path of a known client in a steady state: its message type is
/// the first option (`first`: code, length, value; where clients and
/// servers put it), and the frame changes nothing the daemon must hear
/// about: a request other than a DISCOVER (which may mean an upgrading
/// client reloaded), or an ACK that confirms the address the client has.
/// Updates the client's fields, counts the verdict and returns `true`;
/// `false` sends the frame down the full path (the option walk, events).
/// No option walk, one map lookup: a malformed option after the first is
/// not looked for here (the frame passes either way).
///
/// The header's fields are read where they are needed, after the lookup:
/// read before it, they would be kept on the stack across the call.
///
/// # Safety
/// `b` must be within the frame, and [`well_formed`].
#[inline(always)]
unsafe fn steady(l2: &L2, b: *const Bootp, first: [u8; 3], from_client: bool) -> bool {
    let [code, len, msg_type] = first;
    if code != 53 || len != 1 {
        return false;
    }
    if from_client {
        if u32::from(msg_type) == DHCPDISCOVER {
            return false;
        }
    } else if msg_type != DHCPACK {
        return false;
    }
    // SAFETY: within the frame (caller); `Bootp` is all bytes (align 1).
    let Some(e) = CLIENTS.get_ptr_mut(unsafe { key_at(&raw const (*b).chaddr) }) else {
        return false;
    };
    // SAFETY: map value pointer from a successful lookup; `b` as above.
    unsafe {
        if !from_client && ((*e).ipv4 != (*b).yiaddr || (*e).state == state::NEW) {
            return false;
        }
        touch_dhcp(e, now_ns(), l2, u32::from_be_bytes((*b).xid), msg_type);
    }
    count(if from_client {
        counter::DHCP_REQUEST_PASS
    } else {
        counter::DHCP_REPLY_PASS
    });
    true
}

/// [`steady`] for a request in the common frame, untagged IPv4 without
/// options ([`crate::headers::PLAIN_L4`]): one bounds check covers the BOOTP header
/// and the first option, and every field is read at its constant offset.
/// `false` when the frame is not that or not steady: [`dhcp`] then decides.
#[inline(always)]
pub(crate) fn steady_plain(ctx: &XdpContext) -> bool {
    let from_client = true;
    const BOOTP: usize = crate::headers::PLAIN_L4 + size_of::<UdpHdr>();
    const FIRST: usize = BOOTP + size_of::<Bootp>();
    let Ok(p) = head::<[u8; FIRST + 3]>(ctx) else {
        return false;
    };
    let p = p.cast::<u8>();
    // SAFETY: `head` checked the frame holds `FIRST + 3` bytes.
    let (b, first) = unsafe {
        (
            p.add(BOOTP).cast::<Bootp>(),
            p.add(FIRST).cast::<[u8; 3]>().read(),
        )
    };
    // SAFETY: as above.
    if !unsafe { well_formed(b, from_client) } {
        return false;
    }
    // SAFETY: as above.
    let l2 = L2::untagged(ctx, unsafe {
        key_at(&raw const (*p.cast::<EthHdr>()).src_addr)
    });
    // SAFETY: as above, and well formed.
    unsafe { steady(&l2, b, first, from_client) }
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
        admission_cache: 0,
        ipv4,
        xid,
        vlan: l2.vlan,
        svlan: l2.svlan,
        state: st,
        dhcp_msg: msg,
        _pad: [0; 2],
    };
    if CLIENTS.insert(key, entry, BPF_NOEXIST as u64).is_err() {
        count(counter::MAP_INSERT_FAILED);
    }
}

/// Copies up to `OPT_BYTES` option bytes from the frame into `dst`; returns the count.
#[inline(always)]
fn copy_option(ctx: &XdpContext, off: u32, len: u32, dst: &mut [u8; OPT_BYTES]) -> u8 {
    // Offsets read back from scratch are within OFFSET_MASK and lengths
    // below 256: the masks only re-bound them for the verifier.
    let (off, len) = (off as usize & OFFSET_MASK, (len & 0xff) as usize);
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
