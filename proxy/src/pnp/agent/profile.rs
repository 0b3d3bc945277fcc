//! The PnP profile: which server an agent talks to and how (trust, retry
//! and pacing settings), and why a profile can be refused.
use std::path::PathBuf;
use std::time::Duration;

use super::DEFAULT_PROFILE_NAME;

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

/// How often one client may ask for work (see the [`pnp::agent`](super)
/// documentation).
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
    /// Limit on one file download ([`AgentShared::fetch`](super::AgentShared::fetch)).
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
