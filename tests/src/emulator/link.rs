//! How one switch reaches the segment, in either emulator mode: its own
//! network namespace with a macvlan (the kernel's stack; [`Link::Netns`]),
//! or an interface of the in-process packet stack ([`Link::Packet`]). The
//! switch's behaviour ([`super::switch`], [`super::smi`], [`super::cli`])
//! is written once against this.
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::dhcp_client::{self, DhcpTiming, Lease};
use super::net::{self, IFACE, PacketSocket};
use super::packet;
use crate::tftp_client::Datagrams;

/// A switch's attachment to the segment.
pub(super) enum Link {
    /// Namespace of its own, holding macvlan [`IFACE`].
    Netns(String),
    /// Interface of the packet stack.
    Packet(packet::Host),
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Netns(ns) => write!(f, "namespace {ns}"),
            Self::Packet(host) => write!(f, "packet interface {}", host.index()),
        }
    }
}

/// A switch's TCP listener.
pub(super) enum Listener {
    Kernel(tokio::net::TcpListener),
    Packet(packet::Listener),
}

/// A switch's TCP connection.
pub enum Stream {
    /// A kernel socket in the switch's namespace.
    Kernel(tokio::net::TcpStream),
    /// A connection on the packet stack.
    Packet(packet::TcpStream),
}

/// A switch's UDP socket (its TFTP client's).
pub(super) enum Udp {
    Kernel(tokio::net::UdpSocket),
    Packet(packet::UdpSocket),
}

impl Link {
    /// The switch's namespace, in namespace mode.
    pub(super) fn netns(&self) -> Option<&str> {
        match self {
            Self::Netns(ns) => Some(ns),
            Self::Packet(_) => None,
        }
    }

    /// Runs the DHCP client until a lease is bound.
    pub(super) async fn acquire(
        &self,
        mac: [u8; 6],
        hostname: &str,
        timing: &DhcpTiming,
    ) -> anyhow::Result<Lease> {
        Ok(match self {
            Self::Netns(ns) => {
                let sock = PacketSocket::open_in(ns, 68, mac).await?;
                dhcp_client::acquire(&sock, mac, hostname, timing).await
            }
            Self::Packet(host) => dhcp_client::acquire(&host.dhcp(), mac, hostname, timing).await,
        })
    }

    /// Configures the leased address and routes.
    pub(super) async fn configure(&self, lease: &Lease) -> anyhow::Result<()> {
        match self {
            Self::Netns(ns) => configure_netns(ns, lease).await,
            Self::Packet(host) => {
                host.configure(lease);
                Ok(())
            }
        }
    }

    /// Removes the address, as a reload does.
    pub(super) async fn deconfigure(&self) -> anyhow::Result<()> {
        match self {
            Self::Netns(ns) => net::in_netns(ns, || net::clear_ipv4(IFACE)).await,
            Self::Packet(host) => {
                host.deconfigure();
                Ok(())
            }
        }
    }

    /// Listens on TCP `addr`.
    pub(super) async fn listen(&self, addr: SocketAddr) -> anyhow::Result<Listener> {
        Ok(match self {
            Self::Netns(ns) => Listener::Kernel(net::tcp_listener_in(ns, addr).await?),
            Self::Packet(host) => Listener::Packet(
                host.listen(addr.port())
                    .with_context(|| format!("listen {addr}"))?,
            ),
        })
    }

    /// Connects to `addr`, failing after `timeout`.
    pub(super) async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<Stream> {
        Ok(match self {
            Self::Netns(ns) => Stream::Kernel(net::tcp_connect_in(ns, addr, timeout).await?),
            Self::Packet(host) => Stream::Packet(
                tokio::time::timeout(timeout, host.connect(addr))
                    .await
                    .with_context(|| format!("connect {addr}: timed out"))?
                    .with_context(|| format!("connect {addr}"))?,
            ),
        })
    }

    /// A UDP socket on an ephemeral port.
    pub(super) async fn udp(&self) -> anyhow::Result<Udp> {
        Ok(match self {
            Self::Netns(ns) => Udp::Kernel(net::udp_socket_in(ns, 0).await?),
            Self::Packet(host) => Udp::Packet(host.udp()?),
        })
    }
}

/// Adds the leased address; a default route through the router (after a
/// host route to it when it lies outside the subnet, as `onlink` would);
/// and, without a router, an on-link host route to a TFTP server outside
/// the subnet (the proxy, in large pools). All with ioctls from one thread
/// in the namespace: spawning `ip` for each of thousands of switches costs
/// more than their whole DHCP exchange.
async fn configure_netns(netns: &str, lease: &Lease) -> anyhow::Result<()> {
    let (ip, prefix_len) = (lease.ip, lease.prefix_len);
    let router = lease.router;
    let onlink_router = router.filter(|&r| !same_subnet(r, ip, prefix_len));
    let host_route = lease
        .tftp_server
        .filter(|&server| router.is_none() && !same_subnet(server, ip, prefix_len));
    net::in_netns(netns, move || {
        net::set_ipv4(IFACE, ip, prefix_len)?;
        if let Some(router) = onlink_router {
            net::add_route(IFACE, router, 32, None)?;
        }
        if let Some(router) = router {
            net::add_route(IFACE, Ipv4Addr::UNSPECIFIED, 0, Some(router))?;
        }
        if let Some(server) = host_route {
            net::add_route(IFACE, server, 32, None)?;
        }
        Ok(())
    })
    .await
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix_len: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

impl Listener {
    /// The next connection and its peer.
    pub(super) async fn accept(&mut self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Self::Kernel(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Stream::Kernel(s), peer))
            }
            Self::Packet(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Stream::Packet(s), peer))
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Kernel(s) => Pin::new(s).poll_read(cx, buf),
            Self::Packet(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Kernel(s) => Pin::new(s).poll_write(cx, data),
            Self::Packet(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Kernel(s) => Pin::new(s).poll_flush(cx),
            Self::Packet(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Kernel(s) => Pin::new(s).poll_shutdown(cx),
            Self::Packet(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Datagrams for Udp {
    async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            Self::Kernel(s) => s.send_to(data, to).await,
            Self::Packet(s) => s.send_to(data, to).await,
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Self::Kernel(s) => s.recv_from(buf).await,
            Self::Packet(s) => s.recv_from(buf).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(same_subnet(ip("192.0.2.1"), ip("192.0.2.200"), 24));
        assert!(!same_subnet(ip("192.0.2.1"), ip("198.18.0.5"), 15));
        assert!(same_subnet(ip("198.19.255.1"), ip("198.18.0.5"), 15));
        assert!(same_subnet(ip("1.2.3.4"), ip("5.6.7.8"), 0));
    }
}
