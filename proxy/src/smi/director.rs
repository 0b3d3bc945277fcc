//! The director's sockets: probing a client's port 4786, sending it one
//! command, and the director's own 4786 listener.
//!
//! One message per TCP connection, as every public tool does: connect, send
//! one message, read briefly (a reject reply may arrive), close. Every length
//! word from the wire is checked by the codec before anything is read.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::codec::{self, CodecError, HEADER_LEN, Header, Message, PAYLOAD_CAP};

/// TCP port of Smart Install.
pub const SMI_PORT: u16 = 4786;

/// Timeouts and limits of the director side.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connecting to a client.
    pub connect: Duration,
    /// Reading a reply or an inbound message.
    pub read: Duration,
    /// Concurrent inbound connections on the listener.
    pub max_inbound: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(3),
            max_inbound: 256,
        }
    }
}

/// What went wrong talking SMI to a client.
#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    /// The TCP connection could not be made.
    #[error("connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    /// The client did not connect or answer in time.
    #[error("{0}: no answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// Reading or writing failed.
    #[error("{0}: {1}")]
    Io(SocketAddr, std::io::Error),
    /// The client sent something the codec refuses.
    #[error("{0}: malformed SMI message: {1}")]
    Codec(SocketAddr, CodecError),
    /// The client answered with the generic reject reply.
    #[error("{0}: the client rejected the message")]
    Rejected(SocketAddr),
    /// The client answered the probe with something else than the client reply.
    #[error("{0}: unexpected answer to the probe: {1}")]
    NotAClient(SocketAddr, &'static str),
    /// The message could not be encoded (bad URL, command).
    #[error("cannot encode the message: {0}")]
    Encode(CodecError),
}

/// Reads one whole SMI message: the header, then exactly the payload its
/// length word announces once the codec accepted that length.
pub async fn read_message(
    stream: &mut TcpStream,
    peer: SocketAddr,
    cap: usize,
) -> Result<Message, DirectorError> {
    let mut head = [0u8; HEADER_LEN];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| DirectorError::Io(peer, e))?;
    let header = Header::decode(&head);
    let len = codec::payload_len(&header, cap).map_err(|e| DirectorError::Codec(peer, e))?;
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(|e| DirectorError::Io(peer, e))?;
    codec::decode_parts(&header, &payload).map_err(|e| DirectorError::Codec(peer, e))
}

async fn connect(addr: SocketAddr, limits: &Limits) -> Result<TcpStream, DirectorError> {
    match tokio::time::timeout(limits.connect, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(DirectorError::Connect(addr, e)),
        Err(_) => Err(DirectorError::Timeout(addr, limits.connect)),
    }
}

/// Probes `addr` (a client's 4786): true when it answers with the 24-byte
/// client reply, i.e. it runs an SMI client.
pub async fn probe(addr: SocketAddr, limits: &Limits) -> Result<(), DirectorError> {
    let mut stream = connect(addr, limits).await?;
    let probe = Message::Probe.encode().map_err(DirectorError::Encode)?;
    stream
        .write_all(&probe)
        .await
        .map_err(|e| DirectorError::Io(addr, e))?;
    let reply = tokio::time::timeout(limits.read, read_message(&mut stream, addr, PAYLOAD_CAP))
        .await
        .map_err(|_| DirectorError::Timeout(addr, limits.read))??;
    match reply {
        Message::ClientReply => Ok(()),
        Message::Reject => Err(DirectorError::Rejected(addr)),
        other => Err(DirectorError::NotAClient(addr, other.name())),
    }
}

