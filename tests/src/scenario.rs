//! Scenarios of the end-to-end tests that check the end state on the
//! switches: a lab with a PnP server holding one configuration per switch
//! and the image, per-switch job scripts, and the checks.
use std::time::Duration;

use crate::dhcp_server::DhcpServer;
use crate::emulator::{Emulator, EmulatorMode, Sent, SwitchConfig, SwitchHandle};
use crate::end_state::{self, Expected};
use crate::lab::{self, Daemon, DaemonOptions, PNP_IP, Topology};
use crate::netns::unique_prefix;
use crate::pnp_server::{ApplyTo, LogEntry, PnpServer, Script, Step, Udi};

/// The image the scenarios install.
pub const IMAGE: &str = "c2960-lanbasek9-tar.150-2.SE11.tar";
/// The version a switch runs after installing [`IMAGE`].
pub const NEW_VERSION: &str = "15.0(2)SE11";
/// The PnP server's port.
pub const PNP_PORT: u16 = 8080;
/// Longest a scenario may take before the test fails (the proxy's own
/// retries are far shorter).
pub const WITHIN: Duration = Duration::from_secs(240);

/// The UDI an emulated switch reports.
pub fn udi_of(sw: &SwitchConfig) -> Udi {
    format!("PID:{},VID:{},SN:{}", sw.pid, sw.vid, sw.sn)
        .parse()
        .expect("UDI of an emulated switch")
}

/// The configuration the server installs on switch `i` (each its own, so
/// that one switch's file landing on another shows).
pub fn site_config(i: usize) -> Vec<u8> {
    format!("hostname site-{i}\n!\ninterface Vlan1\n ip address dhcp\n!\nend\n").into_bytes()
}

/// The name switch `i`'s configuration is served under.
pub fn config_name(i: usize) -> String {
    format!("site-{i}.cfg")
}

/// A config-upgrade (startup) of switch `i`'s configuration.
pub fn config_step(i: usize, reload: bool) -> Step {
    Step::ConfigUpgrade {
        apply_to: ApplyTo::Startup,
        file: config_name(i),
        reload,
    }
}

/// An image-install of [`IMAGE`].
pub fn image_step() -> Step {
    Step::ImageInstall {
        file: IMAGE.into(),
        md5: None,
    }
}

/// A lab for end-state scenarios: topology, PnP server (with the image and one configuration per
/// switch), site DHCP server.
pub struct Lab {
    /// The namespaces.
    pub topo: Topology,
    /// The runtime of the peers.
    pub rt: tokio::runtime::Runtime,
    /// The PnP server.
    pub server: PnpServer,
    _dhcp: DhcpServer,
}

impl Lab {
    /// Builds the lab for `switches` namespace switches (prefix `prefix`).
    pub fn start(prefix: &str, switches: usize) -> Self {
        Self::start_in(prefix, switches, EmulatorMode::Netns)
    }

    /// Builds the lab for `switches` switches running in `mode`.
    pub fn start_in(prefix: &str, switches: usize, mode: EmulatorMode) -> Self {
        let topo = Topology::for_emulator(&unique_prefix(prefix), mode).expect("topology");
        let rt = lab::test_runtime();
        let server = lab::pnp_server_in(&rt, &topo, PNP_PORT).expect("PnP server");
        stock(&server, switches);
        let dhcp = rt.block_on(lab::site_dhcp(&topo)).expect("DHCP server");
        Self {
            topo,
            rt,
            server,
            _dhcp: dhcp,
        }
    }

    /// Starts the daemon (flags, the PnP server as its profile).
    pub fn daemon(&self) -> Daemon {
        Daemon::start(
            &self.topo,
            &DaemonOptions {
                pnp_server: Some(format!("http://{PNP_IP}:{PNP_PORT}")),
                ..DaemonOptions::default()
            },
        )
        .expect("daemon")
    }

