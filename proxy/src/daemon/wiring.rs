//! The services the daemon runs above the dataplane, and how they follow
//! the configuration while it runs.
//!
//! A [`Services`] generation is the local DHCP server and the director (its
//! sockets on the proxy address: TFTP 69, SMI 4786, telnet 19140; the
//! tailored configuration; the proxy core with its PnP agents), started
//! from one configuration. What outlives a generation is in [`Base`]: the
//! kernel client table, the proxy database, the counters, and the slot the
//! dataplane's event pump delivers to. [`Services::reconcile`] compares a
//! new configuration with the one a generation runs:
//! - the address, Smart Install on/off, the startup VLAN, the DHCP pool,
//!   the credentials or the limits changed: the generation stops (every
//!   operation in flight ends and is recorded as interrupted; no SMI
//!   message leaves after that) and a new one starts, which resumes every
//!   known client from the database without identifying it again;
//! - only the PnP profile changed: the agents are handed over
//!   ([`Core::switch_profile`]); an exchange in flight finishes against the
//!   old server.
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::flags::{RunConfig, pnp_profile};
use super::supervise::Supervisor;
use crate::config::{LocalAddrs, ProxyConfig};
use crate::dataplane::{ClientTable, DataplaneEvent};
use crate::logic::Core;
use crate::pnp::agent::{AgentShared, PnpProfile, PnpStats};
use crate::smi::director::{DirectorStats, ListenerStats};
use crate::smi::telnet::TelnetStats;
use crate::smi::tftp::TftpStats;
use crate::store::Store;

/// A batch of dataplane events.
type Batch = Vec<DataplaneEvent>;

/// Where the dataplane's event pump delivers: the running generation's
/// channel, or nowhere between generations.
pub(super) type EventSlot = Arc<Mutex<Option<mpsc::Sender<Batch>>>>;

/// What every generation shares and outlives.
pub(super) struct Base {
    /// The settings given at start (timeouts, extra startup VLANs).
    pub(super) run: RunConfig,
    /// The kernel client table.
    pub(super) table: ClientTable,
    /// The proxy database.
    pub(super) store: Arc<Mutex<Store>>,
    /// Counters of the director's 4786 listener.
    pub(super) listener: Arc<ListenerStats>,
    /// Counters of the PnP agents.
    pub(super) pnp: Arc<PnpStats>,
    /// Counters of the director's messages to clients.
    pub(super) smi: Arc<DirectorStats>,
    /// Runs every task of every generation.
    pub(super) supervisor: Supervisor,
    /// Counters of the TFTP server.
    pub(super) tftp: Arc<TftpStats>,
    /// Connections the reverse-telnet listener refused.
    pub(super) telnet: Arc<TelnetStats>,
    /// The event pump's destination.
    pub(super) events: EventSlot,
    /// The daemon's token: cancelling it stops every generation.
    pub(super) root: CancellationToken,
}

impl Base {
    /// Registers the counters that outlive the generations with `/metrics`
    /// (each subsystem names and describes its own).
    pub(super) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        self.listener.register(registry);
        self.smi.register(registry);
        self.tftp.register(registry);
        self.telnet.register(registry);
        self.pnp.register(registry);
    }

    /// The PnP agents' shared state for the active profile of `cfg`.
    fn agents_for(&self, cfg: &ProxyConfig) -> anyhow::Result<Option<Arc<AgentShared>>> {
        match pnp_profile(cfg) {
            Some(profile) => {
                tracing::info!("PnP profile {}: server {}", profile.name, profile.server);
                Ok(Some(AgentShared::counting_into(profile, self.pnp.clone())?))
            }
            None => {
                tracing::warn!(
                    "no PnP server configured: switches are identified, no PnP agent runs"
                );
                Ok(None)
            }
        }
    }
}

/// The parts of a configuration a generation is built from, except the PnP
/// profile (handed over without a restart).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Built {
    /// The configuration with what does not matter here blanked.
    config: ProxyConfig,
    /// The proxy address it resolved to.
    proxy_ip: Option<Ipv4Addr>,
}

impl Built {
    fn of(cfg: &ProxyConfig) -> anyhow::Result<Self> {
        let proxy_ip = if cfg.enabled {
            let local = LocalAddrs::system().context("listing local addresses")?;
            cfg.proxy_ip(&local)
                .with_context(|| match (cfg.ip_address, &cfg.interface) {
                    (Some(ip), _) => format!("proxy address: ip_address = {ip}"),
                    (None, name) => format!(
                        "proxy address: interface = {:?}",
                        name.as_deref().unwrap_or_default()
                    ),
                })?
        } else {
            None
        };
        let mut config = cfg.clone();
        // The dataplane follows these at once; the services do not read them.
        config.management_vlans = Vec::new();
        config.enforce = true;
        config.debug = false;
        config.pnp_profile = String::new();
        config.pnp_profiles.clear();
        Ok(Self { config, proxy_ip })
    }
}

