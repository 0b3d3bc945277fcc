//! The maps shared by the classifier and the daemon, and the small accessors
//! every path uses (the clock, counters, admission state, event rate
//! limits).

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use proxy_common::{
    CLIENTS_MAX, ClientEntry, ClientKey, DHCP_TRUSTED_MAX, EVENTS_BYTES, admission_cache, counter,
};

/// Client MAC -> state; pinned so that a daemon restart keeps it.
#[map(name = "CLIENTS")]
pub(crate) static CLIENTS: LruHashMap<ClientKey, ClientEntry> = LruHashMap::pinned(CLIENTS_MAX, 0);

/// Client MAC -> admission state (one of `state`), written only by the
/// daemon: it overrides the learned state of `CLIENTS`, which only this
/// program writes after the daemon created an entry. One writer per field,
/// so neither side's update can undo the other's. Pinned beside `CLIENTS`.
#[map(name = "ADMISSION")]
pub(crate) static ADMISSION: LruHashMap<ClientKey, u32> = LruHashMap::pinned(CLIENTS_MAX, 0);

/// The admission epoch at index 0, written only by the daemon: one more
/// after each write to `ADMISSION` (see `proxy_common::admission_cache`).
#[map(name = "ADMISSION_EPOCH")]
pub(crate) static ADMISSION_EPOCH: Array<u64> = Array::pinned(1, 0);

/// The daemon's policy: a global variable in a data section of its own,
/// which aya loads as a one-element array the daemon writes
/// (`proxy_common::maps::POLICY`). The classifier reads it at a constant
/// address, not through a map lookup on every frame (0.6 ns of a known
/// client's 25). Read only through [`Policy`]'s volatile reads: the program
/// never writes it, and LLVM could otherwise fold its initial value into
/// the code.
#[unsafe(link_section = ".data.policy")]
#[unsafe(no_mangle)]
static mut POLICY: proxy_common::Policy = unsafe { core::mem::zeroed() };

/// The daemon's policy, each field read from [`POLICY`] when asked.
#[derive(Clone, Copy)]
pub(crate) struct Policy;

/// One field of [`POLICY`], read now.
macro_rules! policy_field {
    ($field:ident) => {
        // SAFETY: an aligned read of a field of a global; the daemon's
        // writes go through the map, outside the program.
        unsafe { core::ptr::read_volatile(&raw const POLICY.$field) }
    };
}

impl Policy {
    /// The VLAN an untagged frame is on.
    #[inline(always)]
    pub(crate) fn untagged_vlan(self) -> u16 {
        policy_field!(untagged_vlan)
    }

    /// Whether `vlan` is a startup VLAN.
    #[inline(always)]
    pub(crate) fn is_startup_vlan(self, vlan: u16) -> bool {
        let (w, bit) = proxy_common::Policy::startup_vlan_bit(vlan);
        // SAFETY: as in `policy_field`; `w` is within the bitmap.
        let word = unsafe { core::ptr::read_volatile(&raw const POLICY.startup_vlans[w]) };
        word & bit != 0
    }

    /// Whether refused frames are dropped (else counted and passed).
    #[inline(always)]
    pub(crate) fn enforce(self) -> bool {
        policy_field!(enforce) != 0
    }

    /// The largest SMI length word admitted; 0 for no cap.
    #[inline(always)]
    pub(crate) fn smi_len_cap(self) -> u32 {
        policy_field!(smi_len_cap)
    }

    /// Whether OFFERs are believed only from the trusted ports.
    #[inline(always)]
    pub(crate) fn dhcp_trusted_only(self) -> bool {
        policy_field!(dhcp_trusted_only) != 0
    }

    /// Whether rare events are logged.
    #[inline(always)]
    pub(crate) fn log_events(self) -> bool {
        policy_field!(log_events) != 0
    }
}

/// Per-CPU counters, indexed by `proxy_common::counter`.
#[map(name = "COUNTERS")]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Ports (ifindex -> 1) whose DHCP OFFERs are believed when the policy
/// trusts only some ([`Policy::dhcp_trusted_only`]).
#[map(name = "DHCP_TRUSTED")]
pub(crate) static DHCP_TRUSTED: HashMap<u32, u32> = HashMap::with_max_entries(DHCP_TRUSTED_MAX, 0);

/// Time of the last `DHCP_SERVER_SEEN` event on this CPU (rate limit).
#[map(name = "SERVER_EVENT_TS")]
pub(crate) static SERVER_EVENT_TS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Time of the last `SMI_DROPPED` event on this CPU (rate limit).
#[map(name = "DROP_EVENT_TS")]
pub(crate) static DROP_EVENT_TS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Events for the daemon.
#[map(name = "EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// The time stamped on entries and events: `CLOCK_MONOTONIC` at the
/// resolution of a tick (`bpf_ktime_get_coarse_ns`). A client's last-seen
/// time and the events' rate limits need no more; `bpf_ktime_get_ns` cost
/// 24 ns a frame on the machines this was measured on (a guest reading its
/// TSC), more than the rest of a known client's path.
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Adds one to the per-CPU counter `index`.
#[inline(always)]
pub(crate) fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no other writer on this CPU during the program.
        unsafe { *c += 1 };
    }
}

