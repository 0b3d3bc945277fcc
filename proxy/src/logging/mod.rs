//! Logging: `tracing`, written by `tracing-subscriber` to standard error in
//! one of three formats ([`LogFormat`]: `plain`, `ios`, `json`), filtered
//! by `RUST_LOG` (default `info`, `EnvFilter` syntax) and by the IOS debug
//! switches, turned on and off at run time by `debug vstack <name>` /
//! `no debug vstack <name>` through the control socket. Records of the
//! `log` crate (rustls, hyper, aya, the XDP program's aya-log) come in
//! through the `tracing-log` bridge and are filtered and written alike.
//!
//! Every client has a span (`client`, fields `mac`, `ip`, `udi`; see
//! [`client`]): the lines of one switch carry its fields whichever part
//! wrote them (onboarding, SMI, TFTP, DHCP, its PnP agent).
//!
//! A switch opens `debug` (not `trace`) records of its log targets,
//! whatever `RUST_LOG` says: turning one on or off rebuilds the filter
//! from `RUST_LOG`'s directives and the switches that are on (see
//! [`filter`]). A target matches a prefix as in `RUST_LOG`: if it starts
//! with it. The switches, as the chapter lists them:
//!
//! | name          | targets                                          | IOS facility       |
//! |---------------|--------------------------------------------------|--------------------|
//! | `all`         | every target, libraries included                 | `VSTACK`           |
//! | `backup`      | refused: the proxy keeps no configuration backups (a director's feature) | |
//! | `cli`         | `proxy::cli`, `proxy::control`, `proxy::config`  | `VSTACK_CLI`       |
//! | `director-db` | `proxy::store`, `smi_proxy::db` (the proxy database) | `VSTACK_DIR_DB` |
//! | `download`    | `proxy::smi::tftp`, `smi_proxy::download` (transfers, deliveries) | `VSTACK_DOWNLOAD` |
//! | `emulation`   | refused: the proxy emulates nothing              |                    |
//! | `fsm`         | `smi_proxy::fsm` (each client's onboarding steps) | `VSTACK_FSM`      |
//! | `group`       | refused: the proxy has no director groups        |                    |
//! | `join-window` | refused: the proxy has no join window            |                    |
//! | `protocol`    | `proxy::smi` (SMI sessions and codec)            | `VSTACK_PROTOCOL`  |
//! | `smi-proxy`   | `smi_proxy`, `proxy` (the whole daemon; the prefix also opens `proxy_ebpf`, the XDP program's aya-log lines, which it turns on) | `VSTACK_SMI_PROXY` |
//!
//! A line's facility in the `ios` format is that of the switch with the
//! longest target it matches (`all` aside): `proxy::smi::tftp::transfer`
//! is `VSTACK_DOWNLOAD`, `proxy::pnp::agent` `VSTACK_SMI_PROXY`, a
//! library's line `VSTACK`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Filter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::{Layer as _, Registry, reload};

mod client;
pub mod filter;
mod format;
mod throttle;

pub use client::{FOLLOWED_MAX, SPAN_TARGET, client, client_at, follow, peer};
pub use filter::BaseDirectives;
pub use format::{Ios, IosFields, LogFormat, ios_timestamp};
pub use throttle::{THROTTLE_PER_SEC, Throttle, skipped_note};

/// A debug switch: its IOS name and the log targets it opens.
#[derive(Debug)]
pub struct DebugSwitch {
    /// The `debug vstack` keyword.
    pub name: &'static str,
    /// Its line in `debug vstack ?`.
    pub help: &'static str,
    /// Target prefixes (`""` matches every target).
    pub targets: &'static [&'static str],
    /// The facility its lines show in the `ios` format.
    pub facility: &'static str,
    /// Why the proxy refuses it, for a keyword of the chapter that names
    /// nothing the proxy has.
    pub refused: Option<&'static str>,
}

