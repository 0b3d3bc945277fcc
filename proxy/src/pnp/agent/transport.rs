//! The HTTP(S) transport every agent shares: [`AgentShared`] (endpoints,
//! pooled client, caps on requests in flight, counters), one counted HTTP
//! exchange, and file downloads ([`FetchError`]).
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;

use super::tls::{describe, find_tls_in, tls_config};
use super::{
    AGENT_NAME, AgentConfigError, CONTENT_TYPE_XML, PATH_HELLO, PATH_WORK_REQUEST,
    PATH_WORK_RESPONSE, PnpErrorKind, PnpExchange, PnpProfile, PnpStats, TransportError,
};
use crate::pnp::codec::BODY_CAP;

/// The connector every agent shares.
type Connector = HttpsConnector<HttpConnector>;

/// The three endpoint URIs of a server.
#[derive(Debug)]
pub(super) struct Endpoints {
    pub(super) hello: Uri,
    pub(super) work_request: Uri,
    pub(super) work_response: Uri,
}

/// What every agent loop shares: profile, endpoints, the pooled HTTP(S)
/// client, the caps on requests in flight, and the counters.
pub struct AgentShared {
    pub(super) profile: PnpProfile,
    pub(super) endpoints: Endpoints,
    client: Client<Connector, Full<Bytes>>,
    /// HELLOs, work-requests and file downloads.
    in_flight: Semaphore,
    /// Work-responses.
    answers: Semaphore,
    pub(super) stats: Arc<PnpStats>,
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
    pub(super) async fn call(
        &self,
        uri: &Uri,
        body: Option<String>,
    ) -> Result<Bytes, TransportError> {
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
pub(super) fn endpoints(url: &str) -> Result<(Endpoints, bool), AgentConfigError> {
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
