//! The daemon: loads the dataplane, attaches it, and runs the tasks until
//! SIGTERM or SIGINT. Small tasks joined by channels, cancelled by a token.
use std::path::PathBuf;

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
    /// Admit these MACs for SMI at start (aa:bb:cc:dd:ee:ff), e.g. for tests.
    #[arg(long = "admit")]
    pub admit: Vec<String>,
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
    let events_task = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    batch = events.next_batch() => match batch {
                        Ok(batch) => batch.iter().for_each(log_event),
                        Err(e) => {
                            log::error!("dataplane events: {e}");
                            break;
                        }
                    },
                }
            }
        })
    };
    println!("smi-proxy: ready");
    signals.wait().await;
    log::info!("stopping");
    cancel.cancel();
    let _ = events_task.await;
    drop(dp);
    log::info!(
        "XDP detached; client table kept pinned under {}",
        cfg.pin_dir.display()
    );
    Ok(())
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
        EventKind::ClientRestarted => log::info!("client {mac} restarted (DHCP discover while upgrading)"),
        EventKind::Unknown(k) => log::debug!("unknown dataplane event kind {k} from {mac}"),
    }
}
