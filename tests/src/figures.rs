//! Figures of one lab run, for `smi-bench lab`: onboarding times per switch,
//! the proxy process's CPU time and memory (from `/proc`), and PnP exchange
//! timing as the PnP server saw it.
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::pnp_server::{LogEntry, Received, ResponseBody};

/// What `smi-lab --report` writes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LabFigures {
    /// Switches in the run.
    pub clients: usize,
    /// Switches that finished.
    pub done: usize,
    /// From the first boot to the last switch done, seconds.
    pub onboard_s: f64,
    /// Per switch, from its boot to done: median, seconds.
    pub per_switch_p50_s: f64,
    /// Per switch, from its boot to done: 99th percentile, seconds.
    pub per_switch_p99_s: f64,
    /// CPU time (user + system) the proxy daemon used during the run, seconds.
    pub proxy_cpu_s: f64,
    /// The daemon's peak resident memory (VmHWM), KiB.
    pub proxy_peak_rss_kib: u64,
    /// The daemon's resident memory before the first switch booted, KiB.
    pub proxy_rss_start_kib: u64,
    /// The daemon's resident memory when the last switch was done, KiB.
    pub proxy_rss_end_kib: u64,
    /// The daemon's resident memory at rest: [`REST`] after the last
    /// switch was done (its allocator hands pages unused for a second
    /// back), KiB.
    pub proxy_rss_rest_kib: u64,
    /// Messages the PnP server received from the proxy's agents (HELLO
    /// excluded): work-requests and work-responses.
    pub pnp_exchanges: u64,
    /// The same, per second of the run.
    pub pnp_exchanges_per_s: f64,
    /// Proxy-added latency per PnP exchange, median, ms: for every job the
    /// proxy answers from its database (device-info), the time from the
    /// server receiving the work-request to receiving its work-response.
    pub added_latency_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub added_latency_p99_ms: f64,
    /// How the emulated switches ran: `netns` or `packet`.
    #[serde(default)]
    pub emulator: String,
    /// The attack put on the segment during the run (`none`).
    #[serde(default)]
    pub attack: String,
    /// What the attack sent (frames, requests or connections).
    #[serde(default)]
    pub attack_units: u64,
    /// How long it ran, seconds.
    #[serde(default)]
    pub attack_secs: f64,
}

/// How long after the daemon is ready the lab samples its idle memory
/// (the baseline of the per-client figure): past the second after which
/// its allocator returns the pages start-up freed.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// How long after the last switch the lab samples the daemon's memory at
/// rest: well past the second after which the daemon's allocator (jemalloc)
/// returns unused pages, and past tokio's keep-alive of idle blocking
/// threads (10 s).
pub const REST: std::time::Duration = std::time::Duration::from_secs(12);

impl LabFigures {
    /// Resident memory per client at rest, KiB.
    pub fn rss_per_client_kib(&self) -> f64 {
        let grown = self
            .proxy_rss_rest_kib
            .saturating_sub(self.proxy_rss_start_kib);
        grown as f64 / self.clients.max(1) as f64
    }
}

/// CPU and memory of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Peak resident set, KiB.
    pub hwm_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn proc_sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        let v: u64 = fields
            .get(i - 3)
            .context("short /proc stat")?
            .parse()
            .context("/proc stat field")?;
        Ok(v as f64)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_s = (ticks(14)? + ticks(15)?) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu_s,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// The `q` quantile (0..=1) of `values` (nearest rank); 0 when empty.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// PnP exchanges (work-requests and responses) in the server's log, and the
/// proxy's turnaround on the jobs it answers from its own database: for
/// each device-info response, the time since the same UDI's work-request.
pub fn pnp_timing(entries: &[LogEntry]) -> (u64, Vec<Duration>) {
    use std::collections::HashMap;
    let mut exchanges = 0;
    let mut asked = HashMap::new();
    let mut turnaround = Vec::new();
    for e in entries {
        let Some(udi) = &e.udi else { continue };
        match &e.received {
            Received::WorkRequest(_) => {
                exchanges += 1;
                asked.insert(udi.clone(), e.at);
            }
            Received::Response(r) => {
                exchanges += 1;
                let from_db = matches!(r.body, ResponseBody::DeviceInfo(_));
                if let Some(at) = asked.remove(udi).filter(|_| from_db) {
                    turnaround.push(e.at.saturating_duration_since(at));
                }
            }
            _ => {}
        }
    }
    (exchanges, turnaround)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut v, 1.0), 100.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
        assert_eq!(quantile(&mut [7.0], 0.99), 7.0);
    }

    #[test]
    fn own_process() {
        let s = proc_sample(std::process::id()).expect("own /proc");
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{s:?}");
    }

    #[test]
    fn per_client_memory() {
        let f = LabFigures {
            clients: 100,
            proxy_rss_start_kib: 10_000,
            proxy_rss_end_kib: 12_000,
            proxy_rss_rest_kib: 10_500,
            ..LabFigures::default()
        };
        assert_eq!(f.rss_per_client_kib(), 5.0, "at rest, not at the end");
    }
}
