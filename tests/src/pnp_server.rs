//! A small real PnP server (HTTP or HTTPS on hyper), the peer of the proxy's
//! PnP agent in end-to-end tests and the lab. It is a test peer, not the
//! product: scripted, forgetful, and chatty in its log.
//!
//! - `GET /pnp/HELLO` answers 200 with an empty body (other methods 405).
//! - `POST /pnp/WORK-REQUEST` answers with the next [`Step`] of the
//!   requesting UDI's [`Script`] (the default script for UDIs without one,
//!   each UDI with its own position); a finished script answers `bye`.
//! - `POST /pnp/WORK-RESPONSE` records the response or fault and answers
//!   `bye` echoing the response's correlator.
//! - `GET /configs/<name>` and `GET /images/<name>` serve files registered
//!   with [`PnpServer::add_config`] and [`PnpServer::add_image`].
//!
//! Everything received is kept in a log ([`PnpServer::log`], per UDI;
//! [`PnpServer::wait_for`] waits for a condition on it). [`WireOptions`]
//! switch to openpnpy's prefixed namespace form and to the alternative
//! spellings seen in the wild; [`PnpServer::stop_answering`] makes the
//! server drop connections for a while, and [`PnpServer::stop_listening`]
//! closes its listening socket (connects are refused) until
//! [`PnpServer::listen_again`]. [`PnpServer::push_raw_answer`] answers a
//! UDI's next work-request with any bytes (hostile XML for fault tests).
//!
//! The server reads and writes PnP XML with its own [`wire`] code, written
//! from the protocol document, never with the proxy's codec: a peer that
//! shares the product's codec cannot catch the product's encoding bugs.
//! [`PnpServer::set_redeliver_unanswered`] keeps a job outstanding until its
//! work-response (or a fault) arrives and sends it again meanwhile, as a
//! server that tracks its jobs does when an agent restarts mid-job.
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest as _, Md5};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub mod wire;

use wire::{AgentBody, BackoffAction, Envelope, Job, Reload};
pub use wire::{
    ApplyTo, DeviceInfoReply, DeviceInfoType, ErrorInfo, Fault, Response, ResponseBody, Service,
    Udi, UdiError, WireOptions, WorkRequest,
};

/// One step of a script: what the server answers one work-request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A device-info request of this type.
    DeviceInfo(DeviceInfoType),
    /// A config-upgrade of `/configs/<file>` (with its MD5 when registered).
    ConfigUpgrade {
        /// `startup` or `running`.
        apply_to: ApplyTo,
        /// File name under `/configs/`.
        file: String,
        /// `<reload>` (true) or `<noReload/>` (false).
        reload: bool,
    },
    /// An image-install of `/images/<file>` to `flash:<file>`, with reload.
    ImageInstall {
        /// File name under `/images/`.
        file: String,
        /// Checksum to send; `None` sends the registered image's MD5.
        md5: Option<String>,
    },
    /// A capability request.
    Capability,
    /// A topology request.
    Topology,
    /// A backoff with `callbackAfter` this many seconds.
    Backoff {
        /// Seconds to wait.
        secs: u64,
    },
    /// A backoff with `defaultMinutes`.
    DefaultMinutes(u32),
    /// A backoff with `terminate`.
    Terminate,
    /// A request in namespace `urn:cisco:pnp:<service>` (e.g. `cli-exec`).
    Unsupported {
        /// The service name.
        service: String,
    },
    /// `bye` and nothing else.
    Bye,
}

