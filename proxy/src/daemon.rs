//! The daemon: loads the dataplane, attaches it, and runs the tasks until
//! SIGTERM or SIGINT. Small tasks joined by channels, cancelled by a token.
//!
//! Its settings come from the configuration file (`--config`, see
//! `docs/configuration.md`) with the command-line flags that were given
//! laid over it, or from the flags alone ([`DaemonConfig::resolve`]).
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use proxy_common::Policy;
use tokio_util::sync::CancellationToken;

use crate::config::{self, ConfigError, LocalAddrs, PnpProfileConfig, ProxyConfig, ServerTrust};
use crate::dataplane::{self, Dataplane, DataplaneEvent, EventKind};

/// The flags of `smi-proxy run`, as clap parses them (defaults filled in).
/// Every flag that names a setting of the configuration file overrides the
/// file's value when given; without `--config` the flags alone configure
/// the daemon (then `--iface` is required). The defaults are the file's
/// (`docs/configuration.md`).
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonFlags {
    /// Configuration file (TOML), e.g. /etc/smi-pnp-proxy/config.toml.
    /// `vstack` commands that change the configuration are saved back to it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Switch-facing interface(s) to attach XDP to (file: `interfaces`).
    #[arg(long = "iface", required_unless_present = "config")]
    pub ifaces: Vec<String>,
    /// Network namespace (name under /run/netns) to run in (file: `netns`).
    #[arg(long)]
    pub netns: Option<String>,
    /// Directory on bpffs for pinned maps (file: `pin_dir`).
    #[arg(long, default_value = dataplane::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Startup VLAN: DHCP from unknown clients is learned only there (file:
    /// `startup_vlan`). Repeat to add VLANs to the dataplane.
    #[arg(long = "startup-vlan", default_value = "1")]
    pub startup_vlans: Vec<u16>,
    /// VLAN assumed for untagged frames (file: `untagged_vlan`).
    #[arg(long, default_value_t = 1)]
    pub untagged_vlan: u16,
    /// Observe SMI only: count would-be drops, drop nothing (file:
    /// `enforce = false`).
    #[arg(long)]
    pub no_enforce: bool,
    /// Cap on the SMI header's length word (file: `limits.smi_len_cap`).
    #[arg(long, default_value_t = proxy_common::SMI_LEN_CAP_DEFAULT)]
    pub smi_len_cap: u32,
    /// Capacity of the client map (file: `limits.clients_max`).
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
    /// addresses on the switch-facing side; file: `ip_address`, replaces
    /// `interface`). Without any, only the dataplane runs.
    #[arg(long)]
    pub proxy_ip: Option<Ipv4Addr>,
    /// State directory; the proxy database lives in `<dir>/vstack/` (file:
    /// `state_dir`).
    #[arg(long, default_value = config::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// PnP server base URL, http://host:port or https://host:port: replaces
    /// the server and trust of the active PnP profile (file:
    /// `pnp_profiles.<pnp_profile>.server_url`).
    #[arg(long)]
    pub pnp_server: Option<String>,
    /// PEM certificate the PnP server must present (self-signed, pinned;
    /// file: `pinned_cert` of the active profile).
    #[arg(long, conflicts_with = "pnp_ca_bundle")]
    pub pnp_pinned_cert: Option<PathBuf>,
    /// PEM CA bundle that must have signed the PnP server's certificate
    /// (file: `ca_bundle` of the active profile).
    #[arg(long)]
    pub pnp_ca_bundle: Option<PathBuf>,
    /// `enable password` written into the tailored configuration (file:
    /// `credentials.enable_password`).
    #[arg(long, default_value = config::DEFAULT_ENABLE_PASSWORD)]
    pub enable_password: String,
    /// `username` written into the tailored configuration (file:
    /// `credentials.username`).
    #[arg(long, default_value = config::DEFAULT_USERNAME)]
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
    /// Control socket for `smi-proxy show|config|debug` (file:
    /// `control_socket`).
    #[arg(long, default_value = config::DEFAULT_CONTROL_SOCKET)]
    pub control_socket: PathBuf,
    /// Address of the Prometheus `/metrics` endpoint, in the daemon's
    /// namespace (file: `metrics_addr`).
    #[arg(long, default_value = "127.0.0.1:9786")]
    pub metrics_addr: SocketAddr,
    /// A client is shown Active when the dataplane heard from it within this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub health_window: u64,
}

