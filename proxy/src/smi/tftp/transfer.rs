//! One transfer: its own UDP socket (the server's transfer ID), lock-step
//! DATA/ACK with retransmission, option negotiation, the closing event.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, BufReader};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::inbox::Inbox;
use super::packet::{
    DATA_HEADER_LEN, DEFAULT_BLKSIZE, EncodeError, ErrorCode, MAX_CONTROL_LEN, Options, Packet,
    Request,
};
use super::staging::{Content, ReadTarget, UploadTarget};
use super::{Staging, TftpEvent, TftpLimits, TftpStats};

/// Read-ahead for files on disk, so small blocks do not each cost a
/// blocking-pool round trip.
const FILE_BUFFER: usize = 64 * 1024;

/// A running transfer: the client address and the file name it asked for.
pub(super) type ActiveKey = (SocketAddr, String);
/// Running transfers, so a client's repeated request starts nothing new.
pub(super) type ActiveSet = Arc<Mutex<HashSet<ActiveKey>>>;

/// Whether a transfer for `key` is running.
pub(super) fn is_active(active: &ActiveSet, key: &ActiveKey) -> bool {
    active
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(key)
}

/// Removes its key from the active set when dropped.
pub(super) struct ActiveGuard {
    active: ActiveSet,
    key: ActiveKey,
}

