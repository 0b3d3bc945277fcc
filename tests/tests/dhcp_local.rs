//! The proxy's local DHCP server (`[dhcp_localserver]`) end to end, in
//! network namespaces this test creates, with the real daemon and its XDP
//! program on `px0`:
//!
//! - alone on the segment, it gives the emulated switches addresses from
//!   its pool with option 150 = the proxy and their host names, the proxy
//!   then onboards them, and the leases survive a daemon restart;
//! - beside the site DHCP server, it stays silent.
//!
//! The replies are watched on `sw0` (the switches' side of the link) with
//! AF_PACKET sockets opened before the first DISCOVER. Needs root; run with
//! `--test-threads=1`.
use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable as _, Decoder};
use proxy_tests::dhcp_server::{DhcpServer, DhcpServerConfig};
use proxy_tests::emulator::net::{PacketSocket, in_netns, udp_payload};
use proxy_tests::emulator::{DhcpTiming, Emulator, EmulatorConfig, Event, Lease, SwitchConfig};
use proxy_tests::lab::{self, DHCP_IP, PROXY_IP, Topology};
use proxy_tests::netns::{require_root, unique_prefix};

const POOL_START: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const POOL_END: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 120);
const SWITCHES: u32 = 3;

/// The daemon's configuration file: the lab's proxy on `px0` with the
/// local DHCP server on.
fn write_config(topo: &Topology) -> PathBuf {
    write_config_with(topo, true)
}

/// [`write_config`], with the local DHCP server's pool or without it.
fn write_config_with(topo: &Topology, pool: bool) -> PathBuf {
    write_config_extra(topo, pool, "")
}

/// [`write_config_with`], with `extra` top-level settings first.
fn write_config_extra(topo: &Topology, pool: bool, extra: &str) -> PathBuf {
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let text = format!(
        "{extra}interfaces = [\"px0\"]\n\
         netns = {:?}\n\
         ip_address = \"{PROXY_IP}\"\n\
         pin_dir = {}\n\
         state_dir = {}\n\
         control_socket = {}\n\
         \n\
         # Nobody answers there: the switches are onboarded up to their\n\
         # identification, which is all this test needs.\n\
         [pnp_profiles.pnp-zero-touch]\n\
         server_url = \"http://{}:8080\"\n",
        topo.px.name(),
        quoted(&topo.pin_dir),
        quoted(&topo.state_dir),
        quoted(&topo.control_socket()),
        lab::PNP_IP,
    );
    let text = if pool {
        format!(
            "{text}\n\
             [dhcp_localserver]\n\
             enabled = true\n\
             pool_start = \"{POOL_START}\"\n\
             pool_end = \"{POOL_END}\"\n\
             netmask = \"255.255.255.0\"\n\
             lease_time_secs = 3600\n"
        )
    } else {
        text
    };
    let path = topo.state_dir.join("config.toml");
    std::fs::write(&path, text).expect("config file");
    path
}

/// `smi-proxy run --config <file>` with its log lines delivered to the
/// test (and echoed to stderr); SIGTERM on drop.
struct Proxy {
    child: Option<Child>,
    log: mpsc::Receiver<String>,
    _stdout: BufReader<ChildStdout>,
}

impl Proxy {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(lab::proxy_bin().expect("smi-proxy binary"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn,smi_proxy=info,proxy::dhcp=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn smi-proxy");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[smi-proxy] {line}");
                let _ = tx.send(line);
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ready = String::new();
        let _ = stdout.read_line(&mut ready);
        let mut proxy = Self {
            child: Some(child),
            log,
            _stdout: stdout,
        };
        if ready.trim() != "smi-proxy: ready" {
            let status = proxy.child.take().map(|mut c| c.wait());
            panic!("the daemon did not become ready: {status:?}");
        }
        proxy
    }

