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
//!
//! # Layout
//!
//! - `profile`: the [`PnpProfile`] and its settings ([`TlsTrust`],
//!   [`RetryPolicy`], [`Pacing`]) and [`AgentConfigError`];
//! - `outcome`: how exchanges turn out: [`TransportError`], the
//!   [`PnpExchange`] and [`PnpErrorKind`] labels and the [`PnpStats`]
//!   counters;
//! - `transport`: [`AgentShared`], the HTTP(S) client every agent shares,
//!   and [`FetchError`];
//! - `tls`: the rustls configuration, the pinned-certificate verifier and
//!   the wording of TLS failures;
//! - `interface`: what an agent and the proxy logic pass each other
//!   ([`AgentIdentity`], [`JobRequest`], [`AgentEvent`], [`AgentReport`],
//!   [`AgentExit`]);
//! - `pacing`: when the next work-request goes out (pure);
//! - `run`: the agent task itself ([`spawn_agent`], [`Agent`]).
//!
//! [`Response`]: super::codec::Response
//! [`Response::refused`]: super::codec::Response::refused

mod interface;
mod outcome;
mod pacing;
mod profile;
mod run;
mod tls;
mod transport;

pub use interface::{AgentEvent, AgentExit, AgentIdentity, AgentReport, JobRequest};
pub use outcome::{PnpErrorKind, PnpExchange, PnpStats, TransportError};
pub use profile::{AgentConfigError, Pacing, PnpProfile, RetryPolicy, TlsTrust};
pub use run::{Agent, spawn_agent};
pub use transport::{AgentShared, FetchError};

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

#[cfg(test)]
mod tests;
