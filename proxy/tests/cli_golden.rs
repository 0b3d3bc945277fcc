//! The operator commands end to end: a control server in this process with
//! a handler holding chapter-like data, and the real `smi-proxy` binary
//! talking to it. Outputs are compared line by line with the IOS layout.
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use proxy::config::{self, LocalAddrs, PnpProfileConfig, ProxyConfig};
use proxy::control::{ControlHandler, ControlServer};
use proxy::logging;
use proxy::show::{ClientView, ShowView};
use proxy::store::{ClientRecord, EntryState, JobStatus, Method};
use tokio_util::sync::CancellationToken;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The daemon's side: configuration, this machine's addresses, clients.
struct Golden {
    config: Mutex<ProxyConfig>,
    local: LocalAddrs,
    clients: Vec<ClientView>,
}

impl ControlHandler for Golden {
    fn show_view(&self) -> ShowView {
        let shown = match self.config.lock() {
            Ok(cfg) => cfg.show_config(cfg.proxy_ip(&self.local).ok().flatten()),
            Err(poisoned) => poisoned.into_inner().show_config(None),
        };
        ShowView {
            config: shown,
            clients: self.clients.clone(),
        }
    }

    fn apply_config(&self, line: &str) -> Result<String, String> {
        let mut cfg = self.config.lock().map_err(|e| format!("% {e}"))?;
        config::execute(&mut cfg, line, &self.local)
            .map(|changes| config::summary(&changes))
            .map_err(|e| e.to_string())
    }

    fn set_debug(&self, target: &str, on: bool) -> Result<String, String> {
        let switch = logging::resolve(target).map_err(|e| e.to_string())?;
        Ok(logging::confirmation(switch.name, on))
    }
}

/// The chapter's `show vstack proxy-db` client, and the first client of
/// its `show vstack download-status` example.
fn clients() -> Result<Vec<ClientView>, Box<dyn std::error::Error>> {
    let mut known = ClientRecord::new("001e.f76d.af80".parse()?, 1_301_450_000);
    known.ip = Some(Ipv4Addr::new(5, 1, 1, 4));
    known.udi = Some("PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R".parse()?);
    known.state = EntryState::NoState;

    let mut upgrading = ClientRecord::new("001e.be67.3000".parse()?, 1_301_450_000);
    upgrading.ip = Some(Ipv4Addr::new(172, 20, 249, 3));
    upgrading.state = EntryState::Upgrading;
    upgrading.job.method = Some(Method::ImageUpgrade);
    upgrading.job.image.status = JobStatus::Upgraded;
    upgrading.job.image.downloaded_at = Some(1_301_453_259);
    Ok(vec![
        ClientView {
            record: known,
            health_active: true,
        },
        ClientView {
            record: upgrading,
            health_active: false,
        },
    ])
}

/// A control server on a runtime of its own; stopped when dropped.
struct Daemon {
    socket: PathBuf,
    cancel: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Daemon {
    fn start(tag: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let dir =
            std::env::temp_dir().join(format!("smi-proxy-golden-{}-{tag}", std::process::id()));
        let socket = dir.join("control.sock");
        let mut cfg = ProxyConfig {
            interfaces: vec!["eth1".to_owned()],
            ip_address: Some(Ipv4Addr::new(4, 1, 1, 1)),
            ..ProxyConfig::default()
        };
        cfg.pnp_profiles.insert(
            config::DEFAULT_PNP_PROFILE.to_owned(),
            PnpProfileConfig::new("http://192.0.2.10:9000"),
        );
        cfg.validate()?;
        let handler = Arc::new(Golden {
            config: Mutex::new(cfg),
            local: LocalAddrs::new().with("vlan1", &[Ipv4Addr::new(4, 1, 1, 1)]),
            clients: clients()?,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let server = runtime.block_on(ControlServer::bind(&socket))?;
        let cancel = CancellationToken::new();
        runtime.spawn(server.run(handler, cancel.clone()));
        Ok(Self {
            socket,
            cancel,
            runtime: Some(runtime),
        })
    }

    /// Runs `smi-proxy <args> --socket <socket>`.
    fn run(&self, args: &[&str]) -> std::io::Result<Output> {
        smi_proxy(args, &self.socket)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.socket);
        if let Some(dir) = self.socket.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn smi_proxy(args: &[&str], socket: &Path) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_smi-proxy"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .env_remove("RUST_LOG")
        .output()
}

/// Asserts success and compares standard output line by line.
fn assert_stdout(output: &Output, expected: &[&str]) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for (i, (a, e)) in lines.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "line {} differs\nwhole output:\n{stdout}", i + 1);
    }
    assert_eq!(
        lines.len(),
        expected.len(),
        "line count differs\nwhole output:\n{stdout}"
    );
    assert!(stdout.ends_with('\n'));
}