    /// The first log line containing `needle`, within `within`.
    fn wait_log(&self, needle: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?} within {within:?}: {e}"),
            }
        }
    }

    /// Stops it with SIGTERM (it must exit cleanly) and returns the log
    /// lines not yet read.
    fn stop(mut self) -> Vec<String> {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait");
        assert!(status.success(), "daemon exited with {status}");
        // The reader thread ends at EOF, closing the channel.
        self.log.iter().collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// `count` switches of the default mix with their own host names.
fn switch_configs(count: u32) -> Vec<SwitchConfig> {
    (0..count)
        .map(|i| SwitchConfig {
            hostname: format!("sw-lab-{i}"),
            ..SwitchConfig::numbered(i)
        })
        .collect()
}

/// An AF_PACKET socket on the lab's `sw0` receiving the DHCP replies (UDP
/// port 68) to `mac`; it can also send as that client.
async fn watch(topo: &Topology, mac: [u8; 6]) -> PacketSocket {
    let fd = in_netns(topo.sw.name(), move || {
        PacketSocket::open_fd("sw0", 68, mac)
    })
    .await
    .expect("AF_PACKET socket on sw0");
    PacketSocket::from_fd(fd).expect("register socket")
}

/// The next DHCP reply on `sock` that `want` accepts, within `within`.
async fn next_reply(
    sock: &PacketSocket,
    within: Duration,
    want: impl Fn(&Message) -> bool,
) -> Option<Message> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = vec![0u8; 2048];
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .ok()?
            .expect("recv");
        let Some((_, 67, 68, payload)) = udp_payload(&buf[..n]) else {
            continue;
        };
        if let Ok(msg) = Message::decode(&mut Decoder::new(payload)) {
            if want(&msg) {
                return Some(msg);
            }
        }
    }
}

fn server_id(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

/// Waits for `n` events matching `pred`; the emulator keeps the others
/// for later waits.
async fn wait_events(
    emu: &mut Emulator,
    n: usize,
    within: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match emu.wait_event(left, &pred).await {
            Ok(ev) => got.push(ev),
            Err(e) => panic!(
                "only {} of {n} events within {within:?}: {e}; got {got:?}",
                got.len()
            ),
        }
    }
    got
}

fn bound(events: &[Event]) -> Vec<(usize, Lease)> {
    let mut leases: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::DhcpBound { switch, lease, .. } => Some((*switch, lease.clone())),
            _ => None,
        })
        .collect();
    leases.sort_by_key(|(switch, _)| *switch);
    leases
}

