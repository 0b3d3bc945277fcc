//! The switch ends as the PnP server asked: after every job order, with and
//! without a reload after the configuration, and across a proxy restart
//! between two jobs, each emulated switch's startup configuration is byte
//! for byte the one the server installed and it runs the image the server
//! asked for. Checked on the switches (what they would boot with), and the
//! tailored configuration reaches each switch exactly once. In network
//! namespaces this test creates, with the XDP program attached. Needs root.
use std::time::Duration;

use proxy::pnp::codec::{ApplyTo, DeviceInfoType};
use proxy::smi::codec::Message;
use proxy::udi::Udi;
use proxy_tests::dhcp_server::DhcpServer;
use proxy_tests::emulator::{Emulator, EmulatorConfig, SwitchConfig, SwitchHandle};
use proxy_tests::end_state::{self, Expected};
use proxy_tests::lab::{self, Daemon, DaemonOptions, PNP_IP, Topology};
use proxy_tests::netns::{require_root, unique_prefix};
use proxy_tests::pnp_server::{LogEntry, PnpServer, Script, Step};

const IMAGE: &str = "c2960-lanbasek9-tar.150-2.SE11.tar";
const NEW_VERSION: &str = "15.0(2)SE11";
const PNP_PORT: u16 = 8080;
/// Longest a scenario may take before the test fails (the proxy's own
/// retries are far shorter).
const WITHIN: Duration = Duration::from_secs(240);

fn udi_of(sw: &SwitchConfig) -> Udi {
    format!("PID:{},VID:{},SN:{}", sw.pid, sw.vid, sw.sn)
        .parse()
        .expect("UDI of an emulated switch")
}

/// The configuration the server installs on switch `i` (each its own, so
/// that one switch's file landing on another shows).
fn site_config(i: usize) -> Vec<u8> {
    format!("hostname site-{i}\n!\ninterface Vlan1\n ip address dhcp\n!\nend\n").into_bytes()
}

fn config_name(i: usize) -> String {
    format!("site-{i}.cfg")
}

fn config_step(i: usize, reload: bool) -> Step {
    Step::ConfigUpgrade {
        apply_to: ApplyTo::Startup,
        file: config_name(i),
        reload,
    }
}

fn image_step() -> Step {
    Step::ImageInstall {
        file: IMAGE.into(),
        md5: None,
    }
}

/// A lab: topology, PnP server (with the image and one configuration per
/// switch), site DHCP server.
struct Lab {
    topo: Topology,
    rt: tokio::runtime::Runtime,
    server: PnpServer,
    _dhcp: DhcpServer,
}

impl Lab {
    fn start(prefix: &str, switches: usize) -> Self {
        let topo = Topology::build(&unique_prefix(prefix)).expect("topology");
        let rt = lab::test_runtime();
        let server = lab::pnp_server_in(&rt, &topo, PNP_PORT).expect("PnP server");
        let (image, _) = proxy_tests::pnp_server::fake_image(64 * 1024);
        server.add_image(IMAGE, image);
        for i in 0..switches {
            server.add_config(&config_name(i), site_config(i));
        }
        let dhcp = rt.block_on(lab::site_dhcp(&topo)).expect("DHCP server");
        Self {
            topo,
            rt,
            server,
            _dhcp: dhcp,
        }
    }

    fn daemon(&self) -> Daemon {
        Daemon::start(
            &self.topo,
            &DaemonOptions {
                pnp_server: Some(format!("http://{PNP_IP}:{PNP_PORT}")),
                ..DaemonOptions::default()
            },
        )
        .expect("daemon")
    }

    /// `scripts.len()` switches of the default mix, switch `i` driven by
    /// `scripts[i]`.
    fn switches(&self, scripts: &[Vec<Step>]) -> Emulator {
        let cfg = EmulatorConfig::new(
            self.topo.sw.name(),
            "sw0",
            &self.topo.prefix,
            scripts.len() as u32,
        );
        for (sw, steps) in cfg.switches.iter().zip(scripts) {
            self.server
                .set_script(&udi_of(sw), Script::new(steps.clone()));
        }
        self.rt.block_on(Emulator::start(cfg)).expect("emulator")
    }

    /// Waits until the server holds `n(i)` job responses from switch `i`.
    fn responses(&self, emu: &Emulator, n: impl Fn(usize) -> usize) {
        self.rt.block_on(async {
            for sw in emu.switches() {
                let n = n(sw.position());
                let udi = udi_of(sw.config());
                let waited = tokio::time::timeout(
                    WITHIN,
                    self.server.wait_for(&udi, |log| responses(log) >= n),
                )
                .await;
                assert!(
                    waited.is_ok(),
                    "switch {} ({udi}): {} of {n} responses within {WITHIN:?}; log {:?}",
                    sw.position(),
                    responses(&self.server.log(&udi)),
                    self.server.log(&udi)
                );
            }
        });
    }
}

fn responses(log: &[LogEntry]) -> usize {
    log.iter().filter(|e| e.response().is_some()).count()
}

/// Every response in the server's log for this switch succeeded.
fn all_succeeded(server: &PnpServer, sw: &SwitchHandle) {
    let log = server.log(&udi_of(sw.config()));
    for r in log.iter().filter_map(LogEntry::response) {
        assert!(
            r.success,
            "switch {}: {} failed: {:?}",
            sw.position(),
            r.service.name(),
            r.error
        );
    }
}

/// How often the switch was sent the tailored configuration.
fn tailored_pushes(sw: &SwitchHandle) -> usize {
    sw.received()
        .iter()
        .filter(|m| {
            matches!(m, Message::ConfigUpgrade { url, .. } if url.ends_with("client_cfg_pnp.txt"))
        })
        .count()
}

/// Each switch against its own configuration, then the operator's view.
fn assert_end_state(lab: &Lab, emu: &Emulator, image_tar: Option<&str>) {
    for sw in emu.switches() {
        let config = site_config(sw.position());
        let report = end_state::check(
            std::slice::from_ref(sw),
            &Expected {
                startup_config: &config,
                image_tar,
            },
        );
        assert!(report.all_as_asked(), "{report}");
        assert_eq!(
            tailored_pushes(sw),
            1,
            "switch {}: the tailored configuration is for the first identification only",
            sw.position()
        );
        all_succeeded(&lab.server, sw);
    }
    let detail = lab::show(&lab.topo, &["vstack", "download-status", "detail"]).expect("show");
    for sw in emu.switches() {
        assert!(
            detail.contains(&format!(
                "startup config: {} (from PnP server)",
                config_name(sw.position())
            )),
            "{detail}"
        );
    }
    if image_tar.is_some() {
        assert_eq!(
            detail.matches("(verified)").count(),
            emu.switches().len(),
            "{detail}"
        );
    }
}

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
    daemon.stop().expect("clean stop");
}
