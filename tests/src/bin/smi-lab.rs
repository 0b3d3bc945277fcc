//! `smi-lab` (run by `cargo xtask lab`): the product's showcase. Builds the
//! lab's namespaces, starts the site DHCP server, N emulated legacy switches,
//! a PnP server with zero-touch jobs (device-info, config-upgrade to
//! startup, image-install) and the proxy with its XDP program, shows live
//! progress (a bar on a terminal; the daemon's log goes to a file), and
//! ends with the proxy's own show commands and a summary.
//! Exit status 0 only when every switch is done. Everything it created is
//! removed at the end, also on Ctrl-C (unless `--keep`, which waits for
//! Ctrl-C first).
use std::io::{BufRead as _, IsTerminal as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proxy_tests::attack::{Attack, Attacker};
use proxy_tests::dhcp_server::{DhcpServer, DhcpServerConfig, Pool};
use proxy_tests::emulator::{Emulator, EmulatorConfig, EmulatorMode, Event};
use proxy_tests::lab::{
    self, Daemon, DaemonLog, DaemonOptions, Layout, PNP_IP, PROXY_IP, Topology,
};
use proxy_tests::netns::NsGuard;
use proxy_tests::pnp_server::{ApplyTo, DeviceInfoType, PnpServer, PnpServerConfig, Script, Step};
use proxy_tests::{end_state, figures};

#[derive(clap::Parser)]
#[command(about = "The smi-pnp-proxy lab: emulated legacy switches onboarded through the proxy")]
struct Args {
    /// Number of emulated switches.
    #[arg(long, default_value_t = 20)]
    clients: u32,
    /// Leave the lab running after the run, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Run another PnP server instead of the built-in one, inside the lab's
    /// server namespace; it finds its address in $PNP_ADDR and $PNP_PORT.
    #[arg(long)]
    pnp_server_cmd: Option<String>,
    /// Name prefix of the lab's namespaces.
    #[arg(long, default_value = "smilab")]
    prefix: String,
    /// Write the run's figures (JSON, see `proxy_tests::figures`) here.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// How switches and the site DHCP server are wired: `isolated` (switch
    /// ports isolated from each other, the DHCP server on a proxy port;
    /// scales to thousands) or `shared` (one flat segment).
    #[arg(long, value_enum, default_value_t = LayoutArg::Isolated)]
    layout: LayoutArg,
    /// How the emulated switches run: `packet` (one process on one packet
    /// socket, a user-space TCP/IP stack per switch; needs the isolated
    /// layout) or `netns` (a namespace and macvlan per switch, the kernel's
    /// stack). Default: `packet` above 300 switches, else `netns`.
    #[arg(long, value_enum)]
    emulator: Option<EmulatorArg>,
    /// Hostile traffic on the switch segment while the switches onboard
    /// (one sender, as fast as it goes, until the last switch is done).
    #[arg(long, value_enum, default_value_t = Attack::None)]
    attack: Attack,
    /// Write the proxy daemon's log here (default
    /// `target/lab/<prefix>/smi-proxy.log`, beside the build's binaries).
    #[arg(long, conflicts_with = "log_to_terminal")]
    log_file: Option<PathBuf>,
    /// Print the proxy daemon's log on the terminal (above the progress
    /// bar) instead of writing it to a file.
    #[arg(long)]
    log_to_terminal: bool,
}

/// `--layout`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LayoutArg {
    Isolated,
    Shared,
}

/// `--clients-max` for a lab of `n` switches: the default client map
/// (16,384) holds labs up to 8,192 with room for churn; above that, twice
/// the switches, as an operator sizes it for a large site (an LRU map that
/// is too small evicts admitted switches).
fn clients_max_flag(n: usize) -> Vec<String> {
    if n <= 8192 {
        return Vec::new();
    }
    vec![
        "--clients-max".into(),
        (2 * n).next_power_of_two().to_string(),
    ]
}

/// `--emulator`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EmulatorArg {
    Netns,
    Packet,
}

/// Above this many switches the lab runs them on the packet stack by default.
const PACKET_ABOVE: u32 = 300;

