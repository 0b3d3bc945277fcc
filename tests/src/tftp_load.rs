//! A lean concurrent TFTP download generator for `smi-bench tftp`: many
//! clients at once, each downloading one file to its end (several times in
//! sequence if asked), each download from a fresh socket (a new client
//! transfer ID), every download checked for its length and CRC-32 so a
//! server that sends wrong bytes cannot win.
//!
//! Block size 512 sends a plain RFC 1350 read request without options, as
//! a switch does unless configured otherwise; any other block size asks for
//! `blksize` and `tsize 0` (as [`crate::tftp_client`] and the emulated
//! switches do) and checks the granted size and the announced length.
//! Silence for [`LoadSpec::timeout`] resends the last packet, up to
//! [`LoadSpec::retries`] times; a repeated DATA block is acknowledged again.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tokio::net::UdpSocket;

use crate::tftp_client::{DATA, ERROR, OACK, ack, rrq};

/// Block size without options (RFC 1350).
const PLAIN_BLKSIZE: u16 = 512;

/// What one load run does.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The server's request port.
    pub server: SocketAddr,
    /// The file name to request.
    pub path: String,
    /// Block size: 512 sends no options; others ask for `blksize` and `tsize`.
    pub blksize: u16,
    /// Clients running at once.
    pub clients: usize,
    /// Downloads per client, one after the other.
    pub downloads: u32,
    /// The file's length in bytes.
    pub len: u64,
    /// The file's CRC-32.
    pub crc: u32,
    /// Wait for each packet this long before resending.
    pub timeout: Duration,
    /// Resends of one packet before a download fails.
    pub retries: u32,
}

/// What one load run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// From the first request to the last download's end.
    pub elapsed: Duration,
    /// Downloads verified (length and CRC-32).
    pub completed: u64,
    /// Downloads that failed.
    pub failed: u64,
    /// Why the first failed download failed.
    pub first_error: Option<String>,
    /// Bytes of verified downloads.
    pub bytes: u64,
    /// Packets resent after a timeout (requests and ACKs).
    pub resends: u64,
    /// Of those, requests: the server had not answered at all.
    pub request_resends: u64,
    /// DATA blocks received again (acknowledged again).
    pub duplicates: u64,
}

/// Per-client counters, summed into the report.
#[derive(Default)]
struct Tally {
    resends: u64,
    request_resends: u64,
    duplicates: u64,
}

