//! What the control socket and `/metrics` see and change in the running
//! daemon.
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

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

    fn set_debug(&self, target: &str, on: bool) -> Result<String, String> {
        crate::logging::set_debug(target, on).map_err(|e| e.to_string())
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

impl crate::metrics::MetricsSource for Control {
    fn render(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = crate::metrics::Exposition::new();
        let dp = self
            .dataplane
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(counters) = dp.counters() {
            let mut f = out.counter(
                "smi_proxy_xdp_frames_total",
                "Frames seen by the XDP classifier, by class and verdict or reason.",
            );
            for (name, value) in proxy_common::counter::NAMES.iter().zip(counters) {
                f.sample(&[("counter", name)], value);
            }
        }
        if let Ok(entries) = dp.table().entries() {
            let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
            for (_, e) in &entries {
                *by_state.entry(dataplane::state_name(e.state)).or_default() += 1;
            }
            let mut f = out.gauge(
                "smi_proxy_kernel_clients",
                "Clients in the kernel map, by dataplane state.",
            );
            for (state, n) in by_state {
                f.sample(&[("state", state)], n);
            }
        }
        drop(dp);
        if let Some(dhcp) = &self.running().dhcp {
            dhcp.render(&mut out);
        }
        let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
        for r in self
            .base
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            *by_state.entry(r.state.token()).or_default() += 1;
        }
        let mut f = out.gauge(
            "smi_proxy_clients",
            "Clients in the proxy database, by entry state.",
        );
        for (state, n) in by_state {
            f.sample(&[("state", state)], n);
        }
        if let Some(core) = &self.running().core {
            let (pending, evicted) = core.pending();
            out.gauge(
                "smi_proxy_unidentified_clients",
                "Clients seen but not identified yet, held in memory (not in the database).",
            )
            .value(pending as u64);
            out.counter(
                "smi_proxy_unidentified_evicted_total",
                "Unidentified clients evicted, oldest first, to stay within the bound.",
            )
            .value(evicted);
        }
        let t = &self.base.tftp;
        out.counter("smi_proxy_tftp_bytes_served_total", "Bytes served by TFTP.")
            .value(t.bytes_served());
        out.counter(
            "smi_proxy_tftp_transfers_total",
            "TFTP transfers, by outcome (refused: unknown path, malformed request or \
             write without an upload slot; busy: over the transfer cap).",
        )
        .sample(&[("outcome", "started")], t.transfers_started())
        .sample(&[("outcome", "completed")], t.transfers_completed())
        .sample(&[("outcome", "failed")], t.transfers_failed())
        .sample(&[("outcome", "refused")], t.requests_refused())
        .sample(&[("outcome", "busy")], t.requests_busy());
        let l = &self.base.listener;
        out.counter(
            "smi_proxy_smi_inbound_total",
            "Connections and messages on the director's 4786 listener.",
        )
        .sample(&[("event", "accepted")], l.accepted.load(Relaxed))
        .sample(&[("event", "refused_busy")], l.refused_busy.load(Relaxed))
        .sample(&[("event", "message")], l.messages.load(Relaxed))
        .sample(&[("event", "unknown_type")], l.unknown.load(Relaxed))
        .sample(&[("event", "malformed")], l.malformed.load(Relaxed));
        let tel = &self.base.telnet;
        out.counter(
            "smi_proxy_telnet_refused_total",
            "Reverse-telnet connections closed at once, by reason: unexpected (no \
             identification waits for that address), busy (over the session caps).",
        )
        .sample(&[("reason", "unexpected")], tel.unexpected.load(Relaxed))
        .sample(&[("reason", "busy")], tel.busy.load(Relaxed));
        let mut f = out.counter(
            "smi_proxy_smi_exchanges_total",
            "Director messages to clients (probe; config_upgrade, type 3; image_upgrade, \
             type 2; run_cli, type 8), by outcome: sent counts every attempt, accepted, rejected and failed \
             split them.",
        );
        for (message, outcome, n) in self.base.smi.samples() {
            f.sample(
                &[("message", message.label()), ("outcome", outcome.label())],
                n,
            );
        }
        let pnp = &self.base.pnp;
        out.counter(
            "smi_proxy_pnp_exchanges_total",
            "PnP messages exchanged with the server, all switches together, by kind.",
        )
        .labelled("kind", pnp.exchanges());
        out.counter(
            "smi_proxy_pnp_errors_total",
            "Failed PnP exchanges with the server, by reason.",
        )
        .labelled("reason", pnp.errors());
        out.finish()
    }
}
