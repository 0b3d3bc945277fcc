//! The XDP dataplane: loads the embedded classifier, attaches it to the
//! switch-facing interfaces, and gives the rest of the daemon typed access to
//! its maps (client table, policy, counters) and its event ring buffer.
//!
//! The client map is pinned under bpffs (`<pin_dir>/CLIENTS`), so a daemon
//! restart finds the clients it had.

mod events;
mod neigh;
mod table;

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use proxy_common::{ClientEntry, ClientKey, Policy, counter, maps};

pub use events::{DataplaneEvent, DropReason, EventKind, EventStream, XdpLog};
pub use neigh::{NeighError, NeighbourSeeder, Seeded};
pub use table::ClientTable;

/// The classifier object, built by `build.rs` (aya-build) and embedded.
#[cfg(feature = "embed-ebpf")]
pub static EMBEDDED_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/proxy-ebpf"));

/// Where the kernel exposes its own BTF; aya needs it to load the object.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
/// Default directory for pinned maps.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/smi-pnp-proxy";

/// What went wrong in the dataplane, with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Loading BPF programs needs root (CAP_BPF and CAP_NET_ADMIN).
    #[error("the XDP dataplane needs root (CAP_BPF + CAP_NET_ADMIN); run as root")]
    NotRoot,
    /// The kernel exposes no BTF.
    #[error(
        "the kernel has no BTF ({KERNEL_BTF} missing): a kernel built with CONFIG_DEBUG_INFO_BTF is required"
    )]
    NoBtf,
    /// No bpffs could be found or mounted for the pin directory.
    #[error("bpffs is not mounted at {path} and could not be mounted: {reason}")]
    NoBpffs {
        /// The directory that should be on bpffs.
        path: PathBuf,
        /// The mount error.
        reason: String,
    },
    /// The pin directory could not be created.
    #[error("cannot create pin directory {path}: {source}")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The binary was built without the embedded object and no file was given.
    #[error("this binary was built without the embedded XDP object; pass an object file")]
    NoObject,
    /// The object file could not be read.
    #[error("cannot read XDP object {path}: {source}")]
    ReadObject {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The kernel refused the object (verifier, map creation, ...).
    #[error("loading the XDP object failed: {0}")]
    Load(#[from] aya::EbpfError),
    /// The program refused to load or is not the expected type.
    #[error("loading the XDP program failed: {0}")]
    Program(ProgramError),
    /// An expected map or program is missing from the object.
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// aya's error.
        source: aya::maps::MapError,
    },
    /// The event ring buffer could not be registered with the reactor.
    #[error("cannot poll the event ring buffer: {0}")]
    EventPoll(std::io::Error),
    /// The classifier's aya-log ring could not be opened.
    #[error("cannot open the classifier's log: {0}")]
    Log(aya_log::Error),
    /// The interface does not exist (in this network namespace).
    #[error("interface {0} does not exist in this network namespace")]
    InterfaceMissing(String),
    /// The kernel refused to attach the program.
    #[error("attaching XDP to {iface} failed: native mode: {native}{}", skb.as_ref().map(|e| format!("; generic (SKB) mode: {e}")).unwrap_or_default())]
    AttachRefused {
        /// The interface.
        iface: String,
        /// The kernel's reason for native mode.
        native: String,
        /// The kernel's reason for generic mode, when it was tried.
        skb: Option<String>,
    },
}

impl DataplaneError {
    fn map(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Self::Map { map, source }
    }
}

/// The mode an interface ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AttachMode {
    /// Native (driver) XDP.
    Native,
    /// Generic (SKB) XDP, the slower fallback.
    Generic,
    /// The link a previous daemon left pinned, now running this program.
    Reused,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Reused => "reused pinned link",
        })
    }
}

