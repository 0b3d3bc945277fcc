//! Plumbing shared by the emulator and the site DHCP server: namespaces made
//! in batches, running a closure inside a namespace, one macvlan per
//! namespace, and an asynchronous AF_PACKET socket for DHCP before an
//! address exists.
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use netlink_packet_core::NLM_F_ACK;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute, LinkFlags, LinkMessage,
};
use proxy::host::netlink::{Answer, RouteSocket};
use tokio::io::unix::AsyncFd;

use crate::netns::NsGuard;

/// Name of the macvlan inside every switch (and DHCP server) namespace.
pub const IFACE: &str = "eth0";

/// Runs `ip [-n ns] [-force] -batch -` with one command per line.
pub fn ip_batch(ns: Option<&str>, force: bool, lines: &[String]) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    if force {
        cmd.arg("-force");
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ip -batch")?;
    {
        let mut stdin = child.stdin.take().context("ip stdin")?;
        let mut text = lines.join("\n");
        text.push('\n');
        stdin
            .write_all(text.as_bytes())
            .context("writing ip batch")?;
    }
    let out = child.wait_with_output().context("waiting for ip -batch")?;
    if !out.status.success() && !force {
        bail!(
            "ip -batch ({} lines, first {:?}): {}",
            lines.len(),
            lines[0],
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A set of network namespaces created in one batch and deleted (with
/// their interfaces) in one batch on drop.
pub struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Creates the namespaces `names` (removing leftovers of the same name).
    pub fn create(names: Vec<String>) -> anyhow::Result<Self> {
        // Leftovers of a crashed run with the same names.
        let stale: Vec<String> = names
            .iter()
            .filter(|n| std::path::Path::new("/run/netns").join(n).exists())
            .map(|n| format!("netns del {n}"))
            .collect();
        ip_batch(None, true, &stale)?;
        let this = Self { names };
        let add: Vec<String> = this
            .names
            .iter()
            .map(|n| format!("netns add {n}"))
            .collect();
        ip_batch(None, false, &add)?;
        Ok(this)
    }

    /// The namespace names, in creation order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let del: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("netns del {n}"))
            .collect();
        let _ = ip_batch(None, true, &del);
    }
}

/// One macvlan to create on `parent` and place, up, in a namespace under
/// the name [`IFACE`].
#[derive(Clone, Debug)]
pub struct Macvlan {
    /// Target namespace.
    pub netns: String,
    /// MAC address of the new interface.
    pub mac: [u8; 6],
}

/// How macvlans on one parent reach each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MacvlanMode {
    /// Siblings talk directly: every broadcast (DHCP, ARP) is copied to
    /// every sibling, which costs N copies per broadcast on N switches.
    #[default]
    Bridge,
    /// Siblings are isolated: everything leaves through the parent, as on
    /// a switch port facing the proxy. Scales to thousands of switches; the
    /// site DHCP server must then sit behind the parent (see
    /// `dhcp_server::Placement::ProxyPort`).
    Private,
}

impl MacvlanMode {
    fn keyword(self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Private => "private",
        }
    }
}

/// Broadcast queue of every macvlan: room for a boot storm of broadcasts
/// arriving on the parent (the kernel default is 1,000).
const BC_QUEUE_LEN: u32 = 65_536;

/// Creates all `links` on `parent` (which lives in namespace `parent_ns`) in
/// one batch, down: bring them up with [`up_without_ipv6_in`].
pub fn create_macvlans(
    parent_ns: &str,
    parent: &str,
    mode: MacvlanMode,
    links: &[Macvlan],
) -> anyhow::Result<()> {
    let lines: Vec<String> = links
        .iter()
        .map(|l| {
            format!(
                "link add link {parent} name {IFACE} netns {} address {} type macvlan mode {} bcqueuelen {BC_QUEUE_LEN}",
                l.netns,
                mac_string(&l.mac),
                mode.keyword(),
            )
        })
        .collect();
    ip_batch(Some(parent_ns), false, &lines)
}

/// Brings [`IFACE`] up in each of `namespaces` with [`up_without_ipv6`],
/// from the calling thread.
pub fn up_without_ipv6_in(namespaces: &[String]) -> anyhow::Result<()> {
    for ns in namespaces {
        let _in = NsGuard::enter(ns)?;
        up_without_ipv6(IFACE).with_context(|| format!("{IFACE} in {ns}"))?;
    }
    Ok(())
}

