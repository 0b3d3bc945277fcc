//! The proxy logic: the one table that joins the SMI side (clients known by
//! MAC) and the PnP side (devices known by UDI), and the onboarding of each
//! client from its first DHCP frame to its own PnP agent.
//!
//! Data flows one way: dataplane, TFTP and telnet events come in; the
//! kernel map, the proxy database and SMI messages go out. The mapping of
//! PnP services to SMI operations lives in [`translate`], in one table.
//!
//! [`Core`] is split by concern: [`clients`] holds the MAC <-> UDI table
//! (identified clients in the database, the unidentified in memory);
//! `onboard` takes a client from first sight to its agent; [`identify`]
//! learns what it is; `deliver` hands it files and waits for the outcome;
//! `agents` runs one PnP agent per UDI; [`translate`] turns the server's
//! jobs into SMI operations. Every failure is a [`CoreError`].

mod agents;
pub mod clients;
mod deliver;
pub mod error;
pub mod fetch;
pub mod identify;
mod onboard;
mod pnp_runtime;
pub mod translate;

pub use error::CoreError;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::clock::monotonic_ns;
use crate::dataplane::{ClientTable, DataplaneEvent, NeighbourSeeder};
use crate::mac::Mac;
use crate::pnp::agent::{AgentReport, AgentShared, JobRequest};
use crate::smi::director::{self, Limits};
use crate::smi::telnet::Session;
use crate::smi::tftp::{StagedFile, Staging, TftpEvent};
use crate::store::{ClientRecord, JobStatus, Store};
use crate::udi::Udi;
use agents::AgentSlot;
use deliver::Waiters;

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

/// What the logic knows of a client beyond the database record.
#[derive(Clone, Debug, Default)]
struct Runtime {
    /// Onboarding (probe + identify) is running.
    onboarding: bool,
    /// A PnP agent runs for it.
    agent: Option<AgentSlot>,
}

/// How often the kernel map is scanned for clients whose events were lost.
const RESCAN_PERIOD: Duration = Duration::from_secs(30);

/// Clients told to fetch a file (tailored configuration, configuration,
/// image list and image) at once. The TFTP server runs at most 1,024
/// transfers and refuses more with "server busy", which a switch takes as
/// a failed download; with one shared image download, a thousand image
/// installs would otherwise all start in the same second. TFTP moves one
/// block per round trip, so this is also what sets the proxy's TFTP
/// throughput: at 10,000 switches on two loaded cores, 128 moved 23 MB/s,
/// 384 moved more. The rest of the server's room is for transfers that
/// need no admission: at a limit of 512, a 50,000-switch lab had its
/// image downloads refused twice once no reverse-telnet session was
/// refused any more (the wave of identifications no longer thinned).
const DELIVERIES_MAX: usize = 384;

/// The most addresses [`Core::expects_telnet`] says yes to at once: an
/// identification holds its delivery turn until its reverse-telnet
/// session ends (or its wait does), so no more than [`DELIVERIES_MAX`]
/// wait at once. The telnet listener's session cap is sized from it.
pub(crate) const TELNET_WAITERS_MAX: usize = DELIVERIES_MAX;

