//! Fault tests of the lab: the full zero-touch run of `smi-lab`
//! (device-info, config-upgrade to startup, image-install with reload) for
//! N emulated switches, in network namespaces this test creates, while
//! something goes wrong:
//!
//! - `daemon_killed_repeatedly_mid_run`: the proxy daemon is killed with
//!   SIGKILL three times, at moments chosen by event counts ("after k
//!   switches reached stage s") from a seeded RNG, and restarted each time
//!   on the same state and pin directories;
//! - `pnp_server_gone_for_30s`: mid-run the PnP server closes its listening
//!   socket (connects are refused) for 30 s, then listens again on the same
//!   address;
//! - `hostile_traffic_during_run`: while the switches onboard, oversize SMI
//!   length words, garbage on TCP 4786 from unadmitted MACs and DHCP option
//!   overruns are put on the switch segment, and the PnP server answers
//!   three switches' first work-requests with XML bombs (billion laughs, an
//!   external entity, a deep, a wide and an oversize document).
//!
//! Each asserts that every switch finishes (upgraded once, reloaded once,
//! identified again after its reload) and what the fault must leave behind.
//! In the first two the PnP server keeps a job outstanding until its
//! work-response arrives and sends it again to a work-request meanwhile
//! ([`PnpServer::set_redeliver_unanswered`]), as a server that tracks its
//! jobs does: a job lost with a killed daemon or a swallowed response is not
//! lost, and "upgraded once" checks that the proxy does not install the
//! same image again.
//!
//! Environment:
//! - `SMI_FAULTS_SWITCHES`: N, default 40 (CI); e.g. 500 by hand:
//!   `SMI_FAULTS_SWITCHES=500 cargo test -p proxy-tests --test faults -- --test-threads=1`
//! - `SMI_FAULTS_SEED`: replays the kill points of a failed run (the seed is
//!   printed at the start of `daemon_killed_repeatedly_mid_run`).
//!
//! The tests find the daemon next to the test executable (see
//! [`lab::proxy_bin`]): `cargo build -p proxy --bin smi-proxy` first, in the
//! same target directory. Needs root. The tests take a process-wide lock, so
//! they never run two labs at once.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use proxy::pnp::codec::{BODY_CAP, DEPTH_CAP, ELEMENT_CAP};
use proxy_tests::dhcp_server::{DhcpServer, DhcpServerConfig, Pool};
use proxy_tests::emulator::{Emulator, EmulatorConfig, Event, SwitchConfig, SwitchHandle};
use proxy_tests::end_state;
use proxy_tests::frames::{self, Dhcp, L2};
use proxy_tests::lab::{self, Daemon, DaemonOptions, PNP_IP, PROXY_IP, Topology};
use proxy_tests::netns::{NetNs, RawSocket, require_root, unique_prefix};
use proxy_tests::pnp_server::{
    ApplyTo, DeviceInfoType, LogEntry, PnpServer, Received, Script, Step, Udi,
};
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use tokio::time::Instant;

/// The image every switch is given, and the version it runs afterwards.
const IMAGE: &str = "c2960-lanbasek9-tar.150-2.SE11.tar";
const NEW_VERSION: &str = "15.0(2)SE11";
const SITE_CONFIG: &str = "site.cfg";
/// What the PnP server installs as every switch's startup configuration.
const SITE_CONFIG_TEXT: &[u8] = b"hostname lab-switch\n!\nend\n";
const PNP_PORT: u16 = 8080;
/// How often the daemon is killed in `daemon_killed_repeatedly_mid_run`.
const KILLS: usize = 3;
/// How long the PnP server is gone in `pnp_server_gone_for_30s`.
const OUTAGE: Duration = Duration::from_secs(30);

/// One lab at a time: the machine is small and each lab is heavy.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// N: `SMI_FAULTS_SWITCHES`, default 40.
fn switch_count() -> u32 {
    match std::env::var("SMI_FAULTS_SWITCHES") {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 8)
            .unwrap_or_else(|| panic!("SMI_FAULTS_SWITCHES={v:?}: want a number >= 8")),
        Err(_) => 40,
    }
}

/// Time limit of a whole run of `n` switches (only reached on failure).
fn run_limit(n: u32) -> Duration {
    Duration::from_secs(300 + u64::from(n))
}

/// A switch's progress through the zero-touch run, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    #[default]
    Booting,
    /// Reverse telnet done: the proxy read its UDI.
    Identified,
    /// The PnP server's startup configuration reached it.
    Configured,
    /// The image was fetched and checked.
    ImageInstalled,
    /// It reloaded into the new image.
    Reloaded,
    /// `show version` read again after the reload: the proxy knows the new version.
    Done,
}

impl Stage {
    const MID_RUN: [Stage; 5] = [
        Stage::Identified,
        Stage::Configured,
        Stage::ImageInstalled,
        Stage::Reloaded,
        Stage::Done,
    ];
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Booting => "booting",
            Stage::Identified => "identified",
            Stage::Configured => "configured",
            Stage::ImageInstalled => "image installed",
            Stage::Reloaded => "reloaded",
            Stage::Done => "done",
        })
    }
}

/// What the emulator reported about one switch.
#[derive(Clone, Debug, Default)]
struct Progress {
    stage: Stage,
    telnets: u32,
    site_configs: u32,
    installs: u32,
    reloads: u32,
    failures: Vec<String>,
}

/// Every switch's progress, fed by emulator events.
struct Tracker {
    switches: Vec<Progress>,
}

impl Tracker {
    fn new(n: u32) -> Self {
        Self {
            switches: vec![Progress::default(); n as usize],
        }
    }

    fn apply(&mut self, event: &Event) {
        let Some(p) = self.switches.get_mut(event.switch()) else {
            return;
        };
        let reached = match event {
            Event::TelnetDone { .. } => {
                p.telnets += 1;
                Stage::Identified
            }
            Event::OutputSent { .. } if p.reloads > 0 => Stage::Done,
            Event::ConfigFetched { url, .. } if url.ends_with(SITE_CONFIG) => {
                p.site_configs += 1;
                Stage::Configured
            }
            Event::ImageInstalled { .. } => {
                p.installs += 1;
                Stage::ImageInstalled
            }
            Event::Reloaded { .. } => {
                p.reloads += 1;
                Stage::Reloaded
            }
            Event::Failed { what, error, .. } => {
                p.failures.push(format!("{what}: {error}"));
                return;
            }
            _ => return,
        };
        p.stage = p.stage.max(reached);
    }

