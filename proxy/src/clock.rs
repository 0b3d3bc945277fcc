//! The two clocks the proxy reads: wall-clock seconds for the database and
//! `CLOCK_MONOTONIC` nanoseconds, the clock of the XDP program's
//! timestamps (read at tick resolution there), for comparing with the kernel map's timestamps; and
//! the UTC calendar date the IOS-style outputs print.

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` in nanoseconds, the XDP program's clock.
pub fn monotonic_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    // Linux always has CLOCK_MONOTONIC; 0 stands for the impossible failure.
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        (ts.tv_sec() as u64).saturating_mul(1_000_000_000) + ts.tv_nsec() as u64
    })
}

/// The UTC date of a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcDate {
    /// The year.
    pub year: u64,
    /// `Jan` to `Dec`.
    pub month_name: &'static str,
    /// The day of the month, 1-31.
    pub day: u64,
}

/// The UTC date of Unix time `unix_secs`.
pub fn utc_date(unix_secs: u64) -> UtcDate {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = civil_from_days(unix_secs / 86_400);
    UtcDate {
        year,
        month_name: MONTHS
            .get(month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("???"),
        day,
    }
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
