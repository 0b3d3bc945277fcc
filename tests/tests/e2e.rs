//! End to end, in network namespaces this test creates, with the proxy's
//! XDP program attached: emulated legacy switches get addresses from a site
//! DHCP server, the proxy discovers, probes, admits and identifies them, and
//! a real PnP server (HTTP) drives jobs that become SMI operations.
//! Needs root.
use std::net::SocketAddr;
use std::time::Duration;

use proxy_tests::dhcp_server::DhcpServer;
use proxy_tests::emulator::{Emulator, EmulatorMode, Event};
use proxy_tests::lab::{self, Daemon, DaemonOptions, PNP_IP, PROXY_IP, Topology};
use proxy_tests::netns::{require_root, unique_prefix};
use proxy_tests::pnp_server::{ApplyTo, DeviceInfoType, Received, Script, Step};

/// Waits for `n` events matching `pred` (other events are kept aside).
async fn wait_events(
    emu: &mut Emulator,
    n: usize,
    within: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout_at(deadline, emu.next_event()).await {
            Ok(Some(ev)) if pred(&ev) => got.push(ev),
            Ok(Some(_)) => {}
            Ok(None) => panic!("emulator stopped"),
            Err(_) => panic!(
                "only {} of {n} events within {within:?}: {got:?}",
                got.len()
            ),
        }
    }
    got
}

/// `show vstack proxy-db --json`, polled until `done` holds (bounded).
async fn proxy_db_until(
    topo: &Topology,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let text = lab::show(topo, &["vstack", "proxy-db", "--json"]).expect("show proxy-db");
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        if done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "proxy-db never reached the expected state: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The lab's site DHCP server, on the switches' segment.
async fn site_dhcp(topo: &Topology) -> DhcpServer {
    lab::site_dhcp(topo).await.expect("DHCP server")
}

/// `n` emulated switches of the default mix on the lab's segment.
async fn switches(topo: &Topology, n: u32) -> Emulator {
    Emulator::start(topo.emulator_config(&topo.prefix, n))
        .await
        .expect("emulator")
}

fn udis_known(v: &serde_json::Value) -> usize {
    v["entries"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["udi"].is_string()).count())
        .unwrap_or(0)
}

#[test]
fn fifty_switches_are_discovered_admitted_and_identified_netns() {
    fifty_switches(EmulatorMode::Netns);
}

#[test]
fn fifty_switches_are_discovered_admitted_and_identified_packet() {
    fifty_switches(EmulatorMode::Packet);
}

/// Fifty switches are discovered, admitted (in XDP) and identified.
fn fifty_switches(mode: EmulatorMode) {
    require_root();
    let p = unique_prefix("sme");
    let topo = Topology::for_emulator(&p, mode).expect("topology");
    let rt = lab::test_runtime();
    // The DHCP server first: in the isolated layout it creates the port
    // the daemon attaches to.
    let _dhcp = rt.block_on(site_dhcp(&topo));
    let daemon = Daemon::start(&topo, &DaemonOptions::default()).expect("daemon");
    rt.block_on(async {
        let mut emu = switches(&topo, 50).await;
        wait_events(&mut emu, 50, Duration::from_secs(240), |e| {
            matches!(e, Event::TelnetDone { .. })
        })
        .await;
        let db = proxy_db_until(&topo, Duration::from_secs(30), |v| udis_known(v) == 50).await;
        let entries = db["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 50);
        for sw in emu.switches() {
            let c = sw.config();
            let mac = proxy::store::Mac(c.mac).to_string();
            let entry = entries
                .iter()
                .find(|e| e["mac"] == mac.as_str())
                .expect("switch in proxy-db");
            assert_eq!(
                entry["udi"].as_str(),
                Some(format!("PID:{},VID:{},SN:{}", c.pid, c.vid, c.sn).as_str()),
                "UDI of {mac}"
            );
            assert_eq!(
                entry["ip"].as_str(),
                sw.ip().map(|ip| ip.to_string()).as_deref()
            );
        }
        // The kernel admitted every one of them.
        let clients = std::process::Command::new(lab::proxy_bin().expect("binary"))
            .args(["clients", "--json", "--pin-dir"])
            .arg(&topo.pin_dir)
            .output()
            .expect("smi-proxy clients");
        let rows: serde_json::Value =
            serde_json::from_slice(&clients.stdout).expect("clients JSON");
        let admitted = rows
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["state"] == "admitted")
            .count();
        assert_eq!(admitted, 50, "{rows:#}");
        // The operator's view reads as IOS does.
        let text = lab::show(&topo, &["vstack", "proxy-db"]).expect("show");
        assert!(text.contains("Smi PnP Proxy:"), "{text}");
        assert!(text.contains("PID:"), "{text}");
    });
    daemon.stop().expect("clean stop");
}

