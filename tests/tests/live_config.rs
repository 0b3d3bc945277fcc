//! `vstack` commands act when entered, on a running daemon and while
//! switches onboard: `no vstack` stops the director at once and `vstack`
//! resumes every known client without identifying it again; a new PnP
//! profile moves the agents to another server; a DHCP pool starts serving.
//! In network namespaces this test creates, with the XDP program attached.
//! Needs root.
use std::collections::BTreeSet;
use std::time::Duration;

use proxy::pnp::codec::DeviceInfoType;
use proxy_tests::emulator::{Emulator, Event};
use proxy_tests::lab::{self, PNP_IP};
use proxy_tests::netns::require_root;
use proxy_tests::pnp_server::Step;
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
    let daemon = lab.daemon_from_file("");
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
    let daemon = lab.daemon_from_file(&format!(
        "\n[pnp_profiles.second]\nserver_url = \"http://{PNP_IP}:8081\"\n"
    ));
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
