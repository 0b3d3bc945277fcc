//! The daemon: loads the dataplane, attaches it, and runs the tasks until
//! SIGTERM or SIGINT. Small tasks joined by channels, cancelled by a token.
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use proxy_common::Policy;
use tokio_util::sync::CancellationToken;

use crate::dataplane::{self, Dataplane, DataplaneEvent, EventKind};

/// Command-line configuration of `smi-proxy run`.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonConfig {
    /// Switch-facing interface(s) to attach XDP to.
    #[arg(long = "iface", required = true)]
    pub ifaces: Vec<String>,
    /// Network namespace (name under /run/netns) to run in.
    #[arg(long)]
    pub netns: Option<String>,
    /// Directory on bpffs for pinned maps.
    #[arg(long, default_value = dataplane::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Startup VLAN(s): DHCP from unknown clients is learned only there.
    #[arg(long = "startup-vlan", default_value = "1")]
    pub startup_vlans: Vec<u16>,
    /// VLAN assumed for untagged frames.
    #[arg(long, default_value_t = 1)]
    pub untagged_vlan: u16,
    /// Observe SMI only: count would-be drops, drop nothing.
    #[arg(long)]
    pub no_enforce: bool,
    /// Cap on the SMI header's length word.
    #[arg(long, default_value_t = proxy_common::SMI_LEN_CAP_DEFAULT)]
    pub smi_len_cap: u32,
    /// Capacity of the client map.
    #[arg(long, default_value_t = proxy_common::CLIENTS_MAX)]
    pub clients_max: u32,
    /// Refuse generic (SKB) XDP when native attach fails.
    #[arg(long)]
    pub native_only: bool,
    /// Leave the XDP classifier attached when the daemon stops (it keeps
    /// learning clients; the next daemon takes its pinned link over).
    #[arg(long)]
    pub keep_xdp: bool,
    /// Admit these MACs for SMI at start (aa:bb:cc:dd:ee:ff), e.g. for tests.
    #[arg(long = "admit")]
    pub admit: Vec<String>,
    /// The director address clients are given (one of this host's IPv4
    /// addresses on the switch-facing side). Without it only the dataplane runs.
    #[arg(long)]
    pub proxy_ip: Option<std::net::Ipv4Addr>,
    /// State directory (the proxy database lives in `<dir>/vstack/`).
    #[arg(long, default_value = "/var/lib/smi-pnp-proxy")]
    pub state_dir: PathBuf,
    /// PnP server base URL (http://host:port or https://host:port).
    #[arg(long)]
    pub pnp_server: Option<String>,
    /// PEM certificate the PnP server must present (self-signed, pinned).
    #[arg(long)]
    pub pnp_pinned_cert: Option<PathBuf>,
    /// PEM CA bundle that must have signed the PnP server's certificate.
    #[arg(long)]
    pub pnp_ca_bundle: Option<PathBuf>,
    /// `enable password` written into the tailored configuration.
    #[arg(long, default_value = "cisco")]
    pub enable_password: String,
    /// `username` written into the tailored configuration.
    #[arg(long, default_value = "cisco")]
    pub username: String,
    /// Seconds to wait for a client's reverse telnet after the tailored configuration.
    #[arg(long, default_value_t = 60)]
    pub identify_timeout: u64,
    /// Seconds to wait for a client to fetch a staged file.
    #[arg(long, default_value_t = 300)]
    pub download_timeout: u64,
    /// Seconds to wait for a reloading client to come back.
    #[arg(long, default_value_t = 900)]
    pub reload_timeout: u64,
    /// Control socket for `smi-proxy show|config|debug`.
    #[arg(long, default_value = "/run/smi-pnp-proxy/control.sock")]
    pub control_socket: PathBuf,
    /// Address of the Prometheus `/metrics` endpoint (in the daemon's namespace).
    #[arg(long, default_value = "127.0.0.1:9786")]
    pub metrics_addr: std::net::SocketAddr,
    /// A client is shown Active when the dataplane heard from it within this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub health_window: u64,
}

impl DaemonConfig {
    /// The XDP policy this configuration asks for.
    pub fn policy(&self) -> Policy {
        let mut p = Policy {
            enforce: u32::from(!self.no_enforce),
            smi_len_cap: self.smi_len_cap,
            untagged_vlan: self.untagged_vlan,
            ..Policy::default()
        };
        p.startup_vlans = [0; proxy_common::VLAN_WORDS];
        for v in &self.startup_vlans {
            p.set_startup_vlan(*v, true);
        }
        p
    }
}

/// Moves the calling thread into the network namespace `name`. Called before
/// the runtime starts so that every worker thread inherits it (and, unlike
/// `ip netns exec`, /sys and its bpffs stay those of the host).
pub fn enter_netns(name: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).with_context(|| format!("network namespace {path}"))?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns on a valid namespace fd; affects only this thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns {path}"));
    }
    Ok(())
}

