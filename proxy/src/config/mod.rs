//! The daemon's configuration: the TOML file ([`ProxyConfig`], normally
//! `/etc/smi-pnp-proxy/config.toml`) and the IOS `vstack` commands that
//! change it at run time ([`parse_ios`], [`apply_ios`]).
//!
//! Every key of the file is optional except `interfaces`; unknown keys are
//! refused. `docs/configuration.md` is the reference with a full example.
//! Loading checks the file's shape ([`ProxyConfig::validate`]); whether the
//! proxy address is one of this machine's is checked when the daemon
//! resolves it ([`ProxyConfig::proxy_ip`]), in its network namespace.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod help;
mod ios;
mod sections;

pub use crate::host::LocalAddrs;
pub use ios::{
    ConfigField, DirectorCommand, FieldChange, IosCommand, IosError, LINE_MAX, ProxyAddress,
    ProxyCommand, apply_ios, execute, parse_ios, parse_show, refusal, show_words, summary,
};
pub use sections::{Credentials, DhcpLocalServer, DhcpPool, Limits, PnpProfileConfig, ServerTrust};

/// Where the systemd unit points `smi-proxy run --config`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/smi-pnp-proxy/config.toml";
/// PnP profile used when none is named (as Cisco's `vstack proxy`).
pub const DEFAULT_PNP_PROFILE: &str = "pnp-zero-touch";
/// Default state directory (the proxy database lives under it).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/smi-pnp-proxy";
/// Default bpffs directory of the pinned maps.
pub const DEFAULT_PIN_DIR: &str = crate::dataplane::DEFAULT_PIN_DIR;
/// Default path of the control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/smi-pnp-proxy/control.sock";
/// Default address of the `/metrics` endpoint.
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9786);
/// Default enable password written into the tailored client configuration.
pub const DEFAULT_ENABLE_PASSWORD: &str = "cisco";
/// Default user name written into the tailored client configuration.
pub const DEFAULT_USERNAME: &str = "cisco";
/// Default DHCP lease time of the local DHCP server, in seconds (one day).
pub const DEFAULT_LEASE_SECS: u32 = 86_400;
/// Shortest DHCP lease accepted, in seconds.
pub const MIN_LEASE_SECS: u32 = 60;
/// Longest accepted PnP profile name.
pub const PROFILE_NAME_MAX: usize = 64;

