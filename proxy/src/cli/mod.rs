//! Operator command line: the daemon entry point and the operator commands.
//!
//! ```text
//! smi-proxy run --config /etc/smi-pnp-proxy/config.toml [flags overriding the file]
//! smi-proxy run --iface <if> [--proxy-ip <ip>] [--pnp-server <url>] ...   (flags only)
//! ```
//!
//! The IOS-style commands talk to the running daemon over its control
//! socket ([`crate::control`]) and print its answer:
//!
//! ```text
//! smi-proxy show vstack {config | status [detail] | proxy-db [detail]
//!                        | download-status [detail]} [--json] [--socket P]
//! smi-proxy config "<vstack configuration line>"        [--socket P]
//! smi-proxy debug vstack <switch>                       [--socket P]
//! smi-proxy no debug vstack <switch>                    [--socket P]
//! smi-proxy undebug vstack <switch>                     [--socket P]
//! ```
//!
//! Keywords may be shortened as on IOS (`show vst proxy det`). A refusal
//! is printed on standard error and the exit status is 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config;
use crate::control::{self, ControlRequest};
use crate::daemon::{self, DaemonConfig};
use crate::dataplane::{self, ClientTable};
use crate::logging;

/// `smi-proxy`: Smart Install director and PnP agent proxy.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. (Parsed once per process, so `Run`'s size does not
/// matter.)
#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the daemon in the foreground, configured by `--config <file>`
    /// and/or flags (a flag given overrides the file).
    Run(DaemonConfig),
    /// Inspect the dataplane's pinned client map without a running daemon.
    Clients {
        /// Directory of the pinned maps.
        #[arg(long, default_value = dataplane::DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// `show vstack ...`, answered by the running daemon.
    Show(ShowArgs),
    /// Applies one IOS configuration line (`vstack ...`) in the running
    /// daemon.
    Config(ConfigArgs),
    /// `debug vstack <switch>`: turns a debug switch on.
    Debug(DebugArgs),
    /// `no debug vstack <switch>`: turns a debug switch off.
    No(DebugArgs),
    /// `undebug vstack <switch>`: the same as `no debug vstack`.
    Undebug(DebugArgs),
}

/// Where the daemon listens.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArg {
    /// The daemon's control socket.
    #[arg(long, default_value = config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
}

/// Arguments of `smi-proxy show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// `vstack`, then `config`, `status [detail]`, `proxy-db [detail]` or
    /// `download-status [detail]`.
    #[arg(required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// Print JSON instead of the IOS layout.
    #[arg(long)]
    pub json: bool,
    /// The control socket.
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Arguments of `smi-proxy config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// The configuration line, quoted or as separate words.
    #[arg(required = true, num_args = 1..)]
    pub line: Vec<String>,
    /// Print what changed (`startup-vlan: 1 -> 10`); without it a
    /// successful line prints nothing, as on IOS, and only `%` notes show.
    #[arg(long, short)]
    pub verbose: bool,
    /// The control socket.
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Arguments of `smi-proxy debug`, `no` and `undebug`.
#[derive(Debug, Clone, clap::Args)]
pub struct DebugArgs {
    /// `vstack <switch>` (after `no`: `debug vstack <switch>`); switches:
    /// all, cli, director-db, download, fsm, protocol, smi-proxy (`debug
    /// vstack ?` lists them).
    #[arg(required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// The control socket.
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Why an operator command line could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The words do not form a command.
    #[error("{0}")]
    Words(String),
}

/// The request `smi-proxy show <words>` sends.
pub fn show_request(words: &[String], json: bool) -> Result<ControlRequest, UsageError> {
    let words: Vec<&str> = words.iter().flat_map(|w| w.split_whitespace()).collect();
    match words.split_first() {
        Some((first, rest)) if is_prefix_of(first, "vstack") => {
            let command = config::parse_show(rest).map_err(|e| UsageError::Words(e.to_string()))?;
            Ok(ControlRequest::Show { command, json })
        }
        Some((first, [])) if first.len() >= 3 && is_prefix_of(first, "debugging") => {
            Ok(ControlRequest::Debugging)
        }
        Some((first, _)) => Err(UsageError::Words(format!(
            "% Invalid input {first:?}: expected vstack"
        ))),
        None => Err(UsageError::Words(
            "% Incomplete command: expected vstack".to_owned(),
        )),
    }
}