/// The command line of `smi-proxy run`: the flags (read them through
/// `Deref`, e.g. `cfg.state_dir`) and which of them were given on the
/// command line rather than defaulted ([`DaemonConfig::given`]), which is
/// what lets a given flag override the configuration file and a defaulted
/// one not.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    flags: DaemonFlags,
    given: std::collections::BTreeSet<String>,
}

impl std::ops::Deref for DaemonConfig {
    type Target = DaemonFlags;

    fn deref(&self) -> &DaemonFlags {
        &self.flags
    }
}

impl DaemonConfig {
    /// Whether the flag of field `id` (e.g. `"state_dir"`) was given on the
    /// command line.
    pub fn given(&self, id: &str) -> bool {
        self.given.contains(id)
    }

    /// The ids of the flags `matches` holds from the command line.
    fn given_in(matches: &clap::ArgMatches) -> std::collections::BTreeSet<String> {
        use clap::Args as _;
        let command = DaemonFlags::augment_args(clap::Command::new("run"));
        command
            .get_arguments()
            .map(|arg| arg.get_id().as_str())
            .filter(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            .map(str::to_owned)
            .collect()
    }
}

impl clap::FromArgMatches for DaemonConfig {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            flags: DaemonFlags::from_arg_matches(matches)?,
            given: Self::given_in(matches),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.flags.update_from_arg_matches(matches)?;
        self.given.extend(Self::given_in(matches));
        Ok(())
    }
}

impl clap::Args for DaemonConfig {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        DaemonFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        DaemonFlags::augment_args_for_update(cmd)
    }
}

/// A configuration file and its content as loaded (or as last saved),
/// without the command-line overrides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it is.
    pub path: PathBuf,
    /// What it holds.
    pub config: ProxyConfig,
}

/// What `smi-proxy run` runs with ([`DaemonConfig::resolve`]).
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The configuration in effect: the file's, with the flags given laid
    /// over it (or the flags' alone).
    pub config: ProxyConfig,
    /// The file as loaded, when the daemon was started with `--config`;
    /// configuration changes are saved back to it.
    pub file: Option<ConfigFile>,
    /// Startup VLANs from a repeated `--startup-vlan` beyond the first
    /// (which is `config.startup_vlan`); the dataplane learns on them too.
    pub extra_startup_vlans: Vec<u16>,
    /// Refuse generic (SKB) XDP when native attach fails.
    pub native_only: bool,
    /// Leave the XDP classifier attached when the daemon stops.
    pub keep_xdp: bool,
    /// MACs admitted for SMI at start.
    pub admit: Vec<[u8; 6]>,
    /// Wait for a client's reverse telnet after the tailored configuration.
    pub identify_timeout: Duration,
    /// Wait for a client to fetch a staged file.
    pub download_timeout: Duration,
    /// Wait for a reloading client to come back.
    pub reload_timeout: Duration,
    /// A client is shown Active when the dataplane heard from it within this.
    pub health_window: Duration,
}

impl DaemonConfig {
    /// Loads and validates the file of `--config` (if given), lays the
    /// flags that were given over it, and validates the result. Errors name
    /// the file, and the line and key where the TOML parser found them.
    pub fn resolve(&self) -> anyhow::Result<RunConfig> {
        let file = match &self.config {
            Some(path) => {
                let path = std::path::absolute(path)
                    .with_context(|| format!("config file {}", path.display()))?;
                let config = ProxyConfig::load(&path).map_err(|e| in_file(&path, e))?;
                Some(ConfigFile { path, config })
            }
            None => None,
        };
        let mut config = file
            .as_ref()
            .map_or_else(ProxyConfig::default, |f| f.config.clone());
        self.lay_over(&mut config)?;
        validate_merged(&config).map_err(|e| match &file {
            Some(f) => anyhow::anyhow!(
                "config file {} with the command-line flags: {e}",
                f.path.display()
            ),
            None => anyhow::anyhow!("command line: {e}"),
        })?;
        let admit = self
            .admit
            .iter()
            .map(|m| parse_mac(m))
            .collect::<anyhow::Result<_>>()?;
        Ok(RunConfig {
            config,
            file,
            extra_startup_vlans: if self.given("startup_vlans") {
                self.startup_vlans.iter().skip(1).copied().collect()
            } else {
                Vec::new()
            },
            native_only: self.native_only,
            keep_xdp: self.keep_xdp,
            admit,
            identify_timeout: Duration::from_secs(self.identify_timeout),
            download_timeout: Duration::from_secs(self.download_timeout),
            reload_timeout: Duration::from_secs(self.reload_timeout),
            health_window: Duration::from_secs(self.health_window),
        })
    }

