//! The PnP agent: one light work loop per proxied switch toward the PnP
//! server (`docs/pnp-protocol.md` sections 1, 3, 5, 6 and 8).
//!
//! [`AgentShared`] is built once from a [`PnpProfile`] and holds what every
//! loop shares: the HTTP(S) client and its connection pool, the trust, and a
//! cap on requests in flight. [`spawn_agent`] starts the loop of one switch:
//!
//! 1. `GET /pnp/HELLO`, retried until the server answers 200;
//! 2. `POST /pnp/WORK-REQUEST` with a fresh correlator
//!    (`CiscoPnP-1.0-<counter>-<random hex>`);
//! 3. a job is handed to the proxy logic as a [`JobRequest`] and its
//!    [`Response`] posted to `/pnp/WORK-RESPONSE` (the request's correlator
//!    and the server's `sid` echoed); a backoff is acknowledged with a
//!    success response and obeyed; the server's `bye` ends the exchange;
//! 4. wait as [`Pacing`] says, then back to 2.
//!
//! # Pacing
//!
//! After an exchange in which every job succeeded the next work-request
//! follows at once, but never sooner than [`Pacing::min_cycle`] after the
//! previous one started. After an exchange with no job (a bare `bye`), a
//! failed job or an unparsable answer, the client waits
//! [`Pacing::min_interval`], doubled on each such exchange in a row and
//! capped at the idle interval ([`Pacing::idle_interval`], replaced by
//! `defaultMinutes`); a successful job or a backoff resets the streak. A
//! `callbackAfter` is waited as given (at least `min_interval`);
//! `defaultMinutes` waits the new idle interval; `terminate` ends the loop.
//! Transport errors and non-200 answers are retried after [`RetryPolicy`]'s
//! capped exponential delay. Every wait but `min_cycle` gets ±10 % jitter.
//! So a server that answers every work-request with the same failing job,
//! or with `bye` alone, sees a bounded request rate, and each failure is
//! still reported to it.
//!
//! # Wiring
//!
//! The proxy logic builds one [`AgentShared`] per profile and calls
//! [`spawn_agent`] once per identified switch, with a child cancellation
//! token (cancel it to stop that switch's agent). It receives every
//! [`JobRequest`] on the jobs channel (all agents may share one), runs the
//! job, and answers with [`JobRequest::respond`] within
//! [`PnpProfile::job_timeout`]; refusals are ordinary failed responses
//! (e.g. [`Response::refused`]). It reads [`AgentReport`]s for its state and
//! show commands. Files named by jobs are downloaded with
//! [`AgentShared::fetch`], which uses the same client and trust.
//!
//! # Trust
//!
//! An `https://` server needs a [`TlsTrust`]: a CA bundle (standard WebPKI
//! verification, name included) or a pinned certificate (the server must
//! present exactly that certificate and prove it holds its key; name and
//! dates are not checked, the pin is the identity). A server whose
//! certificate does not verify is refused; the [`AgentEvent::TransportError`]
//! says why.
//!
//! # Counters
//!
//! [`AgentShared::stats`] counts, for all the switches sharing it, the
//! messages exchanged with the server ([`PnpExchange`]) and the failures
//! ([`PnpErrorKind`]); the daemon exposes them on `/metrics`.
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{
    self, BODY_CAP, BackoffAction, Envelope, ErrorInfo, Fault, Job, Request, Response, ServerBody,
    Service, WorkRequest,
};
use crate::udi::Udi;

/// Profile name used when none is configured (as Cisco's `vstack proxy`).
pub const DEFAULT_PROFILE_NAME: &str = "pnp-zero-touch";
/// Path of the HELLO endpoint.
pub const PATH_HELLO: &str = "/pnp/HELLO";
/// Path of the work-request endpoint.
pub const PATH_WORK_REQUEST: &str = "/pnp/WORK-REQUEST";
/// Path of the work-response endpoint.
pub const PATH_WORK_RESPONSE: &str = "/pnp/WORK-RESPONSE";
/// Content type of every body the agent posts.
pub const CONTENT_TYPE_XML: &str = "text/xml; charset=utf-8";
/// `errorCode` of a job the proxy logic did not answer within the job timeout.
pub const ERROR_CODE_JOB_TIMEOUT: &str = "SMI_PROXY_JOB_TIMEOUT";
/// `errorCode` of a job the proxy logic dropped or could not take.
pub const ERROR_CODE_JOB_UNHANDLED: &str = "SMI_PROXY_JOB_UNHANDLED";
/// `faultstring` of the fault posted for an unparsable server message.
pub const FAULT_STRING_UNPARSABLE: &str = "The request could not be parsed";
/// `User-Agent` of every request.
const AGENT_NAME: &str = concat!("smi-pnp-proxy/", env!("CARGO_PKG_VERSION"));

/// How an `https://` server's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsTrust {
    /// PEM file of CA certificates; the server's chain must lead to one of
    /// them and name the host of the URL.
    CaBundle(PathBuf),
    /// PEM file of the server's own (typically self-signed) certificate(s);
    /// the server must present one of them exactly.
    PinnedCert(PathBuf),
}

/// Delays after transport errors and non-200 answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure in a row.
    pub initial: Duration,
    /// Cap of the delay, which doubles on each failure in a row.
    pub max: Duration,
    /// Attempts at posting one job's response before giving up on it.
    pub response_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            response_attempts: 3,
        }
    }
}

