//! Onboarding an SMI client: from the dataplane's first sight of it (or
//! the database at start, or a rescan of the kernel map) through the probe
//! and admission to its identification and its PnP agent.
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use proxy_common::state;
use tracing::Instrument as _;

use super::{Core, CoreError, lock};
use crate::clock::unix_secs;
use crate::dataplane::{DataplaneEvent, EventKind};
use crate::mac::Mac;
use crate::smi::director::{self, SMI_PORT};
use crate::store::{ClientRecord, ConfigSource, JobStatus};

/// Wait before onboarding a client again after it failed (a switch busy
/// booting, a lost probe in a boot storm); doubles after each failure.
const ONBOARD_RETRY_FIRST: Duration = Duration::from_secs(5);

/// Longest wait between onboarding attempts: a client that is not SMI
/// capable costs one probe round every this often.
const ONBOARD_RETRY_MAX: Duration = Duration::from_secs(300);

impl Core {
    /// Finds the clients whose events were lost (a full ring buffer in a
    /// DHCP flood): an address in the kernel map, no identification and
    /// no onboarding running. They are onboarded as if the event had come.
    pub(super) fn rescan(self: &Arc<Self>) {
        let Ok(entries) = self.table.entries() else {
            return;
        };
        for (mac, e) in entries {
            let ip = Ipv4Addr::from(e.ipv4);
            let mac = Mac(mac);
            if ip.is_unspecified()
                || self.record(mac).is_some_and(|r| r.udi.is_some())
                || lock(&self.runtime).get(&mac).is_some_and(|r| r.onboarding)
            {
                continue;
            }
            let _client = crate::logging::follow(mac, Some(ip), None).entered();
            tracing::info!(target: "smi_proxy", "found in the kernel map (an event was lost)");
            let mut rec = ClientRecord::new(mac, unix_secs());
            rec.vlan = e.vlan;
            rec.ip = Some(ip);
            self.insert(rec);
            self.start_onboarding(mac, ip, false);
        }
    }

