//! Logging: `env_logger` (filter from `RUST_LOG`, default `info`) plus the
//! IOS debug switches, turned on and off at run time by
//! `debug vstack <name>` / `no debug vstack <name>` through the control
//! socket.
//!
//! A switch lets `debug` (not `trace`) records of its log targets through
//! whatever `RUST_LOG` says. A target matches a prefix if it equals it or
//! starts with it followed by `::`. The switches:
//!
//! | name        | targets                                         |
//! |-------------|-------------------------------------------------|
//! | `smi-proxy` | `smi_proxy`, `proxy` (the whole daemon)         |
//! | `protocol`  | `proxy::smi` (SMI sessions and codec)           |
//! | `download`  | `proxy::smi::tftp` (file transfers)             |
//! | `cli`       | `proxy::cli`, `proxy::control`, `proxy::config` |
//! | `all`       | every target, libraries included                |
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// A debug switch: its IOS name and the log targets it opens.
#[derive(Debug)]
pub struct DebugSwitch {
    /// The `debug vstack` keyword.
    pub name: &'static str,
    /// Target prefixes (`""` matches every target).
    pub targets: &'static [&'static str],
}

/// The switches, in `debug vstack ?` order.
pub const SWITCHES: &[DebugSwitch] = &[
    DebugSwitch {
        name: "all",
        targets: &[""],
    },
    DebugSwitch {
        name: "cli",
        targets: &["proxy::cli", "proxy::control", "proxy::config"],
    },
    DebugSwitch {
        name: "download",
        targets: &["proxy::smi::tftp"],
    },
    DebugSwitch {
        name: "protocol",
        targets: &["proxy::smi"],
    },
    DebugSwitch {
        name: "smi-proxy",
        targets: &["smi_proxy", "proxy"],
    },
];

const N: usize = SWITCHES.len();

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
    /// A logger was installed already.
    #[error("a logger is installed already")]
    AlreadyInstalled,
}

fn names() -> String {
    SWITCHES
        .iter()
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

    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        self.on.iter().any(|f| f.load(Ordering::Relaxed))
    }

    /// The names of the switches that are on.
    pub fn active(&self) -> Vec<&'static str> {
        SWITCHES
            .iter()
            .zip(&self.on)
            .filter(|(_, f)| f.load(Ordering::Relaxed))
            .map(|(s, _)| s.name)
            .collect()
    }

    /// Whether a switch lets a record of `level` from `target` through.
    pub fn enables(&self, target: &str, level: Level) -> bool {
        level <= Level::Debug
            && SWITCHES.iter().zip(&self.on).any(|(s, f)| {
                f.load(Ordering::Relaxed) && s.targets.iter().any(|p| target_matches(target, p))
            })
    }
}

fn target_matches(target: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || target == prefix
        || target
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// The switch `name` stands for: exact, or a unique prefix, ignoring case.
pub fn resolve(name: &str) -> Result<&'static DebugSwitch, LoggingError> {
    let typed = name.to_ascii_lowercase();
    if let Some(s) = SWITCHES.iter().find(|s| s.name == typed) {
        return Ok(s);
    }
    let matches: Vec<&'static DebugSwitch> = SWITCHES
        .iter()
        .filter(|s| !typed.is_empty() && s.name.starts_with(&typed))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(LoggingError::Unknown {
            name: name.to_owned(),
        }),
        many => Err(LoggingError::Ambiguous {
            name: name.to_owned(),
            candidates: many.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
        }),
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

/// A `log::Log` that prints what `base` accepts, and what a switch in
/// `switches` turns on through `verbose` (the same format, every level).
pub struct SwitchLogger {
    base: env_logger::Logger,
    verbose: env_logger::Logger,
    switches: &'static Switches,
}

impl SwitchLogger {
    /// A logger filtering with `base`, printing switched-on records with
    /// `verbose`.
    pub fn new(
        base: env_logger::Logger,
        verbose: env_logger::Logger,
        switches: &'static Switches,
    ) -> Self {
        Self {
            base,
            verbose,
            switches,
        }
    }

    /// The level `log` must let through for this logger to see every
    /// record it would print.
    pub fn max_level(&self) -> LevelFilter {
        if self.switches.any() {
            self.base.filter().max(LevelFilter::Debug)
        } else {
            self.base.filter()
        }
    }
}

impl Log for SwitchLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.base.enabled(metadata) || self.switches.enables(metadata.target(), metadata.level())
    }

    fn log(&self, record: &Record<'_>) {
        if self.base.matches(record) {
            self.base.log(record);
        } else if self.switches.enables(record.target(), record.level()) {
            self.verbose.log(record);
        }
    }

    fn flush(&self) {
        self.base.flush();
    }
}