/// Sends one command message to the client at `addr` on its own connection.
/// A reject reply within the read timeout is an error; silence is the
/// normal outcome (delivery shows later, when the client fetches its file).
pub async fn send(addr: SocketAddr, msg: &Message, limits: &Limits) -> Result<(), DirectorError> {
    let bytes = msg.encode().map_err(DirectorError::Encode)?;
    let mut stream = connect(addr, limits).await?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| DirectorError::Io(addr, e))?;
    stream
        .shutdown()
        .await
        .map_err(|e| DirectorError::Io(addr, e))?;
    match tokio::time::timeout(limits.read, read_message(&mut stream, addr, PAYLOAD_CAP)).await {
        Ok(Ok(Message::Reject)) => Err(DirectorError::Rejected(addr)),
        Ok(Ok(other)) => {
            tracing::debug!("answered {} to {}", other.name(), msg.name());
            Ok(())
        }
        // Closed without a reply, or nothing in time: delivered as far as we can tell.
        Ok(Err(DirectorError::Io(..))) | Err(_) => Ok(()),
        Ok(Err(e)) => Err(e),
    }
}

/// A director-to-client message, as [`DirectorStats`] counts it (label
/// `message` of `smi_proxy_smi_exchanges_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmiMessage {
    /// The probe (type 4).
    Probe,
    /// Config upgrade (type 3): the tailored or a PnP configuration.
    ConfigUpgrade,
    /// Image upgrade (type 2).
    ImageUpgrade,
    /// Run CLI (type 8): `show version` copied to the proxy.
    RunCli,
    /// Any other command (execute file).
    Other,
}

impl SmiMessage {
    /// Every message, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::Probe,
        Self::ConfigUpgrade,
        Self::ImageUpgrade,
        Self::RunCli,
        Self::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::ConfigUpgrade => "config_upgrade",
            Self::ImageUpgrade => "image_upgrade",
            Self::RunCli => "run_cli",
            Self::Other => "other",
        }
    }

    /// The kind of `msg`.
    pub fn of(msg: &Message) -> Self {
        match msg {
            Message::Probe => Self::Probe,
            Message::ConfigUpgrade { .. } => Self::ConfigUpgrade,
            Message::ImageUpgrade { .. } => Self::ImageUpgrade,
            Message::RunCli { .. } => Self::RunCli,
            _ => Self::Other,
        }
    }
}

/// How one director-to-client message went, as [`DirectorStats`] counts it
/// (label `outcome` of `smi_proxy_smi_exchanges_total`). `Sent` counts
/// every attempt; the others split the attempts by result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmiOutcome {
    /// Attempted (connected or not).
    Sent,
    /// The probe got the client reply, or the command got no reject.
    Accepted,
    /// The client answered with the reject reply.
    Rejected,
    /// No connection, timeout, I/O or codec error, or (probe) another answer.
    Failed,
}

impl SmiOutcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Sent, Self::Accepted, Self::Rejected, Self::Failed];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// Counters of the messages the director sent to clients ([`probe`] and
/// [`send`] outcomes), all clients together. Every series exists (at 0)
/// from the start.
#[derive(Debug)]
pub struct DirectorStats {
    family: Family<[(&'static str, &'static str); 2], Counter>,
    counts: [[Counter; SmiOutcome::ALL.len()]; SmiMessage::ALL.len()],
}

impl Default for DirectorStats {
    fn default() -> Self {
        let family: Family<_, Counter> = Family::default();
        let counts = SmiMessage::ALL.map(|m| {
            SmiOutcome::ALL.map(|o| {
                family.get_or_create_owned(&[("message", m.label()), ("outcome", o.label())])
            })
        });
        Self { family, counts }
    }
}

