//! The switches' sockets on the packet stack, shaped like tokio's: a TCP
//! listener, TCP streams (`AsyncRead`/`AsyncWrite`), a UDP socket, and the
//! DHCP client's frame port. Each call locks the stack for one smoltcp
//! socket operation; one that queues data or a close kicks the driver, and
//! one that must wait registers the task's waker with smoltcp.
use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::task::{Context, Poll};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Closing, Host, HostSlot, Stack};

/// Bytes of each TCP socket's receive and send buffer.
const TCP_BUFFER: usize = 4 * 1024;
/// Listening sockets per listener: connections the proxy may open at once.
const BACKLOG: usize = 2;
/// A TCP connection without progress this long is aborted.
const TCP_TIMEOUT: Duration = Duration::from_secs(60);
/// Datagrams and bytes each UDP socket queues per direction.
const UDP_PACKETS: usize = 8;
const UDP_BUFFER: usize = 16 * 1024;

fn new_tcp() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    );
    socket.set_timeout(Some(TCP_TIMEOUT));
    socket.set_nagle_enabled(false);
    socket
}

fn socket_addr(endpoint: IpEndpoint) -> SocketAddr {
    let IpAddress::Ipv4(ip) = endpoint.addr;
    SocketAddr::from((ip, endpoint.port))
}

fn v4(addr: SocketAddr) -> io::Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(v4) => Ok(v4),
        SocketAddr::V6(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the packet stack is IPv4 only",
        )),
    }
}

/// The switch's DHCP client side: whole Ethernet frames out, the frames
/// addressed to its `chaddr` on UDP port 68 in.
pub struct DhcpPort<'a> {
    pub(super) host: &'a Host,
}

impl DhcpPort<'_> {
    /// Queues one whole frame for the segment.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.host.stack.lock().tx.push(frame.to_vec());
        self.host.stack.shared.kick.notify_one();
        Ok(())
    }

    /// The next DHCP frame for this switch (truncated to `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut queue = self.host.dhcp.lock().await;
        let frame = queue
            .recv()
            .await
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(n)
    }
}

impl Host {
    /// Listens on TCP `port` of the interface's address.
    pub fn listen(&self, port: u16) -> io::Result<Listener> {
        let backlog = self.stack.with_host(self.index, |slot| {
            (0..BACKLOG)
                .map(|_| listening(slot, port))
                .collect::<io::Result<Vec<_>>>()
        })?;
        Ok(Listener {
            stack: self.stack.clone(),
            index: self.index,
            port,
            backlog,
        })
    }

    /// Connects to `addr`; cancelling the future (a timeout) drops the attempt.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let addr = v4(addr)?;
        let handle = self.stack.with_host(self.index, |slot| {
            let mut socket = new_tcp();
            let local = slot.ephemeral_port();
            socket
                .connect(slot.iface.context(), (*addr.ip(), addr.port()), local)
                .map_err(|e| io::Error::other(format!("connect {addr}: {e}")))?;
            slot.kick = true;
            Ok::<_, io::Error>(slot.sockets.add(socket))
        })?;
        let stream = TcpStream {
            stack: self.stack.clone(),
            index: self.index,
            handle,
            peer: SocketAddr::V4(addr),
        };
        poll_fn(|cx| {
            stream.with_socket(|socket| match socket.state() {
                tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("connect {addr}: refused or unreachable"),
                ))),
                // Connected, and perhaps closed by the peer since (a
                // session refused at once): as a kernel socket, the
                // connect succeeds and the first read finds the end.
                _ => Poll::Ready(Ok(())),
            })
        })
        .await?;
        Ok(stream)
    }

    /// A UDP socket on an ephemeral port of the interface.
    pub fn udp(&self) -> io::Result<UdpSocket> {
        let handle = self.stack.with_host(self.index, |slot| {
            let mut socket = udp::Socket::new(
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                    vec![0; UDP_BUFFER],
                ),
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                    vec![0; UDP_BUFFER],
                ),
            );
            let port = slot.ephemeral_port();
            socket
                .bind(port)
                .map_err(|e| io::Error::other(format!("bind UDP {port}: {e}")))?;
            Ok::<_, io::Error>(slot.sockets.add(socket))
        })?;
        Ok(UdpSocket {
            stack: self.stack.clone(),
            index: self.index,
            handle,
        })
    }
}

/// A fresh socket listening on `port`.
fn listening(slot: &mut HostSlot<'_>, port: u16) -> io::Result<SocketHandle> {
    let mut socket = new_tcp();
    socket
        .listen(port)
        .map_err(|e| io::Error::other(format!("listen {port}: {e}")))?;
    Ok(slot.sockets.add(socket))
}

/// A TCP listener: [`BACKLOG`] listening sockets, each replaced by a fresh
/// one as soon as it carries a connection.
pub struct Listener {
    stack: Stack,
    index: usize,
    port: u16,
    backlog: Vec<SocketHandle>,
}