/// Counts `index` and passes the frame.
#[inline(always)]
pub(crate) fn count_pass(index: u32) -> u32 {
    count(index);
    XDP_PASS
}

/// Adds to a per-client counter. Not atomic (the BPF target has no atomic
/// read-modify-write in core): two CPUs updating the same client in the same
/// instant may lose a count. Verdict counters are per-CPU and exact.
///
/// # Safety
/// `p` must point into a map value.
#[inline(always)]
pub(crate) unsafe fn add(p: *mut u64, v: u64) {
    // SAFETY: map values are 8-byte aligned and live while the program runs.
    unsafe { *p = (*p).wrapping_add(v) };
}

/// Counts a passed SMI segment of `bytes` on the client's entry `e`, seen
/// at `now`.
///
/// # Safety
/// `e` must point into a `ClientEntry` map value.
#[inline(always)]
pub(crate) unsafe fn count_smi(e: *mut ClientEntry, now: u64, bytes: u64) {
    // SAFETY: a map value (caller), 8-byte aligned.
    unsafe {
        (*e).last_seen_ns = now;
        add(&raw mut (*e).smi_pkts, 1);
        add(&raw mut (*e).smi_bytes, bytes);
    }
}

/// The map key of the MAC address at `p`, wherever it lies: read as a
/// 4-byte and a 2-byte word, put together in a register and stored in one
/// aligned 8-byte store. The kernel's hash reads a key as 4-byte words,
/// and a word put together from narrower stores on the stack cannot be
/// forwarded from them (a store-forwarding stall of about 4 ns a lookup,
/// measured on the reference program). Built field by field, LLVM also
/// stored part of the address at an odd stack offset, which the verifier
/// refuses.
///
/// # Safety
/// `p` must be within the frame (or any readable memory).
#[inline(always)]
pub(crate) unsafe fn key_at(p: *const [u8; 6]) -> ClientKey {
    let p = p.cast::<u8>();
    // SAFETY: within readable memory (caller); unaligned reads.
    let (lo, hi) = unsafe {
        (
            u64::from(p.cast::<u32>().read_unaligned()),
            u64::from(p.add(4).cast::<u16>().read_unaligned()),
        )
    };
    // The address bytes, then the two zero padding bytes, as they lie in
    // memory.
    let word = if cfg!(target_endian = "little") {
        lo | hi << 32
    } else {
        lo << 32 | hi << 16
    };
    // SAFETY: `ClientKey` is 8 bytes, `repr(C, align(8))`, all integers:
    // the address and the two zero padding bytes, in this order.
    unsafe { core::mem::transmute::<u64, ClientKey>(word) }
}

/// The daemon's admission state of `key`, if it set one.
#[inline(always)]
pub(crate) fn admission(key: &ClientKey) -> Option<u8> {
    // SAFETY: read-only lookup of a plain value.
    unsafe { ADMISSION.get(key) }.map(|s| *s as u8)
}

/// The state that decides for a client with entry `e`: the daemon's
/// admission state where it set one, else the learned state. The admission
/// state comes from the entry's cache while the admission epoch is
/// unchanged, so a client in a steady state costs no `ADMISSION` lookup.
///
/// # Safety
/// `e` must point to the `CLIENTS` value of `key`.
#[inline(always)]
pub(crate) unsafe fn decisive_state(e: *mut ClientEntry, key: &ClientKey) -> u8 {
    let epoch = ADMISSION_EPOCH.get(0).copied().unwrap_or(0);
    // SAFETY: map value pointer from a successful lookup (caller).
    let cache = unsafe { core::ptr::read_volatile(&raw const (*e).admission_cache) };
    let st = match admission_cache::state_at(cache, epoch) {
        Some(st) => st,
        None => {
            let st = admission(key).unwrap_or(0);
            // SAFETY: as above; one aligned 8-byte store.
            unsafe {
                core::ptr::write_volatile(
                    &raw mut (*e).admission_cache,
                    admission_cache::pack(epoch, st),
                )
            };
            st
        }
    };
    if st != 0 {
        st
    } else {
        // SAFETY: as above.
        unsafe { (*e).state }
    }
}

/// Whether an event may go out now: at most one per CPU per `gap_ns`,
/// by the time kept in `slot`.
#[inline(always)]
pub(crate) fn rate_allows(slot: &PerCpuArray<u64>, now: u64, gap_ns: u64) -> bool {
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