/// Brings `iface` up, in the calling thread's namespace, without IPv6
/// addresses (address generation mode `none` first), as an unconfigured
/// legacy switch: no DAD, router solicitation or MLD on the wire. Two
/// netlink requests; the per-namespace `disable_ipv6` sysctl it replaces
/// took the kernel 10 ms a namespace at 10,000 namespaces.
pub fn up_without_ipv6(iface: &str) -> anyhow::Result<()> {
    let index =
        proxy::dataplane::ifindex(iface).with_context(|| format!("no interface {iface}"))?;
    let mut socket = RouteSocket::open()?;
    // IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE: NONE } }.
    let gen_none = AfSpecInet6::AddrGenMode(In6AddrGenMode::None);
    let no_ipv6 = LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![gen_none])]);
    for (flags, attributes) in [(LinkFlags::empty(), vec![no_ipv6]), (LinkFlags::Up, vec![])] {
        setlink(&mut socket, index, flags, attributes)
            .with_context(|| format!("RTM_SETLINK {iface}"))?;
    }
    Ok(())
}

/// One acknowledged `RTM_SETLINK` of interface `index`: `IFF_UP` set to
/// `flags`'s, then `attributes`.
fn setlink(
    socket: &mut RouteSocket,
    index: u32,
    flags: LinkFlags,
    attributes: Vec<LinkAttribute>,
) -> anyhow::Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = flags;
    link.header.change_mask = LinkFlags::Up;
    link.attributes = attributes;
    match socket.request(RouteNetlinkMessage::SetLink(link), NLM_F_ACK)? {
        Answer::Ack => Ok(()),
        Answer::Refused(errno) => Err(std::io::Error::from_raw_os_error(errno).into()),
        Answer::Message(m) => bail!("answered with a message: {m:?}"),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs `f` on a fresh thread inside namespace `ns` and returns its result.
///
/// Sockets created by `f` stay in `ns`; convert them to tokio with
/// `from_std` once back in the runtime.
pub async fn in_netns<T, F>(ns: &str, f: F) -> anyhow::Result<T>
where
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let ns = ns.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let result = NsGuard::enter(&ns).and_then(|_guard| f());
            let _ = tx.send(result);
        })
        .context("spawning netns thread")?;
    rx.await.context("netns thread vanished")?
}

/// Runs `ip -n <ns> <args>` off the runtime threads.
pub async fn ip_in(ns: &str, args: Vec<String>) -> anyhow::Result<()> {
    let ns = ns.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::netns::ip_in(&ns, &args)
    })
    .await
    .context("ip task")?
}

/// A tokio UDP socket bound to `0.0.0.0:port` inside `ns`.
pub async fn udp_socket_in(ns: &str, port: u16) -> anyhow::Result<tokio::net::UdpSocket> {
    let std = in_netns(ns, move || {
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
        s.set_nonblocking(true)?;
        Ok(s)
    })
    .await?;
    Ok(tokio::net::UdpSocket::from_std(std)?)
}

/// A tokio UDP socket bound to `0.0.0.0:port` inside `ns`, with a receive
/// buffer of `rcvbuf` bytes (SO_RCVBUFFORCE: above `rmem_max`, needs root).
pub async fn udp_socket_in_with_rcvbuf(
    ns: &str,
    port: u16,
    rcvbuf: usize,
) -> anyhow::Result<tokio::net::UdpSocket> {
    let std = in_netns(ns, move || {
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
        s.set_nonblocking(true)?;
        let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
        // SAFETY: valid socket fd and a c_int option value.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        if r != 0 {
            bail!("SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
        }
        Ok(s)
    })
    .await?;
    Ok(tokio::net::UdpSocket::from_std(std)?)
}

/// `struct rtentry` of `<net/route.h>` (libc has it only for musl).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

fn sockaddr_v4(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; any bytes are valid.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn prefix_mask(prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(prefix_len.min(32)))
            .unwrap_or(0),
    )
}

/// An AF_INET datagram socket of the calling thread's namespace, for ioctls.
fn ioctl_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("AF_INET socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifname(iface: &str) -> anyhow::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
    if iface.len() >= libc::IFNAMSIZ || iface.bytes().any(|b| b == 0) {
        bail!("bad interface name {iface:?}");
    }
    for (slot, byte) in name.iter_mut().zip(iface.bytes()) {
        *slot = byte as libc::c_char;
    }
    Ok(name)
}