/// How often one client may ask for work (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Least time between the starts of two work-requests of one client.
    pub min_cycle: Duration,
    /// Wait after a first empty or failed exchange (doubles on repeats).
    pub min_interval: Duration,
    /// Initial idle interval: cap of the growing wait; `defaultMinutes`
    /// replaces it per client.
    pub idle_interval: Duration,
    /// Most server requests handled in one exchange (a server may answer a
    /// response with another request instead of `bye`).
    pub max_chain: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            min_cycle: Duration::from_secs(1),
            min_interval: Duration::from_secs(2),
            idle_interval: Duration::from_secs(5 * 60),
            max_chain: 8,
        }
    }
}

/// The PnP profile: which server to talk to and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PnpProfile {
    /// Profile name (for show commands).
    pub name: String,
    /// Server base URL, `http://host[:port]` or `https://host[:port]`,
    /// optionally with a path prefix put before `/pnp/…`.
    pub server: String,
    /// Trust for an `https://` server (required for one).
    pub trust: Option<TlsTrust>,
    /// `<viaProxy>` in work-requests.
    pub via_proxy: bool,
    /// Limit on one HTTP exchange, connection set-up included.
    pub request_timeout: Duration,
    /// Limit on the proxy logic's answer to one job.
    pub job_timeout: Duration,
    /// Limit on one file download ([`AgentShared::fetch`]).
    pub fetch_timeout: Duration,
    /// Most HTTP requests in flight, all clients together; work-responses
    /// (answers to jobs) have as many slots again of their own, so that
    /// finishing a job never waits behind thousands of agents asking for
    /// work.
    pub max_in_flight: usize,
    /// Retries after transport errors.
    pub retry: RetryPolicy,
    /// Request rate per client.
    pub pacing: Pacing,
}

impl PnpProfile {
    /// A profile for `server` with the defaults: no trust, `viaProxy` true,
    /// 30 s request timeout, 30 min job timeout, 10 min download timeout,
    /// 64 requests in flight.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            name: DEFAULT_PROFILE_NAME.to_owned(),
            server: server.into(),
            trust: None,
            via_proxy: true,
            request_timeout: Duration::from_secs(30),
            job_timeout: Duration::from_secs(30 * 60),
            fetch_timeout: Duration::from_secs(10 * 60),
            max_in_flight: 64,
            retry: RetryPolicy::default(),
            pacing: Pacing::default(),
        }
    }
}

/// Why a [`PnpProfile`] could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    /// The server URL does not parse or lacks a host.
    #[error("PnP server URL {url:?} is not usable: {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The scheme is neither `http` nor `https`.
    #[error("PnP server URL {url:?}: scheme must be http or https")]
    UnsupportedScheme {
        /// The URL as configured.
        url: String,
    },
    /// An `https://` server without a CA bundle or pinned certificate.
    #[error("PnP server URL {url:?} is https but no CA bundle or pinned certificate is configured")]
    HttpsWithoutTrust {
        /// The URL as configured.
        url: String,
    },
    /// A PEM file could not be read.
    #[error("cannot read PEM file {path}: {source}")]
    ReadPem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate.
    #[error("PEM file {path} holds no certificate{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// Parser complaint, if any.
        detail: Option<String>,
    },
    /// A CA certificate was refused as a trust anchor.
    #[error("CA certificate in {path} is not usable: {reason}")]
    BadCaCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why one HTTP exchange with the server failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No complete answer within the request timeout.
    #[error("{path}: no answer within {} s", after.as_secs_f64())]
    Timeout {
        /// Endpoint path (the URL for a download).
        path: String,
        /// The timeout.
        after: Duration,
    },
    /// Connection, TLS or HTTP failure.
    #[error("{path}: {error}")]
    Http {
        /// Endpoint path (the URL for a download).
        path: String,
        /// The failure and its causes.
        error: String,
    },
    /// The server answered with a status other than 200.
    #[error("{path}: server answered HTTP {status}")]
    Status {
        /// Endpoint path (the URL for a download).
        path: String,
        /// The status code.
        status: u16,
    },
    /// The answer's body could not be read (or exceeds the size cap).
    #[error("{path}: reading the answer failed: {error}")]
    Body {
        /// Endpoint path (the URL for a download).
        path: String,
        /// The failure.
        error: String,
    },
}

/// A message the agents exchanged with the server, as [`PnpStats`] counts
/// it (label `kind` of `smi_proxy_pnp_exchanges_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PnpExchange {
    /// `GET /pnp/HELLO` sent (every attempt).
    Hello,
    /// Work-request posted.
    WorkRequest,
    /// `device-info` job received.
    JobDeviceInfo,
    /// `config-upgrade` job received.
    JobConfigUpgrade,
    /// `image-install` job received.
    JobImageInstall,
    /// `capability` job received.
    JobCapability,
    /// `topology` job received.
    JobTopology,
    /// A job of another service received (refused by the proxy).
    JobOther,
    /// `backoff` request received.
    Backoff,
    /// `bye` received (the end of every exchange the server closes).
    Bye,
    /// A work-request answered with `bye` alone: the server had no work.
    NoWork,
    /// Work-response posted for a job or backoff that succeeded (once per
    /// response, however many attempts it took).
    WorkResponseSuccess,
    /// Work-response posted for a job that failed or was refused.
    WorkResponseFailure,
    /// Fault posted for a server message that could not be parsed.
    Fault,
    /// File download started ([`AgentShared::fetch`]).
    FileFetch,
}

