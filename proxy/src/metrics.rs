//! The Prometheus endpoint: `GET /metrics` on a local address (default
//! `127.0.0.1:9786`) answers the text exposition format 0.0.4, encoded by
//! `prometheus-client` from a [`Registry`] in which each subsystem
//! registered its own metrics (and collectors read the rest at scrape time).
//!
//! ```text
//! # HELP smi_proxy_clients Clients in the proxy database.
//! # TYPE smi_proxy_clients gauge
//! smi_proxy_clients 12
//! ```
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `Content-Type` of the exposition (`text/plain; version=0.0.4`).
pub const CONTENT_TYPE_TEXT: &str = prometheus_text::CONTENT_TYPE;
/// Connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The exposition text of `registry`, or `None` if a collector failed.
pub fn render(registry: &Registry) -> Option<String> {
    let mut out = String::new();
    prometheus_text::encode(&mut out, registry).ok()?;
    Some(out)
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("metrics endpoint {addr}: cannot listen: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
}

/// A bound endpoint, not yet serving.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind_err = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self { listener, addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves scrapes of `registry` until `cancel`, then lets connections
    /// in progress finish their current request. Each scrape is encoded on
    /// a blocking-pool thread (collectors may take locks).
    pub async fn run(self, registry: Arc<Registry>, cancel: CancellationToken) {
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
                    tracing::warn!("metrics endpoint {}: accept: {e}", self.addr);
                    // Out of descriptors, typically: give others a moment.
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::debug!("metrics endpoint {}: too many connections", self.addr);
                continue;
            };
            let registry = Arc::clone(&registry);
            let cancel = cancel.clone();
            tracker.spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let registry = Arc::clone(&registry);
                    async move { Ok::<_, Infallible>(answer(&req, registry).await) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    result = conn.as_mut() => result,
                    () = cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!("metrics connection: {e}");
                }
            });
        }
        tracker.close();
        tracker.wait().await;
    }
}

/// [`MetricsServer::bind`] then [`MetricsServer::run`].
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    cancel: CancellationToken,
) -> Result<(), MetricsError> {
    MetricsServer::bind(addr).await?.run(registry, cancel).await;
    Ok(())
}

async fn answer(req: &Request<Incoming>, registry: Arc<Registry>) -> Response<Full<Bytes>> {
    let text = |status, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    let readable = req.method() == Method::GET || req.method() == Method::HEAD;
    match req.uri().path() {
        "/metrics" if readable => {
            match tokio::task::spawn_blocking(move || render(&registry)).await {
                Ok(Some(body)) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
                    r
                }
                Ok(None) | Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics could not be rendered\n",
                ),
            }
        }
        "/" if readable => text(StatusCode::OK, "smi-pnp-proxy: see /metrics\n"),
        "/" | "/metrics" => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found; see /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use http_body_util::{BodyExt as _, Empty};
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
    use prometheus_client::metrics::counter::{ConstCounter, Counter};
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;

    /// Counts its scrapes.
    #[derive(Debug)]
    struct Counting(AtomicU64);

    impl Collector for Counting {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            let counter = ConstCounter::new(n);
            counter.encode(encoder.encode_descriptor(
                "smi_proxy_scrapes",
                "Scrapes so far.",
                None,
                counter.metric_type(),
            )?)
        }
    }

    fn counting() -> Arc<Registry> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Counting(AtomicU64::new(0))));
        Arc::new(registry)
    }

    #[test]
    fn registered_families_keep_their_exposition_names() {
        let mut registry = Registry::default();
        let errors = Family::<[(&str, &str); 1], Counter>::default();
        errors.get_or_create(&[("reason", "tls")]).inc_by(2);
        registry.register("smi_proxy_pnp_errors", "Errors,\nby \"reason\"", errors);
        let clients = Gauge::<i64>::default();
        clients.set(12);
        registry.register("smi_proxy_clients", "Clients", clients);
        let odd = Family::<[(&str, &str); 1], Counter>::default();
        odd.get_or_create(&[("state", "a \"quoted\"\\\nvalue")])
            .inc();
        registry.register("smi_proxy_odd", "Odd", odd);
        assert_eq!(
            render(&registry).as_deref(),
            Some(
                "# HELP smi_proxy_pnp_errors_total Errors,\\nby \"reason\".\n\
                 # TYPE smi_proxy_pnp_errors_total counter\n\
                 smi_proxy_pnp_errors_total{reason=\"tls\"} 2\n\
                 # HELP smi_proxy_clients Clients.\n\
                 # TYPE smi_proxy_clients gauge\n\
                 smi_proxy_clients 12\n\
                 # HELP smi_proxy_odd_total Odd.\n\
                 # TYPE smi_proxy_odd_total counter\n\
                 smi_proxy_odd_total{state=\"a \\\"quoted\\\"\\\\\\nvalue\"} 1\n"
            )
        );
    }

    async fn get(
        addr: SocketAddr,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Option<String>, String), Box<dyn std::error::Error + Send + Sync>>
    {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())?;
        let res = sender.send_request(req).await?;
        let status = res.status();
        let ctype = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.into_body().collect().await?.to_bytes();
        drop(sender);
        let _ = driver.await;
        Ok((status, ctype, String::from_utf8(body.to_vec())?))
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let server = MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(server.run(counting(), cancel.clone()));

        let (status, ctype, body) = get(addr, Method::GET, "/metrics").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype.as_deref(), Some(CONTENT_TYPE_TEXT));
        assert_eq!(
            body,
            "# HELP smi_proxy_scrapes_total Scrapes so far.\n\
             # TYPE smi_proxy_scrapes_total counter\n\
             smi_proxy_scrapes_total 1\n"
        );
        let (_, _, body) = get(addr, Method::GET, "/metrics").await?;
        assert!(body.ends_with("smi_proxy_scrapes_total 2\n"), "{body}");
        let (status, _, body) = get(addr, Method::HEAD, "/metrics").await?;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        assert_eq!(get(addr, Method::GET, "/").await?.0, StatusCode::OK);
        assert_eq!(
            get(addr, Method::GET, "/nope").await?.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(addr, Method::POST, "/metrics").await?.0,
            StatusCode::METHOD_NOT_ALLOWED
        );

        cancel.cancel();
        task.await?;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn a_taken_address_is_reported() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let first = MetricsServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        match MetricsServer::bind(first.local_addr()).await {
            Err(e @ MetricsError::Bind { .. }) => {
                assert!(e.to_string().contains("cannot listen"), "{e}")
            }
            Ok(_) => panic!("bound twice"),
        }
        Ok(())
    }
}