#[test]
fn pnp_jobs_become_smi_operations_netns() {
    pnp_jobs(EmulatorMode::Netns);
}

#[test]
fn pnp_jobs_become_smi_operations_packet() {
    pnp_jobs(EmulatorMode::Packet);
}

/// Every PnP job becomes its SMI operation on the switch.
fn pnp_jobs(mode: EmulatorMode) {
    require_root();
    let p = unique_prefix("smp");
    let topo = Topology::for_emulator(&p, mode).expect("topology");
    let rt = lab::test_runtime();
    let server = lab::pnp_server_in(&rt, &topo, 8080).expect("PnP server");
    let (image, image_md5) = proxy_tests::pnp_server::fake_image(64 * 1024);
    server.add_image("c2960-lanbasek9-tar.150-2.SE11.tar", image);
    server.add_config("site.cfg", b"hostname site-switch\n!\nend\n".to_vec());
    server.set_default_script(Script::new(vec![
        Step::DeviceInfo(DeviceInfoType::All),
        Step::DeviceInfo(DeviceInfoType::Hardware),
        Step::ConfigUpgrade {
            apply_to: ApplyTo::Running,
            file: "site.cfg".into(),
            reload: false,
        },
        Step::ConfigUpgrade {
            apply_to: ApplyTo::Startup,
            file: "site.cfg".into(),
            reload: false,
        },
        Step::ImageInstall {
            file: "c2960-lanbasek9-tar.150-2.SE11.tar".into(),
            md5: Some(image_md5),
        },
        Step::Capability,
        Step::Topology,
        Step::Unsupported {
            service: "cli-exec".into(),
        },
    ]));
    // This daemon runs from a configuration file (the proxy address from
    // its interface's), which `vstack` commands are saved back to.
    let config_file = topo.state_dir.join("config.toml");
    let pnp_url = format!("http://{PNP_IP}:8080");
    std::fs::write(&config_file, topo.config_toml(Some(&pnp_url))).expect("config file");
    let _dhcp = rt.block_on(site_dhcp(&topo));
    let daemon = Daemon::start(
        &topo,
        &DaemonOptions {
            config_file: Some(config_file.clone()),
            ..DaemonOptions::default()
        },
    )
    .expect("daemon");
    rt.block_on(async {
        let mut emu = switches(&topo, 2).await;
        // Each switch: the site config lands, then the image, then it reloads.
        wait_events(&mut emu, 2, Duration::from_secs(300), |e| {
            matches!(e, Event::Reloaded { .. })
        })
        .await;
        for sw in emu.switches() {
            let cfg = sw.startup_config().expect("a startup config");
            assert!(String::from_utf8_lossy(&cfg).contains("hostname site-switch"));
            assert_eq!(sw.reloads(), 1);
            assert_eq!(sw.version(), "15.0(2)SE11");
        }
        // The server saw every answer, with the vendor's refusals byte for byte.
        let udi = proxy_db_until(&topo, Duration::from_secs(120), |v| {
            v["entries"]
                .as_array()
                .is_some_and(|e| e.len() == 2 && udis_known(v) == 2)
        })
        .await["entries"][0]["udi"]
            .as_str()
            .expect("udi")
            .parse()
            .expect("UDI");
        let responses = loop {
            let r: Vec<_> = server
                .log(&udi)
                .into_iter()
                .filter_map(|e| match e.received {
                    Received::Response(r) => Some(r),
                    _ => None,
                })
                .collect();
            if r.len() >= 8 {
                break r;
            }
            server.wait_for(&udi, |_| true).await;
        };
        let by_service = |name: &str| {
            responses
                .iter()
                .filter(|r| r.service.name() == name)
                .cloned()
                .collect::<Vec<_>>()
        };
        let di = by_service("device-info");
        assert!(di[0].success);
        let hw = di[1].error.as_ref().expect("hardware refused");
        assert_eq!(hw.code, "XSVC_ERROR_DEVICE_INFO_UNSUPPORTED");
        assert_eq!(
            hw.message,
            "SMI PROXY:Client device hardware info not supported"
        );
        let cu = by_service("config-upgrade");
        let running = cu[0].error.as_ref().expect("running refused");
        assert_eq!(running.code, "XSVC_ERROR_CONFIG_UPGRADE_UNSUPPORTED");
        assert_eq!(
            running.message,
            "SMI PROXY: Config upgrade apply to Running Config is not supported"
        );
        assert!(cu[1].success, "startup config-upgrade: {:?}", cu[1].error);
        assert!(
            by_service("image-install")[0].success,
            "{:?}",
            by_service("image-install")[0].error
        );
        assert!(by_service("capability")[0].success);
        assert!(by_service("topology")[0].success);
        let other = by_service("cli-exec");
        let refusal = other[0].error.as_ref().expect("unsupported refused");
        assert_eq!(refusal.code, "PNP_ERROR_UNSUPPORTED_REQUEST");
        assert_eq!(refusal.message, "SMI PROXY:Not supported service request");
        let status = lab::show(&topo, &["vstack", "download-status"]).expect("download-status");
        assert!(status.contains("UPGRADED"), "{status}");

        // Both sides' exchanges are counted on /metrics.
        let m = lab::metrics(&topo).expect("metrics");
        let pnp = |kind: &str| {
            lab::metric(
                &m,
                &format!("smi_proxy_pnp_exchanges_total{{kind=\"{kind}\"}}"),
            )
            .unwrap_or_else(|| panic!("no PnP sample {kind}: {m}"))
        };
        assert!(pnp("hello") >= 2 && pnp("work_request") >= 2, "{m}");
        assert!(pnp("job_device_info") >= 4, "{m}");
        assert!(pnp("job_config_upgrade") >= 4, "{m}");
        assert!(pnp("job_image_install") >= 2, "{m}");
        // The first switch's eight responses are in; the second got as far
        // as its image (five successes and three refusals, then two and two).
        assert!(pnp("job_other") >= 1 && pnp("bye") >= 2, "{m}");
        assert!(pnp("work_response_success") >= 7, "{m}");
        assert!(pnp("work_response_failure") >= 5, "{m}");
        for reason in ["connect", "tls", "timeout", "malformed_xml"] {
            let sample = format!("smi_proxy_pnp_errors_total{{reason=\"{reason}\"}}");
            assert!(lab::metric(&m, &sample).is_some(), "no {sample}: {m}");
        }
        let smi = |message: &str, outcome: &str| {
            let sample = format!(
                "smi_proxy_smi_exchanges_total{{message=\"{message}\",outcome=\"{outcome}\"}}"
            );
            lab::metric(&m, &sample).unwrap_or_else(|| panic!("no {sample}: {m}"))
        };
        assert!(smi("probe", "accepted") >= 2, "{m}");
        assert!(smi("probe", "sent") >= smi("probe", "accepted"), "{m}");
        // The tailored configuration and the startup configuration (type 3),
        // the image (type 2), for each switch.
        assert!(smi("config_upgrade", "accepted") >= 4, "{m}");
        assert!(smi("image_upgrade", "accepted") >= 2, "{m}");

        // The file's settings are those in effect; a change is saved to it.
        let show = |topo: &Topology| {
            let text = lab::show(topo, &["vstack", "config", "--json"]).expect("show config");
            serde_json::from_str::<serde_json::Value>(&text).expect("JSON")
        };
        let before = show(&topo);
        assert_eq!(before["proxy_ip"], PROXY_IP.to_string(), "{before:#}");
        assert_eq!(before["enabled"], true, "{before:#}");
        let said = lab::control_command(
            &topo.control_socket(),
            "config",
            &["--verbose", "vstack vlan 1,10"],
        )
        .expect("vstack vlan");
        assert_eq!(said, "vlan: 1 -> 1,10\n");
        let quiet = lab::control_command(&topo.control_socket(), "config", &["vstack vlan 1,10"])
            .expect("vstack vlan again");
        assert_eq!(quiet, "", "a successful line prints nothing, as on IOS");

        // What an IOS engineer types: help, a caret under a wrong word,
        // the debug switches that are on.
        let socket = topo.control_socket();
        let help = lab::control_command(&socket, "config", &["vst ?"]).expect("vst ?");
        assert!(
            help.contains("  proxy             Configure smi pnp proxy feature\n"),
            "{help}"
        );
        let show_help = lab::show(&topo, &["vst", "?"]).expect("show vst ?");
        assert!(show_help.contains("  proxy-db         show the proxy database\n"), "{show_help}");
        let refused = lab::control_command(&socket, "config", &["vstack proxi ip-address 192.0.2.1"])
            .expect_err("a typo is refused");
        assert!(
            refused.to_string().contains(
                "vstack proxi ip-address 192.0.2.1\n       ^\n% Invalid input detected at '^' marker."
            ),
            "{refused:#}"
        );
        lab::control_command(&socket, "debug", &["vstack", "download"]).expect("debug");
        let debugging = lab::show(&topo, &["debugging"]).expect("show debugging");
        assert!(
            debugging.contains("  vstack download debugging is on\n"),
            "{debugging}"
        );
        lab::control_command(&socket, "undebug", &["vstack", "download"]).expect("undebug");
        assert_eq!(lab::show(&topo, &["debugging"]).expect("show debugging"), "");
        assert_eq!(show(&topo)["management_vlans"], serde_json::json!([1, 10]));
        let saved = proxy::config::ProxyConfig::load(&config_file).expect("saved file");
        assert_eq!(saved.management_vlans, [1, 10]);
        assert_eq!(saved.interface.as_deref(), Some(topo.l3_iface()));
        assert_eq!(saved.ip_address, None);
    });
    daemon.stop().expect("clean stop");
}