/// The switches of the installed logger.
static GLOBAL: Switches = Switches::new();
/// `RUST_LOG`'s level, once [`init`] ran.
static BASE_LEVEL: OnceLock<LevelFilter> = OnceLock::new();

/// Installs the logger: `RUST_LOG` (default `info`), every switch off.
pub fn init() -> Result<(), LoggingError> {
    let env = env_logger::Env::default().default_filter_or("info");
    let base = env_logger::Builder::from_env(env).build();
    // Same format and colours, no filter: the switches decide.
    let mut verbose = env_logger::Builder::new();
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        verbose.parse_write_style(&style);
    }
    let verbose = verbose.filter_level(LevelFilter::Trace).build();
    let level = base.filter();
    log::set_boxed_logger(Box::new(SwitchLogger::new(base, verbose, &GLOBAL)))
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    let _ = BASE_LEVEL.set(level);
    update_max_level();
    Ok(())
}

fn update_max_level() {
    let base = BASE_LEVEL.get().copied().unwrap_or(LevelFilter::Info);
    log::set_max_level(if GLOBAL.any() {
        base.max(LevelFilter::Debug)
    } else {
        base
    });
}

/// Turns switch `name` (shortenable) of the installed logger on or off and
/// returns the IOS confirmation text.
pub fn set_debug(name: &str, on: bool) -> Result<String, LoggingError> {
    let switch = resolve(name)?;
    let index = SWITCHES
        .iter()
        .position(|s| s.name == switch.name)
        .unwrap_or_default();
    GLOBAL.set(index, on);
    update_max_level();
    Ok(confirmation(switch.name, on))
}

/// The names of the installed logger's switches that are on.
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

/// Most lines a [`Throttle`] lets through per second.
pub const THROTTLE_PER_SEC: u32 = 10;

/// Bounds the log lines one kind of event writes (a refused request, a
/// dropped frame), so that a flood from the segment cannot flood the log:
/// [`THROTTLE_PER_SEC`] lines a second, then silence until the next
/// second, whose first line says how many were left out.
#[derive(Debug)]
pub struct Throttle {
    window: std::time::Instant,
    shown: u32,
    skipped: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    /// A throttle whose first second starts now.
    pub fn new() -> Self {
        Self {
            window: std::time::Instant::now(),
            shown: 0,
            skipped: 0,
        }
    }

    /// Whether to write this line: `Some(n)` with the number of lines left
    /// out since the last one written, `None` to leave this one out.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(std::time::Instant::now())
    }

    fn allow_at(&mut self, now: std::time::Instant) -> Option<u64> {
        if now.duration_since(self.window) >= std::time::Duration::from_secs(1) {
            self.window = now;
            self.shown = 0;
        }
        if self.shown >= THROTTLE_PER_SEC {
            self.skipped += 1;
            return None;
        }
        self.shown += 1;
        Some(std::mem::take(&mut self.skipped))
    }
}