/// Parses `aa:bb:cc:dd:ee:ff` (or `-` separated).
pub fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    anyhow::ensure!(parts.len() == 6, "MAC {s:?}: expected six hex octets");
    let mut mac = [0u8; 6];
    for (o, p) in mac.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).with_context(|| format!("MAC {s:?}"))?;
    }
    Ok(mac)
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    if let Some(ns) = &cfg.netns {
        enter_netns(ns)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(cfg))
}

async fn run_async(cfg: DaemonConfig) -> anyhow::Result<()> {
    // Before anything can say "ready": a SIGTERM must always stop us cleanly.
    let signals = Signals::new()?;
    let mut dp = Dataplane::load(&dataplane::Options {
        pin_dir: cfg.pin_dir.clone(),
        clients_max: cfg.clients_max,
        policy: cfg.policy(),
        skb_fallback: !cfg.native_only,
        object: None,
        keep_attached: cfg.keep_xdp,
    })?;
    let table = dp.table();
    let known = table.entries()?.len();
    log::info!("client table: {known} entries at start");
    for m in &cfg.admit {
        table.set_state(parse_mac(m)?, proxy_common::state::ADMITTED)?;
    }
    for iface in &cfg.ifaces {
        let mode = dp.attach(iface)?;
        log::info!("dataplane: {iface} attached ({mode})");
    }
    let mut events = dp.take_events().context("event stream already taken")??;
    let cancel = CancellationToken::new();
    let (dp_tx, dp_rx) = tokio::sync::mpsc::channel::<Vec<DataplaneEvent>>(1024);
    let events_task = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    batch = events.next_batch() => match batch {
                        Ok(batch) => {
                            batch.iter().for_each(log_event);
                            if dp_tx.send(batch).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            log::error!("dataplane events: {e}");
                            break;
                        }
                    },
                }
            }
        })
    };
    let (director, core) = match cfg.proxy_ip {
        Some(ip) => {
            let (task, core, listener) =
                start_director(&cfg, ip, dp.table(), dp_rx, cancel.clone()).await?;
            (Some(task), Some((core, listener)))
        }
        None => {
            log::warn!("no --proxy-ip: running the dataplane only");
            (None, None)
        }
    };
    let dp = Arc::new(std::sync::Mutex::new(dp));
    let control = Arc::new(Control::new(&cfg, core, dp.clone()));
    let server = crate::control::ControlServer::bind(&cfg.control_socket).await?;
    let control_task = tokio::spawn(server.run(control.clone(), cancel.clone()));
    let metrics = crate::metrics::MetricsServer::bind(cfg.metrics_addr).await?;
    let metrics_task = tokio::spawn(metrics.run(control, cancel.clone()));
    println!("smi-proxy: ready");
    signals.wait().await;
    log::info!("stopping");
    cancel.cancel();
    let _ = events_task.await;
    if let Some(core) = director {
        let _ = core.await;
    }
    let _ = control_task.await;
    let _ = metrics_task.await;
    let _ = std::fs::remove_file(&cfg.control_socket);
    drop(dp);
    log::info!(
        "XDP {}; client table kept pinned under {}",
        if cfg.keep_xdp {
            "left attached"
        } else {
            "detached"
        },
        cfg.pin_dir.display()
    );
    Ok(())
}

/// What the control socket can see and change in the running daemon.
struct Control {
    core: Option<Arc<crate::logic::Core>>,
    listener: Option<Arc<crate::smi::director::ListenerStats>>,
    dataplane: Arc<std::sync::Mutex<Dataplane>>,
    config: std::sync::Mutex<crate::config::ProxyConfig>,
    health_window: Duration,
}

impl Control {
    fn new(
        cfg: &DaemonConfig,
        director: Option<(
            Arc<crate::logic::Core>,
            Arc<crate::smi::director::ListenerStats>,
        )>,
        dataplane: Arc<std::sync::Mutex<Dataplane>>,
    ) -> Self {
        let (core, listener) = match director {
            Some((c, l)) => (Some(c), Some(l)),
            None => (None, None),
        };
        let config = crate::config::ProxyConfig {
            interfaces: cfg.ifaces.clone(),
            netns: cfg.netns.clone(),
            enabled: true,
            ip_address: cfg.proxy_ip,
            startup_vlan: cfg.startup_vlans.first().copied().unwrap_or(1),
            untagged_vlan: cfg.untagged_vlan,
            enforce: !cfg.no_enforce,
            ..crate::config::ProxyConfig::default()
        };
        Self {
            core,
            listener,
            dataplane,
            config: std::sync::Mutex::new(config),
            health_window: Duration::from_secs(cfg.health_window),
        }
    }

