//! The IOS `vstack` global configuration commands, as `smi-proxy config`
//! sends them to the daemon.
//!
//! ```text
//! [no] vstack
//! [no] vstack proxy {ip-address <ip> | interface <name> [<number>]}
//!                   [startup-vlan <1-4094>] [pnp-profile <name>]
//! [no] vstack startup-vlan <1-4094>
//! [no] vstack vlan <list>                    e.g. 1,10-12
//! [no] vstack dhcp-localserver pool <start-ip> <end-ip> netmask <mask>
//!                   [default-router <ip>] [lease <seconds>]
//! ```
//!
//! Keywords are case-insensitive and may be shortened to any unique prefix
//! (`vst prox ip 4.1.1.1`); `_` and `-` are the same in keywords
//! (`ip_address`). Options after the address come in any order, each once.
//!
//! Semantics, as the SMI Proxy chapter gives them:
//!
//! - `vstack proxy` needs one of this machine's addresses, or an interface
//!   that has one; it sets the startup VLAN (1 when not given) and the PnP
//!   profile (`pnp-zero-touch` when not given, which must be defined in the
//!   file) and turns Smart Install on. `no vstack proxy` removes the
//!   address; VLANs and profile stay.
//! - `interface <word> [<number>]`: a number following the word belongs to
//!   the name, and the Linux name is the two joined: `interface vlan 1` is
//!   the Linux interface `vlan1`, `interface eth 0` is `eth0`. A leading
//!   `vlan` is matched case-insensitively (`Vlan1` is `vlan1`); other names
//!   are taken as written. The interface must exist and carry IPv4.
//! - The `no` forms reset to the defaults (startup VLAN 1, management VLANs
//!   `1`, DHCP server off); arguments after them are checked and ignored.
//! - `vstack director`, `vstack basic`, `vstack join-window` and
//!   `vstack backup` are refused: SMI Director and SMI Proxy are mutually
//!   exclusive, and this daemon is only ever the proxy.
use std::fmt;
use std::net::Ipv4Addr;

use super::{
    ConfigError, DEFAULT_LEASE_SECS, DEFAULT_PNP_PROFILE, DhcpLocalServer, DhcpPool, LocalAddrs,
    ProxyConfig, check_profile_name, vlan_list,
};
use crate::show::ShowCommand;

/// Longest command line accepted, in bytes.
pub const LINE_MAX: usize = 512;

/// A parsed configuration command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IosCommand {
    /// `vstack`: Smart Install on.
    Vstack,
    /// `no vstack`: Smart Install off.
    NoVstack,
    /// `vstack proxy ...`.
    Proxy(ProxyCommand),
    /// `no vstack proxy`.
    NoProxy,
    /// `vstack startup-vlan <v>`.
    StartupVlan(u16),
    /// `no vstack startup-vlan`: back to 1.
    NoStartupVlan,
    /// `vstack vlan <list>`: the management VLANs, sorted, no duplicates.
    Vlan(Vec<u16>),
    /// `no vstack vlan`: back to `1`.
    NoVlan,
    /// `vstack dhcp-localserver pool ...`.
    DhcpLocalserver(DhcpPool),
    /// `no vstack dhcp-localserver`: the local DHCP server off.
    NoDhcpLocalserver,
    /// A director command (or its `no` form), refused by [`apply_ios`].
    DirectorOnly(DirectorCommand),
}

/// The arguments of `vstack proxy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyCommand {
    /// Where the director address comes from.
    pub address: ProxyAddress,
    /// `startup-vlan <v>`, if given.
    pub startup_vlan: Option<u16>,
    /// `pnp-profile <name>`, if given.
    pub pnp_profile: Option<String>,
}

/// `ip-address <ip>` or `interface <name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyAddress {
    /// An address of this machine.
    Ip(Ipv4Addr),
    /// An interface, by IOS and Linux name.
    Interface {
        /// As typed, words joined by a space (`vlan 1`).
        ios: String,
        /// The Linux interface it maps to (`vlan1`).
        linux: String,
    },
}

/// The SMI Director commands the proxy excludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectorCommand {
    /// `vstack director ...`.
    Director,
    /// `vstack basic`.
    Basic,
    /// `vstack join-window ...`.
    JoinWindow,
    /// `vstack backup ...`.
    Backup,
}

