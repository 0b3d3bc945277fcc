//! Network namespaces and veth pairs that a test or the lab creates itself
//! (and removes on drop), entering a namespace from one thread, and sending
//! raw frames with AF_PACKET.
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};
use nix::sched::{CloneFlags, setns};

/// Whether this process runs as root (the namespace tests need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Panics with a clear message unless running as root.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root (XDP, network namespaces): run `cargo xtask test` as root"
    );
}

/// Runs `ip <args>`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `ip -n <ns> <args>`.
pub fn ip_in(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// A unique short name prefix for this process (interface names have 15 bytes).
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}{n}", std::process::id() % 100_000)
}

/// A network namespace deleted (with its interfaces) on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates namespace `name` with `lo` up.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        ip_in(name, &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MAC address of `iface` in the namespace.
    pub fn link_mac(&self, iface: &str) -> anyhow::Result<[u8; 6]> {
        let out = std::process::Command::new("ip")
            .args(["-j", "-n", self.name(), "link", "show", "dev", iface])
            .output()?;
        let links: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let text = links[0]["address"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{iface} in {} has no address", self.name()))?;
        let mac: proxy::store::Mac = text.parse()?;
        Ok(mac.0)
    }

    /// Runs `ip <args>` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        ip_in(&self.name, args)
    }

    /// Moves the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> anyhow::Result<NsGuard> {
        NsGuard::enter(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Creates a veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), both up.
pub fn veth(ns_a: &NetNs, a: &str, ns_b: &NetNs, b: &str) -> anyhow::Result<()> {
    ip(&[
        "link",
        "add",
        a,
        "netns",
        ns_a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
    ])?;
    ns_a.ip(&["link", "set", a, "up"])?;
    ns_b.ip(&["link", "set", b, "up"])?;
    Ok(())
}

/// The calling thread's stay in another network namespace.
pub struct NsGuard {
    home: File,
}

impl NsGuard {
    /// Enters `/run/netns/<name>` for this thread.
    pub fn enter(name: &str) -> anyhow::Result<Self> {
        let home = File::open("/proc/thread-self/ns/net").context("own netns")?;
        let target =
            File::open(format!("/run/netns/{name}")).with_context(|| format!("netns {name}"))?;
        setns(&target, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {name}"))?;
        Ok(Self { home })
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = setns(&self.home, CloneFlags::CLONE_NEWNET);
    }
}

/// A raw AF_PACKET socket bound to one interface, for injecting frames
/// (tagged frames included: this kernel has no 802.1Q sub-interfaces).
pub struct RawSocket {
    fd: std::os::fd::OwnedFd,
}

impl RawSocket {
    /// Opens a raw socket on `iface` of the calling thread's namespace.
    pub fn open(iface: &str) -> anyhow::Result<Self> {
        use std::os::fd::FromRawFd as _;
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: plain syscalls with checked results.
        unsafe {
            let index = libc::if_nametoindex(name.as_ptr());
            if index == 0 {
                bail!("no interface {iface}");
            }
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = index as i32;
            let r = libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            if r != 0 {
                bail!(
                    "bind AF_PACKET to {iface}: {}",
                    std::io::Error::last_os_error()
                );
            }
            Ok(Self { fd })
        }
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        self.try_send(frame)
            .map_err(|e| anyhow::anyhow!("send: {e}"))
    }

    /// Sends one frame; the system's error as it is (a flood meets
    /// `ENOBUFS` when the device queue is full).
    pub fn try_send(&self, frame: &[u8]) -> std::io::Result<()> {
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
