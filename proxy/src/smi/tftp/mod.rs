//! Read-only TFTP server for the files SMI clients fetch: tailored
//! configurations, startup configurations, image lists and images
//! (`docs/smi-protocol.md` sections 4, 5.3 and hardening rule 7).
//!
//! - [`packet`]: the pure codec (RFC 1350, 2347, 2348, 2349).
//! - [`Staging`]: the only files served, each under an unguessable
//!   per-client path such as `3f9c0a1b2c3d4e5f/sw1.cfg`.
//! - [`serve`]: the server loop; one task and one ephemeral UDP socket (the
//!   RFC 1350 transfer ID) per transfer, lock-step DATA/ACK with
//!   retransmission, option negotiation by OACK.
//!
//! Wiring:
//!
//! ```no_run
//! # async fn wire() -> Result<(), Box<dyn std::error::Error>> {
//! use proxy::smi::tftp::{self, Staging, TftpLimits};
//! let ip: std::net::IpAddr = "192.0.2.1".parse()?;
//! let socket = tokio::net::UdpSocket::bind((ip, tftp::TFTP_PORT)).await?;
//! let staging = Staging::new();
//! let (events, mut received) = tokio::sync::mpsc::channel(256);
//! let cancel = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(tftp::serve(socket, staging.clone(), events, TftpLimits::default(), cancel.clone()));
//! let config = staging.stage("00:11:22:33:44:55", "sw1.cfg", "hostname sw1\n");
//! let url = config.url(ip); // tftp://192.0.2.1/<16 hex>/sw1.cfg, into the SMI message
//! while let Some(event) = received.recv().await {
//!     if let tftp::TftpEvent::Completed { path, .. } = event {
//!         staging.unstage(&path); // secrets leave once fetched
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Bind the listening socket to the provisioning address rather than the
//! wildcard: transfer sockets bind the same local IP, so replies leave from
//! the address the switch asked.
//!
//! Block numbers wrap from 65535 to 0 (the usual convention, tftp-hpa's
//! default), so files of more than 65535 blocks transfer. Requests in
//! `netascii` mode get the file's bytes unchanged, as in `octet` mode.

mod inbox;
pub mod packet;
mod staging;
mod transfer;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, Span};

use packet::{DecodeError, ErrorCode, MAX_BLKSIZE, MAX_CONTROL_LEN, MIN_BLKSIZE, Packet, Request};
use staging::LookupError;
pub use staging::{
    Content, DEFAULT_TTL, MAX_HINT_LEN, MAX_PATH_LEN, StagedDir, StagedFile, Staging, StagingError,
};
use transfer::{ActiveKey, ActiveSet, Target, Transfer};

/// The well-known TFTP port.
pub const TFTP_PORT: u16 = 69;

/// Longest retransmission timeout accepted in [`TftpLimits`].
const MAX_TIMEOUT: Duration = Duration::from_secs(255);
/// Longest per-transfer deadline accepted in [`TftpLimits`].
const MAX_DEADLINE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Server limits and timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TftpLimits {
    /// Transfers running at once; further requests get ERROR 0 "server busy".
    pub max_transfers: usize,
    /// Retransmission timeout unless the client negotiates `timeout`.
    pub timeout: Duration,
    /// Retransmissions of one packet before the transfer fails.
    pub retries: u32,
    /// Total time one transfer may take.
    pub deadline: Duration,
    /// Largest block size granted to a `blksize` request.
    pub max_blksize: u16,
}

impl Default for TftpLimits {
    fn default() -> Self {
        TftpLimits {
            max_transfers: 1024,
            timeout: Duration::from_secs(1),
            retries: 5,
            deadline: Duration::from_secs(30 * 60),
            max_blksize: MAX_BLKSIZE,
        }
    }
}