impl PnpExchange {
    /// Every kind, in exposition order.
    pub const ALL: [Self; 15] = [
        Self::Hello,
        Self::WorkRequest,
        Self::JobDeviceInfo,
        Self::JobConfigUpgrade,
        Self::JobImageInstall,
        Self::JobCapability,
        Self::JobTopology,
        Self::JobOther,
        Self::Backoff,
        Self::Bye,
        Self::NoWork,
        Self::WorkResponseSuccess,
        Self::WorkResponseFailure,
        Self::Fault,
        Self::FileFetch,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::WorkRequest => "work_request",
            Self::JobDeviceInfo => "job_device_info",
            Self::JobConfigUpgrade => "job_config_upgrade",
            Self::JobImageInstall => "job_image_install",
            Self::JobCapability => "job_capability",
            Self::JobTopology => "job_topology",
            Self::JobOther => "job_other",
            Self::Backoff => "backoff",
            Self::Bye => "bye",
            Self::NoWork => "no_work",
            Self::WorkResponseSuccess => "work_response_success",
            Self::WorkResponseFailure => "work_response_failure",
            Self::Fault => "fault",
            Self::FileFetch => "file_fetch",
        }
    }

    /// The kind of a job received from the server.
    pub fn job(job: &Job) -> Self {
        match job {
            Job::DeviceInfo(_) => Self::JobDeviceInfo,
            Job::ConfigUpgrade(_) => Self::JobConfigUpgrade,
            Job::ImageInstall(_) => Self::JobImageInstall,
            Job::Capability => Self::JobCapability,
            Job::Topology => Self::JobTopology,
            Job::Backoff(_) => Self::Backoff,
            Job::Unsupported { .. } => Self::JobOther,
        }
    }
}

/// Why an exchange with the server failed, as [`PnpStats`] counts it
/// (label `reason` of `smi_proxy_pnp_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PnpErrorKind {
    /// No connection (refused, unreachable, reset while connecting).
    Connect,
    /// TLS handshake failed or the server's certificate was refused.
    Tls,
    /// No complete answer within the time limit.
    Timeout,
    /// The server answered with a status other than 200.
    HttpStatus,
    /// Another HTTP failure (connection closed mid-answer, invalid answer).
    Http,
    /// The answer's body could not be read or exceeds the size cap.
    Body,
    /// A server message that is not well-formed PnP XML (a fault is posted).
    MalformedXml,
    /// A server request refused because the exchange already carried
    /// [`Pacing::max_chain`] requests.
    ChainLimit,
}

impl PnpErrorKind {
    /// Every reason, in exposition order.
    pub const ALL: [Self; 8] = [
        Self::Connect,
        Self::Tls,
        Self::Timeout,
        Self::HttpStatus,
        Self::Http,
        Self::Body,
        Self::MalformedXml,
        Self::ChainLimit,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::HttpStatus => "http_status",
            Self::Http => "http",
            Self::Body => "body",
            Self::MalformedXml => "malformed_xml",
            Self::ChainLimit => "chain_limit",
        }
    }
}

/// Counters of every agent sharing one [`AgentShared`] (all switches
/// together): messages by [`PnpExchange`], failures by [`PnpErrorKind`].
/// Monotonic, relaxed atomics.
#[derive(Debug, Default)]
pub struct PnpStats {
    exchanges: [AtomicU64; PnpExchange::ALL.len()],
    errors: [AtomicU64; PnpErrorKind::ALL.len()],
}

