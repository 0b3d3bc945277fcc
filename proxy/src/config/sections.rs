//! The sections of the configuration file beside the top-level settings:
//! a PnP profile (`[pnp_profiles.<name>]`), the tailored configuration's
//! `[credentials]`, the `[limits]`, and the local DHCP server's pool
//! (`[dhcp_localserver]`), each with its defaults and its validation.
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ConfigError, DEFAULT_ENABLE_PASSWORD, DEFAULT_LEASE_SECS, DEFAULT_USERNAME, MIN_LEASE_SECS,
    check_absolute, check_server_url, yes,
};

/// One PnP profile: which server, and how to trust it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PnpProfileConfig {
    /// Server base URL, `http://host[:port]` or `https://host[:port]`,
    /// optionally with a path prefix. Required.
    pub server_url: String,
    /// PEM file of CA certificates the server's chain must lead to.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// PEM file of the server's own certificate, accepted exactly.
    /// Default: none. An `https://` server needs `ca_bundle` or this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_cert: Option<PathBuf>,
    /// `<viaProxy>` in the work-requests sent for proxied clients.
    /// Default `true`.
    #[serde(default = "yes")]
    pub via_proxy: bool,
}

/// How an `https://` PnP server's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTrust {
    /// Plain `http://`: nothing to check.
    None,
    /// The chain must lead to a CA of this PEM file.
    CaBundle(PathBuf),
    /// The server must present a certificate of this PEM file.
    PinnedCert(PathBuf),
}

impl PnpProfileConfig {
    /// A profile for `server_url`, no trust files, `via_proxy` on.
    pub fn new(server_url: impl Into<String>) -> Self {
        Self {
            server_url: server_url.into(),
            ca_bundle: None,
            pinned_cert: None,
            via_proxy: true,
        }
    }

    /// How to trust the server (valid once [`ProxyConfig::validate`] passed).
    pub fn trust(&self) -> ServerTrust {
        match (&self.ca_bundle, &self.pinned_cert) {
            (Some(ca), _) => ServerTrust::CaBundle(ca.clone()),
            (None, Some(pin)) => ServerTrust::PinnedCert(pin.clone()),
            (None, None) => ServerTrust::None,
        }
    }

    pub(super) fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let field = |f: &str| format!("pnp_profiles.{name}.{f}");
        let https = check_server_url(&self.server_url).map_err(|reason| ConfigError::Invalid {
            field: field("server_url"),
            reason,
        })?;
        for (key, path) in [
            ("ca_bundle", &self.ca_bundle),
            ("pinned_cert", &self.pinned_cert),
        ] {
            if let Some(p) = path {
                check_absolute(&field(key), p)?;
                if !https {
                    return Err(ConfigError::Invalid {
                        field: field(key),
                        reason: "has no use with an http:// server".to_owned(),
                    });
                }
            }
        }
        match (https, &self.ca_bundle, &self.pinned_cert) {
            (true, None, None) => Err(ConfigError::Invalid {
                field: field("server_url"),
                reason: "an https:// server needs ca_bundle or pinned_cert".to_owned(),
            }),
            (_, Some(_), Some(_)) => Err(ConfigError::Invalid {
                field: field("pinned_cert"),
                reason: "give ca_bundle or pinned_cert, not both".to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// Credentials of the tailored client configuration (`enable password`,
/// `username`). Change both from the defaults.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credentials {
    /// `enable password` of the clients. Default `cisco`.
    pub enable_password: String,
    /// `username` of the clients. Default `cisco`.
    pub username: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            enable_password: DEFAULT_ENABLE_PASSWORD.to_owned(),
            username: DEFAULT_USERNAME.to_owned(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("enable_password", &"<redacted>")
            .field("username", &self.username)
            .finish()
    }
}

/// Resource limits and timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most SMI (TCP 4786) connections served at once. Default 256.
    pub max_smi_connections: usize,
    /// Time allowed for a client to answer a probe, in seconds. Default 3.
    pub probe_timeout_secs: u64,
    /// Time allowed for one reverse-telnet session, in seconds. Default 30.
    pub telnet_timeout_secs: u64,
    /// Capacity of the dataplane's client and admission maps. Default 16384.
    pub clients_max: u32,
    /// Cap on the SMI header's length word, in bytes (0: no cap).
    /// Default 4096.
    pub smi_len_cap: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_smi_connections: 256,
            probe_timeout_secs: 3,
            telnet_timeout_secs: 30,
            clients_max: proxy_common::CLIENTS_MAX,
            smi_len_cap: proxy_common::SMI_LEN_CAP_DEFAULT,
        }
    }
}

impl Limits {
    /// The probe timeout.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_secs(self.probe_timeout_secs)
    }

    /// The reverse-telnet timeout.
    pub fn telnet_timeout(&self) -> Duration {
        Duration::from_secs(self.telnet_timeout_secs)
    }
}