impl ActiveGuard {
    /// Marks `key` as running.
    pub(super) fn insert(active: &ActiveSet, key: ActiveKey) -> Self {
        active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone());
        ActiveGuard {
            active: Arc::clone(active),
            key,
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// What a transfer moves.
pub(super) enum Target {
    /// A download (RRQ) of a staged file.
    Read(ReadTarget),
    /// An upload (WRQ) into a claimed slot.
    Write(UploadTarget),
}

/// Everything one transfer task needs.
pub(super) struct Transfer {
    pub(super) target: Target,
    pub(super) request: Request,
    pub(super) peer: SocketAddr,
    pub(super) local_ip: IpAddr,
    pub(super) limits: TftpLimits,
    pub(super) staging: Staging,
    pub(super) events: mpsc::Sender<TftpEvent>,
    pub(super) cancel: CancellationToken,
    pub(super) permit: OwnedSemaphorePermit,
    pub(super) active: ActiveGuard,
}

/// Why a transfer failed; the text goes into [`TftpEvent::Failed`].
#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error("cannot bind a transfer socket: {0}")]
    Bind(io::Error),
    #[error("socket error: {0}")]
    Socket(io::Error),
    #[error("no answer after {0} retransmissions")]
    NoAnswer(u32),
    #[error("transfer deadline of {0:?} exceeded")]
    Deadline(Duration),
    #[error("server shutting down")]
    Cancelled,
    #[error("client sent ERROR {code}: {message}")]
    Peer { code: ErrorCode, message: String },
    #[error("cannot open staged file: {0}")]
    Open(io::Error),
    #[error("staged file is not a regular file")]
    NotAFile,
    #[error("cannot read staged file: {0}")]
    Read(io::Error),
    #[error("staged file shrank during the transfer")]
    Shrank,
    #[error("upload exceeds {0} bytes")]
    TooLarge(u64),
    #[error("client sent a DATA block larger than {0} bytes")]
    OversizedBlock(u16),
    #[error("size arithmetic overflow")]
    Overflow,
    #[error("cannot encode packet: {0}")]
    Encode(#[from] EncodeError),
}

impl TransferError {
    /// The ERROR packet that tells the client, unless it ended the transfer.
    fn notice(&self) -> Option<(ErrorCode, &'static str)> {
        match self {
            TransferError::Peer { .. } | TransferError::Bind(_) | TransferError::Socket(_) => None,
            TransferError::NoAnswer(_) | TransferError::Deadline(_) => {
                Some((ErrorCode::NotDefined, "transfer timed out"))
            }
            TransferError::Cancelled => Some((ErrorCode::NotDefined, "server shutting down")),
            TransferError::Open(_) | TransferError::NotAFile => {
                Some((ErrorCode::FileNotFound, "File not found"))
            }
            TransferError::TooLarge(_) => {
                Some((ErrorCode::DiskFull, "Disk full or allocation exceeded"))
            }
            TransferError::OversizedBlock(_) => {
                Some((ErrorCode::IllegalOperation, "Illegal TFTP operation"))
            }
            TransferError::Read(_)
            | TransferError::Shrank
            | TransferError::Overflow
            | TransferError::Encode(_) => Some((ErrorCode::NotDefined, "internal error")),
        }
    }
}

enum Success {
    Sent(u64),
    Received(Bytes),
}

impl Transfer {
    /// Runs the transfer to its end, then logs and reports it.
    pub(super) async fn run(self) {
        let Transfer {
            target,
            request,
            peer,
            local_ip,
            limits,
            staging,
            events,
            cancel,
            permit,
            active,
        } = self;
        let started = Instant::now();
        let stats = staging.stats();
        TftpStats::bump(&stats.started, 1);
        let (kind, path, owner) = match &target {
            Target::Read(t) => ("RRQ", t.path.clone(), t.owner.clone()),
            Target::Write(t) => ("WRQ", t.path.clone(), t.owner.clone()),
        };
        tracing::info!(
            "tftp: {kind} {path} (owner {owner}) started, mode {}, options {:?}",
            request.mode.as_str(),
            request.options
        );
        let outcome = match UdpSocket::bind((local_ip, 0)).await {
            Ok(socket) => {
                let mut link = Link::new(socket, peer, &limits, &cancel);
                let outcome = match &target {
                    Target::Read(t) => send_file(&mut link, t, &request, &limits, &stats)
                        .await
                        .map(Success::Sent),
                    Target::Write(t) => receive_file(&mut link, t, &request, &limits)
                        .await
                        .map(Success::Received),
                };
                if let Err(err) = &outcome {
                    if let Some((code, message)) = err.notice() {
                        link.send_error(peer, code, message).await;
                    }
                }
                outcome
            }
            Err(err) => Err(TransferError::Bind(err)),
        };
        if let Target::Write(t) = &target {
            match outcome {
                Ok(_) => staging.finish_upload(&t.path),
                Err(_) => staging.release_upload(&t.path),
            }
        }
        drop(permit);
        drop(active);
        let duration = started.elapsed();
        let event = match outcome {
            Ok(Success::Sent(bytes)) => {
                TftpStats::bump(&stats.completed, 1);
                tracing::info!("tftp: {kind} {path} completed, {bytes} bytes in {duration:?}");
                TftpEvent::Completed {
                    owner,
                    path,
                    peer,
                    bytes,
                    duration,
                }
            }
            Ok(Success::Received(data)) => {
                TftpStats::bump(&stats.completed, 1);
                tracing::info!(
                    "tftp: {kind} {path} completed, {} bytes in {duration:?}",
                    data.len()
                );
                TftpEvent::Uploaded {
                    owner,
                    path,
                    peer,
                    data,
                }
            }
            Err(err) => {
                TftpStats::bump(&stats.failed, 1);
                tracing::warn!("tftp: {kind} {path} failed after {duration:?}: {err}");
                TftpEvent::Failed {
                    owner,
                    path,
                    peer,
                    reason: err.to_string(),
                }
            }
        };
        report(&events, &cancel, event).await;
    }
}

/// Delivers an event; waits for room unless the server is shutting down.
async fn report(events: &mpsc::Sender<TftpEvent>, cancel: &CancellationToken, event: TftpEvent) {
    match events.try_send(event) {
        Ok(()) => {}
        Err(TrySendError::Full(event)) => {
            tokio::select! {
                sent = events.send(event) => {
                    if sent.is_err() {
                        tracing::debug!("tftp: event receiver gone");
                    }
                }
                () = cancel.cancelled() => tracing::warn!("tftp: event dropped at shutdown"),
            }
        }
        Err(TrySendError::Closed(_)) => tracing::debug!("tftp: event receiver gone"),
    }
}

/// The block number on the wire for the `seq`-th block: wraps 65535 -> 0.
pub(super) fn wire_block(seq: u64) -> u16 {
    let [.., hi, lo] = seq.to_be_bytes();
    u16::from_be_bytes([hi, lo])
}

fn later(now: Instant, after: Duration) -> Instant {
    // Limits are validated far below overflow; fail fast should it happen.
    now.checked_add(after).unwrap_or(now)
}

/// What to do with a packet from the peer.
enum Step<T> {
    /// The awaited packet.
    Accept(T),
    /// Not the awaited packet; keep waiting.
    Ignore,
    /// The peer repeated its previous packet: send ours again.
    Resend,
}

/// The transfer socket and its timers.
///
/// The retransmission timer and the wait for cancellation live as long as
/// the transfer, each registered once: made afresh for every block, each
/// cost a lock to register and another to drop, on every block.
struct Link {
    socket: UdpSocket,
    peer: SocketAddr,
    timeout: Duration,
    retries: u32,
    deadline: Instant,
    total: Duration,
    recv: Vec<u8>,
    /// Reads the socket into `recv` without an empty read per block.
    inbox: Inbox,
    /// Fires at the end of the current wait for the peer (moved by each wait).
    timer: Pin<Box<Sleep>>,
    /// Completes when `cancel` fires.
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Link {
    fn new(
        socket: UdpSocket,
        peer: SocketAddr,
        limits: &TftpLimits,
        cancel: &CancellationToken,
    ) -> Self {
        let deadline = later(Instant::now(), limits.deadline);
        Link {
            socket,
            peer,
            timeout: limits.timeout,
            retries: limits.retries,
            deadline,
            total: limits.deadline,
            recv: vec![0; MAX_CONTROL_LEN.saturating_add(1)],
            inbox: Inbox::default(),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
            cancelled: Box::pin(cancel.clone().cancelled_owned()),
        }
    }

    /// Applies negotiated options: receive room for a block plus one byte
    /// (to spot oversized ones) and the client's timeout.
    fn apply(&mut self, blksize: u16, timeout: Option<u8>) {
        let room = DATA_HEADER_LEN
            .saturating_add(usize::from(blksize))
            .saturating_add(1)
            .max(MAX_CONTROL_LEN.saturating_add(1));
        self.recv.resize(room, 0);
        if let Some(secs) = timeout {
            self.timeout = Duration::from_secs(u64::from(secs));
        }
    }

    async fn send(&self, bytes: &[u8]) -> Result<(), TransferError> {
        // Straight to the socket: waiting for room is the rare case.
        loop {
            match self.socket.try_send_to(bytes, self.peer) {
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.socket
                        .writable()
                        .await
                        .map_err(TransferError::Socket)?;
                }
                Err(err) => return Err(TransferError::Socket(err)),
            }
        }
    }

    /// Best effort; the transfer is over either way.
    async fn send_error(&self, to: SocketAddr, code: ErrorCode, message: &str) {
        let packet = Packet::Error {
            code,
            message: message.to_owned(),
        };
        match packet.to_vec() {
            Ok(bytes) => {
                if let Err(err) = self.socket.send_to(&bytes, to).await {
                    tracing::debug!("tftp: cannot send ERROR {code} to {to}: {err}");
                }
            }
            Err(err) => tracing::error!("tftp: cannot encode ERROR {code}: {err}"),
        }
    }

    /// Waits for the next packet from the peer until `until`; `None` on
    /// timeout. Packets from other ports get ERROR 5 and are skipped.
    async fn receive(&mut self, until: Instant) -> Result<Option<usize>, TransferError> {
        loop {
            let received = self.next_datagram(until).await?;
            match received {
                None => return Ok(None),
                Some(Err(err)) => return Err(TransferError::Socket(err)),
                Some(Ok((len, from))) if from == self.peer => return Ok(Some(len)),
                Some(Ok((_, from))) => {
                    tracing::debug!("tftp: packet from unknown TID {from}");
                    self.send_error(from, ErrorCode::UnknownTransferId, "Unknown transfer ID")
                        .await;
                }
            }
        }
    }

    /// The next datagram into `recv`, from anyone; `None` once `until`
    /// passes. The socket is polled first: when a packet is waiting the
    /// timer and the cancellation are not looked at. They are whenever
    /// the socket has nothing (or tokio's budget for the task is spent), so
    /// a flood of packets does not hide a cancellation.
    async fn next_datagram(
        &mut self,
        until: Instant,
    ) -> Result<Option<io::Result<(usize, SocketAddr)>>, TransferError> {
        if self.timer.deadline() != until {
            // Later than before (the usual case): an atomic update.
            self.timer.as_mut().reset(until);
        }
        tokio::select! {
            biased;
            received = self.inbox.recv_from(&self.socket, &mut self.recv) => Ok(Some(received)),
            () = &mut self.cancelled => Err(TransferError::Cancelled),
            () = &mut self.timer => Ok(None),
        }
    }

    /// Sends `out` and waits until `judge` accepts a reply, resending on
    /// each timeout up to the retry limit. Only a timeout resends: a
    /// duplicate of the peer's previous packet is ignored unless `judge`
    /// asks to resend (no Sorcerer's Apprentice).
    async fn exchange<T>(
        &mut self,
        out: &[u8],
        mut judge: impl FnMut(Packet<'_>) -> Step<T>,
    ) -> Result<T, TransferError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(TransferError::Deadline(self.total));
        }
        self.send(out).await?;
        let mut resends = 0u32;
        let mut resend_at = later(now, self.timeout);
        loop {
            let Some(len) = self.receive(resend_at.min(self.deadline)).await? else {
                let now = Instant::now();
                if now >= self.deadline {
                    return Err(TransferError::Deadline(self.total));
                }
                if resends >= self.retries {
                    return Err(TransferError::NoAnswer(resends));
                }
                resends = resends.saturating_add(1);
                self.send(out).await?;
                resend_at = later(now, self.timeout);
                continue;
            };
            let step = match Packet::decode(self.recv.get(..len).unwrap_or_default()) {
                Ok(Packet::Error { code, message }) => {
                    return Err(TransferError::Peer { code, message });
                }
                Ok(packet) => judge(packet),
                Err(err) => {
                    tracing::debug!("tftp: ignoring malformed packet: {err}");
                    Step::Ignore
                }
            };
            match step {
                Step::Accept(value) => return Ok(value),
                Step::Ignore => {}
                Step::Resend => self.send(out).await?,
            }
        }
    }

    /// After the final ACK of an upload, answers a repeated final DATA
    /// (our ACK was lost) for one timeout period. The upload is complete
    /// either way, so errors here only end the wait.
    async fn linger(&mut self, ack: &[u8], block: u16) {
        let until = later(Instant::now(), self.timeout).min(self.deadline);
        loop {
            match self.receive(until).await {
                Ok(Some(len)) => {
                    let repeated = matches!(
                        Packet::decode(self.recv.get(..len).unwrap_or_default()),
                        Ok(Packet::Data { block: b, .. }) if b == block
                    );
                    if repeated {
                        if let Err(err) = self.send(ack).await {
                            tracing::debug!("tftp: final ACK not resent: {err}");
                            return;
                        }
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    tracing::debug!("tftp: stopped waiting after the final ACK: {err}");
                    return;
                }
            }
        }
    }
}

/// Where the blocks of a download come from.
enum Source {
    Memory(Bytes),
    File {
        file: BufReader<tokio::fs::File>,
        len: u64,
        buf: Vec<u8>,
    },
}

impl Source {
    async fn open(content: &Content) -> Result<Self, TransferError> {
        match content {
            Content::Memory(bytes) => Ok(Source::Memory(bytes.clone())),
            Content::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(TransferError::Open)?;
                let meta = file.metadata().await.map_err(TransferError::Open)?;
                if !meta.is_file() {
                    return Err(TransferError::NotAFile);
                }
                Ok(Source::File {
                    file: BufReader::with_capacity(FILE_BUFFER, file),
                    len: meta.len(),
                    buf: Vec::new(),
                })
            }
        }
    }

    fn len(&self) -> u64 {
        match self {
            // usize always fits in u64 on supported targets.
            Source::Memory(bytes) => u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            Source::File { len, .. } => *len,
        }
    }

    /// The next block: the bytes at `offset`, at most `blksize` of them.
    /// Blocks are read in order, each once.
    async fn block(&mut self, offset: u64, blksize: u16) -> Result<&[u8], TransferError> {
        let remaining = self
            .len()
            .checked_sub(offset)
            .ok_or(TransferError::Overflow)?;
        let want = usize::try_from(remaining.min(u64::from(blksize)))
            .map_err(|_| TransferError::Overflow)?;
        match self {
            Source::Memory(bytes) => {
                let start = usize::try_from(offset).map_err(|_| TransferError::Overflow)?;
                let end = start.checked_add(want).ok_or(TransferError::Overflow)?;
                bytes.get(start..end).ok_or(TransferError::Overflow)
            }
            Source::File { file, buf, .. } => {
                buf.resize(want, 0);
                let mut filled = 0;
                while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
                    let read = file.read(rest).await.map_err(TransferError::Read)?;
                    if read == 0 {
                        return Err(TransferError::Shrank);
                    }
                    filled = filled.checked_add(read).ok_or(TransferError::Overflow)?;
                }
                Ok(buf.as_slice())
            }
        }
    }
}