    fn config(&self) -> std::sync::MutexGuard<'_, crate::config::ProxyConfig> {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::control::ControlHandler for Control {
    fn show_view(&self) -> crate::cli::show::ShowView {
        use crate::cli::show::{ClientView, ProxyConfig as ShowConfig, ShowView};
        let cfg = self.config().clone();
        let (clients, proxy_ip) = match &self.core {
            Some(core) => {
                let health = core.health(self.health_window);
                let clients = core
                    .records()
                    .into_iter()
                    .map(|record| ClientView {
                        health_active: health.get(&record.mac).copied().unwrap_or(false),
                        record,
                    })
                    .collect();
                (clients, core.config().proxy_ip)
            }
            None => (Vec::new(), cfg.ip_address.unwrap_or(Ipv4Addr::UNSPECIFIED)),
        };
        ShowView {
            config: ShowConfig {
                enabled: cfg.enabled,
                proxy_ip,
                default_vlan: 1,
                startup_vlan: cfg.startup_vlan,
                management_vlans: cfg.management_vlans.clone(),
            },
            clients,
        }
    }

    fn apply_config(&self, line: &str) -> Result<String, String> {
        let local = crate::config::LocalAddrs::system()
            .map_err(|e| format!("% cannot list local addresses: {e}"))?;
        let mut cfg = self.config();
        let changes = crate::config::execute(&mut cfg, line, &local).map_err(|e| e.to_string())?;
        // The dataplane follows the startup VLAN and enforcement at once.
        let mut policy = Policy {
            enforce: u32::from(cfg.enforce && cfg.enabled),
            untagged_vlan: cfg.untagged_vlan,
            startup_vlans: [0; proxy_common::VLAN_WORDS],
            ..Policy::default()
        };
        policy.set_startup_vlan(cfg.startup_vlan, true);
        self.dataplane
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_policy(&policy)
            .map_err(|e| format!("% dataplane: {e}"))?;
        Ok(changes.iter().map(|c| format!("{c}\n")).collect())
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
                    dataplane::format_mac(mac),
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
        if let Some(core) = &self.core {
            let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
            for r in core.records() {
                *by_state.entry(r.state.token()).or_default() += 1;
            }
            let mut f = out.gauge(
                "smi_proxy_clients",
                "Clients in the proxy database, by entry state.",
            );
            for (state, n) in by_state {
                f.sample(&[("state", state)], n);
            }
            let t = core.tftp_stats();
            out.counter("smi_proxy_tftp_bytes_served_total", "Bytes served by TFTP.")
                .value(t.bytes_served());
            out.counter(
                "smi_proxy_tftp_transfers_total",
                "TFTP transfers, by outcome.",
            )
            .sample(&[("outcome", "started")], t.transfers_started())
            .sample(&[("outcome", "completed")], t.transfers_completed())
            .sample(&[("outcome", "failed")], t.transfers_failed());
        }
        if let Some(l) = &self.listener {
            out.counter(
                "smi_proxy_smi_inbound_total",
                "Connections and messages on the director's 4786 listener.",
            )
            .sample(&[("event", "accepted")], l.accepted.load(Relaxed))
            .sample(&[("event", "refused_busy")], l.refused_busy.load(Relaxed))
            .sample(&[("event", "message")], l.messages.load(Relaxed))
            .sample(&[("event", "unknown_type")], l.unknown.load(Relaxed))
            .sample(&[("event", "malformed")], l.malformed.load(Relaxed));
        }
        out.finish()
    }
}