/// Why a step or script text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The step's name is unknown.
    #[error(
        "unknown step {0:?} (known: device-info[:type], config:<startup|running>:<file>[:reload], \
         image:<file>[:<md5>], capability, topology, backoff:<secs>, default-minutes:<m>, \
         terminate, unsupported:<service>, bye)"
    )]
    UnknownStep(String),
    /// A step lacks an argument or has a bad one.
    #[error("step {step:?}: {reason}")]
    BadArgument {
        /// The step as written.
        step: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A per-UDI script is not `<UDI>=<steps>`.
    #[error("per-UDI script {0:?} is not <UDI>=<steps>")]
    NotUdiScript(String),
    /// Its UDI is malformed.
    #[error("per-UDI script: {0}")]
    BadUdi(#[from] UdiError),
}

impl FromStr for Step {
    type Err = ScriptError;

    /// Parses one step: `device-info[:type]`,
    /// `config:<startup|running>:<file>[:reload]`, `image:<file>[:<md5>]`,
    /// `capability`, `topology`, `backoff:<secs>`, `default-minutes:<m>`,
    /// `terminate`, `unsupported:<service>` or `bye`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let parts: Vec<&str> = text.split(':').collect();
        let bad = |reason| ScriptError::BadArgument {
            step: text.to_owned(),
            reason,
        };
        let number = |s: Option<&&str>| -> Result<u64, ScriptError> {
            s.and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("needs a number"))
        };
        Ok(match parts.as_slice() {
            ["device-info"] => Step::DeviceInfo(DeviceInfoType::All),
            ["device-info", kind] => Step::DeviceInfo(DeviceInfoType::from_name(kind)),
            ["config", target, file, rest @ ..] if !file.is_empty() => Step::ConfigUpgrade {
                apply_to: ApplyTo::from_name(target),
                file: (*file).to_owned(),
                reload: match rest {
                    [] => false,
                    ["reload"] => true,
                    _ => return Err(bad("only `reload` may follow the file")),
                },
            },
            ["config", ..] => return Err(bad("needs <startup|running>:<file>")),
            ["image", file] if !file.is_empty() => Step::ImageInstall {
                file: (*file).to_owned(),
                md5: None,
            },
            ["image", file, md5] if !file.is_empty() => Step::ImageInstall {
                file: (*file).to_owned(),
                md5: Some((*md5).to_owned()),
            },
            ["image", ..] => return Err(bad("needs <file>[:<md5>]")),
            ["capability"] => Step::Capability,
            ["topology"] => Step::Topology,
            ["backoff", ..] => Step::Backoff {
                secs: number(parts.get(1))?,
            },
            ["default-minutes", ..] => Step::DefaultMinutes(
                u32::try_from(number(parts.get(1))?).map_err(|_| bad("too many minutes"))?,
            ),
            ["terminate"] => Step::Terminate,
            ["unsupported", service] if !service.is_empty() => Step::Unsupported {
                service: (*service).to_owned(),
            },
            ["unsupported", ..] => return Err(bad("needs a service name")),
            ["bye"] => Step::Bye,
            _ => return Err(ScriptError::UnknownStep(text.to_owned())),
        })
    }
}

/// The steps answered to one UDI's work-requests, in order; then `bye`
/// forever, or the steps again if `repeat`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    /// The steps.
    pub steps: Vec<Step>,
    /// Start over after the last step.
    pub repeat: bool,
}

impl Script {
    /// The steps once, then `bye`.
    pub fn new(steps: impl Into<Vec<Step>>) -> Self {
        Self {
            steps: steps.into(),
            repeat: false,
        }
    }

    /// The steps over and over.
    pub fn repeating(steps: impl Into<Vec<Step>>) -> Self {
        Self {
            steps: steps.into(),
            repeat: true,
        }
    }
}

impl FromStr for Script {
    type Err = ScriptError;

    /// Comma-separated steps (see [`Step::from_str`]); a final `repeat`
    /// makes the script start over. The empty text is the empty script.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut steps: Vec<&str> = text.split(',').map(str::trim).collect();
        steps.retain(|s| !s.is_empty());
        let repeat = steps.last() == Some(&"repeat");
        if repeat {
            steps.pop();
        }
        Ok(Self {
            steps: steps
                .into_iter()
                .map(str::parse)
                .collect::<Result<_, _>>()?,
            repeat,
        })
    }
}

/// Parses `<UDI>=<steps>` (the UDI may not hold `=`; steps never do).
pub fn parse_udi_script(text: &str) -> Result<(Udi, Script), ScriptError> {
    let (udi, steps) = text
        .rsplit_once('=')
        .ok_or_else(|| ScriptError::NotUdiScript(text.to_owned()))?;
    Ok((udi.trim().parse()?, steps.parse()?))
}

