//! What the control socket and `/metrics` see and change in the running
//! daemon.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use proxy_common::Policy;

use super::flags::{ConfigFile, policy_for};
use super::wiring::{Base, Running, Services};
use crate::config::{self, ConfigError, LocalAddrs, ProxyConfig};
use crate::dataplane::{self, Dataplane};

/// The running configuration and the file it is saved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ConfigState {
    /// The configuration in effect.
    pub(super) running: ProxyConfig,
    /// The file (without the command-line overrides), if any.
    pub(super) file: Option<ConfigFile>,
}

impl ConfigState {
    /// Applies the IOS line `line` to copies of the running configuration
    /// and of the file's: the new state and the operator's answer. The file
    /// copy is changed by the same line, so command-line overrides are
    /// never written to the file; a line that the file's configuration
    /// refuses (it lacks what a flag supplied) changes only the running one.
    pub(super) fn apply(&self, line: &str, local: &LocalAddrs) -> Result<(Self, String), String> {
        let mut next = self.clone();
        let changes = config::execute(&mut next.running, line, local)
            .map_err(|e| config::refusal(line, &e))?;
        let mut answer = config::summary(&changes);
        if changes.is_empty() {
            return Ok((next, answer));
        }
        if let Some(file) = &mut next.file {
            if let Err(e) = config::execute(&mut file.config, line, local) {
                answer.push_str(&format!(
                    "% Not saved to {}: {}\n",
                    file.path.display(),
                    e.to_string().trim_start_matches("% ")
                ));
            }
        }
        Ok((next, answer))
    }

    /// Writes the file's configuration back if it differs from `before`'s.
    pub(super) fn save_if_changed(&self, before: &Self) -> Result<(), ConfigError> {
        match (&self.file, &before.file) {
            (Some(now), Some(then)) if now.config != then.config => now.config.save(&now.path),
            _ => Ok(()),
        }
    }
}

/// Whether the classifier should log its rare events: while the debug
/// switch `smi-proxy` (the proxy's operations) or `all` is on.
pub(super) fn xdp_log_wanted() -> bool {
    crate::logging::active()
        .iter()
        .any(|name| matches!(*name, "smi-proxy" | "all"))
}

/// What the control socket can see and change in the running daemon.
pub(super) struct Control {
    /// What outlives the services (database, table, counters).
    base: Arc<Base>,
    /// The running generation; locked while it changes.
    services: tokio::sync::Mutex<Option<Services>>,
    /// A view of it for the synchronous readers (show, metrics).
    running: std::sync::Mutex<Running>,
    dataplane: Arc<std::sync::Mutex<Dataplane>>,
    config: std::sync::Mutex<ConfigState>,
    extra_startup_vlans: Vec<u16>,
    health_window: Duration,
}

impl Control {
    /// Control over `services` (the first generation, already running).
    pub(super) fn new(
        base: Arc<Base>,
        services: Services,
        dataplane: Arc<std::sync::Mutex<Dataplane>>,
    ) -> Self {
        let run = &base.run;
        Self {
            running: std::sync::Mutex::new(services.running()),
            services: tokio::sync::Mutex::new(Some(services)),
            dataplane,
            config: std::sync::Mutex::new(ConfigState {
                running: run.config.clone(),
                file: run.file.clone(),
            }),
            extra_startup_vlans: run.extra_startup_vlans.clone(),
            health_window: run.health_window,
            base,
        }
    }

    fn running(&self) -> Running {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes the services follow `cfg` ([`Services::reconcile`]).
    async fn reconcile(&self, cfg: &ProxyConfig) -> anyhow::Result<()> {
        let mut slot = self.services.lock().await;
        let result = match slot.take() {
            Some(current) => current.reconcile(&self.base, cfg).await,
            None => Services::start(&self.base, cfg).await,
        };
        let (services, outcome) = match result {
            Ok(services) => (services, Ok(())),
            Err(e) => (Services::none(&self.base), Err(e)),
        };
        *self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = services.running();
        *slot = Some(services);
        outcome
    }

    /// Stops the services (daemon shutdown).
    pub(super) async fn stop(&self, why: &str) {
        if let Some(services) = self.services.lock().await.take() {
            services.stop(why).await;
        }
    }

    fn config(&self) -> std::sync::MutexGuard<'_, ConfigState> {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_policy(&self, policy: &Policy) -> Result<(), String> {
        self.dataplane
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_policy(policy)
            .map_err(|e| format!("% dataplane: {e}"))
    }
}