/// SMI connections to clients open at once (probes and command messages,
/// each on a connection of its own). A wave of switches booting together
/// otherwise opened one per switch in the same second: 50,000 switches
/// ran a daemon with a limit of 20,000 open files out of descriptors, and
/// its listeners could no longer accept. Further ones wait their turn.
const SMI_CONNECTIONS_MAX: usize = 4096;

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
    /// The MAC whose agent speaks for each UDI (one agent per device; a
    /// stack back under another MAC moves it). Locked inside `runtime`.
    agent_macs: Mutex<HashMap<Udi, Mac>>,
    /// The active PnP profile's shared agent state (see [`Core::switch_profile`]).
    pnp: RwLock<Option<Arc<AgentShared>>>,
    jobs: mpsc::Sender<JobRequest>,
    reports: mpsc::Sender<AgentReport>,
    cancel: CancellationToken,
    /// Every task the core spawns, so that [`Core::stop`] can wait for them.
    tasks: TaskTracker,
    /// Where the PnP side runs ([`Core::spawn_pnp`]); None if its thread
    /// could not start (it then shares the daemon's runtime).
    pnp_runtime: Option<pnp_runtime::PnpRuntime>,
    smi: Arc<director::DirectorStats>,
    /// Adds snooped clients to the neighbour table (None: not possible here).
    neigh: Option<NeighbourSeeder>,
    /// Files fetched from the PnP server, shared by concurrent installs.
    fetches: fetch::FetchCache,
    /// Admission of deliveries ([`DELIVERIES_MAX`]).
    deliveries: tokio::sync::Semaphore,
    /// SMI connections to clients ([`SMI_CONNECTIONS_MAX`]).
    smi_connections: tokio::sync::Semaphore,
    /// Bounds the lines of dataplane events a flood can cause.
    event_log: Mutex<crate::logging::Throttle>,
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
                tracing::warn!(target: "smi_proxy", "clients will be found by ARP: {e}");
                None
            }
        };
        let pnp_runtime = pnp_runtime::PnpRuntime::start()
            .inspect_err(|e| {
                tracing::warn!(target: "smi_proxy", "PnP agents share the daemon's runtime: {e}")
            })
            .ok();
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
            agent_macs: Mutex::new(HashMap::new()),
            pnp: RwLock::new(pnp),
            jobs: jobs_tx.clone(),
            reports: reports_tx,
            cancel,
            tasks: TaskTracker::new(),
            pnp_runtime,
            smi,
            neigh,
            fetches: fetch::FetchCache::default(),
            deliveries: tokio::sync::Semaphore::new(DELIVERIES_MAX),
            smi_connections: tokio::sync::Semaphore::new(SMI_CONNECTIONS_MAX),
            event_log: Mutex::new(crate::logging::Throttle::new()),
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

    /// Waits for one of the [`SMI_CONNECTIONS_MAX`] SMI connection slots;
    /// the connection is made while the permit is held. (The semaphore is
    /// never closed; were it, the caller goes ahead unthrottled.)
    async fn smi_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.smi_connections.acquire().await.ok()
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
    /// (Logged in the caller's span: the client's.)
    fn update(&self, mac: Mac, edit: impl FnOnce(&mut ClientRecord) + Send) {
        let identified = self.clients.get(mac).is_some_and(|r| r.udi.is_some());
        match self.clients.update(mac, edit) {
            Err(e) => tracing::error!(target: "smi_proxy::db", "update failed: {e}"),
            Ok(()) if !identified && self.clients.get(mac).is_some_and(|r| r.udi.is_some()) => {
                tracing::info!(target: "smi_proxy::db", "added to the proxy database")
            }
            Ok(()) => {}
        }
    }

    fn insert(&self, record: ClientRecord) {
        if let Err(e) = self.clients.insert(record) {
            tracing::error!(target: "smi_proxy::db", "insert failed: {e}");
        }
    }

    /// Runs the event loops until cancelled. Also resumes the clients the
    /// database knows (reconciling the kernel map with it).
    pub async fn run(self: Arc<Self>, mut inputs: CoreInputs) {
        self.resume();
        let mut rescan = tokio::time::interval(RESCAN_PERIOD);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.tick().await;
        self.spawn_pnp(self.clone().dispatch_jobs(inputs.jobs));
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
                Some(report) = inputs.reports.recv() => self.on_agent_report(report),
                else => return,
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
            let _client = crate::logging::client(mac).entered();
            tracing::warn!(target: "smi_proxy", "download job interrupted: {why}");
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
        self.tasks.spawn(self.cancellable(fut));
    }

    /// Runs `fut` as [`Core::spawn`] does, on the PnP runtime.
    fn spawn_pnp<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let task = self.cancellable(fut);
        match self.pnp_runtime.as_ref().and_then(|rt| rt.handle()) {
            Some(handle) => {
                self.tasks.spawn_on(task, handle);
            }
            None => {
                self.tasks.spawn(task);
            }
        }
    }

    /// `fut`, ended by the core's cancellation. Boxed: each wrapper layer
    /// would otherwise hold its own copy of the future's state (a PnP
    /// agent's 1.6 KiB became a 5 KiB task).
    fn cancellable<F>(&self, fut: F) -> impl std::future::Future<Output = Option<()>> + use<F>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.cancel.clone().run_until_cancelled_owned(Box::pin(fut))
    }

    /// Gives each job from the agents a task of its own, on the PnP
    /// runtime, until the core is cancelled (it holds a sender itself).
    async fn dispatch_jobs(self: Arc<Self>, mut jobs: mpsc::Receiver<JobRequest>) {
        while let Some(job) = jobs.recv().await {
            let span = crate::logging::client(job.mac);
            self.spawn_pnp(translate::handle(self.clone(), job).instrument(span));
        }
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