    /// Writes the flags that were given into `cfg`.
    fn lay_over(&self, cfg: &mut ProxyConfig) -> anyhow::Result<()> {
        let absolute = |flag: &str, p: &Path| {
            std::path::absolute(p).with_context(|| format!("--{flag} {}", p.display()))
        };
        let given = |id: &str| self.given(id);
        if given("ifaces") {
            cfg.interfaces = self.ifaces.clone();
        }
        if let Some(ns) = &self.netns {
            cfg.netns = Some(ns.clone());
        }
        if given("pin_dir") {
            cfg.pin_dir = absolute("pin-dir", &self.pin_dir)?;
        }
        if given("startup_vlans") {
            cfg.startup_vlan = self.startup_vlans.first().copied().unwrap_or(1);
        }
        if given("untagged_vlan") {
            cfg.untagged_vlan = self.untagged_vlan;
        }
        if self.no_enforce {
            cfg.enforce = false;
        }
        if given("smi_len_cap") {
            cfg.limits.smi_len_cap = self.smi_len_cap;
        }
        if given("clients_max") {
            cfg.limits.clients_max = self.clients_max;
        }
        if let Some(ip) = self.proxy_ip {
            cfg.ip_address = Some(ip);
            cfg.interface = None;
        }
        if given("state_dir") {
            cfg.state_dir = absolute("state-dir", &self.state_dir)?;
        }
        if given("control_socket") {
            cfg.control_socket = absolute("control-socket", &self.control_socket)?;
        }
        if given("metrics_addr") {
            cfg.metrics_addr = self.metrics_addr;
        }
        if given("enable_password") {
            cfg.credentials.enable_password = self.enable_password.clone();
        }
        if given("username") {
            cfg.credentials.username = self.username.clone();
        }
        let name = cfg.pnp_profile.clone();
        if let Some(url) = &self.pnp_server {
            let via_proxy = cfg.active_profile().is_none_or(|p| p.via_proxy);
            let mut profile = PnpProfileConfig::new(url.clone());
            profile.via_proxy = via_proxy;
            cfg.pnp_profiles.insert(name.clone(), profile);
        }
        if self.pnp_pinned_cert.is_some() || self.pnp_ca_bundle.is_some() {
            let profile = cfg.pnp_profiles.get_mut(&name).with_context(|| {
                format!(
                    "--pnp-pinned-cert and --pnp-ca-bundle need --pnp-server \
                     or the PnP profile {name:?} in the configuration file"
                )
            })?;
            profile.pinned_cert = match &self.pnp_pinned_cert {
                Some(p) => Some(absolute("pnp-pinned-cert", p)?),
                None => None,
            };
            profile.ca_bundle = match &self.pnp_ca_bundle {
                Some(p) => Some(absolute("pnp-ca-bundle", p)?),
                None => None,
            };
        }
        Ok(())
    }
}

/// A load error with the file named (parse and read errors name it already).
fn in_file(path: &Path, e: ConfigError) -> anyhow::Error {
    match e {
        e @ (ConfigError::Parse { .. } | ConfigError::Read { .. }) => e.into(),
        e => anyhow::anyhow!("config file {}: {e}", path.display()),
    }
}

/// [`ProxyConfig::validate`] of the merged configuration, except that a
/// proxy address without any PnP profile is accepted (flags only:
/// `--proxy-ip` without `--pnp-server` identifies the switches and runs no
/// PnP agent).
fn validate_merged(cfg: &ProxyConfig) -> Result<(), ConfigError> {
    if cfg.pnp_profiles.is_empty() {
        // Everything else is checked as usual, with a stand-in profile.
        let mut with_profile = cfg.clone();
        with_profile.pnp_profiles.insert(
            cfg.pnp_profile.clone(),
            PnpProfileConfig::new("http://localhost"),
        );
        return with_profile.validate();
    }
    cfg.validate()
}

impl RunConfig {
    /// The XDP policy this configuration asks for.
    pub fn policy(&self) -> Policy {
        policy_for(&self.config, &self.extra_startup_vlans)
    }

    /// The PnP agents' profile: the active profile of the configuration,
    /// if defined.
    pub fn pnp_profile(&self) -> Option<crate::pnp::agent::PnpProfile> {
        use crate::pnp::agent::{PnpProfile, TlsTrust};
        let p = self.config.active_profile()?;
        let mut profile = PnpProfile::new(p.server_url.clone());
        profile.name = self.config.pnp_profile.clone();
        profile.via_proxy = p.via_proxy;
        profile.trust = match p.trust() {
            ServerTrust::None => None,
            ServerTrust::CaBundle(path) => Some(TlsTrust::CaBundle(path)),
            ServerTrust::PinnedCert(path) => Some(TlsTrust::PinnedCert(path)),
        };
        Some(profile)
    }
}