impl fmt::Display for DirectorCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Director => "vstack director",
            Self::Basic => "vstack basic",
            Self::JoinWindow => "vstack join-window",
            Self::Backup => "vstack backup",
        })
    }
}

/// Why a command was refused; the text is what the operator sees.
#[derive(Debug, thiserror::Error)]
pub enum IosError {
    /// Nothing was typed.
    #[error("% Empty command")]
    Empty,
    /// The line is longer than [`LINE_MAX`].
    #[error("% Command too long ({0} bytes, at most {LINE_MAX})")]
    TooLong(usize),
    /// A word is not what the position allows.
    #[error("% Invalid input {token:?}: expected {expected}")]
    Invalid {
        /// The word.
        token: String,
        /// What would have been accepted.
        expected: String,
        /// Byte offset of the word in the line (0 until [`parse_ios`]
        /// places it), for the IOS caret ([`refusal`]).
        at: usize,
    },
    /// A shortened keyword matches more than one.
    #[error("% Ambiguous command {token:?}: could be {candidates}")]
    Ambiguous {
        /// The word.
        token: String,
        /// The keywords it starts.
        candidates: String,
    },
    /// The line ends where more is needed.
    #[error("% Incomplete command: expected {0}")]
    Incomplete(String),
    /// A value is malformed or out of range.
    #[error("% {0}")]
    Value(String),
    /// An option appears twice.
    #[error("% {0} given twice")]
    Repeated(&'static str),
    /// The interface named does not exist on this machine.
    #[error("% {}", no_such_interface(ios, linux))]
    NoSuchInterface {
        /// As typed.
        ios: String,
        /// The Linux name it maps to.
        linux: String,
    },
    /// The PnP profile named is not in the configuration file.
    #[error("% PnP profile {0:?} is not configured (add [pnp_profiles.{0}] to the config file)")]
    UnknownProfile(String),
    /// A director command while the proxy is on.
    #[error(
        "% {0} is not available while SMI Proxy is enabled (SMI Director and SMI Proxy are mutually exclusive)"
    )]
    ExclusiveWithProxy(DirectorCommand),
    /// A director command while the proxy is off.
    #[error("% {0} is not supported: smi-pnp-proxy runs as SMI Proxy only, never as SMI Director")]
    DirectorUnsupported(DirectorCommand),
    /// The result would be an invalid configuration, or the address is not
    /// this machine's.
    #[error("% {0}")]
    Config(#[from] ConfigError),
}

fn no_such_interface(ios: &str, linux: &str) -> String {
    if ios == linux {
        format!("Interface {linux} does not exist")
    } else {
        format!("Interface {ios} maps to the Linux interface {linux}, which does not exist")
    }
}

/// A setting a command changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigField {
    /// Smart Install on or off (`enabled`).
    Enabled,
    /// The proxy address (`ip_address` / `interface`).
    ProxyAddress,
    /// `startup_vlan`.
    StartupVlan,
    /// `management_vlans`.
    ManagementVlans,
    /// `pnp_profile`.
    PnpProfile,
    /// `dhcp_localserver`.
    DhcpLocalserver,
}

impl ConfigField {
    const ALL: [Self; 6] = [
        Self::Enabled,
        Self::ProxyAddress,
        Self::StartupVlan,
        Self::ManagementVlans,
        Self::PnpProfile,
        Self::DhcpLocalserver,
    ];