impl TftpLimits {
    fn validate(&self) -> Result<(), TftpError> {
        if self.max_transfers == 0 || self.max_transfers > Semaphore::MAX_PERMITS {
            return Err(TftpError::InvalidLimits("max_transfers out of range"));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(TftpError::InvalidLimits("timeout must be within 0..=255 s"));
        }
        if self.deadline.is_zero() || self.deadline > MAX_DEADLINE {
            return Err(TftpError::InvalidLimits(
                "deadline must be within 0..=7 days",
            ));
        }
        if !(MIN_BLKSIZE..=MAX_BLKSIZE).contains(&self.max_blksize) {
            return Err(TftpError::InvalidLimits(
                "max_blksize must be within 8..=65464",
            ));
        }
        Ok(())
    }
}

/// The outcome of one transfer, for the proxy logic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TftpEvent {
    /// A client fetched a whole staged file.
    Completed {
        /// Owner of the staged file.
        owner: String,
        /// Staged path.
        path: String,
        /// Client address and port.
        peer: SocketAddr,
        /// Bytes sent.
        bytes: u64,
        /// Time from request to last acknowledgement.
        duration: Duration,
    },
    /// A transfer of a staged path failed.
    Failed {
        /// Owner of the staged file.
        owner: String,
        /// Staged path.
        path: String,
        /// Client address and port.
        peer: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// A client uploaded a file to a path opened with
    /// [`Staging::expect_upload`].
    Uploaded {
        /// Owner of the upload slot.
        owner: String,
        /// Staged path.
        path: String,
        /// Client address and port.
        peer: SocketAddr,
        /// The received bytes.
        data: Bytes,
    },
}

/// Transfer counters, shared by the servers of one [`Staging`]
/// (see [`Staging::stats`]): `smi_proxy_tftp_bytes_served_total` and the
/// series of `smi_proxy_tftp_transfers_total{outcome}`.
#[derive(Debug)]
pub struct TftpStats {
    transfers: Family<[(&'static str, &'static str); 1], Counter>,
    started: Counter,
    completed: Counter,
    failed: Counter,
    refused: Counter,
    busy: Counter,
    bytes_served: Counter,
}

impl Default for TftpStats {
    fn default() -> Self {
        let transfers: Family<_, Counter> = Family::default();
        let [started, completed, failed, refused, busy] =
            ["started", "completed", "failed", "refused", "busy"]
                .map(|outcome| transfers.get_or_create_owned(&[("outcome", outcome)]));
        Self {
            transfers,
            started,
            completed,
            failed,
            refused,
            busy,
            bytes_served: Counter::default(),
        }
    }
}

impl TftpStats {
    /// Registers `smi_proxy_tftp_bytes_served_total` and
    /// `smi_proxy_tftp_transfers_total{outcome}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "smi_proxy_tftp_bytes_served",
            "Bytes served by TFTP",
            self.bytes_served.clone(),
        );
        registry.register(
            "smi_proxy_tftp_transfers",
            "TFTP transfers, by outcome (refused: unknown path, malformed request or \
             write without an upload slot; busy: over the transfer cap)",
            self.transfers.clone(),
        );
    }

    /// Transfers started (downloads and uploads).
    pub fn transfers_started(&self) -> u64 {
        self.started.get()
    }

    /// Transfers completed.
    pub fn transfers_completed(&self) -> u64 {
        self.completed.get()
    }

    /// Transfers failed after they started.
    pub fn transfers_failed(&self) -> u64 {
        self.failed.get()
    }

    /// Requests answered with an error before any transfer (unknown or
    /// refused path, malformed request, WRQ without upload slot).
    pub fn requests_refused(&self) -> u64 {
        self.refused.get()
    }

    /// Requests refused because [`TftpLimits::max_transfers`] were running.
    pub fn requests_busy(&self) -> u64 {
        self.busy.get()
    }

    /// File bytes acknowledged by clients.
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served.get()
    }

    fn bump(counter: &Counter, by: u64) {
        counter.inc_by(by);
    }
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// A [`TftpLimits`] field is out of range.
    #[error("invalid TFTP limits: {0}")]
    InvalidLimits(&'static str),
    /// The listening socket has no local address.
    #[error("cannot read the TFTP socket's local address: {0}")]
    LocalAddr(io::Error),
    /// Receiving on the listening socket failed.
    #[error("receiving on the TFTP socket failed: {0}")]
    Receive(io::Error),
}

