//! The proxy logic: the one table that joins the SMI side (clients known by
//! MAC) and the PnP side (devices known by UDI), and the onboarding of each
//! client from its first DHCP frame to its own PnP agent.
//!
//! Data flows one way: dataplane, TFTP and telnet events come in; the
//! kernel map, the proxy database and SMI messages go out. The mapping of
//! PnP services to SMI operations lives in [`translate`], in one table.

pub mod clients;
pub mod fetch;
pub mod identify;
pub mod translate;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_common::state;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dataplane::{ClientTable, DataplaneEvent, EventKind, NeighbourSeeder};
use crate::pnp::agent::{
    Agent, AgentEvent, AgentExit, AgentIdentity, AgentReport, AgentShared, JobRequest,
};
use crate::smi::codec::{Message, ReloadTime};
use crate::smi::director::{self, Limits, SMI_PORT};
use crate::smi::showver::ShowVersion;
use crate::smi::telnet::Session;
use crate::smi::tftp::{StagedFile, Staging, TftpEvent};
use crate::store::{ClientRecord, ConfigSource, EntryState, JobStatus, Mac, Store};

/// Settings of the proxy logic.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// The address clients know the director by.
    pub proxy_ip: Ipv4Addr,
    /// Switch-facing interface (for topology answers).
    pub interface: String,
    /// Director socket limits.
    pub limits: Limits,
    /// How long to wait for a client to telnet back after the tailored config.
    pub identify_timeout: Duration,
    /// How long to wait for a client's TFTP download of a staged file.
    pub download_timeout: Duration,
    /// How long to wait for a reloading client to come back.
    pub reload_timeout: Duration,
    /// Probe attempts before a client is declared not SMI-capable.
    pub probe_attempts: u32,
    /// Largest configuration fetched from the PnP server.
    pub config_cap: usize,
    /// Largest image fetched from the PnP server.
    pub image_cap: usize,
    /// Where fetched images are kept while they are staged.
    pub image_dir: std::path::PathBuf,
}

/// Waiters keyed by what completes them.
#[derive(Default)]
struct Waiters {
    /// TFTP path -> waiter for the client's download.
    downloads: HashMap<String, oneshot::Sender<Result<(), String>>>,
    /// TFTP path of a file the client fetches first (an image list) ->
    /// the path whose waiter fails if that fetch fails.
    first_fetches: HashMap<String, String>,
    /// TFTP path of an upload slot -> waiter for the uploaded bytes.
    uploads: HashMap<String, oneshot::Sender<Result<bytes::Bytes, String>>>,
    /// Client IPv4 -> waiter for its reverse-telnet session.
    identities: HashMap<Ipv4Addr, oneshot::Sender<Result<ShowVersion, String>>>,
    /// Client MAC -> waiter for its restart after a reload.
    restarts: HashMap<Mac, oneshot::Sender<()>>,
}

impl Waiters {
    /// A client's TFTP fetch of `path` ended: completes the delivery
    /// waiting for it, or fails the one whose first fetch it was.
    fn fetch_finished(&mut self, path: &str, result: Result<(), String>) {
        if let Some(w) = self.downloads.remove(path) {
            let _ = w.send(result);
        } else if let Some(main) = self.first_fetches.remove(path)
            && let Err(reason) = result
            && let Some(w) = self.downloads.remove(&main)
        {
            let _ = w.send(Err(format!("{path}: {reason}")));
        }
    }
}

/// How one delivery attempt failed.
enum Delivery {
    /// The client's TFTP transfer failed: worth another attempt.
    Transfer(String),
    /// Anything else (unreachable, not fetched in time, shutting down).
    Other(String),
}

/// Attempts of one delivery whose transfers fail ([`Core::deliver`]).
const DELIVERY_ATTEMPTS: u32 = 3;

/// What the logic knows of a client beyond the database record.
#[derive(Clone, Debug, Default)]
struct Runtime {
    /// Onboarding (probe + identify) is running.
    onboarding: bool,
    /// A PnP agent runs for it.
    agent: Option<AgentSlot>,
}

/// How the logic stops a client's PnP agent.
#[derive(Clone, Debug)]
struct AgentSlot {
    /// Stops it between exchanges ([`Core::switch_profile`]).
    drain: CancellationToken,
    /// Stops it at once (its device came back under another MAC).
    stop: CancellationToken,
}

