//! The classifier attached to a real veth in network namespaces this test
//! creates: DHCP frames crafted in a peer namespace (tagged ones with
//! AF_PACKET) become client entries and events; TCP to 4786 passes only for
//! admitted MACs. Also: the pinned client table survives a daemon restart.
//! Needs root.
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxy::dataplane::{Dataplane, DataplaneEvent, EventKind, Options};
use proxy_common::{Policy, counter, state};
use proxy_tests::frames::{Dhcp, L2, msg};
use proxy_tests::netns::{NetNs, RawSocket, require_root, unique_prefix, veth};

const SERVER: [u8; 4] = [192, 0, 2, 1];

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0x42, 0xac, 0x11, 0x00, n]
}

/// Waits (on the ring buffer, with a deadline) until `want` events arrived.
fn wait_events(dp: &mut Dataplane, want: usize) -> Vec<DataplaneEvent> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut stream = dp.take_events().expect("events").expect("stream");
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.len() < want {
            match tokio::time::timeout_at(deadline, stream.next_batch()).await {
                Ok(batch) => got.extend(batch.expect("ring buffer")),
                Err(_) => panic!("only {} of {want} events within 5 s: {got:?}", got.len()),
            }
        }
        got
    })
}

struct Topology {
    sw: NetNs,
    px: NetNs,
    pin_dir: std::path::PathBuf,
}

impl Topology {
    fn new() -> Self {
        require_root();
        let p = unique_prefix("smin");
        let sw = NetNs::new(&format!("{p}sw")).expect("switch netns");
        let px = NetNs::new(&format!("{p}px")).expect("proxy netns");
        veth(&sw, "sw0", &px, "px0").expect("veth");
        px.ip(&["addr", "add", "192.0.2.1/24", "dev", "px0"])
            .expect("proxy address");
        Self {
            sw,
            px,
            pin_dir: format!("/sys/fs/bpf/{p}").into(),
        }
    }

    fn dataplane(&self) -> Dataplane {
        let mut policy = Policy {
            startup_vlans: [0; proxy_common::VLAN_WORDS],
            ..Policy::default()
        };
        policy.set_startup_vlan(1, true);
        policy.set_startup_vlan(10, true);
        let mut dp = Dataplane::load(&Options {
            pin_dir: self.pin_dir.clone(),
            policy,
            ..Options::default()
        })
        .expect("load");
        let _in_px = self.px.enter().expect("enter proxy netns");
        dp.attach("px0").expect("attach XDP to px0");
        dp
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

#[test]
fn dhcp_across_veth_creates_entries_and_events() {
    let topo = Topology::new();
    let mut dp = topo.dataplane();
    let frames = [
        (mac(1), L2::broadcast(mac(1)), 1, 0),
        (mac(2), L2::broadcast(mac(2)).tagged(10), 10, 0),
        (mac(3), L2::broadcast(mac(3)).qinq(200, 10), 10, 200),
        (mac(4), L2::broadcast(mac(4)).tagged(30), 30, 0),
    ];
    {
        let _in_sw = topo.sw.enter().expect("enter switch netns");
        let sock = RawSocket::open("sw0").expect("raw socket");
        for (m, l2, _, _) in &frames {
            let frame = Dhcp::cisco_client(*m, 0xabcd, msg::DISCOVER).frame(l2, SERVER);
            sock.send(&frame).expect("send DHCP");
        }
        // The server's ACK for the first one (broadcast, as to a client
        // without an address).
        let mut server = L2::broadcast([0x02, 0, 0, 0, 0, 0xfe]);
        server.dst = [0xff; 6];
        let ack = Dhcp::server_reply(mac(1), 0xabcd, msg::ACK, [192, 0, 2, 50], SERVER);
        sock.send(&ack.frame(&server, SERVER)).expect("send ACK");
    }
    // Three new clients (VLAN 30 is not a startup VLAN) and one address.
    let events = wait_events(&mut dp, 4);
    let new: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::NewClient { .. }))
        .map(|e| (e.mac, e.vlan, e.svlan))
        .collect();
    for (m, _, vlan, svlan) in &frames[..3] {
        assert!(
            new.contains(&(*m, *vlan, *svlan)),
            "new-client event for {m:02x?}: {new:?}"
        );
        let e = dp.table().get(*m).expect("map").expect("entry");
        assert_eq!((e.vlan, e.svlan), (*vlan, *svlan));
    }
    assert!(
        events.iter().any(|e| e.mac == mac(1)
            && e.kind == EventKind::AddressLearned(Ipv4Addr::new(192, 0, 2, 50)))
    );
    assert_eq!(
        dp.table().get(mac(1)).expect("map").expect("entry").state,
        state::DISCOVERED
    );
    assert!(
        dp.table().get(mac(4)).expect("map").is_none(),
        "VLAN 30 not learned"
    );
    let c = dp.counters().expect("counters");
    assert_eq!(c[counter::NEW_CLIENT as usize], 3);
    assert_eq!(c[counter::DHCP_OTHER_VLAN as usize], 1);
}