/// Asserts success with nothing printed.
fn assert_silent(output: &Output) {
    assert!(output.status.success(), "exit {:?}", output.status);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// Asserts a refusal: exit status 1, nothing on standard output, `expected`
/// on standard error.
fn assert_refused(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(stderr, format!("{expected}\n"));
}

#[test]
fn show_vstack_proxy_db() -> TestResult {
    let d = Daemon::start("proxy-db")?;
    assert_stdout(
        &d.run(&["show", "vstack", "proxy-db"])?,
        &[
            "Smi PnP Proxy:      ENABLED",
            "",
            "Proxy Database:",
            "MAC ADDR          UDI                                          State",
            "----------------  -------------------------------------------  -----",
            "001e.f76d.af80    PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R    NO STATE",
            "001e.be67.3000    -                                            UPGRADING",
            "",
            "Status: Health_status",
            "Health_status: A - Active I - Inactive",
            "Proxy Database:",
            "MAC ADDR          IP_addr           Hostname           Status",
            "----------------  ----------------  -----------------  ------",
            "001e.f76d.af80    5.1.1.4           Switch             A",
            "001e.be67.3000    172.20.249.3      Switch             I",
        ],
    );
    assert_stdout(
        &d.run(&["show", "vst", "proxy", "det"])?,
        &[
            "Smi PnP Proxy:      ENABLED",
            "",
            "-----",
            "Device ID         : Switch",
            "MAC Address       : 001e.f76d.af80",
            "IP Addr           : 5.1.1.4",
            "UDI               : PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R",
            "state             : NO STATE",
            "status            : A",
            "-----",
            "Device ID         : Switch",
            "MAC Address       : 001e.be67.3000",
            "IP Addr           : 172.20.249.3",
            "UDI               : -",
            "state             : UPGRADING",
            "status            : I",
        ],
    );
    Ok(())
}

#[test]
fn show_vstack_config_status_and_downloads() -> TestResult {
    let d = Daemon::start("config")?;
    assert_stdout(
        &d.run(&["show", "vstack", "config"])?,
        &[
            "Role: SMI PnP Proxy",
            "Vstack SMI PnP Proxy IP address: 4.1.1.1",
            "Vstack default management vlan: 1",
            "Vstack start-up management vlan: 1",
            "Vstack management Vlans: 1",
        ],
    );
    assert_stdout(
        &d.run(&["show", "vstack", "status"])?,
        &[
            "SmartInstall: ENABLED",
            "Status: Device_type Health_status Join-window_status Upgrade_status",
            "Device_type: S - Smart install N - Non smart install P - Pending",
            "Health_status: A - Active I - Inactive",
            "Join-window_Status: a - Allowed h - On-hold d - Denied",
            "Image Upgrade: i - in progress I - done X - failed",
            "Config Upgrade: c - in progress C - done x - failed",
            "Script Upgrade: p - in progress P - done F - failed",
            "Director Database:",
            "DevNo  MAC Address       Product-ID         IP_addr           Hostname          Status",
            "=====  ================  =================  ================  ================  ======",
            "1      001e.f76d.af80    WS-C3750E-48TD     5.1.1.4           Switch            S A a",
            "2      001e.be67.3000    -                  172.20.249.3      Switch            P I a I",
        ],
    );
    assert_stdout(
        &d.run(&["show", "vstack", "download-status"])?,
        &[
            "Total no of entries : 1",
            "No  client-IP       client-MAC     Method          Image-status  Config-status  Script-status",
            "=== =============== ============== =============== ============= ============== =============",
            "1   172.20.249.3    001e.be67.3000 image-upgrade   UPGRADED      **             **",
        ],
    );
    assert_stdout(
        &d.run(&["show", "vstack", "download-status", "detail"])?,
        &[
            "SmartInstall: ENABLED",
            "",
            "No 1:",
            "client-ip: 172.20.249.3",
            "client-hostname: Switch",
            "client-mac: 001e.be67.3000",
            "method: image-upgrade",
            "config-fail-reason: NA",
            "image-fail-reason: NA",
            "script-fail-reason: NA",
            "config downloaded at: -",
            "image downloaded at: 02:47:39 UTC Mar 30 2011",
            "script downloaded at: -",
        ],
    );
    Ok(())
}

#[test]
fn show_json() -> TestResult {
    let d = Daemon::start("json")?;
    let out = d.run(&["show", "vstack", "proxy-db", "--json"])?;
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(value["enabled"], true);
    assert_eq!(value["entries"][0]["mac"], "001e.f76d.af80");
    assert_eq!(
        value["entries"][0]["udi"],
        "PID:WS-C3750E-48TD,VID:V01,SN:FDO1152V10R"
    );
    assert_eq!(value["entries"][1]["state"], "upgrading");
    assert_eq!(value["entries"][1]["health_active"], false);
    Ok(())
}

#[test]
fn config_lines_apply_or_are_refused() -> TestResult {
    let d = Daemon::start("config-lines")?;
    assert_refused(
        &d.run(&["config", "vstack director 1.1.1.1"])?,
        "% vstack director is not available while SMI Proxy is enabled \
         (SMI Director and SMI Proxy are mutually exclusive)",
    );
    assert_refused(
        &d.run(&["config", "vstack", "basic"])?,
        "% vstack basic is not available while SMI Proxy is enabled \
         (SMI Director and SMI Proxy are mutually exclusive)",
    );
    assert_refused(
        &d.run(&["config", "vstack proxy ip-address 4.1.1.2"])?,
        "% proxy address 4.1.1.2 is not an address of this machine",
    );
    assert_stdout(
        &d.run(&["config", "--verbose", "vstack startup-vlan 10"])?,
        &["startup-vlan: 1 -> 10"],
    );
    // As IOS: a successful line prints nothing.
    assert_silent(&d.run(&["config", "vstack startup-vlan 10"])?);
    assert_stdout(
        &d.run(&["config", "-v", "vstack", "vlan", "1,10-12"])?,
        &["vlan: 1 -> 1,10-12"],
    );
    assert_stdout(
        &d.run(&[
            "config",
            "--verbose",
            "vstack proxy interface vlan 1 startup-vlan 10",
        ])?,
        &["proxy: ip-address 4.1.1.1 -> interface vlan1"],
    );
    assert_stdout(
        &d.run(&["show", "vstack", "config"])?,
        &[
            "Role: SMI PnP Proxy",
            "Vstack SMI PnP Proxy IP address: 4.1.1.1",
            "Vstack default management vlan: 1",
            "Vstack start-up management vlan: 10",
            "Vstack management Vlans: 1,10-12",
        ],
    );
    assert_stdout(
        &d.run(&["config", "--verbose", "no vstack proxy"])?,
        &["proxy: interface vlan1 -> none"],
    );
    assert_stdout(
        &d.run(&["show", "vstack", "proxy-db"])?,
        &["Smi PnP Proxy:      DISABLED"],
    );
    Ok(())
}

#[test]
fn debug_switches() -> TestResult {
    let d = Daemon::start("debug")?;
    assert_stdout(
        &d.run(&["debug", "vstack", "smi-proxy"])?,
        &[
            "SMI PNP PROXY:EXEC cli vstack execution successful",
            "Vstack smi-proxy debugging is on",
        ],
    );
    assert_stdout(
        &d.run(&["no", "debug", "vstack", "smi-proxy"])?,
        &["Vstack smi-proxy debugging is off"],
    );
    assert_stdout(
        &d.run(&["undebug", "vstack", "all"])?,
        &["Vstack debug all debugging is off"],
    );
    assert_stdout(
        &d.run(&["debug", "vstack", "fsm"])?,
        &["Vstack fsm debugging is on"],
    );
    assert_stdout(
        &d.run(&["undebug", "vstack", "director"])?,
        &["Vstack director-db debugging is off"],
    );
    assert_refused(
        &d.run(&["debug", "vstack", "verbose"])?,
        "% Invalid input \"verbose\": expected one of all, cli, director-db, download, fsm, \
         protocol, smi-proxy",
    );
    // The chapter's director keywords, refused with the reason.
    assert_refused(
        &d.run(&["debug", "vstack", "join-window"])?,
        "% debug vstack join-window is not supported: the SMI proxy has no join window \
         (an SMI director's feature)",
    );
    assert_refused(
        &d.run(&["debug", "vstack", "d"])?,
        "% Ambiguous command \"d\": could be director-db, download",
    );
    let switches = [
        "  all          All Smart Install debug messages",
        "  cli          Smart Install CLI debug messages",
        "  director-db  Smart Install proxy database messages",
        "  download     Smart Install download debug messages",
        "  fsm          Smart Install session-management debug messages",
        "  protocol     Smart Install protocol debug messages",
        "  smi-proxy    Smart Install SMI PnP proxy operations",
    ];
    assert_stdout(&d.run(&["debug", "vstack", "?"])?, &switches);
    assert_stdout(&d.run(&["no", "debug", "vst", "?"])?, &switches);
    Ok(())
}

#[test]
fn usage_errors_and_an_absent_daemon() -> TestResult {
    let nowhere =
        std::env::temp_dir().join(format!("smi-proxy-golden-{}-none.sock", std::process::id()));
    assert_refused(
        &smi_proxy(&["show", "vstack", "config", "detail"], &nowhere)?,
        "% Invalid input \"detail\": expected end of command",
    );
    let out = smi_proxy(&["show", "vstack", "config"], &nowhere)?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is smi-proxy running?"), "{stderr}");
    Ok(())
}
