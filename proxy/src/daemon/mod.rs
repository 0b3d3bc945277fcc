//! The daemon: loads the dataplane, attaches it, and runs the tasks until
//! SIGTERM or SIGINT. Small tasks joined by channels, cancelled by a token.
//!
//! Its settings come from the configuration file (`--config`, see
//! `docs/configuration.md`) with the command-line flags that were given
//! laid over it, or from the flags alone ([`DaemonConfig::resolve`]).
//!
//! Its parts: [`flags`] (the command line and its merge with the file),
//! [`wiring`] (the director's sockets and the proxy core), [`control`]
//! (what the control socket and `/metrics` see and change), [`supervise`]
//! (every task under one `JoinSet`: a task that panics or fails stops the
//! daemon with its name and error), [`notify`] (what systemd is told).
mod control;
mod flags;
mod notify;
mod supervise;
mod wiring;

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::dataplane::{self, Dataplane, DataplaneEvent, EventKind};

pub use flags::{ConfigFile, DaemonConfig, DaemonFlags, RunConfig};

/// Moves the calling thread into the network namespace `name`. Called before
/// the runtime starts so that every worker thread inherits it (and, unlike
/// `ip netns exec`, /sys and its bpffs stay those of the host).
pub fn enter_netns(name: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).with_context(|| format!("network namespace {path}"))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns {path}"))
}

/// Runs the daemon until SIGTERM/SIGINT: resolves the configuration
/// ([`DaemonConfig::resolve`]), enters its network namespace, then runs.
pub fn run(args: DaemonConfig) -> anyhow::Result<()> {
    let run = args.resolve()?;
    crate::logging::init(run.config.log_format)?;
    if let Some(ns) = &run.config.netns {
        enter_netns(ns)?;
    }
    if run.config.debug {
        crate::logging::set_debug("smi-proxy", true)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(run))
}

