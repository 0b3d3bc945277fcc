//! The Prometheus endpoint: `GET /metrics` on a local address (default
//! `127.0.0.1:9786`) answers the text exposition format 0.0.4 that a
//! [`MetricsSource`] renders, typically with an [`Exposition`].
//!
//! ```text
//! # HELP smi_proxy_clients Clients in the proxy database.
//! # TYPE smi_proxy_clients gauge
//! smi_proxy_clients 12
//! ```
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Connections served at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What `/metrics` shows; called on a blocking-pool thread per scrape.
pub trait MetricsSource: Send + Sync {
    /// The exposition text (e.g. [`Exposition::finish`]).
    fn render(&self) -> String;
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

    /// Serves scrapes until `cancel`, then lets connections in progress
    /// finish their current request.
    pub async fn run(self, source: Arc<dyn MetricsSource>, cancel: CancellationToken) {
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
                    log::warn!("metrics endpoint {}: accept: {e}", self.addr);
                    // Out of descriptors, typically: give others a moment.
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                log::debug!("metrics endpoint {}: too many connections", self.addr);
                continue;
            };
            let source = Arc::clone(&source);
            let cancel = cancel.clone();
            tracker.spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let source = Arc::clone(&source);
                    async move { Ok::<_, Infallible>(answer(&req, source).await) }
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
                    log::debug!("metrics connection: {e}");
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
    source: Arc<dyn MetricsSource>,
    cancel: CancellationToken,
) -> Result<(), MetricsError> {
    MetricsServer::bind(addr).await?.run(source, cancel).await;
    Ok(())
}

async fn answer(req: &Request<Incoming>, source: Arc<dyn MetricsSource>) -> Response<Full<Bytes>> {
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
            match tokio::task::spawn_blocking(move || source.render()).await {
                Ok(body) => {
                    let mut r = Response::new(Full::new(Bytes::from(body)));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
                    r
                }
                Err(_) => text(
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

/// Builds exposition text: families with `# HELP` and `# TYPE` lines, then
/// their samples. Declare each family once. Names are made valid (other
/// characters become `_`); label values and help text are escaped.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// The samples of one family, written as they are added.
#[derive(Debug)]
pub struct Family<'a> {
    out: &'a mut String,
    name: String,
}

/// A number a sample can carry.
pub trait MetricValue {
    /// Appends the value as Prometheus writes it.
    fn write_to(&self, out: &mut String);
}

macro_rules! integer_values {
    ($($t:ty),*) => {$(
        impl MetricValue for $t {
            fn write_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_values!(u8, u16, u32, u64, usize, i32, i64);

impl MetricValue for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

impl MetricValue for bool {
    fn write_to(&self, out: &mut String) {
        out.push(if *self { '1' } else { '0' });
    }
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a counter family.
    pub fn counter(&mut self, name: &str, help: &str) -> Family<'_> {
        self.family(name, help, "counter")
    }

    /// Starts a gauge family.
    pub fn gauge(&mut self, name: &str, help: &str) -> Family<'_> {
        self.family(name, help, "gauge")
    }

    fn family(&mut self, name: &str, help: &str, kind: &str) -> Family<'_> {
        let name = sanitize(name, true);
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// Adds a sample with `labels` (name, value).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl MetricValue) -> &mut Self {
        self.out.push_str(&self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{}=\"{}\"", sanitize(k, false), escape(v, true));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(self.out);
        self.out.push('\n');
        self
    }

    /// Adds the family's one sample, without labels.
    pub fn value(&mut self, value: impl MetricValue) -> &mut Self {
        self.sample(&[], value)
    }

    /// Adds one sample per `(label value, value)` of `samples`, each with
    /// the one label `label`.
    pub fn labelled<'v, V: MetricValue>(
        &mut self,
        label: &str,
        samples: impl IntoIterator<Item = (&'v str, V)>,
    ) -> &mut Self {
        for (label_value, value) in samples {
            self.sample(&[(label, label_value)], value);
        }
        self
    }
}

/// A valid metric (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or label name
/// (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn sanitize(name: &str, metric: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Escapes `\` and line feeds, and `"` in label values.
fn escape(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use http_body_util::{BodyExt as _, Empty};

    use super::*;

    #[test]
    fn families_are_formatted_and_escaped() {
        let mut m = Exposition::new();
        m.counter(
            "smi_proxy_smi_packets_total",
            "SMI packets seen.\nPer VLAN \\ state.",
        )
        .sample(&[("vlan", "1"), ("state", "admitted")], 42u64)
        .sample(&[("vlan", "2"), ("state", "a \"quoted\"\\\nvalue")], 7u64);
        m.gauge("smi-proxy clients", "Clients.").value(12usize);
        m.gauge("9lives", "Odd name.")
            .sample(&[("bad-label", "x")], 0.5f64)
            .sample(&[("2x", "y")], f64::NAN)
            .sample(&[], f64::INFINITY)
            .sample(&[], f64::NEG_INFINITY)
            .sample(&[], true);
        assert_eq!(
            m.finish(),
            "# HELP smi_proxy_smi_packets_total SMI packets seen.\\nPer VLAN \\\\ state.\n\
             # TYPE smi_proxy_smi_packets_total counter\n\
             smi_proxy_smi_packets_total{vlan=\"1\",state=\"admitted\"} 42\n\
             smi_proxy_smi_packets_total{vlan=\"2\",state=\"a \\\"quoted\\\"\\\\\\nvalue\"} 7\n\
             # HELP smi_proxy_clients Clients.\n\
             # TYPE smi_proxy_clients gauge\n\
             smi_proxy_clients 12\n\
             # HELP _9lives Odd name.\n\
             # TYPE _9lives gauge\n\
             _9lives{bad_label=\"x\"} 0.5\n\
             _9lives{_2x=\"y\"} NaN\n\
             _9lives +Inf\n\
             _9lives -Inf\n\
             _9lives 1\n"
        );
    }

    #[test]
    fn a_labelled_family_has_one_sample_per_pair() {
        let mut m = Exposition::new();
        m.counter("smi_proxy_pnp_errors_total", "Errors.")
            .labelled("reason", [("tls", 2u64), ("timeout", 0)]);
        assert_eq!(
            m.finish(),
            "# HELP smi_proxy_pnp_errors_total Errors.\n\
             # TYPE smi_proxy_pnp_errors_total counter\n\
             smi_proxy_pnp_errors_total{reason=\"tls\"} 2\n\
             smi_proxy_pnp_errors_total{reason=\"timeout\"} 0\n"
        );
    }

    /// Counts its scrapes.
    struct Counting(AtomicU64);

    impl MetricsSource for Counting {
        fn render(&self) -> String {
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            let mut m = Exposition::new();
            m.counter("smi_proxy_scrapes_total", "Scrapes so far.")
                .value(n);
            m.finish()
        }
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
        let task = tokio::spawn(server.run(Arc::new(Counting(AtomicU64::new(0))), cancel.clone()));

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
