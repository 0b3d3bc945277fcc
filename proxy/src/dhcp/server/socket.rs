//! The server's sockets: one UDP socket per interface, bound to its
//! device ([`open_socket`]).

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

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
    // SAFETY: socket(2) with constant arguments.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let set = |option: libc::c_int, value: &[u8]| -> std::io::Result<()> {
        // SAFETY: `value` is valid for `value.len()` bytes for the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                value.as_ptr().cast(),
                value.len() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error())
        }
    };
    let one = 1i32.to_ne_bytes();
    set(libc::SO_REUSEADDR, &one)?;
    set(libc::SO_BROADCAST, &one)?;
    set(libc::SO_BINDTODEVICE, iface.as_bytes())?;
    // Best effort: the default buffer is enough outside boot storms.
    let _ = set(libc::SO_RCVBUF, &(4i32 << 20).to_ne_bytes());
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::last_os_error());
    }
    Ok(std::net::UdpSocket::from(fd))
}