/// Binds the director's sockets on `ip` (TFTP 69, SMI 4786, telnet 19140),
/// opens the proxy database, stages the tailored configuration and starts
/// the proxy core. Returns the core's task.
async fn start_director(
    cfg: &DaemonConfig,
    ip: Ipv4Addr,
    table: crate::dataplane::ClientTable,
    dataplane: tokio::sync::mpsc::Receiver<Vec<DataplaneEvent>>,
    cancel: CancellationToken,
) -> anyhow::Result<(
    tokio::task::JoinHandle<()>,
    Arc<crate::logic::Core>,
    Arc<crate::smi::director::ListenerStats>,
)> {
    use crate::smi::{director, tailored, telnet, tftp};
    let store = crate::store::Store::open(&cfg.state_dir)
        .with_context(|| format!("proxy database in {}", cfg.state_dir.display()))?;
    log::info!("proxy database: {} entries", store.len());

    let creds = tailored::Credentials {
        enable_password: cfg.enable_password.clone(),
        username: cfg.username.clone(),
    };
    let text = tailored::render(ip, &creds).context("tailored configuration")?;
    let vstack = cfg.state_dir.join("vstack");
    std::fs::create_dir_all(&vstack)?;
    std::fs::write(vstack.join(tailored::FILE_NAME), &text)?;
    let staging = tftp::Staging::new();
    let tailored_file = staging.stage("proxy", tailored::FILE_NAME, text);
    staging.set_ttl(tailored_file.path(), None);

    let udp = tokio::net::UdpSocket::bind((ip, tftp::TFTP_PORT))
        .await
        .with_context(|| format!("TFTP on {ip}:69"))?;
    let (tftp_tx, tftp_rx) = tokio::sync::mpsc::channel(4096);
    tokio::spawn(tftp::serve(
        udp,
        staging.clone(),
        tftp_tx,
        tftp::TftpLimits::default(),
        cancel.clone(),
    ));

    let limits = director::Limits::default();
    let smi = tokio::net::TcpListener::bind((ip, director::SMI_PORT))
        .await
        .with_context(|| format!("SMI listener on {ip}:4786"))?;
    let (inbound_tx, mut inbound_rx) = tokio::sync::mpsc::channel(256);
    let listener_stats = Arc::new(director::ListenerStats::default());
    tokio::spawn(director::listen(
        smi,
        limits,
        listener_stats.clone(),
        inbound_tx,
        cancel.clone(),
    ));
    // MODELLED: client-to-director messages have no public layout; they
    // are logged by the listener and otherwise ignored.
    tokio::spawn(async move { while inbound_rx.recv().await.is_some() {} });

    let tel = tokio::net::TcpListener::bind((ip, telnet::TELNET_PORT))
        .await
        .with_context(|| format!("telnet listener on {ip}:19140"))?;
    let (tel_tx, tel_rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(telnet::listen(
        tel,
        Duration::from_secs(10),
        tel_tx,
        cancel.clone(),
    ));

    let pnp = match &cfg.pnp_server {
        Some(url) => {
            let mut profile = crate::pnp::agent::PnpProfile::new(url.clone());
            profile.trust = match (&cfg.pnp_pinned_cert, &cfg.pnp_ca_bundle) {
                (Some(p), _) => Some(crate::pnp::agent::TlsTrust::PinnedCert(p.clone())),
                (None, Some(p)) => Some(crate::pnp::agent::TlsTrust::CaBundle(p.clone())),
                (None, None) => None,
            };
            Some(crate::pnp::agent::AgentShared::new(profile)?)
        }
        None => None,
    };

    let core_cfg = crate::logic::CoreConfig {
        proxy_ip: ip,
        interface: cfg.ifaces.first().cloned().unwrap_or_default(),
        limits,
        identify_timeout: Duration::from_secs(cfg.identify_timeout),
        download_timeout: Duration::from_secs(cfg.download_timeout),
        reload_timeout: Duration::from_secs(cfg.reload_timeout),
        probe_attempts: 6,
        config_cap: 4 << 20,
        image_cap: 1 << 30,
        image_dir: cfg.state_dir.join("images"),
    };
    let (core, _jobs_tx, jobs_rx, reports_rx) = crate::logic::Core::new(
        core_cfg,
        table,
        store,
        staging,
        tailored_file,
        pnp,
        cancel.clone(),
    );
    let inputs = crate::logic::CoreInputs {
        dataplane,
        tftp: tftp_rx,
        telnet: tel_rx,
        jobs: jobs_rx,
        reports: reports_rx,
    };
    Ok((tokio::spawn(core.clone().run(inputs)), core, listener_stats))
}

/// SIGTERM and SIGINT, registered at start.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

fn log_event(ev: &DataplaneEvent) {
    let mac = dataplane::format_mac(&ev.mac);
    match &ev.kind {
        EventKind::NewClient {
            client_id,
            requested,
            ..
        } => log::info!(
            "new client {mac} vlan {} client-id {:?} requested {:?}",
            ev.vlan,
            String::from_utf8_lossy(client_id.strip_prefix(&[0]).unwrap_or(client_id)),
            requested
        ),
        EventKind::AddressLearned(ip) => log::info!("client {mac} vlan {} got {ip}", ev.vlan),
        EventKind::SmiDropped { reason, len_word } => {
            log::warn!(
                "SMI from {mac} vlan {} dropped: {reason:?} (length word {len_word})",
                ev.vlan
            )
        }
        EventKind::DhcpServerSeen(ip) => {
            log::debug!("DHCP server {ip} ({mac}) offered on vlan {}", ev.vlan)
        }
        EventKind::ClientRestarted => {
            log::info!("client {mac} restarted (DHCP discover while upgrading)")
        }
        EventKind::Unknown(k) => log::debug!("unknown dataplane event kind {k} from {mac}"),
    }
}
