//! `vstack` commands act when entered, on a running daemon and while
//! switches onboard: `no vstack` stops the director at once and `vstack`
//! resumes every known client without identifying it again; a new PnP
//! profile moves the agents to another server; a DHCP pool starts serving.
//! In network namespaces this test creates, with the XDP program attached.
//! Needs root.
use std::collections::BTreeSet;
use std::time::Duration;

use proxy_tests::emulator::{Emulator, Event};
use proxy_tests::lab::{self, PNP_IP};
use proxy_tests::netns::require_root;
use proxy_tests::pnp_server::{DeviceInfoType, Step};
use proxy_tests::scenario::{
    IMAGE, Lab, WITHIN, assert_end_state, config_step, image_step, set_scripts, stock,
    tailored_pushes, udi_of,
};

/// Feeds emulator events to `until` until it holds (bounded by [`WITHIN`]).
fn drive(lab: &Lab, emu: &mut Emulator, what: &str, mut until: impl FnMut(&Event) -> bool) {
    lab.rt.block_on(async {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            match tokio::time::timeout_at(deadline, emu.next_event()).await {
                Ok(Some(event)) if until(&event) => return,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the emulator stopped while waiting for {what}"),
                Err(_) => panic!("no {what} within {WITHIN:?}"),
            }
        }
    });
}

/// SMI messages every switch has received so far.
fn received(emu: &Emulator) -> Vec<usize> {
    emu.switches().iter().map(|s| s.received().len()).collect()
}