impl Args {
    /// The emulator mode asked for, or the default for the lab's size.
    fn emulator_mode(&self) -> EmulatorMode {
        match self.emulator {
            Some(EmulatorArg::Netns) => EmulatorMode::Netns,
            Some(EmulatorArg::Packet) => EmulatorMode::Packet,
            None if self.clients > PACKET_ABOVE => EmulatorMode::Packet,
            None => EmulatorMode::Netns,
        }
    }
}

impl From<LayoutArg> for Layout {
    fn from(arg: LayoutArg) -> Self {
        match arg {
            LayoutArg::Isolated => Layout::Isolated,
            LayoutArg::Shared => Layout::Shared,
        }
    }
}

const IMAGE: &str = "c2960-lanbasek9-tar.150-2.SE11.tar";
const PNP_PORT: u16 = 8080;
/// Jobs the built-in PnP server gives each switch.
const JOBS: usize = 4;
/// The startup configuration the built-in PnP server installs.
const SITE_CONFIG: &[u8] = b"hostname lab-switch\n!\nend\n";

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // A few sockets per switch, in this process and in the daemon.
    if let Err(e) = lab::raise_fd_limit(1 << 20) {
        eprintln!("smi-lab: {e:#}");
    }
    // The bar owns the terminal while the switches onboard (drawn from
    // then on, when stderr is a terminal); this process's log lines are
    // written above it.
    let bar = ProgressBar::hidden();
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    logger.target(env_logger::Target::Pipe(Box::new(AboveBar(bar.clone()))));
    if std::io::stderr().is_terminal() && std::env::var_os("RUST_LOG_STYLE").is_none() {
        logger.write_style(env_logger::WriteStyle::Always);
    }
    logger.init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smi-lab: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args, bar.clone())) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            // The bar stays as it got, the error below it.
            if !bar.is_finished() {
                bar.abandon();
            }
            eprintln!("smi-lab: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Progress of one switch, in onboarding order.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    #[default]
    Booting,
    Discovered,
    Identified,
    Upgrading,
    Done,
}

/// Switches that reported a failure and are not done (a failed download
/// that the server's retry then completed does not count).
fn stuck(stages: &[Stage], failed: &[bool]) -> usize {
    stages
        .iter()
        .zip(failed)
        .filter(|(s, f)| **f && **s != Stage::Done)
        .count()
}

/// Shows the switches' progress on `bar`: done of all as its position,
/// failures and the earlier stages as its message.
fn show_progress(bar: &ProgressBar, stages: &[Stage], failed: usize) {
    bar.set_position(stages.iter().filter(|s| **s == Stage::Done).count() as u64);
    bar.set_message(stage_counts(stages, failed));
}

/// How many switches are stuck on a failure, and how many reached each
/// stage before done.
fn stage_counts(stages: &[Stage], failed: usize) -> String {
    let at_least = |s: Stage| stages.iter().filter(|x| **x >= s).count();
    format!(
        "failed {failed}, discovered {}, identified {}, upgrading {}",
        at_least(Stage::Discovered),
        at_least(Stage::Identified),
        stages.iter().filter(|x| **x == Stage::Upgrading).count(),
    )
}

/// The bar's look: elapsed, bar, switches onboarded of all, their rate,
/// then failures first and the earlier stages as far as the terminal's
/// width allows (one line, never wrapped).
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{elapsed_precise} [{bar:20}] {pos}/{len} onboarded ({per_sec:1})  {wide_msg}",
    )
    .map_or_else(
        |_| ProgressStyle::default_bar(),
        |s| s.progress_chars("#>."),
    )
}

/// The log target of this process: each record printed above the bar.
struct AboveBar(ProgressBar);

impl std::io::Write for AboveBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The daemon's log by default: `<target>/lab/<prefix>/smi-proxy.log`, the
/// target directory being the one above this binary's (target/<profile>/),
/// else the temporary directory.
fn default_log_file(prefix: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(std::env::temp_dir)
        .join("lab")
        .join(prefix)
        .join("smi-proxy.log")
}

/// Where the daemon's log goes, created if need be; the file, if any.
fn daemon_log(args: &Args) -> anyhow::Result<(DaemonLog, Option<PathBuf>)> {
    if args.log_to_terminal {
        return Ok((DaemonLog::Piped, None));
    }
    let path = args
        .log_file
        .clone()
        .unwrap_or_else(|| default_log_file(&args.prefix));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok((DaemonLog::File(path.clone()), Some(path)))
}