/// The XDP policy of `cfg`: its startup VLAN and `extra` ones, enforcement
/// while Smart Install is on and `enforce` holds.
fn policy_for(cfg: &ProxyConfig, extra: &[u16]) -> Policy {
    let mut p = cfg.policy();
    p.enforce = u32::from(cfg.enforce && cfg.enabled);
    for v in extra {
        p.set_startup_vlan(*v, true);
    }
    p
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

/// Runs the daemon until SIGTERM/SIGINT: resolves the configuration
/// ([`DaemonConfig::resolve`]), enters its network namespace, then runs.
pub fn run(args: DaemonConfig) -> anyhow::Result<()> {
    let run = args.resolve()?;
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
    // The director address, resolved in the daemon's namespace.
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
    let mut dp = Dataplane::load(&dataplane::Options {
        pin_dir: cfg.pin_dir.clone(),
        clients_max: cfg.limits.clients_max,
        policy: run.policy(),
        skb_fallback: !run.native_only,
        object: None,
        keep_attached: run.keep_xdp,
    })?;
    let table = dp.table();
    let known = table.entries()?.len();
    log::info!("client table: {known} entries at start");
    for mac in &run.admit {
        table.set_state(*mac, proxy_common::state::ADMITTED)?;
    }
    for iface in &cfg.interfaces {
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
    // The local DHCP server ([dhcp_localserver]); it taps the dataplane events.
    let (dp_rx, dhcp) =
        crate::dhcp::start_from(cfg, proxy_ip, dp.table(), dp_rx, cancel.clone()).await?;
    let (director, started) = match proxy_ip {
        Some(ip) => {
            let started = start_director(&run, ip, dp.table(), dp_rx, cancel.clone()).await?;
            (Some(started.task), Some(started.parts))
        }
        None => {
            if cfg.enabled {
                log::warn!(
                    "no proxy address (ip_address, interface or --proxy-ip): running the dataplane only"
                );
            } else {
                log::warn!("Smart Install is off (enabled = false): running the dataplane only");
            }
            (None, None)
        }
    };
    let dp = Arc::new(std::sync::Mutex::new(dp));
    let dhcp_stats = dhcp.as_ref().map(|d| d.stats.clone());
    let control = Arc::new(Control::new(&run, started, dp.clone(), dhcp_stats));
    let server = crate::control::ControlServer::bind(&cfg.control_socket).await?;
    let control_task = tokio::spawn(server.run(control.clone(), cancel.clone()));
    let metrics = crate::metrics::MetricsServer::bind(cfg.metrics_addr).await?;
    let metrics_task = tokio::spawn(metrics.run(control, cancel.clone()));
    tokio::spawn(return_freed_memory(cancel.clone()));
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
    if let Some(dhcp) = dhcp {
        let _ = dhcp.task.await;
    }
    let _ = std::fs::remove_file(&cfg.control_socket);
    drop(dp);
    log::info!(
        "XDP {}; client table kept pinned under {}",
        if run.keep_xdp {
            "left attached"
        } else {
            "detached"
        },
        cfg.pin_dir.display()
    );
    Ok(())
}

/// The running configuration and the file it is saved to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ConfigState {
    /// The configuration in effect.
    running: ProxyConfig,
    /// The file (without the command-line overrides), if any.
    file: Option<ConfigFile>,
}

impl ConfigState {
    /// Applies the IOS line `line` to copies of the running configuration
    /// and of the file's: the new state and the operator's answer. The file
    /// copy is changed by the same line, so command-line overrides are
    /// never written to the file; a line that the file's configuration
    /// refuses (it lacks what a flag supplied) changes only the running one.
    fn apply(&self, line: &str, local: &LocalAddrs) -> Result<(Self, String), String> {
        let mut next = self.clone();
        let changes = config::execute(&mut next.running, line, local).map_err(|e| e.to_string())?;
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
    fn save_if_changed(&self, before: &Self) -> Result<(), ConfigError> {
        match (&self.file, &before.file) {
            (Some(now), Some(then)) if now.config != then.config => now.config.save(&now.path),
            _ => Ok(()),
        }
    }
}

/// What [`start_director`] hands the control socket and metrics.
struct DirectorParts {
    core: Arc<crate::logic::Core>,
    listener: Arc<crate::smi::director::ListenerStats>,
    pnp: Option<Arc<crate::pnp::agent::PnpStats>>,
}

/// What the control socket can see and change in the running daemon.
struct Control {
    director: Option<DirectorParts>,
    /// Counters of the local DHCP server, when it runs.
    dhcp: Option<Arc<crate::dhcp::DhcpStats>>,
    dataplane: Arc<std::sync::Mutex<Dataplane>>,
    config: std::sync::Mutex<ConfigState>,
    extra_startup_vlans: Vec<u16>,
    health_window: Duration,
}

impl Control {
    fn new(
        run: &RunConfig,
        director: Option<DirectorParts>,
        dataplane: Arc<std::sync::Mutex<Dataplane>>,
        dhcp: Option<Arc<crate::dhcp::DhcpStats>>,
    ) -> Self {
        Self {
            director,
            dhcp,
            dataplane,
            config: std::sync::Mutex::new(ConfigState {
                running: run.config.clone(),
                file: run.file.clone(),
            }),
            extra_startup_vlans: run.extra_startup_vlans.clone(),
            health_window: run.health_window,
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
    fn show_view(&self) -> crate::cli::show::ShowView {
        use crate::cli::show::{ClientView, ShowView};
        let cfg = self.config().running.clone();
        let running_ip = self.director.as_ref().map(|d| d.core.config().proxy_ip);
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
        let clients = match &self.director {
            Some(d) => {
                let health = d.core.health(self.health_window);
                d.core
                    .records()
                    .into_iter()
                    .map(|record| ClientView {
                        health_active: health.get(&record.mac).copied().unwrap_or(false),
                        record,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
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
        if let Some(dhcp) = &self.dhcp {
            dhcp.render(&mut out);
        }
        let Some(d) = &self.director else {
            return out.finish();
        };
        let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
        for r in d.core.records() {
            *by_state.entry(r.state.token()).or_default() += 1;
        }
        let mut f = out.gauge(
            "smi_proxy_clients",
            "Clients in the proxy database, by entry state.",
        );
        for (state, n) in by_state {
            f.sample(&[("state", state)], n);
        }
        let t = d.core.tftp_stats();
        out.counter("smi_proxy_tftp_bytes_served_total", "Bytes served by TFTP.")
            .value(t.bytes_served());
        out.counter(
            "smi_proxy_tftp_transfers_total",
            "TFTP transfers, by outcome.",
        )
        .sample(&[("outcome", "started")], t.transfers_started())
        .sample(&[("outcome", "completed")], t.transfers_completed())
        .sample(&[("outcome", "failed")], t.transfers_failed());
        let l = &d.listener;
        out.counter(
            "smi_proxy_smi_inbound_total",
            "Connections and messages on the director's 4786 listener.",
        )
        .sample(&[("event", "accepted")], l.accepted.load(Relaxed))
        .sample(&[("event", "refused_busy")], l.refused_busy.load(Relaxed))
        .sample(&[("event", "message")], l.messages.load(Relaxed))
        .sample(&[("event", "unknown_type")], l.unknown.load(Relaxed))
        .sample(&[("event", "malformed")], l.malformed.load(Relaxed));
        let mut f = out.counter(
            "smi_proxy_smi_exchanges_total",
            "Director messages to clients (probe; config_upgrade, type 3; image_upgrade, \
             type 2; run_cli, type 8), by outcome: sent counts every attempt, accepted, rejected and failed \
             split them.",
        );
        for (message, outcome, n) in d.core.smi_stats().samples() {
            f.sample(
                &[("message", message.label()), ("outcome", outcome.label())],
                n,
            );
        }
        if let Some(pnp) = &d.pnp {
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
        }
        out.finish()
    }
}

/// The director's core task and what it shares.
struct StartedDirector {
    task: tokio::task::JoinHandle<()>,
    parts: DirectorParts,
}

/// Binds the director's sockets on `ip` (TFTP 69, SMI 4786, telnet 19140),
/// opens the proxy database, stages the tailored configuration and starts
/// the proxy core (with the PnP agents of the active profile, if any).
async fn start_director(
    run: &RunConfig,
    ip: Ipv4Addr,
    table: crate::dataplane::ClientTable,
    dataplane: tokio::sync::mpsc::Receiver<Vec<DataplaneEvent>>,
    cancel: CancellationToken,
) -> anyhow::Result<StartedDirector> {
    use crate::smi::{director, tailored, telnet, tftp};
    let cfg = &run.config;
    let store = crate::store::Store::open(&cfg.state_dir)
        .with_context(|| format!("proxy database in {}", cfg.state_dir.display()))?;
    log::info!("proxy database: {} entries", store.len());

    let creds = tailored::Credentials {
        enable_password: cfg.credentials.enable_password.clone(),
        username: cfg.credentials.username.clone(),
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

    let limits = director::Limits {
        connect: cfg.limits.probe_timeout(),
        read: cfg.limits.probe_timeout(),
        max_inbound: cfg.limits.max_smi_connections,
    };
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
        cfg.limits.telnet_timeout(),
        tel_tx,
        cancel.clone(),
    ));

    let pnp = match run.pnp_profile() {
        Some(profile) => {
            log::info!("PnP profile {}: server {}", profile.name, profile.server);
            Some(crate::pnp::agent::AgentShared::new(profile)?)
        }
        None => {
            log::warn!("no PnP server configured: switches are identified, no PnP agent runs");
            None
        }
    };
    let pnp_stats = pnp.as_ref().map(|shared| shared.stats());

    let core_cfg = crate::logic::CoreConfig {
        proxy_ip: ip,
        interface: cfg.interfaces.first().cloned().unwrap_or_default(),
        limits,
        identify_timeout: run.identify_timeout,
        download_timeout: run.download_timeout,
        reload_timeout: run.reload_timeout,
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
    Ok(StartedDirector {
        task: tokio::spawn(core.clone().run(inputs)),
        parts: DirectorParts {
            core,
            listener: listener_stats,
            pnp: pnp_stats,
        },
    })
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

/// How often freed heap memory is handed back to the system.
const TRIM_PERIOD: Duration = Duration::from_secs(10);

/// Hands the heap memory freed since the last call back to the system,
/// every [`TRIM_PERIOD`], until `cancel`. An onboarding wave of thousands
/// of switches leaves megabytes freed in glibc's arenas (buffers of
/// downloads and HTTP exchanges), which glibc keeps unless told: a
/// 1,000-switch run at rest held 36 MiB, 25 MiB after a trim.
async fn return_freed_memory(cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TRIM_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim has no preconditions; 0 keeps no pad.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: DaemonConfig,
    }

    fn parse(args: &[&str]) -> Result<DaemonConfig, clap::Error> {
        Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).map(|c| c.run)
    }

    fn resolve(args: &[&str]) -> anyhow::Result<RunConfig> {
        parse(args)?.resolve()
    }

    /// A file under the temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(text: &str) -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "smi-proxy-daemon-test-{}-{n}.toml",
                std::process::id()
            ));
            std::fs::write(&path, text).expect("write the test file");
            Self(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().expect("UTF-8 path")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const FILE: &str = r#"
interfaces = ["eth1"]
ip_address = "192.0.2.1"
startup_vlan = 10
state_dir = "/var/lib/smi-test"
metrics_addr = "127.0.0.1:9999"

[pnp_profiles.pnp-zero-touch]
server_url = "https://pnp.example.net:443"
ca_bundle = "/etc/smi-pnp-proxy/ca.pem"
via_proxy = false

[limits]
smi_len_cap = 2048
"#;

    #[test]
    fn the_file_alone_configures_the_daemon() -> anyhow::Result<()> {
        let file = TempFile::new(FILE);
        let run = resolve(&["--config", file.arg()])?;
        let loaded = ProxyConfig::load(&file.0)?;
        assert_eq!(run.config, loaded);
        assert_eq!(
            run.file,
            Some(ConfigFile {
                path: file.0.clone(),
                config: loaded
            })
        );
        assert_eq!(run.config.interfaces, ["eth1"]);
        assert_eq!(run.config.startup_vlan, 10);
        assert_eq!(run.config.metrics_addr, "127.0.0.1:9999".parse()?);
        assert!(run.extra_startup_vlans.is_empty());
        let policy = run.policy();
        assert!(policy.is_startup_vlan(10) && !policy.is_startup_vlan(1));
        assert_eq!((policy.smi_len_cap, policy.enforce), (2048, 1));
        let profile = run.pnp_profile().expect("a PnP profile");
        assert_eq!(profile.server, "https://pnp.example.net:443");
        assert_eq!(
            profile.trust,
            Some(crate::pnp::agent::TlsTrust::CaBundle(
                "/etc/smi-pnp-proxy/ca.pem".into()
            ))
        );
        assert!(!profile.via_proxy);
        Ok(())
    }

    #[test]
    fn given_flags_override_the_file_and_defaulted_ones_do_not() -> anyhow::Result<()> {
        let file = TempFile::new(FILE);
        let run = resolve(&[
            "--config",
            file.arg(),
            "--iface",
            "eth7",
            "--state-dir",
            "/srv/smi",
            "--no-enforce",
            "--pnp-server",
            "http://198.51.100.2:8080",
            "--metrics-addr",
            "127.0.0.1:9000",
        ])?;
        let loaded = ProxyConfig::load(&file.0)?;
        let mut expected = loaded.clone();
        expected.interfaces = vec!["eth7".into()];
        expected.state_dir = "/srv/smi".into();
        expected.enforce = false;
        expected.metrics_addr = "127.0.0.1:9000".parse()?;
        let mut profile = PnpProfileConfig::new("http://198.51.100.2:8080");
        profile.via_proxy = false;
        expected
            .pnp_profiles
            .insert("pnp-zero-touch".into(), profile);
        assert_eq!(run.config, expected);
        // The file as loaded, for saving, without the flags.
        assert_eq!(run.file.as_ref().map(|f| &f.config), Some(&loaded));
        assert_eq!(run.pnp_profile().map(|p| p.trust), Some(None));

        // A flag given at its default value still overrides.
        let run = resolve(&["--config", file.arg(), "--startup-vlan", "1"])?;
        assert_eq!(run.config.startup_vlan, 1);
        // --proxy-ip replaces an interface of the file.
        let by_interface =
            TempFile::new(&FILE.replace("ip_address = \"192.0.2.1\"", "interface = \"vlan1\""));
        let run = resolve(&["--config", by_interface.arg()])?;
        assert_eq!(run.config.interface.as_deref(), Some("vlan1"));
        let run = resolve(&["--config", by_interface.arg(), "--proxy-ip", "192.0.2.9"])?;
        assert_eq!(
            (run.config.ip_address, run.config.interface),
            (Some(Ipv4Addr::new(192, 0, 2, 9)), None)
        );
        // Trust flags alone replace the file profile's trust.
        let run = resolve(&["--config", file.arg(), "--pnp-pinned-cert", "/etc/pin.pem"])?;
        let profile = run.config.active_profile().expect("profile");
        assert_eq!(
            (profile.ca_bundle.as_deref(), profile.pinned_cert.as_deref()),
            (None, Some(Path::new("/etc/pin.pem")))
        );
        Ok(())
    }

    #[test]
    fn flags_alone_configure_the_daemon_as_before() -> anyhow::Result<()> {
        let run = resolve(&["--iface", "px0"])?;
        assert_eq!(
            run.config,
            ProxyConfig {
                interfaces: vec!["px0".into()],
                ..ProxyConfig::default()
            },
            "the flags' defaults are the file's"
        );
        assert!(run.file.is_none());
        assert!(run.pnp_profile().is_none());

        // A proxy address without a PnP server: identification only.
        let run = resolve(&[
            "--iface",
            "px0",
            "--proxy-ip",
            "192.0.2.1",
            "--state-dir",
            "relative/state",
            "--startup-vlan",
            "5",
            "--startup-vlan",
            "6",
            "--admit",
            "02:00:00:00:00:01",
        ])?;
        assert_eq!(run.config.ip_address, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(run.config.pnp_profiles.is_empty());
        assert_eq!(
            run.config.state_dir,
            std::env::current_dir()?.join("relative/state")
        );
        assert_eq!(run.config.startup_vlan, 5);
        assert_eq!(run.extra_startup_vlans, [6]);
        let policy = run.policy();
        assert!(policy.is_startup_vlan(5) && policy.is_startup_vlan(6));
        assert!(!policy.is_startup_vlan(1));
        assert_eq!(run.admit, [[2, 0, 0, 0, 0, 1]]);

        let run = resolve(&[
            "--iface",
            "px0",
            "--proxy-ip",
            "192.0.2.1",
            "--pnp-server",
            "https://198.51.100.2:8443",
            "--pnp-pinned-cert",
            "/tmp/pnp.pem",
        ])?;
        let profile = run.pnp_profile().expect("profile");
        assert_eq!(profile.server, "https://198.51.100.2:8443");
        assert_eq!(
            profile.trust,
            Some(crate::pnp::agent::TlsTrust::PinnedCert(
                "/tmp/pnp.pem".into()
            ))
        );
        assert!(profile.via_proxy);
        Ok(())
    }

    fn error(args: &[&str]) -> String {
        match resolve(args) {
            Ok(run) => panic!("{args:?} accepted: {run:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn bad_files_and_flags_are_refused_with_the_place_named() {
        let unknown = TempFile::new("interfaces = [\"eth1\"]\nstartup_vlans = [1]\n");
        let e = error(&["--config", unknown.arg()]);
        assert!(e.contains(unknown.arg()), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("startup_vlans"), "{e}");

        let invalid = TempFile::new("interfaces = [\"eth1\"]\n[limits]\nclients_max = 0\n");
        let e = error(&["--config", invalid.arg()]);
        assert_eq!(
            e,
            format!(
                "config file {}: invalid limits.clients_max: must be at least 1",
                invalid.arg()
            )
        );

        let e = error(&["--config", "/nonexistent/smi-proxy.toml"]);
        assert!(
            e.starts_with("cannot read config file /nonexistent/smi-proxy.toml"),
            "{e}"
        );

        let file = TempFile::new(FILE);
        let e = error(&["--config", file.arg(), "--startup-vlan", "5000"]);
        assert!(e.contains("with the command-line flags"), "{e}");
        assert!(e.contains("invalid startup_vlan"), "{e}");

        let e = error(&["--iface", "px0", "--pnp-server", "https://198.51.100.2"]);
        assert!(
            e.starts_with("command line: invalid pnp_profiles.pnp-zero-touch"),
            "{e}"
        );
        let e = error(&["--iface", "px0", "--pnp-pinned-cert", "/tmp/p.pem"]);
        assert!(e.contains("need --pnp-server"), "{e}");
        let e = error(&["--iface", "px0", "--admit", "02:00"]);
        assert!(e.contains("six hex octets"), "{e}");

        assert!(parse(&[]).is_err(), "--iface or --config is required");
        assert!(
            parse(&[
                "--iface",
                "px0",
                "--pnp-pinned-cert",
                "/a.pem",
                "--pnp-ca-bundle",
                "/b.pem"
            ])
            .is_err()
        );
    }

    #[test]
    fn vstack_changes_are_saved_to_the_file_without_the_flags() -> anyhow::Result<()> {
        let file = TempFile::new(FILE);
        let run = resolve(&["--config", file.arg(), "--state-dir", "/srv/override"])?;
        let state = ConfigState {
            running: run.config,
            file: run.file,
        };
        let local = LocalAddrs::new().with("eth1", &[Ipv4Addr::new(192, 0, 2, 1)]);
        let (next, answer) = state
            .apply("vstack startup-vlan 30", &local)
            .map_err(anyhow::Error::msg)?;
        assert_eq!(answer, "startup-vlan: 10 -> 30\n");
        assert_eq!(next.running.startup_vlan, 30);
        assert_eq!(next.running.state_dir, Path::new("/srv/override"));
        next.save_if_changed(&state)?;
        let saved = ProxyConfig::load(&file.0)?;
        assert_eq!(Some(&saved), next.file.as_ref().map(|f| &f.config));
        assert_eq!(saved.startup_vlan, 30);
        assert_eq!(saved.state_dir, Path::new("/var/lib/smi-test"));
        assert_eq!(saved.limits.smi_len_cap, 2048);

        let (same, answer) = next
            .apply("vstack startup-vlan 30", &local)
            .map_err(anyhow::Error::msg)?;
        assert_eq!((answer.as_str(), &same), ("No change.\n", &next));
        let refused = next.apply("vstack startup-vlan 0", &local);
        assert_eq!(refused, Err("% VLAN 0 is out of range 1-4094".to_owned()));

        // A change the file cannot take (its profile came from a flag).
        let bare = TempFile::new("interfaces = [\"eth1\"]\n");
        let run = resolve(&[
            "--config",
            bare.arg(),
            "--pnp-server",
            "http://198.51.100.2:8080",
        ])?;
        let state = ConfigState {
            running: run.config,
            file: run.file,
        };
        let (next, answer) = state
            .apply("vstack proxy ip-address 192.0.2.1", &local)
            .map_err(anyhow::Error::msg)?;
        assert!(
            answer.starts_with("proxy: none -> ip-address 192.0.2.1\n"),
            "{answer}"
        );
        assert!(
            answer.contains(&format!("% Not saved to {}", bare.arg())),
            "{answer}"
        );
        assert_eq!(next.file, state.file);
        next.save_if_changed(&state)?;
        assert_eq!(
            std::fs::read_to_string(&bare.0)?,
            "interfaces = [\"eth1\"]\n"
        );

        // A file that cannot be written.
        let mut unwritable = state.clone();
        if let Some(f) = &mut unwritable.file {
            f.path = "/nonexistent/dir/config.toml".into();
        }
        let (next, _) = unwritable
            .apply("vstack vlan 1,10", &local)
            .map_err(anyhow::Error::msg)?;
        let e = next.save_if_changed(&unwritable).expect_err("unwritable");
        assert!(
            e.to_string().contains("/nonexistent/dir/config.toml"),
            "{e}"
        );
        Ok(())
    }
}