async fn run_async(run: RunConfig) -> anyhow::Result<()> {
    // Before anything can say "ready": a SIGTERM must always stop us cleanly.
    let signals = Signals::new()?;
    let cfg = &run.config;
    let mut policy = run.policy();
    policy.log_events = u8::from(control::xdp_log_wanted());
    let mut dp = Dataplane::load(&dataplane::Options {
        pin_dir: cfg.pin_dir.clone(),
        clients_max: cfg.limits.clients_max,
        policy,
        skb_fallback: !run.native_only,
        object: None,
        keep_attached: run.keep_xdp,
    })?;
    let table = dp.table();
    let known = table.entries()?.len();
    tracing::info!("client table: {known} entries at start");
    for mac in &run.admit {
        table.set_state(*mac, proxy_common::state::ADMITTED)?;
    }
    for iface in &cfg.interfaces {
        let mode = dp.attach(iface)?;
        tracing::info!("dataplane: {iface} attached ({mode})");
    }
    let trusted = cfg
        .dhcp_trusted_interfaces
        .iter()
        .map(|name| {
            dataplane::ifindex(name)
                .with_context(|| format!("dhcp_trusted_interfaces: no interface {name:?}"))
        })
        .collect::<anyhow::Result<Vec<u32>>>()?;
    dp.set_dhcp_trusted(&trusted)?;
    let store = crate::store::Store::open(&cfg.state_dir)
        .with_context(|| format!("proxy database in {}", cfg.state_dir.display()))?;
    tracing::info!("proxy database: {} entries", store.len());
    let mut events = dp.take_events().context("event stream already taken")??;
    let mut xdp_log = dp.take_log().context("classifier log already taken")??;
    let cancel = CancellationToken::new();
    let (supervisor, mut failure) = supervise::Supervisor::start();
    let base = Arc::new(wiring::Base {
        run: run.clone(),
        table,
        store: Arc::new(std::sync::Mutex::new(store)),
        listener: Arc::default(),
        pnp: Arc::default(),
        smi: Arc::default(),
        tftp: Arc::default(),
        telnet: Arc::default(),
        events: Arc::default(),
        root: cancel.clone(),
        supervisor: supervisor.clone(),
    });
    // The pump: dataplane events to the running services, if any.
    let top = tokio_util::task::TaskTracker::new();
    {
        let cancel = cancel.clone();
        let slot = base.events.clone();
        supervisor.spawn_tracked(&top, "dataplane events", async move {
            loop {
                let batch = tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    batch = events.next_batch() => batch.context("dataplane events")?,
                };
                batch.iter().for_each(log_event);
                let to = slot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if let Some(to) = to {
                    // Closed: the services are being replaced.
                    let _ = to.send(batch).await;
                }
            }
        });
    }
    {
        let cancel = cancel.clone();
        supervisor.spawn_tracked(&top, "classifier log", async move {
            tokio::select! {
                () = cancel.cancelled() => Ok(()),
                polled = xdp_log.forward() => polled.context("classifier log"),
            }
        });
    }
    let services = wiring::Services::start(&base, cfg).await?;
    let mut registry = prometheus_client::registry::Registry::default();
    base.register(&mut registry);
    let dp = Arc::new(std::sync::Mutex::new(dp));
    let control = Arc::new(control::Control::new(base, services, dp.clone()));
    registry.register_collector(Box::new(control::Scrape(control.clone())));
    let server = crate::control::ControlServer::bind(&cfg.control_socket).await?;
    let served = server.run(control.clone(), cancel.clone());
    supervisor.spawn_tracked(&top, "control socket", async move {
        served.await;
        Ok(())
    });
    let metrics = crate::metrics::MetricsServer::bind(cfg.metrics_addr).await?;
    let served = metrics.run(Arc::new(registry), cancel.clone());
    supervisor.spawn_tracked(&top, "metrics", async move {
        served.await;
        Ok(())
    });
    println!("smi-proxy: ready");
    let status = format!("ready on {}", cfg.interfaces.join(", "));
    if let Err(e) = notify::ready(&status) {
        tracing::warn!("cannot tell the service manager we are ready: {e}");
    }
    let failed = tokio::select! {
        () = signals.wait() => None,
        Ok(e) = &mut failure => Some(e),
    };
    tracing::info!("stopping");
    let why = if failed.is_some() {
        "stopping: a task failed"
    } else {
        "stopping"
    };
    if let Err(e) = notify::stopping(why) {
        tracing::warn!("cannot tell the service manager we are stopping: {e}");
    }
    control.stop("the daemon stopped").await;
    cancel.cancel();
    top.close();
    top.wait().await;
    let _ = std::fs::remove_file(&cfg.control_socket);
    drop(control);
    drop(dp);
    tracing::info!(
        "XDP {}; client table kept pinned under {}",
        if run.keep_xdp {
            "left attached"
        } else {
            "detached"
        },
        cfg.pin_dir.display()
    );
    match failed {
        Some(e) => Err(e.context("stopped because a task failed")),
        None => Ok(()),
    }
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
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let mac = crate::mac::Mac(ev.mac);
    let client = || crate::logging::client(mac).entered();
    match &ev.kind {
        EventKind::NewClient {
            client_id,
            requested,
            ..
        } => {
            let _client = client();
            tracing::debug!(
                "dataplane: new client on vlan {}, client-id {:?}, requested {:?}",
                ev.vlan,
                String::from_utf8_lossy(client_id.strip_prefix(&[0]).unwrap_or(client_id)),
                requested
            );
        }
        EventKind::AddressLearned(ip) => {
            let _client = client();
            tracing::debug!("dataplane: vlan {} got {ip}", ev.vlan);
        }
        EventKind::SmiDropped { reason, len_word } => {
            let _client = client();
            tracing::debug!(
                "dataplane: SMI on vlan {} dropped: {reason:?} (length word {len_word})",
                ev.vlan
            );
        }
        EventKind::DhcpServerSeen(ip) => {
            tracing::debug!("DHCP server {ip} ({mac}) offered on vlan {}", ev.vlan)
        }
        EventKind::ClientRestarted => {
            let _client = client();
            tracing::debug!("dataplane: restarted (DHCP discover while upgrading)");
        }
        EventKind::Unknown(k) => tracing::debug!("unknown dataplane event kind {k} from {mac}"),
    }
}
