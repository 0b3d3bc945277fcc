//! `smi-emulator`: N emulated legacy switches (and, unless told otherwise,
//! the site DHCP server) on macvlans of an existing parent interface, for
//! the lab.
//!
//! The parent (`--parent`, e.g. `sw0`) must already exist, up, in namespace
//! `--sw-ns`; its veth peer is where the proxy listens. Switch `i` lives in
//! namespace `<prefix>s<i>`, the DHCP server in `<prefix>dhcp`. Prints
//! `smi-emulator: ready` on stdout once everything is started, then one
//! JSON line per event; logs go to stderr. Runs until SIGINT/SIGTERM, then
//! removes its namespaces.
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use proxy_tests::dhcp_server::{DhcpServer, DhcpServerConfig, Pool};
use proxy_tests::emulator::{Emulator, EmulatorConfig, SwitchConfig, VERSIONS, identity};

#[derive(clap::Parser)]
#[command(about = "Emulated legacy Catalyst switches running Smart Install clients")]
struct Args {
    /// Number of switches.
    #[arg(long, default_value_t = 5)]
    switches: u32,
    /// Namespace holding the parent interface.
    #[arg(long)]
    sw_ns: String,
    /// Parent interface of the macvlans.
    #[arg(long, default_value = "sw0")]
    parent: String,
    /// Namespace name prefix (switch i: <prefix>s<i>, DHCP server: <prefix>dhcp).
    #[arg(long, default_value = "emu")]
    prefix: String,
    /// Model mix: `default` (all five in turn) or comma-separated PIDs.
    #[arg(long, default_value = "default")]
    mix: String,
    /// First switch number (MACs and serials derive from it).
    #[arg(long, default_value_t = 0)]
    first: u32,
    /// The proxy's address: option 150 (TFTP) and, with the test pool, option 3.
    #[arg(long, default_value = "192.0.2.1")]
    proxy_ip: Ipv4Addr,
    /// Do not start the site DHCP server.
    #[arg(long)]
    no_dhcp_server: bool,
    /// The DHCP server's address (CIDR).
    #[arg(long, default_value = "192.0.2.2/24")]
    dhcp_ip: String,
    /// Pool: `test` (192.0.2.100-250/24), `large` (198.18.0.0/15, no router:
    /// switches add an on-link route to the proxy; the proxy needs a route
    /// to 198.18.0.0/15 on its interface), or `FIRST-LAST/PREFIX`.
    #[arg(long, default_value = "test")]
    pool: String,
    /// Option 67 (configuration file name) to hand out.
    #[arg(long)]
    bootfile: Option<String>,
    /// Option 125 image-list file name to hand out.
    #[arg(long)]
    image_list: Option<String>,
    /// Spread the switches' boots over this many milliseconds.
    #[arg(long, default_value_t = 0)]
    boot_spread_ms: u64,
    /// Version every switch runs after an image upgrade (default: from the
    /// `.tar` name).
    #[arg(long)]
    next_version: Option<String>,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

fn parse_pool(text: &str) -> anyhow::Result<Pool> {
    match text {
        "test" => Ok(Pool::test()),
        "large" => Ok(Pool::large()),
        _ => {
            let (range, prefix) = text.split_once('/').context("pool: FIRST-LAST/PREFIX")?;
            let (first, last) = range.split_once('-').context("pool: FIRST-LAST/PREFIX")?;
            Ok(Pool {
                first: first.parse()?,
                last: last.parse()?,
                prefix_len: prefix.parse()?,
            })
        }
    }
}

fn switches(args: &Args) -> anyhow::Result<Vec<SwitchConfig>> {
    let models = if args.mix == "default" {
        Vec::new()
    } else {
        args.mix
            .split(',')
            .map(|pid| identity::model(pid.trim()).with_context(|| format!("unknown model {pid}")))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    Ok((args.first..args.first + args.switches)
        .map(|n| {
            let mut sc = if models.is_empty() {
                SwitchConfig::numbered(n)
            } else {
                let model = models[n as usize % models.len()];
                let version = VERSIONS[(n as usize / models.len()) % VERSIONS.len()];
                SwitchConfig::with_model(n, model, version)
            };
            sc.next_version.clone_from(&args.next_version);
            sc
        })
        .collect())
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !proxy_tests::netns::is_root() {
        bail!("smi-emulator needs root (network namespaces)");
    }
    let pool = parse_pool(&args.pool)?;
    let _dhcp = if args.no_dhcp_server {
        None
    } else {
        let (ip, prefix) = args
            .dhcp_ip
            .split_once('/')
            .context("--dhcp-ip: ADDR/PREFIX")?;
        let mut config = DhcpServerConfig::new(
            &format!("{}dhcp", args.prefix),
            &args.sw_ns,
            &args.parent,
            args.proxy_ip,
        );
        config.address = ip.parse()?;
        config.prefix_len = prefix.parse()?;
        config.pool = pool;
        if args.pool == "large" {
            config.router = None;
        }
        config.bootfile.clone_from(&args.bootfile);
        config.image_list.clone_from(&args.image_list);
        Some(DhcpServer::start(config).await?)
    };
    let mut config = EmulatorConfig::new(&args.sw_ns, &args.parent, &args.prefix, 0);
    config.switches = switches(&args)?;
    config.boot_spread = Duration::from_millis(args.boot_spread_ms);
    let mut emulator = Emulator::start(config).await?;
    log::info!("{} switches started", emulator.switches().len());
    println!("smi-emulator: ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            event = emulator.next_event() => match event {
                Some(event) => println!("{}", serde_json::to_string(&event)?),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    log::info!("stopping");
    emulator.shutdown().await;
    Ok(())
}