/// How to load the dataplane.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory on bpffs for pinned maps.
    pub pin_dir: PathBuf,
    /// Capacity of the client map.
    pub clients_max: u32,
    /// Initial policy.
    pub policy: Policy,
    /// Allow falling back to generic (SKB) mode when native attach fails.
    pub skb_fallback: bool,
    /// Object file to load instead of the embedded one.
    pub object: Option<PathBuf>,
    /// Leave the classifier attached (its link pinned) when the daemon stops.
    pub keep_attached: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            clients_max: proxy_common::CLIENTS_MAX,
            policy: Policy::default(),
            skb_fallback: true,
            object: None,
            keep_attached: false,
        }
    }
}

/// The loaded classifier and its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    table: ClientTable,
    policy: Array<MapData, Policy>,
    /// Whether the classifier logs its rare events (stamped into every
    /// policy written).
    log_events: bool,
    /// The classifier's aya-log ring, until [`Dataplane::take_log`].
    log: Option<aya_log::EbpfLogger<&'static dyn tracing_log::log::Log>>,
    counters: PerCpuArray<MapData, u64>,
    /// Ports trusted for DHCP servers.
    dhcp_trusted: HashMap<MapData, u32, u32>,
    events: Option<RingBuf<MapData>>,
    attached: Vec<(String, AttachMode)>,
    skb_fallback: bool,
    pin_dir: PathBuf,
    link_pins: Vec<PathBuf>,
    keep_attached: bool,
    last_link: Option<aya::programs::xdp::XdpLinkId>,
}

impl Drop for Dataplane {
    /// A clean stop detaches the classifier (its pinned links are removed)
    /// unless asked to keep it attached.
    fn drop(&mut self) {
        if self.keep_attached {
            return;
        }
        for pin in &self.link_pins {
            let _ = std::fs::remove_file(pin);
        }
    }
}

/// Checks that this process can load BPF at all, with a clear error if not.
pub fn preflight() -> Result<(), DataplaneError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DataplaneError::NotRoot);
    }
    if !Path::new(KERNEL_BTF).exists() {
        return Err(DataplaneError::NoBtf);
    }
    Ok(())
}

