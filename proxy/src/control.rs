//! The local control socket: how `smi-proxy show|config|debug` reach the
//! running daemon.
//!
//! A Unix stream socket, mode 0600, peers checked to be root or the
//! daemon's own user. One request per connection: the client writes one
//! JSON object and a line feed (at most [`REQUEST_MAX`] bytes), the server
//! answers one [`ControlResponse`] line and closes. Requests:
//!
//! ```text
//! {"show":{"command":"proxy-db detail","json":false}}
//! {"config":{"line":"vstack startup-vlan 10"}}
//! {"debug":{"target":"smi-proxy","on":true}}
//! "clients"
//! ```
//!
//! Answers: `{"ok":true,"text":"..."}`; `ok` false means refused, with
//! the reason (IOS style, `% ...`) in `text`.
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::show::{self, ShowCommand, ShowView};

/// Largest request accepted, in bytes (line feed included).
pub const REQUEST_MAX: usize = 64 * 1024;
/// Largest response the client reads, in bytes.
pub const RESPONSE_MAX: usize = 64 * 1024 * 1024;
/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the server has to write its answer, and the client to get it.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are answered "busy".
pub const MAX_CONNECTIONS: usize = 16;
/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A request to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    /// `show vstack ...`.
    Show {
        /// Which show command.
        #[serde(with = "show_command_words")]
        command: ShowCommand,
        /// JSON instead of IOS text.
        json: bool,
    },
    /// One IOS configuration line (`vstack ...`).
    Config {
        /// The line.
        line: String,
    },
    /// `[no] debug vstack <target>`.
    Debug {
        /// The switch name (`smi-proxy`).
        target: String,
        /// On (`debug`) or off (`no debug`).
        on: bool,
    },
    /// The dataplane's client table.
    Clients,
    /// `show debugging`: the debug switches that are on.
    Debugging,
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResponse {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The output, or why it was refused.
    pub text: String,
}

impl ControlResponse {
    /// A success carrying `text`.
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
        }
    }

    /// A refusal carrying `text`.
    pub fn refused(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
        }
    }
}

/// What the daemon offers the control socket. Methods are called on a
/// blocking-pool thread and may take locks; they should not wait long.
pub trait ControlHandler: Send + Sync {
    /// The current state, for `show vstack ...`.
    fn show_view(&self) -> ShowView;
    /// Applies one IOS configuration line; `Ok` is the confirmation,
    /// `Err` the refusal (e.g. from [`crate::config::execute`]).
    fn apply_config(&self, line: &str) -> Result<String, String>;
    /// `[no] debug vstack <target>` (e.g. [`crate::logging::set_debug`]).
    fn set_debug(&self, target: &str, on: bool) -> Result<String, String>;
    /// The client table as text; by default not offered.
    fn clients(&self) -> Result<String, String> {
        Err("% The client table is not available from the daemon; use `smi-proxy clients`".into())
    }
}

/// Why the control socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be set up.
    #[error("control socket {}: {what}: {source}", path.display())]
    Setup {
        /// The socket path.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
    /// Another daemon answers on the path.
    #[error("control socket {}: another daemon is listening there", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error("control socket {}: the path exists and is not a socket", path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// The daemon could not be reached.
    #[error("cannot reach the daemon at {} (is smi-proxy running?): {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The exchange failed after connecting.
    #[error("control socket {}: {what}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
    /// The daemon did not answer in time.
    #[error("control socket {}: no answer within {} s", path.display(), RESPONSE_TIMEOUT.as_secs())]
    Timeout {
        /// The socket path.
        path: PathBuf,
    },
    /// The answer is not a response line.
    #[error("control socket {}: malformed answer: {reason}", path.display())]
    BadResponse {
        /// The socket path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(#[from] serde_json::Error),
    /// The request is larger than [`REQUEST_MAX`].
    #[error("the request is {0} bytes long, more than the {REQUEST_MAX} the daemon accepts")]
    TooLarge(usize),
}

/// A bound control socket, not yet serving.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    request_timeout: Duration,
}