/// Runs `spec.clients` clients at once until each has finished its
/// downloads.
pub async fn run(spec: &LoadSpec) -> LoadReport {
    let spec = Arc::new(spec.clone());
    let rrq = Arc::new(request(&spec.path, spec.blksize));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..spec.clients {
        let spec = Arc::clone(&spec);
        let rrq = Arc::clone(&rrq);
        clients.spawn(async move { client(&spec, &rrq).await });
    }
    let mut report = LoadReport::default();
    while let Some(joined) = clients.join_next().await {
        let (tally, outcomes) = match joined {
            Ok(done) => done,
            Err(err) => (
                Tally::default(),
                vec![Err(anyhow::anyhow!("client: {err}"))],
            ),
        };
        report.resends += tally.resends;
        report.request_resends += tally.request_resends;
        report.duplicates += tally.duplicates;
        for outcome in outcomes {
            match outcome {
                Ok(()) => {
                    report.completed += 1;
                    report.bytes += spec.len;
                }
                Err(err) => {
                    report.failed += 1;
                    report.first_error.get_or_insert_with(|| format!("{err:#}"));
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// One client's downloads in sequence.
async fn client(spec: &LoadSpec, rrq: &[u8]) -> (Tally, Vec<anyhow::Result<()>>) {
    let mut tally = Tally::default();
    let mut buf = vec![0u8; usize::from(spec.blksize).max(PLAIN_BLKSIZE.into()) + 64];
    let mut outcomes = Vec::new();
    for _ in 0..spec.downloads {
        outcomes.push(download(spec, rrq, &mut buf, &mut tally).await);
    }
    (tally, outcomes)
}

/// The state of one download.
struct Receiving {
    blksize: usize,
    tsize: Option<u64>,
    expected: u16,
    received: u64,
    crc: crc32fast::Hasher,
}

/// What to do after a packet.
enum Next {
    /// Send this ACK and keep receiving.
    Ack(u16),
    /// Send this ACK again (a repeated block) and keep receiving.
    AckAgain(u16),
    /// Nothing to send.
    Ignore,
    /// Send this ACK: the file is complete.
    Done(u16),
}

impl Receiving {
    /// Until an OACK says otherwise, blocks are 512 bytes.
    fn new() -> Self {
        Receiving {
            blksize: PLAIN_BLKSIZE.into(),
            tsize: None,
            expected: 1,
            received: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    fn on_packet(&mut self, spec: &LoadSpec, packet: &[u8]) -> anyhow::Result<Next> {
        let Some((&[hi, lo], body)) = packet.split_first_chunk::<2>() else {
            return Ok(Next::Ignore);
        };
        match u16::from_be_bytes([hi, lo]) {
            OACK if self.expected == 1 && self.received == 0 => {
                self.options(spec, body)?;
                Ok(Next::Ack(0))
            }
            DATA => {
                let Some((&[bh, bl], block)) = body.split_first_chunk::<2>() else {
                    return Ok(Next::Ignore);
                };
                let number = u16::from_be_bytes([bh, bl]);
                if number == self.expected.wrapping_sub(1) {
                    return Ok(Next::AckAgain(number));
                }
                if number != self.expected {
                    return Ok(Next::Ignore);
                }
                ensure!(
                    block.len() <= self.blksize,
                    "block {number} has {} bytes, block size is {}",
                    block.len(),
                    self.blksize
                );
                self.crc.update(block);
                self.received += block.len() as u64;
                ensure!(
                    self.received <= spec.len,
                    "more than the file's {} bytes",
                    spec.len
                );
                if block.len() < self.blksize {
                    return Ok(Next::Done(number));
                }
                self.expected = self.expected.wrapping_add(1);
                Ok(Next::Ack(number))
            }
            ERROR => bail!(
                "TFTP error: {}",
                String::from_utf8_lossy(body.get(2..).unwrap_or_default()).trim_end_matches('\0')
            ),
            _ => Ok(Next::Ignore),
        }
    }

    fn options(&mut self, spec: &LoadSpec, body: &[u8]) -> anyhow::Result<()> {
        let fields: Vec<&[u8]> = body.split(|&b| b == 0).collect();
        for pair in fields.chunks_exact(2) {
            let (name, value) = (pair[0], std::str::from_utf8(pair[1]).unwrap_or_default());
            if name.eq_ignore_ascii_case(b"blksize") {
                let size: u16 = value.parse().context("OACK blksize")?;
                ensure!(
                    size == spec.blksize,
                    "server granted block size {size}, asked for {}",
                    spec.blksize
                );
                self.blksize = size.into();
            } else if name.eq_ignore_ascii_case(b"tsize") {
                self.tsize = Some(value.parse().context("OACK tsize")?);
            }
        }
        Ok(())
    }

    /// Checks the finished download against the file.
    fn verify(self, spec: &LoadSpec) -> anyhow::Result<()> {
        ensure!(
            self.received == spec.len,
            "got {} bytes, the file has {}",
            self.received,
            spec.len
        );
        if let Some(tsize) = self.tsize {
            ensure!(
                tsize == spec.len,
                "tsize said {tsize}, the file has {}",
                spec.len
            );
        }
        let crc = self.crc.finalize();
        ensure!(
            crc == spec.crc,
            "CRC-32 {crc:08x}, the file's is {:08x}",
            spec.crc
        );
        Ok(())
    }
}

/// One download from a fresh socket: request, then DATA/ACK to the end.
async fn download(
    spec: &LoadSpec,
    rrq: &[u8],
    buf: &mut [u8],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((spec.server.ip(), 0))
        .await
        .context("bind")?;
    socket.send_to(rrq, spec.server).await.context("send RRQ")?;
    let mut state = Receiving::new();
    // Until the server's transfer ID is known, silence resends the request.
    let mut last: Option<[u8; 4]> = None;
    let mut tid: Option<SocketAddr> = None;
    let mut tries = 0u32;
    let sleep = tokio::time::sleep(spec.timeout);
    tokio::pin!(sleep);
    loop {
        let (len, from) = tokio::select! {
            biased;
            received = socket.recv_from(buf) => received.context("recv")?,
            () = &mut sleep => {
                tries += 1;
                if tries > spec.retries {
                    bail!("no answer after {} resends (block {})", spec.retries, state.expected);
                }
                tally.resends += 1;
                match last {
                    Some(ack) => socket.send(&ack).await.context("resend ACK")?,
                    None => {
                        tally.request_resends += 1;
                        socket.send_to(rrq, spec.server).await.context("resend RRQ")?
                    }
                };
                sleep.as_mut().reset(tokio::time::Instant::now() + spec.timeout);
                continue;
            }
        };
        if tid.is_none() {
            if from.ip() != spec.server.ip() {
                continue;
            }
            // The kernel drops whatever other ports send from now on.
            socket.connect(from).await.context("connect")?;
            tid = Some(from);
        }
        let next = state.on_packet(spec, buf.get(..len).unwrap_or_default())?;
        let ack = match next {
            Next::Ignore => continue,
            Next::AckAgain(block) => {
                tally.duplicates += 1;
                socket.send(&ack(block)).await.context("send ACK")?;
                continue;
            }
            Next::Ack(block) => ack(block),
            Next::Done(block) => {
                socket.send(&ack(block)).await.context("send last ACK")?;
                return state.verify(spec);
            }
        };
        socket.send(&ack).await.context("send ACK")?;
        last = Some(ack);
        tries = 0;
        sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + spec.timeout);
    }
}

/// The read request: plain at 512 bytes, else with `blksize` and `tsize 0`.
fn request(path: &str, blksize: u16) -> Vec<u8> {
    rrq(path, (blksize != PLAIN_BLKSIZE).then_some(blksize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(request("a/b", 512), b"\0\x01a/b\0octet\0");
        assert_eq!(
            request("f", 1468),
            b"\0\x01f\0octet\0blksize\x001468\0tsize\x000\0"
        );
    }

    fn spec(len: u64, crc: u32, blksize: u16) -> LoadSpec {
        LoadSpec {
            server: "127.0.0.1:69".parse().unwrap(),
            path: "f".into(),
            blksize,
            clients: 1,
            downloads: 1,
            len,
            crc,
            timeout: Duration::from_secs(1),
            retries: 1,
        }
    }

    fn data(block: u16, bytes: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 3];
        p.extend_from_slice(&block.to_be_bytes());
        p.extend_from_slice(bytes);
        p
    }

    #[test]
    fn wrong_bytes_fail_the_check() {
        let file = vec![7u8; 700];
        let spec = spec(700, crc32fast::hash(&file), 512);
        let mut good = Receiving::new();
        assert!(matches!(
            good.on_packet(&spec, &data(1, &file[..512])).unwrap(),
            Next::Ack(1)
        ));
        assert!(matches!(
            good.on_packet(&spec, &data(1, &file[..512])).unwrap(),
            Next::AckAgain(1)
        ));
        assert!(matches!(
            good.on_packet(&spec, &data(2, &file[512..])).unwrap(),
            Next::Done(2)
        ));
        good.verify(&spec).unwrap();

        let mut bad = Receiving::new();
        bad.on_packet(&spec, &data(1, &[8u8; 512])).unwrap();
        bad.on_packet(&spec, &data(2, &file[512..])).unwrap();
        assert!(bad.verify(&spec).is_err());

        let mut short = Receiving::new();
        short.on_packet(&spec, &data(1, &file[..100])).unwrap();
        assert!(short.verify(&spec).is_err());
    }

    #[test]
    fn options_are_checked() {
        let spec = spec(10, 0, 1468);
        let mut state = Receiving::new();
        assert!(matches!(
            state
                .on_packet(&spec, b"\0\x06blksize\x001468\0tsize\x0010\0")
                .unwrap(),
            Next::Ack(0)
        ));
        assert_eq!((state.blksize, state.tsize), (1468, Some(10)));
        let mut state = Receiving::new();
        assert!(state.on_packet(&spec, b"\0\x06blksize\x00512\0").is_err());
        let mut state = Receiving::new();
        assert!(state.on_packet(&spec, b"\0\x05\0\x01nope\0").is_err());
    }
}