/// Options the server grants: `blksize` capped, `tsize` answered,
/// `timeout` accepted.
fn grant(request: &Request, limits: &TftpLimits, tsize: Option<u64>) -> Options {
    Options {
        blksize: request
            .options
            .blksize
            .map(|size| size.min(limits.max_blksize)),
        tsize,
        timeout: request.options.timeout,
    }
}

async fn send_file(
    link: &mut Link,
    target: &ReadTarget,
    request: &Request,
    limits: &TftpLimits,
    stats: &TftpStats,
) -> Result<u64, TransferError> {
    let mut source = Source::open(&target.content).await?;
    let size = source.len();
    let options = grant(request, limits, request.options.tsize.map(|_| size));
    let blksize = options.blksize.unwrap_or(DEFAULT_BLKSIZE);
    link.apply(blksize, options.timeout);
    tracing::debug!(
        "tftp: sending {} ({size} bytes, blksize {blksize})",
        target.path
    );
    if !options.is_empty() {
        let oack = Packet::Oack(options).to_vec()?;
        link.exchange(&oack, |packet| match packet {
            Packet::Ack { block: 0 } => Step::Accept(()),
            _ => Step::Ignore,
        })
        .await?;
    }
    let mut out = Vec::new();
    let mut sent = 0u64;
    let mut seq = 1u64;
    loop {
        let block = wire_block(seq);
        let data = source.block(sent, blksize).await?;
        let len = data.len();
        Packet::Data { block, data }.encode_into(&mut out)?;
        link.exchange(&out, |packet| match packet {
            Packet::Ack { block: acked } if acked == block => Step::Accept(()),
            _ => Step::Ignore,
        })
        .await?;
        let len = u64::try_from(len).map_err(|_| TransferError::Overflow)?;
        sent = sent.checked_add(len).ok_or(TransferError::Overflow)?;
        TftpStats::bump(&stats.bytes_served, len);
        if len < u64::from(blksize) {
            return Ok(sent);
        }
        seq = seq.checked_add(1).ok_or(TransferError::Overflow)?;
    }
}