impl Listener {
    /// The next established connection and its peer.
    pub async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (handle, peer) = poll_fn(|cx| {
            let (port, backlog) = (self.port, &mut self.backlog);
            self.stack.with_host(self.index, |slot| {
                for entry in backlog.iter_mut() {
                    let socket = slot.sockets.get_mut::<tcp::Socket>(*entry);
                    match socket.state() {
                        tcp::State::Listen | tcp::State::SynReceived => {
                            socket.register_recv_waker(cx.waker());
                        }
                        tcp::State::Closed => {
                            let _ = socket.listen(port);
                            socket.register_recv_waker(cx.waker());
                        }
                        _ => {
                            let peer = socket.remote_endpoint().map(socket_addr);
                            let fresh = match listening(slot, port) {
                                Ok(fresh) => fresh,
                                Err(e) => return Poll::Ready(Err(e)),
                            };
                            let taken = std::mem::replace(entry, fresh);
                            slot.kick = true;
                            let peer = peer.unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
                            return Poll::Ready(Ok((taken, peer)));
                        }
                    }
                }
                Poll::Pending
            })
        })
        .await?;
        let stream = TcpStream {
            stack: self.stack.clone(),
            index: self.index,
            handle,
            peer,
        };
        Ok((stream, peer))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let backlog = std::mem::take(&mut self.backlog);
        self.stack.with_host(self.index, |slot| {
            for handle in backlog {
                slot.sockets.remove(handle);
            }
        });
    }
}

/// One TCP connection of a switch; dropping it closes it gracefully.
pub struct TcpStream {
    stack: Stack,
    index: usize,
    handle: SocketHandle,
    peer: SocketAddr,
}

impl TcpStream {
    /// The remote end.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Runs `f` on the smoltcp socket.
    fn with_socket<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        self.stack.with_host(self.index, |slot| {
            f(slot.sockets.get_mut::<tcp::Socket>(self.handle))
        })
    }

    /// Runs `f` on the smoltcp socket; `f` answering `true` beside its
    /// result has the interface polled.
    fn with_socket_kick<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> (R, bool)) -> R {
        self.stack.with_host(self.index, |slot| {
            let (r, kick) = f(slot.sockets.get_mut::<tcp::Socket>(self.handle));
            slot.kick = kick;
            r
        })
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with_socket_kick(|socket| {
            if socket.can_recv() {
                return match socket.recv_slice(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        (Poll::Ready(Ok(())), true)
                    }
                    Err(e) => (Poll::Ready(Err(io::Error::other(e.to_string()))), false),
                };
            }
            if !socket.may_recv() {
                return (Poll::Ready(Ok(())), false);
            }
            socket.register_recv_waker(cx.waker());
            (Poll::Pending, false)
        })
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with_socket_kick(|socket| {
            if !socket.may_send() {
                return (
                    Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe))),
                    false,
                );
            }
            if socket.can_send() || data.is_empty() {
                return match socket.send_slice(data) {
                    Ok(n) => (Poll::Ready(Ok(n)), true),
                    Err(e) => (Poll::Ready(Err(io::Error::other(e.to_string()))), false),
                };
            }
            socket.register_send_waker(cx.waker());
            (Poll::Pending, false)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with_socket_kick(|socket| {
            socket.close();
            ((), true)
        });
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let handle = self.handle;
        self.stack.with_host(self.index, |slot| {
            slot.sockets.get_mut::<tcp::Socket>(handle).close();
            slot.closing.push(Closing::Tcp(handle));
            slot.kick = true;
        });
    }
}

/// A switch's UDP socket (the TFTP client's).
pub struct UdpSocket {
    stack: Stack,
    index: usize,
    handle: SocketHandle,
}

impl UdpSocket {
    /// Sends one datagram to `to`, waiting while the send queue is full.
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        let to = v4(to)?;
        poll_fn(|cx| {
            self.stack.with_host(self.index, |slot| {
                let socket = slot.sockets.get_mut::<udp::Socket>(self.handle);
                match socket.send_slice(data, (*to.ip(), to.port())) {
                    Ok(()) => {
                        slot.kick = true;
                        Poll::Ready(Ok(data.len()))
                    }
                    Err(udp::SendError::BufferFull) => {
                        socket.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    Err(e) => Poll::Ready(Err(io::Error::other(format!("send to {to}: {e}")))),
                }
            })
        })
        .await
    }

    /// Receives one datagram into `buf`: its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| {
            self.stack.with_host(self.index, |slot| {
                let socket = slot.sockets.get_mut::<udp::Socket>(self.handle);
                match socket.recv_slice(buf) {
                    Ok((n, meta)) => Poll::Ready(Ok((n, socket_addr(meta.endpoint)))),
                    Err(udp::RecvError::Exhausted) => {
                        socket.register_recv_waker(cx.waker());
                        Poll::Pending
                    }
                    Err(e) => Poll::Ready(Err(io::Error::other(e.to_string()))),
                }
            })
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let handle = self.handle;
        self.stack.with_host(self.index, |slot| {
            // Not `close()`: it would discard the queued datagrams.
            slot.closing.push(Closing::Udp(handle));
            slot.kick = true;
        });
    }
}