/// Prints the daemon's log lines above the bar, on a thread of its own,
/// until the daemon closes it.
fn forward_log(log: std::process::ChildStderr, bar: ProgressBar) {
    std::thread::spawn(move || {
        let mut log = std::io::BufReader::new(log);
        let mut line = Vec::new();
        while matches!(log.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            bar.suspend(|| eprint!("{text}"));
            line.clear();
        }
    });
}

/// `smi-lab: the proxy's log: <path>`, when it goes to a file.
fn print_log_path(path: Option<&Path>) {
    if let Some(path) = path {
        eprintln!("smi-lab: the proxy's log: {}", path.display());
    }
}

async fn run(args: Args, bar: ProgressBar) -> anyhow::Result<bool> {
    let p = &args.prefix;
    eprintln!("smi-lab: building namespaces {p}sw, {p}px, {p}pnp ...");
    let mode = args.emulator_mode();
    anyhow::ensure!(
        !(mode == EmulatorMode::Packet && matches!(args.layout, LayoutArg::Shared)),
        "--emulator packet needs --layout isolated: on a shared segment the site \
         DHCP server's macvlan cannot hear frames sent on the packet socket"
    );
    let topo = Topology::build_with(p, args.layout.into())?;
    let n = args.clients as usize;

    // The PnP server: built-in, or the operator's. The built-in one runs
    // on its own runtime, whose thread lives in the server's namespace, as
    // on its own machine: its clock (the proxy-added latency is measured
    // there) does not wait behind the emulated switches' tasks, nor, at
    // [`SERVER_NICE`], behind their threads.
    let pnp_ns = topo.pnp.name().to_owned();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("pnp-server")
        .on_thread_start(move || {
            match NsGuard::enter(&pnp_ns) {
                // The thread stays in the namespace for its whole life.
                Ok(guard) => std::mem::forget(guard),
                Err(e) => eprintln!("smi-lab: PnP server thread: {e:#}"),
            }
            // SAFETY: gettid and setpriority take and return plain integers.
            let set = unsafe {
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    libc::gettid() as libc::id_t,
                    SERVER_NICE,
                )
            };
            if set != 0 {
                let e = std::io::Error::last_os_error();
                eprintln!("smi-lab: PnP server thread: nice {SERVER_NICE}: {e}");
            }
        })
        .enable_all()
        .build()
        .map(|rt| ServerRuntime(Some(rt)))
        .context("PnP server runtime")?;
    let mut external = None;
    let builtin = match &args.pnp_server_cmd {
        Some(cmd) => {
            external = Some(
                std::process::Command::new("ip")
                    .args(["netns", "exec", topo.pnp.name(), "sh", "-c", cmd])
                    .env("PNP_ADDR", PNP_IP.to_string())
                    .env("PNP_PORT", PNP_PORT.to_string())
                    .spawn()
                    .context("starting --pnp-server-cmd")?,
            );
            None
        }
        None => {
            let config = PnpServerConfig::new(SocketAddr::from((PNP_IP, PNP_PORT)));
            let server = server_rt
                .spawn(PnpServer::start(config))
                .await
                .context("PnP server task")??;
            let (image, md5) = proxy_tests::pnp_server::fake_image(256 * 1024);
            server.add_image(IMAGE, image);
            server.add_config("site.cfg", SITE_CONFIG.to_vec());
            server.set_default_script(Script::new(vec![
                Step::DeviceInfo(DeviceInfoType::All),
                Step::ConfigUpgrade {
                    apply_to: ApplyTo::Startup,
                    file: "site.cfg".into(),
                    reload: false,
                },
                Step::ImageInstall {
                    file: IMAGE.into(),
                    md5: Some(md5),
                },
                Step::DeviceInfo(DeviceInfoType::Image),
            ]));
            Some(server)
        }
    };
    // The site DHCP server first: in the isolated layout its port gets
    // the proxy's XDP program too.
    let mut dhcp_cfg = DhcpServerConfig::new(&format!("{p}dhcp"), topo.sw.name(), "sw0", PROXY_IP);
    dhcp_cfg.placement = topo.dhcp_placement();
    if n > 150 {
        dhcp_cfg.pool = Pool::large();
        topo.px
            .ip(&["route", "add", "198.18.0.0/15", "dev", topo.l3_iface()])?;
    }
    if args.attack != Attack::None {
        // The site server serves the switches only: an attack on the
        // segment must measure the proxy, not starve the lab's DHCP pool.
        dhcp_cfg.clients = Some(
            (0..args.clients)
                .map(proxy_tests::emulator::identity::mac_for)
                .collect(),
        );
    }
    let _dhcp = DhcpServer::start(dhcp_cfg).await?;
    let (log, log_file) = daemon_log(&args)?;
    print_log_path(log_file.as_deref());
    let mut daemon = Daemon::start(
        &topo,
        &DaemonOptions {
            pnp_server: Some(format!("http://{PNP_IP}:{PNP_PORT}")),
            log,
            extra: clients_max_flag(n),
            ..DaemonOptions::default()
        },
    )?;
    if let Some(log) = daemon.take_log() {
        forward_log(log, bar.clone());
    }
    eprintln!(
        "smi-lab: proxy running in {} with XDP on {} (pid {:?})",
        topo.px.name(),
        topo.proxy_ifaces().join(", "),
        daemon.pid()
    );

    let pid = daemon.pid().context("daemon pid")?;
    // The idle footprint, not the start-up's: the daemon's allocator hands
    // the pages start-up freed (the eBPF object's parse) back after a
    // second, and a baseline taken before that hid clients' memory in it.
    tokio::time::sleep(figures::SETTLE).await;
    let at_start = figures::proc_sample(pid)?;
    let mut emu_cfg = EmulatorConfig::new(topo.sw.name(), "sw0", p, args.clients);
    emu_cfg.macvlan_mode = topo.macvlan_mode();
    emu_cfg.mode = mode;
    emu_cfg.boot_spread = Duration::from_millis(u64::from(args.clients).min(2000));
    let spread = emu_cfg.boot_spread;
    let mut emu = Emulator::start(emu_cfg).await?;
    eprintln!("smi-lab: {n} emulated switches booting ({mode:?} emulator)");
    let attacker = Attacker::start(args.attack, &topo)?;
    if attacker.is_some() {
        eprintln!("smi-lab: attack {} running", args.attack.name());
    }

    let started = Instant::now();
    bar.set_style(bar_style());
    bar.set_length(n as u64);
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.reset_elapsed();
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut stages = vec![Stage::Booting; n];
    let mut failed = vec![false; n];
    let mut reloaded = vec![false; n];
    let mut done_at: Vec<Option<Instant>> = vec![None; n];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let interrupted = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break true,
            () = tokio::time::sleep_until(deadline) => break false,
            _ = tick.tick() => {
                show_progress(&bar, &stages, stuck(&stages, &failed));
                if stages.iter().all(|s| *s == Stage::Done) {
                    break false;
                }
            }
            ev = emu.next_event() => {
                let Some(ev) = ev else { break false };
                let (sw, stage) = match &ev {
                    Event::Probed { switch, .. } => (*switch, Stage::Discovered),
                    // `show version` read again after the reload: the proxy learned the new version.
                    Event::OutputSent { switch, .. } if reloaded.get(*switch) == Some(&true) => (*switch, Stage::Done),
                    Event::TelnetDone { switch, .. } => (*switch, Stage::Identified),
                    Event::ConfigFetched { switch, url, .. } if !url.ends_with("client_cfg_pnp.txt") => (*switch, Stage::Upgrading),
                    Event::ImageInstalled { switch, .. } => (*switch, Stage::Upgrading),
                    Event::Reloaded { switch, .. } => {
                        if let Some(r) = reloaded.get_mut(*switch) {
                            *r = true;
                        }
                        (*switch, Stage::Upgrading)
                    }
                    Event::Failed { switch, what, error } => {
                        bar.suspend(|| eprintln!("switch {switch}: {what}: {error}"));
                        failed[*switch] = true;
                        continue;
                    }
                    _ => continue,
                };
                if let Some(s) = stages.get_mut(sw) {
                    *s = (*s).max(stage);
                }
                if stage == Stage::Done
                    && let Some(at) = done_at.get_mut(sw)
                {
                    at.get_or_insert_with(Instant::now);
                }
            }
        }
    };
    show_progress(&bar, &stages, stuck(&stages, &failed));
    bar.finish_and_clear();
    bar.set_draw_target(ProgressDrawTarget::hidden());
    eprintln!(
        "smi-lab: done {}/{n}; {}; {:.1} s",
        bar.position(),
        stage_counts(&stages, stuck(&stages, &failed)),
        started.elapsed().as_secs_f64()
    );
    let sent = match attacker {
        Some(a) => {
            tokio::time::sleep(a.min_remaining()).await;
            let sent = a.stop()?;
            eprintln!(
                "smi-lab: attack {}: {} {} in {:.1} s",
                args.attack.name(),
                sent.units,
                args.attack.unit(),
                sent.secs
            );
            sent
        }
        None => proxy_tests::attack::Sent::default(),
    };
    let elapsed = done_at
        .iter()
        .flatten()
        .max()
        .map_or_else(|| started.elapsed(), |last| *last - started);
    let done = stages.iter().filter(|s| **s == Stage::Done).count();
    let at_end = figures::proc_sample(pid)?;

    // The switches are done; let the proxy's last answers reach the server
    // (each switch's four jobs), so that what is shown below is final.
    if let Some(server) = &builtin {
        let responses = |s: &PnpServer| {
            s.entries()
                .iter()
                .filter(|e| matches!(e.received, proxy_tests::pnp_server::Received::Response(_)))
                .count()
        };
        let mut changed = server.subscribe();
        let settle = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(settle);
        while !interrupted && done == n && responses(server) < JOBS * n {
            tokio::select! {
                () = &mut settle => break,
                r = changed.changed() => if r.is_err() { break },
            }
        }
    }

    // The proxy's own view, as an operator reads it.
    for cmd in [
        &["vstack", "config"][..],
        &["vstack", "proxy-db"],
        &["vstack", "download-status"],
    ] {
        let text = lab::show(&topo, cmd).unwrap_or_else(|e| format!("{e:#}\n"));
        println!("\nlab# show {}", cmd.join(" "));
        print_head(&text, 25);
    }
    if let Ok(json) = lab::show(&topo, &["vstack", "download-status", "--json"]) {
        println!("{}", download_totals(&json));
    }
    if let Some(server) = &builtin {
        let responses = server
            .entries()
            .iter()
            .filter(|e| matches!(e.received, proxy_tests::pnp_server::Received::Response(_)))
            .count();
        println!(
            "\nPnP server: {} HELLOs, {responses} job responses received",
            server.hellos()
        );
    }
    // Per switch: from its boot (spread evenly from `started`) to done.
    let mut per_switch: Vec<f64> = done_at
        .iter()
        .enumerate()
        .filter_map(|(i, at)| {
            let boot = started + spread * i as u32 / n.max(1) as u32;
            Some(at.as_ref()?.saturating_duration_since(boot).as_secs_f64())
        })
        .collect();
    let (exchanges, turnaround) = builtin
        .as_ref()
        .map(|s| figures::pnp_timing(&s.entries()))
        .unwrap_or_default();
    let mut added: Vec<f64> = turnaround.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    // At rest: a fixed time after the last switch, not a synchronisation.
    let last_done = started + elapsed;
    tokio::time::sleep_until((last_done + figures::REST).into()).await;
    let at_rest = figures::proc_sample(pid)?;
    let fig = figures::LabFigures {
        clients: n,
        done,
        onboard_s: elapsed.as_secs_f64(),
        per_switch_p50_s: figures::quantile(&mut per_switch, 0.5),
        per_switch_p99_s: figures::quantile(&mut per_switch, 0.99),
        proxy_cpu_s: at_end.cpu_s - at_start.cpu_s,
        proxy_peak_rss_kib: at_end.hwm_kib,
        proxy_rss_start_kib: at_start.rss_kib,
        proxy_rss_end_kib: at_end.rss_kib,
        proxy_rss_rest_kib: at_rest.rss_kib,
        pnp_exchanges: exchanges,
        pnp_exchanges_per_s: exchanges as f64 / elapsed.as_secs_f64().max(1e-3),
        added_latency_p50_ms: figures::quantile(&mut added, 0.5),
        added_latency_p99_ms: figures::quantile(&mut added, 0.99),
        emulator: match mode {
            EmulatorMode::Netns => "netns",
            EmulatorMode::Packet => "packet",
        }
        .to_owned(),
        attack: args.attack.name().to_owned(),
        attack_units: sent.units,
        attack_secs: sent.secs,
    };
    println!(
        "\nper switch p50 {:.1} s, p99 {:.1} s; proxy CPU {:.1} s, RSS {} -> {} KiB, at rest {} KiB \
         (peak {} KiB, {:.2} KiB per client at rest); \
         {} PnP exchanges ({:.0}/s), proxy turnaround p50 {:.2} ms, p99 {:.2} ms",
        fig.per_switch_p50_s,
        fig.per_switch_p99_s,
        fig.proxy_cpu_s,
        fig.proxy_rss_start_kib,
        fig.proxy_rss_end_kib,
        fig.proxy_rss_rest_kib,
        fig.proxy_peak_rss_kib,
        fig.rss_per_client_kib(),
        fig.pnp_exchanges,
        fig.pnp_exchanges_per_s,
        fig.added_latency_p50_ms,
        fig.added_latency_p99_ms,
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&fig)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // What the switches ended with, checked on the switches themselves.
    let mut as_asked = true;
    if builtin.is_some() {
        let report = end_state::check(
            emu.switches(),
            &end_state::Expected {
                startup_config: SITE_CONFIG,
                image_tar: Some(IMAGE),
            },
        );
        println!("\n{report}");
        as_asked = report.all_as_asked();
    }
    println!("\nonboarded {done}/{n} in {:.1} s", elapsed.as_secs_f64());
    if let Some(drops) = emu.ring_drops() {
        println!("emulated network: {drops} frames dropped by the packet ring");
    }

    if args.keep && !interrupted {
        eprintln!(
            "smi-lab: --keep: the lab stays up ({}sw/{}px/{}pnp, control socket {}); Ctrl-C to tear it down",
            p,
            p,
            p,
            topo.control_socket().display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    emu.shutdown().await;
    daemon.stop()?;
    if let Some(mut child) = external {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(builtin);
    drop(server_rt);
    // The switch segment first: deleting its namespace removes every
    // switch's macvlan in one batch, after which the thousands of switch
    // namespaces are empty and go at once (deleted the other way round,
    // each takes the kernel's network lock for a while: minutes at 10,000).
    drop(topo);
    drop(emu);
    print_log_path(log_file.as_deref());
    Ok(done == n && as_asked && !interrupted)
}

/// Prints the first `lines` lines of `text` and how many were left out.
fn print_head(text: &str, lines: usize) {
    let all: Vec<&str> = text.lines().collect();
    for l in all.iter().take(lines) {
        println!("{l}");
    }
    if all.len() > lines {
        println!("... ({} more lines)", all.len() - lines);
    }
}

/// `totals: <n> jobs; image <status> <count>, ...; config ...` from
/// `show vstack download-status --json`.
fn download_totals(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return "totals: (unreadable download-status)".into();
    };
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    let count = |file: &str| {
        let mut by = std::collections::BTreeMap::<String, usize>::new();
        for e in &entries {
            let status = match &e[file]["status"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            *by.entry(status).or_default() += 1;
        }
        by.iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "totals: {} jobs; image: {}; config: {}",
        entries.len(),
        count("image"),
        count("config")
    )
}

/// The nice value of the built-in PnP server's thread. The proxy-added
/// latency is stamped on its clock, and at nice 0 it waited for a CPU
/// behind the emulated switches' threads, as a server on its own machine
/// does not (10,000 switches: turnaround p99 21 and 22 ms at 0; 13 to 17
/// ms in three runs of four at -10, 23 in the fourth).
const SERVER_NICE: i32 = -10;

/// The PnP server's runtime, shut down in the background when dropped, on
/// every path out of [`run`] (dropped the plain way inside the lab's own
/// runtime, it would panic).
struct ServerRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for ServerRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