impl DebugSwitch {
    /// Whether `debug vstack <name>` is accepted.
    pub fn supported(&self) -> bool {
        self.refused.is_none()
    }
}

const fn refused(name: &'static str, why: &'static str) -> DebugSwitch {
    DebugSwitch {
        name,
        help: "",
        targets: &[],
        facility: "VSTACK",
        refused: Some(why),
    }
}

/// The switches, in `debug vstack ?` order: the chapter's keywords, those
/// that name nothing the proxy has refused.
pub const SWITCHES: &[DebugSwitch] = &[
    DebugSwitch {
        name: "all",
        help: "All Smart Install debug messages",
        targets: &[""],
        facility: "VSTACK",
        refused: None,
    },
    refused(
        "backup",
        "the SMI proxy keeps no configuration backups (an SMI director's feature)",
    ),
    DebugSwitch {
        name: "cli",
        help: "Smart Install CLI debug messages",
        targets: &["proxy::cli", "proxy::control", "proxy::config"],
        facility: "VSTACK_CLI",
        refused: None,
    },
    DebugSwitch {
        name: "director-db",
        help: "Smart Install proxy database messages",
        targets: &["proxy::store", "smi_proxy::db"],
        facility: "VSTACK_DIR_DB",
        refused: None,
    },
    DebugSwitch {
        name: "download",
        help: "Smart Install download debug messages",
        targets: &["proxy::smi::tftp", "smi_proxy::download"],
        facility: "VSTACK_DOWNLOAD",
        refused: None,
    },
    refused(
        "emulation",
        "the SMI proxy emulates no Smart Install device",
    ),
    DebugSwitch {
        name: "fsm",
        help: "Smart Install session-management debug messages",
        targets: &["smi_proxy::fsm"],
        facility: "VSTACK_FSM",
        refused: None,
    },
    refused(
        "group",
        "the SMI proxy has no Smart Install groups (an SMI director's feature)",
    ),
    refused(
        "join-window",
        "the SMI proxy has no join window (an SMI director's feature)",
    ),
    DebugSwitch {
        name: "protocol",
        help: "Smart Install protocol debug messages",
        targets: &["proxy::smi"],
        facility: "VSTACK_PROTOCOL",
        refused: None,
    },
    DebugSwitch {
        name: "smi-proxy",
        help: "Smart Install SMI PnP proxy operations",
        targets: &["smi_proxy", "proxy"],
        facility: "VSTACK_SMI_PROXY",
        refused: None,
    },
];

const N: usize = SWITCHES.len();

/// The facility of a line of `target` in the `ios` format: that of the
/// switch with the longest target `target` starts with (`all` aside), or
/// `VSTACK`.
pub fn facility(target: &str) -> &'static str {
    SWITCHES
        .iter()
        .flat_map(|s| s.targets.iter().map(move |t| (*t, s.facility)))
        .filter(|(t, _)| !t.is_empty() && target.starts_with(t))
        .max_by_key(|(t, _)| t.len())
        .map_or("VSTACK", |(_, facility)| facility)
}

/// Why a debug switch could not be set or logging not started.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// No switch has this name (or prefix).
    #[error("% Invalid input {name:?}: expected one of {}", names())]
    Unknown {
        /// As typed.
        name: String,
    },
    /// A shortened name matches several switches.
    #[error("% Ambiguous command {name:?}: could be {candidates}")]
    Ambiguous {
        /// As typed.
        name: String,
        /// The switches it starts.
        candidates: String,
    },
    /// A keyword of the chapter that names nothing the proxy has.
    #[error("% debug vstack {name} is not supported: {why}")]
    Unsupported {
        /// The keyword.
        name: &'static str,
        /// Why.
        why: &'static str,
    },
    /// A subscriber was installed already.
    #[error("a logger is installed already")]
    AlreadyInstalled,
    /// The filter could not be replaced.
    #[error("the log filter could not be changed: {0}")]
    Reload(String),
}