/// The local DHCP server's pool (`vstack dhcp-localserver`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpLocalServer {
    /// Serve DHCP to clients on the startup VLAN. Default `false`.
    pub enabled: bool,
    /// First address of the pool. Required when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_start: Option<Ipv4Addr>,
    /// Last address of the pool. Required when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_end: Option<Ipv4Addr>,
    /// Subnet mask handed out. Required when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netmask: Option<Ipv4Addr>,
    /// Default router handed out. Default: the proxy address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_router: Option<Ipv4Addr>,
    /// Lease time in seconds (at least 60). Default 86400.
    pub lease_time_secs: u32,
}

impl Default for DhcpLocalServer {
    fn default() -> Self {
        Self {
            enabled: false,
            pool_start: None,
            pool_end: None,
            netmask: None,
            default_router: None,
            lease_time_secs: DEFAULT_LEASE_SECS,
        }
    }
}

/// A complete DHCP pool, as [`DhcpLocalServer::pool`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpPool {
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out.
    pub end: Ipv4Addr,
    /// Subnet mask.
    pub netmask: Ipv4Addr,
    /// Default router, if configured.
    pub default_router: Option<Ipv4Addr>,
    /// Lease time in seconds.
    pub lease_secs: u32,
}

impl DhcpPool {
    /// Checks the pool: a contiguous mask, start not after end, both in one
    /// subnet, the router in it but outside the pool, a lease of a minute
    /// or more.
    pub fn check(&self) -> Result<(), String> {
        let mask = u32::from(self.netmask);
        if mask.leading_ones() + mask.trailing_zeros() != 32 || mask.leading_ones() > 30 {
            return Err(format!(
                "netmask {} is not a contiguous mask of /30 or shorter",
                self.netmask
            ));
        }
        let (start, end) = (u32::from(self.start), u32::from(self.end));
        if start > end {
            return Err(format!(
                "pool start {} is after pool end {}",
                self.start, self.end
            ));
        }
        let net = start & mask;
        if end & mask != net {
            return Err(format!(
                "pool {}-{} is not within one /{} subnet",
                self.start,
                self.end,
                mask.leading_ones()
            ));
        }
        let broadcast = net | !mask;
        if start == net || end == broadcast {
            return Err(format!(
                "pool {}-{} holds the subnet's network or broadcast address",
                self.start, self.end
            ));
        }
        if let Some(router) = self.default_router {
            let r = u32::from(router);
            if r & mask != net {
                return Err(format!(
                    "default router {router} is outside the pool's subnet"
                ));
            }
            if (start..=end).contains(&r) {
                return Err(format!("default router {router} is inside the pool"));
            }
        }
        if self.lease_secs < MIN_LEASE_SECS {
            return Err(format!(
                "lease time {} s is shorter than {MIN_LEASE_SECS} s",
                self.lease_secs
            ));
        }
        Ok(())
    }
}

impl DhcpLocalServer {
    /// The pool, if enabled and complete.
    pub fn pool(&self) -> Option<DhcpPool> {
        if !self.enabled {
            return None;
        }
        Some(DhcpPool {
            start: self.pool_start?,
            end: self.pool_end?,
            netmask: self.netmask?,
            default_router: self.default_router,
            lease_secs: self.lease_time_secs,
        })
    }

    /// Turns the server on with `pool`.
    pub fn set_pool(&mut self, pool: DhcpPool) {
        *self = Self {
            enabled: true,
            pool_start: Some(pool.start),
            pool_end: Some(pool.end),
            netmask: Some(pool.netmask),
            default_router: pool.default_router,
            lease_time_secs: pool.lease_secs,
        };
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            field: format!("dhcp_localserver.{field}"),
            reason,
        };
        if !self.enabled {
            return Ok(());
        }
        for (key, value) in [
            ("pool_start", self.pool_start),
            ("pool_end", self.pool_end),
            ("netmask", self.netmask),
        ] {
            if value.is_none() {
                return Err(invalid(
                    key,
                    "is required when the DHCP server is enabled".to_owned(),
                ));
            }
        }
        match self.pool() {
            Some(pool) => pool.check().map_err(|reason| invalid("pool", reason)),
            None => Ok(()),
        }
    }
}

impl Credentials {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: &str| ConfigError::Invalid {
            field: format!("credentials.{field}"),
            reason: reason.to_owned(),
        };
        if self.enable_password.is_empty() || self.enable_password.chars().any(char::is_control) {
            return Err(invalid(
                "enable_password",
                "must be non-empty, without control characters",
            ));
        }
        if self.username.is_empty()
            || self
                .username
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(invalid(
                "username",
                "must be non-empty, without spaces or control characters",
            ));
        }
        Ok(())
    }
}

impl Limits {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: &str, reason: &str| ConfigError::Invalid {
            field: format!("limits.{field}"),
            reason: reason.to_owned(),
        };
        if self.max_smi_connections == 0 {
            return Err(invalid("max_smi_connections", "must be at least 1"));
        }
        if self.probe_timeout_secs == 0 {
            return Err(invalid("probe_timeout_secs", "must be at least 1"));
        }
        if self.telnet_timeout_secs == 0 {
            return Err(invalid("telnet_timeout_secs", "must be at least 1"));
        }
        if self.clients_max == 0 {
            return Err(invalid("clients_max", "must be at least 1"));
        }
        Ok(())
    }
}