/// A host in its own namespace behind a macvlan on the switch side's veth.
fn host(topo: &Topology, tag: &str, m: [u8; 6], ip: &str) -> NetNs {
    let ns = NetNs::new(&format!("{}{tag}", topo.sw.name())).expect("host netns");
    let name = format!("mv{tag}");
    let mac_s = m
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    topo.sw
        .ip(&[
            "link", "add", &name, "link", "sw0", "address", &mac_s, "type", "macvlan", "mode",
            "bridge",
        ])
        .expect("macvlan");
    topo.sw
        .ip(&["link", "set", &name, "netns", ns.name()])
        .expect("move macvlan");
    ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", &name])
        .expect("address");
    ns.ip(&["link", "set", &name, "up"]).expect("up");
    ns
}

fn connect_from(ns: &NetNs) -> std::io::Result<TcpStream> {
    let _in = ns.enter().expect("enter host netns");
    let addr = SocketAddr::from(([192, 0, 2, 1], 4786));
    TcpStream::connect_timeout(&addr, Duration::from_millis(1500))
}

#[test]
fn tcp_4786_only_from_admitted_macs() {
    let topo = Topology::new();
    let dp = topo.dataplane();
    let listener = {
        let _in_px = topo.px.enter().expect("enter proxy netns");
        TcpListener::bind("192.0.2.1:4786").expect("listen 4786")
    };
    let (good, bad) = (mac(0x21), mac(0x22));
    let good_ns = host(&topo, "a", good, "192.0.2.21");
    let bad_ns = host(&topo, "b", bad, "192.0.2.22");
    dp.table().set_state(good, state::ADMITTED).expect("admit");

    connect_from(&good_ns).expect("admitted MAC connects to 4786");
    let (_, peer) = listener.accept().expect("accept");
    assert_eq!(peer.ip(), Ipv4Addr::new(192, 0, 2, 21));

    let started = Instant::now();
    let refused = connect_from(&bad_ns);
    assert!(refused.is_err(), "unadmitted MAC must not connect");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "failed by timeout (SYN dropped), not by RST"
    );
    let c = dp.counters().expect("counters");
    assert!(c[counter::SMI_DROP_NOT_ADMITTED as usize] >= 1, "{c:?}");
    assert!(c[counter::SMI_PASS as usize] >= 2, "{c:?}");
    let dropped = dp
        .table()
        .get(good)
        .expect("map")
        .expect("entry")
        .smi_dropped;
    assert_eq!(dropped, 0);
}

/// The daemon binary next to this test binary (built by `cargo test`).
fn daemon_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("smi-proxy");
    assert!(
        bin.exists(),
        "{} missing: run `cargo xtask test`",
        bin.display()
    );
    bin
}

/// A running daemon, killed when dropped (a failed assertion must not
/// leave it running with the test's pipes open).
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_daemon(topo: &Topology) -> Daemon {
    let mut child = Command::new(daemon_bin())
        .args([
            "run",
            "--netns",
            topo.px.name(),
            "--iface",
            "px0",
            "--pin-dir",
        ])
        .arg(&topo.pin_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start daemon");
    let stdout = child.stdout.take().expect("stdout");
    let daemon = Daemon(Some(child));
    // Wait for its readiness line.
    let mut out = std::io::BufReader::new(stdout);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    assert_eq!(
        line.trim(),
        "smi-proxy: ready",
        "daemon did not become ready"
    );
    daemon
}

fn stop(mut daemon: Daemon) {
    let mut child = daemon.0.take().expect("running daemon");
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "daemon exit: {status}");
}

#[test]
fn client_table_survives_daemon_restart() {
    let topo = Topology::new();
    let daemon = start_daemon(&topo);
    {
        let _in_sw = topo.sw.enter().expect("enter switch netns");
        let sock = RawSocket::open("sw0").expect("raw socket");
        let frame =
            Dhcp::cisco_client(mac(9), 1, msg::DISCOVER).frame(&L2::broadcast(mac(9)), SERVER);
        sock.send(&frame).expect("send");
    }
    let pin = topo.pin_dir.clone();
    let table = proxy::dataplane::ClientTable::from_pin_dir(&pin).expect("pinned maps");
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = loop {
        if let Some(e) = table.get(mac(9)).expect("map") {
            break e;
        }
        assert!(Instant::now() < deadline, "entry not learned within 5 s");
        std::thread::yield_now();
    };
    stop(daemon);
    drop(table);

    let daemon = start_daemon(&topo);
    let table = proxy::dataplane::ClientTable::from_pin_dir(&pin).expect("pinned maps");
    let after = table
        .get(mac(9))
        .expect("map")
        .expect("entry kept across restart");
    assert_eq!(after.first_seen_ns, first.first_seen_ns);
    assert_eq!(after.state, state::NEW);
    stop(daemon);
}
