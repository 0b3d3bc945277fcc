//! The lab topology shared by the end-to-end tests and `smi-lab`: network
//! namespaces for the switches, the proxy (with its XDP program on px0) and
//! the PnP server, the proxy daemon as a child process, and a control-socket
//! client to read its tables. Everything is removed on drop.
//!
//! ```text
//!  Layout::Shared
//!  <p>sw: sw0 ── macvlans ─┐              <p>px: px0 192.0.2.1/24 (XDP)
//!    <p>s<N>: switch N     ├── veth ──────  smi-proxy (4786, 69, 19140)
//!    <p>dhcp: 192.0.2.2    ┘              pnp0 198.51.100.1/24 ── veth ── <p>pnp: eth0 198.51.100.2
//!
//!  Layout::Isolated (thousands of switches)
//!  <p>sw: sw0 ── macvlans (private) ── veth ── px0 (XDP) ─┐ <p>px: br0 192.0.2.1/24
//!    <p>s<N>: switch N                                    │   smi-proxy
//!  <p>dhcp: eth0 192.0.2.2 ──────────────── veth ── pxd (XDP) ─┘   pnp0 ── <p>pnp
//! ```
use std::io::BufRead as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};

use crate::dhcp_server::Placement;
use crate::emulator::{EmulatorConfig, EmulatorMode, MacvlanMode};
use crate::netns::{NetNs, veth};

/// The proxy's bridge in [`Layout::Isolated`].
const BRIDGE: &str = "br0";
/// The site DHCP server's port on it.
const DHCP_PORT: &str = "pxd";

/// The proxy's address toward the switches.
pub const PROXY_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The site DHCP server's address.
pub const DHCP_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The proxy's address toward the PnP server.
pub const PROXY_UPLINK_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The PnP server's address.
pub const PNP_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// How the lab's switches and site DHCP server are wired to the proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// The switches (macvlans, mode bridge) and the site DHCP server share
    /// one segment behind `px0`, which holds the proxy address. Every
    /// broadcast reaches every switch: fine for hundreds.
    #[default]
    Shared,
    /// `px0` is a port of bridge `br0` (which holds the proxy address); the
    /// switches are isolated from each other (macvlans, mode private) as on
    /// the ports of an access switch, and the site DHCP server has its own
    /// bridge port `pxd` (see [`Topology::dhcp_placement`]) and answers by
    /// unicast. Broadcasts cost one copy, not one per switch: this is the
    /// layout for thousands.
    Isolated,
}

/// The namespaces and links of one lab.
pub struct Topology {
    /// Name prefix of everything this lab created.
    pub prefix: String,
    /// The switches' segment (holds `sw0`).
    pub sw: NetNs,
    /// The proxy's namespace (holds `px0` and `pnp0`).
    pub px: NetNs,
    /// The PnP server's namespace (holds `eth0`).
    pub pnp: NetNs,
    /// bpffs directory for the proxy's pinned maps.
    pub pin_dir: PathBuf,
    /// The proxy's state directory.
    pub state_dir: PathBuf,
    /// How it is wired.
    pub layout: Layout,
    /// How its emulated switches run ([`Topology::emulator_config`]).
    pub emulator: EmulatorMode,
}

impl Topology {
    /// Builds the namespaces and links of the [`Layout::Shared`] lab.
    pub fn build(prefix: &str) -> anyhow::Result<Self> {
        Self::build_with(prefix, Layout::Shared)
    }

    /// Builds the lab for switches running in `mode`: [`Layout::Shared`]
    /// for namespace switches, [`Layout::Isolated`] for packet-stack
    /// switches (frames they send on `sw0` leave the segment, so the site
    /// DHCP server must sit behind the proxy).
    pub fn for_emulator(prefix: &str, mode: EmulatorMode) -> anyhow::Result<Self> {
        let layout = match mode {
            EmulatorMode::Netns => Layout::Shared,
            EmulatorMode::Packet => Layout::Isolated,
        };
        let mut topo = Self::build_with(prefix, layout)?;
        topo.emulator = mode;
        Ok(topo)
    }