/// Sets the IPv4 address of `iface`, in the calling thread's namespace,
/// with SIOCSIFADDR and SIOCSIFNETMASK (far cheaper than running `ip` for
/// hundreds of switches).
pub fn set_ipv4(iface: &str, ip: Ipv4Addr, prefix_len: u8) -> anyhow::Result<()> {
    let sock = ioctl_socket()?;
    for (request, addr, what) in [
        (libc::SIOCSIFADDR, ip, "SIOCSIFADDR"),
        (
            libc::SIOCSIFNETMASK,
            prefix_mask(prefix_len),
            "SIOCSIFNETMASK",
        ),
    ] {
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_name = ifname(iface)?;
        req.ifr_ifru.ifru_addr = sockaddr_v4(addr);
        // SAFETY: valid fd and a properly initialised ifreq.
        if unsafe { libc::ioctl(sock.as_raw_fd(), request, &raw mut req) } != 0 {
            bail!("{what} {iface} {addr}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Removes the IPv4 address of `iface` (SIOCSIFADDR with 0.0.0.0, as
/// `ifconfig <iface> 0.0.0.0`), in the calling thread's namespace; its
/// routes go with it.
pub fn clear_ipv4(iface: &str) -> anyhow::Result<()> {
    let sock = ioctl_socket()?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = ifname(iface)?;
    req.ifr_ifru.ifru_addr = sockaddr_v4(Ipv4Addr::UNSPECIFIED);
    // SAFETY: valid fd and a properly initialised ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFADDR, &raw mut req) } != 0 {
        let err = std::io::Error::last_os_error();
        // No address to remove.
        if err.raw_os_error() != Some(libc::EADDRNOTAVAIL) {
            bail!("SIOCSIFADDR {iface} 0.0.0.0: {err}");
        }
    }
    Ok(())
}

/// Adds an IPv4 route `dst/prefix_len` out of `iface` (via `gateway` if
/// given, which must be on-link) with SIOCADDRT, in the calling thread's
/// namespace; an existing route counts as success.
pub fn add_route(
    iface: &str,
    dst: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
) -> anyhow::Result<()> {
    let sock = ioctl_socket()?;
    let mut dev = ifname(iface)?;
    let mut flags = libc::RTF_UP;
    if gateway.is_some() {
        flags |= libc::RTF_GATEWAY;
    }
    if prefix_len == 32 {
        flags |= libc::RTF_HOST;
    }
    let mut route = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr_v4(dst),
        rt_gateway: sockaddr_v4(gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)),
        rt_genmask: sockaddr_v4(prefix_mask(prefix_len)),
        rt_flags: flags,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_mut_ptr(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: valid fd; `route` and the name it points to outlive the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT, &raw mut route) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            bail!("SIOCADDRT {dst}/{prefix_len} dev {iface}: {err}");
        }
    }
    Ok(())
}

