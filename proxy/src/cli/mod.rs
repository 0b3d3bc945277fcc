//! Operator command line: the daemon entry point and the operator commands.

pub mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::daemon::{self, DaemonConfig};
use crate::dataplane::{self, ClientTable};

/// `smi-proxy`: Smart Install director and PnP agent proxy.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
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
}

/// Runs a parsed command line; the process exit code says how it went.
pub fn run(args: Args) -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match args.command {
        Command::Run(cfg) => daemon::run(cfg),
        Command::Clients { pin_dir, json } => print_clients(&pin_dir, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smi-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
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
    let table = ClientTable::from_pin(&pin_dir.join(proxy_common::maps::CLIENTS))?;
    let mut rows: Vec<ClientRow> = table
        .entries()?
        .into_iter()
        .map(|(mac, e)| ClientRow {
            mac: crate::dataplane::format_mac(&mac),
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