    /// `count` switches of the default mix on this lab's segment, running
    /// as [`Topology::for_emulator`] chose (name prefix `prefix`).
    pub fn emulator_config(&self, prefix: &str, count: u32) -> EmulatorConfig {
        let mut cfg = EmulatorConfig::new(self.sw.name(), "sw0", prefix, count);
        cfg.mode = self.emulator;
        cfg.macvlan_mode = self.macvlan_mode();
        cfg
    }

    /// Builds the namespaces and links, addresses included.
    pub fn build_with(prefix: &str, layout: Layout) -> anyhow::Result<Self> {
        let sw = NetNs::new(&format!("{prefix}sw"))?;
        let px = NetNs::new(&format!("{prefix}px"))?;
        let pnp = NetNs::new(&format!("{prefix}pnp"))?;
        veth(&sw, "sw0", &px, "px0")?;
        veth(&px, "pnp0", &pnp, "eth0")?;
        if layout == Layout::Isolated {
            px.ip(&["link", "add", BRIDGE, "type", "bridge", "stp_state", "0"])?;
            px.ip(&["link", "set", "px0", "master", BRIDGE])?;
            px.ip(&["link", "set", BRIDGE, "up"])?;
        }
        let l3 = match layout {
            Layout::Shared => "px0",
            Layout::Isolated => BRIDGE,
        };
        px.ip(&["addr", "add", &format!("{PROXY_IP}/24"), "dev", l3])?;
        px.ip(&[
            "addr",
            "add",
            &format!("{PROXY_UPLINK_IP}/24"),
            "dev",
            "pnp0",
        ])?;
        pnp.ip(&["addr", "add", &format!("{PNP_IP}/24"), "dev", "eth0"])?;
        raise_neighbour_limits()?;
        // Leftovers of a killed run under the same prefix: its pinned
        // client table would be taken for this run's clients.
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/{prefix}"));
        let _ = std::fs::remove_dir_all(&pin_dir);
        let state_dir = std::env::temp_dir().join(format!("{prefix}-state"));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir)?;
        Ok(Self {
            prefix: prefix.to_owned(),
            sw,
            px,
            pnp,
            pin_dir,
            state_dir,
            layout,
            emulator: EmulatorMode::Netns,
        })
    }

    /// The interface holding the proxy address (`px0`, or `br0` when isolated).
    pub fn l3_iface(&self) -> &'static str {
        match self.layout {
            Layout::Shared => "px0",
            Layout::Isolated => BRIDGE,
        }
    }

    /// The switch-facing interfaces the proxy attaches XDP to.
    pub fn proxy_ifaces(&self) -> Vec<&'static str> {
        match self.layout {
            Layout::Shared => vec!["px0"],
            Layout::Isolated => vec!["px0", DHCP_PORT],
        }
    }

    /// Where the site DHCP server of this layout plugs in.
    pub fn dhcp_placement(&self) -> Placement {
        match self.layout {
            Layout::Shared => Placement::SwitchSegment,
            Layout::Isolated => Placement::ProxyPort {
                px_ns: self.px.name().to_owned(),
                bridge: BRIDGE.to_owned(),
                port: DHCP_PORT.to_owned(),
            },
        }
    }

    /// How the switches' macvlans are created in this layout.
    pub fn macvlan_mode(&self) -> MacvlanMode {
        match self.layout {
            Layout::Shared => MacvlanMode::Bridge,
            Layout::Isolated => MacvlanMode::Private,
        }
    }

    /// The control socket path the daemon is started with.
    pub fn control_socket(&self) -> PathBuf {
        self.state_dir.join("control.sock")
    }

    /// A configuration file (TOML) for this lab's daemon: what
    /// [`Daemon::start`] otherwise gives as flags, with the proxy address
    /// taken from its interface (`interface`) and, if given, a PnP server as the
    /// default profile.
    pub fn config_toml(&self, pnp_server: Option<&str>) -> String {
        let path = |p: &Path| format!("{:?}", p.display().to_string());
        let interfaces: Vec<String> = self
            .proxy_ifaces()
            .iter()
            .map(|i| format!("{i:?}"))
            .collect();
        let mut text = format!(
            "interfaces = [{}]\n\
             netns = {:?}\n\
             interface = {:?}\n\
             pin_dir = {}\n\
             state_dir = {}\n\
             control_socket = {}\n",
            interfaces.join(", "),
            self.px.name(),
            self.l3_iface(),
            path(&self.pin_dir),
            path(&self.state_dir),
            path(&self.control_socket()),
        );
        if let Some(url) = pnp_server {
            text.push_str(&format!(
                "\n[pnp_profiles.pnp-zero-touch]\nserver_url = {url:?}\n"
            ));
        }
        text
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// The `smi-proxy` binary next to the running executable (target/<profile>/),
/// or in it when the running executable is a test in `deps/`.
pub fn proxy_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable directory")?;
    for candidate in [dir.join("smi-proxy"), dir.join("../smi-proxy")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "smi-proxy not found next to {}: build it (cargo xtask test / lab do)",
        exe.display()
    )
}

