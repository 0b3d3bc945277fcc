//! A TFTP read client (RFC 1350, octet mode) with the block-size (RFC 2348)
//! and transfer-size (RFC 2349) options, as the emulated switches use it,
//! and a plain write client (512-byte blocks, no options) for what a switch
//! copies to a server (`show version | redirect tftp://...`).
//!
//! The read request asks for `blksize` (1468 by default) and `tsize 0`. A
//! server that answers with an OACK gets ACK 0; one that ignores options
//! sends DATA 1 with 512-byte blocks, which is accepted too. Every packet
//! waits `timeout` and is resent up to `retries` times; packets from a port
//! other than the server's transfer ID get ERROR 5 and are otherwise ignored.
//! The client returns right after acknowledging the last block (no
//! dallying), so a lost final ACK shows only on the server side.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use tokio::net::UdpSocket;

/// A UDP socket the client can run over: the kernel's, or an emulated
/// switch's on the packet stack.
pub trait Datagrams {
    /// Sends one datagram to `to`.
    fn send_to(
        &self,
        data: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = std::io::Result<usize>> + Send;
    /// Receives one datagram: its length and sender.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send;
}

impl Datagrams for UdpSocket {
    fn send_to(
        &self,
        data: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = std::io::Result<usize>> + Send {
        UdpSocket::send_to(self, data, to)
    }

    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send {
        UdpSocket::recv_from(self, buf)
    }
}

// Opcodes (RFC 1350, RFC 2347), shared with `tftp_load`.
pub(crate) const RRQ: u16 = 1;
const WRQ: u16 = 2;
pub(crate) const DATA: u16 = 3;
pub(crate) const ACK: u16 = 4;
pub(crate) const ERROR: u16 = 5;
pub(crate) const OACK: u16 = 6;
/// Block size without the option (RFC 1350).
const DEFAULT_BLKSIZE: usize = 512;

/// Transfer settings.
#[derive(Clone, Debug)]
pub struct TftpOptions {
    /// Block size to ask for (8..=65464).
    pub blksize: u16,
    /// Wait for each answer this long before resending.
    pub timeout: Duration,
    /// Resends of one packet before giving up.
    pub retries: u32,
    /// Largest file accepted, in bytes.
    pub max_size: u64,
}

impl Default for TftpOptions {
    fn default() -> Self {
        Self {
            blksize: 1468,
            timeout: Duration::from_secs(1),
            retries: 5,
            max_size: 256 << 20,
        }
    }
}

/// Splits `tftp://host[:port]/path` into the server address and the file
/// name to request (the path without its leading `/`). The host must be an
/// IPv4 or IPv6 literal.
pub fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("tftp://")
        .with_context(|| format!("{url:?} is not a tftp:// URL"))?;
    let (authority, path) = rest
        .split_once('/')
        .with_context(|| format!("{url:?} has no file path"))?;
    ensure!(!path.is_empty(), "{url:?} has an empty file path");
    let server = match authority.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let host = authority.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = host
                .parse()
                .with_context(|| format!("{url:?}: host {authority:?} is not an IP address"))?;
            SocketAddr::new(ip, 69)
        }
    };
    Ok((server, path.to_owned()))
}

