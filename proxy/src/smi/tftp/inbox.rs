//! Receiving on a transfer socket without the empty read of every block.
//!
//! In lock-step a transfer waits for one datagram after each one it sends.
//! When tokio hands over a datagram the socket still counts as readable, so
//! the next wait began with a read that found nothing (EAGAIN) before going
//! to epoll: a wasted system call per block, on nearly every block once
//! many transfers share the runtime. Here each read asks for up to two
//! datagrams at once (`recvmmsg`). One means the queue was empty, and the
//! readiness is cleared on the spot (tokio's tick check keeps a datagram
//! that arrived meanwhile from being missed), so the next wait goes
//! straight to epoll. Two are the rare case (a duplicate, a stranger): the
//! second is kept for the next read, so nothing is reordered or dropped.
//! The price is a second receive buffer per transfer, as large as the first.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd as _, RawFd};

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The second datagram of a read, kept for the next one.
#[derive(Default)]
pub(super) struct Inbox {
    /// Room for a second datagram, as large as the caller's buffer.
    spare: Vec<u8>,
    /// Length and sender of the datagram waiting in `spare`.
    held: Option<(usize, SocketAddr)>,
}

impl Inbox {
    /// As [`UdpSocket::recv_from`]: the next datagram into `buf` (cut to
    /// its length), its length and its sender. Cancel-safe: a datagram is
    /// taken from the socket only when this returns it or holds it.
    pub(super) async fn recv_from(
        &mut self,
        socket: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        if let Some((len, from)) = self.held.take() {
            let len = len.min(buf.len());
            if let (Some(to), Some(held)) = (buf.get_mut(..len), self.spare.get(..len)) {
                to.copy_from_slice(held);
            }
            return Ok((len, from));
        }
        self.spare.resize(buf.len(), 0);
        loop {
            socket.readable().await?;
            let mut first = None;
            let read = socket.try_io(Interest::READABLE, || {
                let [one, two] = recv_two(socket.as_raw_fd(), buf, &mut self.spare)?;
                first = one;
                match two {
                    Some(second) => {
                        self.held = Some(second);
                        Ok(())
                    }
                    // The queue is empty: have tokio clear the readiness.
                    None => Err(io::ErrorKind::WouldBlock.into()),
                }
            });
            match (first, read) {
                (Some(datagram), _) => return Ok(datagram),
                (None, Err(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
                (None, Err(err)) => return Err(err),
                (None, Ok(())) => {}
            }
        }
    }
}

/// Up to two datagrams from `fd` without blocking, the first into `first`,
/// the second into `second`: for each, the bytes copied and the sender.
/// `WouldBlock` when there is none.
fn recv_two(
    fd: RawFd,
    first: &mut [u8],
    second: &mut [u8],
) -> io::Result<[Option<(usize, SocketAddr)>; 2]> {
    // SAFETY: all-zero bytes are a valid value of these plain C structs.
    let mut names: [libc::sockaddr_storage; 2] = unsafe { mem::zeroed() };
    let mut iovs = [
        libc::iovec {
            iov_base: first.as_mut_ptr().cast(),
            iov_len: first.len(),
        },
        libc::iovec {
            iov_base: second.as_mut_ptr().cast(),
            iov_len: second.len(),
        },
    ];
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; 2] = unsafe { mem::zeroed() };
    let name_len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_storage>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    for ((msg, name), iov) in msgs.iter_mut().zip(names.iter_mut()).zip(iovs.iter_mut()) {
        msg.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
        msg.msg_hdr.msg_namelen = name_len;
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every pointer in `msgs` points to `names`, `iovs` or the
    // caller's buffers with their true lengths, all alive for the call;
    // the count matches the array.
    let received = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            2,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
    let mut out = [None, None];
    for ((slot, msg), name) in out.iter_mut().zip(&msgs).zip(&names).take(received) {
        let len = usize::try_from(msg.msg_len)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        *slot = Some((len, socket_addr(name)?));
    }
    Ok(out)
}

/// The IPv4 or IPv6 address in `name`.
fn socket_addr(name: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let sin = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*std::ptr::from_ref(name).cast::<libc::sockaddr_in6>() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram from an address that is neither IPv4 nor IPv6",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three datagrams queued at once come out one by one, in order, each
    /// with its sender; then the inbox waits like a socket.
    #[tokio::test]
    async fn datagrams_come_out_in_order() {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let to = socket.local_addr().unwrap();
        let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        a.send_to(b"one", to).await.unwrap();
        b.send_to(b"two!", to).await.unwrap();
        a.send_to(b"three", to).await.unwrap();
        let mut inbox = Inbox::default();
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        for _ in 0..3 {
            let (len, from) = inbox.recv_from(&socket, &mut buf).await.unwrap();
            got.push((buf[..len].to_vec(), from));
        }
        let (a, b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(
            got,
            vec![
                (b"one".to_vec(), a),
                (b"two!".to_vec(), b),
                (b"three".to_vec(), a)
            ]
        );
        // Nothing is left: the next read waits until a datagram comes.
        let c = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let (len, from) = {
            let waiting = inbox.recv_from(&socket, &mut buf);
            tokio::pin!(waiting);
            assert!(poll_once(waiting.as_mut()).await.is_none());
            c.send_to(b"four", to).await.unwrap();
            waiting.await.unwrap()
        };
        assert_eq!((&buf[..len], from), (&b"four"[..], c.local_addr().unwrap()));
    }

    /// A datagram longer than the buffer is cut, as `recv_from` cuts it,
    /// whether it came first or second.
    #[tokio::test]
    async fn long_datagrams_are_cut_to_the_buffer() {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let to = socket.local_addr().unwrap();
        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        peer.send_to(b"0123456789", to).await.unwrap();
        peer.send_to(b"abcdefghij", to).await.unwrap();
        let mut inbox = Inbox::default();
        let mut buf = [0u8; 4];
        let (len, _) = inbox.recv_from(&socket, &mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"0123");
        let (len, _) = inbox.recv_from(&socket, &mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"abcd");
    }

    /// Polls `future` once: its output if it is ready.
    async fn poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