impl ControlServer {
    /// Binds `path` with mode 0600: creates the parent directory if needed,
    /// replaces a stale socket, refuses if a daemon answers there or a
    /// non-socket is in the way. The socket is bound under a temporary name
    /// and renamed into place once its mode is set.
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        let setup = |what| {
            let path = path.to_owned();
            move |source| ControlError::Setup { path, what, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(setup("create directory"))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path).await {
                Ok(_) => {
                    return Err(ControlError::InUse {
                        path: path.to_owned(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(setup("remove stale socket"))?;
                }
                Err(e) => return Err(setup("probe existing socket")(e)),
            },
            Ok(_) => {
                return Err(ControlError::NotASocket {
                    path: path.to_owned(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(setup("inspect path")(e)),
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(setup("bind"))?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(setup("set mode 0600"))
            .and_then(|()| std::fs::rename(&tmp, path).map_err(setup("rename into place")));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Self {
            listener,
            path: path.to_owned(),
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// Sets the time a client has to send its request (default
    /// [`REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests until `cancel`, then waits for the connections in
    /// progress and removes the socket.
    pub async fn run(self, handler: Arc<dyn ControlHandler>, cancel: CancellationToken) {
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("control socket {}: accept: {e}", self.path.display());
                    // Out of descriptors, typically: give others a moment.
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            };
            let handler = Arc::clone(&handler);
            let slot = Arc::clone(&slots).try_acquire_owned();
            let timeout = self.request_timeout;
            tracker.spawn(async move {
                let response = match slot {
                    Ok(_slot) => serve_one(stream, handler, timeout).await,
                    Err(_) => {
                        reply(
                            stream,
                            &ControlResponse::refused("% Too many control connections; try again"),
                        )
                        .await
                    }
                };
                if let Err(e) = response {
                    tracing::debug!("control connection: {e}");
                }
            });
        }
        tracker.close();
        tracker.wait().await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// [`ControlServer::bind`] then [`ControlServer::run`].
pub async fn serve(
    path: &Path,
    handler: Arc<dyn ControlHandler>,
    cancel: CancellationToken,
) -> Result<(), ControlError> {
    ControlServer::bind(path).await?.run(handler, cancel).await;
    Ok(())
}

/// Reads one request from `stream`, answers it.
async fn serve_one(
    mut stream: UnixStream,
    handler: Arc<dyn ControlHandler>,
    timeout: Duration,
) -> std::io::Result<()> {
    let response = match peer_allowed(&stream) {
        Err(text) => ControlResponse::refused(text),
        Ok(()) => match tokio::time::timeout(timeout, read_request(&mut stream)).await {
            Err(_) => ControlResponse::refused("% No request within the time allowed"),
            Ok(Err(text)) => ControlResponse::refused(text),
            Ok(Ok(request)) => {
                match tokio::task::spawn_blocking(move || handle(&*handler, request)).await {
                    Ok(response) => response,
                    Err(e) => ControlResponse::refused(format!("% Internal error: {e}")),
                }
            }
        },
    };
    reply(stream, &response).await
}

/// Root and the daemon's own user may talk to it.
fn peer_allowed(stream: &UnixStream) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("% Cannot identify the peer: {e}"))?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() == 0 || cred.uid() == me {
        Ok(())
    } else {
        Err(format!("% User {} may not control this daemon", cred.uid()))
    }
}

async fn read_request(stream: &mut UnixStream) -> Result<ControlRequest, String> {
    let limit = u64::try_from(REQUEST_MAX).unwrap_or(u64::MAX);
    let mut reader = BufReader::new(stream.take(limit));
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("% Cannot read the request: {e}"))?;
    if line.len() >= REQUEST_MAX && line.last() != Some(&b'\n') {
        return Err(format!("% Request larger than {REQUEST_MAX} bytes"));
    }
    serde_json::from_slice(&line).map_err(|e| format!("% Malformed request: {e}"))
}

/// Writes `response` as one line, then closes the writing side.
async fn reply(mut stream: UnixStream, response: &ControlResponse) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(response)?;
    bytes.push(b'\n');
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(RESPONSE_TIMEOUT, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client did not read"))?
}

/// Carries out `request` with `handler`.
pub fn handle(handler: &dyn ControlHandler, request: ControlRequest) -> ControlResponse {
    let result = match request {
        ControlRequest::Show { command, json } => {
            let view = handler.show_view();
            if json {
                show::render_json(command, &view)
                    .map(|mut text| {
                        text.push('\n');
                        text
                    })
                    .map_err(|e| format!("% {e}"))
            } else {
                Ok(show::render(command, &view))
            }
        }
        ControlRequest::Config { line } => handler.apply_config(&line),
        ControlRequest::Debugging => Ok(crate::logging::show_debugging()),
        ControlRequest::Debug { target, on } => handler.set_debug(&target, on),
        ControlRequest::Clients => handler.clients(),
    };
    match result {
        Ok(text) => ControlResponse::ok(text),
        Err(text) => ControlResponse::refused(text),
    }
}

/// Sends `request` to the daemon at `path` and returns its answer.
pub async fn request(
    path: &Path,
    request: &ControlRequest,
) -> Result<ControlResponse, ControlError> {
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    if line.len() > REQUEST_MAX {
        return Err(ControlError::TooLarge(line.len()));
    }
    let io = |what| {
        let path = path.to_owned();
        move |source| ControlError::Io { path, what, source }
    };
    let exchange = async {
        let mut stream =
            UnixStream::connect(path)
                .await
                .map_err(|source| ControlError::Connect {
                    path: path.to_owned(),
                    source,
                })?;
        stream.write_all(&line).await.map_err(io("send"))?;
        stream.shutdown().await.map_err(io("send"))?;
        read_answer(&mut stream).await.map_err(io("receive"))
    };
    let answer = tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout {
            path: path.to_owned(),
        })??;
    let bad = |reason: String| ControlError::BadResponse {
        path: path.to_owned(),
        reason,
    };
    if answer.is_empty() {
        return Err(bad(
            "the daemon closed the connection without answering".into()
        ));
    }
    if answer.last() != Some(&b'\n') {
        return Err(bad("the answer is truncated".into()));
    }
    serde_json::from_slice(&answer).map_err(|e| bad(e.to_string()))
}

/// Reads the answer up to end of file (at most [`RESPONSE_MAX`] bytes). A
/// reset after a complete line still counts: the server may close with
/// part of an oversized request unread, which resets the connection.
async fn read_answer(stream: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => return Ok(answer),
            Ok(n) => {
                answer.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if answer.len() > RESPONSE_MAX {
                    return Err(std::io::Error::other(format!(
                        "answer larger than {RESPONSE_MAX} bytes"
                    )));
                }
            }
            Err(e) if answer.ends_with(b"\n") => {
                tracing::debug!("control answer complete before: {e}");
                return Ok(answer);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `ShowCommand` on the wire: the words after `show vstack`.
mod show_command_words {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::config::{parse_show, show_words};
    use crate::show::ShowCommand;

    pub fn serialize<S: Serializer>(command: &ShowCommand, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(show_words(*command))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ShowCommand, D::Error> {
        let words = String::deserialize(d)?;
        let list: Vec<&str> = words.split_whitespace().collect();
        parse_show(&list).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::show::ProxyConfig as ShowConfig;

    /// A handler whose `show_view` can be held until the test lets go.
    struct Fake {
        enabled: Mutex<bool>,
        hold: Option<Hold>,
    }

    struct Hold {
        entered: Arc<tokio::sync::Notify>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Fake {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                enabled: Mutex::new(true),
                hold: None,
            })
        }
    }

    impl ControlHandler for Fake {
        fn show_view(&self) -> ShowView {
            if let Some(hold) = &self.hold {
                hold.entered.notify_one();
                if let Ok(release) = hold.release.lock() {
                    let _ = release.recv();
                }
            }
            ShowView {
                config: ShowConfig {
                    enabled: self.enabled.lock().map(|e| *e).unwrap_or(false),
                    proxy_ip: std::net::Ipv4Addr::new(4, 1, 1, 1),
                    default_vlan: 1,
                    startup_vlan: 1,
                    management_vlans: vec![1],
                },
                clients: vec![],
            }
        }
        fn apply_config(&self, line: &str) -> Result<String, String> {
            match line {
                "no vstack" => {
                    if let Ok(mut e) = self.enabled.lock() {
                        *e = false;
                    }
                    Ok("vstack: enabled -> disabled\n".into())
                }
                other => Err(format!("% refused {other}")),
            }
        }
        fn set_debug(&self, target: &str, on: bool) -> Result<String, String> {
            Ok(crate::logging::confirmation(target, on))
        }
    }

    fn socket_path(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir()
            .join(format!(
                "smi-proxy-ctl-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ))
            .join(format!("{tag}.sock"))
    }

    struct Running {
        path: PathBuf,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        async fn start(tag: &str, handler: Arc<dyn ControlHandler>) -> Result<Self, ControlError> {
            Self::start_with(tag, handler, REQUEST_TIMEOUT).await
        }

        async fn start_with(
            tag: &str,
            handler: Arc<dyn ControlHandler>,
            timeout: Duration,
        ) -> Result<Self, ControlError> {
            let path = socket_path(tag);
            let server = ControlServer::bind(&path)
                .await?
                .with_request_timeout(timeout);
            let cancel = CancellationToken::new();
            let task = tokio::spawn(server.run(handler, cancel.clone()));
            Ok(Self { path, cancel, task })
        }

        async fn stop(self) {
            self.cancel.cancel();
            let _ = self.task.await;
            assert!(!self.path.exists(), "socket left behind");
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn requests_round_trip() -> TestResult {
        let fake = Fake::new();
        let server = Running::start("rt", fake.clone()).await?;
        let mode = std::fs::metadata(&server.path)?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let show = |json| ControlRequest::Show {
            command: ShowCommand::Config,
            json,
        };
        let r = request(&server.path, &show(false)).await?;
        assert!(r.ok);
        assert!(r.text.starts_with("Role: SMI PnP Proxy\n"), "{}", r.text);
        let r = request(&server.path, &show(true)).await?;
        let value: serde_json::Value = serde_json::from_str(&r.text)?;
        assert_eq!(value["proxy_ip"], "4.1.1.1");

        let config = |line: &str| ControlRequest::Config { line: line.into() };
        let r = request(&server.path, &config("no vstack")).await?;
        assert_eq!(r, ControlResponse::ok("vstack: enabled -> disabled\n"));
        let r = request(&server.path, &config("vstack basic")).await?;
        assert_eq!(r, ControlResponse::refused("% refused vstack basic"));
        let r = request(
            &server.path,
            &ControlRequest::Show {
                command: ShowCommand::ProxyDb,
                json: false,
            },
        )
        .await?;
        assert_eq!(r.text, "Smi PnP Proxy:      DISABLED\n");

        let r = request(
            &server.path,
            &ControlRequest::Debug {
                target: "smi-proxy".into(),
                on: false,
            },
        )
        .await?;
        assert_eq!(r.text, "Vstack smi-proxy debugging is off\n");
        let r = request(&server.path, &ControlRequest::Clients).await?;
        assert!(!r.ok);
        server.stop().await;
        Ok(())
    }

    #[test]
    fn requests_have_a_readable_wire_form() -> TestResult {
        let req = ControlRequest::Show {
            command: ShowCommand::ProxyDbDetail,
            json: false,
        };
        let text = serde_json::to_string(&req)?;
        assert_eq!(
            text,
            r#"{"show":{"command":"proxy-db detail","json":false}}"#
        );
        assert_eq!(serde_json::from_str::<ControlRequest>(&text)?, req);
        assert_eq!(
            serde_json::to_string(&ControlRequest::Clients)?,
            r#""clients""#
        );
        assert_eq!(
            serde_json::to_string(&ControlRequest::Debug {
                target: "smi-proxy".into(),
                on: true
            })?,
            r#"{"debug":{"target":"smi-proxy","on":true}}"#
        );
        assert!(
            serde_json::from_str::<ControlRequest>(r#"{"show":{"command":"bogus","json":false}}"#)
                .is_err()
        );
        Ok(())
    }

    /// Sends raw bytes, returns the raw answer.
    async fn raw(path: &Path, bytes: &[u8], close: bool) -> std::io::Result<ControlResponse> {
        let mut s = UnixStream::connect(path).await?;
        s.write_all(bytes).await?;
        if close {
            s.shutdown().await?;
        }
        let answer = read_answer(&mut s).await?;
        serde_json::from_slice(&answer).map_err(std::io::Error::other)
    }

    #[tokio::test]
    async fn bad_requests_are_answered_not_fatal() -> TestResult {
        let server = Running::start("bad", Fake::new()).await?;
        let r = raw(&server.path, b"{not json}\n", false).await?;
        assert!(
            !r.ok && r.text.starts_with("% Malformed request"),
            "{}",
            r.text
        );
        let r = raw(&server.path, br#"{"reboot":{}}"#, true).await?;
        assert!(
            !r.ok && r.text.starts_with("% Malformed request"),
            "{}",
            r.text
        );
        let big = vec![b' '; REQUEST_MAX + 10];
        let r = raw(&server.path, &big, false).await?;
        assert_eq!(r.text, format!("% Request larger than {REQUEST_MAX} bytes"));
        // Still serving.
        let ok = request(
            &server.path,
            &ControlRequest::Config {
                line: "no vstack".into(),
            },
        )
        .await?;
        assert!(ok.ok);
        let huge = ControlRequest::Config {
            line: "x".repeat(REQUEST_MAX),
        };
        assert!(matches!(
            request(&server.path, &huge).await,
            Err(ControlError::TooLarge(_))
        ));
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_silent_client_times_out() -> TestResult {
        let server = Running::start_with("silent", Fake::new(), Duration::from_millis(50)).await?;
        let mut s = UnixStream::connect(&server.path).await?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await?;
        let r: ControlResponse = serde_json::from_slice(&answer)?;
        assert_eq!(r.text, "% No request within the time allowed");
        server.stop().await;
        Ok(())
    }

    #[tokio::test]
    async fn binding_replaces_stale_sockets_and_refuses_live_ones() -> TestResult {
        let path = socket_path("stale");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A stale socket: bound, then its listener dropped.
        drop(std::os::unix::net::UnixListener::bind(&path)?);
        let server = ControlServer::bind(&path).await?;
        assert!(matches!(
            ControlServer::bind(&path).await,
            Err(ControlError::InUse { .. })
        ));
        drop(server);
        std::fs::remove_file(&path)?;
        std::fs::write(&path, b"not a socket")?;
        assert!(matches!(
            ControlServer::bind(&path).await,
            Err(ControlError::NotASocket { .. })
        ));
        std::fs::remove_file(&path)?;
        if let Some(dir) = path.parent() {
            std::fs::remove_dir(dir)?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn an_absent_daemon_is_reported() {
        let path = socket_path("absent");
        match request(&path, &ControlRequest::Clients).await {
            Err(e @ ControlError::Connect { .. }) => {
                assert!(e.to_string().contains("is smi-proxy running?"), "{e}")
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_waits_for_requests_in_progress() -> TestResult {
        let entered = Arc::new(tokio::sync::Notify::new());
        let (release, release_rx) = std::sync::mpsc::channel();
        let fake = Arc::new(Fake {
            enabled: Mutex::new(true),
            hold: Some(Hold {
                entered: Arc::clone(&entered),
                release: Mutex::new(release_rx),
            }),
        });
        let server = Running::start("drain", fake).await?;
        let path = server.path.clone();
        let pending = tokio::spawn(async move {
            request(
                &path,
                &ControlRequest::Show {
                    command: ShowCommand::Config,
                    json: false,
                },
            )
            .await
        });
        // Cancel while the handler holds the request, then let it finish.
        entered.notified().await;
        server.cancel.cancel();
        release.send(())?;
        let answer = pending.await??;
        assert!(answer.ok);
        server.stop().await;
        Ok(())
    }
}