impl PnpStats {
    /// Counts one `kind` message.
    pub fn count(&self, kind: PnpExchange) {
        self.exchanges[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failure for `reason`.
    pub fn count_error(&self, reason: PnpErrorKind) {
        self.errors[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Messages of `kind` so far.
    pub fn exchange(&self, kind: PnpExchange) -> u64 {
        self.exchanges[kind as usize].load(Ordering::Relaxed)
    }

    /// Failures for `reason` so far.
    pub fn error(&self, reason: PnpErrorKind) -> u64 {
        self.errors[reason as usize].load(Ordering::Relaxed)
    }

    /// Every message kind with its count (label value, count).
    pub fn exchanges(&self) -> Vec<(&'static str, u64)> {
        PnpExchange::ALL
            .iter()
            .map(|k| (k.label(), self.exchange(*k)))
            .collect()
    }

    /// Every failure reason with its count (label value, count).
    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        PnpErrorKind::ALL
            .iter()
            .map(|r| (r.label(), self.error(*r)))
            .collect()
    }
}

/// The connector every agent shares.
type Connector = HttpsConnector<HttpConnector>;

/// The three endpoint URIs of a server.
#[derive(Debug)]
struct Endpoints {
    hello: Uri,
    work_request: Uri,
    work_response: Uri,
}

/// What every agent loop shares: profile, endpoints, the pooled HTTP(S)
/// client, the caps on requests in flight, and the counters.
pub struct AgentShared {
    profile: PnpProfile,
    endpoints: Endpoints,
    client: Client<Connector, Full<Bytes>>,
    /// HELLOs, work-requests and file downloads.
    in_flight: Semaphore,
    /// Work-responses.
    answers: Semaphore,
    stats: Arc<PnpStats>,
}

impl fmt::Debug for AgentShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentShared")
            .field("profile", &self.profile)
            .field("endpoints", &self.endpoints)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl AgentShared {
    /// Builds the shared client from `profile`: checks the URL, loads the
    /// trust, and sets up the connection pool.
    pub fn new(profile: PnpProfile) -> Result<Arc<Self>, AgentConfigError> {
        Self::counting_into(profile, Arc::default())
    }

    /// As [`AgentShared::new`], counting into `stats` (kept by the caller
    /// across a change of profile).
    pub fn counting_into(
        profile: PnpProfile,
        stats: Arc<PnpStats>,
    ) -> Result<Arc<Self>, AgentConfigError> {
        let (endpoints, https) = endpoints(&profile.server)?;
        if https && profile.trust.is_none() {
            return Err(AgentConfigError::HttpsWithoutTrust {
                url: profile.server.clone(),
            });
        }
        let tls = tls_config(profile.trust.as_ref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(profile.request_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2 * profile.max_in_flight.max(1))
            .build(connector);
        let in_flight = Semaphore::new(profile.max_in_flight.max(1));
        let answers = Semaphore::new(profile.max_in_flight.max(1));
        Ok(Arc::new(Self {
            profile,
            endpoints,
            client,
            in_flight,
            answers,
            stats,
        }))
    }

    /// The profile this was built from.
    pub fn profile(&self) -> &PnpProfile {
        &self.profile
    }

    /// The counters of every agent (and download) using this.
    pub fn stats(&self) -> Arc<PnpStats> {
        Arc::clone(&self.stats)
    }

    /// Downloads a job's file, e.g. `http://server/configs/sw1.cfg`, with
    /// the shared client and trust, within [`PnpProfile::fetch_timeout`];
    /// an answer over `cap` bytes or other than 200 is refused.
    pub async fn fetch(&self, url: &str, cap: usize) -> Result<Bytes, FetchError> {
        let bad = |reason: String| FetchError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(bad("scheme must be http or https".to_owned()));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host".to_owned()));
        }
        let label = url.to_owned();
        self.stats.count(PnpExchange::FileFetch);
        let limit = self.profile.fetch_timeout;
        Ok(self
            .exchange(&self.in_flight, &uri, label, None, cap, limit)
            .await?)
    }

    /// A PnP exchange: GET (no body) or POST of XML to `uri`, answer capped
    /// at [`BODY_CAP`] bytes, within the request timeout; work-responses
    /// take their own slots.
    async fn call(&self, uri: &Uri, body: Option<String>) -> Result<Bytes, TransportError> {
        let label = uri.path().to_owned();
        let lane = if *uri == self.endpoints.work_response {
            &self.answers
        } else {
            &self.in_flight
        };
        let limit = self.profile.request_timeout;
        self.exchange(lane, uri, label, body, BODY_CAP, limit).await
    }

    /// One HTTP exchange: waits for a slot of `lane`, sends, and reads a 200
    /// answer's body of at most `cap` bytes, all within `limit`. Errors
    /// name `label` and are counted.
    async fn exchange(
        &self,
        lane: &Semaphore,
        uri: &Uri,
        label: String,
        body: Option<String>,
        cap: usize,
        limit: Duration,
    ) -> Result<Bytes, TransportError> {
        let (result, reason) = self.exchange_once(lane, uri, label, body, cap, limit).await;
        if let Some(reason) = reason {
            self.stats.count_error(reason);
        }
        result
    }

    /// [`AgentShared::exchange`] without the counting: the result and, on
    /// failure, its reason.
    async fn exchange_once(
        &self,
        lane: &Semaphore,
        uri: &Uri,
        label: String,
        body: Option<String>,
        cap: usize,
        limit: Duration,
    ) -> (Result<Bytes, TransportError>, Option<PnpErrorKind>) {
        // The semaphores are never closed; if one were, go ahead unthrottled.
        let _permit = lane.acquire().await.ok();
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(uri.clone())
            .header(USER_AGENT, HeaderValue::from_static(AGENT_NAME));
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_XML));
        }
        let request = match request.body(Full::new(Bytes::from(body.unwrap_or_default()))) {
            Ok(request) => request,
            Err(e) => {
                let error = TransportError::Http {
                    path: label,
                    error: describe(&e),
                };
                return (Err(error), Some(PnpErrorKind::Http));
            }
        };
        let exchange = async {
            let answer = self.client.request(request).await.map_err(|e| {
                let reason = if find_tls_in(&e).is_some() {
                    PnpErrorKind::Tls
                } else if e.is_connect() {
                    PnpErrorKind::Connect
                } else {
                    PnpErrorKind::Http
                };
                let error = TransportError::Http {
                    path: label.clone(),
                    error: describe(&e),
                };
                (error, reason)
            })?;
            let status = answer.status();
            if status != StatusCode::OK {
                let error = TransportError::Status {
                    path: label.clone(),
                    status: status.as_u16(),
                };
                return Err((error, PnpErrorKind::HttpStatus));
            }
            let body = Limited::new(answer.into_body(), cap)
                .collect()
                .await
                .map_err(|e| {
                    let error = TransportError::Body {
                        path: label.clone(),
                        error: if e.is::<LengthLimitError>() {
                            format!("answer over the {cap}-byte cap")
                        } else {
                            describe(e.as_ref())
                        },
                    };
                    (error, PnpErrorKind::Body)
                })?;
            Ok(body.to_bytes())
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Ok(answer)) => (Ok(answer), None),
            Ok(Err((error, reason))) => (Err(error), Some(reason)),
            Err(_) => {
                let error = TransportError::Timeout {
                    path: label,
                    after: limit,
                };
                (Err(error), Some(PnpErrorKind::Timeout))
            }
        }
    }
}