    /// Switches at `stage` or beyond.
    fn reached(&self, stage: Stage) -> usize {
        self.switches.iter().filter(|p| p.stage >= stage).count()
    }

    fn done(&self) -> usize {
        self.reached(Stage::Done)
    }

    fn all_done(&self) -> bool {
        self.done() == self.switches.len()
    }

    /// One line: how many reached each stage.
    fn summary(&self) -> String {
        Stage::MID_RUN
            .iter()
            .map(|s| format!("{s} {}", self.reached(*s)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The switches that are not done, with what happened to them.
    fn laggards(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.switches.iter().enumerate() {
            if p.stage != Stage::Done {
                out.push_str(&format!(
                    "\n  switch {i}: {} (telnets {}, site configs {}, installs {}, reloads {}) failures {:?}",
                    p.stage, p.telnets, p.site_configs, p.installs, p.reloads, p.failures
                ));
            }
        }
        out
    }
}

/// No emulator event for this long while waiting: the run is stuck (the
/// proxy's own retries are shorter).
const QUIET: Duration = Duration::from_secs(120);

/// Feeds emulator events to the tracker until `until` holds; an error
/// describing where every switch is if the deadline passes or no switch
/// does anything for [`QUIET`].
async fn settle(
    emu: &mut Emulator,
    t: &mut Tracker,
    deadline: Instant,
    what: &str,
    until: impl Fn(&Tracker) -> bool,
) -> Result<(), String> {
    while !until(t) {
        let quiet_end = (Instant::now() + QUIET).min(deadline);
        match tokio::time::timeout_at(quiet_end, emu.next_event()).await {
            Ok(Some(event)) => t.apply(&event),
            Ok(None) => return Err(format!("the emulator stopped while waiting for {what}")),
            Err(_) => {
                let why = if quiet_end == deadline {
                    "timed out".to_owned()
                } else {
                    format!("no switch did anything for {QUIET:?}")
                };
                return Err(format!(
                    "{why} waiting for {what}: {}{}",
                    t.summary(),
                    t.laggards()
                ));
            }
        }
    }
    Ok(())
}

/// [`settle`], panicking on failure.
async fn drive(
    emu: &mut Emulator,
    t: &mut Tracker,
    deadline: Instant,
    what: &str,
    until: impl Fn(&Tracker) -> bool,
) {
    if let Err(e) = settle(emu, t, deadline, what, until).await {
        panic!("{e}");
    }
}

/// Feeds emulator events to the tracker for `period` (a fault that lasts
/// that long by definition).
/// Drives until a quarter of the switches are done, and checks that some
/// are not yet (`fault` names what must land mid-run).
async fn drive_to_mid_run(emu: &mut Emulator, t: &mut Tracker, deadline: Instant, fault: &str) {
    let n = t.switches.len();
    let quarter = (n / 4).max(1);
    drive(emu, t, deadline, "a quarter of the switches done", |t| {
        t.done() >= quarter
    })
    .await;
    assert!(t.done() < n, "{fault}: {}", t.summary());
}

async fn drive_for(emu: &mut Emulator, t: &mut Tracker, period: Duration) {
    let end = Instant::now() + period;
    loop {
        match tokio::time::timeout_at(end, emu.next_event()).await {
            Ok(Some(event)) => t.apply(&event),
            Ok(None) => panic!("the emulator stopped"),
            Err(_) => return,
        }
    }
}

/// The PnP server of `smi-lab`, in the lab's server namespace: device-info,
/// config-upgrade to startup, image-install (with reload), device-info image.
fn pnp_server(rt: &tokio::runtime::Runtime, topo: &Topology) -> PnpServer {
    let server = lab::pnp_server_in(rt, topo, PNP_PORT).expect("PnP server");
    let (image, md5) = proxy_tests::pnp_server::fake_image(256 * 1024);
    server.add_image(IMAGE, image);
    server.add_config(SITE_CONFIG, SITE_CONFIG_TEXT.to_vec());
    server.set_default_script(Script::new(vec![
        Step::DeviceInfo(DeviceInfoType::All),
        Step::ConfigUpgrade {
            apply_to: ApplyTo::Startup,
            file: SITE_CONFIG.into(),
            reload: false,
        },
        Step::ImageInstall {
            file: IMAGE.into(),
            md5: Some(md5),
        },
        Step::DeviceInfo(DeviceInfoType::Image),
    ]));
    server
}

fn daemon_options() -> DaemonOptions {
    DaemonOptions {
        pnp_server: Some(format!("http://{PNP_IP}:{PNP_PORT}")),
        ..DaemonOptions::default()
    }
}

/// The site DHCP server, with the large pool (and the proxy's route to it)
/// when the small one is too small for `n` switches.
async fn site_dhcp(topo: &Topology, n: u32) -> DhcpServer {
    let mut cfg = DhcpServerConfig::new(
        &format!("{}dhcp", topo.prefix),
        topo.sw.name(),
        "sw0",
        PROXY_IP,
    );
    if n >= Pool::test().size() {
        cfg.pool = Pool::large();
        topo.px
            .ip(&["route", "add", "198.18.0.0/15", "dev", "px0"])
            .expect("route to the large pool");
    }
    DhcpServer::start(cfg).await.expect("DHCP server")
}

/// `n` switches of the default mix, booting over `spread`.
async fn switches(topo: &Topology, n: u32, spread: Duration) -> Emulator {
    let mut cfg = EmulatorConfig::new(topo.sw.name(), "sw0", &topo.prefix, n);
    cfg.boot_spread = spread;
    Emulator::start(cfg).await.expect("emulator")
}

fn udi_of(sw: &SwitchConfig) -> Udi {
    format!("PID:{},VID:{},SN:{}", sw.pid, sw.vid, sw.sn)
        .parse()
        .expect("UDI of an emulated switch")
}

fn mac_text(mac: [u8; 6]) -> String {
    proxy::store::Mac(mac).to_string()
}

/// `show vstack proxy-db --json`.
fn proxy_db(topo: &Topology) -> serde_json::Value {
    let text = lab::show(topo, &["vstack", "proxy-db", "--json"]).expect("show proxy-db");
    serde_json::from_str(&text).expect("proxy-db JSON")
}

fn db_entries(db: &serde_json::Value) -> &[serde_json::Value] {
    db["entries"].as_array().map_or(&[], Vec::as_slice)
}

/// Every switch finished: running the new version, reloaded once, the
/// image installed once, the site configuration received, identified
/// again after the reload.
fn check_every_switch_finished(emu: &Emulator, t: &Tracker) -> Result<(), String> {
    let mut wrong = Vec::new();
    for sw in emu.switches() {
        let i = sw.position();
        let p = &t.switches[i];
        let (version, reloads) = (sw.version(), sw.reloads());
        if p.stage != Stage::Done
            || version != NEW_VERSION
            || reloads != 1
            || p.installs != 1
            || p.site_configs == 0
        {
            wrong.push(format!(
                "  switch {i} ({}): {}, version {version}, reloads {reloads}, image installs {}, site configs {}, failures {:?}",
                mac_text(sw.mac()),
                p.stage,
                p.installs,
                p.site_configs,
                p.failures
            ));
        }
    }
    // Where the user sees it: what each switch boots with next time.
    let end = end_state::check(
        emu.switches(),
        &end_state::Expected {
            startup_config: SITE_CONFIG_TEXT,
            image_tar: Some(IMAGE),
        },
    );
    if !end.all_as_asked() {
        wrong.push(format!("  {end}"));
    }
    if wrong.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} of {} switches did not finish exactly once (done = identified again after one reload into {NEW_VERSION}, one image install):\n{}",
        wrong.len(),
        emu.switches().len(),
        wrong.join("\n")
    ))
}