/// What the server received (see [`LogEntry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A work-request.
    WorkRequest(WorkRequest),
    /// A job's response.
    Response(Response),
    /// A fault.
    Fault(Fault),
    /// A body the server's parser refused, or a message on the wrong endpoint.
    Unparsable {
        /// Endpoint path.
        path: String,
        /// Why.
        error: String,
    },
    /// A file download (`/configs/…` or `/images/…`).
    Download {
        /// The path asked for.
        path: String,
        /// Whether the file exists.
        found: bool,
    },
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// When it arrived.
    pub at: Instant,
    /// The UDI it came from (`None` for unparsable bodies and downloads).
    pub udi: Option<Udi>,
    /// The `sid` on its envelope.
    pub sid: Option<String>,
    /// What it was.
    pub received: Received,
}

impl LogEntry {
    /// The response, if this is one.
    pub fn response(&self) -> Option<&Response> {
        match &self.received {
            Received::Response(r) => Some(r),
            _ => None,
        }
    }

    /// The work-request, if this is one.
    pub fn work_request(&self) -> Option<&WorkRequest> {
        match &self.received {
            Received::WorkRequest(w) => Some(w),
            _ => None,
        }
    }
}

/// How to start a [`PnpServer`].
#[derive(Clone, Debug)]
pub struct PnpServerConfig {
    /// Address to listen on (port 0 picks one).
    pub addr: SocketAddr,
    /// Serve HTTPS with a fresh self-signed certificate.
    pub https: bool,
    /// Names and addresses in the certificate (besides `localhost` and
    /// `127.0.0.1`, which are always there).
    pub cert_names: Vec<String>,
    /// Base URL put in file locations; default `http(s)://<bound address>`
    /// (with 127.0.0.1 for an unspecified address).
    pub advertise: Option<String>,
    /// `sid` put on every server message.
    pub sid: Option<String>,
    /// Wire form.
    pub wire: WireOptions,
    /// Script for UDIs without their own.
    pub default_script: Script,
}

