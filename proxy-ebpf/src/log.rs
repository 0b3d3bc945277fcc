//! aya-log lines for the rare events worth one (an SMI drop and its
//! reason, a malformed DHCP frame), written only while the policy's
//! `log_events` is set (`debug vstack smi-proxy`) and at most one per CPU
//! per [`LOG_GAP_NS`]. The fast path never reaches this code.
//!
//! Each is a global BPF function (`no_mangle`, `extern "C"`, integer or
//! context arguments): the verifier checks its body once, on its own. The
//! same code inlined, or as a static subprogram, is verified again for
//! every state that reaches the call (a malformed frame is found on any of
//! the option walk's exits), which pushed the program over the verifier's
//! 1M-instruction budget (measured).

use aya_ebpf::bindings::xdp_md;
use aya_ebpf::helpers::bpf_ktime_get_ns;
use aya_ebpf::macros::map;
use aya_ebpf::maps::PerCpuArray;
use aya_ebpf::programs::XdpContext;
use proxy_common::drop_reason;

use crate::headers::src_mac;
use crate::maps::{Policy, rate_allows};

/// At most one line per CPU per this many nanoseconds: a debug switch
/// turned on during a flood costs a bounded 100 lines a second per CPU.
const LOG_GAP_NS: u64 = 10_000_000;

/// Time of the last line on this CPU.
#[map(name = "LOG_TS")]
static LOG_TS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// A MAC address in the low 48 bits of a word (a global function's
/// arguments are integers).
#[inline(always)]
pub(crate) fn mac_word(mac: [u8; 6]) -> u64 {
    let mut w = [0u8; 8];
    w[2..].copy_from_slice(&mac);
    u64::from_be_bytes(w)
}

#[inline(always)]
fn mac_of(word: u64) -> [u8; 6] {
    let b = word.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// Whether a line may be written at `now`: the policy asks for it and this
/// CPU wrote none in the last [`LOG_GAP_NS`].
#[inline(always)]
fn allowed(now: u64) -> bool {
    Policy.log_events() && rate_allows(&LOG_TS, now, LOG_GAP_NS)
}

/// Logs a dropped SMI segment from `mac` on `vlan`, with its
/// `drop_reason` (and the header's length word, for an oversize drop).
/// Returns 0 (a global function returns a scalar).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn smi_dropped(mac: u64, vlan: u32, reason: u32, len_word: u32) -> u32 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    if !allowed(unsafe { bpf_ktime_get_ns() }) {
        return 0;
    }
    let why = match reason as u8 {
        drop_reason::WRONG_VLAN => "not a startup VLAN",
        drop_reason::NOT_ADMITTED => "client not admitted",
        _ => {
            aya_log_ebpf::info!(
                &(),
                "SMI dropped from {:mac} on vlan {}: length word {} over the cap",
                mac_of(mac),
                vlan,
                len_word
            );
            return 0;
        }
    };
    aya_log_ebpf::info!(
        &(),
        "SMI dropped from {:mac} on vlan {}: {}",
        mac_of(mac),
        vlan,
        why
    );
    0
}

/// Logs a DHCP frame whose options could not be walked (it passes and
/// teaches the classifier nothing), with its sender. Takes the raw context
/// (a global function's arguments are integers or the context). Returns 0.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn dhcp_malformed(raw: *mut xdp_md) -> u32 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    if !allowed(unsafe { bpf_ktime_get_ns() }) {
        return 0;
    }
    let ctx = XdpContext::new(raw);
    let Ok(mac) = src_mac(&ctx) else {
        return 0;
    };
    aya_log_ebpf::info!(
        &ctx,
        "malformed DHCP frame from {:mac}: passed, not learned",
        mac
    );
    0
}