fn lease_lines(topo: &Topology) -> Vec<String> {
    std::fs::read_to_string(topo.state_dir.join("vstack/dhcp_leases.txt"))
        .map(|text| {
            text.lines()
                .filter(|l| l.starts_with("lease"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Namespaces whose name starts with `prefix`.
fn namespaces_left(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn local_server_leases_with_option_150_and_keeps_them_across_a_restart() {
    require_root();
    let p = unique_prefix("sdl");
    let rt = lab::test_runtime();
    {
        let topo = Topology::build(&p).expect("topology");
        let config = write_config(&topo);
        let configs = switch_configs(SWITCHES);
        rt.block_on(async {
            let mut watchers = Vec::new();
            for sw in &configs {
                watchers.push(watch(&topo, sw.mac).await);
            }
            let proxy = Proxy::start(&config);
            let mut emu_cfg = EmulatorConfig::new(topo.sw.name(), "sw0", &p, 0);
            emu_cfg.switches = configs.clone();
            let mut emu = Emulator::start(emu_cfg).await.expect("emulator");

            // Every switch gets an address of the pool from the proxy.
            let events = wait_events(&mut emu, SWITCHES as usize, Duration::from_secs(60), |e| {
                matches!(e, Event::DhcpBound { .. })
            })
            .await;
            let leases = bound(&events);
            let mut ips: Vec<Ipv4Addr> = leases.iter().map(|(_, l)| l.ip).collect();
            for (switch, lease) in &leases {
                assert_eq!(lease.server, Some(PROXY_IP), "switch {switch}: {lease:?}");
                assert_eq!(lease.tftp_server, Some(PROXY_IP), "option 150: {lease:?}");
                assert_eq!(lease.router, Some(PROXY_IP), "router: {lease:?}");
                assert_eq!(lease.prefix_len, 24);
                assert_eq!(lease.lease_secs, Some(3600));
                assert!(
                    (POOL_START..=POOL_END).contains(&lease.ip),
                    "{} in the pool",
                    lease.ip
                );
            }
            ips.sort();
            ips.dedup();
            assert_eq!(ips.len(), SWITCHES as usize, "distinct addresses");

            // The OFFER on the wire: option 150 = the proxy as 4 bytes, the
            // switch's host name, the proxy as server identifier.
            for (sw, sock) in configs.iter().zip(&watchers) {
                let offer = next_reply(sock, Duration::from_secs(5), |m| {
                    m.opts().msg_type() == Some(MessageType::Offer)
                })
                .await
                .expect("an OFFER seen on sw0");
                let o = offer.opts();
                assert_eq!(
                    o.get(OptionCode::TFTPServerAddress),
                    Some(&DhcpOption::TFTPServerAddress(PROXY_IP))
                );
                assert_eq!(
                    o.get(OptionCode::Hostname),
                    Some(&DhcpOption::Hostname(sw.hostname.clone()))
                );
                assert_eq!(server_id(&offer), Some(PROXY_IP));
                assert_eq!(offer.siaddr(), PROXY_IP);
            }

            // The proxy learned the addresses from its own ACKs and onboards
            // the switches as it does behind a site server.
            wait_events(&mut emu, SWITCHES as usize, Duration::from_secs(120), |e| {
                matches!(e, Event::TelnetDone { .. })
            })
            .await;
            let on_disk = lease_lines(&topo);
            assert_eq!(on_disk.len(), SWITCHES as usize, "{on_disk:?}");
            for (switch, lease) in &leases {
                let mac = proxy::store::Mac(configs[*switch].mac).to_string();
                assert!(
                    on_disk
                        .iter()
                        .any(|l| l.contains(&format!("mac={mac}\tip={}\t", lease.ip))),
                    "{mac} {} in {on_disk:?}",
                    lease.ip
                );
            }
            proxy.stop();

            // Restarted, the daemon gives each MAC its address back, whatever
            // the order the clients come in: highest address first, which
            // first-free allocation alone would get wrong.
            let proxy = Proxy::start(&config);
            let timing = DhcpTiming::default();
            let mut by_address = leases.clone();
            by_address.sort_by_key(|(_, lease)| std::cmp::Reverse(lease.ip));
            for (switch, lease) in &by_address {
                let sw = &configs[*switch];
                let again = tokio::time::timeout(
                    Duration::from_secs(30),
                    proxy_tests::emulator::dhcp_client::acquire(
                        &watchers[*switch],
                        sw.mac,
                        &sw.hostname,
                        &timing,
                    ),
                )
                .await
                .expect("a lease after the restart");
                assert_eq!(again.server, Some(PROXY_IP));
                assert_eq!(again.ip, lease.ip, "switch {switch} keeps its address");
            }
            proxy.stop();
            drop(emu);
        });
    }
    assert_eq!(namespaces_left(&p), Vec::<String>::new());
}

#[test]
fn local_server_stays_silent_beside_the_site_server() {
    require_root();
    let p = unique_prefix("sds");
    let rt = lab::test_runtime();
    {
        let topo = Topology::build(&p).expect("topology");
        let config = write_config(&topo);
        let configs = switch_configs(SWITCHES);
        rt.block_on(async {
            let mut watchers = Vec::new();
            for sw in &configs {
                watchers.push(watch(&topo, sw.mac).await);
            }
            let proxy = Proxy::start(&config);
            let site = DhcpServer::start(DhcpServerConfig::new(
                &format!("{p}dhcp"),
                topo.sw.name(),
                "sw0",
                PROXY_IP,
            ))
            .await
            .expect("site DHCP server");
            let mut emu_cfg = EmulatorConfig::new(topo.sw.name(), "sw0", &p, 0);
            emu_cfg.switches = configs.clone();
            let mut emu = Emulator::start(emu_cfg).await.expect("emulator");

            // Every switch is served by the site server.
            let events = wait_events(&mut emu, SWITCHES as usize, Duration::from_secs(60), |e| {
                matches!(e, Event::DhcpBound { .. })
            })
            .await;
            for (switch, lease) in bound(&events) {
                assert_eq!(lease.server, Some(DHCP_IP), "switch {switch}: {lease:?}");
                assert_eq!(Some(lease.ip), site.lease_of(&configs[switch].mac));
            }
            // The proxy saw the site server's OFFER and held its own back.
            let line = proxy.wait_log("local DHCP server stays silent", Duration::from_secs(30));
            assert!(
                line.contains(&format!("DHCP server {DHCP_IP} (")) && line.contains("vlan 1"),
                "{line}"
            );
            // Its silenced counter has risen.
            let metrics = lab::metrics(&topo).expect("metrics");
            let silenced = lab::metric(&metrics, "smi_proxy_dhcp_server_total{event=\"silenced\"}");
            assert!(silenced.unwrap_or(0) >= 1, "{metrics}");
            let rest = proxy.stop();
            assert!(
                !rest.iter().any(|l| l.contains("stays silent")),
                "warned once: {rest:?}"
            );
            // Nothing the proxy could have sent is left in flight: no reply
            // of it reached the switches' segment.
            for (sw, sock) in configs.iter().zip(&watchers) {
                let ours = next_reply(sock, Duration::from_millis(300), |m| {
                    server_id(m) == Some(PROXY_IP)
                })
                .await;
                assert!(ours.is_none(), "{}: {ours:?}", sw.hostname);
            }
            assert_eq!(lease_lines(&topo), Vec::<String>::new());
            drop(emu);
            drop(site);
        });
    }
    assert_eq!(namespaces_left(&p), Vec::<String>::new());
}

#[test]
fn a_pool_entered_at_run_time_serves_at_once() {
    require_root();
    let p = unique_prefix("sdr");
    let rt = lab::test_runtime();
    let topo = Topology::build(&p).expect("topology");
    let config = write_config_with(&topo, false);
    rt.block_on(async {
        let proxy = Proxy::start(&config);
        let mut emu_cfg = EmulatorConfig::new(topo.sw.name(), "sw0", &p, 0);
        emu_cfg.switches = switch_configs(SWITCHES);
        let mut emu = Emulator::start(emu_cfg).await.expect("emulator");
        // Nobody answers: the switches keep asking.
        assert!(
            emu.wait_event(Duration::from_secs(3), |e| matches!(
                e,
                Event::DhcpBound { .. }
            ))
            .await
            .is_err(),
            "no DHCP server yet"
        );
        let said = lab::control_command(
            &topo.control_socket(),
            "config",
            &[&format!(
                "vstack dhcp-localserver pool {POOL_START} {POOL_END} netmask 255.255.255.0"
            )],
        )
        .expect("vstack dhcp-localserver");
        assert_eq!(said, "");
        let events = wait_events(&mut emu, SWITCHES as usize, Duration::from_secs(60), |e| {
            matches!(e, Event::DhcpBound { .. })
        })
        .await;
        for (switch, lease) in bound(&events) {
            assert_eq!(lease.server, Some(PROXY_IP), "switch {switch}: {lease:?}");
            assert!((POOL_START..=POOL_END).contains(&lease.ip), "{lease:?}");
        }
        // And the proxy goes on to onboard them, without a restart.
        wait_events(&mut emu, SWITCHES as usize, Duration::from_secs(120), |e| {
            matches!(e, Event::TelnetDone { .. })
        })
        .await;
        emu.shutdown().await;
        proxy.stop();
    });
}

#[test]
fn spoofed_offers_from_a_switch_port_are_counted_not_obeyed() {
    use proxy_tests::frames::{Dhcp, L2, msg};
    require_root();
    let p = unique_prefix("sds");
    let rt = lab::test_runtime();
    let topo = Topology::build(&p).expect("topology");
    // Only `lo` is trusted for DHCP servers: px0 is a switch port.
    let config = write_config_extra(&topo, true, "dhcp_trusted_interfaces = [\"lo\"]\n");
    let proxy = Proxy::start(&config);
    let raw = {
        let _in_sw = topo.sw.enter().expect("enter the switch segment");
        proxy_tests::netns::RawSocket::open("sw0").expect("AF_PACKET on sw0")
    };
    // A host on a switch port claims to be a DHCP server, again and again.
    let spoofer = [0x02, 0x66, 0x66, 0x66, 0x66, 0x66];
    let spoof = |n: u32| {
        let victim = [0x02, 0x77, 0, 0, 0, n as u8];
        let mut l2 = L2::broadcast(victim);
        l2.src = spoofer;
        Dhcp::server_reply(victim, n, msg::OFFER, [192, 0, 2, 200], [192, 0, 2, 66])
            .frame(&l2, [192, 0, 2, 66])
    };
    for n in 0..200 {
        raw.send(&spoof(n)).expect("send a spoofed OFFER");
    }
    rt.block_on(async {
        let mut emu_cfg = EmulatorConfig::new(topo.sw.name(), "sw0", &p, 0);
        emu_cfg.switches = switch_configs(SWITCHES);
        let mut emu = Emulator::start(emu_cfg).await.expect("emulator");
        for n in 200..400 {
            raw.send(&spoof(n)).expect("send a spoofed OFFER");
        }
        // The proxy's server keeps serving.
        let events = wait_events(&mut emu, SWITCHES as usize, Duration::from_secs(60), |e| {
            matches!(e, Event::DhcpBound { .. })
        })
        .await;
        for (switch, lease) in bound(&events) {
            assert_eq!(lease.server, Some(PROXY_IP), "switch {switch}: {lease:?}");
        }
        let m = lab::metrics(&topo).expect("metrics");
        let untrusted = lab::metric(
            &m,
            "smi_proxy_xdp_frames_total{counter=\"dhcp_offer_untrusted\"}",
        )
        .expect("the untrusted-offer counter");
        assert!(untrusted >= 400, "{untrusted} spoofed offers counted: {m}");
        assert_eq!(
            lab::metric(&m, "smi_proxy_dhcp_server_total{event=\"silenced\"}").unwrap_or(0),
            0,
            "{m}"
        );
        emu.shutdown().await;
    });
    let log = proxy.stop();
    assert!(
        !log.iter().any(|l| l.contains("stays silent")),
        "the spoofer silenced the local server: {log:?}"
    );
}