/// The proxy daemon, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
}

/// How to run the daemon in the lab.
#[derive(Clone, Debug, Default)]
pub struct DaemonOptions {
    /// Start it with `--config <file>` alone (e.g. a file written from
    /// [`Topology::config_toml`]) instead of the lab's flags; the options
    /// below still add their flags, which override the file.
    pub config_file: Option<PathBuf>,
    /// PnP server URL, if any.
    pub pnp_server: Option<String>,
    /// Pinned PnP server certificate (PEM file).
    pub pnp_pinned_cert: Option<PathBuf>,
    /// Extra arguments.
    pub extra: Vec<String>,
    /// Where its log (its stderr) goes.
    pub log: DaemonLog,
}

/// Where the daemon's log (its stderr) goes; its stdout stays with
/// [`Daemon::start`], which reads "smi-proxy: ready" from it.
#[derive(Clone, Debug, Default)]
pub enum DaemonLog {
    /// This process's stderr, as the end-to-end tests want it.
    #[default]
    Inherit,
    /// This file, created or truncated.
    File(PathBuf),
    /// A pipe, taken with [`Daemon::take_log`] and read from then on (the
    /// daemon waits when it is full).
    Piped,
}

impl Daemon {
    /// Starts `smi-proxy run` in the proxy namespace and waits for "ready".
    pub fn start(topo: &Topology, opts: &DaemonOptions) -> anyhow::Result<Self> {
        let mut cmd = Command::new(proxy_bin()?);
        cmd.arg("run");
        match &opts.config_file {
            Some(file) => {
                cmd.arg("--config").arg(file);
            }
            None => {
                cmd.args(["--netns", topo.px.name()]);
                for iface in topo.proxy_ifaces() {
                    cmd.args(["--iface", iface]);
                }
                cmd.arg("--proxy-ip")
                    .arg(PROXY_IP.to_string())
                    .arg("--pin-dir")
                    .arg(&topo.pin_dir)
                    .arg("--state-dir")
                    .arg(&topo.state_dir)
                    .arg("--control-socket")
                    .arg(topo.control_socket());
            }
        }
        if let Some(url) = &opts.pnp_server {
            cmd.arg("--pnp-server").arg(url);
        }
        if let Some(cert) = &opts.pnp_pinned_cert {
            cmd.arg("--pnp-pinned-cert").arg(cert);
        }
        cmd.args(&opts.extra);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn,smi_proxy=info");
        }
        let stderr = match &opts.log {
            DaemonLog::Inherit => Stdio::inherit(),
            DaemonLog::Piped => Stdio::piped(),
            DaemonLog::File(path) => std::fs::File::create(path)
                .with_context(|| format!("daemon log {}", path.display()))?
                .into(),
        };
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn()?;
        let stdout = child.stdout.take().context("daemon stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "smi-proxy: ready" {
            let _ = child.kill();
            let status = child.wait()?;
            match &opts.log {
                DaemonLog::File(path) => bail!(
                    "the daemon did not become ready ({status}); its log: {}",
                    path.display()
                ),
                _ => bail!("the daemon did not become ready ({status})"),
            }
        }
        Ok(Self { child: Some(child) })
    }

    /// The read end of its log, once, when started with [`DaemonLog::Piped`].
    pub fn take_log(&mut self) -> Option<std::process::ChildStderr> {
        self.child.as_mut()?.stderr.take()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the daemon with SIGTERM; its exit status must be success.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait()?;
        if !status.success() {
            bail!("daemon exited with {status}");
        }
        Ok(())
    }

    /// Kills the daemon with SIGKILL (crash test).
    pub fn kill9(mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// Runs `smi-proxy show ...` against the lab daemon and returns its stdout.
pub fn show(topo: &Topology, args: &[&str]) -> anyhow::Result<String> {
    control_command(&topo.control_socket(), "show", args)
}

/// Runs an `smi-proxy <verb> <args> --socket <path>` operator command.
pub fn control_command(socket: &Path, verb: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(proxy_bin()?)
        .arg(verb)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()?;
    if !out.status.success() {
        bail!(
            "smi-proxy {verb} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The daemon's `/metrics` text, fetched from inside the proxy namespace.
pub fn metrics(topo: &Topology) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let _in = topo.px.enter()?;
    let mut s = std::net::TcpStream::connect("127.0.0.1:9786")?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// The value of one sample in a Prometheus text exposition, e.g.
/// `metric(text, "smi_proxy_xdp_frames_total{counter=\"smi_pass\"}")`.
pub fn metric(text: &str, sample: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample))
        .and_then(|rest| rest.trim().parse().ok())
}

/// Raises the kernel's neighbour-table limits (`gc_thresh1..3`; one table
/// shared by every namespace, default 128/512/1024 entries) so that
/// thousands of switches, each in its own namespace with a neighbour entry
/// for the proxy and one in the proxy's, neither overflow it nor see their
/// entries collected. Only ever raises them.
pub fn raise_neighbour_limits() -> anyhow::Result<()> {
    for (key, want) in [
        ("gc_thresh1", 32_768u64),
        ("gc_thresh2", 65_536),
        ("gc_thresh3", 131_072),
    ] {
        let path = format!("/proc/sys/net/ipv4/neigh/default/{key}");
        let now: u64 = std::fs::read_to_string(&path)
            .with_context(|| path.clone())?
            .trim()
            .parse()
            .with_context(|| path.clone())?;
        if now < want {
            std::fs::write(&path, want.to_string()).with_context(|| path.clone())?;
        }
    }
    Ok(())
}

/// Raises this process's open-file limit (soft and hard) to `want`, or as
/// far as the kernel allows: a lab of thousands of switches holds a few
/// sockets per switch, and the proxy daemon inherits the limit.
pub fn raise_fd_limit(want: u64) -> anyhow::Result<u64> {
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(want);
    let limit = libc::rlimit {
        rlim_cur: want.min(nr_open),
        rlim_max: want.min(nr_open),
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        bail!(
            "RLIMIT_NOFILE {}: {}",
            limit.rlim_cur,
            std::io::Error::last_os_error()
        );
    }
    Ok(limit.rlim_cur)
}

/// The tokio runtime of an end-to-end test: two workers, as the machine.
pub fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A PnP server (HTTP) on `PNP_IP:port` inside the lab's server namespace,
/// its tasks on `rt`.
pub fn pnp_server_in(
    rt: &tokio::runtime::Runtime,
    topo: &Topology,
    port: u16,
) -> anyhow::Result<crate::pnp_server::PnpServer> {
    use crate::pnp_server::{PnpServer, PnpServerConfig};
    let _in_pnp = topo.pnp.enter().context("entering the PnP namespace")?;
    let config = PnpServerConfig::new(std::net::SocketAddr::from((PNP_IP, port)));
    Ok(rt.block_on(PnpServer::start(config))?)
}

/// The lab's site DHCP server, where its layout puts it, handing out the
/// default pool with the proxy as TFTP server (option 150).
pub async fn site_dhcp(topo: &Topology) -> anyhow::Result<crate::dhcp_server::DhcpServer> {
    use crate::dhcp_server::{DhcpServer, DhcpServerConfig};
    let mut cfg = DhcpServerConfig::new(
        &format!("{}dhcp", topo.prefix),
        topo.sw.name(),
        "sw0",
        PROXY_IP,
    );
    cfg.placement = topo.dhcp_placement();
    DhcpServer::start(cfg).await
}
