//! The two clocks the proxy reads: wall-clock seconds for the database and
//! `CLOCK_MONOTONIC` nanoseconds, the clock of the XDP program's
//! `bpf_ktime_get_ns`, for comparing with the kernel map's timestamps.

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` in nanoseconds, as `bpf_ktime_get_ns` reads it.
pub fn monotonic_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    // Linux always has CLOCK_MONOTONIC; 0 stands for the impossible failure.
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        (ts.tv_sec() as u64).saturating_mul(1_000_000_000) + ts.tv_nsec() as u64
    })
}