    /// The IOS name of the setting.
    pub fn name(self) -> &'static str {
        match self {
            Self::Enabled => "vstack",
            Self::ProxyAddress => "proxy",
            Self::StartupVlan => "startup-vlan",
            Self::ManagementVlans => "vlan",
            Self::PnpProfile => "pnp-profile",
            Self::DhcpLocalserver => "dhcp-localserver",
        }
    }

    /// The setting's value in `cfg`, as text.
    pub fn describe(self, cfg: &ProxyConfig) -> String {
        match self {
            Self::Enabled => if cfg.enabled { "enabled" } else { "disabled" }.to_owned(),
            Self::ProxyAddress => match (cfg.ip_address, &cfg.interface) {
                (Some(ip), _) => format!("ip-address {ip}"),
                (None, Some(name)) => format!("interface {name}"),
                (None, None) => "none".to_owned(),
            },
            Self::StartupVlan => cfg.startup_vlan.to_string(),
            Self::ManagementVlans if cfg.management_vlans.is_empty() => "none".to_owned(),
            Self::ManagementVlans => vlan_list(&cfg.management_vlans),
            Self::PnpProfile => cfg.pnp_profile.clone(),
            Self::DhcpLocalserver => match cfg.dhcp_localserver.pool() {
                None => "off".to_owned(),
                Some(p) => {
                    let router = p
                        .default_router
                        .map_or_else(|| "proxy address".to_owned(), |r| r.to_string());
                    format!(
                        "pool {}-{} netmask {} default-router {router} lease {} s",
                        p.start, p.end, p.netmask, p.lease_secs
                    )
                }
            },
        }
    }
}

/// One setting's value before and after a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    /// Which setting.
    pub field: ConfigField,
    /// Its value before, as text.
    pub before: String,
    /// Its value after, as text.
    pub after: String,
}

impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {}",
            self.field.name(),
            self.before,
            self.after
        )
    }
}

/// The operator's confirmation of `changes`: one line each, or
/// `No change.`.
pub fn summary(changes: &[FieldChange]) -> String {
    if changes.is_empty() {
        return "No change.\n".to_owned();
    }
    changes.iter().map(|c| format!("{c}\n")).collect()
}

/// Parses one configuration line.
pub fn parse_ios(line: &str) -> Result<IosCommand, IosError> {
    if line.len() > LINE_MAX {
        return Err(IosError::TooLong(line.len()));
    }
    let mut w = Words::new(line);
    parse_words(&mut w).map_err(|e| w.locate(e))
}

/// A refused line as IOS prints it: the line with a caret under the word
/// that is wrong and `% Invalid input detected at '^' marker.`; `%
/// Incomplete command.`; `% Ambiguous command:  "<line>"`; otherwise the
/// reason.
pub fn refusal(line: &str, e: &IosError) -> String {
    match e {
        IosError::Invalid { at, .. } => format!(
            "{line}\n{:>width$}\n% Invalid input detected at '^' marker.",
            "^",
            width = line.get(..*at).map_or(0, |s| s.chars().count()) + 1
        ),
        IosError::Incomplete(_) => "% Incomplete command.".to_owned(),
        IosError::Ambiguous { .. } => format!("% Ambiguous command:  {:?}", line.trim()),
        other => other.to_string(),
    }
}

/// The words of one configuration line, parsed.
fn parse_words(w: &mut Words<'_>) -> Result<IosCommand, IosError> {
    if w.is_empty() {
        return Err(IosError::Empty);
    }
    let negate = w.keyword(&["no", "vstack"])? == "no";
    if negate {
        w.keyword(&["vstack"])?;
    }
    if w.is_empty() {
        return Ok(if negate {
            IosCommand::NoVstack
        } else {
            IosCommand::Vstack
        });
    }
    let command = match w.keyword(VSTACK_WORDS)? {
        "director" => return Ok(IosCommand::DirectorOnly(DirectorCommand::Director)),
        "basic" => return Ok(IosCommand::DirectorOnly(DirectorCommand::Basic)),
        "join-window" => return Ok(IosCommand::DirectorOnly(DirectorCommand::JoinWindow)),
        "backup" => return Ok(IosCommand::DirectorOnly(DirectorCommand::Backup)),
        "proxy" if negate => {
            if !w.is_empty() {
                proxy_args(w)?;
            }
            IosCommand::NoProxy
        }
        "proxy" => IosCommand::Proxy(proxy_args(w)?),
        "startup-vlan" if negate => {
            if !w.is_empty() {
                w.vlan()?;
            }
            IosCommand::NoStartupVlan
        }
        "startup-vlan" => IosCommand::StartupVlan(w.vlan()?),
        "vlan" if negate => {
            if !w.is_empty() {
                vlan_list_arg(w)?;
            }
            IosCommand::NoVlan
        }
        "vlan" => IosCommand::Vlan(vlan_list_arg(w)?),
        "dhcp-localserver" if negate => {
            if !w.is_empty() {
                pool_args(w)?;
            }
            IosCommand::NoDhcpLocalserver
        }
        "dhcp-localserver" => IosCommand::DhcpLocalserver(pool_args(w)?),
        other => {
            return Err(IosError::Invalid {
                token: other.to_owned(),
                expected: "a vstack command".to_owned(),
                at: 0,
            });
        }
    };
    w.finish()?;
    Ok(command)
}