impl PnpServerConfig {
    /// Plain HTTP on `addr`, default script empty (`bye` only).
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            https: false,
            cert_names: Vec::new(),
            advertise: None,
            sid: None,
            wire: WireOptions::default(),
            default_script: Script::default(),
        }
    }

    /// Plain HTTP on an ephemeral port of 127.0.0.1.
    pub fn loopback() -> Self {
        Self::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum PnpServerError {
    /// Binding the address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Making the self-signed certificate failed.
    #[error("cannot make the self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the TLS configuration.
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
}

/// Whether the server answers.
#[derive(Clone, Copy, Debug)]
enum Answering {
    Yes,
    Until(Instant),
    Never,
}

/// A script and the position in it.
#[derive(Clone, Debug)]
struct Cursor {
    script: Script,
    next: usize,
}

impl Cursor {
    fn new(script: Script) -> Self {
        Self { script, next: 0 }
    }

    fn next_step(&mut self) -> Step {
        if self.next >= self.script.steps.len() {
            if !self.script.repeat || self.script.steps.is_empty() {
                return Step::Bye;
            }
            self.next = 0;
        }
        self.next += 1;
        self.script.steps[self.next - 1].clone()
    }
}

/// A served file and its MD5 (hex).
#[derive(Clone, Debug)]
struct File {
    data: Bytes,
    md5: String,
}

#[derive(Debug)]
struct State {
    default_script: Script,
    cursors: HashMap<Udi, Cursor>,
    files: HashMap<String, File>,
    log: Vec<LogEntry>,
    hellos: u64,
    answering: Answering,
    /// Raw bodies answered to a UDI's next work-requests, before its script.
    raw_answers: HashMap<Udi, VecDeque<Bytes>>,
    /// Send an unanswered job again instead of the next step.
    redeliver: bool,
    /// The job each UDI was sent and has not answered yet (with `redeliver`).
    outstanding: HashMap<Udi, Step>,
    /// Jobs sent again.
    redelivered: u64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    base: String,
    sid: Option<String>,
    wire: WireOptions,
}

/// The service refuses to answer: hyper then closes the connection.
#[derive(Debug, thiserror::Error)]
#[error("the test PnP server is not answering")]
struct NotAnswering;

/// The accept loop in progress: its token (also held by the connections
/// it accepted) and its task.
#[derive(Debug)]
struct Listening {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A running PnP test server; stops when dropped.
#[derive(Debug)]
pub struct PnpServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    cert_pem: Option<String>,
    https: bool,
    cancel: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
    listening: Mutex<Option<Listening>>,
}

impl Drop for PnpServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// MD5 of `data` in lower-case hex.
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// A fake image `.tar` of exactly `len` bytes and its MD5. From 1536 bytes
/// on, when `len` is a multiple of 512, it is a valid ustar archive holding
/// one file of filler; otherwise a ustar header (from 512 bytes) then
/// filler. The filler is deterministic, so equal lengths give equal images.
pub fn fake_image(len: usize) -> (Vec<u8>, String) {
    let mut data = vec![0u8; len];
    let valid = len >= 1536 && len.is_multiple_of(512);
    let header_len = if len >= 512 { 512 } else { 0 };
    let filler_len = if valid { len - 1536 } else { len - header_len };
    if header_len == 512 {
        let header = &mut data[..512];
        let name = b"fake-image/info.bin";
        header[..name.len()].copy_from_slice(name);
        header[100..108].copy_from_slice(b"0000644\0");
        header[108..116].copy_from_slice(b"0000000\0");
        header[116..124].copy_from_slice(b"0000000\0");
        header[124..136].copy_from_slice(format!("{filler_len:011o}\0").as_bytes());
        header[136..148].copy_from_slice(b"00000000000\0");
        header[148..156].copy_from_slice(b"        ");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
    // Filler: a small xorshift, so the content is not all zeros.
    let mut x: u32 = 0x2545_f491;
    for byte in &mut data[header_len..header_len + filler_len] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *byte = x.to_le_bytes()[0];
    }
    let md5 = md5_hex(&data);
    (data, md5)
}

impl PnpServer {
    /// Binds and starts serving.
    pub async fn start(config: PnpServerConfig) -> Result<Self, PnpServerError> {
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| PnpServerError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| PnpServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let (tls, cert_pem) = if config.https {
            let (tls, pem) = self_signed(&config.cert_names, addr)?;
            (Some(tls), Some(pem))
        } else {
            (None, None)
        };
        let scheme = if config.https { "https" } else { "http" };
        let base = config.advertise.clone().unwrap_or_else(|| {
            let mut shown = addr;
            if shown.ip().is_unspecified() {
                shown.set_ip([127, 0, 0, 1].into());
            }
            format!("{scheme}://{shown}")
        });
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                default_script: config.default_script,
                cursors: HashMap::new(),
                files: HashMap::new(),
                log: Vec::new(),
                hellos: 0,
                answering: Answering::Yes,
                raw_answers: HashMap::new(),
                redeliver: false,
                outstanding: HashMap::new(),
                redelivered: 0,
            }),
            changed: watch::Sender::new(0),
            base: base.trim_end_matches('/').to_owned(),
            sid: config.sid,
            wire: config.wire,
        });
        let cancel = CancellationToken::new();
        let server = Self {
            inner,
            addr,
            cert_pem,
            https: config.https,
            cancel,
            tls,
            listening: Mutex::new(None),
        };
        server.serve(listener);
        Ok(server)
    }

    /// Starts the accept loop on `listener`, with a token of its own so
    /// that [`PnpServer::stop_listening`] ends it and its connections.
    fn serve(&self, listener: TcpListener) {
        let cancel = self.cancel.child_token();
        let task = tokio::spawn(accept_loop(
            listener,
            self.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            Arc::clone(&self.inner),
            cancel.clone(),
        ));
        *self.listening.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Listening { cancel, task });
    }

    /// Closes the listening socket and every open connection, and returns
    /// once the socket is closed: from then on connects are refused (RST)
    /// until [`PnpServer::listen_again`]. Returns false if it was not
    /// listening.
    pub async fn stop_listening(&self) -> bool {
        let listening = self
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(listening) = listening else {
            return false;
        };
        listening.cancel.cancel();
        // The loop owns the listener: it is closed when the task ends.
        let _ = listening.task.await;
        true
    }

    /// Whether the listening socket is open.
    pub fn is_listening(&self) -> bool {
        self.listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Binds the same address again after [`PnpServer::stop_listening`]
    /// (nothing to do if listening). The socket is made by the calling
    /// thread, so call it from the network namespace the server was
    /// started in (e.g. under [`crate::netns::NetNs::enter`]); needs a
    /// tokio runtime context.
    pub fn listen_again(&self) -> Result<(), PnpServerError> {
        if self.is_listening() {
            return Ok(());
        }
        let bind_err = |source| PnpServerError::Bind {
            addr: self.addr,
            source,
        };
        let std_listener = std::net::TcpListener::bind(self.addr).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(std_listener).map_err(bind_err)?;
        self.serve(listener);
        Ok(())
    }

    /// Queues `body` as the answer (200, `text/xml`) to the next
    /// work-request of `udi` that finds no earlier queued answer; the
    /// script resumes once the queue is empty. For hostile-server tests:
    /// `body` need not be XML at all.
    pub fn push_raw_answer(&self, udi: &Udi, body: impl Into<Bytes>) {
        self.inner
            .state()
            .raw_answers
            .entry(udi.clone())
            .or_default()
            .push_back(body.into());
    }

    /// With `on`, a job stays outstanding from the work-request it answers
    /// until a work-response or fault comes from its UDI; a work-request
    /// meanwhile gets the same job again (with the new correlator) instead
    /// of the next step. Off (the default): each step is sent once.
    pub fn set_redeliver_unanswered(&self, on: bool) {
        let mut state = self.inner.state();
        state.redeliver = on;
        if !on {
            state.outstanding.clear();
        }
    }

    /// Jobs sent again because their response never came
    /// ([`PnpServer::set_redeliver_unanswered`]).
    pub fn redelivered(&self) -> u64 {
        self.inner.state().redelivered
    }

    /// Raw answers queued for `udi` and not yet sent.
    pub fn raw_answers_left(&self, udi: &Udi) -> usize {
        self.inner
            .state()
            .raw_answers
            .get(udi)
            .map_or(0, VecDeque::len)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://<addr>`, the base URL for an agent's profile.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The self-signed certificate (PEM) of an HTTPS server, to pin.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// Sets the script of `udi`, from its first step.
    pub fn set_script(&self, udi: &Udi, script: Script) {
        self.inner
            .state()
            .cursors
            .insert(udi.clone(), Cursor::new(script));
    }

    /// Sets the script of UDIs that have none yet.
    pub fn set_default_script(&self, script: Script) {
        self.inner.state().default_script = script;
    }

    /// Serves `data` at `/configs/<name>`; returns its MD5.
    pub fn add_config(&self, name: &str, data: impl Into<Bytes>) -> String {
        self.inner.add_file(format!("/configs/{name}"), data.into())
    }

    /// Serves `data` at `/images/<name>`; returns its MD5.
    pub fn add_image(&self, name: &str, data: impl Into<Bytes>) -> String {
        self.inner.add_file(format!("/images/{name}"), data.into())
    }

    /// The URL of `/configs/<name>` as put in jobs.
    pub fn config_url(&self, name: &str) -> String {
        format!("{}/configs/{name}", self.inner.base)
    }

    /// The URL of `/images/<name>` as put in jobs.
    pub fn image_url(&self, name: &str) -> String {
        format!("{}/images/{name}", self.inner.base)
    }

    /// Drops every connection and request, for `period` or (`None`) until
    /// [`PnpServer::resume_answering`].
    pub fn stop_answering(&self, period: Option<Duration>) {
        self.inner.state().answering = match period {
            Some(period) => Answering::Until(Instant::now() + period),
            None => Answering::Never,
        };
    }

    /// Answers again.
    pub fn resume_answering(&self) {
        self.inner.state().answering = Answering::Yes;
    }

    /// HELLOs answered.
    pub fn hellos(&self) -> u64 {
        self.inner.state().hellos
    }

    /// Everything received from `udi`, oldest first.
    pub fn log(&self, udi: &Udi) -> Vec<LogEntry> {
        let state = self.inner.state();
        state
            .log
            .iter()
            .filter(|e| e.udi.as_ref() == Some(udi))
            .cloned()
            .collect()
    }

    /// Everything received, oldest first (downloads and unparsable bodies
    /// included).
    pub fn entries(&self) -> Vec<LogEntry> {
        self.inner.state().log.clone()
    }

    /// Waits until `done` holds for the log of `udi`, and returns that log.
    /// Never times out: wrap it in `tokio::time::timeout`.
    pub async fn wait_for(&self, udi: &Udi, done: impl Fn(&[LogEntry]) -> bool) -> Vec<LogEntry> {
        let mut changed = self.inner.changed.subscribe();
        loop {
            let log = self.log(udi);
            if done(&log) {
                return log;
            }
            // The sender lives in `inner`, which `self` keeps alive.
            if changed.changed().await.is_err() {
                return log;
            }
        }
    }

    /// A receiver that changes on every log entry and HELLO (the value
    /// counts them); hold it across reads so no change is missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }
}

/// A self-signed certificate for `names`, `localhost`, `127.0.0.1` and the
/// bound address: the TLS configuration and the certificate's PEM.
fn self_signed(
    names: &[String],
    addr: SocketAddr,
) -> Result<(Arc<rustls::ServerConfig>, String), PnpServerError> {
    let mut all = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !addr.ip().is_unspecified() {
        all.push(addr.ip().to_string());
    }
    all.extend(names.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    all.retain(|n| seen.insert(n.clone()));
    let certified = rcgen::generate_simple_self_signed(all)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    Ok((Arc::new(config), certified.cert.pem()))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    inner: Arc<Inner>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                log::warn!("PnP test server: accept failed: {error}");
                continue;
            }
        };
        if !inner.answering() {
            drop(stream);
            continue;
        }
        // An answer goes out at once, as from any HTTP server: with Nagle's
        // algorithm, a reply split in two segments waited for the agent's
        // delayed ACK (40 ms), which the lab took for the proxy's time.
        if let Err(error) = stream.set_nodelay(true) {
            log::warn!("PnP test server: TCP_NODELAY: {error}");
        }
        tokio::spawn(serve_connection(
            stream,
            tls.clone(),
            Arc::clone(&inner),
            cancel.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    inner: Arc<Inner>,
    cancel: CancellationToken,
) {
    let service = service_fn(move |request| {
        let inner = Arc::clone(&inner);
        async move { inner.handle(request).await }
    });
    let served = async {
        let result = match tls {
            None => {
                http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(stream) => {
                    http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
                Err(error) => {
                    log::debug!("PnP test server: TLS handshake failed: {error}");
                    return;
                }
            },
        };
        if let Err(error) = result {
            log::debug!("PnP test server: connection ended: {error}");
        }
    };
    tokio::select! {
        () = cancel.cancelled() => {}
        () = served => {}
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A server message, or 500 if it could not be written.
fn xml(body: std::io::Result<String>) -> hyper::Response<Full<Bytes>> {
    match body {
        Ok(body) => reply(StatusCode::OK, "text/xml", body),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> hyper::Response<Full<Bytes>> {
    reply(status, "text/plain", format!("{message}\n"))
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the log from the others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answering(&self) -> bool {
        let mut state = self.state();
        match state.answering {
            Answering::Yes => true,
            Answering::Never => false,
            Answering::Until(until) if Instant::now() >= until => {
                state.answering = Answering::Yes;
                true
            }
            Answering::Until(_) => false,
        }
    }

    fn add_file(&self, path: String, data: Bytes) -> String {
        let md5 = md5_hex(&data);
        self.state().files.insert(
            path,
            File {
                data,
                md5: md5.clone(),
            },
        );
        md5
    }

    fn record(&self, entry: LogEntry) {
        self.state().log.push(entry);
        self.changed.send_modify(|n| *n += 1);
    }

    async fn handle(
        &self,
        request: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, NotAnswering> {
        if !self.answering() {
            return Err(NotAnswering);
        }
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        Ok(match (method, path.as_str()) {
            (Method::GET, "/pnp/HELLO") => {
                self.state().hellos += 1;
                self.changed.send_modify(|n| *n += 1);
                reply(StatusCode::OK, "text/xml", Bytes::new())
            }
            (_, "/pnp/HELLO") => error(StatusCode::METHOD_NOT_ALLOWED, "HELLO is GET only"),
            (Method::POST, "/pnp/WORK-REQUEST" | "/pnp/WORK-RESPONSE") => {
                match Limited::new(request.into_body(), wire::BODY_CAP)
                    .collect()
                    .await
                {
                    Ok(body) => self.message(&path, &body.to_bytes()),
                    Err(e) => error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
                }
            }
            (Method::GET, p) if p.starts_with("/configs/") || p.starts_with("/images/") => {
                let file = self.state().files.get(p).cloned();
                self.record(LogEntry {
                    at: Instant::now(),
                    udi: None,
                    sid: None,
                    received: Received::Download {
                        path: path.clone(),
                        found: file.is_some(),
                    },
                });
                match file {
                    Some(file) => reply(StatusCode::OK, "application/octet-stream", file.data),
                    None => error(StatusCode::NOT_FOUND, "no such file"),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "not a PnP endpoint"),
        })
    }

    /// A body posted to WORK-REQUEST or WORK-RESPONSE.
    fn message(&self, path: &str, body: &[u8]) -> hyper::Response<Full<Bytes>> {
        let unparsable = |error: String| {
            self.record(LogEntry {
                at: Instant::now(),
                udi: None,
                sid: None,
                received: Received::Unparsable {
                    path: path.to_owned(),
                    error: error.clone(),
                },
            });
            error_response(&error)
        };
        let message = match wire::parse_agent_message(body) {
            Ok(message) => message,
            Err(e) => return unparsable(e.to_string()),
        };
        let sid = message.sid.clone();
        let envelope_udi = message.udi.clone();
        let entry = |udi: Option<Udi>, received| LogEntry {
            at: Instant::now(),
            udi,
            sid: sid.clone(),
            received,
        };
        match (path, message.body) {
            ("/pnp/WORK-REQUEST", AgentBody::WorkRequest(request)) => {
                let Some(udi) = request.udi.clone().or(envelope_udi) else {
                    return unparsable("work-request without a UDI".to_owned());
                };
                let correlator = request.correlator.clone();
                self.record(entry(Some(udi.clone()), Received::WorkRequest(request)));
                let raw = self
                    .state()
                    .raw_answers
                    .get_mut(&udi)
                    .and_then(VecDeque::pop_front);
                if let Some(raw) = raw {
                    return reply(StatusCode::OK, "text/xml", raw);
                }
                let step = self.next_step(&udi);
                xml(self.encode(&udi, &step, &correlator))
            }
            ("/pnp/WORK-RESPONSE", AgentBody::Response(response)) => {
                let correlator = response.correlator.clone();
                self.answered(envelope_udi.as_ref());
                self.record(entry(envelope_udi.clone(), Received::Response(response)));
                xml(self.bye(envelope_udi, Some(correlator)))
            }
            ("/pnp/WORK-RESPONSE", AgentBody::Fault(fault)) => {
                self.answered(envelope_udi.as_ref());
                self.record(entry(envelope_udi.clone(), Received::Fault(fault)));
                xml(self.bye(envelope_udi, None))
            }
            (path, body) => unparsable(format!(
                "{} posted to {path}",
                match body {
                    AgentBody::WorkRequest(_) => "work-request",
                    AgentBody::Response(_) => "response",
                    AgentBody::Fault(_) => "fault",
                }
            )),
        }
    }

    fn next_step(&self, udi: &Udi) -> Step {
        let mut state = self.state();
        if state.redeliver
            && let Some(step) = state.outstanding.get(udi).cloned()
        {
            state.redelivered += 1;
            log::info!("PnP test server: {udi} did not answer {step:?}; sending it again");
            return step;
        }
        let default = state.default_script.clone();
        let step = state
            .cursors
            .entry(udi.clone())
            .or_insert_with(|| Cursor::new(default))
            .next_step();
        if state.redeliver && step != Step::Bye {
            state.outstanding.insert(udi.clone(), step.clone());
        }
        step
    }

    /// A response or fault from `udi` settles its outstanding job.
    fn answered(&self, udi: Option<&Udi>) {
        if let Some(udi) = udi {
            self.state().outstanding.remove(udi);
        }
    }

    fn envelope(&self, udi: Option<Udi>) -> Envelope {
        Envelope {
            udi,
            sid: self.sid.clone(),
        }
    }

    fn bye(&self, udi: Option<Udi>, correlator: Option<String>) -> std::io::Result<String> {
        wire::encode_bye(&self.envelope(udi), correlator.as_deref(), self.wire)
    }

    /// The server message answering a work-request with `step`.
    fn encode(&self, udi: &Udi, step: &Step, correlator: &str) -> std::io::Result<String> {
        let Some(job) = self.job(step) else {
            return self.bye(Some(udi.clone()), Some(correlator.to_owned()));
        };
        wire::encode_request(
            &self.envelope(Some(udi.clone())),
            correlator,
            &job,
            self.wire,
        )
    }

    fn job(&self, step: &Step) -> Option<Job> {
        let backoff = |action| Job::Backoff {
            reason: Some("scripted by the PnP test server".to_owned()),
            action,
        };
        Some(match step {
            Step::DeviceInfo(kind) => Job::DeviceInfo(kind.clone()),
            Step::ConfigUpgrade {
                apply_to,
                file,
                reload,
            } => {
                let path = format!("/configs/{file}");
                Job::ConfigUpgrade {
                    location: format!("{}{path}", self.base),
                    checksum: self.state().files.get(&path).map(|f| f.md5.clone()),
                    apply_to: apply_to.clone(),
                    reload: reload.then(|| Reload {
                        reason: "pnp config upgrade".to_owned(),
                        delay_in: 0,
                        user: None,
                        save_config: None,
                    }),
                }
            }
            Step::ImageInstall { file, md5 } => {
                let path = format!("/images/{file}");
                let checksum = md5
                    .clone()
                    .or_else(|| self.state().files.get(&path).map(|f| f.md5.clone()));
                Job::ImageInstall {
                    location: format!("{}{path}", self.base),
                    checksum,
                    destination: Some(format!("flash:{file}")),
                    reload: Some(Reload {
                        reason: "pnp image installation".to_owned(),
                        delay_in: 0,
                        user: Some("pnp-install-image".to_owned()),
                        save_config: Some(true),
                    }),
                }
            }
            Step::Capability => Job::Capability,
            Step::Topology => Job::Topology,
            Step::Backoff { secs } => backoff(BackoffAction::after_secs(*secs)),
            Step::DefaultMinutes(minutes) => backoff(BackoffAction::DefaultMinutes(*minutes)),
            Step::Terminate => backoff(BackoffAction::Terminate),
            Step::Unsupported { service } => Job::Unsupported {
                service: service.clone(),
            },
            Step::Bye => return None,
        })
    }
}

/// Body of a 400 answer.
fn error_response(message: &str) -> hyper::Response<Full<Bytes>> {
    error(StatusCode::BAD_REQUEST, message)
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Received::WorkRequest(w) => write!(
                f,
                "work-request {} viaProxy={} hostname={}",
                w.correlator,
                w.via_proxy,
                w.hostname.as_deref().unwrap_or("-")
            ),
            Received::Response(r) => {
                write!(
                    f,
                    "response {} {} success={}",
                    r.service,
                    r.correlator,
                    u8::from(r.success)
                )?;
                if let Some(e) = &r.error {
                    write!(f, " error={} {:?}", e.code, e.message)?;
                }
                Ok(())
            }
            Received::Fault(fault) => write!(f, "fault {} {:?}", fault.code, fault.string),
            Received::Unparsable { path, error } => write!(f, "unparsable on {path}: {error}"),
            Received::Download { path, found } => {
                write!(
                    f,
                    "download {path}{}",
                    if *found { "" } else { " (not found)" }
                )
            }
        }
    }
}

#[cfg(test)]
mod tests;