/// The configuration file. Defaults are those of Cisco's SMI Proxy where it
/// has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Switch-facing interfaces the XDP classifier attaches to. Required,
    /// no default.
    pub interfaces: Vec<String>,
    /// Network namespace (a name under `/run/netns`) to run in. Default:
    /// none, the daemon's own.
    pub netns: Option<String>,
    /// Smart Install on (`vstack`) or off (`no vstack`). Default `true`.
    pub enabled: bool,
    /// The proxy (director) address clients are told about; must be one of
    /// this machine's. Exclusive with `interface`. Default: none.
    pub ip_address: Option<Ipv4Addr>,
    /// Interface whose (first) IPv4 address is the proxy address. Exclusive
    /// with `ip_address`. Default: none. With neither set the proxy is off
    /// (as without `vstack proxy`).
    pub interface: Option<String>,
    /// VLAN new clients are provisioned on (1-4094). Default 1.
    pub startup_vlan: u16,
    /// Management VLANs (1-4094), as `vstack vlan`. Default `[1]`.
    pub management_vlans: Vec<u16>,
    /// VLAN assumed for untagged frames, shown as the default management
    /// VLAN. Default 1.
    pub untagged_vlan: u16,
    /// Name of the PnP profile in use. Default `pnp-zero-touch`.
    pub pnp_profile: String,
    /// The PnP profiles by name. Default: none; the one named by
    /// `pnp_profile` must exist while the proxy is on.
    pub pnp_profiles: BTreeMap<String, PnpProfileConfig>,
    /// Credentials put in the tailored client configuration.
    pub credentials: Credentials,
    /// State directory (proxy database). Default `/var/lib/smi-pnp-proxy`.
    pub state_dir: PathBuf,
    /// bpffs directory of the pinned maps. Default
    /// `/sys/fs/bpf/smi-pnp-proxy`.
    pub pin_dir: PathBuf,
    /// Control socket for `smi-proxy show|config|debug`. Default
    /// `/run/smi-pnp-proxy/control.sock`.
    pub control_socket: PathBuf,
    /// Address of the Prometheus `/metrics` endpoint. Default
    /// `127.0.0.1:9786`.
    pub metrics_addr: SocketAddr,
    /// Resource limits and timeouts.
    pub limits: Limits,
    /// Drop SMI traffic that policy refuses (`true`) or only count it
    /// (`false`). Default `true`.
    pub enforce: bool,
    /// The local DHCP server for clients (`vstack dhcp-localserver`).
    /// Default off.
    pub dhcp_localserver: DhcpLocalServer,
    /// Ports a DHCP server may answer on (as `ip dhcp snooping trust`): an
    /// OFFER seen on any other port is counted, not believed, so a switch
    /// port cannot silence the local DHCP server. Default: none listed,
    /// every port trusted.
    pub dhcp_trusted_interfaces: Vec<String>,
    /// Start with `debug vstack smi-proxy` on. Default `false`.
    pub debug: bool,
    /// How log lines are written: `plain`, `ios` or `json`. Default
    /// `plain`. Read at start.
    pub log_format: crate::logging::LogFormat,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            netns: None,
            enabled: true,
            ip_address: None,
            interface: None,
            startup_vlan: 1,
            management_vlans: vec![1],
            untagged_vlan: 1,
            pnp_profile: DEFAULT_PNP_PROFILE.to_owned(),
            pnp_profiles: BTreeMap::new(),
            credentials: Credentials::default(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            metrics_addr: DEFAULT_METRICS_ADDR,
            limits: Limits::default(),
            enforce: true,
            dhcp_localserver: DhcpLocalServer::default(),
            dhcp_trusted_interfaces: Vec::new(),
            debug: false,
            log_format: crate::logging::LogFormat::Plain,
        }
    }
}

pub(super) fn yes() -> bool {
    true
}

/// Why the configuration could not be loaded, saved or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (unknown key,
    /// wrong type); the message names line and key.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// As [`ConfigError::Parse`], for text that came from no file.
    #[error("configuration: {0}")]
    Toml(String),
    /// A value is out of range or inconsistent with another.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The key, dotted (`limits.clients_max`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration could not be encoded as TOML.
    #[error("cannot encode the configuration as TOML: {0}")]
    Encode(#[from] toml::ser::Error),
    /// The file could not be written.
    #[error("cannot write config file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The configured proxy address is not one of this machine's.
    #[error("proxy address {0} is not an address of this machine")]
    NotLocalAddress(Ipv4Addr),
    /// The configured proxy interface does not exist.
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    /// The configured proxy interface has no IPv4 address.
    #[error("interface {0} has no IPv4 address")]
    NoIpv4(String),
}

