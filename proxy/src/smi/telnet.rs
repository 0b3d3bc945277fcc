//! Learning a client's UDI by "reverse telnet" on TCP 19140.
//!
//! MODELLED: the vendor chapter only says that the tailored configuration
//! makes the client run `do telnet <proxy-ip> 19140` and that the proxy then
//! obtains `show version`; who logs in where, prompts and timing are not
//! public. This module is the one place that models it, so that a capture
//! from real equipment can correct it here:
//!
//! 1. The client connects to the proxy's port 19140 and presents its exec
//!    prompt (`<hostname>#` or `<hostname>>`), possibly after telnet option
//!    negotiation (IAC sequences), which the proxy refuses politely
//!    (WONT/DONT) and strips.
//! 2. The proxy writes `terminal length 0`, reads to the next prompt, writes
//!    `show version`, reads to the next prompt, writes `exit` and closes.
//! 3. The output is parsed by [`super::showver`] into PID, VID and SN.
//!
//! Every read is bounded in time and size.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::showver::{self, ShowVersion, ShowVersionError};

/// The port the tailored configuration makes clients telnet to.
pub const TELNET_PORT: u16 = 19140;
/// Most bytes read from one session.
pub const OUTPUT_CAP: usize = 256 * 1024;

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;

/// What went wrong in a reverse-telnet session.
#[derive(Debug, thiserror::Error)]
pub enum TelnetError {
    /// No prompt within the step's timeout.
    #[error("no prompt within {0:?} after {1:?}")]
    Timeout(Duration, &'static str),
    /// The whole session took longer than allowed.
    #[error("the session took longer than {0:?}")]
    SessionTimeout(Duration),
    /// The client closed the connection early.
    #[error("the client closed the session during {0:?}")]
    Closed(&'static str),
    /// A telnet subnegotiation longer than allowed.
    #[error("a telnet subnegotiation longer than {0} bytes")]
    Subnegotiation(usize),
    /// More output than [`OUTPUT_CAP`].
    #[error("more than {OUTPUT_CAP} bytes of output")]
    TooMuchOutput,
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The `show version` output lacks a field.
    #[error("show version: {0}")]
    ShowVersion(#[from] ShowVersionError),
}

/// The outcome of one session.
#[derive(Debug)]
pub struct Session {
    /// The client's address.
    pub peer: SocketAddr,
    /// The parsed `show version`, or why there is none.
    pub result: Result<ShowVersion, TelnetError>,
}

/// Longest telnet subnegotiation (`IAC SB ... IAC SE`) accepted; a real
/// one (terminal type, window size) is a few bytes.
pub const SUBNEGOTIATION_MAX: usize = 64;

/// Where a [`TelnetDecoder`] is in the byte stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Data bytes.
    #[default]
    Data,
    /// After `IAC`.
    Iac,
    /// After `IAC DO|DONT|WILL|WONT`: the option byte comes next.
    Option(u8),
    /// Inside `IAC SB`, this many bytes in.
    Sub(usize),
    /// Inside `IAC SB`, after an `IAC`.
    SubIac(usize),
}

/// Removes telnet commands from a byte stream, one byte at a time: memory
/// and time stay linear in the input whatever the peer sends (an endless
/// `IAC SB` is refused after [`SUBNEGOTIATION_MAX`] bytes, not buffered).
#[derive(Clone, Debug, Default)]
pub struct TelnetDecoder {
    state: State,
}

impl TelnetDecoder {
    /// Appends the data bytes of `input` to `out` and the refusals its
    /// negotiation calls for (`WONT` to `DO`, `DONT` to `WILL`) to `reply`.
    /// A command split across calls is carried over.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<(), TelnetError> {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data, IAC) => State::Iac,
                (State::Data, _) => {
                    out.push(b);
                    State::Data
                }
                (State::Iac, IAC) => {
                    out.push(IAC);
                    State::Data
                }
                (State::Iac, DO | DONT | WILL | WONT) => State::Option(b),
                (State::Iac, SB) => State::Sub(0),
                (State::Iac, _) => State::Data,
                (State::Option(cmd), opt) => {
                    match cmd {
                        DO => reply.extend_from_slice(&[IAC, WONT, opt]),
                        WILL => reply.extend_from_slice(&[IAC, DONT, opt]),
                        _ => {}
                    }
                    State::Data
                }
                (State::Sub(n) | State::SubIac(n), _) if n >= SUBNEGOTIATION_MAX => {
                    return Err(TelnetError::Subnegotiation(SUBNEGOTIATION_MAX));
                }
                (State::Sub(n), IAC) => State::SubIac(n + 1),
                (State::Sub(n), _) => State::Sub(n + 1),
                (State::SubIac(_), SE) => State::Data,
                (State::SubIac(n), _) => State::Sub(n + 1),
            };
        }
        Ok(())
    }
}

