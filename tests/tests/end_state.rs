//! The switch ends as the PnP server asked: after every job order, with and
//! without a reload after the configuration, and across a proxy restart
//! between two jobs, each emulated switch's startup configuration is byte
//! for byte the one the server installed and it runs the image the server
//! asked for. Checked on the switches (what they would boot with), and the
//! tailored configuration reaches each switch exactly once. In network
//! namespaces this test creates, with the XDP program attached. Needs root.
use proxy::pnp::codec::DeviceInfoType;
use proxy_tests::netns::require_root;
use proxy_tests::pnp_server::Step;
use proxy_tests::scenario::{
    IMAGE, Lab, NEW_VERSION, assert_end_state, assert_identified_once, config_step, image_step,
    site_config,
};

#[test]
fn every_job_order_ends_as_the_server_asked() {
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
    let lab = Lab::start("sms", scripts.len());
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
fn a_proxy_restart_between_jobs_keeps_the_installed_configuration() {
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
    let lab = Lab::start("smr", scripts.len());
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