/// Reads `filename` from `server` through `socket` (any local port).
pub async fn fetch(
    socket: &impl Datagrams,
    server: SocketAddr,
    filename: &str,
    opts: &TftpOptions,
) -> anyhow::Result<Vec<u8>> {
    ensure!(
        (8..=65464).contains(&opts.blksize),
        "block size {} outside 8..=65464",
        opts.blksize
    );
    let mut link = Link::open(socket, server, rrq(filename, Some(opts.blksize))).await?;
    let mut blksize = DEFAULT_BLKSIZE;
    let mut tsize: Option<u64> = None;
    let mut expected: u16 = 1;
    let mut data = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = link
            .recv(&mut buf, opts, || {
                format!("{filename}: no answer (block {expected})")
            })
            .await?;
        let packet = &buf[..n];
        let Some((&[hi, lo], body)) = packet.split_first_chunk::<2>() else {
            continue;
        };
        match u16::from_be_bytes([hi, lo]) {
            OACK if expected == 1 && data.is_empty() => {
                for (name, value) in parse_options(body) {
                    match name.to_ascii_lowercase().as_str() {
                        "blksize" => {
                            let size: usize = value.parse().context("OACK blksize")?;
                            ensure!(
                                (8..=usize::from(opts.blksize)).contains(&size),
                                "server chose block size {size}, asked for {}",
                                opts.blksize
                            );
                            blksize = size;
                        }
                        "tsize" => {
                            let size: u64 = value.parse().context("OACK tsize")?;
                            ensure!(
                                size <= opts.max_size,
                                "{filename}: {size} bytes exceed the limit of {}",
                                opts.max_size
                            );
                            tsize = Some(size);
                        }
                        _ => {}
                    }
                }
                link.send(ack(0).to_vec(), from)
                    .await
                    .context("send ACK 0")?;
            }
            DATA => {
                let Some((&[bh, bl], block)) = body.split_first_chunk::<2>() else {
                    continue;
                };
                let number = u16::from_be_bytes([bh, bl]);
                if number == expected {
                    ensure!(
                        block.len() <= blksize,
                        "block {number} has {} bytes, block size is {blksize}",
                        block.len()
                    );
                    ensure!(
                        (data.len() + block.len()) as u64 <= opts.max_size,
                        "{filename}: more than {} bytes",
                        opts.max_size
                    );
                    data.extend_from_slice(block);
                    link.send(ack(number).to_vec(), from)
                        .await
                        .context("send ACK")?;
                    if block.len() < blksize {
                        if let Some(size) = tsize {
                            ensure!(
                                size == data.len() as u64,
                                "{filename}: tsize said {size} bytes, got {}",
                                data.len()
                            );
                        }
                        return Ok(data);
                    }
                    expected = expected.wrapping_add(1);
                } else if number == expected.wrapping_sub(1) {
                    // Our ACK was lost: acknowledge again.
                    link.socket
                        .send_to(&ack(number), from)
                        .await
                        .context("resend ACK")?;
                }
            }
            ERROR => {
                let (code, message) = match body.split_first_chunk::<2>() {
                    Some((&[ch, cl], text)) => (
                        u16::from_be_bytes([ch, cl]),
                        String::from_utf8_lossy(text.split(|&b| b == 0).next().unwrap_or(&[]))
                            .into_owned(),
                    ),
                    None => (0, String::new()),
                };
                bail!("{filename}: TFTP error {code} from {from}: {message}");
            }
            _ => {}
        }
    }
}

/// Reads the file a `tftp://` URL names, from a fresh socket created inside
/// network namespace `netns` (or the caller's own when `None`).
pub async fn fetch_url(
    netns: Option<&str>,
    url: &str,
    opts: &TftpOptions,
) -> anyhow::Result<Vec<u8>> {
    let (server, filename) = parse_url(url)?;
    let socket = match netns {
        Some(ns) => crate::emulator::net::udp_socket_in(ns, 0).await?,
        None => UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await?,
    };
    fetch(&socket, server, &filename, opts)
        .await
        .with_context(|| format!("fetching {url}"))
}