#[test]
fn hostile_peers_leave_the_proxy_serving() {
    use proxy_tests::emulator::{SwitchConfig, net::tcp_connect_in};
    use proxy_tests::frames::smi_header;
    require_root();
    let p = unique_prefix("smh");
    let topo = Topology::build(&p).expect("topology");
    let daemon = Daemon::start(&topo, &DaemonOptions::default()).expect("daemon");
    let rt = lab::test_runtime();
    rt.block_on(async {
        let _dhcp = site_dhcp(&topo).await;
        let mut emu = switches(&topo, 2).await;
        wait_events(&mut emu, 2, Duration::from_secs(60), |e| {
            matches!(e, Event::TelnetDone { .. })
        })
        .await;
        let admitted = emu.switch(0).clone();
        let proxy = SocketAddr::from((PROXY_IP, 4786));

        // An oversize length word from an admitted client: dropped in XDP.
        let mut oversize = smi_header(4, 0, 3, 0x7fff_ffff);
        oversize.extend_from_slice(&[0; 8]);
        let ex = admitted
            .connect_smi_to(PROXY_IP, &oversize)
            .await
            .expect("oversize");
        assert!(ex.reply.is_empty());
        // Garbage: reaches the listener, which refuses it and closes.
        let ex = admitted
            .connect_smi_to(PROXY_IP, b"GET / HTTP/1.0\r\n\r\nxxxxxxxx")
            .await
            .expect("garbage");
        assert!(ex.reply.is_empty() && ex.closed, "closed silently: {ex:?}");
        // 1,000 simultaneous connects, held open without a byte (half-open).
        let mut held = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..1000 {
            let ns = admitted.netns().expect("namespace mode").to_owned();
            tasks.spawn(async move { tcp_connect_in(&ns, proxy, Duration::from_secs(10)).await });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok(Ok(stream)) = r {
                held.push(stream);
            }
        }
        assert!(
            held.len() > 256,
            "connects mostly succeed at TCP level: {}",
            held.len()
        );
        // A host the proxy never admitted (own MAC, static address): XDP drops its SYNs.
        let stranger = proxy_tests::netns::NetNs::new(&format!("{p}x")).expect("netns");
        topo.sw
            .ip(&[
                "link",
                "add",
                "mvx",
                "link",
                "sw0",
                "address",
                "02:66:00:00:00:01",
                "type",
                "macvlan",
                "mode",
                "bridge",
            ])
            .expect("macvlan");
        topo.sw
            .ip(&["link", "set", "mvx", "netns", stranger.name()])
            .expect("move");
        stranger
            .ip(&["addr", "add", "192.0.2.99/24", "dev", "mvx"])
            .expect("address");
        stranger.ip(&["link", "set", "mvx", "up"]).expect("up");
        assert!(
            tcp_connect_in(stranger.name(), proxy, Duration::from_secs(2))
                .await
                .is_err()
        );
        drop(held);

        // The proxy still serves: a switch that boots now is identified.
        let mut late_cfg = topo.emulator_config(&format!("{p}l"), 0);
        late_cfg.switches = vec![SwitchConfig::numbered(100)];
        let mut late = Emulator::start(late_cfg).await.expect("late emulator");
        wait_events(&mut late, 1, Duration::from_secs(60), |e| {
            matches!(e, Event::TelnetDone { .. })
        })
        .await;
        let udi = late.switch(0).show_version().udi();
        proxy_db_until(&topo, Duration::from_secs(20), |v| {
            v["entries"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["udi"] == udi.as_str()))
        })
        .await;

        let m = lab::metrics(&topo).expect("metrics");
        let get = |s: &str| lab::metric(&m, s).unwrap_or(0);
        assert!(
            get("smi_proxy_xdp_frames_total{counter=\"smi_drop_oversize\"}") >= 1,
            "{m}"
        );
        assert!(
            get("smi_proxy_xdp_frames_total{counter=\"smi_drop_not_admitted\"}") >= 1,
            "{m}"
        );
        assert!(
            get("smi_proxy_smi_inbound_total{event=\"malformed\"}") >= 1,
            "{m}"
        );
        assert!(
            get("smi_proxy_smi_inbound_total{event=\"refused_busy\"}") >= 1,
            "{m}"
        );
    });
    daemon.stop().expect("clean stop");
}

