//! The switch ends as the PnP server asked: after every job order, with and
//! without a reload after the configuration, and across a proxy restart
//! between two jobs, each emulated switch's startup configuration is byte
//! for byte the one the server installed and it runs the image the server
//! asked for. Checked on the switches (what they would boot with), and the
//! tailored configuration reaches each switch exactly once. In network
//! namespaces this test creates, with the XDP program attached. Needs root.
use proxy_tests::emulator::{Emulator, EmulatorMode, identity};
use proxy_tests::end_state::{self, Expected};
use proxy_tests::lab;
use proxy_tests::netns::require_root;
use proxy_tests::pnp_server::{DeviceInfoType, Step};
use proxy_tests::scenario::{
    IMAGE, Lab, NEW_VERSION, assert_end_state, assert_identified_once, config_step, image_step,
    site_config,
};

#[test]
fn every_job_order_ends_as_the_server_asked_netns() {
    job_orders(EmulatorMode::Netns);
}

#[test]
fn every_job_order_ends_as_the_server_asked_packet() {
    job_orders(EmulatorMode::Packet);
}

/// Four job orders, each on its own switch.
fn job_orders(mode: EmulatorMode) {
    require_root();
    let scripts = vec![
        // Configuration, then image.
        vec![
            Step::DeviceInfo(DeviceInfoType::All),
            config_step(0, false),
            image_step(),
        ],
        // Image, then configuration with a reload.
        vec![image_step(), config_step(1, true)],
        // Configuration with a reload, then image.
        vec![config_step(2, true), image_step()],
        // Image, then configuration.
        vec![image_step(), config_step(3, false)],
    ];
    let lab = Lab::start_in("sms", scripts.len(), mode);
    let daemon = lab.daemon();
    let emu = lab.switches(&scripts);
    lab.responses(&emu, |i| scripts[i].len());
    for (sw, steps) in emu.switches().iter().zip(&scripts) {
        let config_reloads = steps
            .iter()
            .filter(|s| matches!(s, Step::ConfigUpgrade { reload: true, .. }))
            .count();
        assert_eq!(
            sw.reloads() as usize,
            1 + config_reloads,
            "switch {}: one reload for the image, one per config-upgrade that asks",
            sw.position()
        );
        assert_eq!(sw.version(), NEW_VERSION, "switch {}", sw.position());
    }
    assert_end_state(&lab, &emu, Some(IMAGE));
    assert_identified_once(&lab, &emu);
    daemon.stop().expect("clean stop");
}

#[test]
fn a_proxy_restart_between_jobs_keeps_the_installed_configuration_netns() {
    restart_between_jobs(EmulatorMode::Netns);
}

#[test]
fn a_proxy_restart_between_jobs_keeps_the_installed_configuration_packet() {
    restart_between_jobs(EmulatorMode::Packet);
}

/// A kill -9 and restart between the configuration and the image.
fn restart_between_jobs(mode: EmulatorMode) {
    require_root();
    // The backoff holds the image job back: the restart lands between the
    // two jobs, and the new daemon's agents ask for work at once.
    let steps = |i| {
        vec![
            config_step(i, false),
            Step::Backoff { secs: 600 },
            image_step(),
        ]
    };
    let scripts = vec![steps(0), steps(1)];
    let lab = Lab::start_in("smr", scripts.len(), mode);
    let daemon = lab.daemon();
    let emu = lab.switches(&scripts);
    lab.responses(&emu, |_| 2);
    for sw in emu.switches() {
        assert_eq!(
            sw.startup_config(),
            Some(site_config(sw.position())),
            "the configuration is installed before the restart"
        );
    }
    daemon.kill9().expect("kill -9");
    let daemon = lab.daemon();
    lab.responses(&emu, |_| 3);
    for sw in emu.switches() {
        assert_eq!(sw.reloads(), 1, "switch {}", sw.position());
        assert_eq!(sw.version(), NEW_VERSION, "switch {}", sw.position());
    }
    assert_end_state(&lab, &emu, Some(IMAGE));
    assert_identified_once(&lab, &emu);
    daemon.stop().expect("clean stop");
}

#[test]
fn a_stack_back_under_a_new_mac_keeps_one_agent_netns() {
    new_mac(EmulatorMode::Netns);
}

#[test]
fn a_stack_back_under_a_new_mac_keeps_one_agent_packet() {
    new_mac(EmulatorMode::Packet);
}

/// A stack back under another MAC keeps its one agent.
fn new_mac(mode: EmulatorMode) {
    require_root();
    let lab = Lab::start_in("smt", 1, mode);
    let daemon = lab.daemon();
    // Short backoffs: an agent left running at the old MAC would come
    // back for work and take some of the jobs.
    const HOLD: usize = 6;
    let mut script = vec![Step::DeviceInfo(DeviceInfoType::All)];
    script.extend((0..HOLD).map(|_| Step::Backoff { secs: 2 }));
    script.extend([config_step(0, false), image_step()]);
    let steps = script.len();
    let first = lab.switches(&[script]);
    lab.responses(&first, |_| 2);
    // The same stack comes back: its new active member has another MAC.
    let mut member = first.switches()[0].config().clone();
    member.mac = identity::mac_for(0x100);
    let mut cfg = lab
        .topo
        .emulator_config(&format!("{}n", lab.topo.prefix), 0);
    cfg.switches = vec![member];
    let second = lab.rt.block_on(Emulator::start(cfg)).expect("emulator");
    // The server's remaining jobs all reach the new MAC.
    lab.responses(&second, |_| steps);
    let (old, new) = (&first.switches()[0], &second.switches()[0]);
    let report = end_state::check(
        std::slice::from_ref(new),
        &Expected {
            startup_config: &site_config(0),
            image_tar: Some(IMAGE),
        },
    );
    assert!(report.all_as_asked(), "{report}");
    assert_eq!(old.reloads(), 0, "the old MAC got no job");
    assert_ne!(old.startup_config(), Some(site_config(0)));
    // Both entries stay; the old MAC shows Inactive.
    let text = lab::show(&lab.topo, &["vstack", "proxy-db", "--json"]).expect("proxy-db");
    let db: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let entries = db["entries"].as_array().expect("entries");
    let health = |mac: [u8; 6]| {
        let mac = proxy::store::Mac(mac).to_string();
        entries
            .iter()
            .find(|e| e["mac"] == mac.as_str())
            .map(|e| e["health_active"].clone())
    };
    assert_eq!(entries.len(), 2, "{db:#}");
    assert_eq!(health(old.mac()), Some(serde_json::json!(false)), "{db:#}");
    assert_eq!(health(new.mac()), Some(serde_json::json!(true)), "{db:#}");
    daemon.stop().expect("clean stop");
}