/// Why [`AgentShared::fetch`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The location is not an http(s) URL with a host.
    #[error("location {url:?} is not usable: {reason}")]
    BadUrl {
        /// The location as sent.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The download failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Parses the base URL into the endpoint URIs; also says whether it is https.
fn endpoints(url: &str) -> Result<(Endpoints, bool), AgentConfigError> {
    let bad = |reason: String| AgentConfigError::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(AgentConfigError::UnsupportedScheme {
                url: url.to_owned(),
            });
        }
    };
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| bad("no host".to_owned()))?;
    if uri.query().is_some() {
        return Err(bad("a query is not allowed".to_owned()));
    }
    let scheme = if https { "https" } else { "http" };
    let prefix = uri.path().trim_end_matches('/');
    let make = |path: &str| -> Result<Uri, AgentConfigError> {
        format!("{scheme}://{authority}{prefix}{path}")
            .parse()
            .map_err(|e| bad(format!("{e}")))
    };
    Ok((
        Endpoints {
            hello: make(PATH_HELLO)?,
            work_request: make(PATH_WORK_REQUEST)?,
            work_response: make(PATH_WORK_RESPONSE)?,
        },
        https,
    ))
}

/// Reads every certificate of a PEM file.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, AgentConfigError> {
    let pem = std::fs::read(path).map_err(|source| AgentConfigError::ReadPem {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentConfigError::NoCertificate {
            path: path.to_owned(),
            detail: Some(e.to_string()),
        })?;
    if certs.is_empty() {
        return Err(AgentConfigError::NoCertificate {
            path: path.to_owned(),
            detail: None,
        });
    }
    Ok(certs)
}

/// The rustls client configuration for `trust` (ring, TLS 1.2 and 1.3). No
/// trust gives an empty root store: any https server is refused.
fn tls_config(trust: Option<&TlsTrust>) -> Result<ClientConfig, AgentConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    Ok(match trust {
        None => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        Some(TlsTrust::CaBundle(path)) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| AgentConfigError::BadCaCertificate {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Some(TlsTrust::PinnedCert(path)) => {
            let verifier = PinnedVerifier {
                pinned: read_certs(path)?,
                path: path.clone(),
                provider,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    })
}

/// Accepts exactly the pinned certificates; handshake signatures are still
/// verified, so the server must hold the pinned certificate's key.
#[derive(Debug)]
struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    path: PathBuf,
    provider: Arc<CryptoProvider>,
}

/// The server presented a certificate other than the pinned one(s).
#[derive(Debug, thiserror::Error)]
#[error("the server's certificate is not the pinned certificate from {path}")]
struct NotPinned {
    path: PathBuf,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(NotPinned {
                    path: self.path.clone(),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An error and its causes on one line; a TLS failure is named as such,
/// with the reason a certificate was refused.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = find_tls(e) {
            parts.push(describe_tls(tls));
            break;
        }
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// The rustls error `e` is or wraps (in nested `io::Error`s, which hide it
/// from `source()`), if any.
fn find_tls<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut e = e;
    for _ in 0..8 {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let io = e.downcast_ref::<std::io::Error>()?;
        e = io.get_ref()?;
    }
    None
}

/// The rustls error anywhere in `error`'s chain of causes, if any.
fn find_tls_in<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = find_tls(e) {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn describe_tls(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            format!("TLS: server certificate refused: {}", other.0)
        }
        rustls::Error::InvalidCertificate(reason) => {
            format!("TLS: server certificate refused: {reason}")
        }
        other => format!("TLS: {other}"),
    }
}

/// Who one agent speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The switch's UDI (the PnP identity).
    pub udi: Udi,
    /// Its hostname, sent in `<deviceId>` when known.
    pub hostname: Option<String>,
    /// Its MAC address, as the proxy logic writes it; handed back in every
    /// [`JobRequest`].
    pub mac: String,
}

/// A job for the proxy logic: run `request` for the switch and answer on
/// `reply`. The agent posts what comes back (correlator and service forced
/// to the request's); dropping `reply`, or not answering within the job
/// timeout, makes the agent post a failure.
#[derive(Debug)]
pub struct JobRequest {
    /// The switch's UDI.
    pub udi: Udi,
    /// The switch's MAC address (from [`AgentIdentity::mac`]).
    pub mac: String,
    /// The server's request (never a backoff: the agent handles those).
    pub request: Request,
    /// Where the result goes.
    pub reply: oneshot::Sender<Response>,
}

impl JobRequest {
    /// Sends the result; `false` if the agent no longer waits for it.
    pub fn respond(self, response: Response) -> bool {
        self.reply.send(response).is_ok()
    }
}

/// What an agent reports for the proxy logic and show commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// The server answered HELLO.
    Hello,
    /// A work-request is being sent.
    WorkRequestSent {
        /// Its correlator.
        correlator: String,
    },
    /// The server sent a job (not a backoff).
    JobReceived {
        /// The job's service.
        service: Service,
    },
    /// The job's response is being posted.
    JobDone {
        /// The job's service.
        service: Service,
        /// Whether it succeeded.
        success: bool,
    },
    /// The next work-request waits for a backoff until then.
    Backoff {
        /// When the next work-request goes out.
        until: Instant,
    },
    /// The server said `terminate`: this agent has stopped for good.
    Terminated,
    /// An exchange with the server failed; it will be retried.
    TransportError {
        /// What went wrong.
        error: String,
    },
}

