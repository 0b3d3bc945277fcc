//! The legacy-switch emulator: many Catalyst switches running Smart Install
//! clients, all driven by tokio tasks of one process, each with its own MAC
//! on a shared parent interface, in one of two [`EmulatorMode`]s: its own
//! network namespace and macvlan (the kernel's TCP/IP stack), or an
//! interface of the in-process [`packet`] stack on one AF_PACKET socket.
//! The switch's behaviour is written once, against `link::Link`.
//!
//! Each switch, as one task ([`Emulator::start`]):
//! 1. gets an address by DHCP over an AF_PACKET socket ([`dhcp_client`]),
//!    adds it to its macvlan and routes to the router / TFTP server;
//! 2. serves SMI on `<ip>:4786`, one message per connection, decoded with
//!    its own [`wire`] code (written from the protocol document, not the
//!    proxy's codec): probe -> client reply; type 3 -> TFTP fetch of the
//!    configuration (then, if it holds `do telnet <ip> <port>`, the reverse
//!    telnet CLI of [`cli`]); type 2 -> image list, image, reload (new
//!    version, uptime reset, new DHCP exchange); type 3 asking for a reload
//!    -> the same reload into the same image; type 8 -> `show version |
//!    redirect tftp://...` uploads its output; types 5 and 8 -> recorded;
//! 3. reports what happens as [`Event`]s.
//!
//! Starting it in a topology whose switch side is namespace `<p>sw` holding
//! `sw0` (the veth peer of the proxy's `px0`):
//!
//! ```no_run
//! # async fn lab() -> anyhow::Result<()> {
//! use proxy_tests::dhcp_server::{DhcpServer, DhcpServerConfig};
//! use proxy_tests::emulator::{Emulator, EmulatorConfig, Event};
//! let proxy = std::net::Ipv4Addr::new(192, 0, 2, 1);
//! let _dhcp = DhcpServer::start(DhcpServerConfig::new("labdhcp", "labsw", "sw0", proxy)).await?;
//! let mut emulator = Emulator::start(EmulatorConfig::new("labsw", "sw0", "lab", 5)).await?;
//! let bound = emulator
//!     .wait_event(std::time::Duration::from_secs(20), |e| matches!(e, Event::DhcpBound { .. }))
//!     .await?;
//! # let _ = bound; Ok(()) }
//! ```
//!
//! MODELLED (no public capture exists; doc section 11): the reverse-telnet
//! exchange (see [`cli`]); the reject reply to a known type with the wrong
//! length or a malformed body (the public record has it only for Greenbone's
//! 1-byte type-3 probe); the reload time of a type-3 message is not waited
//! for (one that asks for a reload reloads at once, into the same image); reloading right after an image is
//! installed, whatever reload time was asked for; fetching the type-5
//! command file and reading its double-quoted commands; of type-8 commands
//! only `show version | redirect tftp://...` is executed (the output
//! written to that URL), the others are recorded.
pub mod cli;
pub mod dhcp_client;
pub mod identity;
mod link;
pub mod net;
pub mod packet;
pub mod showver;
mod smi;
mod switch;
pub mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use dhcp_client::{DhcpTiming, Lease};
pub use identity::{MODELS, Model, VERSIONS};

use crate::tftp_client::TftpOptions;
pub use net::MacvlanMode;
use net::{Macvlan, Namespaces};
pub use showver::ShowVersion;
pub use wire::Sent;

/// Port of the SMI listener on every switch and on the director.
pub const SMI_PORT: u16 = 4786;

/// How a switch's SMI listener misbehaves, for hostile tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Misbehaviour {
    /// Answers like a real client.
    #[default]
    None,
    /// Accepts connections and never answers nor acts.
    Silent,
    /// Waits this long before answering or acting.
    Slow(Duration),
    /// Sends the first 12 bytes of the probe reply, then closes.
    Truncated,
    /// Answers the probe with a header whose length word is 0x7fffffff.
    OversizeLength,
}