/// Writes `data` as `filename` to `server` through `socket`: WRQ, then
/// 512-byte DATA blocks, each sent again until acknowledged (up to
/// `opts.retries` times, `opts.timeout` apart); the last block is shorter
/// than 512 bytes (empty when the size is a multiple of 512).
pub async fn upload(
    socket: &impl Datagrams,
    server: SocketAddr,
    filename: &str,
    data: &[u8],
    opts: &TftpOptions,
) -> anyhow::Result<()> {
    let mut wrq = WRQ.to_be_bytes().to_vec();
    for field in [filename, "octet"] {
        wrq.extend_from_slice(field.as_bytes());
        wrq.push(0);
    }
    let blocks = data.len() / DEFAULT_BLKSIZE + 1;
    ensure!(
        blocks <= usize::from(u16::MAX),
        "{filename}: too large for 512-byte blocks"
    );
    let mut link = Link::open(socket, server, wrq).await?;
    let mut sent: u16 = 0;
    let mut buf = vec![0u8; 1024];
    loop {
        let (n, from) = link
            .recv(&mut buf, opts, || format!("{filename}: no ACK {sent}"))
            .await?;
        let packet = &buf[..n];
        let Some((&[hi, lo], body)) = packet.split_first_chunk::<2>() else {
            continue;
        };
        match u16::from_be_bytes([hi, lo]) {
            ACK => {
                let Some((&[bh, bl], _)) = body.split_first_chunk::<2>() else {
                    continue;
                };
                // `sent` is the last block sent (0: only the WRQ).
                if u16::from_be_bytes([bh, bl]) != sent {
                    continue;
                }
                if usize::from(sent) == blocks {
                    return Ok(());
                }
                let start = usize::from(sent) * DEFAULT_BLKSIZE;
                let end = (start + DEFAULT_BLKSIZE).min(data.len());
                sent += 1;
                let mut packet = DATA.to_be_bytes().to_vec();
                packet.extend_from_slice(&sent.to_be_bytes());
                packet.extend_from_slice(data.get(start..end).unwrap_or(&[]));
                link.send(packet, from).await.context("send DATA")?;
            }
            ERROR => bail!(
                "{filename}: TFTP error from {from}: {}",
                String::from_utf8_lossy(body)
            ),
            _ => {}
        }
    }
}

/// Writes `data` to the file a `tftp://` URL names, from a fresh socket
/// inside network namespace `netns` (or the caller's own when `None`).
pub async fn upload_url(
    netns: Option<&str>,
    url: &str,
    data: &[u8],
    opts: &TftpOptions,
) -> anyhow::Result<()> {
    let (server, filename) = parse_url(url)?;
    let socket = match netns {
        Some(ns) => crate::emulator::net::udp_socket_in(ns, 0).await?,
        None => UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await?,
    };
    upload(&socket, server, &filename, data, opts)
        .await
        .with_context(|| format!("uploading to {url}"))
}

/// One transfer's conversation: the last packet sent (sent again when the
/// server is silent) and the server's transfer ID once it answered.
struct Link<'s, S> {
    socket: &'s S,
    server: SocketAddr,
    peer: Option<SocketAddr>,
    last: Vec<u8>,
    last_to: SocketAddr,
    tries: u32,
}

impl<'s, S: Datagrams> Link<'s, S> {
    /// Sends the request `first` to `server`.
    async fn open(socket: &'s S, server: SocketAddr, first: Vec<u8>) -> anyhow::Result<Self> {
        socket
            .send_to(&first, server)
            .await
            .context("send request")?;
        Ok(Self {
            socket,
            server,
            peer: None,
            last: first,
            last_to: server,
            tries: 0,
        })
    }

    /// Sends `packet` to `to`; it is what silence makes us send again.
    async fn send(&mut self, packet: Vec<u8>, to: SocketAddr) -> std::io::Result<()> {
        self.last = packet;
        self.last_to = to;
        self.tries = 0;
        self.socket.send_to(&self.last, to).await.map(|_| ())
    }

    /// The next packet from the server's transfer ID: its length and
    /// sender. Silence for `opts.timeout` resends the last packet, up to
    /// `opts.retries` times, then fails with `waiting()`. Packets from
    /// another transfer ID get ERROR 5 (RFC 1350 section 4) and are skipped.
    async fn recv(
        &mut self,
        buf: &mut [u8],
        opts: &TftpOptions,
        waiting: impl Fn() -> String,
    ) -> anyhow::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) =
                match tokio::time::timeout(opts.timeout, self.socket.recv_from(buf)).await {
                    Ok(received) => received.context("recv")?,
                    Err(_) => {
                        self.tries += 1;
                        if self.tries > opts.retries {
                            bail!(
                                "{} from {} after {} tries",
                                waiting(),
                                self.server,
                                self.tries
                            );
                        }
                        self.socket
                            .send_to(&self.last, self.last_to)
                            .await
                            .context("resend")?;
                        continue;
                    }
                };
            match self.peer {
                None if from.ip() == self.server.ip() => self.peer = Some(from),
                Some(tid) if tid == from => {}
                _ => {
                    let _ = self
                        .socket
                        .send_to(&error(5, "Unknown transfer ID"), from)
                        .await;
                    continue;
                }
            }
            self.last_to = from;
            return Ok((n, from));
        }
    }
}

