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
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

/// Removes telnet commands from `input`, appending the data bytes to `out`
/// and the refusals the peer's negotiation calls for to `reply`.
/// Returns how many bytes of `input` were consumed (an incomplete command
/// at the end is left for the next read).
pub fn strip_telnet(input: &[u8], out: &mut Vec<u8>, reply: &mut Vec<u8>) -> usize {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != IAC {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&cmd) = input.get(i + 1) else {
            return i;
        };
        match cmd {
            IAC => {
                out.push(IAC);
                i += 2;
            }
            DO | DONT | WILL | WONT => {
                let Some(&opt) = input.get(i + 2) else {
                    return i;
                };
                match cmd {
                    DO => reply.extend_from_slice(&[IAC, WONT, opt]),
                    WILL => reply.extend_from_slice(&[IAC, DONT, opt]),
                    _ => {}
                }
                i += 3;
            }
            SB => {
                // Skip to IAC SE; wait for more if it is not here yet.
                match input[i + 2..].windows(2).position(|w| w == [IAC, SE]) {
                    Some(p) => i += 2 + p + 2,
                    None => return i,
                }
            }
            _ => i += 2,
        }
    }
    i
}

/// Whether `buf` ends with an IOS exec prompt (`host#` or `host>` alone on
/// its line, nothing after it).
pub fn ends_with_prompt(buf: &[u8]) -> bool {
    let last = match buf.iter().rposition(|&b| b == b'\n' || b == b'\r') {
        Some(p) => &buf[p + 1..],
        None => buf,
    };
    let Some((&end, host)) = last.split_last() else {
        return false;
    };
    (end == b'#' || end == b'>')
        && !host.is_empty()
        && host.len() <= 64
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'(' | b')'))
}

/// One CLI conversation over an accepted connection.
struct Cli {
    stream: TcpStream,
    raw: Vec<u8>,
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
            self.raw.extend_from_slice(&chunk[..n]);
            let mut reply = Vec::new();
            let used = strip_telnet(&self.raw, &mut self.data, &mut reply);
            self.raw.drain(..used);
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
        raw: Vec::new(),
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

/// Accepts reverse-telnet sessions until `cancel`, driving each in its own
/// task ([`drive_within`] `session_timeout`) and sending the outcome on
/// `sessions`.
pub async fn listen(
    listener: TcpListener,
    session_timeout: Duration,
    sessions: mpsc::Sender<Session>,
    cancel: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("telnet listener: accept: {e}");
                    continue;
                }
            },
        };
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let result = drive_within(stream, session_timeout).await;
            if let Err(e) = &result {
                log::warn!("reverse telnet from {peer}: {e}");
            }
            let _ = sessions.send(Session { peer, result }).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_negotiation_and_refuses_it() {
        let mut out = Vec::new();
        let mut reply = Vec::new();
        let input = [
            b'a', IAC, DO, 1, IAC, WILL, 3, IAC, IAC, IAC, SB, 24, 1, IAC, SE, b'b', IAC,
        ];
        let used = strip_telnet(&input, &mut out, &mut reply);
        assert_eq!(out, [b'a', IAC, b'b']);
        assert_eq!(reply, [IAC, WONT, 1, IAC, DONT, 3]);
        assert_eq!(used, input.len() - 1, "a lone IAC waits for the next read");
    }

    #[test]
    fn prompt_detection() {
        assert!(ends_with_prompt(b"\r\nSwitch#"));
        assert!(ends_with_prompt(b"Switch>"));
        assert!(!ends_with_prompt(b"Switch#\r\n"));
        assert!(!ends_with_prompt(b"\r\n#"));
        assert!(!ends_with_prompt(b"  Version ID : V01 #"));
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