/// Applies `command` to `cfg`, checking addresses against `local`. On
/// error `cfg` is left as it was; on success the changed settings are
/// returned (none if the command set what was already there).
pub fn apply_ios(
    cfg: &mut ProxyConfig,
    command: IosCommand,
    local: &LocalAddrs,
) -> Result<Vec<FieldChange>, IosError> {
    let mut next = cfg.clone();
    match command {
        IosCommand::Vstack => next.enabled = true,
        IosCommand::NoVstack => next.enabled = false,
        IosCommand::Proxy(p) => {
            let profile = p
                .pnp_profile
                .unwrap_or_else(|| DEFAULT_PNP_PROFILE.to_owned());
            if !next.pnp_profiles.contains_key(&profile) {
                return Err(IosError::UnknownProfile(profile));
            }
            match p.address {
                ProxyAddress::Ip(ip) => {
                    if !local.has_ip(ip) {
                        return Err(ConfigError::NotLocalAddress(ip).into());
                    }
                    next.ip_address = Some(ip);
                    next.interface = None;
                }
                ProxyAddress::Interface { ios, linux } => {
                    match local.interface(&linux) {
                        None => return Err(IosError::NoSuchInterface { ios, linux }),
                        Some([]) => return Err(ConfigError::NoIpv4(linux).into()),
                        Some(_) => {}
                    }
                    next.ip_address = None;
                    next.interface = Some(linux);
                }
            }
            next.startup_vlan = p.startup_vlan.unwrap_or(1);
            next.pnp_profile = profile;
            next.enabled = true;
        }
        IosCommand::NoProxy => {
            next.ip_address = None;
            next.interface = None;
        }
        IosCommand::StartupVlan(v) => next.startup_vlan = v,
        IosCommand::NoStartupVlan => next.startup_vlan = 1,
        IosCommand::Vlan(vlans) => next.management_vlans = vlans,
        IosCommand::NoVlan => next.management_vlans = vec![1],
        IosCommand::DhcpLocalserver(pool) => next.dhcp_localserver.set_pool(pool),
        IosCommand::NoDhcpLocalserver => next.dhcp_localserver = DhcpLocalServer::default(),
        IosCommand::DirectorOnly(c) => {
            return Err(if cfg.proxy_enabled() {
                IosError::ExclusiveWithProxy(c)
            } else {
                IosError::DirectorUnsupported(c)
            });
        }
    }
    next.validate()?;
    let changes = ConfigField::ALL
        .into_iter()
        .filter_map(|field| {
            let (before, after) = (field.describe(cfg), field.describe(&next));
            (before != after).then_some(FieldChange {
                field,
                before,
                after,
            })
        })
        .collect();
    *cfg = next;
    Ok(changes)
}

/// [`parse_ios`] then [`apply_ios`].
pub fn execute(
    cfg: &mut ProxyConfig,
    line: &str,
    local: &LocalAddrs,
) -> Result<Vec<FieldChange>, IosError> {
    apply_ios(cfg, parse_ios(line)?, local)
}

/// Parses the words after `show vstack`: `config`, `status [detail]`,
/// `proxy-db [detail]`, `download-status [detail]` (shortenable).
pub fn parse_show(words: &[&str]) -> Result<ShowCommand, IosError> {
    let words: Vec<&str> = words.iter().flat_map(|s| s.split_whitespace()).collect();
    let mut w = Words {
        offsets: vec![0; words.len()],
        words,
        pos: 0,
    };
    let item = w.keyword(&["config", "download-status", "proxy-db", "status"])?;
    let detail = if item == "config" || w.is_empty() {
        false
    } else {
        w.keyword(&["detail"])?;
        true
    };
    w.finish()?;
    Ok(match (item, detail) {
        ("proxy-db", false) => ShowCommand::ProxyDb,
        ("proxy-db", true) => ShowCommand::ProxyDbDetail,
        ("status", false) => ShowCommand::Status,
        ("status", true) => ShowCommand::StatusDetail,
        ("download-status", false) => ShowCommand::DownloadStatus,
        ("download-status", true) => ShowCommand::DownloadStatusDetail,
        _ => ShowCommand::Config,
    })
}