/// A read request in octet mode, asking for `blksize` and `tsize 0` when
/// given a block size (plain RFC 1350 without).
pub(crate) fn rrq(filename: &str, blksize: Option<u16>) -> Vec<u8> {
    let size = blksize.map(|b| b.to_string());
    let mut fields = vec![filename, "octet"];
    if let Some(size) = &size {
        fields.extend(["blksize", size, "tsize", "0"]);
    }
    let mut p = RRQ.to_be_bytes().to_vec();
    for field in fields {
        p.extend_from_slice(field.as_bytes());
        p.push(0);
    }
    p
}

/// ACK of `block`.
pub(crate) fn ack(block: u16) -> [u8; 4] {
    let [a, b] = ACK.to_be_bytes();
    let [c, d] = block.to_be_bytes();
    [a, b, c, d]
}

fn error(code: u16, message: &str) -> Vec<u8> {
    let mut p = ERROR.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(message.as_bytes());
    p.push(0);
    p
}

/// NUL-terminated name/value pairs of an OACK; a trailing odd field is dropped.
fn parse_options(body: &[u8]) -> Vec<(String, String)> {
    let fields: Vec<String> = body
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    fields
        .chunks_exact(2)
        .filter(|pair| !pair[0].is_empty())
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (addr, file) = parse_url("tftp://192.0.2.1/dir/x.cfg").unwrap();
        assert_eq!(addr, "192.0.2.1:69".parse().unwrap());
        assert_eq!(file, "dir/x.cfg");
        let (addr, _) = parse_url("tftp://192.0.2.1:6969/x").unwrap();
        assert_eq!(addr.port(), 6969);
        assert!(parse_url("http://192.0.2.1/x").is_err());
        assert!(parse_url("tftp://host.example/x").is_err());
        assert!(parse_url("tftp://192.0.2.1/").is_err());
    }

    #[test]
    fn packets() {
        assert_eq!(
            rrq("a", Some(1468)),
            b"\0\x01a\0octet\0blksize\x001468\0tsize\x000\0".to_vec()
        );
        assert_eq!(rrq("a/b", None), b"\0\x01a/b\0octet\0".to_vec());
        assert_eq!(ack(258), [0, 4, 1, 2]);
        assert_eq!(
            parse_options(b"blksize\x001468\0tsize\x0042\0"),
            vec![
                ("blksize".into(), "1468".into()),
                ("tsize".into(), "42".into())
            ]
        );
    }

    /// A local server that ignores options (DATA 1 at 512 bytes), drops the
    /// first ACK once, and a stranger that injects a packet.
    #[tokio::test]
    async fn fetch_against_a_plain_server() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let content: Vec<u8> = (0..1300u32).map(|i| i as u8).collect();
        let expected = content.clone();
        let serve = tokio::spawn(async move {
            let mut buf = [0u8; 600];
            let (_, client) = server.recv_from(&mut buf).await.unwrap();
            let xfer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut dropped_once = false;
            for (i, chunk) in content.chunks(512).enumerate() {
                let block = (i + 1) as u16;
                let mut p = DATA.to_be_bytes().to_vec();
                p.extend_from_slice(&block.to_be_bytes());
                p.extend_from_slice(chunk);
                xfer.send_to(&p, client).await.unwrap();
                let (n, _) = xfer.recv_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], ack(block).as_slice());
                if !dropped_once {
                    // Pretend the ACK was lost: the client resends on DATA repeat.
                    dropped_once = true;
                    xfer.send_to(&p, client).await.unwrap();
                    let (n, _) = xfer.recv_from(&mut buf).await.unwrap();
                    assert_eq!(&buf[..n], ack(block).as_slice());
                }
            }
        });
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let got = fetch(&client, addr, "f", &TftpOptions::default())
            .await
            .unwrap();
        assert_eq!(got, expected);
        serve.await.unwrap();
    }
}