/// Makes sure `dir` is on a bpffs, mounting one at `/sys/fs/bpf` if needed.
fn ensure_bpffs(dir: &Path) -> Result<(), DataplaneError> {
    use nix::sys::statfs::{BPF_FS_MAGIC, statfs};
    let on_bpffs = |p: &Path| statfs(p).is_ok_and(|st| st.filesystem_type() == BPF_FS_MAGIC);
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && !on_bpffs(root) {
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status();
        match status {
            Ok(s) if s.success() => tracing::info!("mounted bpffs at /sys/fs/bpf"),
            Ok(s) => {
                return Err(DataplaneError::NoBpffs {
                    path: dir.to_owned(),
                    reason: format!("mount exited with {s}"),
                });
            }
            Err(e) => {
                return Err(DataplaneError::NoBpffs {
                    path: dir.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| DataplaneError::PinDir {
        path: dir.to_owned(),
        source,
    })?;
    if !on_bpffs(dir) {
        return Err(DataplaneError::NoBpffs {
            path: dir.to_owned(),
            reason: "the directory is not on a bpf filesystem".into(),
        });
    }
    Ok(())
}

/// The index of the interface `name` in this network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

impl Dataplane {
    /// Loads the classifier (not yet attached), creating or re-opening the
    /// pinned client map, and writes the initial policy.
    pub fn load(opts: &Options) -> Result<Self, DataplaneError> {
        preflight()?;
        ensure_bpffs(&opts.pin_dir)?;
        let owned;
        let bytes: &[u8] = match &opts.object {
            Some(path) => {
                owned = std::fs::read(path).map_err(|source| DataplaneError::ReadObject {
                    path: path.clone(),
                    source,
                })?;
                &owned
            }
            None => embedded()?,
        };
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&opts.pin_dir)
            .map_max_entries(maps::CLIENTS, opts.clients_max)
            .map_max_entries(maps::ADMISSION, opts.clients_max)
            .load(bytes)?;
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(DataplaneError::Missing(name))
        };
        let clients: HashMap<MapData, ClientKey, ClientEntry> =
            HashMap::try_from(take(&mut ebpf, maps::CLIENTS)?)
                .map_err(DataplaneError::map(maps::CLIENTS))?;
        let admission: HashMap<MapData, ClientKey, u32> =
            HashMap::try_from(take(&mut ebpf, maps::ADMISSION)?)
                .map_err(DataplaneError::map(maps::ADMISSION))?;
        let epoch: Array<MapData, u64> = Array::try_from(take(&mut ebpf, maps::ADMISSION_EPOCH)?)
            .map_err(DataplaneError::map(maps::ADMISSION_EPOCH))?;
        let mut policy: Array<MapData, Policy> = Array::try_from(take(&mut ebpf, maps::POLICY)?)
            .map_err(DataplaneError::map(maps::POLICY))?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, maps::COUNTERS)?)
            .map_err(DataplaneError::map(maps::COUNTERS))?;
        let events = RingBuf::try_from(take(&mut ebpf, maps::EVENTS)?)
            .map_err(DataplaneError::map(maps::EVENTS))?;
        let dhcp_trusted = HashMap::try_from(take(&mut ebpf, maps::DHCP_TRUSTED)?)
            .map_err(DataplaneError::map(maps::DHCP_TRUSTED))?;
        policy
            .set(0, opts.policy, 0)
            .map_err(DataplaneError::map(maps::POLICY))?;
        // The records go to the `log` facade, as the daemon's own lines do.
        let log = aya_log::EbpfLogger::init(&mut ebpf).map_err(DataplaneError::Log)?;
        let prog: &mut Xdp = ebpf
            .program_mut(proxy_common::XDP_PROGRAM)
            .ok_or(DataplaneError::Missing("XDP program"))?
            .try_into()
            .map_err(DataplaneError::Program)?;
        prog.load().map_err(DataplaneError::Program)?;
        Ok(Self {
            ebpf,
            table: ClientTable::new(clients, admission, epoch)?,
            policy,
            log_events: opts.policy.log_events != 0,
            log: Some(log),
            counters,
            dhcp_trusted,
            events: Some(events),
            attached: Vec::new(),
            skb_fallback: opts.skb_fallback,
            pin_dir: opts.pin_dir.clone(),
            link_pins: Vec::new(),
            keep_attached: opts.keep_attached,
            last_link: None,
        })
    }

    fn program(&mut self) -> Result<&mut Xdp, DataplaneError> {
        self.ebpf
            .program_mut(proxy_common::XDP_PROGRAM)
            .ok_or(DataplaneError::Missing("XDP program"))?
            .try_into()
            .map_err(DataplaneError::Program)
    }

    /// Attaches to `iface` in native mode, falling back to generic mode (with
    /// a warning) when allowed. Returns the mode it got.
    ///
    /// The link is pinned under the pin directory, so that a daemon that
    /// dies (kill -9) leaves the classifier running and learning; the next
    /// daemon swaps its own program into that link atomically.
    pub fn attach(&mut self, iface: &str) -> Result<AttachMode, DataplaneError> {
        let pin = self.pin_dir.join(format!("link_{iface}"));
        let mode = self.attach_fresh_or_reuse(iface, &pin)?;
        self.link_pins.push(pin);
        self.attached.push((iface.to_owned(), mode));
        Ok(mode)
    }

    fn attach_fresh_or_reuse(
        &mut self,
        iface: &str,
        pin: &Path,
    ) -> Result<AttachMode, DataplaneError> {
        use aya::programs::links::{FdLink, PinnedLink};
        use aya::programs::xdp::XdpLink;
        if let Ok(pinned) = PinnedLink::from_pin(pin) {
            let prog = self.program()?;
            let reused = XdpLink::try_from(FdLink::from(pinned))
                .map_err(|e| error_chain(&e))
                .and_then(|link| prog.attach_to_link(link).map_err(|e| error_chain(&e)));
            match reused {
                Ok(_) => {
                    tracing::info!(
                        "XDP on {iface}: took over the link a previous daemon left pinned"
                    );
                    return Ok(AttachMode::Reused);
                }
                Err(e) => {
                    tracing::warn!(
                        "XDP on {iface}: pinned link {} unusable ({e}); attaching anew",
                        pin.display()
                    );
                    let _ = std::fs::remove_file(pin);
                }
            }
        }
        let mode = self.attach_new(iface)?;
        self.pin_link(iface, pin);
        Ok(mode)
    }

    /// Pins the newest link of the program (best effort: a netlink-based
    /// attachment cannot be pinned, and then dies with the daemon).
    fn pin_link(&mut self, iface: &str, pin: &Path) {
        use aya::programs::links::FdLink;
        use aya::programs::xdp::XdpLink;
        let Some(id) = self.last_link.take() else {
            return;
        };
        let Ok(prog) = self.program() else { return };
        let Ok(link) = prog.take_link(id) else { return };
        let pinned = FdLink::try_from(link)
            .map_err(|e| error_chain(&e))
            .and_then(|fd| fd.pin(pin).map_err(|e| error_chain(&e)))
            .and_then(|p| XdpLink::try_from(FdLink::from(p)).map_err(|e| error_chain(&e)));
        match pinned.and_then(|link| prog.attach_to_link(link).map_err(|e| error_chain(&e))) {
            Ok(_) => tracing::debug!("XDP link of {iface} pinned at {}", pin.display()),
            Err(e) => {
                tracing::warn!(
                    "XDP link of {iface} not pinned ({e}): it will not outlive the daemon"
                )
            }
        }
    }

    fn attach_new(&mut self, iface: &str) -> Result<AttachMode, DataplaneError> {
        let fallback = self.skb_fallback;
        let prog = self.program()?;
        let native = match prog.attach(iface, XdpMode::Driver) {
            Ok(id) => {
                self.last_link = Some(id);
                tracing::info!("XDP attached to {iface} in native mode");
                return Ok(AttachMode::Native);
            }
            Err(ProgramError::UnknownInterface { name }) => {
                return Err(DataplaneError::InterfaceMissing(name));
            }
            Err(e) => error_chain(&e),
        };
        if !fallback {
            return Err(DataplaneError::AttachRefused {
                iface: iface.to_owned(),
                native,
                skb: None,
            });
        }
        match prog.attach(iface, XdpMode::Skb) {
            Ok(id) => {
                self.last_link = Some(id);
                tracing::warn!(
                    "XDP on {iface}: native mode refused ({native}); attached in generic (SKB) mode, which is slower"
                );
                Ok(AttachMode::Generic)
            }
            Err(e) => Err(DataplaneError::AttachRefused {
                iface: iface.to_owned(),
                native,
                skb: Some(error_chain(&e)),
            }),
        }
    }

    /// Interfaces attached so far, with their mode.
    pub fn attached(&self) -> &[(String, AttachMode)] {
        &self.attached
    }

    /// A handle on the client map, cheap to clone and share between tasks.
    pub fn table(&self) -> ClientTable {
        self.table.clone()
    }

    /// Replaces the policy; takes effect for the next frame. Its
    /// `log_events` is the one [`Dataplane::set_log_events`] chose.
    pub fn set_policy(&mut self, policy: &Policy) -> Result<(), DataplaneError> {
        let mut policy = *policy;
        policy.log_events = u8::from(self.log_events);
        self.policy
            .set(0, policy, 0)
            .map_err(DataplaneError::map(maps::POLICY))
    }

    /// Turns the classifier's log of rare events (an SMI drop and its
    /// reason, a malformed DHCP frame) on or off; takes effect for the next
    /// frame. Off, the fast path runs no log code at all.
    pub fn set_log_events(&mut self, on: bool) -> Result<(), DataplaneError> {
        let mut policy = self
            .policy
            .get(&0, 0)
            .map_err(DataplaneError::map(maps::POLICY))?;
        self.log_events = on;
        policy.log_events = u8::from(on);
        self.policy
            .set(0, policy, 0)
            .map_err(DataplaneError::map(maps::POLICY))
    }

    /// Forwards the classifier's pending log records to the `log` facade
    /// without async I/O (before [`Dataplane::take_log`]; tests).
    pub fn drain_log(&mut self) {
        if let Some(log) = self.log.as_mut() {
            log.flush();
        }
    }

    /// Takes the classifier's log (once): the records it writes with
    /// aya-log, forwarded to the daemon's log by [`XdpLog::forward`].
    pub fn take_log(&mut self) -> Option<Result<XdpLog, DataplaneError>> {
        self.log.take().map(XdpLog::new)
    }

    /// Makes the ports of `ifindexes` the ones trusted for DHCP servers
    /// (used while the policy's `dhcp_trusted_only` is set).
    pub fn set_dhcp_trusted(&mut self, ifindexes: &[u32]) -> Result<(), DataplaneError> {
        let old: Vec<u32> = self.dhcp_trusted.keys().filter_map(Result::ok).collect();
        for key in old.iter().filter(|k| !ifindexes.contains(k)) {
            self.dhcp_trusted
                .remove(key)
                .map_err(DataplaneError::map(maps::DHCP_TRUSTED))?;
        }
        for ifindex in ifindexes {
            self.dhcp_trusted
                .insert(ifindex, 1, 0)
                .map_err(DataplaneError::map(maps::DHCP_TRUSTED))?;
        }
        Ok(())
    }

    /// The counters summed over CPUs, indexed by `proxy_common::counter`.
    pub fn counters(&self) -> Result<[u64; counter::COUNT as usize], DataplaneError> {
        let mut out = [0u64; counter::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let index = i as u32;
            let per_cpu = self
                .counters
                .get(&index, 0)
                .map_err(DataplaneError::map(maps::COUNTERS))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// Takes the event stream (once); `None` after the first call.
    pub fn take_events(&mut self) -> Option<Result<EventStream, DataplaneError>> {
        self.events.take().map(EventStream::new)
    }

    /// Reads every pending event without async I/O (before `take_events`).
    pub fn drain_events(&mut self) -> Vec<DataplaneEvent> {
        let Some(ring) = self.events.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            if let Some(ev) = DataplaneEvent::decode(&item) {
                out.push(ev);
            }
        }
        out
    }

    /// Runs the classifier `repeat` times on `frame` with BPF_PROG_TEST_RUN,
    /// returning the verdict and the kernel's mean time per run.
    pub fn test_run(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, std::time::Duration), DataplaneError> {
        self.test_run_program(proxy_common::XDP_PROGRAM, frame, repeat)
    }

    /// As [`Dataplane::test_run`], for any program of the object (loaded on
    /// first use), e.g. the benchmark references.
    pub fn test_run_program(
        &mut self,
        name: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, std::time::Duration), DataplaneError> {
        use aya::programs::TestRun as _;
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or(DataplaneError::Missing("program"))?
            .try_into()
            .map_err(DataplaneError::Program)?;
        if prog.fd().is_err() {
            prog.load().map_err(DataplaneError::Program)?;
        }
        let opts = aya::programs::TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..Default::default()
        };
        let r = prog.test_run(opts).map_err(DataplaneError::Program)?;
        Ok((r.return_value, r.duration))
    }
}

/// The object compiled into this binary.
pub fn embedded() -> Result<&'static [u8], DataplaneError> {
    #[cfg(feature = "embed-ebpf")]
    {
        Ok(EMBEDDED_OBJECT)
    }
    #[cfg(not(feature = "embed-ebpf"))]
    {
        Err(DataplaneError::NoObject)
    }
}

/// An error with its sources, on one line (the kernel's reason is a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// The name of a kernel client state (`proxy_common::state`).
pub fn state_name(s: u8) -> &'static str {
    use proxy_common::state::*;
    match s {
        NEW => "new",
        DISCOVERED => "discovered",
        ADMITTED => "admitted",
        UPGRADING => "upgrading",
        DONE => "done",
        BLOCKED => "blocked",
        NOT_SMI => "not-smi",
        _ => "unknown",
    }
}