impl crate::control::ControlHandler for Control {
    fn show_view(&self) -> crate::show::ShowView {
        use crate::show::{ClientView, ShowView};
        let cfg = self.config().running.clone();
        let running = self.running();
        let running_ip = running.core.as_ref().map(|c| c.config().proxy_ip);
        // The configured address as it resolves now; the director's own
        // while it cannot be resolved.
        let proxy_ip = if cfg.proxy_configured() {
            LocalAddrs::system()
                .ok()
                .and_then(|local| cfg.proxy_ip(&local).ok().flatten())
                .or(running_ip)
        } else {
            None
        };
        let health = crate::logic::health(&self.base.table, self.health_window);
        let store = self
            .base
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A device that came back under another MAC (a stack's new active
        // member) is Inactive at its old one.
        let current = |record: &crate::store::ClientRecord| {
            record
                .udi
                .as_ref()
                .is_none_or(|udi| store.find_by_udi(udi).map(|r| r.mac) == Some(record.mac))
        };
        let clients = store
            .iter()
            .map(|record| ClientView {
                health_active: health.get(&record.mac).copied().unwrap_or(false) && current(record),
                record: record.clone(),
            })
            .collect();
        drop(store);
        ShowView {
            config: cfg.show_config(proxy_ip),
            clients,
        }
    }

    /// Applies the line to the running configuration; the dataplane follows
    /// the startup VLAN and enforcement at once, and a configuration file
    /// is rewritten (atomically) with the change. A failure to save leaves
    /// everything as it was.
    fn apply_config(&self, line: &str) -> Result<String, String> {
        let local =
            LocalAddrs::system().map_err(|e| format!("% cannot list local addresses: {e}"))?;
        let mut state = self.config();
        let (next, answer) = state.apply(line, &local)?;
        let before = policy_for(&state.running, &self.extra_startup_vlans);
        let after = policy_for(&next.running, &self.extra_startup_vlans);
        self.set_policy(&after)?;
        if let Err(e) = next.save_if_changed(&state) {
            let _ = self.set_policy(&before);
            return Err(format!("% {e}; the configuration is unchanged"));
        }
        *state = next;
        // The services follow before the command returns: after `no vstack
        // proxy` no SMI message leaves the proxy.
        let running = state.running.clone();
        drop(state);
        tokio::runtime::Handle::current()
            .block_on(self.reconcile(&running))
            .map_err(|e| {
                format!(
                    "{answer}% The configuration is saved, but the services did not follow: {e:#}"
                )
            })?;
        Ok(answer)
    }

    /// Sets a debug switch; the classifier logs its rare events while
    /// `smi-proxy` or `all` is on.
    fn set_debug(&self, target: &str, on: bool) -> Result<String, String> {
        let answer = crate::logging::set_debug(target, on).map_err(|e| e.to_string())?;
        self.dataplane
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_log_events(xdp_log_wanted())
            .map_err(|e| format!("{answer}% dataplane: {e}"))?;
        Ok(answer)
    }

    fn clients(&self) -> Result<String, String> {
        let table = self
            .dataplane
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .table();
        let entries = table.entries().map_err(|e| e.to_string())?;
        Ok(entries
            .iter()
            .map(|(mac, e)| {
                format!(
                    "{} {} vlan {} {}\n",
                    crate::mac::Mac(*mac),
                    dataplane::state_name(e.state),
                    e.vlan,
                    Ipv4Addr::from(e.ipv4)
                )
            })
            .collect())
    }
}

/// The `/metrics` collector of what is read at scrape time: the XDP
/// counters and the kernel map, the proxy database, the unidentified
/// clients and the running DHCP server's counters.
pub(super) struct Scrape(pub(super) Arc<Control>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

/// Encodes the family `name` of `kind` (a counter or a gauge): one sample
/// per `(label value, value)` of `samples`, each with the one label `label`.
fn family<'v>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &'static str,
    samples: impl IntoIterator<Item = (&'v str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (value, n) in samples {
        let labels = [(label, value)];
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(n).encode(sample)?,
            _ => ConstCounter::new(n).encode(sample)?,
        }
    }
    Ok(())
}

/// The count of each key of `keys`, in key order.
fn tally<'k>(keys: impl Iterator<Item = &'k str>) -> BTreeMap<&'k str, u64> {
    let mut counts = BTreeMap::new();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    counts
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let control = &self.0;
        let dp = control
            .dataplane
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counters = dp.counters().ok();
        let entries = dp.table().entries().ok();
        drop(dp);
        if let Some(counters) = counters {
            family(
                &mut encoder,
                "smi_proxy_xdp_frames",
                "Frames seen by the XDP classifier, by class and verdict or reason.",
                MetricType::Counter,
                "counter",
                proxy_common::counter::NAMES.iter().copied().zip(counters),
            )?;
        }
        if let Some(entries) = entries {
            let by_state = tally(entries.iter().map(|(_, e)| dataplane::state_name(e.state)));
            family(
                &mut encoder,
                "smi_proxy_kernel_clients",
                "Clients in the kernel map, by dataplane state.",
                MetricType::Gauge,
                "state",
                by_state,
            )?;
        }
        let running = control.running();
        if let Some(dhcp) = &running.dhcp {
            dhcp.collect(&mut encoder)?;
        }
        let by_state = {
            let store = control
                .base
                .store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tally(store.iter().map(|r| r.state.token()))
        };
        family(
            &mut encoder,
            "smi_proxy_clients",
            "Clients in the proxy database, by entry state.",
            MetricType::Gauge,
            "state",
            by_state,
        )?;
        if let Some(core) = &running.core {
            let (pending, evicted) = core.pending();
            let gauge = ConstGauge::new(pending as u64);
            gauge.encode(encoder.encode_descriptor(
                "smi_proxy_unidentified_clients",
                "Clients seen but not identified yet, held in memory (not in the database).",
                None,
                gauge.metric_type(),
            )?)?;
            let counter = ConstCounter::new(evicted);
            counter.encode(encoder.encode_descriptor(
                "smi_proxy_unidentified_evicted",
                "Unidentified clients evicted, oldest first, to stay within the bound.",
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