/// The words after `show vstack` that give `command`.
pub fn show_words(command: ShowCommand) -> &'static str {
    match command {
        ShowCommand::Config => "config",
        ShowCommand::ProxyDb => "proxy-db",
        ShowCommand::ProxyDbDetail => "proxy-db detail",
        ShowCommand::Status => "status",
        ShowCommand::StatusDetail => "status detail",
        ShowCommand::DownloadStatus => "download-status",
        ShowCommand::DownloadStatusDetail => "download-status detail",
    }
}

/// Keywords after `vstack`, director ones included so that they are
/// recognised (and refused) rather than reported as typos.
const VSTACK_WORDS: &[&str] = &[
    "backup",
    "basic",
    "dhcp-localserver",
    "director",
    "join-window",
    "proxy",
    "startup-vlan",
    "vlan",
];

fn proxy_args(w: &mut Words<'_>) -> Result<ProxyCommand, IosError> {
    let address = match w.keyword(&["interface", "ip-address"])? {
        "ip-address" => ProxyAddress::Ip(w.ip("the proxy IP address")?),
        _ => {
            let word = w.value("an interface name")?;
            let mut ios = word.to_owned();
            let mut linux = word.to_owned();
            if let Some(n) = w.peek().filter(|t| t.bytes().all(|b| b.is_ascii_digit())) {
                w.pos += 1;
                ios = format!("{word} {n}");
                linux.push_str(n);
            }
            if let (Some(prefix), Some(rest)) = (linux.get(..4), linux.get(4..)) {
                if prefix.eq_ignore_ascii_case("vlan")
                    && !rest.is_empty()
                    && rest.bytes().all(|b| b.is_ascii_digit())
                {
                    linux = format!("vlan{rest}");
                }
            }
            super::check_ifname(&linux).map_err(IosError::Value)?;
            ProxyAddress::Interface { ios, linux }
        }
    };
    let mut cmd = ProxyCommand {
        address,
        startup_vlan: None,
        pnp_profile: None,
    };
    while !w.is_empty() {
        match w.keyword(&["pnp-profile", "startup-vlan"])? {
            "startup-vlan" => {
                if cmd.startup_vlan.replace(w.vlan()?).is_some() {
                    return Err(IosError::Repeated("startup-vlan"));
                }
            }
            _ => {
                let name = w.value("a PnP profile name")?;
                check_profile_name(name).map_err(IosError::Value)?;
                if cmd.pnp_profile.replace(name.to_owned()).is_some() {
                    return Err(IosError::Repeated("pnp-profile"));
                }
            }
        }
    }
    Ok(cmd)
}

fn vlan_list_arg(w: &mut Words<'_>) -> Result<Vec<u16>, IosError> {
    let mut text = String::new();
    while let Some(t) = w.next() {
        text.push_str(t);
    }
    if text.is_empty() {
        return Err(IosError::Incomplete("a VLAN list, e.g. 1,10-12".to_owned()));
    }
    let mut vlans = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi) = (vlan_number(lo)?, vlan_number(hi)?);
        if lo > hi {
            return Err(IosError::Value(format!("VLAN range {part} runs backwards")));
        }
        vlans.extend(lo..=hi);
    }
    vlans.sort_unstable();
    vlans.dedup();
    Ok(vlans)
}

fn vlan_number(token: &str) -> Result<u16, IosError> {
    let v: u16 = token.parse().map_err(|_| IosError::Invalid {
        token: token.to_owned(),
        expected: "a VLAN id (1-4094)".to_owned(),
        at: 0,
    })?;
    super::check_vlan(v).map_err(IosError::Value)?;
    Ok(v)
}

