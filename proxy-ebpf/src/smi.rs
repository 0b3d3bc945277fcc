//! Smart Install (TCP 4786): admitting or dropping a segment by the
//! client's state, its VLAN and the SMI header's length word.

use aya_ebpf::bindings::xdp_action::XDP_DROP;
use aya_ebpf::programs::XdpContext;
use network_types::ip::Ipv4Hdr;
use network_types::tcp::TcpHdr;
use proxy_common::{ClientEntry, Event, OPT_BYTES, counter, drop_reason, event, state};

use crate::headers::{Plain, SmiHdr, head, ptr_at};
use crate::maps::{
    CLIENTS, DROP_EVENT_TS, EVENTS, Policy, add, admission, count, count_pass, count_smi,
    decisive_state, now_ns, rate_allows,
};
use crate::{L2, Stop};

/// At most one SMI-dropped event per CPU per this many nanoseconds.
const DROP_EVENT_GAP_NS: u64 = 1_000_000;

/// Admits or drops an SMI segment going to the director (`to_director`)
/// or coming from it. `read_len_word` reads the SMI header's length word
/// ([`len_word`], [`len_word_plain`]); it is read only for a segment that
/// is otherwise admitted.
#[inline(always)]
pub(crate) fn smi(
    policy: Policy,
    l2: &L2,
    to_director: bool,
    read_len_word: impl FnOnce() -> Result<u32, Stop>,
) -> Result<u32, Stop> {
    let entry = CLIENTS.get_ptr_mut(l2.src);
    decide(policy, l2, to_director, entry, read_len_word)
}