/// One emulated switch: identity and behaviour.
#[derive(Clone, Debug)]
pub struct SwitchConfig {
    /// MAC of its macvlan.
    pub mac: [u8; 6],
    /// Host name (prompt, `show version`, DHCP option 12).
    pub hostname: String,
    /// Product ID.
    pub pid: String,
    /// Version ID (may be empty).
    pub vid: String,
    /// Serial number.
    pub sn: String,
    /// Running software version, e.g. `12.2(55)SE8`.
    pub version: String,
    /// Running image, e.g. `flash:c2960-lanbasek9-mz.122-55.SE8.bin`.
    pub image: String,
    /// Version after an image upgrade; `None`: read it from the `.tar`
    /// name (`...-tar.150-2.SE11.tar` -> `15.0(2)SE11`), else keep the old.
    pub next_version: Option<String>,
    /// Expected MD5 (hex) of an upgrade image; `None`: only size > 0 is checked.
    pub image_md5: Option<String>,
    /// Uptime at start.
    pub uptime: Duration,
    /// SMI misbehaviour at start (changeable with [`SwitchHandle::set_misbehaviour`]).
    pub misbehaviour: Misbehaviour,
}

impl SwitchConfig {
    /// Switch number `index` of the default mix: models of [`MODELS`] in
    /// turn, VID `V01`..`V07`, serial `FOC1234X...`/`FDO1234X...`, version
    /// 12.2(55)SE8 or 15.0(2)SE11, MAC `00:1e:f7` + the index.
    pub fn numbered(index: u32) -> Self {
        let model = MODELS[index as usize % MODELS.len()];
        let version = VERSIONS[(index as usize / MODELS.len()) % VERSIONS.len()];
        Self::with_model(index, model, version)
    }

    /// Switch number `index` playing `model` with `version`.
    pub fn with_model(index: u32, model: Model, version: &str) -> Self {
        Self {
            mac: identity::mac_for(index),
            hostname: "Switch".into(),
            pid: model.pid.into(),
            vid: identity::vid_for(index),
            sn: identity::serial_for(model.serial_prefix, index),
            version: version.into(),
            image: identity::boot_image(model.image_stem, version),
            next_version: None,
            image_md5: None,
            uptime: Duration::from_secs(60 * u64::from(2 + index % 40)),
            misbehaviour: Misbehaviour::None,
        }
    }
}

/// Time limits of the emulated switches.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// Reading one SMI message on an accepted connection.
    pub smi_read: Duration,
    /// Outgoing TCP connects (telnet, `connect_smi_to`).
    pub connect: Duration,
    /// Silence from the proxy on the reverse-telnet session before closing it.
    pub cli_idle: Duration,
    /// How long [`SwitchHandle::connect_smi_to`] waits for the proxy's answer.
    pub exchange_window: Duration,
    /// How long a [`Misbehaviour::Silent`] switch holds a connection open.
    pub silent_hold: Duration,
    /// TFTP transfers.
    pub tftp: TftpOptions,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            smi_read: Duration::from_secs(10),
            connect: Duration::from_secs(5),
            cli_idle: Duration::from_secs(60),
            exchange_window: Duration::from_secs(2),
            silent_hold: Duration::from_secs(600),
            tftp: TftpOptions::default(),
        }
    }
}

/// Where the switches live and who they are.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Namespace holding the parent interface.
    pub sw_ns: String,
    /// Parent interface of the macvlans (e.g. `sw0`).
    pub parent: String,
    /// Namespace name prefix: switch `i` lives in `<prefix>s<i>`.
    pub prefix: String,
    /// The switches; events name them by their position here.
    pub switches: Vec<SwitchConfig>,
    /// DHCP client retransmission timing.
    pub dhcp: DhcpTiming,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Boots are spread evenly over this long (zero: all at once).
    pub boot_spread: Duration,
    /// How the switches reach the segment.
    pub mode: EmulatorMode,
    /// How the switches' macvlans reach each other ([`EmulatorMode::Netns`]).
    pub macvlan_mode: MacvlanMode,
}

/// How the emulated switches reach the segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmulatorMode {
    /// Each switch in a network namespace of its own, with a macvlan on the
    /// parent interface: the kernel's TCP/IP stack, one per switch.
    #[default]
    Netns,
    /// Every switch an interface of the in-process [`packet`] stack, all on
    /// one AF_PACKET socket on the parent interface: thousands per core.
    /// The segment must not need the parent's macvlans (the site DHCP
    /// server sits behind the proxy, as in `lab::Layout::Isolated`).
    Packet,
}

impl EmulatorConfig {
    /// `count` switches of the default mix ([`SwitchConfig::numbered`]).
    pub fn new(sw_ns: &str, parent: &str, prefix: &str, count: u32) -> Self {
        Self {
            sw_ns: sw_ns.into(),
            parent: parent.into(),
            prefix: prefix.into(),
            switches: (0..count).map(SwitchConfig::numbered).collect(),
            dhcp: DhcpTiming::default(),
            timeouts: Timeouts::default(),
            boot_spread: Duration::ZERO,
            mode: EmulatorMode::Netns,
            macvlan_mode: MacvlanMode::Bridge,
        }
    }
}