/// The request `smi-proxy debug <words>` (`on`) or `undebug <words>`
/// sends; `words` are `vstack <switch>`.
pub fn debug_request(words: &[String], on: bool) -> Result<ControlRequest, UsageError> {
    let words: Vec<&str> = words.iter().flat_map(|w| w.split_whitespace()).collect();
    match words.as_slice() {
        [vstack, target] if is_prefix_of(vstack, "vstack") => {
            let switch = logging::resolve(target).map_err(|e| UsageError::Words(e.to_string()))?;
            Ok(ControlRequest::Debug {
                target: switch.name.to_owned(),
                on,
            })
        }
        [vstack] if is_prefix_of(vstack, "vstack") => Err(UsageError::Words(format!(
            "% Incomplete command: expected one of {}",
            logging::names()
        ))),
        [first, ..] if !is_prefix_of(first, "vstack") => Err(UsageError::Words(format!(
            "% Invalid input {first:?}: expected vstack"
        ))),
        [_, _, extra, ..] => Err(UsageError::Words(format!(
            "% Invalid input {extra:?}: expected end of command"
        ))),
        _ => Err(UsageError::Words(
            "% Incomplete command: expected vstack".to_owned(),
        )),
    }
}

/// The request `smi-proxy no <words>` sends; `words` are
/// `debug vstack <switch>`.
pub fn no_request(words: &[String]) -> Result<ControlRequest, UsageError> {
    match words.split_first() {
        Some((first, rest)) if is_prefix_of(first, "debug") => debug_request(rest, false),
        Some((first, _)) => Err(UsageError::Words(format!(
            "% Invalid input {first:?}: expected debug (configuration goes through `smi-proxy config \"no ...\"`)"
        ))),
        None => Err(UsageError::Words(
            "% Incomplete command: expected debug".to_owned(),
        )),
    }
}

fn is_prefix_of(word: &str, keyword: &str) -> bool {
    !word.is_empty() && keyword.starts_with(&word.to_ascii_lowercase())
}

/// Sends `request` to the daemon at `socket`; prints the answer on
/// standard output, or the refusal on standard error (exit status 1).
fn send(socket: &Path, request: ControlRequest) -> anyhow::Result<ExitCode> {
    send_filtered(socket, request, |text| text)
}