impl ProxyConfig {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Toml(message) => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text (errors name no file).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text)
            .map_err(|e| ConfigError::Toml(e.to_string().trim_end().to_owned()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Writes the configuration to `path`, atomically (a temporary file in
    /// the same directory, flushed, then renamed), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let text = self.to_toml()?;
        let write_err = |source| ConfigError::Write {
            path: path.to_owned(),
            source,
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        f.write_all(text.as_bytes()).map_err(write_err)?;
        f.sync_all().map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Checks every value for range and consistency (not against this
    /// machine: see [`ProxyConfig::proxy_ip`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            field: field.to_owned(),
            reason,
        };
        if self.interfaces.is_empty() {
            return Err(invalid(
                "interfaces",
                "name at least one switch-facing interface".to_owned(),
            ));
        }
        for (i, name) in self.interfaces.iter().enumerate() {
            check_ifname(name).map_err(|r| invalid("interfaces", r))?;
            if self.interfaces[..i].contains(name) {
                return Err(invalid("interfaces", format!("{name:?} is listed twice")));
            }
        }
        if let Some(ns) = &self.netns {
            if ns.is_empty() || ns.contains('/') || ns == "." || ns == ".." {
                return Err(invalid(
                    "netns",
                    format!("{ns:?} is not a name under /run/netns"),
                ));
            }
        }
        match (self.ip_address, &self.interface) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "ip_address",
                    "give ip_address or interface, not both".to_owned(),
                ));
            }
            (Some(ip), None) => check_host_ip(ip).map_err(|r| invalid("ip_address", r))?,
            (None, Some(name)) => check_ifname(name).map_err(|r| invalid("interface", r))?,
            (None, None) => {}
        }
        check_vlan(self.startup_vlan).map_err(|r| invalid("startup_vlan", r))?;
        check_vlan(self.untagged_vlan).map_err(|r| invalid("untagged_vlan", r))?;
        for v in &self.management_vlans {
            check_vlan(*v).map_err(|r| invalid("management_vlans", r))?;
        }
        check_profile_name(&self.pnp_profile).map_err(|r| invalid("pnp_profile", r))?;
        for (name, profile) in &self.pnp_profiles {
            check_profile_name(name).map_err(|r| invalid("pnp_profiles", r))?;
            profile.validate(name)?;
        }
        if self.proxy_configured() && !self.pnp_profiles.contains_key(&self.pnp_profile) {
            return Err(invalid(
                "pnp_profile",
                format!(
                    "profile {:?} is not defined under [pnp_profiles]",
                    self.pnp_profile
                ),
            ));
        }
        self.credentials.validate()?;
        for (key, path) in [
            ("state_dir", &self.state_dir),
            ("pin_dir", &self.pin_dir),
            ("control_socket", &self.control_socket),
        ] {
            check_absolute(key, path)?;
        }
        self.limits.validate()?;
        self.dhcp_localserver.validate()
    }

    /// Whether `vstack proxy` is configured (an address or an interface).
    pub fn proxy_configured(&self) -> bool {
        self.ip_address.is_some() || self.interface.is_some()
    }

    /// Whether the proxy is on: configured and Smart Install enabled.
    pub fn proxy_enabled(&self) -> bool {
        self.enabled && self.proxy_configured()
    }

    /// The proxy address on this machine: `ip_address` if it is one of
    /// `local`'s, or the first IPv4 address of `interface`; `None` when
    /// the proxy is not configured.
    pub fn proxy_ip(&self, local: &LocalAddrs) -> Result<Option<Ipv4Addr>, ConfigError> {
        if let Some(ip) = self.ip_address {
            return if local.has_ip(ip) {
                Ok(Some(ip))
            } else {
                Err(ConfigError::NotLocalAddress(ip))
            };
        }
        let Some(name) = &self.interface else {
            return Ok(None);
        };
        let addrs = local
            .interface(name)
            .ok_or_else(|| ConfigError::NoSuchInterface(name.clone()))?;
        addrs
            .first()
            .copied()
            .map(Some)
            .ok_or_else(|| ConfigError::NoIpv4(name.clone()))
    }

    /// The active PnP profile, if defined.
    pub fn active_profile(&self) -> Option<&PnpProfileConfig> {
        self.pnp_profiles.get(&self.pnp_profile)
    }

    /// The XDP policy: enforcement, length cap, untagged VLAN and the
    /// startup VLAN.
    pub fn policy(&self) -> proxy_common::Policy {
        let mut p = proxy_common::Policy {
            enforce: u32::from(self.enforce),
            smi_len_cap: self.limits.smi_len_cap,
            untagged_vlan: self.untagged_vlan,
            dhcp_trusted_only: u8::from(!self.dhcp_trusted_interfaces.is_empty()),
            ..proxy_common::Policy::default()
        };
        p.startup_vlans = [0; proxy_common::VLAN_WORDS];
        p.set_startup_vlan(self.startup_vlan, true);
        p
    }

    /// What `show vstack config` prints, with `proxy_ip` as resolved by
    /// [`ProxyConfig::proxy_ip`] (`0.0.0.0` when unknown).
    pub fn show_config(&self, proxy_ip: Option<Ipv4Addr>) -> crate::show::ProxyConfig {
        crate::show::ProxyConfig {
            enabled: self.proxy_enabled(),
            proxy_ip: proxy_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            default_vlan: self.untagged_vlan,
            startup_vlan: self.startup_vlan,
            management_vlans: self.management_vlans.clone(),
        }
    }

    /// The configuration as IOS global configuration lines (what `show
    /// running-config | include vstack` would print); [`execute`] of each
    /// line on a default configuration with the same profiles rebuilds it.
    pub fn running_config(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let address = match (self.ip_address, &self.interface) {
            (Some(ip), _) => Some(format!("ip-address {ip}")),
            (None, Some(name)) => Some(format!("interface {name}")),
            (None, None) => None,
        };
        if let Some(address) = address {
            lines.push(format!(
                "vstack proxy {address} startup-vlan {} pnp-profile {}",
                self.startup_vlan, self.pnp_profile
            ));
        } else if self.startup_vlan != 1 {
            lines.push(format!("vstack startup-vlan {}", self.startup_vlan));
        }
        if self.management_vlans != [1] {
            lines.push(format!("vstack vlan {}", vlan_list(&self.management_vlans)));
        }
        if let Some(pool) = self.dhcp_localserver.pool() {
            let mut line = format!(
                "vstack dhcp-localserver pool {} {} netmask {}",
                pool.start, pool.end, pool.netmask
            );
            if let Some(router) = pool.default_router {
                line.push_str(&format!(" default-router {router}"));
            }
            line.push_str(&format!(" lease {}", pool.lease_secs));
            lines.push(line);
        }
        if !self.enabled {
            lines.push("no vstack".to_owned());
        }
        lines
    }
}

