//! The server's sockets: one UDP socket per interface, bound to its
//! device ([`open_socket`]).

use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Socket, Type};

/// Opens a non-blocking UDP socket on `0.0.0.0:port` that only sees and
/// sends through `iface` (`SO_BINDTODEVICE`, set before `bind`, so several
/// interfaces can each have one), may send broadcasts (`SO_BROADCAST`) and
/// has a large receive buffer for boot storms.
pub fn open_socket(iface: &str, port: u16) -> std::io::Result<std::net::UdpSocket> {
    use std::io::{Error, ErrorKind};
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ || iface.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{iface:?} is not an interface name"),
        ));
    }
    // socket2 sets close-on-exec on every socket it opens.
    let socket = Socket::new(Domain::IPV4, Type::DGRAM.nonblocking(), None)?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(iface.as_bytes()))?;
    // Best effort: the default buffer is enough outside boot storms.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    Ok(socket.into())
}