async fn receive_file(
    link: &mut Link,
    target: &UploadTarget,
    request: &Request,
    limits: &TftpLimits,
) -> Result<Bytes, TransferError> {
    let max = target.max_bytes;
    if request.options.tsize.is_some_and(|size| size > max) {
        return Err(TransferError::TooLarge(max));
    }
    let options = grant(request, limits, request.options.tsize);
    let blksize = options.blksize.unwrap_or(DEFAULT_BLKSIZE);
    link.apply(blksize, options.timeout);
    let mut out = if options.is_empty() {
        Packet::Ack { block: 0 }.to_vec()?
    } else {
        Packet::Oack(options).to_vec()?
    };
    let mut data: Vec<u8> = Vec::new();
    let mut seq = 1u64;
    loop {
        let block = wire_block(seq);
        let previous = wire_block(seq.saturating_sub(1));
        let received = link
            .exchange(&out, |packet| match packet {
                Packet::Data { block: b, data: d } if b == block => {
                    Step::Accept(append(&mut data, d, blksize, max))
                }
                Packet::Data { block: b, .. } if seq > 1 && b == previous => Step::Resend,
                _ => Step::Ignore,
            })
            .await??;
        Packet::Ack { block }.encode_into(&mut out)?;
        if received < usize::from(blksize) {
            link.send(&out).await?;
            link.linger(&out, block).await;
            return Ok(Bytes::from(data));
        }
        seq = seq.checked_add(1).ok_or(TransferError::Overflow)?;
    }
}