/// Serves `staging` on `socket` until `cancel` fires, then cancels the
/// running transfers, waits for them and returns `Ok(())`.
///
/// Read requests for staged paths are served; write requests only for
/// paths opened with [`Staging::expect_upload`]. Every transfer ends with
/// one [`TftpEvent`] on `events` and is logged with peer and path. Requests
/// for paths that are not staged are answered with an ERROR and logged, but
/// raise no event: no owner is known for them.
pub async fn serve(
    socket: UdpSocket,
    staging: Staging,
    events: mpsc::Sender<TftpEvent>,
    limits: TftpLimits,
    cancel: CancellationToken,
) -> Result<(), TftpError> {
    limits.validate()?;
    let local = socket.local_addr().map_err(TftpError::LocalAddr)?;
    widen_receive_buffer(&socket);
    tracing::info!("tftp: serving on {local}");
    let mut server = Server {
        socket,
        local_ip: local.ip(),
        staging,
        events,
        limits,
        shutdown: cancel.child_token(),
        permits: Arc::new(Semaphore::new(limits.max_transfers)),
        active: Arc::new(Mutex::new(HashSet::new())),
        tasks: JoinSet::new(),
        refusals: crate::logging::Throttle::new(),
    };
    // One byte more than the largest request, to tell oversized ones apart.
    let mut buf = vec![0u8; MAX_CONTROL_LEN.saturating_add(1)];
    let result = loop {
        tokio::select! {
            () = cancel.cancelled() => break Ok(()),
            Some(joined) = server.tasks.join_next(), if !server.tasks.is_empty() => {
                if let Err(err) = joined {
                    tracing::error!("tftp: transfer task ended abnormally: {err}");
                }
            }
            received = server.socket.recv_from(&mut buf) => match received {
                Ok((len, peer)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    // A followed client's request is part of its story.
                    let client = crate::logging::client_at(peer.ip()).unwrap_or_else(Span::none);
                    server.handle(datagram, peer).instrument(client).await;
                }
                Err(err) if is_transient(&err) => {
                    tracing::debug!("tftp: ignoring receive error: {err}");
                }
                Err(err) => break Err(TftpError::Receive(err)),
            }
        }
    };
    server.shutdown.cancel();
    while let Some(joined) = server.tasks.join_next().await {
        if let Err(err) = joined {
            tracing::error!("tftp: transfer task ended abnormally: {err}");
        }
    }
    tracing::info!("tftp: stopped serving on {local}");
    result
}

/// Bytes of queued requests the listening socket may hold (the kernel
/// counts each datagram's buffer, about 1 KiB for a request): a burst of a
/// thousand switches asking at once. Requests the queue has no room for are
/// dropped, and each of those switches waits a whole timeout to ask again.
const LISTEN_BUFFER: usize = 2 << 20;