/// What the control socket and `/metrics` see of a generation.
#[derive(Clone, Default)]
pub(super) struct Running {
    /// The proxy core, while the director runs.
    pub(super) core: Option<Arc<Core>>,
    /// The local DHCP server's counters, while it runs.
    pub(super) dhcp: Option<Arc<crate::dhcp::DhcpStats>>,
}

/// One generation of services.
pub(super) struct Services {
    built: Option<Built>,
    profile: Option<PnpProfile>,
    cancel: CancellationToken,
    /// This generation's tasks (run under the daemon's supervisor).
    tasks: TaskTracker,
    running: Running,
}

impl Services {
    /// Nothing running (before the first start, or after a failed one).
    pub(super) fn none(base: &Base) -> Self {
        Self {
            built: None,
            profile: None,
            cancel: base.root.child_token(),
            tasks: TaskTracker::new(),
            running: Running::default(),
        }
    }

    /// Starts the local DHCP server (if configured) and the director (if
    /// Smart Install is on and the proxy has an address) of `cfg`.
    pub(super) async fn start(base: &Base, cfg: &ProxyConfig) -> anyhow::Result<Self> {
        let built = Built::of(cfg)?;
        let mut services = Self::none(base);
        services.profile = pnp_profile(cfg);
        if let Err(e) = services.start_parts(base, cfg, built.proxy_ip).await {
            services.stop("start-up failed").await;
            return Err(e);
        }
        services.built = Some(built);
        Ok(services)
    }

    async fn start_parts(
        &mut self,
        base: &Base,
        cfg: &ProxyConfig,
        proxy_ip: Option<Ipv4Addr>,
    ) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel::<Batch>(1024);
        *base.events.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        let (rx, dhcp) =
            crate::dhcp::start_from(cfg, proxy_ip, base.table.clone(), rx, self.cancel.clone())
                .await?;
        if let Some(dhcp) = dhcp {
            self.running.dhcp = Some(dhcp.stats.clone());
            base.supervisor.adopt(&self.tasks, "DHCP server", dhcp.task);
            base.supervisor.adopt(&self.tasks, "DHCP tap", dhcp.tap);
        }
        match proxy_ip {
            Some(ip) => {
                let core =
                    start_director(base, cfg, ip, rx, &self.tasks, self.cancel.clone()).await?;
                self.running.core = Some(core);
            }
            None if cfg.enabled => tracing::warn!(
                "no proxy address (ip_address, interface or --proxy-ip): running the dataplane only"
            ),
            None => tracing::warn!("Smart Install is off: running the dataplane only"),
        }
        Ok(())
    }

    /// What the control socket and `/metrics` see of it.
    pub(super) fn running(&self) -> Running {
        self.running.clone()
    }

    /// Stops everything of this generation; `why` is recorded on the
    /// download jobs it cuts short.
    pub(super) async fn stop(mut self, why: &str) {
        if let Some(core) = self.running.core.take() {
            core.stop(why).await;
        }
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Makes the services follow `cfg` (see the module's comment): the
    /// generation that runs then.
    pub(super) async fn reconcile(self, base: &Base, cfg: &ProxyConfig) -> anyhow::Result<Self> {
        let built = Built::of(cfg)?;
        if self.built.as_ref() != Some(&built) {
            tracing::info!("configuration changed: restarting the director and the DHCP server");
            *base.events.lock().unwrap_or_else(PoisonError::into_inner) = None;
            self.stop("the configuration changed").await;
            return Self::start(base, cfg).await;
        }
        let profile = pnp_profile(cfg);
        if profile == self.profile {
            return Ok(self);
        }
        let mut this = self;
        if let Some(core) = &this.running.core {
            let shared = base.agents_for(cfg)?;
            tracing::info!("PnP profile changed: agents move over after their current exchange");
            core.switch_profile(shared);
        }
        this.profile = profile;
        Ok(this)
    }
}

/// Runs the TFTP server on a thread and runtime of its own; the receiver
/// gets its outcome. Thousands of lock-step transfers keep hundreds of
/// tasks ready at once: in the daemon's runtime, a PnP exchange woken
/// behind them waited its turn in that queue (apart, the median
/// turnaround toward the PnP server at 10,000 switches halved). The
/// kernel's scheduler shares the cores between the two.
fn serve_tftp_apart(
    udp: std::net::UdpSocket,
    staging: crate::smi::tftp::Staging,
    events: mpsc::Sender<crate::smi::tftp::TftpEvent>,
    cancel: CancellationToken,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<()>>> {
    use crate::smi::tftp;
    udp.set_nonblocking(true)?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let run = move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let udp = tokio::net::UdpSocket::from_std(udp)?;
            tftp::serve(udp, staging, events, tftp::TftpLimits::default(), cancel)
                .await
                .context("TFTP server")
        })
    };
    std::thread::Builder::new()
        .name("tftp".into())
        .spawn(move || {
            // The supervisor is gone only when the daemon is stopping.
            let _ = done_tx.send(run());
        })
        .context("TFTP thread")?;
    Ok(done_rx)
}