/// An [`AgentEvent`] and the switch it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentReport {
    /// The switch's UDI.
    pub udi: Udi,
    /// What happened.
    pub event: AgentEvent,
}

/// Why an agent loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentExit {
    /// Its cancellation token was cancelled.
    Cancelled,
    /// Its drain token was cancelled and the exchange in flight finished.
    Drained,
    /// The server said `terminate`.
    Terminated,
    /// The jobs channel is closed (the proxy logic is gone).
    JobsClosed,
}

/// Starts the agent loop of one switch. Jobs go out on `jobs`; reports on
/// `events` are best effort (dropped when the channel is full) except
/// [`AgentEvent::Terminated`], which is always delivered.
pub fn spawn_agent(
    shared: Arc<AgentShared>,
    identity: AgentIdentity,
    jobs: mpsc::Sender<JobRequest>,
    events: mpsc::Sender<AgentReport>,
    cancel: CancellationToken,
) -> JoinHandle<AgentExit> {
    tokio::spawn(Agent::new(shared, identity, jobs, events, cancel).run())
}

/// The agent of one switch; [`spawn_agent`] runs one in a task.
#[derive(Debug)]
pub struct Agent {
    shared: Arc<AgentShared>,
    identity: AgentIdentity,
    jobs: mpsc::Sender<JobRequest>,
    events: mpsc::Sender<AgentReport>,
    cancel: CancellationToken,
    /// Stops the loop between exchanges (see [`Agent::draining_on`]).
    drain: CancellationToken,
    sid: Option<String>,
    counter: u64,
    pacer: Pacer,
}

/// What happened in one exchange (work-request to `bye`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Exchange {
    /// Jobs run (backoffs not counted).
    jobs: u32,
    /// A job failed or the server's message could not be parsed.
    failed: bool,
    /// The last backoff's instruction.
    backoff: Option<BackoffAction>,
    /// An HTTP exchange failed.
    transport: bool,
    /// The jobs channel is closed.
    jobs_closed: bool,
}

/// What to do after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Wait this long (before jitter), then ask again.
    After(Duration),
    /// A backoff: wait this long (before jitter), then ask again.
    Backoff(Duration),
    /// Stop.
    Stop(AgentExit),
}

/// The pacing state of one client (pure; see the module documentation).
#[derive(Clone, Debug)]
struct Pacer {
    pacing: Pacing,
    retry: RetryPolicy,
    idle: Duration,
    /// Empty or failed exchanges in a row.
    streak: u32,
    /// Transport failures in a row.
    errors: u32,
}