/// A command of type 5 or 8 as the switch recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind")]
pub enum SwitchCommand {
    /// Type 5: the command file URL and the quoted commands read from it
    /// (empty if the fetch failed).
    ExecuteFile {
        /// URL of the command file.
        url: String,
        /// Commands found in the file.
        commands: Vec<String>,
    },
    /// Type 8: the commands of the slots.
    RunCli {
        /// The commands.
        commands: Vec<String>,
    },
}

/// Something an emulated switch did. `switch` is its position in
/// [`EmulatorConfig::switches`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event")]
pub enum Event {
    /// A DHCP exchange completed and the address is configured.
    DhcpBound {
        /// Switch position.
        switch: usize,
        /// The address.
        ip: Ipv4Addr,
        /// Everything the ACK said.
        lease: Lease,
    },
    /// A probe arrived (answered according to the misbehaviour).
    Probed {
        /// Switch position.
        switch: usize,
        /// The prober.
        from: SocketAddr,
    },
    /// A type-3 configuration was fetched and stored as startup config.
    ConfigFetched {
        /// Switch position.
        switch: usize,
        /// Its URL.
        url: String,
        /// Its size.
        bytes: usize,
    },
    /// The reverse-telnet session ended (`exit` or close by the proxy).
    TelnetDone {
        /// Switch position.
        switch: usize,
        /// The proxy's telnet endpoint.
        peer: SocketAddr,
        /// The lines the proxy sent, in order.
        commands: Vec<String>,
    },
    /// A type-2 image was fetched and checked; a reload follows.
    ImageInstalled {
        /// Switch position.
        switch: usize,
        /// The image name from the image list.
        image: String,
        /// Its size.
        bytes: usize,
        /// The version the switch will run.
        version: String,
    },
    /// The switch reloaded into `version`; a new DHCP exchange follows.
    Reloaded {
        /// Switch position.
        switch: usize,
        /// The version now running.
        version: String,
    },
    /// A type-5 or type-8 command was received.
    Command {
        /// Switch position.
        switch: usize,
        /// What it asked for.
        command: SwitchCommand,
    },
    /// A type-8 `show ... | redirect <url>` command's output was uploaded.
    OutputSent {
        /// Switch position.
        switch: usize,
        /// The command.
        command: String,
        /// Where the output went.
        url: String,
        /// Its size.
        bytes: usize,
    },
    /// Something failed (TFTP, telnet, namespace set-up).
    Failed {
        /// Switch position.
        switch: usize,
        /// The step that failed.
        what: String,
        /// The error, with its causes.
        error: String,
    },
}

impl Event {
    /// Position of the switch the event is about.
    pub fn switch(&self) -> usize {
        match self {
            Self::DhcpBound { switch, .. }
            | Self::Probed { switch, .. }
            | Self::ConfigFetched { switch, .. }
            | Self::TelnetDone { switch, .. }
            | Self::ImageInstalled { switch, .. }
            | Self::Reloaded { switch, .. }
            | Self::Command { switch, .. }
            | Self::OutputSent { switch, .. }
            | Self::Failed { switch, .. } => *switch,
        }
    }
}

/// What the proxy answered on a connection a switch opened to its 4786.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmiExchange {
    /// Bytes received (at most 64 KiB).
    pub reply: Vec<u8>,
    /// The proxy closed (or reset) the connection within the window.
    pub closed: bool,
}

/// Mutable state of one switch.
#[derive(Debug)]
struct State {
    lease: Option<Lease>,
    hostname: String,
    version: String,
    image: String,
    booted: Instant,
    uptime_at_boot: Duration,
    startup_config: Option<Vec<u8>>,
    misbehaviour: Misbehaviour,
    received: Vec<Sent>,
    boots: u32,
}

/// One switch, shared by its task and its handle.
#[derive(Debug)]
struct Switch {
    position: usize,
    link: link::Link,
    config: SwitchConfig,
    timeouts: Timeouts,
    events: mpsc::UnboundedSender<Event>,
    state: Mutex<State>,
}