/// [`smi`] for a client whose `CLIENTS` lookup found `entry`.
#[inline(always)]
pub(crate) fn decide(
    policy: Policy,
    l2: &L2,
    to_director: bool,
    entry: Option<*mut ClientEntry>,
    read_len_word: impl FnOnce() -> Result<u32, Stop>,
) -> Result<u32, Stop> {
    let key = &l2.src;
    let st = match entry {
        // SAFETY: map value pointer from a successful lookup of `key`.
        Some(e) => unsafe { decisive_state(e, key) },
        None => admission(key).unwrap_or(0),
    };
    let admitted = admits(st, to_director);
    let mut reason = 0u8;
    let mut len_word = 0u32;
    if !policy.is_startup_vlan(l2.vlan) {
        reason = drop_reason::WRONG_VLAN;
    } else if !admitted {
        reason = drop_reason::NOT_ADMITTED;
    } else if policy.smi_len_cap() != 0 {
        len_word = read_len_word()?;
        if len_word > policy.smi_len_cap() {
            reason = drop_reason::OVERSIZE;
        }
    }
    let now = now_ns();
    if reason == 0 {
        if let Some(e) = entry {
            // SAFETY: map value pointer from a successful lookup.
            unsafe { count_smi(e, now, l2.len) };
        }
        return Ok(count_pass(counter::SMI_PASS));
    }
    if !policy.enforce() {
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
    let mac = key.mac;
    emit_drop(now, mac, l2, reason, len_word);
    if policy.log_events() {
        crate::log::smi_dropped(
            crate::log::mac_word(mac),
            u32::from(l2.vlan),
            u32::from(reason),
            len_word,
        );
    }
    Ok(XDP_DROP)
}

/// The steady case of the common frame (see [`Plain`]): a segment of a
/// client with an entry, admitted in the direction of `to_director`, on a
/// startup VLAN (untagged), within the length cap. It is counted and
/// passes. Any other segment is left to [`plain_other`], with what the
/// client's lookup found.
///
/// Apart from [`decide`] so that this path holds nothing the others need:
/// built as one, the frame's length, its VLAN and the IPv4 length went to
/// the stack around the lookup. `bench dataplane`, in turn with the build
/// before (one path for every segment, a branch per direction): 1.40x and
/// 1.41x one lookup and update before, 1.31x and 1.35x with this path and
/// [`admits`].
#[inline(always)]
pub(crate) fn steady_plain(
    ctx: &XdpContext,
    p: Plain,
    to_director: bool,
) -> Result<u32, Option<*mut ClientEntry>> {
    let policy = Policy;
    let key = p.src_key();
    let entry = CLIENTS.get_ptr_mut(key);
    let Some(e) = entry else {
        return Err(entry);
    };
    // SAFETY: map value pointer from a successful lookup of `key`.
    let st = unsafe { decisive_state(e, &key) };
    if !admits(st, to_director) || !policy.is_startup_vlan(policy.untagged_vlan()) {
        return Err(entry);
    }
    let cap = policy.smi_len_cap();
    if cap != 0 {
        let len_word = len_word_plain(ctx, plain_l4_len(p)).map_err(|_| entry)?;
        if len_word > cap {
            return Err(entry);
        }
    }
    // SAFETY: map value pointer from a successful lookup.
    unsafe { count_smi(e, now_ns(), (ctx.data_end() - ctx.data()) as u64) };
    Ok(count_pass(counter::SMI_PASS))
}

/// The segments of the common frame `p` that [`steady_plain`] leaves,
/// decided by [`decide`] with the client's `entry` it found (no second
/// lookup).
#[inline(always)]
pub(crate) fn plain_other(
    ctx: &XdpContext,
    p: Plain,
    to_director: bool,
    entry: Option<*mut ClientEntry>,
) -> Result<u32, Stop> {
    let l2 = L2::untagged(ctx, p.src_key());
    let len_word = || len_word_plain(ctx, plain_l4_len(p));
    decide(Policy, &l2, to_director, entry, len_word)
}

/// TCP bytes (header and payload) of the common frame, as its IPv4
/// header claims.
#[inline(always)]
fn plain_l4_len(p: Plain) -> usize {
    usize::from(p.be16::<16>()).saturating_sub(size_of::<Ipv4Hdr>())
}

/// Whether a client in state `st` may send a segment to the director
/// (`to_director`, [`state::admits_smi`]) or from its own port 4786
/// ([`state::admits_smi_reply`]). One bit per state, the direction chosen
/// by arithmetic: with a branch per direction, each with its own chain of
/// compares, the steady path cost 1.34x one lookup and update, against
/// 1.27x with the direction a constant (a build of the path alone).
#[inline(always)]
fn admits(st: u8, to_director: bool) -> bool {
    /// The states (0..8) that `$admits` says yes to, one bit each.
    macro_rules! bits {
        ($admits:path) => {{
            let mut bits = 0u32;
            let mut s = 0u8;
            while s < 8 {
                if $admits(s) {
                    bits |= 1 << s;
                }
                s += 1;
            }
            bits
        }};
    }
    const TO: u32 = bits!(state::admits_smi);
    const FROM: u32 = bits!(state::admits_smi_reply);
    let mask = FROM ^ ((TO ^ FROM) & 0u32.wrapping_sub(u32::from(to_director)));
    st < 8 && (mask >> st) & 1 != 0
}

/// The SMI header's length word (w3) when the TCP segment at `l4`, of
/// `l4_len` bytes (header and payload), starts with an SMI header, else 0.
/// A header is recognised by w0 in 1..=4 and w1 in 0..=1: text and
/// continuation bytes do not look like that, and real SMI messages (at most
/// 1,048 bytes) travel in one segment.
#[inline(always)]
pub(crate) fn len_word(ctx: &XdpContext, l4: usize, l4_len: usize) -> Result<u32, Stop> {
    let tcp = ptr_at::<TcpHdr>(ctx, l4)?;
    // SAFETY: bounds checked by `ptr_at`; `TcpHdr` is all bytes (align 1).
    let doff = usize::from(unsafe { (*tcp).doff() }) * 4;
    if doff < size_of::<TcpHdr>() || l4_len < doff + size_of::<SmiHdr>() {
        return Ok(0);
    }
    let h = ptr_at::<SmiHdr>(ctx, l4 + doff)?;
    // SAFETY: bounds checked by `ptr_at`.
    Ok(unsafe { header_len_word(h) })
}

/// [`len_word`] for the common frame, TCP at [`crate::headers::PLAIN_L4`]. A
/// segment too short for an SMI header (a bare ACK) is told by `l4_len`
/// alone; one without TCP options has its SMI header at a constant
/// offset, under one bounds check; any other goes to [`len_word`].
#[inline(always)]
pub(crate) fn len_word_plain(ctx: &XdpContext, l4_len: usize) -> Result<u32, Stop> {
    const TCP: usize = crate::headers::PLAIN_L4;
    const SMI: usize = TCP + size_of::<TcpHdr>();
    /// Where the TCP header keeps its data offset (the high 4 bits).
    const DOFF: usize = TCP + 12;
    if l4_len < size_of::<TcpHdr>() + size_of::<SmiHdr>() {
        return Ok(0);
    }
    if let Ok(p) = head::<[u8; SMI + size_of::<SmiHdr>()]>(ctx) {
        let p = p.cast::<u8>();
        // SAFETY: bounds checked by `head`.
        if unsafe { p.add(DOFF).read() } >> 4 == (size_of::<TcpHdr>() / 4) as u8 {
            // SAFETY: as above; `SmiHdr` is all bytes (align 1).
            return Ok(unsafe { header_len_word(p.add(SMI).cast()) });
        }
    }
    len_word(ctx, TCP, l4_len)
}

/// The length word of the SMI header at `h`, or 0 when `h` does not hold
/// one (see [`len_word`]).
///
/// # Safety
/// `h` must be within the frame.
#[inline(always)]
unsafe fn header_len_word(h: *const SmiHdr) -> u32 {
    // SAFETY: within the frame (caller); `SmiHdr` is all bytes (align 1).
    let (from, version, len) = unsafe {
        (
            u32::from_be_bytes((*h).from),
            u32::from_be_bytes((*h).version),
            u32::from_be_bytes((*h).payload_len),
        )
    };
    if !(1..=4).contains(&from) || version > 1 {
        return 0;
    }
    len
}

#[inline(always)]
fn emit_drop(now: u64, mac: [u8; 6], l2: &L2, reason: u8, len_word: u32) {
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
        (*ev).mac = mac;
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