/// `base` doubled `n - 1` times, capped at `cap`.
fn doubled(base: Duration, n: u32, cap: Duration) -> Duration {
    let factor = 1u32 << n.saturating_sub(1).min(20);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

impl Pacer {
    fn new(profile: &PnpProfile) -> Self {
        Self {
            pacing: profile.pacing.clone(),
            retry: profile.retry.clone(),
            idle: profile.pacing.idle_interval,
            streak: 0,
            errors: 0,
        }
    }

    /// Delay before retrying after a transport failure; counts it.
    fn transport_failure(&mut self) -> Duration {
        self.errors = self.errors.saturating_add(1);
        doubled(self.retry.initial, self.errors, self.retry.max)
    }

    fn next(&mut self, exchange: &Exchange) -> Next {
        if exchange.jobs_closed {
            return Next::Stop(AgentExit::JobsClosed);
        }
        match exchange.backoff {
            Some(BackoffAction::Terminate) => return Next::Stop(AgentExit::Terminated),
            Some(BackoffAction::DefaultMinutes(minutes)) => {
                self.idle = Duration::from_secs(u64::from(minutes) * 60);
            }
            _ => {}
        }
        if exchange.transport {
            return Next::After(self.transport_failure());
        }
        self.errors = 0;
        match exchange.backoff {
            Some(BackoffAction::CallbackAfter(after)) => {
                self.streak = 0;
                Next::Backoff(after.max(self.pacing.min_interval))
            }
            Some(BackoffAction::DefaultMinutes(_)) => {
                self.streak = 0;
                Next::Backoff(self.idle)
            }
            _ if exchange.failed || exchange.jobs == 0 => {
                self.streak = self.streak.saturating_add(1);
                Next::After(doubled(self.pacing.min_interval, self.streak, self.idle))
            }
            _ => {
                self.streak = 0;
                Next::After(Duration::ZERO)
            }
        }
    }
}

/// `d` scaled by a random factor in 0.9..=1.1.
fn jitter(d: Duration) -> Duration {
    if d.is_zero() {
        d
    } else {
        d.mul_f64(rand::random_range(0.9..=1.1))
    }
}

impl Agent {
    /// An agent for `identity`; [`Agent::run`] runs it.
    pub fn new(
        shared: Arc<AgentShared>,
        identity: AgentIdentity,
        jobs: mpsc::Sender<JobRequest>,
        events: mpsc::Sender<AgentReport>,
        cancel: CancellationToken,
    ) -> Self {
        let pacer = Pacer::new(&shared.profile);
        Self {
            shared,
            identity,
            jobs,
            events,
            cancel,
            drain: CancellationToken::new(),
            sid: None,
            counter: 0,
            pacer,
        }
    }

    /// Makes the loop stop when `drain` is cancelled, but only between
    /// exchanges: an exchange in flight (and the job it runs) finishes
    /// against the server it started with. The loop then ends with
    /// [`AgentExit::Drained`].
    pub fn draining_on(mut self, drain: CancellationToken) -> Self {
        self.drain = drain;
        self
    }

    /// Runs the loop until cancelled, terminated by the server, or the
    /// jobs channel closes. Cancelling drops any request or job in flight.
    pub async fn run(mut self) -> AgentExit {
        let cancel = self.cancel.clone();
        let exit = tokio::select! {
            () = cancel.cancelled() => AgentExit::Cancelled,
            exit = self.work() => exit,
        };
        log::info!("PnP agent for {} stopped: {exit:?}", self.identity.udi);
        if exit == AgentExit::Terminated {
            let report = AgentReport {
                udi: self.identity.udi.clone(),
                event: AgentEvent::Terminated,
            };
            // Only fails if the proxy logic is gone, which then needs no report.
            let _ = self.events.send(report).await;
        }
        exit
    }

    /// The HELLO and exchange futures (hyper's request and response inline)
    /// are boxed while they run, so that the agent at rest between
    /// exchanges, thousands of them at once, is a small task.
    async fn work(&mut self) -> AgentExit {
        let drain = self.drain.clone();
        tokio::select! {
            () = drain.cancelled() => return AgentExit::Drained,
            () = Box::pin(self.hello()) => {}
        }
        let mut wait = Duration::ZERO;
        let mut last_start: Option<Instant> = None;
        loop {
            let mut at = Instant::now() + wait;
            if let Some(last) = last_start {
                at = at.max(last + self.pacer.pacing.min_cycle);
            }
            tokio::select! {
                () = drain.cancelled() => return AgentExit::Drained,
                () = tokio::time::sleep_until(at) => {}
            }
            last_start = Some(Instant::now());
            let exchange = Box::pin(self.exchange()).await;
            wait = match self.pacer.next(&exchange) {
                Next::Stop(exit) => return exit,
                Next::After(d) => jitter(d),
                Next::Backoff(d) => {
                    let d = jitter(d);
                    self.emit(AgentEvent::Backoff {
                        until: Instant::now() + d,
                    });
                    d
                }
            };
            log::debug!(
                "PnP agent for {}: next work-request in {:?}",
                self.identity.udi,
                wait
            );
        }
    }

    /// `GET /pnp/HELLO` until the server answers 200.
    async fn hello(&mut self) {
        loop {
            self.shared.stats.count(PnpExchange::Hello);
            match self.shared.call(&self.shared.endpoints.hello, None).await {
                Ok(_) => {
                    self.pacer.errors = 0;
                    self.emit(AgentEvent::Hello);
                    return;
                }
                Err(error) => {
                    self.transport_error(error);
                    tokio::time::sleep(jitter(self.pacer.transport_failure())).await;
                }
            }
        }
    }

    /// Best-effort report.
    fn emit(&self, event: AgentEvent) {
        let report = AgentReport {
            udi: self.identity.udi.clone(),
            event,
        };
        if let Err(mpsc::error::TrySendError::Full(report)) = self.events.try_send(report) {
            log::debug!("PnP agent events full, dropped {:?}", report.event);
        }
    }

    fn transport_error(&self, error: TransportError) {
        log::warn!("PnP agent for {}: {error}", self.identity.udi);
        self.emit(AgentEvent::TransportError {
            error: error.to_string(),
        });
    }

    fn envelope(&self) -> Envelope {
        Envelope::agent(self.identity.udi.clone(), self.sid.clone())
    }

    /// Takes the session token and checks the UDI of a server message.
    fn note_envelope(&mut self, envelope: &Envelope) {
        if let Some(sid) = &envelope.sid {
            self.sid = Some(sid.clone());
        }
        if let Some(udi) = &envelope.udi
            && *udi != self.identity.udi
        {
            log::warn!(
                "PnP agent for {}: server message names UDI {udi}",
                self.identity.udi
            );
        }
    }

    /// One exchange: work-request, then jobs and responses until `bye`.
    async fn exchange(&mut self) -> Exchange {
        let mut exchange = Exchange::default();
        self.counter += 1;
        let correlator = codec::correlator(self.counter, rand::random());
        let work_request = WorkRequest {
            correlator: correlator.clone(),
            udi: Some(self.identity.udi.clone()),
            hostname: self.identity.hostname.clone(),
            auth_required: false,
            via_proxy: self.shared.profile.via_proxy,
        };
        let body = codec::encode_work_request(&self.envelope(), &work_request);
        self.emit(AgentEvent::WorkRequestSent {
            correlator: correlator.clone(),
        });
        self.shared.stats.count(PnpExchange::WorkRequest);
        let endpoint = &self.shared.endpoints.work_request;
        let mut answer = match self.shared.call(endpoint, Some(body)).await {
            Ok(answer) => answer,
            Err(error) => {
                self.transport_error(error);
                exchange.transport = true;
                return exchange;
            }
        };
        let mut expected = correlator;
        let mut step = 0u32;
        loop {
            let message = match codec::parse_server_message(&answer) {
                Ok(message) => message,
                Err(error) => {
                    log::warn!(
                        "PnP agent for {}: unparsable server message: {error}",
                        self.identity.udi
                    );
                    self.shared.stats.count_error(PnpErrorKind::MalformedXml);
                    exchange.failed = true;
                    self.send_fault(&error, &mut exchange).await;
                    return exchange;
                }
            };
            self.note_envelope(&message.envelope);
            let request = match message.body {
                ServerBody::Bye { correlator } => {
                    self.shared.stats.count(PnpExchange::Bye);
                    if step == 0 {
                        self.shared.stats.count(PnpExchange::NoWork);
                    }
                    if correlator.as_ref().is_some_and(|c| *c != expected) {
                        log::warn!(
                            "PnP agent for {}: bye correlator {:?} does not match {expected}",
                            self.identity.udi,
                            correlator.unwrap_or_default()
                        );
                    }
                    return exchange;
                }
                ServerBody::Request(request) => request,
            };
            self.shared.stats.count(PnpExchange::job(&request.job));
            if step >= self.shared.profile.pacing.max_chain {
                log::warn!(
                    "PnP agent for {}: over {} requests in one exchange, ending it",
                    self.identity.udi,
                    self.shared.profile.pacing.max_chain
                );
                self.shared.stats.count_error(PnpErrorKind::ChainLimit);
                exchange.failed = true;
                return exchange;
            }
            if step == 0 && request.correlator != expected {
                log::warn!(
                    "PnP agent for {}: request correlator {} does not match work-request {expected}",
                    self.identity.udi,
                    request.correlator
                );
            }
            let response = match &request.job {
                Job::Backoff(backoff) => {
                    exchange.backoff = Some(backoff.action.clone());
                    Response::ok(Service::Backoff, request.correlator.clone())
                }
                _ => {
                    exchange.jobs += 1;
                    let response = self.run_job(request, &mut exchange).await;
                    exchange.failed |= !response.success;
                    response
                }
            };
            expected = response.correlator.clone();
            step += 1;
            match self.post_response(&response).await {
                Some(next) => answer = next,
                None => {
                    exchange.transport = true;
                    return exchange;
                }
            }
        }
    }

    /// Hands a job to the proxy logic and waits for its response.
    async fn run_job(&mut self, request: Request, exchange: &mut Exchange) -> Response {
        let service = request.job.service();
        let correlator = request.correlator.clone();
        self.emit(AgentEvent::JobReceived {
            service: service.clone(),
        });
        let (reply, result) = oneshot::channel();
        let job = JobRequest {
            udi: self.identity.udi.clone(),
            mac: self.identity.mac.clone(),
            request,
            reply,
        };
        let limit = self.shared.profile.job_timeout;
        let jobs = self.jobs.clone();
        let outcome = tokio::time::timeout(limit, async move {
            match jobs.send(job).await {
                Ok(()) => result.await.map_err(|_| false),
                Err(_) => Err(true),
            }
        })
        .await;
        let unhandled = |message: &str| {
            Response::failed(
                service.clone(),
                correlator.clone(),
                ErrorInfo {
                    severity: codec::ERROR_SEVERITY_ERROR.to_owned(),
                    code: ERROR_CODE_JOB_UNHANDLED.to_owned(),
                    message: message.to_owned(),
                },
            )
        };
        let response = match outcome {
            Ok(Ok(mut response)) => {
                if response.correlator != correlator || response.service != service {
                    log::warn!(
                        "PnP agent for {}: job result for {} {} answers {} {}; fixed",
                        self.identity.udi,
                        service,
                        correlator,
                        response.service,
                        response.correlator
                    );
                    response.correlator = correlator.clone();
                    response.service = service.clone();
                }
                response
            }
            Ok(Err(closed)) => {
                if closed {
                    exchange.jobs_closed = true;
                    unhandled("SMI PROXY: job not taken, the proxy is shutting down")
                } else {
                    unhandled("SMI PROXY: job ended without a result")
                }
            }
            Err(_) => Response::failed(
                service.clone(),
                correlator.clone(),
                ErrorInfo {
                    severity: codec::ERROR_SEVERITY_ERROR.to_owned(),
                    code: ERROR_CODE_JOB_TIMEOUT.to_owned(),
                    message: format!("SMI PROXY: job timed out after {} s", limit.as_secs()),
                },
            ),
        };
        self.emit(AgentEvent::JobDone {
            service,
            success: response.success,
        });
        response
    }

    /// Posts a response, retrying transport failures; the server's answer,
    /// or `None` when every attempt failed.
    async fn post_response(&self, response: &Response) -> Option<Bytes> {
        let body = codec::encode_response(&self.envelope(), response);
        self.shared.stats.count(if response.success {
            PnpExchange::WorkResponseSuccess
        } else {
            PnpExchange::WorkResponseFailure
        });
        let retry = &self.shared.profile.retry;
        let attempts = retry.response_attempts.max(1);
        for attempt in 1..=attempts {
            let endpoint = &self.shared.endpoints.work_response;
            match self.shared.call(endpoint, Some(body.clone())).await {
                Ok(answer) => return Some(answer),
                Err(error) => {
                    self.transport_error(error);
                    if attempt < attempts {
                        let delay = doubled(retry.initial, attempt, retry.max);
                        tokio::time::sleep(jitter(delay)).await;
                    }
                }
            }
        }
        None
    }

    /// Posts a fault for an unparsable server message; its answer is ignored.
    async fn send_fault(&self, error: &codec::PnpError, exchange: &mut Exchange) {
        let fault = Fault::client(format!("{FAULT_STRING_UNPARSABLE}: {error}"), "struct");
        let body = codec::encode_fault(&self.envelope(), &fault);
        self.shared.stats.count(PnpExchange::Fault);
        let endpoint = &self.shared.endpoints.work_response;
        if let Err(error) = self.shared.call(endpoint, Some(body)).await {
            self.transport_error(error);
            exchange.transport = true;
        }
    }
}

#[cfg(test)]
mod tests;