/// `" (N more not logged)"` for a [`Throttle::allow`] count, or nothing.
pub fn skipped_note(skipped: u64) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(" ({skipped} more not logged)")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn show_debugging_lists_what_is_on() {
        assert_eq!(debugging_text(&[]), "");
        assert_eq!(
            debugging_text(&["download", "smi-proxy"]),
            "VSTACK:\n  vstack download debugging is on\n  vstack smi-proxy debugging is on\n"
        );
    }

    /// A shared buffer env_logger can print into.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn take(&self) -> String {
            self.0
                .lock()
                .map(|mut v| String::from_utf8_lossy(&std::mem::take(&mut *v)).into_owned())
                .unwrap_or_default()
        }
    }

    fn logger(filter: &str, sink: &Sink) -> (SwitchLogger, &'static Switches) {
        let build = |level: &str| {
            env_logger::Builder::new()
                .parse_filters(level)
                .format(|buf, r| writeln!(buf, "{} {} {}", r.level(), r.target(), r.args()))
                .target(env_logger::Target::Pipe(Box::new(sink.clone())))
                .build()
        };
        let switches: &'static Switches = Box::leak(Box::new(Switches::new()));
        (
            SwitchLogger::new(build(filter), build("trace"), switches),
            switches,
        )
    }

    fn emit(l: &SwitchLogger, level: Level, target: &str) {
        l.log(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("m"))
                .build(),
        );
    }

    fn index(name: &str) -> usize {
        SWITCHES
            .iter()
            .position(|s| s.name == name)
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn switches_open_their_targets_to_debug() {
        let sink = Sink::default();
        let (l, switches) = logger("info", &sink);
        emit(&l, Level::Debug, "proxy::smi::director");
        emit(&l, Level::Info, "proxy::smi::director");
        assert_eq!(sink.take(), "INFO proxy::smi::director m\n");
        assert_eq!(l.max_level(), LevelFilter::Info);

        switches.set(index("protocol"), true);
        assert_eq!(l.max_level(), LevelFilter::Debug);
        emit(&l, Level::Debug, "proxy::smi::director");
        emit(&l, Level::Trace, "proxy::smi::director");
        emit(&l, Level::Debug, "proxy::pnp::agent");
        emit(&l, Level::Debug, "proxy::smiley");
        assert_eq!(sink.take(), "DEBUG proxy::smi::director m\n");

        switches.set(index("smi-proxy"), true);
        emit(&l, Level::Debug, "smi_proxy");
        emit(&l, Level::Debug, "proxy::pnp::agent");
        emit(&l, Level::Debug, "hyper::client");
        assert_eq!(
            sink.take(),
            "DEBUG smi_proxy m\nDEBUG proxy::pnp::agent m\n"
        );
        assert!(
            l.enabled(
                &Metadata::builder()
                    .level(Level::Debug)
                    .target("proxy")
                    .build()
            )
        );
        assert!(
            !l.enabled(
                &Metadata::builder()
                    .level(Level::Debug)
                    .target("hyper")
                    .build()
            )
        );

        switches.set(index("all"), true);
        emit(&l, Level::Debug, "hyper::client");
        assert_eq!(sink.take(), "DEBUG hyper::client m\n");
        assert_eq!(switches.active(), ["all", "protocol", "smi-proxy"]);

        for name in ["all", "protocol", "smi-proxy"] {
            switches.set(index(name), false);
        }
        emit(&l, Level::Debug, "proxy");
        assert_eq!(sink.take(), "");
        assert!(!switches.any());
    }

    #[test]
    fn rust_log_still_decides_without_switches() {
        let sink = Sink::default();
        let (l, _) = logger("warn,proxy::pnp=trace", &sink);
        emit(&l, Level::Info, "proxy::smi");
        emit(&l, Level::Trace, "proxy::pnp::agent");
        assert_eq!(sink.take(), "TRACE proxy::pnp::agent m\n");
        assert_eq!(l.max_level(), LevelFilter::Trace);
    }

    #[test]
    fn names_resolve_and_confirm_like_ios() {
        assert_eq!(resolve("smi-proxy").map(|s| s.name).ok(), Some("smi-proxy"));
        assert_eq!(resolve("SMI").map(|s| s.name).ok(), Some("smi-proxy"));
        assert_eq!(resolve("a").map(|s| s.name).ok(), Some("all"));
        assert_eq!(
            resolve("fsm").map(|s| s.name).map_err(|e| e.to_string()),
            Err(
                "% Invalid input \"fsm\": expected one of all, cli, download, protocol, smi-proxy"
                    .to_owned()
            )
        );
        assert!(matches!(resolve(""), Err(LoggingError::Unknown { .. })));
        assert_eq!(
            confirmation("smi-proxy", true),
            "SMI PNP PROXY:EXEC cli vstack execution successful\n\
             Vstack smi-proxy debugging is on\n"
        );
        assert_eq!(
            confirmation("smi-proxy", false),
            "Vstack smi-proxy debugging is off\n"
        );
        assert_eq!(
            confirmation("all", true),
            "Vstack debug all debugging is on\n"
        );
    }

    #[test]
    fn the_global_switches_follow_set_debug() -> Result<(), LoggingError> {
        let text = set_debug("download", true)?;
        assert_eq!(text, "Vstack download debugging is on\n");
        assert!(active().contains(&"download"));
        assert!(log::max_level() >= LevelFilter::Debug);
        set_debug("download", false)?;
        assert!(!active().contains(&"download"));
        assert!(set_debug("nope", true).is_err());
        Ok(())
    }

    #[test]
    fn a_throttle_bounds_the_lines_per_second_and_counts_the_rest() {
        let mut t = Throttle::new();
        let start = t.window;
        let shown = (0..1000).filter_map(|_| t.allow_at(start)).count();
        assert_eq!(shown, THROTTLE_PER_SEC as usize);
        let next = start + std::time::Duration::from_secs(1);
        assert_eq!(t.allow_at(next), Some(1000 - u64::from(THROTTLE_PER_SEC)));
        assert_eq!(t.allow_at(next), Some(0));
        assert_eq!(skipped_note(0), "");
        assert_eq!(skipped_note(3), " (3 more not logged)");
    }
}
