//! The PnP side of each identified client: one agent per UDI, run by the
//! client's newest MAC, its state reports, and the hand-over to a new PnP
//! profile.
use std::sync::{Arc, PoisonError};

use tokio_util::sync::CancellationToken;

use super::{Core, lock};
use crate::mac::Mac;
use crate::pnp::agent::{Agent, AgentEvent, AgentExit, AgentIdentity, AgentReport, AgentShared};
use crate::store::EntryState;

/// How the logic stops a client's PnP agent.
#[derive(Clone, Debug)]
pub(super) struct AgentSlot {
    /// Stops it between exchanges ([`Core::switch_profile`]).
    pub(super) drain: CancellationToken,
    /// Stops it at once (its device came back under another MAC).
    pub(super) stop: CancellationToken,
}

impl Core {
    pub(super) fn on_agent_report(&self, report: AgentReport) {
        let Some(mac) = self.clients.owner_of(&report.udi) else {
            return;
        };
        let _client = crate::logging::client(mac).entered();
        let new_state = match report.event {
            AgentEvent::Hello | AgentEvent::WorkRequestSent { .. } => Some(EntryState::Hello),
            AgentEvent::Backoff { .. } => Some(EntryState::Backoff),
            AgentEvent::Terminated => Some(EntryState::Terminated),
            AgentEvent::JobReceived { .. }
            | AgentEvent::JobDone { .. }
            | AgentEvent::TransportError { .. } => None,
        };
        if let Some(st) = new_state {
            let current = self.clients.get(mac).map(|r| r.state);
            // Upgrading and done are set by the jobs themselves.
            if current != Some(st) && !matches!(current, Some(EntryState::Upgrading)) {
                let from = current.map_or_else(|| "-".to_owned(), |c| c.to_string());
                tracing::debug!(target: "smi_proxy::fsm", "state {from} -> {st}");
                self.update(mac, |r| r.state = st);
            }
        }
    }

    /// Starts the PnP agent of an identified client (once; again after it
    /// was drained by [`Core::switch_profile`], with the new profile).
    pub(super) fn start_agent(self: &Arc<Self>, mac: Mac) {
        let Some(shared) = self.pnp() else {
            return;
        };
        let Some(rec) = self.record(mac) else {
            return;
        };
        let Some(udi) = rec.udi else {
            return;
        };
        // One UDI, one agent: the device's current MAC runs it.
        let owner = self.clients.owner_of(&udi);
        if owner != Some(mac) {
            let _client = crate::logging::client(mac).entered();
            tracing::info!(target: "smi_proxy", "{udi} is now at another MAC; no agent here");
            return;
        }
        let slot = {
            let mut rt = lock(&self.runtime);
            // The agent of this UDI at another MAC, if any (a look-up, not
            // a walk over every record: this runs once per switch).
            let earlier = lock(&self.agent_macs)
                .insert(udi.clone(), mac)
                .filter(|&other| other != mac);
            if let Some(other) = earlier
                && let Some(old) = rt.get_mut(&other).and_then(|r| r.agent.take())
            {
                crate::logging::client(other).in_scope(|| {
                    tracing::info!(target: "smi_proxy", "{udi} came back as {mac}; its agent moves there");
                });
                old.stop.cancel();
            }
            let entry = rt.entry(mac).or_default();
            if entry.agent.is_some() {
                return;
            }
            let slot = AgentSlot {
                drain: CancellationToken::new(),
                stop: self.cancel.child_token(),
            };
            entry.agent = Some(slot.clone());
            slot
        };
        crate::logging::client(mac).in_scope(|| {
            tracing::info!(target: "smi_proxy", "PnP agent started ({})", shared.profile().server);
        });
        let agent = Agent::new(
            shared,
            AgentIdentity {
                udi,
                hostname: Some(rec.hostname),
                mac,
            },
            self.jobs.clone(),
            self.reports.clone(),
            slot.stop,
        )
        .draining_on(slot.drain);
        let core = self.clone();
        // Boxed apart from the task that awaits it, so that the agent's
        // state is held once: thousands of agents rest at once.
        let run = Box::pin(agent.run());
        self.spawn_pnp(async move {
            if run.await == AgentExit::Drained {
                if let Some(rt) = lock(&core.runtime).get_mut(&mac) {
                    rt.agent = None;
                }
                core.start_agent(mac);
            }
        });
    }

    /// Makes `shared` the PnP profile of every agent: each running agent
    /// finishes the exchange it is in against the old server, then starts
    /// again against the new one (`None`: no agent runs any more).
    pub fn switch_profile(&self, shared: Option<Arc<AgentShared>>) {
        *self.pnp.write().unwrap_or_else(PoisonError::into_inner) = shared;
        for rt in lock(&self.runtime).values() {
            if let Some(slot) = &rt.agent {
                slot.drain.cancel();
            }
        }
    }

    /// The PnP profile's shared state (for fetching files).
    pub(crate) fn pnp(&self) -> Option<Arc<AgentShared>> {
        self.pnp
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