/// The sum of a metric family's samples whose labels contain `filter`.
fn metric_sum(lab: &Lab, family: &str, filter: &str) -> u64 {
    let text = lab::metrics(&lab.topo).expect("metrics");
    text.lines()
        .filter(|l| l.starts_with(family) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn proxy_db(lab: &Lab) -> serde_json::Value {
    let text = lab::show(&lab.topo, &["vstack", "proxy-db", "--json"]).expect("proxy-db");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn smart_install_off_stops_the_director_at_once_and_on_resumes_every_client() {
    require_root();
    const N: usize = 8;
    let scripts: Vec<_> = (0..N)
        .map(|i| vec![config_step(i, false), image_step()])
        .collect();
    let lab = Lab::start("smo", N);
    // A job cut short is sent again, as by a server that tracks its jobs.
    lab.server.set_redeliver_unanswered(true);
    let daemon = lab.daemon_from_file("", "");
    let mut emu = lab.switches_booting_over(&scripts, Duration::from_secs(8));
    let mut identified = 0;
    drive(&lab, &mut emu, "two identifications", |e| {
        identified += usize::from(matches!(e, Event::TelnetDone { .. }));
        identified >= 2
    });

    // Identified before the command: known when the proxy goes off (the
    // proxy-db is empty while it is off, as on IOS).
    let known: BTreeSet<String> = proxy_db(&lab)["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["udi"].is_string())
        .filter_map(|e| e["mac"].as_str().map(str::to_owned))
        .collect();
    assert!(known.len() >= 2, "{known:?}");
    assert_eq!(lab.config("no vstack"), "");
    let at_off = received(&emu);
    let sent_at_off = metric_sum(&lab, "smi_proxy_smi_exchanges_total", "outcome=\"sent\"");
    // Every switch boots and takes its address while the proxy is off...
    lab.rt.block_on(async {
        let deadline = tokio::time::Instant::now() + WITHIN;
        while emu.switches().iter().any(|s| s.ip().is_none()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "switches never bound"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), emu.next_event()).await;
        }
        // ... and for a while after (an observation window: a director
        // that still ran would have probed the new ones within it).
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    assert_eq!(received(&emu), at_off, "no SMI message after `no vstack`");
    assert_eq!(
        metric_sum(&lab, "smi_proxy_smi_exchanges_total", "outcome=\"sent\""),
        sent_at_off
    );
    let status = lab::show(&lab.topo, &["vstack", "download-status", "--json"]).expect("show");
    assert!(
        !status.contains("\"upgrading\""),
        "a job cut short is recorded as interrupted: {status}"
    );

    assert_eq!(lab.config("vstack"), "");
    lab.responses(&emu, |_| 2);
    assert_end_state(&lab, &emu, Some(IMAGE));
    for sw in emu.switches() {
        let mac = proxy::store::Mac(sw.mac()).to_string();
        if known.contains(&mac) {
            assert_eq!(
                tailored_pushes(sw),
                1,
                "switch {} was known when the proxy went off: resumed, not identified again",
                sw.position()
            );
        }
    }
    daemon.stop().expect("clean stop");
}

#[test]
fn a_new_pnp_profile_moves_the_agents_to_another_server() {
    require_root();
    const N: usize = 4;
    // The first server holds every switch in a long backoff after one job.
    let first: Vec<_> = (0..N)
        .map(|_| {
            vec![
                Step::DeviceInfo(DeviceInfoType::All),
                Step::Backoff { secs: 3600 },
            ]
        })
        .collect();
    let lab = Lab::start("smf", N);
    let second = lab::pnp_server_in(&lab.rt, &lab.topo, 8081).expect("second PnP server");
    stock(&second, N);
    let daemon = lab.daemon_from_file(
        "",
        &format!("\n[pnp_profiles.second]\nserver_url = \"http://{PNP_IP}:8081\"\n"),
    );
    let emu = lab.switches(&first);
    let configs: Vec<_> = emu.switches().iter().map(|s| s.config().clone()).collect();
    set_scripts(
        &second,
        &configs,
        &(0..N)
            .map(|i| vec![config_step(i, false), image_step()])
            .collect::<Vec<_>>(),
    );
    lab.responses(&emu, |_| 2);
    let before: Vec<usize> = configs
        .iter()
        .map(|c| lab.server.log(&udi_of(c)).len())
        .collect();

    assert_eq!(
        lab.config("vstack proxy interface px0 pnp-profile second"),
        ""
    );
    lab.responses_on(&second, &emu, |_| 2);
    let after: Vec<usize> = configs
        .iter()
        .map(|c| lab.server.log(&udi_of(c)).len())
        .collect();
    assert_eq!(before, after, "nothing more went to the first server");
    assert_end_state(&lab, &emu, Some(IMAGE));
    for sw in emu.switches() {
        assert_eq!(tailored_pushes(sw), 1, "no restart, no new identification");
    }
    daemon.stop().expect("clean stop");
}

#[test]
fn a_new_proxy_address_applies_without_losing_a_client() {
    require_root();
    const N: usize = 3;
    let scripts: Vec<_> = (0..N).map(|i| vec![config_step(i, false)]).collect();
    let lab = Lab::start("sma", N);
    let daemon = lab.daemon_from_file("", "");
    let emu = lab.switches(&scripts);
    lab.responses(&emu, |_| 1);
    let before = proxy_db(&lab);
    // A second address on the proxy's port; the director moves there.
    const NEW: std::net::Ipv4Addr = std::net::Ipv4Addr::new(192, 0, 2, 254);
    lab.topo
        .px
        .ip(&["addr", "add", &format!("{NEW}/24"), "dev", "px0"])
        .expect("second address");
    assert_eq!(lab.config(&format!("vstack proxy ip-address {NEW}")), "");
    let shown = lab::show(&lab.topo, &["vstack", "config"]).expect("show config");
    assert!(shown.contains(&format!("IP address: {NEW}")), "{shown}");
    // The director listens at the new address, no longer at the old one,
    // as seen from an admitted switch.
    let sw = &emu.switches()[0];
    lab.rt.block_on(async {
        let at = |ip: std::net::Ipv4Addr| {
            proxy_tests::emulator::net::tcp_connect_in(
                sw.netns().expect("namespace mode"),
                std::net::SocketAddr::from((ip, 4786)),
                Duration::from_secs(2),
            )
        };
        assert!(at(NEW).await.is_ok(), "the director listens at {NEW}");
        assert!(
            at(lab::PROXY_IP).await.is_err(),
            "and no longer at the old address"
        );
    });
    // Every client is still known, none identified again.
    let identities = |db: &serde_json::Value| -> BTreeSet<(String, String)> {
        db["entries"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| (e["mac"].to_string(), e["udi"].to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let after = proxy_db(&lab);
    assert_eq!(identities(&after), identities(&before), "{after:#}");
    assert_eq!(identities(&after).len(), N);
    for sw in emu.switches() {
        assert_eq!(tailored_pushes(sw), 1);
    }
    daemon.stop().expect("clean stop");
}

/// The rows of `smi-proxy clients --json` (the kernel's client table).
fn kernel_clients(lab: &Lab) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(lab::proxy_bin().expect("binary"))
        .args(["clients", "--json", "--pin-dir"])
        .arg(&lab.topo.pin_dir)
        .output()
        .expect("smi-proxy clients");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("clients JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_limits_and_credentials_of_the_file_change_what_the_daemon_does() {
    use proxy_tests::frames::{self, Dhcp, L2, msg};
    require_root();
    const N: usize = 2;
    let scripts: Vec<_> = (0..N).map(|i| vec![config_step(i, false)]).collect();
    let lab = Lab::start("smk", N);
    let daemon = lab.daemon_from_file(
        "debug = true\n",
        "[credentials]\nusername = \"opsadmin\"\nenable_password = \"s3cret\"\n\
         [limits]\nmax_smi_connections = 2\nprobe_timeout_secs = 1\nclients_max = 64\nsmi_len_cap = 100\n",
    );
    let emu = lab.switches(&scripts);
    lab.responses(&emu, |_| 1);
    let sw = &emu.switches()[0];
    // credentials: the tailored configuration the switch was given.
    let tailored = sw
        .received()
        .iter()
        .find_map(|m| match m {
            proxy_tests::emulator::Sent::ConfigUpgrade { url, .. }
                if url.ends_with("client_cfg_pnp.txt") =>
            {
                Some(url.clone())
            }
            _ => None,
        })
        .expect("the tailored configuration was pushed");
    let text = lab.rt.block_on(async {
        proxy_tests::tftp_client::fetch_url(
            Some(sw.netns().expect("namespace mode")),
            &tailored,
            &proxy_tests::tftp_client::TftpOptions::default(),
        )
        .await
        .expect("the tailored configuration is served")
    });
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("username opsadmin") && text.contains("enable password s3cret"),
        "{text}"
    );
    // debug: on from the start.
    let debugging = lab::show(&lab.topo, &["debugging"]).expect("show debugging");
    assert!(
        debugging.contains("vstack smi-proxy debugging is on"),
        "{debugging}"
    );
    lab.rt.block_on(async {
        // max_smi_connections = 2: a third idle connection is refused.
        let connect = || {
            proxy_tests::emulator::net::tcp_connect_in(
                sw.netns().expect("namespace mode"),
                std::net::SocketAddr::from((lab::PROXY_IP, 4786)),
                Duration::from_secs(2),
            )
        };
        let started = std::time::Instant::now();
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(connect().await.expect("connect"));
        }
        // The proxy counts the refusal before it closes the connection, so
        // once the third is closed the metric must show it.
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 8];
        let third = tokio::time::timeout(Duration::from_millis(2500), idle[2].read(&mut buf))
            .await
            .expect("the third connection is closed")
            .unwrap_or(0);
        assert_eq!(third, 0);
        let m = lab::metrics(&lab.topo).expect("metrics");
        let busy = lab::metric(&m, "smi_proxy_smi_inbound_total{event=\"refused_busy\"}");
        assert!(busy >= Some(1), "{m}");
        // probe_timeout_secs = 1: an idle connection is closed after 1 s
        // (the default would hold it 3 s).
        let first = &mut idle[0];
        let n = tokio::time::timeout(Duration::from_millis(2500), first.read(&mut buf))
            .await
            .expect("closed within 2.5 s")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(started.elapsed() < Duration::from_millis(2900));
    });
    // smi_len_cap = 100: a length word of 200 from an admitted client is
    // dropped in XDP.
    let raw = {
        let _in_sw = lab.topo.sw.enter().expect("enter the switch segment");
        proxy_tests::netns::RawSocket::open("sw0").expect("AF_PACKET on sw0")
    };
    let px_mac = lab.topo.px.link_mac("px0").expect("px0 MAC");
    let mut smi = frames::smi_header(4, 0, 3, 200);
    smi.extend_from_slice(&[0; 8]);
    let l2 = L2 {
        dst: px_mac,
        src: sw.mac(),
        tags: Vec::new(),
    };
    let ip = sw.ip().expect("address");
    let before = lab::metric(
        &lab::metrics(&lab.topo).expect("metrics"),
        "smi_proxy_xdp_frames_total{counter=\"smi_drop_oversize\"}",
    )
    .unwrap_or(0);
    let frame = frames::ipv4(
        &l2,
        ip.octets(),
        lab::PROXY_IP.octets(),
        6,
        &[],
        &frames::tcp(41_000, 4786, 0x18, &smi),
    );
    raw.send(&frame).expect("send");
    // clients_max = 64: a DISCOVER flood of 200 MACs fits in 64 entries.
    for i in 0..200u32 {
        let [_, a, b, c] = i.to_be_bytes();
        let mac = [0x02, 0x55, 0, a, b, c];
        raw.send(&Dhcp::cisco_client(mac, i, msg::DISCOVER).frame(&L2::broadcast(mac), [0; 4]))
            .expect("send DISCOVER");
    }
    lab.rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = lab::metrics(&lab.topo).expect("metrics");
            let oversize = lab::metric(
                &m,
                "smi_proxy_xdp_frames_total{counter=\"smi_drop_oversize\"}",
            )
            .unwrap_or(0);
            let seen =
                lab::metric(&m, "smi_proxy_xdp_frames_total{counter=\"new_client\"}").unwrap_or(0);
            if oversize > before && seen >= 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "oversize {oversize} (was {before}), new clients {seen}: {m}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(
        kernel_clients(&lab).len() <= 64,
        "the kernel map holds at most 64"
    );
    // Both maps keyed by client are sized by clients_max: an admission map
    // smaller than the client map would evict admitted switches.
    for name in [proxy_common::maps::CLIENTS, proxy_common::maps::ADMISSION] {
        let map = aya::maps::MapData::from_pin(lab.topo.pin_dir.join(name)).expect("pinned map");
        assert_eq!(map.info().expect("map info").max_entries(), 64, "{name}");
    }
    daemon.stop().expect("clean stop");
}