#[test]
fn daemon_killed_mid_onboarding_loses_nothing_netns() {
    daemon_killed(EmulatorMode::Netns);
}

#[test]
fn daemon_killed_mid_onboarding_loses_nothing_packet() {
    daemon_killed(EmulatorMode::Packet);
}

/// A daemon killed twice mid-onboarding loses no switch.
fn daemon_killed(mode: EmulatorMode) {
    require_root();
    let p = unique_prefix("smk");
    let topo = Topology::for_emulator(&p, mode).expect("topology");
    let rt = lab::test_runtime();
    rt.block_on(async {
        let _dhcp = site_dhcp(&topo).await;
        let mut daemon = Daemon::start(&topo, &DaemonOptions::default()).expect("daemon");
        let mut cfg = topo.emulator_config(&p, 30);
        cfg.boot_spread = Duration::from_secs(3);
        let mut emu = Emulator::start(cfg).await.expect("emulator");
        // kill -9 twice while switches are being identified, by progress.
        for _ in 0..2 {
            wait_events(&mut emu, 8, Duration::from_secs(120), |e| {
                matches!(e, Event::TelnetDone { .. })
            })
            .await;
            daemon.kill9().expect("kill -9");
            daemon = Daemon::start(&topo, &DaemonOptions::default()).expect("restart");
        }
        let db = proxy_db_until(&topo, Duration::from_secs(180), |v| udis_known(v) == 30).await;
        let entries = db["entries"].as_array().expect("entries");
        assert_eq!(
            entries.len(),
            30,
            "one entry per switch, none lost, none duplicated"
        );
        for sw in emu.switches() {
            let c = sw.config();
            let mac = proxy::store::Mac(c.mac).to_string();
            let n = entries.iter().filter(|e| e["mac"] == mac.as_str()).count();
            assert_eq!(n, 1, "{mac} appears once");
        }
        daemon.stop().expect("clean stop");
    });
}