/// Asks for [`LISTEN_BUFFER`] on the listening socket: beyond the system's
/// `rmem_max` when allowed (`CAP_NET_ADMIN`), else up to it. Best effort.
fn widen_receive_buffer(socket: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(socket, sockopt::RcvBufForce, &LISTEN_BUFFER).is_ok() {
        return;
    }
    if let Err(err) = setsockopt(socket, sockopt::RcvBuf, &LISTEN_BUFFER) {
        tracing::debug!("tftp: receive buffer left as it was: {err}");
    }
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

struct Server {
    socket: UdpSocket,
    local_ip: std::net::IpAddr,
    staging: Staging,
    events: mpsc::Sender<TftpEvent>,
    limits: TftpLimits,
    shutdown: CancellationToken,
    permits: Arc<Semaphore>,
    active: ActiveSet,
    tasks: JoinSet<()>,
    /// Bounds the warnings of refused requests (a flood of guesses).
    refusals: crate::logging::Throttle,
}

impl Server {
    async fn handle(&mut self, datagram: &[u8], peer: SocketAddr) {
        let (request, upload) = match Packet::decode(datagram) {
            Ok(Packet::Rrq(request)) => (request, false),
            Ok(Packet::Wrq(request)) => (request, true),
            Ok(Packet::Error { code, message }) => {
                tracing::debug!(
                    "tftp: {peer}: ignoring ERROR {code} {message:?} sent to the server port"
                );
                return;
            }
            Ok(other) => {
                tracing::debug!("tftp: {peer}: unexpected {other:?} on the server port");
                self.refuse(peer, ErrorCode::IllegalOperation, "Illegal TFTP operation")
                    .await;
                return;
            }
            Err(err) => {
                if let Some(skipped) = self.refusals.allow() {
                    let more = crate::logging::skipped_note(skipped);
                    tracing::warn!("tftp: {peer}: malformed request: {err}{more}");
                }
                let (code, message) = match err {
                    DecodeError::InvalidOption { .. }
                    | DecodeError::DuplicateOption(_)
                    | DecodeError::MissingOptionValue(_)
                    | DecodeError::EmptyOptionName => {
                        (ErrorCode::OptionNegotiation, "Option negotiation failed")
                    }
                    _ => (ErrorCode::IllegalOperation, "Illegal TFTP operation"),
                };
                self.refuse(peer, code, message).await;
                return;
            }
        };
        let kind = if upload { "WRQ" } else { "RRQ" };
        let key: ActiveKey = (peer, request.filename.clone());
        if transfer::is_active(&self.active, &key) {
            tracing::debug!(
                "tftp: {peer}: repeated {kind} {:?} ignored",
                request.filename
            );
            return;
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            if let Some(skipped) = self.refusals.allow() {
                tracing::warn!(
                    "tftp: {peer}: {kind} {:?} refused, {} transfers running{}",
                    request.filename,
                    self.limits.max_transfers,
                    crate::logging::skipped_note(skipped)
                );
            }
            TftpStats::bump(&self.staging.stats().busy, 1);
            self.send_error(peer, ErrorCode::NotDefined, "server busy")
                .await;
            return;
        };
        let target = match self.find(&request, upload) {
            Ok(target) => target,
            Err(err) => {
                if let Some(skipped) = self.refusals.allow() {
                    tracing::warn!(
                        "tftp: {peer}: {kind} {:?} refused: {err}{}",
                        request.filename,
                        crate::logging::skipped_note(skipped)
                    );
                }
                let (code, message) = match err {
                    LookupError::NotFound => (ErrorCode::FileNotFound, "File not found"),
                    LookupError::Refused(_)
                    | LookupError::NotWritable
                    | LookupError::UploadBusy => (ErrorCode::AccessViolation, "Access violation"),
                };
                self.refuse(peer, code, message).await;
                return;
            }
        };
        let transfer = Transfer {
            target,
            request,
            peer,
            local_ip: self.local_ip,
            limits: self.limits,
            staging: self.staging.clone(),
            events: self.events.clone(),
            // A token of its own: a shared one is a lock every transfer
            // takes on every block it waits for.
            cancel: self.shutdown.child_token(),
            permit,
            active: transfer::ActiveGuard::insert(&self.active, key),
        };
        self.tasks
            .spawn(transfer.run().instrument(crate::logging::peer(peer.ip())));
    }

    fn find(&self, request: &Request, upload: bool) -> Result<Target, LookupError> {
        if upload {
            self.staging
                .claim_upload(&request.filename)
                .map(Target::Write)
        } else {
            self.staging
                .lookup_read(&request.filename)
                .map(Target::Read)
        }
    }

    async fn refuse(&self, peer: SocketAddr, code: ErrorCode, message: &str) {
        TftpStats::bump(&self.staging.stats().refused, 1);
        self.send_error(peer, code, message).await;
    }

    async fn send_error(&self, peer: SocketAddr, code: ErrorCode, message: &str) {
        let packet = Packet::Error {
            code,
            message: message.to_owned(),
        };
        match packet.to_vec() {
            Ok(bytes) => {
                if let Err(err) = self.socket.send_to(&bytes, peer).await {
                    tracing::debug!("tftp: {peer}: cannot send ERROR {code}: {err}");
                }
            }
            Err(err) => tracing::error!("tftp: cannot encode ERROR {code}: {err}"),
        }
    }
}