/// Appends one DATA block to an upload; returns the block's length.
fn append(
    data: &mut Vec<u8>,
    block: &[u8],
    blksize: u16,
    max: u64,
) -> Result<usize, TransferError> {
    if block.len() > usize::from(blksize) {
        return Err(TransferError::OversizedBlock(blksize));
    }
    let total = data
        .len()
        .checked_add(block.len())
        .and_then(|total| u64::try_from(total).ok())
        .ok_or(TransferError::Overflow)?;
    if total > max {
        return Err(TransferError::TooLarge(max));
    }
    data.extend_from_slice(block);
    Ok(block.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_numbers_wrap_to_zero() {
        assert_eq!(wire_block(1), 1);
        assert_eq!(wire_block(65535), 65535);
        assert_eq!(wire_block(65536), 0);
        assert_eq!(wire_block(65537), 1);
        assert_eq!(wire_block(3 * 65536 + 7), 7);
        assert_eq!(wire_block(u64::MAX), 65535);
    }

    #[test]
    fn append_caps_the_upload() {
        let mut data = Vec::new();
        assert_eq!(append(&mut data, b"abcd", 8, 6).unwrap(), 4);
        assert!(matches!(
            append(&mut data, b"efg", 8, 6),
            Err(TransferError::TooLarge(6))
        ));
        assert!(matches!(
            append(&mut data, b"123456789", 8, 100),
            Err(TransferError::OversizedBlock(8))
        ));
        assert_eq!(data, b"abcd");
    }
}