/// The keywords `debug vstack` accepts, comma-separated.
pub fn names() -> String {
    SWITCHES
        .iter()
        .filter(|s| s.supported())
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// On/off state of every switch.
#[derive(Debug)]
pub struct Switches {
    on: [AtomicBool; N],
}

impl Default for Switches {
    fn default() -> Self {
        Self::new()
    }
}

impl Switches {
    /// All off.
    pub const fn new() -> Self {
        Self {
            on: [const { AtomicBool::new(false) }; N],
        }
    }

    /// Turns switch `index` of [`SWITCHES`] on or off.
    fn set(&self, index: usize, on: bool) {
        if let Some(flag) = self.on.get(index) {
            flag.store(on, Ordering::Relaxed);
        }
    }

    fn on(&self) -> impl Iterator<Item = &'static DebugSwitch> + '_ {
        SWITCHES
            .iter()
            .zip(&self.on)
            .filter(|(_, f)| f.load(Ordering::Relaxed))
            .map(|(s, _)| s)
    }

    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        self.on().next().is_some()
    }

    /// The names of the switches that are on.
    pub fn active(&self) -> Vec<&'static str> {
        self.on().map(|s| s.name).collect()
    }

    /// The targets the switches that are on open.
    pub fn opened(&self) -> Vec<&'static str> {
        self.on().flat_map(|s| s.targets.iter().copied()).collect()
    }
}

/// The switch `name` stands for: exact, or a unique prefix, ignoring case.
/// A keyword the proxy refuses ([`DebugSwitch::refused`]) is an error.
pub fn resolve(name: &str) -> Result<&'static DebugSwitch, LoggingError> {
    let typed = name.to_ascii_lowercase();
    let found = match SWITCHES.iter().find(|s| s.name == typed) {
        Some(s) => s,
        None => {
            let matches: Vec<&'static DebugSwitch> = SWITCHES
                .iter()
                .filter(|s| !typed.is_empty() && s.name.starts_with(&typed))
                .collect();
            match matches.as_slice() {
                [one] => *one,
                [] => {
                    return Err(LoggingError::Unknown {
                        name: name.to_owned(),
                    });
                }
                many => {
                    return Err(LoggingError::Ambiguous {
                        name: name.to_owned(),
                        candidates: many.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
                    });
                }
            }
        }
    };
    match found.refused {
        Some(why) => Err(LoggingError::Unsupported {
            name: found.name,
            why,
        }),
        None => Ok(found),
    }
}

/// The confirmation IOS prints for `debug vstack <name>` (`on`) or its
/// `no` form.
pub fn confirmation(name: &str, on: bool) -> String {
    let label = if name == "all" {
        "debug all".to_owned()
    } else {
        name.to_owned()
    };
    let state = if on { "on" } else { "off" };
    let mut text = String::new();
    if name == "smi-proxy" && on {
        text.push_str("SMI PNP PROXY:EXEC cli vstack execution successful\n");
    }
    text.push_str(&format!("Vstack {label} debugging is {state}\n"));
    text
}

/// Lets the client spans through whatever the filter says of their
/// target, so that every line written for a client carries its fields.
#[derive(Clone, Copy, Debug)]
struct ClientSpans;

impl<S> Filter<S> for ClientSpans {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        client::is_client_span(meta)
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if client::is_client_span(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::ERROR)
    }
}

/// The handle on a subscriber's filter: `RUST_LOG`'s directives and the
/// switches that shape it.
pub struct Control {
    base: BaseDirectives,
    switches: &'static Switches,
    filter: reload::Handle<EnvFilter, Registry>,
    /// One switch change at a time, so that the last filter built is the
    /// last change's.
    changing: Mutex<()>,
}