    /// Starts the daemon from a configuration file: `top` (top-level
    /// keys), the lab's settings, this server as profile `pnp-zero-touch`,
    /// then `tables` (TOML tables, e.g. another profile).
    pub fn daemon_from_file(&self, top: &str, tables: &str) -> Daemon {
        let file = self.topo.state_dir.join("config.toml");
        let url = format!("http://{PNP_IP}:{PNP_PORT}");
        let text = format!("{top}{}{tables}", self.topo.config_toml(Some(&url)));
        std::fs::write(&file, text).expect("config file");
        Daemon::start(
            &self.topo,
            &DaemonOptions {
                config_file: Some(file),
                ..DaemonOptions::default()
            },
        )
        .expect("daemon")
    }

    /// Enters one configuration line, as an operator does; the answer.
    pub fn config(&self, line: &str) -> String {
        lab::control_command(&self.topo.control_socket(), "config", &[line])
            .unwrap_or_else(|e| panic!("{line}: {e:#}"))
    }

    /// `scripts.len()` switches of the default mix, switch `i` driven by
    /// `scripts[i]`.
    pub fn switches(&self, scripts: &[Vec<Step>]) -> Emulator {
        self.switches_booting_over(scripts, Duration::ZERO)
    }

    /// As [`Lab::switches`], their boots spread evenly over `spread`.
    pub fn switches_booting_over(&self, scripts: &[Vec<Step>], spread: Duration) -> Emulator {
        let mut cfg = self
            .topo
            .emulator_config(&self.topo.prefix, scripts.len() as u32);
        cfg.boot_spread = spread;
        set_scripts(&self.server, &cfg.switches, scripts);
        self.rt.block_on(Emulator::start(cfg)).expect("emulator")
    }

    /// Waits until the server holds `n(i)` job responses from switch `i`.
    pub fn responses(&self, emu: &Emulator, n: impl Fn(usize) -> usize) {
        self.responses_on(&self.server, emu, n);
    }

    /// [`Lab::responses`] on another server.
    pub fn responses_on(&self, server: &PnpServer, emu: &Emulator, n: impl Fn(usize) -> usize) {
        self.rt.block_on(async {
            for sw in emu.switches() {
                let n = n(sw.position());
                let udi = udi_of(sw.config());
                let waited =
                    tokio::time::timeout(WITHIN, server.wait_for(&udi, |log| responses(log) >= n))
                        .await;
                assert!(
                    waited.is_ok(),
                    "switch {} ({udi}): {} of {n} responses within {WITHIN:?}; log {:?}",
                    sw.position(),
                    responses(&server.log(&udi)),
                    server.log(&udi)
                );
            }
        });
    }
}

/// Gives switch `i` of `switches` the script `scripts[i]` on `server`.
pub fn set_scripts(server: &PnpServer, switches: &[SwitchConfig], scripts: &[Vec<Step>]) {
    for (sw, steps) in switches.iter().zip(scripts) {
        server.set_script(&udi_of(sw), Script::new(steps.clone()));
    }
}

/// A server that holds the image and every switch's configuration.
pub fn stock(server: &PnpServer, switches: usize) {
    let (image, _) = crate::pnp_server::fake_image(64 * 1024);
    server.add_image(IMAGE, image);
    for i in 0..switches {
        server.add_config(&config_name(i), site_config(i));
    }
}

/// Job responses in a server log.
pub fn responses(log: &[LogEntry]) -> usize {
    log.iter().filter(|e| e.response().is_some()).count()
}

/// Every response in the server's log for this switch succeeded.
pub fn all_succeeded(server: &PnpServer, sw: &SwitchHandle) {
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
pub fn tailored_pushes(sw: &SwitchHandle) -> usize {
    sw.received()
        .iter()
        .filter(
            |m| matches!(m, Sent::ConfigUpgrade { url, .. } if url.ends_with("client_cfg_pnp.txt")),
        )
        .count()
}

/// Each switch got the tailored configuration once (identification
/// happens once), and every one of its jobs on `lab`'s server succeeded.
pub fn assert_identified_once(lab: &Lab, emu: &Emulator) {
    for sw in emu.switches() {
        assert_eq!(
            tailored_pushes(sw),
            1,
            "switch {}: the tailored configuration is for the first identification only",
            sw.position()
        );
        all_succeeded(&lab.server, sw);
    }
}

/// Each switch against its own configuration (on the switch), then the
/// operator's view (`show vstack download-status detail`).
pub fn assert_end_state(lab: &Lab, emu: &Emulator, image_tar: Option<&str>) {
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