/// Longest prompt: a 64-character host name and `#` or `>`.
const PROMPT_MAX: usize = 65;

/// Whether `buf` ends with an IOS exec prompt (`host#` or `host>` alone on
/// its line, nothing after it).
pub fn ends_with_prompt(buf: &[u8]) -> bool {
    // A prompt is at most 65 bytes: only the tail needs a look, so that a
    // long line costs nothing per read.
    let tail = &buf[buf.len().saturating_sub(PROMPT_MAX + 1)..];
    let last = match tail.iter().rposition(|&b| b == b'\n' || b == b'\r') {
        Some(p) => &tail[p + 1..],
        None if tail.len() == buf.len() => buf,
        None => return false,
    };
    let Some((&end, host)) = last.split_last() else {
        return false;
    };
    (end == b'#' || end == b'>')
        && !host.is_empty()
        && host.len() < PROMPT_MAX
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'(' | b')'))
}

/// One CLI conversation over an accepted connection.
struct Cli {
    stream: TcpStream,
    decoder: TelnetDecoder,
    data: Vec<u8>,
    step_timeout: Duration,
}

impl Cli {
    async fn until_prompt(&mut self, step: &'static str) -> Result<Vec<u8>, TelnetError> {
        let start = self.data.len();
        let deadline = tokio::time::Instant::now() + self.step_timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if ends_with_prompt(&self.data[start..]) {
                return Ok(self.data[start..].to_vec());
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| TelnetError::Timeout(self.step_timeout, step))??;
            if n == 0 {
                return Err(TelnetError::Closed(step));
            }
            let mut reply = Vec::new();
            self.decoder.feed(&chunk[..n], &mut self.data, &mut reply)?;
            if !reply.is_empty() {
                self.stream.write_all(&reply).await?;
            }
            if self.data.len() > OUTPUT_CAP {
                return Err(TelnetError::TooMuchOutput);
            }
        }
    }

    async fn command(&mut self, cmd: &'static str) -> Result<Vec<u8>, TelnetError> {
        self.stream.write_all(cmd.as_bytes()).await?;
        self.stream.write_all(b"\r\n").await?;
        self.until_prompt(cmd).await
    }
}

/// Drives one session: prompt, `terminal length 0`, `show version`, `exit`.
pub async fn drive(stream: TcpStream, step_timeout: Duration) -> Result<ShowVersion, TelnetError> {
    let mut cli = Cli {
        stream,
        decoder: TelnetDecoder::default(),
        data: Vec::new(),
        step_timeout,
    };
    cli.until_prompt("the first prompt").await?;
    cli.command("terminal length 0").await?;
    let out = cli.command("show version").await?;
    let _ = cli.stream.write_all(b"exit\r\n").await;
    let text = String::from_utf8_lossy(&out);
    Ok(showver::parse(&text)?)
}

/// Longest wait for one prompt within a session.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// [`drive`] with the whole session bounded by `session_timeout` (the
/// `telnet_timeout_secs` setting) and each step by [`STEP_TIMEOUT`].
pub async fn drive_within(
    stream: TcpStream,
    session_timeout: Duration,
) -> Result<ShowVersion, TelnetError> {
    tokio::time::timeout(session_timeout, drive(stream, STEP_TIMEOUT))
        .await
        .map_err(|_| TelnetError::SessionTimeout(session_timeout))?
}

/// Reverse-telnet sessions open at once from one address.
pub const SESSIONS_PER_PEER: usize = 2;
/// Pause after a failed accept (EMFILE and the like), so that the loop
/// does not spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections the listener closed at once, by reason: the series of
/// `smi_proxy_telnet_refused_total{reason}`.
#[derive(Debug)]
pub struct TelnetStats {
    family: Family<[(&'static str, &'static str); 1], Counter>,
    /// From an address no identification waits for.
    pub unexpected: Counter,
    /// Over the listener's `sessions_max` or [`SESSIONS_PER_PEER`].
    pub busy: Counter,
}