/// How often the kernel map is scanned for clients whose events were lost.
const RESCAN_PERIOD: Duration = Duration::from_secs(30);

/// Wait before onboarding a client again after it failed (a switch busy
/// booting, a lost probe in a boot storm); doubles after each failure.
const ONBOARD_RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest wait between onboarding attempts: a client that is not SMI
/// capable costs one probe round every this often.
const ONBOARD_RETRY_MAX: Duration = Duration::from_secs(300);

/// Clients told to fetch a file (tailored configuration, configuration,
/// image list and image) at once. The TFTP server runs at most 512
/// transfers and refuses more with "server busy", which a switch takes as
/// a failed download; with one shared image download, a thousand image
/// installs would otherwise all start in the same second. TFTP moves one
/// block per round trip, so this is also what sets the proxy's TFTP
/// throughput: at 10,000 switches on two loaded cores, 128 moved 23 MB/s,
/// 384 (three quarters of the server's limit, the rest for transfers that
/// need no admission) moved more.
const DELIVERIES_MAX: usize = 384;

/// The proxy core, shared by its tasks.
pub struct Core {
    cfg: CoreConfig,
    table: ClientTable,
    /// The clients: identified in the proxy database (which outlives the
    /// core), unidentified in memory.
    clients: clients::Clients,
    staging: Staging,
    tailored: StagedFile,
    waiters: Mutex<Waiters>,
    runtime: Mutex<HashMap<Mac, Runtime>>,
    /// The active PnP profile's shared agent state (see [`Core::switch_profile`]).
    pnp: RwLock<Option<Arc<AgentShared>>>,
    jobs: mpsc::Sender<JobRequest>,
    reports: mpsc::Sender<AgentReport>,
    cancel: CancellationToken,
    /// Every task the core spawns, so that [`Core::stop`] can wait for them.
    tasks: TaskTracker,
    smi: Arc<director::DirectorStats>,
    /// Adds snooped clients to the neighbour table (None: not possible here).
    neigh: Option<NeighbourSeeder>,
    /// Files fetched from the PnP server, shared by concurrent installs.
    fetches: fetch::FetchCache,
    /// Admission of deliveries ([`DELIVERIES_MAX`]).
    deliveries: tokio::sync::Semaphore,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The receiving ends the daemon drives with [`Core::run`].
pub struct CoreInputs {
    /// Dataplane events.
    pub dataplane: mpsc::Receiver<Vec<DataplaneEvent>>,
    /// TFTP transfer outcomes.
    pub tftp: mpsc::Receiver<TftpEvent>,
    /// Reverse-telnet sessions.
    pub telnet: mpsc::Receiver<Session>,
    /// Jobs from PnP agents.
    pub jobs: mpsc::Receiver<JobRequest>,
    /// Reports from PnP agents.
    pub reports: mpsc::Receiver<AgentReport>,
}

impl Core {
    /// Builds the core. `tailored` is the staged `client_cfg_pnp.txt`;
    /// `pnp` is the shared PnP agent state (None: no PnP server configured);
    /// the director's messages are counted into `smi`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: CoreConfig,
        table: ClientTable,
        store: Arc<Mutex<Store>>,
        staging: Staging,
        tailored: StagedFile,
        pnp: Option<Arc<AgentShared>>,
        smi: Arc<director::DirectorStats>,
        cancel: CancellationToken,
    ) -> (
        Arc<Self>,
        mpsc::Sender<JobRequest>,
        mpsc::Receiver<JobRequest>,
        mpsc::Receiver<AgentReport>,
    ) {
        let neigh = match NeighbourSeeder::for_address(cfg.proxy_ip) {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!(target: "smi_proxy", "clients will be found by ARP: {e}");
                None
            }
        };
        let (jobs_tx, jobs_rx) = mpsc::channel(1024);
        let (reports_tx, reports_rx) = mpsc::channel(4096);
        let core = Arc::new(Self {
            cfg,
            table,
            clients: clients::Clients::new(store, clients::PENDING_MAX),
            staging,
            tailored,
            waiters: Mutex::new(Waiters::default()),
            runtime: Mutex::new(HashMap::new()),
            pnp: RwLock::new(pnp),
            jobs: jobs_tx.clone(),
            reports: reports_tx,
            cancel,
            tasks: TaskTracker::new(),
            smi,
            neigh,
            fetches: fetch::FetchCache::default(),
            deliveries: tokio::sync::Semaphore::new(DELIVERIES_MAX),
        });
        (core, jobs_tx, jobs_rx, reports_rx)
    }

    /// Whether an identification waits for a reverse telnet from `ip` (the
    /// telnet listener serves no one else).
    pub fn expects_telnet(&self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(v4) => lock(&self.waiters).identities.contains_key(&v4),
            std::net::IpAddr::V6(_) => false,
        }
    }

    /// Files fetched from the PnP server that clients are installing.
    pub(crate) fn fetches(&self) -> &fetch::FetchCache {
        &self.fetches
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// The kernel's client table.
    pub fn table(&self) -> &ClientTable {
        &self.table
    }

    /// Every client: identified (the database, in DevNo order), then the
    /// unidentified.
    pub fn records(&self) -> Vec<ClientRecord> {
        self.clients.all()
    }

    /// The record of `mac`.
    pub fn record(&self, mac: Mac) -> Option<ClientRecord> {
        self.clients.get(mac)
    }

    /// Unidentified clients held in memory, and how many were evicted.
    pub fn pending(&self) -> (usize, u64) {
        (self.clients.pending(), self.clients.evicted())
    }

    /// Changes a record, logging (not propagating) a storage failure: the
    /// in-memory and on-disk database stay as they were in that case.
    fn update(&self, mac: Mac, edit: impl FnOnce(&mut ClientRecord) + Send) {
        let identified = self.clients.get(mac).is_some_and(|r| r.udi.is_some());
        match self.clients.update(mac, edit) {
            Err(e) => log::error!(target: "smi_proxy", "{mac}: update failed: {e}"),
            Ok(()) if !identified && self.clients.get(mac).is_some_and(|r| r.udi.is_some()) => {
                log::info!(target: "smi_proxy", "{mac}: added to the proxy database")
            }
            Ok(()) => {}
        }
    }

    fn insert(&self, record: ClientRecord) {
        let mac = record.mac;
        if let Err(e) = self.clients.insert(record) {
            log::error!(target: "smi_proxy", "{mac}: insert failed: {e}");
        }
    }

    /// Runs the event loops until cancelled. Also resumes the clients the
    /// database knows (reconciling the kernel map with it).
    pub async fn run(self: Arc<Self>, mut inputs: CoreInputs) {
        self.resume();
        let mut rescan = tokio::time::interval(RESCAN_PERIOD);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.tick().await;
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                _ = rescan.tick() => {
                    let core = self.clone();
                    self.spawn(async move { clients::blocking(|| core.rescan()) });
                }
                Some(batch) = inputs.dataplane.recv() => {
                    for ev in batch {
                        self.on_dataplane(ev);
                    }
                }
                Some(ev) = inputs.tftp.recv() => self.on_tftp(ev),
                Some(s) = inputs.telnet.recv() => self.on_telnet(s),
                Some(job) = inputs.jobs.recv() => {
                    let core = self.clone();
                    self.spawn(async move { translate::handle(core, job).await });
                }
                Some(report) = inputs.reports.recv() => self.on_agent_report(report),
                else => return,
            }
        }
    }

    /// Finds the clients whose events were lost (a full ring buffer in a
    /// DHCP flood): an address in the kernel map, no identification and
    /// no onboarding running. They are onboarded as if the event had come.
    fn rescan(self: &Arc<Self>) {
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
            log::info!(target: "smi_proxy", "{mac}: found at {ip} in the kernel map (an event was lost)");
            let mut rec = ClientRecord::new(mac, now());
            rec.vlan = e.vlan;
            rec.ip = Some(ip);
            self.insert(rec);
            self.start_onboarding(mac, ip, false);
        }
    }

    /// Reconciles the kernel map with the database at start: every record
    /// gets a kernel entry; identified clients get their agent back, and
    /// clients with an address but no UDI are onboarded again.
    fn resume(self: &Arc<Self>) {
        // Clients the kernel learned while no daemon read its events (e.g.
        // after a kill -9): the pinned map has them, the database may not.
        match self.table.entries() {
            Ok(entries) => {
                for (mac, e) in entries {
                    let mac = Mac(mac);
                    let mut rec = ClientRecord::new(mac, now());
                    rec.vlan = e.vlan;
                    self.insert(rec);
                    let ip = Ipv4Addr::from(e.ipv4);
                    if !ip.is_unspecified() && self.record(mac).is_some_and(|r| r.ip.is_none()) {
                        self.update(mac, |r| r.ip = Some(ip));
                    }
                }
            }
            Err(e) => log::warn!(target: "smi_proxy", "cannot read the kernel client table: {e}"),
        }
        for rec in self.records() {
            let kernel = self.table.get(rec.mac.0).ok().flatten();
            if kernel.is_none() {
                let ip = rec.ip.map(|ip| ip.octets()).unwrap_or_default();
                let vlan = rec.vlan;
                if let Err(e) = self.table.update(rec.mac.0, |e| {
                    e.state = state::DISCOVERED;
                    e.ipv4 = ip;
                    e.vlan = vlan;
                }) {
                    log::warn!(target: "smi_proxy", "{}: cannot restore the kernel entry: {e}", rec.mac);
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

    fn on_dataplane(self: &Arc<Self>, ev: DataplaneEvent) {
        let mac = Mac(ev.mac);
        match ev.kind {
            EventKind::NewClient { client_id, .. } => {
                let cid =
                    String::from_utf8_lossy(client_id.strip_prefix(&[0]).unwrap_or(&client_id))
                        .into_owned();
                log::info!(target: "smi_proxy", "{mac}: new client on VLAN {} (client-id {cid:?})", ev.vlan);
                let mut rec = ClientRecord::new(mac, now());
                rec.vlan = ev.vlan;
                self.insert(rec);
            }
            EventKind::AddressLearned(ip) => {
                let mut rec = ClientRecord::new(mac, now());
                rec.vlan = ev.vlan;
                self.insert(rec);
                self.update(mac, |r| {
                    r.ip = Some(ip);
                    r.vlan = ev.vlan;
                });
                log::info!(target: "smi_proxy", "{mac}: address {ip}");
                self.seed_neighbour(mac, ip);
                self.start_onboarding(mac, ip, false);
            }
            EventKind::ClientRestarted => {
                log::info!(target: "smi_proxy", "{mac}: restarted");
                // No longer upgrading: SMI to the director waits for the
                // probe again (and XDP stops reporting the restart).
                if let Err(e) = self.table.set_state(mac.0, state::DISCOVERED) {
                    log::warn!(target: "smi_proxy", "{mac}: kernel admission: {e}");
                }
                if let Some(w) = lock(&self.waiters).restarts.remove(&mac) {
                    let _ = w.send(());
                }
            }
            EventKind::SmiDropped { reason, len_word } => {
                log::warn!(target: "smi_proxy", "{mac}: SMI dropped in XDP: {reason:?} (length word {len_word})");
            }
            EventKind::DhcpServerSeen(_) | EventKind::Unknown(_) => {}
        }
    }

    fn on_tftp(&self, ev: TftpEvent) {
        let (path, result) = match ev {
            TftpEvent::Completed {
                path, peer, bytes, ..
            } => {
                log::info!(target: "smi_proxy", "TFTP: {peer} fetched {path} ({bytes} bytes)");
                (path, Ok(()))
            }
            TftpEvent::Failed {
                path, peer, reason, ..
            } => {
                log::warn!(target: "smi_proxy", "TFTP: {peer} failed to fetch {path}: {reason}");
                (path, Err(reason))
            }
            TftpEvent::Uploaded {
                path, peer, data, ..
            } => {
                log::info!(target: "smi_proxy", "TFTP: {peer} uploaded {path} ({} bytes)", data.len());
                if let Some(w) = lock(&self.waiters).uploads.remove(&path) {
                    let _ = w.send(Ok(data));
                }
                return;
            }
        };
        let mut waiters = lock(&self.waiters);
        if let (Some(w), Err(reason)) = (waiters.uploads.remove(&path), &result) {
            let _ = w.send(Err(reason.clone()));
        }
        waiters.fetch_finished(&path, result);
    }

    fn on_telnet(&self, s: Session) {
        let SocketAddr::V4(peer) = s.peer else {
            return;
        };
        let waiter = lock(&self.waiters).identities.remove(peer.ip());
        match waiter {
            Some(w) => {
                let _ = w.send(s.result.map_err(|e| e.to_string()));
            }
            None => {
                log::warn!(target: "smi_proxy", "reverse telnet from {peer}, which no onboarding expects")
            }
        }
    }

    fn on_agent_report(&self, report: AgentReport) {
        let Some(mac) = self.clients.owner_of(&report.udi) else {
            return;
        };
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
                self.update(mac, |r| r.state = st);
            }
        }
    }

    /// Starts probing and identifying `mac` at `ip`, unless already running
    /// (identifying again when `refresh`, even if its UDI is known);
    /// a failed attempt is retried with a growing wait until it succeeds or
    /// the daemon stops.
    fn start_onboarding(self: &Arc<Self>, mac: Mac, ip: Ipv4Addr, refresh: bool) {
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
                let Err(e) = core.onboard(mac, ip, refresh).await else {
                    break;
                };
                log::warn!(target: "smi_proxy", "{mac}: onboarding failed: {e}; retrying in {} s", wait.as_secs());
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
    ) -> Result<(), String> {
        self.probe_and_admit(mac, ip).await?;
        let rec = self.record(mac);
        let known = rec.as_ref().is_some_and(|r| r.udi.is_some());
        let server_config = rec.is_some_and(|r| r.config_source == Some(ConfigSource::Server));
        if !known && !server_config {
            self.identify(mac, ip).await?;
        } else if !known || refresh {
            self.read_version(mac, ip).await?;
        }
        self.start_agent(mac);
        Ok(())
    }

    /// Probes the client's 4786 (XDP lets its replies through once it is
    /// discovered) and admits its SMI traffic when it answers.
    pub(crate) async fn probe_and_admit(&self, mac: Mac, ip: Ipv4Addr) -> Result<(), String> {
        self.probe_and_admit_within(mac, ip, self.cfg.probe_attempts.max(1))
            .await
    }

    /// As [`Core::probe_and_admit`] with `attempts` tries, 0.5 s apart and
    /// growing to 5 s between tries.
    async fn probe_and_admit_within(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        attempts: u32,
    ) -> Result<(), String> {
        let addr = SocketAddr::from((ip, SMI_PORT));
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                let gap = Duration::from_millis(500 * u64::from(attempt));
                tokio::time::sleep(gap.min(Duration::from_secs(5))).await;
            }
            self.seed_neighbour(mac, ip);
            let result = director::probe(addr, &self.cfg.limits).await;
            self.smi.record(director::SmiMessage::Probe, &result);
            match result {
                Ok(()) => {
                    self.table
                        .set_state(mac.0, state::ADMITTED)
                        .map_err(|e| e.to_string())?;
                    log::info!(target: "smi_proxy", "{mac}: SMI client at {ip} answered the probe; admitted");
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
        }
        let _ = self.table.set_state(mac.0, state::NOT_SMI);
        Err(format!("not an SMI client: {last}"))
    }

    /// Starts the PnP agent of an identified client (once; again after it
    /// was drained by [`Core::switch_profile`], with the new profile).
    fn start_agent(self: &Arc<Self>, mac: Mac) {
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
            log::info!(target: "smi_proxy", "{mac}: {udi} is now at another MAC; no agent here");
            return;
        }
        let earlier = self
            .clients
            .identified_where(|r| r.mac != mac && r.udi.as_ref() == Some(&udi));
        let slot = {
            let mut rt = lock(&self.runtime);
            for other in earlier {
                if let Some(old) = rt.get_mut(&other).and_then(|r| r.agent.take()) {
                    log::info!(target: "smi_proxy", "{other}: {udi} came back as {mac}; its agent moves there");
                    old.stop.cancel();
                }
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
        log::info!(target: "smi_proxy", "{mac}: PnP agent started for {udi} ({})", shared.profile().server);
        let agent = Agent::new(
            shared,
            AgentIdentity {
                udi,
                hostname: Some(rec.hostname),
                mac: mac.to_string(),
            },
            self.jobs.clone(),
            self.reports.clone(),
            slot.stop,
        )
        .draining_on(slot.drain);
        let core = self.clone();
        self.spawn(async move {
            if agent.run().await == AgentExit::Drained {
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

    /// Stops the core: every probe, delivery, job and agent ends where it
    /// is (no SMI message leaves after this returns), and a download job
    /// cut short is recorded as interrupted, with `why`.
    pub async fn stop(&self, why: &str) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let interrupted = self.clients.identified_where(|r| {
            r.job.image.status == JobStatus::Upgrading
                || r.job.config.status == JobStatus::Upgrading
        });
        for mac in interrupted {
            log::warn!(target: "smi_proxy", "{mac}: download job interrupted: {why}");
            self.update(mac, |r| {
                for t in [&mut r.job.image, &mut r.job.config] {
                    if t.status == JobStatus::Upgrading {
                        t.status = JobStatus::Interrupted;
                        t.fail_reason = Some(format!("interrupted: {why}"));
                    }
                }
            });
        }
    }

    /// Runs `fut` as a task of the core: tracked, and ended by its
    /// cancellation.
    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .spawn(self.cancel.clone().run_until_cancelled_owned(fut));
    }

    /// Sends `msg` to `mac` and waits until the client has fetched `file`;
    /// a failed fetch of `file`, or of `first` (a file the client fetches
    /// before it, such as an image list), fails the attempt at once. A
    /// failed transfer (a client or segment overloaded for a moment: a
    /// block not acknowledged in time) is tried again, up to
    /// [`DELIVERY_ATTEMPTS`] in all, a second apart.
    pub(crate) async fn deliver(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        file: StagedFile,
        first: Option<&StagedFile>,
        msg: Message,
    ) -> Result<(), String> {
        let mut attempt = 1;
        loop {
            let result = self
                .deliver_within(mac, ip, &file, first, msg.clone())
                .await;
            {
                let mut waiters = lock(&self.waiters);
                waiters.downloads.remove(file.path());
                if let Some(first) = first {
                    waiters.first_fetches.remove(first.path());
                }
            }
            match result {
                Err(Delivery::Transfer(reason)) if attempt < DELIVERY_ATTEMPTS => {
                    log::warn!(target: "smi_proxy", "{mac}: {} failed ({reason}); trying again", msg.name());
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(Delivery::Transfer(reason)) => return Err(format!("TFTP error: {reason}")),
                Err(Delivery::Other(reason)) => return Err(reason),
                Ok(()) => return Ok(()),
            }
        }
    }

    /// One attempt of [`Core::deliver`], within one admission.
    async fn deliver_within(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        file: &StagedFile,
        first: Option<&StagedFile>,
        msg: Message,
    ) -> Result<(), Delivery> {
        let _turn = self
            .deliveries
            .acquire()
            .await
            .map_err(|_| Delivery::Other("shutting down".into()))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut waiters = lock(&self.waiters);
            waiters.downloads.insert(file.path().to_owned(), tx);
            if let Some(first) = first {
                waiters
                    .first_fetches
                    .insert(first.path().to_owned(), file.path().to_owned());
            }
        }
        log::info!(target: "smi_proxy", "{mac}: {} with {}", msg.name(), file.path());
        if let Err(e) = self.send_smi(mac, ip, &msg).await {
            return Err(Delivery::Other(format!("client unreachable: {e}")));
        }
        match tokio::time::timeout(self.cfg.download_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(Delivery::Transfer(reason)),
            Ok(Err(_)) => Err(Delivery::Other("TFTP waiter dropped".into())),
            Err(_) => Err(Delivery::Other(format!(
                "timeout: the client did not fetch {} within {:?}",
                file.path(),
                self.cfg.download_timeout
            ))),
        }
    }

    /// Waits for the restart registered by [`Core::expect_reload`] (a DHCP
    /// discover while upgrading), then probes and re-admits the client.
    pub(crate) async fn await_reload(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        restarted: oneshot::Receiver<()>,
    ) -> Result<(), String> {
        match tokio::time::timeout(self.cfg.reload_timeout, restarted).await {
            Ok(Ok(())) => {}
            _ => {
                lock(&self.waiters).restarts.remove(&mac);
                return Err(format!(
                    "client gone: it did not come back within {:?}",
                    self.cfg.reload_timeout
                ));
            }
        }
        // A reloading switch boots, then runs DHCP again before it answers:
        // give it about a minute (tries 5 s apart once backed off).
        self.probe_and_admit_within(mac, ip, 16).await
    }

    /// Marks the client upgrading in the kernel (so that XDP reports its
    /// next DHCP discover as a restart) and registers the waiter for that
    /// restart. Called before the message that causes the reload is sent:
    /// a switch may reload before its download's completion is processed.
    pub(crate) fn expect_reload(&self, mac: Mac) -> Result<oneshot::Receiver<()>, String> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).restarts.insert(mac, tx);
        self.table
            .set_state(mac.0, state::UPGRADING)
            .map_err(|e| e.to_string())?;
        Ok(rx)
    }

    /// Makes sure reaching `mac` at `ip` does not broadcast an ARP request
    /// (see [`NeighbourSeeder`]).
    fn seed_neighbour(&self, mac: Mac, ip: Ipv4Addr) {
        let seeded = self
            .neigh
            .as_ref()
            .map(|n| clients::blocking(|| n.seed(ip, mac.0)));
        if let Some(Err(e)) = seeded {
            log::debug!(target: "smi_proxy", "{mac}: neighbour entry for {ip}: {e}");
        }
    }

    /// Sends one director message to the client `mac` at `ip` and counts it.
    async fn send_smi(
        &self,
        mac: Mac,
        ip: Ipv4Addr,
        msg: &Message,
    ) -> Result<(), director::DirectorError> {
        self.seed_neighbour(mac, ip);
        let result = director::send(SocketAddr::from((ip, SMI_PORT)), msg, &self.cfg.limits).await;
        self.smi.record(director::SmiMessage::of(msg), &result);
        result
    }

    /// TFTP transfer counters.
    pub fn tftp_stats(&self) -> Arc<crate::smi::tftp::TftpStats> {
        self.staging.stats()
    }

    /// Counters of the director's messages to clients (probes, types 3
    /// and 2) by outcome.
    pub fn smi_stats(&self) -> Arc<director::DirectorStats> {
        Arc::clone(&self.smi)
    }

    /// The staging area.
    pub(crate) fn staging(&self) -> &Staging {
        &self.staging
    }

    /// The PnP profile's shared state (for fetching files).
    pub(crate) fn pnp(&self) -> Option<Arc<AgentShared>> {
        self.pnp
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reload time used when a job asks for a reload (`delayIn` 0 -> 00:01,
    /// SIET's value; the units of `delayIn` are not public).
    pub(crate) fn reload_time() -> ReloadTime {
        ReloadTime {
            hours: 0,
            minutes: 1,
        }
    }

    /// Health as `show vstack` prints it (see [`health`]).
    pub fn health(&self, window: Duration) -> HashMap<Mac, bool> {
        health(&self.table, window)
    }
}

/// Health as `show vstack` prints it: active when the dataplane heard from
/// the client within `window`.
pub fn health(table: &ClientTable, window: Duration) -> HashMap<Mac, bool> {
    let now_ns = monotonic_ns();
    let mut out = HashMap::new();
    if let Ok(entries) = table.entries() {
        for (mac, e) in entries {
            let active = e.last_seen_ns != 0
                && now_ns.saturating_sub(e.last_seen_ns) <= window.as_nanos() as u64;
            out.insert(Mac(mac), active);
        }
    }
    out
}

/// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_first_fetch_fails_the_delivery() {
        let mut w = Waiters::default();
        let (tx, mut rx) = oneshot::channel();
        w.downloads.insert("d/img.tar".into(), tx);
        w.first_fetches
            .insert("d/img.txt".into(), "d/img.tar".into());
        w.fetch_finished("d/img.txt", Err("no answer after 5 retransmissions".into()));
        assert_eq!(
            rx.try_recv().expect("answered"),
            Err("d/img.txt: no answer after 5 retransmissions".into())
        );
        assert!(w.downloads.is_empty() && w.first_fetches.is_empty());
    }

    #[test]
    fn a_fetched_first_file_leaves_the_delivery_waiting() {
        let mut w = Waiters::default();
        let (tx, mut rx) = oneshot::channel();
        w.downloads.insert("d/img.tar".into(), tx);
        w.first_fetches
            .insert("d/img.txt".into(), "d/img.tar".into());
        w.fetch_finished("d/img.txt", Ok(()));
        assert!(rx.try_recv().is_err(), "still waiting for the image");
        w.fetch_finished("d/other.tar", Err("someone else's".into()));
        assert!(rx.try_recv().is_err());
        w.fetch_finished("d/img.tar", Ok(()));
        assert_eq!(rx.try_recv().expect("answered"), Ok(()));
    }
}