/// [`send`], printing `keep(text)` of a successful answer.
fn send_filtered(
    socket: &Path,
    request: ControlRequest,
    keep: impl FnOnce(String) -> String,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let response = rt.block_on(control::request(socket, &request))?;
    let mut text = if response.ok {
        keep(response.text)
    } else {
        response.text
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if response.ok {
        print!("{text}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprint!("{text}");
        Ok(ExitCode::FAILURE)
    }
}

/// Runs a parsed command line; the process exit code says how it went.
pub fn run(args: Args) -> ExitCode {
    // The daemon installs its logger once its configuration says in which
    // format; the operator commands log plainly.
    if !matches!(args.command, Command::Run(_))
        && let Err(e) = logging::init(logging::LogFormat::Plain)
    {
        eprintln!("smi-proxy: {e}");
    }
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match args.command {
        Command::Run(cfg) => done(daemon::run(cfg)),
        Command::Clients { pin_dir, json } => done(print_clients(&pin_dir, json)),
        Command::Show(a) if asks_help(&a.words) => {
            print_help(config::help::show_help(&without_help(&a.words)))
        }
        Command::Show(a) => show_request(&a.words, a.json)
            .map_err(anyhow::Error::from)
            .and_then(|req| send(&a.socket.socket, req)),
        Command::Config(a) if asks_help(&a.line) => {
            print_help(config::help::config_help(&without_help(&a.line)))
        }
        Command::Config(a) => send_filtered(
            &a.socket.socket,
            ControlRequest::Config {
                line: a.line.join(" "),
            },
            |text| {
                if a.verbose { text } else { notes_only(&text) }
            },
        ),
        Command::Debug(a) | Command::Undebug(a) if asks_help(&a.words) => {
            print_help(config::help::debug_help(&without_help(&a.words)))
        }
        Command::No(a) if asks_help(&a.words) => {
            print_help(match without_help(&a.words).split_first() {
                Some((first, rest)) if is_prefix_of(first, "debug") => {
                    config::help::debug_help(rest)
                }
                _ => None,
            })
        }
        Command::Debug(a) => debug_request(&a.words, true)
            .map_err(anyhow::Error::from)
            .and_then(|req| send(&a.socket.socket, req)),
        Command::No(a) => no_request(&a.words)
            .map_err(anyhow::Error::from)
            .and_then(|req| send(&a.socket.socket, req)),
        Command::Undebug(a) => debug_request(&a.words, false)
            .map_err(anyhow::Error::from)
            .and_then(|req| send(&a.socket.socket, req)),
    };
    match result {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<UsageError>() {
            Some(usage) => {
                eprintln!("{usage}");
                ExitCode::FAILURE
            }
            None => {
                eprintln!("smi-proxy: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Whether the words end with `?` (IOS help).
fn asks_help(words: &[String]) -> bool {
    words
        .iter()
        .flat_map(|w| w.split_whitespace())
        .next_back()
        .is_some_and(|w| w.ends_with('?'))
}

/// The words before the `?`.
fn without_help(words: &[String]) -> Vec<&str> {
    let mut all: Vec<&str> = words.iter().flat_map(|w| w.split_whitespace()).collect();
    if let Some(last) = all.pop() {
        let before = last.trim_end_matches('?');
        if !before.is_empty() {
            all.push(before);
        }
    }
    all
}

/// Prints `?` help, or IOS's answer where nothing can follow.
fn print_help(help: Option<String>) -> anyhow::Result<ExitCode> {
    match help {
        Some(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("% Unrecognized command");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The `%` lines of a configuration answer (warnings such as "not saved"),
/// without the summary of what changed.
fn notes_only(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with('%'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// One row of `smi-proxy clients`.
#[derive(serde::Serialize)]
struct ClientRow {
    mac: String,
    state: &'static str,
    vlan: u16,
    svlan: u16,
    ipv4: String,
    dhcp_pkts: u64,
    smi_pkts: u64,
    smi_dropped: u64,
}

fn print_clients(pin_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let table = ClientTable::from_pin_dir(pin_dir)?;
    let mut rows: Vec<ClientRow> = table
        .entries()?
        .into_iter()
        .map(|(mac, e)| ClientRow {
            mac: crate::mac::Mac(mac).to_string(),
            state: dataplane::state_name(e.state),
            vlan: e.vlan,
            svlan: e.svlan,
            ipv4: std::net::Ipv4Addr::from(e.ipv4).to_string(),
            dhcp_pkts: e.dhcp_pkts,
            smi_pkts: e.smi_pkts,
            smi_dropped: e.smi_dropped,
        })
        .collect();
    rows.sort_by(|a, b| a.mac.cmp(&b.mac));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<11} {:>4} {:>5} {:<15} {:>9} {:>8} {:>8}",
        "MAC Address", "State", "VLAN", "SVLAN", "IP_addr", "DHCP-pkts", "SMI-pkts", "SMI-drop"
    );
    for r in &rows {
        println!(
            "{:<16} {:<11} {:>4} {:>5} {:<15} {:>9} {:>8} {:>8}",
            r.mac, r.state, r.vlan, r.svlan, r.ipv4, r.dhcp_pkts, r.smi_pkts, r.smi_dropped
        );
    }
    println!("Total clients: {}", rows.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::show::ShowCommand;

    fn words(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    fn parse(line: &str) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("smi-proxy").chain(line.split(' ')))
    }

    #[test]
    fn show_words_become_requests() -> Result<(), UsageError> {
        assert_eq!(
            show_request(&words("vstack proxy-db detail"), false)?,
            ControlRequest::Show {
                command: ShowCommand::ProxyDbDetail,
                json: false
            }
        );
        assert_eq!(
            show_request(&words("vst conf"), true)?,
            ControlRequest::Show {
                command: ShowCommand::Config,
                json: true
            }
        );
        assert_eq!(
            show_request(&["vstack status detail".to_owned()], false)?,
            ControlRequest::Show {
                command: ShowCommand::StatusDetail,
                json: false
            }
        );
        for bad in [
            "version",
            "vstack",
            "vstack config detail",
            "vstack proxy-db all",
        ] {
            assert!(show_request(&words(bad), false).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn debug_words_become_requests() -> Result<(), UsageError> {
        let debug = |on| ControlRequest::Debug {
            target: "smi-proxy".into(),
            on,
        };
        assert_eq!(
            debug_request(&words("vstack smi-proxy"), true)?,
            debug(true)
        );
        assert_eq!(debug_request(&words("vst smi"), false)?, debug(false));
        assert_eq!(no_request(&words("debug vstack smi-proxy"))?, debug(false));
        assert_eq!(no_request(&words("deb vst smi-proxy"))?, debug(false));
        let err = |r: Result<ControlRequest, UsageError>| r.map_err(|e| e.to_string()).err();
        assert_eq!(
            err(debug_request(&words("vstack"), true)).as_deref(),
            Some(
                "% Incomplete command: expected one of all, cli, director-db, download, fsm, \
                 protocol, smi-proxy"
            )
        );
        assert!(err(debug_request(&words("vstack nonsense"), true)).is_some());
        assert_eq!(
            err(debug_request(&words("vstack group"), true)).as_deref(),
            Some(
                "% debug vstack group is not supported: the SMI proxy has no Smart Install \
                 groups (an SMI director's feature)"
            )
        );
        assert!(err(debug_request(&words("ip smi-proxy"), true)).is_some());
        assert!(err(debug_request(&words("vstack smi-proxy x"), true)).is_some());
        assert!(err(no_request(&words("vstack proxy"))).is_some());
        Ok(())
    }

    #[test]
    fn the_command_line_parses() -> Result<(), clap::Error> {
        let args = parse("show vstack proxy-db detail --json --socket /tmp/s")?;
        let Command::Show(show) = args.command else {
            panic!("not show");
        };
        assert_eq!(show.words, ["vstack", "proxy-db", "detail"]);
        assert!(show.json);
        assert_eq!(show.socket.socket, Path::new("/tmp/s"));

        let Command::Config(c) = parse("config vstack startup-vlan 10")?.command else {
            panic!("not config");
        };
        assert_eq!(c.line.join(" "), "vstack startup-vlan 10");
        assert_eq!(c.socket.socket, Path::new(config::DEFAULT_CONTROL_SOCKET));

        assert!(matches!(
            parse("no debug vstack smi-proxy")?.command,
            Command::No(_)
        ));
        assert!(matches!(
            parse("undebug vstack all")?.command,
            Command::Undebug(_)
        ));
        assert!(matches!(
            parse("debug vstack smi-proxy")?.command,
            Command::Debug(_)
        ));
        assert!(matches!(
            parse("clients --json")?.command,
            Command::Clients { json: true, .. }
        ));
        assert!(matches!(
            parse("run --iface eth0")?.command,
            Command::Run(_)
        ));
        let Command::Run(run) =
            parse("run --config /etc/smi-pnp-proxy/config.toml --startup-vlan 1")?.command
        else {
            panic!("not run");
        };
        assert_eq!(
            run.config.as_deref(),
            Some(Path::new(config::DEFAULT_CONFIG_PATH))
        );
        assert!(run.given("config") && run.given("startup_vlans"));
        assert!(!run.given("ifaces") && !run.given("state_dir"));
        assert!(parse("run").is_err(), "--config or --iface");
        assert!(parse("show").is_err());
        Ok(())
    }
}
