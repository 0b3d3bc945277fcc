//! How exchanges with the server turn out: why one failed
//! ([`TransportError`]), the labels of messages and failures
//! ([`PnpExchange`], [`PnpErrorKind`]) and their counters ([`PnpStats`]).
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::pnp::codec::Job;

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
    /// File download started ([`AgentShared::fetch`](super::AgentShared::fetch)).
    FileFetch,
}

impl PnpExchange {
    /// Every kind, in a fixed order.
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
    /// [`Pacing::max_chain`](super::Pacing::max_chain) requests.
    ChainLimit,
}

impl PnpErrorKind {
    /// Every reason, in a fixed order.
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

/// One label, name and value, as the counter families here key them.
type Label = [(&'static str, &'static str); 1];

/// Counters of every agent sharing one [`AgentShared`](super::AgentShared)
/// (all switches together): messages by [`PnpExchange`], failures by
/// [`PnpErrorKind`]. Monotonic; every series exists (at 0) from the start.
#[derive(Debug)]
pub struct PnpStats {
    exchange_family: Family<Label, Counter>,
    error_family: Family<Label, Counter>,
    exchanges: [Counter; PnpExchange::ALL.len()],
    errors: [Counter; PnpErrorKind::ALL.len()],
}

impl Default for PnpStats {
    fn default() -> Self {
        let exchange_family = Family::<Label, Counter>::default();
        let error_family = Family::<Label, Counter>::default();
        Self {
            exchanges: PnpExchange::ALL
                .map(|k| exchange_family.get_or_create_owned(&[("kind", k.label())])),
            errors: PnpErrorKind::ALL
                .map(|r| error_family.get_or_create_owned(&[("reason", r.label())])),
            exchange_family,
            error_family,
        }
    }
}

impl PnpStats {
    /// Registers `smi_proxy_pnp_exchanges_total{kind}` and
    /// `smi_proxy_pnp_errors_total{reason}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "smi_proxy_pnp_exchanges",
            "PnP messages exchanged with the server, all switches together, by kind",
            self.exchange_family.clone(),
        );
        registry.register(
            "smi_proxy_pnp_errors",
            "Failed PnP exchanges with the server, by reason",
            self.error_family.clone(),
        );
    }

    /// Counts one `kind` message.
    pub fn count(&self, kind: PnpExchange) {
        self.exchanges[kind as usize].inc();
    }

    /// Counts one failure for `reason`.
    pub fn count_error(&self, reason: PnpErrorKind) {
        self.errors[reason as usize].inc();
    }

    /// Messages of `kind` so far.
    pub fn exchange(&self, kind: PnpExchange) -> u64 {
        self.exchanges[kind as usize].get()
    }

    /// Failures for `reason` so far.
    pub fn error(&self, reason: PnpErrorKind) -> u64 {
        self.errors[reason as usize].get()
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