impl DirectorStats {
    /// Registers `smi_proxy_smi_exchanges_total{message,outcome}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "smi_proxy_smi_exchanges",
            "Director messages to clients (probe; config_upgrade, type 3; image_upgrade, \
             type 2; run_cli, type 8), by outcome: sent counts every attempt, accepted, \
             rejected and failed split them",
            self.family.clone(),
        );
    }

    /// Counts one attempt at sending `msg` and its `result` (as [`probe`]
    /// or [`send`] returned it).
    pub fn record(&self, msg: SmiMessage, result: &Result<(), DirectorError>) {
        let outcome = match result {
            Ok(()) => SmiOutcome::Accepted,
            Err(DirectorError::Rejected(_)) => SmiOutcome::Rejected,
            Err(_) => SmiOutcome::Failed,
        };
        let row = &self.counts[msg as usize];
        row[SmiOutcome::Sent as usize].inc();
        row[outcome as usize].inc();
    }

    /// The count of `msg` with `outcome`.
    pub fn get(&self, msg: SmiMessage, outcome: SmiOutcome) -> u64 {
        self.counts[msg as usize][outcome as usize].get()
    }

    /// Every (message, outcome, count), in a fixed order.
    pub fn samples(&self) -> Vec<(SmiMessage, SmiOutcome, u64)> {
        SmiMessage::ALL
            .iter()
            .flat_map(|m| {
                SmiOutcome::ALL
                    .iter()
                    .map(move |o| (*m, *o, self.get(*m, *o)))
            })
            .collect()
    }
}

/// Counters of the director's listener, the series of
/// `smi_proxy_smi_inbound_total{event}`.
#[derive(Debug)]
pub struct ListenerStats {
    family: Family<[(&'static str, &'static str); 1], Counter>,
    /// Connections accepted.
    pub accepted: Counter,
    /// Connections refused because the concurrency cap was reached.
    pub refused_busy: Counter,
    /// Messages decoded (any type).
    pub messages: Counter,
    /// Messages of a type the director does not handle.
    pub unknown: Counter,
    /// Connections closed on a malformed message, an oversize length or a timeout.
    pub malformed: Counter,
}

impl Default for ListenerStats {
    fn default() -> Self {
        let family: Family<_, Counter> = Family::default();
        let [accepted, refused_busy, messages, unknown, malformed] = [
            "accepted",
            "refused_busy",
            "message",
            "unknown_type",
            "malformed",
        ]
        .map(|event| family.get_or_create_owned(&[("event", event)]));
        Self {
            family,
            accepted,
            refused_busy,
            messages,
            unknown,
            malformed,
        }
    }
}

impl ListenerStats {
    /// Registers `smi_proxy_smi_inbound_total{event}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "smi_proxy_smi_inbound",
            "Connections and messages on the director's 4786 listener",
            self.family.clone(),
        );
    }
}

/// A message a client sent to the director.
#[derive(Debug)]
pub struct Inbound {
    /// Who sent it.
    pub peer: SocketAddr,
    /// What it was.
    pub message: Message,
}

