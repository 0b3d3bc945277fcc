//! The flags of `smi-proxy run` and their merge with the configuration file.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use proxy_common::Policy;

use crate::config::{self, ConfigError, PnpProfileConfig, ProxyConfig, ServerTrust};
use crate::dataplane;

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
    /// Capacity of the client and admission maps (file: `limits.clients_max`).
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
    /// How log lines are written: `plain` (tracing's lines, the client's
    /// span shown), `ios` (IOS debug lines), `json` (one object a line)
    /// (file: `log_format`).
    #[arg(long, value_enum, default_value_t = crate::logging::LogFormat::Plain)]
    pub log_format: crate::logging::LogFormat,
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
            .map(|m| {
                m.parse::<crate::mac::Mac>()
                    .map(|m| m.0)
                    .map_err(|e| anyhow::anyhow!("--admit: {e}"))
            })
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
        if given("log_format") {
            cfg.log_format = self.log_format;
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
        pnp_profile(&self.config)
    }
}

/// The PnP agents' profile of `cfg`: its active profile, if defined.
pub(super) fn pnp_profile(cfg: &ProxyConfig) -> Option<crate::pnp::agent::PnpProfile> {
    use crate::pnp::agent::{PnpProfile, TlsTrust};
    let p = cfg.active_profile()?;
    let mut profile = PnpProfile::new(p.server_url.clone());
    profile.name = cfg.pnp_profile.clone();
    profile.via_proxy = p.via_proxy;
    profile.trust = match p.trust() {
        ServerTrust::None => None,
        ServerTrust::CaBundle(path) => Some(TlsTrust::CaBundle(path)),
        ServerTrust::PinnedCert(path) => Some(TlsTrust::PinnedCert(path)),
    };
    Some(profile)
}

/// The XDP policy of `cfg`: its startup VLAN and `extra` ones, enforcement
/// while Smart Install is on and `enforce` holds.
pub(super) fn policy_for(cfg: &ProxyConfig, extra: &[u16]) -> Policy {
    let mut p = cfg.policy();
    p.enforce = u32::from(cfg.enforce && cfg.enabled);
    for v in extra {
        p.set_startup_vlan(*v, true);
    }
    p
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use clap::Parser as _;

    use super::*;
    use crate::config::LocalAddrs;
    use crate::daemon::control::ConfigState;
    use crate::logging::LogFormat;

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
        // The log format: the file's, unless --log-format is given.
        let ios = TempFile::new(&format!("log_format = \"ios\"\n{FILE}"));
        let run = resolve(&["--config", ios.arg()])?;
        assert_eq!(run.config.log_format, LogFormat::Ios);
        let run = resolve(&["--config", ios.arg(), "--log-format", "json"])?;
        assert_eq!(run.config.log_format, LogFormat::Json);
        assert_eq!(
            resolve(&["--config", file.arg()])?.config.log_format,
            LogFormat::Plain
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
        assert!(e.contains("--admit: \"02:00\" is not a MAC address"), "{e}");

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