impl Switch {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, event: Event) {
        log::debug!("switch {}: {event:?}", self.position);
        let _ = self.events.send(event);
    }

    fn fail(&self, what: &str, error: &anyhow::Error) {
        log::warn!("switch {}: {what}: {error:#}", self.position);
        self.emit(Event::Failed {
            switch: self.position,
            what: what.into(),
            error: format!("{error:#}"),
        });
    }

    fn hostname(&self) -> String {
        self.state().hostname.clone()
    }

    fn show_version(&self) -> ShowVersion {
        let state = self.state();
        let uptime = state.uptime_at_boot + state.booted.elapsed();
        ShowVersion {
            pid: self.config.pid.clone(),
            vid: self.config.vid.clone(),
            sn: self.config.sn.clone(),
            version: state.version.clone(),
            image: state.image.clone(),
            hostname: state.hostname.clone(),
            uptime: identity::uptime_text(uptime),
            mac: self.config.mac,
        }
    }
}

/// A running switch, seen from the test or the lab.
#[derive(Clone, Debug)]
pub struct SwitchHandle(Arc<Switch>);

impl SwitchHandle {
    /// Position in [`EmulatorConfig::switches`].
    pub fn position(&self) -> usize {
        self.0.position
    }

    /// The configuration it started with.
    pub fn config(&self) -> &SwitchConfig {
        &self.0.config
    }

    /// MAC of its macvlan.
    pub fn mac(&self) -> [u8; 6] {
        self.0.config.mac
    }

    /// Its network namespace ([`EmulatorMode::Netns`] only).
    pub fn netns(&self) -> Option<&str> {
        self.0.link.netns()
    }

    /// Current address, if bound.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.0.state().lease.as_ref().map(|l| l.ip)
    }

    /// Current lease, if bound.
    pub fn lease(&self) -> Option<Lease> {
        self.0.state().lease.clone()
    }

    /// Running software version.
    pub fn version(&self) -> String {
        self.0.state().version.clone()
    }

    /// What `show version` would report now.
    pub fn show_version(&self) -> ShowVersion {
        self.0.show_version()
    }

    /// Running image (the `System image file` of `show version`).
    pub fn image(&self) -> String {
        self.0.state().image.clone()
    }

    /// The startup configuration received by type 3, if any.
    pub fn startup_config(&self) -> Option<Vec<u8>> {
        self.0.state().startup_config.clone()
    }

    /// Every SMI message decoded so far, in order of arrival.
    pub fn received(&self) -> Vec<Sent> {
        self.0.state().received.clone()
    }

    /// Number of reloads since start.
    pub fn reloads(&self) -> u32 {
        self.0.state().boots
    }

    /// Current misbehaviour.
    pub fn misbehaviour(&self) -> Misbehaviour {
        self.0.state().misbehaviour
    }

    /// Changes the misbehaviour for connections accepted from now on.
    pub fn set_misbehaviour(&self, misbehaviour: Misbehaviour) {
        self.0.state().misbehaviour = misbehaviour;
    }

    /// From the switch, connects to `proxy:4786`, sends `bytes`
    /// and collects the answer until close or the exchange window ends.
    pub async fn connect_smi_to(
        &self,
        proxy: Ipv4Addr,
        bytes: &[u8],
    ) -> anyhow::Result<SmiExchange> {
        let t = &self.0.timeouts;
        let addr = SocketAddr::from((proxy, SMI_PORT));
        let mut stream = self.0.link.connect(addr, t.connect).await?;
        let mut reply = Vec::new();
        if stream.write_all(bytes).await.is_err() {
            return Ok(SmiExchange {
                reply,
                closed: true,
            });
        }
        let deadline = tokio::time::Instant::now() + t.exchange_window;
        let mut buf = [0u8; 4096];
        let closed = loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(n)) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.len() >= 64 * 1024 {
                        break false;
                    }
                }
            }
        };
        Ok(SmiExchange { reply, closed })
    }

    /// Sends 1 to 512 random bytes to `proxy:4786` from the switch.
    pub async fn send_garbage_to(&self, proxy: Ipv4Addr) -> anyhow::Result<SmiExchange> {
        let mut garbage = vec![0u8; rand::random_range(1..=512)];
        rand::fill(&mut garbage[..]);
        self.connect_smi_to(proxy, &garbage).await
    }
}

/// The running emulator; dropping it aborts every switch task (and the
/// packet stack's driver) and deletes their namespaces.
pub struct Emulator {
    tasks: JoinSet<()>,
    switches: Vec<SwitchHandle>,
    events: mpsc::UnboundedReceiver<Event>,
    backlog: Vec<Event>,
    _namespaces: Option<Namespaces>,
    driver: Option<tokio::task::JoinHandle<()>>,
    stack: Option<packet::Stack>,
}