/// Binds the director's sockets on `ip` (TFTP 69, SMI 4786, telnet 19140),
/// stages the tailored configuration and starts the proxy core (with the
/// PnP agents of the active profile, if any): the core, its tasks run
/// under the supervisor and tracked by `tasks`.
async fn start_director(
    base: &Base,
    cfg: &ProxyConfig,
    ip: Ipv4Addr,
    dataplane: mpsc::Receiver<Batch>,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<Arc<Core>> {
    use crate::smi::{director, tailored, telnet, tftp};
    let sup = &base.supervisor;

    let creds = tailored::Credentials {
        enable_password: cfg.credentials.enable_password.clone(),
        username: cfg.credentials.username.clone(),
    };
    let text = tailored::render(ip, &creds).context("tailored configuration")?;
    let vstack = cfg.state_dir.join("vstack");
    std::fs::create_dir_all(&vstack)?;
    std::fs::write(vstack.join(tailored::FILE_NAME), &text)?;
    let staging = tftp::Staging::counting_into(Some(tftp::DEFAULT_TTL), base.tftp.clone());
    let tailored_file = staging.stage("proxy", tailored::FILE_NAME, text);
    staging.set_ttl(tailored_file.path(), None);

    let udp = std::net::UdpSocket::bind((ip, tftp::TFTP_PORT))
        .with_context(|| format!("TFTP on {ip}:69"))?;
    let (tftp_tx, tftp_rx) = tokio::sync::mpsc::channel(4096);
    let served = serve_tftp_apart(udp, staging.clone(), tftp_tx, cancel.clone())?;
    sup.spawn_tracked(tasks, "TFTP server", async move {
        served.await.context("TFTP thread")?
    });

    let limits = director::Limits {
        connect: cfg.limits.probe_timeout(),
        read: cfg.limits.probe_timeout(),
        max_inbound: cfg.limits.max_smi_connections,
    };
    let smi =
        listener(ip, director::SMI_PORT).with_context(|| format!("SMI listener on {ip}:4786"))?;
    let (inbound_tx, mut inbound_rx) = tokio::sync::mpsc::channel(256);
    let listen = director::listen(
        smi,
        limits,
        base.listener.clone(),
        inbound_tx,
        cancel.clone(),
    );
    sup.spawn_tracked(tasks, "SMI listener", async move {
        listen.await;
        Ok(())
    });
    // MODELLED: client-to-director messages have no public layout; they
    // are logged by the listener and otherwise ignored.
    sup.spawn_tracked(tasks, "SMI inbound", async move {
        while inbound_rx.recv().await.is_some() {}
        Ok(())
    });

    let tel = listener(ip, telnet::TELNET_PORT)
        .with_context(|| format!("telnet listener on {ip}:19140"))?;
    let (tel_tx, tel_rx) = tokio::sync::mpsc::channel(1024);

    let pnp = base.agents_for(cfg)?;

    let core_cfg = crate::logic::CoreConfig {
        proxy_ip: ip,
        interface: cfg.interfaces.first().cloned().unwrap_or_default(),
        limits,
        identify_timeout: base.run.identify_timeout,
        download_timeout: base.run.download_timeout,
        reload_timeout: base.run.reload_timeout,
        probe_attempts: 6,
        config_cap: 4 << 20,
        image_cap: 1 << 30,
        image_dir: cfg.state_dir.join("images"),
    };
    let (core, _jobs_tx, jobs_rx, reports_rx) = crate::logic::Core::new(
        core_cfg,
        base.table.clone(),
        base.store.clone(),
        staging,
        tailored_file,
        pnp,
        base.smi.clone(),
        cancel.clone(),
    );
    let inputs = crate::logic::CoreInputs {
        dataplane,
        tftp: tftp_rx,
        telnet: tel_rx,
        jobs: jobs_rx,
        reports: reports_rx,
    };
    let expects = core.clone();
    // Room for every session an identification can wait for: a refused
    // one costs its switch the whole identification timeout.
    let sessions_max = crate::logic::TELNET_WAITERS_MAX * telnet::SESSIONS_PER_PEER;
    let listen = telnet::listen(
        tel,
        cfg.limits.telnet_timeout(),
        sessions_max,
        move |peer| expects.expects_telnet(peer),
        base.telnet.clone(),
        tel_tx,
        cancel.clone(),
    );
    sup.spawn_tracked(tasks, "telnet listener", async move {
        listen.await;
        Ok(())
    });
    let run = core.clone().run(inputs);
    sup.spawn_tracked(tasks, "proxy core", async move {
        run.await;
        Ok(())
    });
    Ok(core)
}

/// Connections the kernel queues on a director listener before `accept`
/// (capped by `net.core.somaxconn`, 4,096 by default): thousands of
/// switches reloading together connect back within the same second, and
/// tokio's default of 1,024 overflowed in a 50,000-switch lab.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening TCP socket on `ip:port` with [`LISTEN_BACKLOG`].
fn listener(ip: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind((ip, port).into())?;
    socket.listen(LISTEN_BACKLOG)
}