/// Runs the director's own 4786 listener until `cancel`. Each connection
/// carries one message: it is decoded with the codec, logged, counted and
/// handed on; the connection is then closed silently, as a director does
/// (it never answers a probe). Malformed input is logged with the peer.
pub async fn listen(
    listener: TcpListener,
    limits: Limits,
    stats: Arc<ListenerStats>,
    inbound: tokio::sync::mpsc::Sender<Inbound>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_inbound));
    loop {
        let (mut stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("SMI listener: accept: {e}");
                    // EMFILE and the like: do not spin.
                    tokio::time::sleep(super::telnet::ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        stats.accepted.inc();
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused_busy.inc();
            tracing::warn!(
                "SMI listener: {peer} refused: {} connections already open",
                limits.max_inbound
            );
            continue;
        };
        let stats = stats.clone();
        let inbound = inbound.clone();
        let client = crate::logging::peer(peer.ip());
        let session = async move {
            let _permit = permit;
            let r = tokio::time::timeout(limits.read, read_message(&mut stream, peer, PAYLOAD_CAP))
                .await;
            match r {
                Ok(Ok(message)) => {
                    stats.messages.inc();
                    if matches!(message, Message::Unknown { .. }) {
                        stats.unknown.inc();
                    }
                    tracing::info!("SMI listener: received {}", message.name());
                    let _ = inbound.try_send(Inbound { peer, message });
                }
                Ok(Err(e)) => {
                    stats.malformed.inc();
                    tracing::warn!("SMI listener: {e}");
                }
                Err(_) => {
                    stats.malformed.inc();
                    tracing::warn!("SMI listener: no whole message within {:?}", limits.read);
                }
            }
        };
        tokio::spawn(session.instrument(client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fake_client(answer: Vec<u8>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = [0u8; HEADER_LEN];
            s.read_exact(&mut head).await.unwrap();
            let h = Header::decode(&head);
            let mut rest = vec![0u8; codec::payload_len(&h, PAYLOAD_CAP).unwrap()];
            s.read_exact(&mut rest).await.unwrap();
            s.write_all(&answer).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn probe_accepts_client_reply_and_refuses_others() {
        let reply = Message::ClientReply.encode().unwrap();
        let addr = fake_client(reply).await;
        probe(addr, &Limits::default()).await.unwrap();

        let reject = Message::Reject.encode().unwrap();
        let addr = fake_client(reject).await;
        assert!(matches!(
            probe(addr, &Limits::default()).await,
            Err(DirectorError::Rejected(_))
        ));

        let mut oversize = Header {
            from: 4,
            version: 0,
            msg_type: 3,
            payload_len: 0x7fff_ffff,
        }
        .encode()
        .to_vec();
        oversize.extend_from_slice(&[0; 8]);
        let addr = fake_client(oversize).await;
        assert!(matches!(
            probe(addr, &Limits::default()).await,
            Err(DirectorError::Codec(..))
        ));
    }

    #[tokio::test]
    async fn director_stats_split_attempts_by_outcome() {
        let stats = DirectorStats::default();
        let addr = fake_client(Message::ClientReply.encode().unwrap()).await;
        stats.record(SmiMessage::Probe, &probe(addr, &Limits::default()).await);
        let addr = fake_client(Message::Reject.encode().unwrap()).await;
        let msg = Message::ConfigUpgrade {
            url: "tftp://192.0.2.1/client_cfg_pnp.txt".into(),
            reload: None,
        };
        let result = send(addr, &msg, &Limits::default()).await;
        stats.record(SmiMessage::of(&msg), &result);
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        stats.record(SmiMessage::Probe, &probe(addr, &Limits::default()).await);
        let nonzero: Vec<_> = stats
            .samples()
            .into_iter()
            .filter(|(_, _, n)| *n > 0)
            .map(|(m, o, n)| (m.label(), o.label(), n))
            .collect();
        assert_eq!(
            nonzero,
            [
                ("probe", "sent", 2),
                ("probe", "accepted", 1),
                ("probe", "failed", 1),
                ("config_upgrade", "sent", 1),
                ("config_upgrade", "rejected", 1),
            ]
        );
    }

    #[tokio::test]
    async fn listener_survives_garbage_and_counts() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(ListenerStats::default());
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(listen(
            l,
            Limits::default(),
            stats.clone(),
            tx,
            cancel.clone(),
        ));
        // An oversize length word: refused before any payload is read.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let h = Header {
            from: 4,
            version: 0,
            msg_type: 7,
            payload_len: 0xffff_ffff,
        }
        .encode();
        s.write_all(&h).await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(
            s.read(&mut buf).await.unwrap(),
            0,
            "closed without an answer"
        );
        // Then a well-formed probe: decoded and handed on, never answered.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&Message::Probe.encode().unwrap())
            .await
            .unwrap();
        let got = rx.recv().await.unwrap();
        assert!(matches!(got.message, Message::Probe));
        assert_eq!(
            s.read(&mut buf).await.unwrap(),
            0,
            "a director never answers a probe"
        );
        assert_eq!(stats.malformed.get(), 1);
        assert_eq!(stats.messages.get(), 1);
        cancel.cancel();
        task.await.unwrap();
    }
}