    /// Reconciles the kernel map with the database at start: every record
    /// gets a kernel entry; identified clients get their agent back, and
    /// clients with an address but no UDI are onboarded again.
    pub(super) fn resume(self: &Arc<Self>) {
        // Clients the kernel learned while no daemon read its events (e.g.
        // after a kill -9): the pinned map has them, the database may not.
        match self.table.entries() {
            Ok(entries) => {
                for (mac, e) in entries {
                    let mac = Mac(mac);
                    let _client = crate::logging::client(mac).entered();
                    let mut rec = ClientRecord::new(mac, unix_secs());
                    rec.vlan = e.vlan;
                    self.insert(rec);
                    let ip = Ipv4Addr::from(e.ipv4);
                    if !ip.is_unspecified() && self.record(mac).is_some_and(|r| r.ip.is_none()) {
                        self.update(mac, |r| r.ip = Some(ip));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(target: "smi_proxy", "cannot read the kernel client table: {e}")
            }
        }
        for rec in self.records() {
            let _client = crate::logging::follow(rec.mac, rec.ip, rec.udi.as_ref()).entered();
            let kernel = self.table.get(rec.mac.0).ok().flatten();
            if kernel.is_none() {
                let ip = rec.ip.map(|ip| ip.octets()).unwrap_or_default();
                let vlan = rec.vlan;
                if let Err(e) = self.table.update(rec.mac.0, |e| {
                    e.state = state::DISCOVERED;
                    e.ipv4 = ip;
                    e.vlan = vlan;
                }) {
                    tracing::warn!(target: "smi_proxy", "cannot restore the kernel entry: {e}");
                }
            }
            if let Some(ip) = rec.ip {
                // An image install cut short by the stop: the client may
                // have reloaded meanwhile, so learn what it runs now (by
                // type 8: its startup configuration stays as it is).
                let interrupted = matches!(
                    rec.job.image.status,
                    JobStatus::Upgrading | JobStatus::Interrupted
                );
                self.start_onboarding(rec.mac, ip, interrupted);
            }
        }
    }

    pub(super) fn on_dataplane(self: &Arc<Self>, ev: DataplaneEvent) {
        let mac = Mac(ev.mac);
        // The events a flood brings (new clients, dropped SMI) make the
        // client's span only for the lines the throttle lets through.
        let client = || crate::logging::client(mac);
        match ev.kind {
            EventKind::NewClient { client_id, .. } => {
                let cid =
                    String::from_utf8_lossy(client_id.strip_prefix(&[0]).unwrap_or(&client_id))
                        .into_owned();
                if let Some(skipped) = lock(&self.event_log).allow() {
                    let more = crate::logging::skipped_note(skipped);
                    client().in_scope(|| {
                        tracing::info!(target: "smi_proxy", "new client on VLAN {} (client-id {cid:?}){more}", ev.vlan);
                    });
                }
                // Without a UDI it goes to the unidentified, which cannot fail.
                let mut rec = ClientRecord::new(mac, unix_secs());
                rec.vlan = ev.vlan;
                self.insert(rec);
            }
            EventKind::AddressLearned(ip) => {
                let udi = self.record(mac).and_then(|r| r.udi);
                let _client = crate::logging::follow(mac, Some(ip), udi.as_ref()).entered();
                let mut rec = ClientRecord::new(mac, unix_secs());
                rec.vlan = ev.vlan;
                self.insert(rec);
                self.update(mac, |r| {
                    r.ip = Some(ip);
                    r.vlan = ev.vlan;
                });
                tracing::info!(target: "smi_proxy", "address learned on VLAN {}", ev.vlan);
                self.seed_neighbour(mac, ip);
                self.start_onboarding(mac, ip, false);
            }
            EventKind::ClientRestarted => {
                let _client = client().entered();
                tracing::info!(target: "smi_proxy", "restarted");
                // No longer upgrading: SMI to the director waits for the
                // probe again (and XDP stops reporting the restart).
                if let Err(e) = self.table.set_state(mac.0, state::DISCOVERED) {
                    tracing::warn!(target: "smi_proxy", "kernel admission: {e}");
                }
                if let Some(w) = lock(&self.waiters).restarts.remove(&mac) {
                    let _ = w.send(());
                }
            }
            EventKind::SmiDropped { reason, len_word } => {
                if let Some(skipped) = lock(&self.event_log).allow() {
                    let more = crate::logging::skipped_note(skipped);
                    client().in_scope(|| {
                        tracing::warn!(target: "smi_proxy", "SMI dropped in XDP: {reason:?} (length word {len_word}){more}");
                    });
                }
            }
            EventKind::DhcpServerSeen(_) | EventKind::Unknown(_) => {}
        }
    }

    /// Starts probing and identifying `mac` at `ip`, unless already running
    /// (identifying again when `refresh`, even if its UDI is known);
    /// a failed attempt is retried with a growing wait until it succeeds or
    /// the daemon stops.
    pub(super) fn start_onboarding(self: &Arc<Self>, mac: Mac, ip: Ipv4Addr, refresh: bool) {
        {
            let mut rt = lock(&self.runtime);
            let entry = rt.entry(mac).or_default();
            if entry.onboarding {
                return;
            }
            entry.onboarding = true;
        }
        let core = self.clone();
        self.spawn(async move {
            let mut wait = ONBOARD_RETRY_FIRST;
            loop {
                // A new lease may have moved the client meanwhile.
                let ip = core.record(mac).and_then(|r| r.ip).unwrap_or(ip);
                let span = crate::logging::follow(mac, Some(ip), None);
                let Err(e) = core.onboard(mac, ip, refresh).instrument(span.clone()).await else {
                    break;
                };
                span.in_scope(|| {
                    tracing::warn!(target: "smi_proxy", "onboarding failed: {e}; retrying in {} s", wait.as_secs());
                });
                tokio::select! {
                    () = core.cancel.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(ONBOARD_RETRY_MAX);
            }
            if let Some(rt) = lock(&core.runtime).get_mut(&mac) {
                rt.onboarding = false;
            }
        });
    }

    /// Probe, admit, identify (see [`identify`]: the tailored
    /// configuration once, for a client whose UDI is unknown; its `show
    /// version` by type 8 when `refresh`), then start the client's PnP agent.
    async fn onboard(
        self: &Arc<Self>,
        mac: Mac,
        ip: Ipv4Addr,
        refresh: bool,
    ) -> Result<(), CoreError> {
        tracing::debug!(target: "smi_proxy::fsm", "onboarding: probing");
        self.probe_and_admit(mac, ip).await?;
        let rec = self.record(mac);
        let known = rec.as_ref().is_some_and(|r| r.udi.is_some());
        let server_config = rec.is_some_and(|r| r.config_source == Some(ConfigSource::Server));
        if !known && !server_config {
            tracing::debug!(target: "smi_proxy::fsm", "onboarding: identifying by the tailored configuration");
            self.identify(mac, ip).await?;
        } else if !known || refresh {
            tracing::debug!(target: "smi_proxy::fsm", "onboarding: reading show version by type 8");
            self.read_version(mac, ip).await?;
        }
        tracing::debug!(target: "smi_proxy::fsm", "onboarding: done; starting the PnP agent");
        self.start_agent(mac);
        Ok(())
    }

    /// Probes the client's 4786 (XDP lets its replies through once it is
    /// discovered) and admits its SMI traffic when it answers.
    pub(crate) async fn probe_and_admit(&self, mac: Mac, ip: Ipv4Addr) -> Result<(), CoreError> {
        self.probe_and_admit_within(mac, ip, self.cfg.probe_attempts.max(1))
            .await
    }

    /// As [`Core::probe_and_admit`] with `attempts` tries, 0.5 s apart and
    /// growing to 5 s between tries.
    pub(super) async fn probe_and_admit_within(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        attempts: u32,
    ) -> Result<(), CoreError> {
        let addr = SocketAddr::from((ip, SMI_PORT));
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let gap = Duration::from_millis(500 * u64::from(attempt));
                tokio::time::sleep(gap.min(Duration::from_secs(5))).await;
            }
            self.seed_neighbour(mac, ip);
            tracing::debug!(target: "smi_proxy::fsm", "probe {} of {attempts}", attempt + 1);
            let result = {
                let _slot = self.smi_slot().await;
                director::probe(addr, &self.cfg.limits).await
            };
            self.smi.record(director::SmiMessage::Probe, &result);
            match result {
                Ok(()) => {
                    self.table.set_state(mac.0, state::ADMITTED)?;
                    tracing::info!(target: "smi_proxy", "SMI client answered the probe; admitted");
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
        }
        let _ = self.table.set_state(mac.0, state::NOT_SMI);
        Err(CoreError::NotSmi { last })
    }

    /// Makes sure reaching `mac` at `ip` does not broadcast an ARP request
    /// (see [`NeighbourSeeder`]). In place: a few netlink round trips of
    /// microseconds each, cheaper than handing the worker over.
    pub(super) fn seed_neighbour(&self, mac: Mac, ip: Ipv4Addr) {
        let seeded = self.neigh.as_ref().map(|n| n.seed(ip, mac.0));
        if let Some(Err(e)) = seeded {
            tracing::debug!(target: "smi_proxy", "neighbour entry: {e}");
        }
    }
}