/// IOS VLAN list (`1-3,5`), sorted, without duplicates.
pub(crate) fn vlan_list(vlans: &[u16]) -> String {
    let mut sorted = vlans.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while let Some(&next) = iter.peek() {
            if Some(next) != end.checked_add(1) {
                break;
            }
            end = next;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// A VLAN id usable for Smart Install: 1-4094.
pub(crate) fn check_vlan(v: u16) -> Result<(), String> {
    if (1..=4094).contains(&v) {
        Ok(())
    } else {
        Err(format!("VLAN {v} is out of range 1-4094"))
    }
}

/// A Linux interface name: 1-15 bytes, no `/`, no white space.
pub(crate) fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("interface name {name:?} must be 1-15 bytes long"));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}

/// A PnP profile name: 1-64 of `A-Z a-z 0-9 - _ .`.
pub(crate) fn check_profile_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > PROFILE_NAME_MAX
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "profile name {name:?} must be 1-{PROFILE_NAME_MAX} of letters, digits, '-', '_', '.'"
        ));
    }
    Ok(())
}

/// An address a host can own: not unspecified, loopback, multicast or
/// broadcast.
pub(crate) fn check_host_ip(ip: Ipv4Addr) -> Result<(), String> {
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!("{ip} cannot be a director address"));
    }
    Ok(())
}

pub(super) fn check_absolute(field: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: format!("{} is not an absolute path", path.display()),
        })
    }
}

/// Checks `scheme://host[:port][/path]`; returns whether the scheme is
/// https.
pub(super) fn check_server_url(url: &str) -> Result<bool, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("{url:?} does not start with http:// or https://"));
    };
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?} must not hold a query, fragment or white space"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("{url:?} must not hold user information"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{url:?} has junk after its [host]")),
            },
            None => return Err(format!("{url:?} has an unclosed [ in its host")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("{url:?} has an invalid port {port:?}")),
        }
    }
    Ok(https)
}

#[cfg(test)]
mod tests;