fn pool_args(w: &mut Words<'_>) -> Result<DhcpPool, IosError> {
    w.keyword(&["pool"])?;
    let start = w.ip("the pool's first address")?;
    let end = w.ip("the pool's last address")?;
    let (mut netmask, mut router, mut lease) = (None, None, None);
    while !w.is_empty() {
        match w.keyword(&["default-router", "lease", "netmask"])? {
            "netmask" => {
                if netmask.replace(w.ip("a netmask")?).is_some() {
                    return Err(IosError::Repeated("netmask"));
                }
            }
            "default-router" => {
                if router.replace(w.ip("the default router")?).is_some() {
                    return Err(IosError::Repeated("default-router"));
                }
            }
            _ => {
                let token = w.value("a lease time in seconds")?;
                let secs = token.parse::<u32>().map_err(|_| IosError::Invalid {
                    token: token.to_owned(),
                    expected: "a lease time in seconds".to_owned(),
                    at: 0,
                })?;
                if lease.replace(secs).is_some() {
                    return Err(IosError::Repeated("lease"));
                }
            }
        }
    }
    let pool = DhcpPool {
        start,
        end,
        netmask: netmask.ok_or_else(|| IosError::Incomplete("netmask <mask>".to_owned()))?,
        default_router: router,
        lease_secs: lease.unwrap_or(DEFAULT_LEASE_SECS),
    };
    pool.check().map_err(IosError::Value)?;
    Ok(pool)
}

/// The words of a command line and a cursor.
struct Words<'a> {
    words: Vec<&'a str>,
    /// Byte offset of each word in the line.
    offsets: Vec<usize>,
    pos: usize,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Self {
        let words: Vec<&'a str> = line.split_whitespace().collect();
        let offsets = words
            .iter()
            .map(|w| (w.as_ptr() as usize).saturating_sub(line.as_ptr() as usize))
            .collect();
        Self {
            words,
            offsets,
            pos: 0,
        }
    }

    /// Places an invalid-input error at the word read last.
    fn locate(&self, mut e: IosError) -> IosError {
        if let IosError::Invalid { at, .. } = &mut e {
            *at = self
                .offsets
                .get(self.pos.saturating_sub(1))
                .copied()
                .unwrap_or(0);
        }
        e
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.words.len()
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek()?;
        self.pos += 1;
        Some(t)
    }

    /// The next word, which must be there.
    fn value(&mut self, what: &str) -> Result<&'a str, IosError> {
        self.next()
            .ok_or_else(|| IosError::Incomplete(what.to_owned()))
    }

    fn ip(&mut self, what: &str) -> Result<Ipv4Addr, IosError> {
        let token = self.value(what)?;
        token.parse().map_err(|_| IosError::Invalid {
            token: token.to_owned(),
            expected: format!("{what} (a.b.c.d)"),
            at: 0,
        })
    }

    fn vlan(&mut self) -> Result<u16, IosError> {
        vlan_number(self.value("a VLAN id (1-4094)")?)
    }

    /// The next word as one of `candidates`: exact, or a unique prefix,
    /// case-insensitive, `_` read as `-`.
    fn keyword(&mut self, candidates: &[&'static str]) -> Result<&'static str, IosError> {
        let list = candidates.join(", ");
        let Some(token) = self.next() else {
            return Err(IosError::Incomplete(format!("one of {list}")));
        };
        let typed = token.to_ascii_lowercase().replace('_', "-");
        if let Some(exact) = candidates.iter().find(|c| **c == typed) {
            return Ok(exact);
        }
        let matches: Vec<&'static str> = candidates
            .iter()
            .copied()
            .filter(|c| c.starts_with(&typed))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(IosError::Invalid {
                token: token.to_owned(),
                expected: format!("one of {list}"),
                at: 0,
            }),
            many => Err(IosError::Ambiguous {
                token: token.to_owned(),
                candidates: many.join(", "),
            }),
        }
    }

    fn finish(&mut self) -> Result<(), IosError> {
        match self.next() {
            None => Ok(()),
            Some(token) => Err(IosError::Invalid {
                token: token.to_owned(),
                expected: "end of command".to_owned(),
                at: 0,
            }),
        }
    }
}