impl Default for TelnetStats {
    fn default() -> Self {
        let family: Family<_, Counter> = Family::default();
        let [unexpected, busy] =
            ["unexpected", "busy"].map(|reason| family.get_or_create_owned(&[("reason", reason)]));
        Self {
            family,
            unexpected,
            busy,
        }
    }
}

impl TelnetStats {
    /// Registers `smi_proxy_telnet_refused_total{reason}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "smi_proxy_telnet_refused",
            "Reverse-telnet connections closed at once, by reason: unexpected (no \
             identification waits for that address), busy (over the session caps)",
            self.family.clone(),
        );
    }
}

/// Accepts reverse-telnet sessions until `cancel`, driving each in its own
/// task ([`drive_within`] `session_timeout`) and sending the outcome on
/// `sessions`. Only a peer `expected` says the proxy waits for is served,
/// at most [`SESSIONS_PER_PEER`] at once from one address and
/// `sessions_max` in all; others are closed at once and counted.
///
/// A refused session costs its switch the proxy's whole wait for it, so
/// `sessions_max` should hold every session the expected peers can open:
/// the most addresses `expected` can say yes to at once, times
/// [`SESSIONS_PER_PEER`].
pub async fn listen(
    listener: TcpListener,
    session_timeout: Duration,
    sessions_max: usize,
    expected: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    stats: Arc<TelnetStats>,
    sessions: mpsc::Sender<Session>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(sessions_max));
    let per_peer: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("telnet listener: accept: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if !expected(peer.ip()) {
            stats.unexpected.inc();
            tracing::debug!(
                "reverse telnet from {peer}, which no identification waits for: closed"
            );
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.busy.inc();
            continue;
        };
        {
            let mut open = per_peer.lock().unwrap_or_else(PoisonError::into_inner);
            let n = open.entry(peer.ip()).or_default();
            if *n >= SESSIONS_PER_PEER {
                stats.busy.inc();
                continue;
            }
            *n += 1;
        }
        let sessions = sessions.clone();
        let per_peer = per_peer.clone();
        let client = crate::logging::peer(peer.ip());
        let session = async move {
            let result = drive_within(stream, session_timeout).await;
            {
                let mut open = per_peer.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(n) = open.get_mut(&peer.ip()) {
                    *n -= 1;
                    if *n == 0 {
                        open.remove(&peer.ip());
                    }
                }
            }
            drop(slot);
            if let Err(e) = &result {
                tracing::warn!("reverse telnet: {e}");
            }
            let _ = sessions.send(Session { peer, result }).await;
        };
        tokio::spawn(session.instrument(client));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn strips_negotiation_and_refuses_it() {
        let mut out = Vec::new();
        let mut reply = Vec::new();
        let input = [
            b'a', IAC, DO, 1, IAC, WILL, 3, IAC, IAC, IAC, SB, 24, 1, IAC, SE, b'b', IAC,
        ];
        let mut decoder = TelnetDecoder::default();
        decoder.feed(&input, &mut out, &mut reply).unwrap();
        assert_eq!(out, [b'a', IAC, b'b']);
        assert_eq!(reply, [IAC, WONT, 1, IAC, DONT, 3]);
        // The lone IAC at the end is carried over to the next read.
        decoder.feed(&[IAC, b'c'], &mut out, &mut reply).unwrap();
        assert_eq!(out, [b'a', IAC, b'b', IAC, b'c']);
    }

    #[test]
    fn an_endless_subnegotiation_is_refused_not_buffered() {
        let mut decoder = TelnetDecoder::default();
        let (mut out, mut reply) = (Vec::new(), Vec::new());
        decoder.feed(&[IAC, SB], &mut out, &mut reply).unwrap();
        let chunk = [0u8; SUBNEGOTIATION_MAX - 1];
        decoder.feed(&chunk, &mut out, &mut reply).unwrap();
        assert!(matches!(
            decoder.feed(&[0, 0], &mut out, &mut reply),
            Err(TelnetError::Subnegotiation(SUBNEGOTIATION_MAX))
        ));
        assert!(out.is_empty() && reply.is_empty());
    }

    #[test]
    fn prompt_detection() {
        assert!(ends_with_prompt(b"\r\nSwitch#"));
        assert!(ends_with_prompt(b"Switch>"));
        assert!(!ends_with_prompt(b"Switch#\r\n"));
        assert!(!ends_with_prompt(b"\r\n#"));
        assert!(!ends_with_prompt(b"  Version ID : V01 #"));
        let mut long = vec![b'x'; 10_000];
        long.extend_from_slice(b"\r\nSwitch#");
        assert!(ends_with_prompt(&long));
        assert!(!ends_with_prompt(&[b'x'; 200]));
        let host = [b'h'; 64];
        assert!(ends_with_prompt(&[&b"\r\n"[..], &host, b"#"].concat()));
        assert!(!ends_with_prompt(&[&b"\r\n"[..], &host, b"h#"].concat()));
    }

    #[tokio::test]
    async fn drives_a_modelled_client() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/show-version/ws-c3750x-24p-l.txt"
        ))
        .unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&[IAC, WILL, 1]).await.unwrap();
            s.write_all(b"\r\nR5#").await.unwrap();
            let mut buf = vec![0u8; 1024];
            let mut seen = Vec::new();
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                let s_text = String::from_utf8_lossy(&seen).to_string();
                if s_text.ends_with("terminal length 0\r\n") {
                    s.write_all(b"\r\nR5#").await.unwrap();
                } else if s_text.ends_with("show version\r\n") {
                    s.write_all(text.replace('\n', "\r\n").as_bytes())
                        .await
                        .unwrap();
                    s.write_all(b"\r\nR5#").await.unwrap();
                } else if s_text.ends_with("exit\r\n") {
                    break;
                }
            }
            seen
        });
        let (stream, _) = l.accept().await.unwrap();
        let sv = drive(stream, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            sv.udi().unwrap().to_string(),
            "PID:WS-C3750X-24P-L,VID:V07,SN:FDO2028F1WK"
        );
        let seen = client.await.unwrap();
        assert_eq!(&seen[..3], &[IAC, DONT, 1]);
    }

    #[tokio::test]
    async fn a_dribbling_client_is_cut_at_the_session_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // A byte every 50 ms: each step sees progress, no prompt ever.
            for _ in 0..40 {
                if s.write_all(b".").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (stream, _) = l.accept().await.unwrap();
        let r = drive_within(stream, Duration::from_millis(300)).await;
        assert!(
            matches!(r, Err(TelnetError::SessionTimeout(t)) if t == Duration::from_millis(300)),
            "{r:?}"
        );
        client.abort();
    }

    #[tokio::test]
    async fn the_listener_serves_only_expected_peers() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(TelnetStats::default());
        let (tx, mut rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let expected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = expected.clone();
        let task = tokio::spawn(listen(
            l,
            Duration::from_secs(5),
            8,
            move |_| flag.load(Ordering::Relaxed),
            stats.clone(),
            tx,
            cancel.clone(),
        ));
        // Not expected: closed at once, counted, no session.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).await.unwrap_or(0), 0);
        assert_eq!(stats.unexpected.get(), 1);
        // Expected: served (it closes at once, so the session fails).
        expected.store(true, Ordering::Relaxed);
        drop(TcpStream::connect(addr).await.unwrap());
        let session = rx.recv().await.expect("a session");
        assert!(
            matches!(session.result, Err(TelnetError::Closed(_))),
            "{session:?}"
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_listener_refuses_sessions_over_its_cap() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(TelnetStats::default());
        let (tx, _rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(listen(
            l,
            Duration::from_secs(5),
            1,
            |_| true,
            stats.clone(),
            tx,
            cancel.clone(),
        ));
        // The first session is served, and stays open while the proxy
        // waits for the switch's prompt.
        let _first = TcpStream::connect(addr).await.unwrap();
        // The second, within the per-peer cap but over `sessions_max`, is
        // closed at once and counted.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(second.read(&mut buf).await.unwrap_or(0), 0);
        assert_eq!(stats.busy.get(), 1);
        assert_eq!(stats.unexpected.get(), 0);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn silent_client_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = l.accept().await.unwrap();
        let r = drive(stream, Duration::from_millis(200)).await;
        assert!(
            matches!(r, Err(TelnetError::Timeout(_, "the first prompt"))),
            "{r:?}"
        );
    }
}