/// A TCP listener on `addr` inside `ns`.
pub async fn tcp_listener_in(
    ns: &str,
    addr: std::net::SocketAddr,
) -> anyhow::Result<tokio::net::TcpListener> {
    let std = in_netns(ns, move || {
        let l = std::net::TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .await?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

/// Connects from inside `ns` to `addr`, failing after `timeout`.
pub async fn tcp_connect_in(
    ns: &str,
    addr: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = in_netns(ns, || Ok(tokio::net::TcpSocket::new_v4()?)).await?;
    tokio::time::timeout(timeout, socket.connect(addr))
        .await
        .with_context(|| format!("connect {addr}: timed out"))?
        .with_context(|| format!("connect {addr}"))
}

/// Classic BPF: IPv4, UDP, not a fragment, destination port `port`, BOOTP
/// `chaddr` = `mac`. Filtering in the kernel matters at scale: every switch
/// sees every broadcast reply of the site DHCP server.
fn bootp_filter(port: u16, mac: [u8; 6]) -> [libc::sock_filter; 15] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let [m0, m1, m2, m3, m4, m5] = mac;
    [
        op(0x28, 0, 0, 12),                                      // ldh [12] (ethertype)
        op(0x15, 0, 12, 0x0800),                                 // jeq IPv4, else drop
        op(0x30, 0, 0, 23),                                      // ldb [23] (protocol)
        op(0x15, 0, 10, 17),                                     // jeq UDP, else drop
        op(0x28, 0, 0, 20),                                      // ldh [20] (fragment)
        op(0x45, 8, 0, 0x1fff),                                  // jset offset -> drop
        op(0xb1, 0, 0, 14),                                      // ldxb 4*([14]&0xf)
        op(0x48, 0, 0, 16),                                      // ldh [x+16] (destination port)
        op(0x15, 0, 5, u32::from(port)),                         // jeq port, else drop
        op(0x40, 0, 0, 50),                                      // ld [x+50] (chaddr 0..4)
        op(0x15, 0, 3, u32::from_be_bytes([m0, m1, m2, m3])),    // jeq, else drop
        op(0x48, 0, 0, 54),                                      // ldh [x+54] (chaddr 4..6)
        op(0x15, 0, 1, u32::from(u16::from_be_bytes([m4, m5]))), // jeq, else drop
        op(0x06, 0, 0, 0x0004_0000),                             // accept
        op(0x06, 0, 0, 0),                                       // drop
    ]
}

/// An AF_PACKET socket on one interface that receives only BOOTP/DHCP frames
/// to one UDP port and one client hardware address, driven by the tokio
/// reactor; it sends whole Ethernet frames.
pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
}

impl PacketSocket {
    /// Opens the socket on `iface` of the calling thread's namespace (call it
    /// inside [`in_netns`]); finish with [`PacketSocket::from_fd`] in the runtime.
    pub fn open_fd(iface: &str, udp_port: u16, chaddr: [u8; 6]) -> anyhow::Result<OwnedFd> {
        let index =
            proxy::dataplane::ifindex(iface).with_context(|| format!("no interface {iface}"))?;
        // SAFETY: plain syscalls on a fresh fd, results checked; the filter
        // array outlives the setsockopt call.
        unsafe {
            // Protocol 0: receives nothing until bound, so no frame slips
            // in before the filter.
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            );
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mut filter = bootp_filter(udp_port, chaddr);
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&raw const prog).cast(),
                size_of::<libc::sock_fprog>() as u32,
            ) != 0
            {
                bail!("SO_ATTACH_FILTER: {}", std::io::Error::last_os_error());
            }
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
            sll.sll_ifindex = index as i32;
            if libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                bail!(
                    "bind AF_PACKET {iface}: {}",
                    std::io::Error::last_os_error()
                );
            }
            Ok(fd)
        }
    }

    /// Registers a socket from [`PacketSocket::open_fd`] with the runtime.
    pub fn from_fd(fd: OwnedFd) -> anyhow::Result<Self> {
        // SAFETY: the OwnedFd is a valid socket, owned by the AsyncFd from
        // here on and closed only when it drops.
        let fd = unsafe { AsyncFd::register(fd)? };
        Ok(Self { fd })
    }

    /// Opens the socket on [`IFACE`] inside `ns`.
    pub async fn open_in(ns: &str, udp_port: u16, chaddr: [u8; 6]) -> anyhow::Result<Self> {
        let fd = in_netns(ns, move || Self::open_fd(IFACE, udp_port, chaddr)).await?;
        Self::from_fd(fd)
    }

    /// Sends one whole Ethernet frame.
    pub async fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        send_frame(&self.fd, frame).await
    }

    /// Receives one frame into `buf`, returning its length (truncated to `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: valid fd; the kernel writes at most buf.len() bytes.
            let got = guard.try_io(|fd| {
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
            });
            if let Ok(result) = got {
                return result;
            }
        }
    }
}

/// Sends one whole frame on a packet socket; a full send buffer waits.
pub(crate) async fn send_frame(fd: &AsyncFd<OwnedFd>, frame: &[u8]) -> std::io::Result<()> {
    loop {
        let mut guard = fd.writable().await?;
        let sent = guard.try_io(|fd| {
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        if let Ok(result) = sent {
            return result;
        }
    }
}

/// The UDP payload of an untagged Ethernet/IPv4/UDP frame, with the source
/// address and ports, or `None` if the frame is anything else or malformed.
pub fn udp_payload(frame: &[u8]) -> Option<(Ipv4Addr, u16, u16, &[u8])> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let src = Ipv4Addr::new(*ip.get(12)?, *ip.get(13)?, *ip.get(14)?, *ip.get(15)?);
    let udp = ip.get(ihl..total.max(ihl))?;
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    let payload = udp.get(8..len.max(8))?;
    Some((src, sport, dport, payload))
}