impl Emulator {
    /// Starts one task per switch. In [`EmulatorMode::Netns`] it first
    /// creates the `<prefix>s<i>` namespaces and macvlans (in two `ip -batch`
    /// runs); in [`EmulatorMode::Packet`] it opens the packet stack on the
    /// parent. Needs a tokio runtime and root.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Self> {
        let (links, namespaces, driver, stack): (Vec<link::Link>, _, _, _) = match config.mode {
            EmulatorMode::Netns => {
                let (names, namespaces) = create_namespaces(&config).await?;
                let links = names.into_iter().map(link::Link::Netns).collect();
                (links, Some(namespaces), None, None)
            }
            EmulatorMode::Packet => {
                let macs: Vec<[u8; 6]> = config.switches.iter().map(|s| s.mac).collect();
                let (stack, driver, hosts) =
                    packet::Stack::start(&config.sw_ns, &config.parent, &macs).await?;
                let links = hosts.into_iter().map(link::Link::Packet).collect();
                (links, None, Some(driver), Some(stack))
            }
        };
        let (tx, events) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let mut switches = Vec::new();
        let count = config.switches.len().max(1) as u32;
        for (position, (sc, link)) in config.switches.into_iter().zip(links).enumerate() {
            let state = State {
                lease: None,
                hostname: sc.hostname.clone(),
                version: sc.version.clone(),
                image: sc.image.clone(),
                booted: Instant::now(),
                uptime_at_boot: sc.uptime,
                startup_config: None,
                misbehaviour: sc.misbehaviour,
                received: Vec::new(),
                boots: 0,
            };
            let sw = Arc::new(Switch {
                position,
                link,
                config: sc,
                timeouts: config.timeouts.clone(),
                events: tx.clone(),
                state: Mutex::new(state),
            });
            switches.push(SwitchHandle(sw.clone()));
            let delay = config.boot_spread * position as u32 / count;
            tasks.spawn(switch::run(sw, config.dhcp.clone(), delay));
        }
        Ok(Self {
            tasks,
            switches,
            events,
            backlog: Vec::new(),
            _namespaces: namespaces,
            driver,
            stack,
        })
    }

    /// Frames the packet stack's ring dropped so far (packet mode only):
    /// nonzero means the emulated network, not the proxy, lost frames.
    pub fn ring_drops(&self) -> Option<u64> {
        self.stack.as_ref().map(packet::Stack::ring_drops)
    }

    /// All switches, by position.
    pub fn switches(&self) -> &[SwitchHandle] {
        &self.switches
    }

    /// Switch at `position` (panics if out of range).
    pub fn switch(&self, position: usize) -> &SwitchHandle {
        &self.switches[position]
    }

    /// The next event (kept ones from [`Emulator::wait_event`] first).
    pub async fn next_event(&mut self) -> Option<Event> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.events.recv().await
    }

    /// Waits up to `timeout` for the first event `matches` accepts; events
    /// it passes over are kept for later calls.
    pub async fn wait_event(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> anyhow::Result<Event> {
        if let Some(i) = self.backlog.iter().position(&mut matches) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) if matches(&event) => return Ok(event),
                Ok(Some(event)) => self.backlog.push(event),
                Ok(None) => anyhow::bail!("event channel closed"),
                Err(_) => anyhow::bail!(
                    "no matching event within {timeout:?}; other events: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// Stops every switch task (namespaces go when the emulator drops).
    pub async fn shutdown(&mut self) {
        self.tasks.shutdown().await;
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

/// The namespaces `<prefix>s<i>`, each holding a macvlan on the parent.
async fn create_namespaces(config: &EmulatorConfig) -> anyhow::Result<(Vec<String>, Namespaces)> {
    let names: Vec<String> = (0..config.switches.len())
        .map(|i| format!("{}s{i}", config.prefix))
        .collect();
    let links: Vec<Macvlan> = names
        .iter()
        .zip(&config.switches)
        .map(|(netns, sw)| Macvlan {
            netns: netns.clone(),
            mac: sw.mac,
        })
        .collect();
    let (sw_ns, parent, all) = (config.sw_ns.clone(), config.parent.clone(), names.clone());
    let mode = config.macvlan_mode;
    let namespaces = tokio::task::spawn_blocking(move || {
        let namespaces = Namespaces::create(all)?;
        net::create_macvlans(&sw_ns, &parent, mode, &links)?;
        net::up_without_ipv6_in(namespaces.names())?;
        anyhow::Ok(namespaces)
    })
    .await
    .context("namespace task")??;
    Ok((names, namespaces))
}