fn assert_every_switch_finished(emu: &Emulator, t: &Tracker) {
    if let Err(e) = check_every_switch_finished(emu, t) {
        panic!("{e}");
    }
}

/// The proxy database holds exactly the switches, each once, with its UDI.
async fn check_proxy_db_complete(topo: &Topology, emu: &Emulator) -> Result<(), String> {
    let n = emu.switches().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    let db = loop {
        let db = proxy_db(topo);
        let with_udi = db_entries(&db)
            .iter()
            .filter(|e| e["udi"].is_string())
            .count();
        if with_udi >= n || Instant::now() >= deadline {
            break db;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let entries = db_entries(&db);
    let mut by_mac: BTreeMap<&str, Vec<&serde_json::Value>> = BTreeMap::new();
    for e in entries {
        by_mac
            .entry(e["mac"].as_str().unwrap_or("?"))
            .or_default()
            .push(e);
    }
    let expected: BTreeSet<String> = emu.switches().iter().map(|s| mac_text(s.mac())).collect();
    let present: BTreeSet<String> = by_mac.keys().map(|m| (*m).to_owned()).collect();
    let lost: Vec<_> = expected.difference(&present).collect();
    let strangers: Vec<_> = present.difference(&expected).collect();
    let doubled: Vec<_> = by_mac.iter().filter(|(_, v)| v.len() > 1).collect();
    let mut wrong = Vec::new();
    if !lost.is_empty() || !strangers.is_empty() || !doubled.is_empty() || entries.len() != n {
        wrong.push(format!(
            "proxy-db: {} entries for {n} switches; lost {lost:?}, not switches {strangers:?}, duplicated {doubled:?}",
            entries.len()
        ));
    }
    for sw in emu.switches() {
        let Some(entry) = by_mac.get(mac_text(sw.mac()).as_str()).map(|v| v[0]) else {
            continue;
        };
        let udi = udi_of(sw.config()).to_string();
        if entry["udi"].as_str() != Some(udi.as_str()) {
            wrong.push(format!(
                "proxy-db: switch {} should have UDI {udi}: {entry}",
                sw.position()
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

async fn assert_proxy_db_complete(topo: &Topology, emu: &Emulator) {
    if let Err(e) = check_proxy_db_complete(topo, emu).await {
        panic!("{e}");
    }
}

/// The proxy's own view in one line: clients by state, download jobs by
/// image status.
fn proxy_view(topo: &Topology) -> String {
    let mut states = BTreeMap::<String, usize>::new();
    for e in db_entries(&proxy_db(topo)) {
        *states
            .entry(e["state"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let mut images = BTreeMap::<String, usize>::new();
    if let Ok(text) = lab::show(topo, &["vstack", "download-status", "--json"])
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
    {
        for e in v["entries"].as_array().map_or(&[][..], Vec::as_slice) {
            *images
                .entry(e["image"]["status"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
    }
    format!("proxy-db states {states:?}, image jobs {images:?}")
}

/// The sum of every sample of a metric family, or `None` if the exposition
/// has no sample of it.
fn family_sum(text: &str, family: &str) -> Option<u64> {
    let samples: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            let value = if rest.starts_with('{') {
                rest.rsplit_once('}')?.1
            } else if rest.starts_with(' ') {
                rest
            } else {
                return None;
            };
            value.trim().parse().ok()
        })
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

fn xdp(counter: &str) -> String {
    format!("smi_proxy_xdp_frames_total{{counter=\"{counter}\"}}")
}

/// Polls `/metrics` until `sample` is at least `want`; returns its value.
async fn metric_at_least(topo: &Topology, sample: &str, want: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let text = lab::metrics(topo).expect("metrics");
        let got = lab::metric(&text, sample).unwrap_or(0);
        if got >= want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} stayed at {got}, expected at least {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon process exists and is not a zombie; returns its peak RSS in KiB.
fn daemon_alive(daemon: &Daemon) -> u64 {
    let pid = daemon.pid().expect("daemon pid");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("daemon /proc entry");
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?");
    assert!(state != "Z" && state != "X", "daemon {pid} is dead: {stat}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// No namespace of this lab is left.
fn assert_namespaces_gone(prefix: &str) {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert!(
        !std::path::Path::new(&format!("/sys/fs/bpf/{prefix}")).exists(),
        "pin directory left behind"
    );
}

/// A kill point: after `at` switches reached `stage`.
#[derive(Clone, Copy, Debug)]
struct KillPoint {
    stage: Stage,
    at: usize,
}

/// A stage most switches have not reached, and a count between now and
/// halfway to the last-but-one switch: the run is never over when it hits.
fn pick_kill_point(rng: &mut rand::rngs::StdRng, t: &Tracker) -> Option<KillPoint> {
    let n = t.switches.len();
    let open: Vec<Stage> = Stage::MID_RUN
        .iter()
        .copied()
        .filter(|s| t.reached(*s) + 1 < n)
        .collect();
    if open.is_empty() {
        return None;
    }
    let stage = open[rng.random_range(0..open.len())];
    let now = t.reached(stage);
    let room = (n - 1 - now).div_ceil(2);
    Some(KillPoint {
        stage,
        at: now + rng.random_range(1..=room),
    })
}

#[test]
fn daemon_killed_repeatedly_mid_run() {
    require_root();
    let _one_lab = serial();
    let n = switch_count();
    let seed = std::env::var("SMI_FAULTS_SEED")
        .ok()
        .map(|s| s.trim().parse().expect("SMI_FAULTS_SEED: a u64"))
        .unwrap_or_else(rand::random::<u64>);
    eprintln!(
        "daemon_killed_repeatedly_mid_run: {n} switches, seed {seed} (SMI_FAULTS_SEED={seed} replays it)"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let p = unique_prefix("smf");
    let topo = Topology::build(&p).expect("topology");
    let rt = lab::test_runtime();
    let server = pnp_server(&rt, &topo);
    // A job the killed daemon never answered is sent again to the next
    // one: the proxy must not install an image twice.
    server.set_redeliver_unanswered(true);
    let opts = daemon_options();
    rt.block_on(async {
        let mut daemon = Daemon::start(&topo, &opts).expect("daemon");
        let _dhcp = site_dhcp(&topo, n).await;
        // Boots spread over a while: every kill finds switches at every stage.
        let spread = Duration::from_millis(500 * u64::from(n)).min(Duration::from_secs(60));
        let mut emu = switches(&topo, n, spread).await;
        let deadline = Instant::now() + run_limit(n) + spread;
        let mut t = Tracker::new(n);
        let mut problems = Vec::new();
        let mut kills = Vec::new();
        for kill in 1..=KILLS {
            let Some(point) = pick_kill_point(&mut rng, &t) else {
                problems.push(format!(
                    "the run ended before kill {kill}: {}",
                    t.summary()
                ));
                break;
            };
            let what = format!("kill point {kill}: {} switches {}", point.at, point.stage);
            if let Err(e) = settle(&mut emu, &mut t, deadline, &what, |t| {
                t.reached(point.stage) >= point.at
            })
            .await
            {
                problems.push(e);
                break;
            }
            eprintln!(
                "kill {kill}: SIGKILL after {} switches {} ({})",
                point.at,
                point.stage,
                t.summary()
            );
            daemon.kill9().expect("kill -9");
            daemon = Daemon::start(&topo, &opts).expect("restart on the same state and pins");
            kills.push((point, t.done()));
        }
        if problems.is_empty()
            && let Err(e) = settle(
                &mut emu,
                &mut t,
                deadline,
                "every switch done",
                Tracker::all_done,
            )
            .await
        {
            problems.push(e);
        }
        if let Err(e) = check_every_switch_finished(&emu, &t) {
            problems.push(e);
        }
        if let Err(e) = check_proxy_db_complete(&topo, &emu).await {
            problems.push(e);
        }
        let view = proxy_view(&topo);
        eprintln!(
            "daemon_killed_repeatedly_mid_run: {} kills {kills:?}; {}; {view}; PnP server: {} HELLOs, {} jobs sent again",
            kills.len(),
            t.summary(),
            server.hellos(),
            server.redelivered()
        );
        assert!(
            problems.is_empty(),
            "daemon_killed_repeatedly_mid_run (seed {seed}, kills {kills:?}):\n{}\n{view}",
            problems.join("\n")
        );
        assert!(
            kills.iter().all(|(_, done)| *done < n as usize),
            "every kill hit a run in progress: {kills:?}"
        );
        emu.shutdown().await;
        drop(emu);
        daemon.stop().expect("clean stop");
    });
    drop(server);
    drop(rt);
    drop(topo);
    assert_namespaces_gone(&p);
}

/// Entries of the proxy database with a UDI, by state token.
fn states_of_identified(db: &serde_json::Value) -> BTreeMap<String, usize> {
    let mut states = BTreeMap::new();
    for e in db_entries(db).iter().filter(|e| e["udi"].is_string()) {
        *states
            .entry(e["state"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    states
}

#[test]
fn pnp_server_gone_for_30s() {
    require_root();
    let _one_lab = serial();
    let n = switch_count();
    let p = unique_prefix("smo");
    let topo = Topology::build(&p).expect("topology");
    let rt = lab::test_runtime();
    let server = pnp_server(&rt, &topo);
    // A job whose answer the outage swallowed is sent again afterwards.
    server.set_redeliver_unanswered(true);
    let pnp_addr = SocketAddr::from((PNP_IP, PNP_PORT));
    rt.block_on(async {
        let daemon = Daemon::start(&topo, &daemon_options()).expect("daemon");
        let _dhcp = site_dhcp(&topo, n).await;
        // Boots spread over a while, so that the outage starts mid-run.
        let spread = Duration::from_millis(250 * u64::from(n)).min(Duration::from_secs(30));
        let mut emu = switches(&topo, n, spread).await;
        let deadline = Instant::now() + run_limit(n) + OUTAGE;
        let mut t = Tracker::new(n);
        drive_to_mid_run(&mut emu, &mut t, deadline, "the outage must start mid-run").await;

        let before = lab::metrics(&topo).expect("metrics");
        let errors_before = family_sum(&before, "smi_proxy_pnp_errors_total");
        let connect_before = lab::metric(&before, "smi_proxy_pnp_errors_total{reason=\"connect\"}");
        assert!(server.stop_listening().await, "the server was listening");
        let logged_at_stop = server.entries().len();
        let hellos_at_stop = server.hellos();
        eprintln!(
            "pnp_server_gone_for_30s: PnP server down for {OUTAGE:?} at {}",
            t.summary()
        );
        // The outage is real: from the proxy's namespace, connects are refused.
        {
            let _in_px = topo.px.enter().expect("enter the proxy namespace");
            let refused = std::net::TcpStream::connect_timeout(&pnp_addr, Duration::from_secs(2))
                .expect_err("nothing listens on the PnP address");
            assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        drive_for(&mut emu, &mut t, OUTAGE).await;
        let during = lab::metrics(&topo).expect("metrics");
        let db_during = proxy_db(&topo);
        assert_eq!(
            server.entries().len(),
            logged_at_stop,
            "nothing reached the server while it was gone"
        );
        {
            let _in_pnp = topo.pnp.enter().expect("enter the PnP namespace");
            server.listen_again().expect("the same address again");
        }
        eprintln!(
            "pnp_server_gone_for_30s: PnP server back at {} (done {})",
            t.summary(),
            t.done()
        );

        // The proxy saw the outage: clients identified meanwhile have an
        // agent but never reached the server (NO STATE, not HELLO) ...
        let states = states_of_identified(&db_during);
        assert!(
            states.get("no-state").copied().unwrap_or(0) >= 1,
            "a client identified during the outage sits in no-state: {states:?}"
        );
        // ... and its PnP error counters rose, where it has them.
        let errors_after = family_sum(&during, "smi_proxy_pnp_errors_total");
        let connect_after = lab::metric(&during, "smi_proxy_pnp_errors_total{reason=\"connect\"}");
        match (errors_before, errors_after) {
            (Some(before), Some(after)) => {
                assert!(
                    after > before && connect_after > connect_before,
                    "PnP transport errors rose during the outage: {before} -> {after}, connect {connect_before:?} -> {connect_after:?}"
                );
                eprintln!(
                    "pnp_server_gone_for_30s: PnP errors {before} -> {after} (connect {connect_before:?} -> {connect_after:?}); identified clients by state at the end of the outage {states:?}"
                );
            }
            _ => eprintln!(
                "pnp_server_gone_for_30s: no smi_proxy_pnp_errors_total on /metrics, checked the proxy database only: {states:?}"
            ),
        }

        let mut problems = Vec::new();
        if let Err(e) = settle(
            &mut emu,
            &mut t,
            deadline,
            "every switch done after the outage",
            Tracker::all_done,
        )
        .await
        {
            problems.push(e);
        }
        if server.hellos() <= hellos_at_stop {
            problems.push("no agent said HELLO again after the outage".to_owned());
        }
        if let Err(e) = check_every_switch_finished(&emu, &t) {
            problems.push(e);
        }
        if let Err(e) = check_proxy_db_complete(&topo, &emu).await {
            problems.push(e);
        }
        let after = states_of_identified(&proxy_db(&topo));
        if after.contains_key("no-state") {
            problems.push(format!(
                "identified clients still in no-state after the outage: {after:?}"
            ));
        }
        let view = proxy_view(&topo);
        eprintln!(
            "pnp_server_gone_for_30s: {}; {view}; PnP server: {} HELLOs, {} jobs sent again",
            t.summary(),
            server.hellos(),
            server.redelivered()
        );
        assert!(
            problems.is_empty(),
            "pnp_server_gone_for_30s:\n{}\n{view}",
            problems.join("\n")
        );
        emu.shutdown().await;
        drop(emu);
        daemon.stop().expect("clean stop");
    });
    drop(server);
    drop(rt);
    drop(topo);
    assert_namespaces_gone(&p);
}

/// Billion laughs: ten levels of ten references, 10^9 "lol"s if expanded.
fn billion_laughs(udi: &Udi) -> String {
    let mut dtd = String::from("<!ENTITY lol0 \"lol\">\n");
    for level in 1..=9 {
        dtd.push_str(&format!(
            "<!ENTITY lol{level} \"{}\">\n",
            format!("&lol{};", level - 1).repeat(10)
        ));
    }
    format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE pnp [\n{dtd}]>\n\
         <pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{udi}\">\
         <request xmlns=\"urn:cisco:pnp:device-info\" correlator=\"&lol9;\">\
         <deviceInfo type=\"all\"/></request></pnp>"
    )
}

/// An external entity naming a local file.
fn external_entity(udi: &Udi) -> String {
    format!(
        "<?xml version=\"1.0\"?><!DOCTYPE pnp [<!ENTITY xxe SYSTEM \"file:///etc/shadow\">]>\
         <pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\" udi=\"{udi}\">\
         <request xmlns=\"urn:cisco:pnp:device-info\" correlator=\"&xxe;\">\
         <deviceInfo type=\"all\"/></request></pnp>"
    )
}

/// Elements nested far deeper than the codec's cap (under the body cap).
fn deep_document() -> String {
    let depth = 100_000;
    format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\">{}{}</pnp>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    )
}

/// Far more elements than the codec's cap (under the body cap).
fn wide_document() -> String {
    format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\"><info xmlns=\"urn:cisco:pnp:work-info\" correlator=\"w\">{}<bye/></info></pnp>",
        "<x/>".repeat(ELEMENT_CAP * 20)
    )
}

/// A document four times the body cap.
fn huge_document() -> String {
    format!(
        "<pnp xmlns=\"urn:cisco:pnp\" version=\"1.0\"><request xmlns=\"urn:cisco:pnp:device-info\" correlator=\"{}\"><deviceInfo type=\"all\"/></request></pnp>",
        "A".repeat(4 * BODY_CAP)
    )
}

/// The faults the agent of `udi` posted.
fn faults(server: &PnpServer, udi: &Udi) -> Vec<String> {
    server
        .log(udi)
        .into_iter()
        .filter_map(|e| match e.received {
            Received::Fault(f) => Some(f.string),
            _ => None,
        })
        .collect()
}

fn work_requests(log: &[LogEntry]) -> usize {
    log.iter().filter(|e| e.work_request().is_some()).count()
}

/// The MAC of `iface` in namespace `ns`.
/// A locally administered unicast MAC nobody uses.
fn stranger_mac(rng: &mut impl rand::Rng) -> [u8; 6] {
    let mut mac = [0u8; 6];
    rng.fill_bytes(&mut mac);
    mac[0] = 0x02;
    mac[1] = 0x66;
    mac
}

/// The kernel table's state of `mac` (`smi-proxy clients --json`).
fn kernel_state(topo: &Topology, mac: [u8; 6]) -> Option<String> {
    let out = std::process::Command::new(lab::proxy_bin().expect("binary"))
        .args(["clients", "--json", "--pin-dir"])
        .arg(&topo.pin_dir)
        .output()
        .expect("smi-proxy clients");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("clients JSON");
    rows.as_array()?
        .iter()
        .find(|r| {
            r["mac"]
                .as_str()
                .and_then(|m| m.parse::<proxy::store::Mac>().ok())
                == Some(proxy::store::Mac(mac))
        })
        .and_then(|r| r["state"].as_str().map(str::to_owned))
}

/// Frames put on the switch segment (AF_PACKET on sw0, toward px0's XDP).
struct Injector {
    raw: RawSocket,
    proxy_mac: [u8; 6],
}

impl Injector {
    fn open(topo: &Topology) -> Self {
        let raw = {
            let _in_sw = topo.sw.enter().expect("enter the switch segment");
            RawSocket::open("sw0").expect("AF_PACKET on sw0")
        };
        Self {
            raw,
            proxy_mac: topo.px.link_mac("px0").expect("px0 MAC"),
        }
    }

    /// A TCP segment to the director's 4786 from `src` (MAC, address).
    fn smi_segment(&self, src: [u8; 6], ip: [u8; 4], sport: u16, payload: &[u8]) {
        let l2 = L2 {
            dst: self.proxy_mac,
            src,
            tags: Vec::new(),
        };
        let frame = frames::ipv4(
            &l2,
            ip,
            PROXY_IP.octets(),
            6,
            &[],
            &frames::tcp(sport, 4786, 0x18, payload),
        );
        self.raw.send(&frame).expect("send SMI segment");
    }

    /// A DHCP DISCOVER from `chaddr`.
    fn discover(&self, chaddr: [u8; 6], xid: u32) {
        let msg = Dhcp::cisco_client(chaddr, xid, frames::msg::DISCOVER);
        let frame = msg.frame(&L2::broadcast(chaddr), [0; 4]);
        self.raw.send(&frame).expect("send DISCOVER");
    }

    /// A TFTP read request for `path` to the proxy from `src` (MAC, address).
    fn tftp_rrq(&self, src: [u8; 6], ip: [u8; 4], path: &str) {
        let l2 = L2 {
            dst: self.proxy_mac,
            src,
            tags: Vec::new(),
        };
        let mut rrq = vec![0, 1];
        rrq.extend_from_slice(path.as_bytes());
        rrq.extend_from_slice(b"\0octet\0");
        let frame = frames::ipv4(
            &l2,
            ip,
            PROXY_IP.octets(),
            17,
            &[],
            &frames::udp(40_069, 69, &rrq),
        );
        self.raw.send(&frame).expect("send RRQ");
    }

    /// A DHCP client frame from `chaddr` whose options end in `tail`
    /// instead of END.
    fn dhcp_overrun(&self, chaddr: [u8; 6], xid: u32, tail: Vec<u8>) {
        let mut msg = Dhcp::cisco_client(chaddr, xid, frames::msg::DISCOVER);
        msg.raw_tail = Some(tail);
        let frame = msg.frame(&L2::broadcast(chaddr), [0; 4]);
        self.raw.send(&frame).expect("send DHCP frame");
    }
}

#[test]
fn hostile_traffic_during_run() {
    require_root();
    let _one_lab = serial();
    let n = switch_count();
    let p = unique_prefix("smx");
    let topo = Topology::build(&p).expect("topology");
    let rt = lab::test_runtime();
    let server = pnp_server(&rt, &topo);
    // Three switches meet a hostile server first: it behaves afterwards.
    let bombed: Vec<(usize, Udi)> = [0u32, 1, 2]
        .iter()
        .map(|i| (*i as usize, udi_of(&SwitchConfig::numbered(*i))))
        .collect();
    let (laughs, deep, huge) = (&bombed[0].1, &bombed[1].1, &bombed[2].1);
    server.push_raw_answer(laughs, billion_laughs(laughs));
    server.push_raw_answer(laughs, external_entity(laughs));
    server.push_raw_answer(deep, deep_document());
    server.push_raw_answer(deep, wide_document());
    server.push_raw_answer(huge, huge_document());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    rt.block_on(async {
        let daemon = Daemon::start(&topo, &daemon_options()).expect("daemon");
        let _dhcp = site_dhcp(&topo, n).await;
        let spread = Duration::from_millis(200 * u64::from(n)).min(Duration::from_secs(30));
        let mut emu = switches(&topo, n, spread).await;
        let deadline = Instant::now() + run_limit(n);
        let mut t = Tracker::new(n);
        drive_to_mid_run(&mut emu, &mut t, deadline, "the hostile traffic must come mid-run").await;
        // A switch that is done is admitted in the kernel: its MAC and
        // address carry the oversize length words.
        let admitted: SwitchHandle = emu
            .switches()
            .iter()
            .find(|s| t.switches[s.position()].stage == Stage::Done)
            .expect("a done switch")
            .clone();
        let admitted_ip = admitted.ip().expect("address of a done switch");
        let deadline_admitted = Instant::now() + Duration::from_secs(30);
        while kernel_state(&topo, admitted.mac()).as_deref() != Some("admitted") {
            assert!(
                Instant::now() < deadline_admitted,
                "switch {} never admitted: {:?}",
                admitted.position(),
                kernel_state(&topo, admitted.mac())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "hostile_traffic_during_run: injecting at {} (not done: {})",
            t.summary(),
            n as usize - t.done()
        );
        let m0 = lab::metrics(&topo).expect("metrics");
        let base = |c: &str| lab::metric(&m0, &xdp(c)).unwrap_or(0);
        let (oversize0, stranger0, malformed0) = (
            base("smi_drop_oversize"),
            base("smi_drop_not_admitted"),
            base("dhcp_malformed_pass"),
        );
        let inbound_malformed0 =
            lab::metric(&m0, "smi_proxy_smi_inbound_total{event=\"malformed\"}").unwrap_or(0);
        let inject = Injector::open(&topo);
        const BURST: u64 = 32;

        // 1. Oversize SMI length words from an admitted client: raw
        //    segments, then one over a real connection.
        for i in 0..BURST {
            let mut smi = frames::smi_header(1 + (i % 4) as u32, 0, 3, 0x7fff_ff00 + i as u32);
            smi.extend_from_slice(&[0; 8]);
            inject.smi_segment(admitted.mac(), admitted_ip.octets(), 40_000 + i as u16, &smi);
        }
        let mut oversize = frames::smi_header(4, 0, 3, 0x7fff_ffff);
        oversize.extend_from_slice(&[0; 8]);
        let ex = admitted
            .connect_smi_to(PROXY_IP, &oversize)
            .await
            .expect("oversize over TCP");
        assert!(ex.reply.is_empty(), "no answer to an oversize header: {ex:?}");
        metric_at_least(
            &topo,
            &xdp("smi_drop_oversize"),
            oversize0 + BURST + 1,
            Duration::from_secs(10),
        )
        .await;

        // 2. Garbage on TCP 4786 from MACs the proxy never admitted: raw
        //    segments, and a host of its own with a static address.
        let mut strangers = Vec::new();
        for i in 0..BURST {
            let mac = stranger_mac(&mut rng);
            strangers.push(mac);
            let mut garbage = vec![0u8; rng.random_range(1..=512)];
            rng.fill_bytes(&mut garbage);
            if i % 2 == 0 {
                // Looks like an SMI header with a huge length word.
                garbage.splice(0..0, frames::smi_header(2, 1, 7, u32::MAX));
            }
            inject.smi_segment(mac, [192, 0, 2, 240], 50_000 + i as u16, &garbage);
        }
        let stranger = NetNs::new(&format!("{p}x")).expect("stranger namespace");
        let stranger_link_mac = stranger_mac(&mut rng);
        topo.sw
            .ip(&[
                "link",
                "add",
                "mvx",
                "link",
                "sw0",
                "address",
                &stranger_link_mac
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
                "type",
                "macvlan",
                "mode",
                "bridge",
            ])
            .expect("stranger macvlan");
        topo.sw
            .ip(&["link", "set", "mvx", "netns", stranger.name()])
            .expect("move the macvlan");
        stranger
            .ip(&["addr", "add", "192.0.2.241/24", "dev", "mvx"])
            .expect("stranger address");
        stranger.ip(&["link", "set", "mvx", "up"]).expect("up");
        let attempt = proxy_tests::emulator::net::tcp_connect_in(
            stranger.name(),
            SocketAddr::from((PROXY_IP, 4786)),
            Duration::from_secs(2),
        )
        .await;
        assert!(
            attempt.is_err(),
            "an unadmitted host reached the director's 4786"
        );
        let telnet0 = base("telnet_drop_not_admitted");
        let attempt = proxy_tests::emulator::net::tcp_connect_in(
            stranger.name(),
            SocketAddr::from((PROXY_IP, 19140)),
            Duration::from_secs(2),
        )
        .await;
        assert!(
            attempt.is_err(),
            "an unadmitted host reached the reverse-telnet port"
        );
        metric_at_least(
            &topo,
            &xdp("telnet_drop_not_admitted"),
            telnet0 + 1,
            Duration::from_secs(10),
        )
        .await;
        metric_at_least(
            &topo,
            &xdp("smi_drop_not_admitted"),
            stranger0 + BURST + 1,
            Duration::from_secs(10),
        )
        .await;
        drop(stranger);

        // 3. DHCP option overruns: a length byte past the end of the frame,
        //    options that run off the end without END, a truncated option.
        for i in 0..BURST {
            let mac = stranger_mac(&mut rng);
            strangers.push(mac);
            let tail = match i % 3 {
                0 => vec![61, 200, 1, 2, 3],
                1 => vec![43, 4, 1, 2, 3, 4, 60, 5, b'c', b'i', b's', b'c', b'o'],
                _ => vec![12],
            };
            inject.dhcp_overrun(mac, 0x0bad_0000 + i as u32, tail);
        }
        metric_at_least(
            &topo,
            &xdp("dhcp_malformed_pass"),
            malformed0 + BURST,
            Duration::from_secs(10),
        )
        .await;

        // 4. Garbage over a real connection from an admitted client: the
        //    listener refuses it.
        let ex = admitted
            .connect_smi_to(PROXY_IP, b"GET / HTTP/1.0\r\n\r\nxxxxxxxx")
            .await
            .expect("garbage over TCP");
        assert!(ex.reply.is_empty(), "garbage is not answered: {ex:?}");
        metric_at_least(
            &topo,
            "smi_proxy_smi_inbound_total{event=\"malformed\"}",
            inbound_malformed0 + 1,
            Duration::from_secs(10),
        )
        .await;

        // 5. TFTP: guessed paths from an admitted client are refused (the
        //    proxy serves only what it staged); requests from unknown MACs
        //    are dropped in XDP.
        let refused0 = lab::metric(&m0, "smi_proxy_tftp_transfers_total{outcome=\"refused\"}")
            .unwrap_or(0);
        for guess in ["client_cfg_pnp.txt", "0000000000000000/client_cfg_pnp.txt", "../etc/passwd"] {
            let got = proxy_tests::tftp_client::fetch_url(
                Some(admitted.netns().expect("namespace mode")),
                &format!("tftp://{PROXY_IP}/{guess}"),
                &proxy_tests::tftp_client::TftpOptions::default(),
            )
            .await;
            assert!(got.is_err(), "{guess} was served: {got:?}");
        }
        metric_at_least(
            &topo,
            "smi_proxy_tftp_transfers_total{outcome=\"refused\"}",
            refused0 + 3,
            Duration::from_secs(10),
        )
        .await;
        let tftp0 = base("tftp_drop_not_admitted");
        for i in 0..BURST {
            let mac = stranger_mac(&mut rng);
            strangers.push(mac);
            inject.tftp_rrq(mac, [192, 0, 2, 242], &format!("{i:016x}/x.cfg"));
        }
        metric_at_least(
            &topo,
            &xdp("tftp_drop_not_admitted"),
            tftp0 + BURST,
            Duration::from_secs(10),
        )
        .await;

        // 6. Reverse telnet from an admitted client no identification waits
        //    for: closed at once, counted.
        let unexpected0 = lab::metric(&m0, "smi_proxy_telnet_refused_total{reason=\"unexpected\"}")
            .unwrap_or(0);
        let s = proxy_tests::emulator::net::tcp_connect_in(
            admitted.netns().expect("namespace mode"),
            SocketAddr::from((PROXY_IP, 19140)),
            Duration::from_secs(2),
        )
        .await
        .expect("an admitted client reaches 19140");
        drop(s);
        metric_at_least(
            &topo,
            "smi_proxy_telnet_refused_total{reason=\"unexpected\"}",
            unexpected0 + 1,
            Duration::from_secs(10),
        )
        .await;

        // 7. A DHCP DISCOVER flood from random MACs, more than the
        //    unidentified bound: memory stays bounded, nothing reaches the
        //    database, the admitted switches stay admitted (admission is
        //    the daemon's own map, which the flood cannot evict).
        let flood = u32::try_from(proxy::logic::clients::PENDING_MAX).unwrap_or(u32::MAX) + 4_096;
        let flood_started = std::time::Instant::now();
        for i in 0..flood {
            inject.discover(stranger_mac(&mut rng), 0xf100_0000 + i);
        }
        eprintln!(
            "hostile_traffic_during_run: {flood} DISCOVERs from random MACs in {:.2} s",
            flood_started.elapsed().as_secs_f64()
        );
        assert_eq!(
            kernel_state(&topo, admitted.mac()).as_deref(),
            Some("admitted"),
            "the flood did not unadmit a switch"
        );

        drive(
            &mut emu,
            &mut t,
            deadline,
            "every switch done despite the hostile traffic",
            Tracker::all_done,
        )
        .await;
        let m_flood = lab::metrics(&topo).expect("metrics");
        let pending = lab::metric(&m_flood, "smi_proxy_unidentified_clients").unwrap_or(0);
        assert!(
            pending <= proxy::logic::clients::PENDING_MAX as u64,
            "unidentified clients {pending} over the bound"
        );
        assert_every_switch_finished(&emu, &t);
        assert_proxy_db_complete(&topo, &emu).await;
        // None of the strangers became a client.
        let db = proxy_db(&topo);
        for mac in &strangers {
            let text = mac_text(*mac);
            assert!(
                !db_entries(&db).iter().any(|e| e["mac"] == text.as_str()),
                "stranger {text} is in the proxy database"
            );
            assert_eq!(
                kernel_state(&topo, *mac),
                None,
                "stranger {text} is in the kernel table"
            );
        }

        // The XML bombs were refused, answered with faults, and the agents
        // carried on: every bombed switch finished above.
        for (i, udi) in &bombed {
            assert_eq!(server.raw_answers_left(udi), 0, "switch {i} got every bomb");
        }
        let laughs_faults = faults(&server, laughs);
        assert!(
            laughs_faults.len() >= 2
                && laughs_faults.iter().all(|f| f.contains("DOCTYPE")),
            "billion laughs and the external entity refused as DTDs: {laughs_faults:?}"
        );
        let deep_faults = faults(&server, deep);
        assert!(
            deep_faults.len() >= 2
                && deep_faults[0].contains(&format!("deeper than {DEPTH_CAP}"))
                && deep_faults[1].contains(&format!("more than {ELEMENT_CAP} elements")),
            "deep and wide documents refused: {deep_faults:?}"
        );
        // The oversize answer is not read past the cap: no fault (nothing
        // was parsed), the agent asked again.
        let huge_log = server.log(huge);
        assert!(
            faults(&server, huge).is_empty() && work_requests(&huge_log) >= 2,
            "oversize answer dropped at the cap and the work-request repeated: {:?}",
            huge_log.iter().map(|e| e.received.to_string()).collect::<Vec<_>>()
        );
        let m1 = lab::metrics(&topo).expect("metrics");
        if let Some(errors) = family_sum(&m1, "smi_proxy_pnp_errors_total") {
            let malformed = lab::metric(&m1, "smi_proxy_pnp_errors_total{reason=\"malformed_xml\"}");
            let body = lab::metric(&m1, "smi_proxy_pnp_errors_total{reason=\"body\"}");
            eprintln!(
                "hostile_traffic_during_run: PnP errors {errors} (malformed_xml {malformed:?}, body {body:?})"
            );
            assert!(
                malformed >= Some(4) && body >= Some(1),
                "the refused XML is counted: malformed_xml {malformed:?}, body {body:?}"
            );
        }

        // The daemon lived through it, without expanding anything.
        let peak_kib = daemon_alive(&daemon);
        eprintln!(
            "hostile_traffic_during_run: daemon peak RSS {} MiB; XDP drops: oversize +{}, not admitted +{}, DHCP malformed +{}",
            peak_kib / 1024,
            lab::metric(&m1, &xdp("smi_drop_oversize")).unwrap_or(0) - oversize0,
            lab::metric(&m1, &xdp("smi_drop_not_admitted")).unwrap_or(0) - stranger0,
            lab::metric(&m1, &xdp("dhcp_malformed_pass")).unwrap_or(0) - malformed0,
        );
        assert!(
            peak_kib < 512 * 1024,
            "daemon peak RSS {peak_kib} KiB: something was expanded"
        );
        lab::show(&topo, &["vstack", "config"]).expect("the control socket still answers");
        emu.shutdown().await;
        drop(emu);
        daemon.stop().expect("clean stop: the daemon survived");
    });
    drop(server);
    drop(rt);
    drop(topo);
    assert_namespaces_gone(&p);
}