impl Control {
    /// Turns switch `name` (shortenable) on or off, rebuilds the filter and
    /// returns the IOS confirmation text.
    pub fn set(&self, name: &str, on: bool) -> Result<String, LoggingError> {
        let _one = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let text = set_switch(self.switches, name, on)?;
        let filter = self.base.filter(&self.switches.opened());
        self.filter
            .reload(filter)
            .map_err(|e| LoggingError::Reload(e.to_string()))?;
        Ok(text)
    }

    /// The names of the switches that are on.
    pub fn active(&self) -> Vec<&'static str> {
        self.switches.active()
    }
}

fn set_switch(switches: &Switches, name: &str, on: bool) -> Result<String, LoggingError> {
    let switch = resolve(name)?;
    let index = SWITCHES
        .iter()
        .position(|s| s.name == switch.name)
        .unwrap_or_default();
    switches.set(index, on);
    Ok(confirmation(switch.name, on))
}

/// A subscriber writing `format` to `writer` (with colours if `ansi`, in
/// the `plain` format), filtered by `base` and `switches`, and the
/// [`Control`] of its filter.
pub fn subscriber<W>(
    format: LogFormat,
    base: BaseDirectives,
    switches: &'static Switches,
    writer: W,
    ansi: bool,
) -> (impl tracing::Subscriber + Send + Sync + 'static, Control)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (filter, handle) = reload::Layer::new(base.filter(&switches.opened()));
    let layer = match format {
        LogFormat::Plain => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Ios => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .event_format(Ios)
            .fmt_fields(IosFields)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .boxed(),
    };
    let subscriber = Registry::default().with(layer.with_filter(ClientSpans.or(filter)));
    let control = Control {
        base,
        switches,
        filter: handle,
        changing: Mutex::new(()),
    };
    (subscriber, control)
}

/// The switches of the installed subscriber (or of none yet).
static GLOBAL: Switches = Switches::new();
/// The installed subscriber's filter, once [`init`] ran.
static INSTALLED: OnceLock<Control> = OnceLock::new();

/// Whether standard error gets colours: a terminal, unless `NO_COLOR` is
/// set; `RUST_LOG_STYLE=always` or `never` decides instead.
fn stderr_ansi() -> bool {
    use std::io::IsTerminal as _;
    match std::env::var("RUST_LOG_STYLE").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
    }
}

/// Installs the subscriber: `format` on standard error, `RUST_LOG`
/// (default `info`) and the switches (all off, unless [`set_debug`] ran
/// before) as filter, and the bridge that brings the `log` crate's records
/// in. A directive of `RUST_LOG` that does not parse is reported on
/// standard error and left out.
pub fn init(format: LogFormat) -> Result<(), LoggingError> {
    let (base, refused) = BaseDirectives::from_env();
    for r in refused {
        eprintln!("smi-proxy: RUST_LOG: ignoring {r}");
    }
    let (subscriber, control) = subscriber(format, base, &GLOBAL, std::io::stderr, stderr_ansi());
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    tracing_log::LogTracer::init().map_err(|_| LoggingError::AlreadyInstalled)?;
    INSTALLED
        .set(control)
        .map_err(|_| LoggingError::AlreadyInstalled)
}

/// Turns switch `name` (shortenable) of the installed subscriber on or off
/// and returns the IOS confirmation text.
pub fn set_debug(name: &str, on: bool) -> Result<String, LoggingError> {
    match INSTALLED.get() {
        Some(control) => control.set(name, on),
        None => set_switch(&GLOBAL, name, on),
    }
}

/// The names of the installed subscriber's switches that are on.
pub fn active() -> Vec<&'static str> {
    GLOBAL.active()
}

/// `show debugging`: nothing when every switch is off, else as IOS lists
/// them under their facility.
pub fn show_debugging() -> String {
    debugging_text(&active())
}

fn debugging_text(on: &[&str]) -> String {
    if on.is_empty() {
        return String::new();
    }
    let mut out = String::from("VSTACK:\n");
    for name in on {
        out.push_str(&format!("  vstack {name} debugging is on\n"));
    }
    out
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
