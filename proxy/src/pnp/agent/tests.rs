//! Agent tests against a tiny in-process hyper server on 127.0.0.1. Each
//! request the server receives is handed to the test as a [`Hit`], which
//! the test answers; timer tests run on tokio's paused clock.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::mac::Mac;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pacing::{Exchange, Next, Pacer};
use super::transport::{Endpoints, endpoints};
use super::*;
use crate::pnp::codec::{
    self, AgentBody, AgentMessage, ApplyTo, Backoff, BackoffAction, ConfigUpgrade, DeviceInfoReply,
    DeviceInfoType, Envelope, ImageInfo, Job, ReloadPolicy, Request, Response, ResponseBody,
    ServerBody, ServerMessage, Service, SmiRefusal, Source, WorkRequest,
};
use crate::udi::Udi;

const UDI: &str = "PID:WS-C2960X-48TS-L,VID:V05,SN:FOC1234X0AB";
const MAC: Mac = Mac([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);

fn udi() -> Udi {
    UDI.parse().expect("test UDI")
}

/// One request the test server received, waiting for the test's answer.
struct Hit {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: String,
    at: Instant,
    reply: oneshot::Sender<(StatusCode, String)>,
}

impl Hit {
    fn answer(self, body: impl Into<String>) {
        let _ = self.reply.send((StatusCode::OK, body.into()));
    }

    fn status(self, status: StatusCode) {
        let _ = self.reply.send((status, String::new()));
    }

    fn message(&self) -> AgentMessage {
        codec::parse_agent_message(self.body.as_bytes()).expect("agent message parses")
    }

    fn work_request(&self) -> WorkRequest {
        assert_eq!(
            (&self.method, self.path.as_str()),
            (&Method::POST, PATH_WORK_REQUEST)
        );
        match self.message().body {
            AgentBody::WorkRequest(w) => w,
            other => panic!("not a work-request: {other:?}"),
        }
    }

    fn response(&self) -> Response {
        assert_eq!(
            (&self.method, self.path.as_str()),
            (&Method::POST, PATH_WORK_RESPONSE)
        );
        match self.message().body {
            AgentBody::Response(r) => r,
            other => panic!("not a response: {other:?}"),
        }
    }
}

async fn handle(
    request: hyper::Request<Incoming>,
    hits: mpsc::Sender<Hit>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (reply, answer) = oneshot::channel();
    let hit = Hit {
        method,
        path,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        reply,
    };
    let (status, body) = match hits.send(hit).await {
        Ok(()) => answer
            .await
            .unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, String::new())),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    Ok(response)
}

/// Serves 127.0.0.1 on an ephemeral port, over TLS when `tls` is set.
async fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> (SocketAddr, mpsc::Receiver<Hit>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (hits, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hits = hits.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |r| handle(r, hits.clone()));
                match tls {
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// An agent for [`UDI`] talking to a test server.
struct Fixture {
    hits: mpsc::Receiver<Hit>,
    jobs: mpsc::Receiver<JobRequest>,
    events: mpsc::Receiver<AgentReport>,
    cancel: CancellationToken,
    /// Drains the agent between exchanges.
    drain: CancellationToken,
    agent: JoinHandle<AgentExit>,
    stats: Arc<PnpStats>,
}

impl Fixture {
    async fn start(tweak: impl FnOnce(&mut PnpProfile)) -> Self {
        let (addr, hits) = serve(None).await;
        let mut profile = PnpProfile::new(format!("http://{addr}"));
        profile.request_timeout = Duration::from_secs(10);
        tweak(&mut profile);
        Self::with_profile(profile, hits)
    }

    fn with_profile(profile: PnpProfile, hits: mpsc::Receiver<Hit>) -> Self {
        let shared = AgentShared::new(profile).expect("profile");
        let stats = shared.stats();
        let (jobs_tx, jobs) = mpsc::channel(4);
        let (events_tx, events) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let drain = CancellationToken::new();
        let identity = AgentIdentity {
            udi: udi(),
            hostname: Some("sw1".to_owned()),
            mac: MAC,
        };
        let agent = tokio::spawn(
            Agent::new(shared, identity, jobs_tx, events_tx, cancel.clone())
                .draining_on(drain.clone())
                .run(),
        );
        Self {
            hits,
            jobs,
            events,
            cancel,
            drain,
            agent,
            stats,
        }
    }

    async fn hit(&mut self) -> Hit {
        self.hits.recv().await.expect("test server runs")
    }

    /// Answers HELLO.
    async fn hello(&mut self) {
        let hit = self.hit().await;
        assert_eq!((&hit.method, hit.path.as_str()), (&Method::GET, PATH_HELLO));
        hit.answer("");
    }

    /// The next work-request.
    async fn work_request(&mut self) -> (Hit, WorkRequest) {
        let hit = self.hit().await;
        let request = hit.work_request();
        (hit, request)
    }

    /// The next event matching `wanted`, skipping others.
    async fn event(&mut self, wanted: impl Fn(&AgentEvent) -> bool) -> AgentEvent {
        loop {
            let report = self.events.recv().await.expect("agent reports");
            assert_eq!(report.udi, udi());
            if wanted(&report.event) {
                return report.event;
            }
        }
    }

    async fn stop(self) -> AgentExit {
        self.cancel.cancel();
        self.agent.await.expect("agent task")
    }
}

fn server_message(sid: Option<&str>, body: ServerBody) -> String {
    codec::encode_server_message(&ServerMessage {
        envelope: Envelope {
            udi: Some(udi()),
            sid: sid.map(str::to_owned),
            credentials: None,
        },
        body,
    })
}

fn job_xml(correlator: &str, job: Job) -> String {
    server_message(
        None,
        ServerBody::Request(Request {
            correlator: correlator.to_owned(),
            job,
        }),
    )
}

fn bye_xml(correlator: &str) -> String {
    server_message(
        None,
        ServerBody::Bye {
            correlator: Some(correlator.to_owned()),
        },
    )
}

fn backoff(action: BackoffAction) -> Job {
    Job::Backoff(Backoff {
        reason: Some("test".to_owned()),
        action,
    })
}

fn config_running() -> Job {
    Job::ConfigUpgrade(ConfigUpgrade {
        details: Some("all".to_owned()),
        source: Source {
            location: "http://192.0.2.1/configs/sw1.cfg".to_owned(),
            checksum: None,
        },
        apply_to: ApplyTo::Running,
        abort_on_syntax_fault: false,
        reload: ReloadPolicy::NoReload,
    })
}

/// Asserts `d` lies within ±10 % (plus a millisecond) of `nominal`.
fn assert_jittered(d: Duration, nominal: Duration) {
    let slack = Duration::from_millis(1);
    assert!(
        d + slack >= nominal.mul_f64(0.9) && d <= nominal.mul_f64(1.1) + slack,
        "{d:?} not within 10 % of {nominal:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn hello_is_retried_then_work_request_names_the_switch() {
    let mut f = Fixture::start(|_| {}).await;
    let first = f.hit().await;
    assert_eq!(first.path, PATH_HELLO);
    let t0 = first.at;
    first.status(StatusCode::SERVICE_UNAVAILABLE);
    let error = f
        .event(|e| matches!(e, AgentEvent::TransportError { .. }))
        .await;
    assert!(format!("{error:?}").contains("503"), "{error:?}");
    let second = f.hit().await;
    assert_eq!(
        (&second.method, second.path.as_str()),
        (&Method::GET, PATH_HELLO)
    );
    assert_jittered(second.at - t0, Duration::from_secs(1));
    second.answer("");
    f.event(|e| *e == AgentEvent::Hello).await;

    let (hit, request) = f.work_request().await;
    assert_eq!(hit.content_type.as_deref(), Some(CONTENT_TYPE_XML));
    let message = hit.message();
    assert_eq!(message.envelope.udi, Some(udi()));
    assert_eq!(message.envelope.sid, None);
    assert_eq!(request.udi, Some(udi()));
    assert_eq!(request.hostname.as_deref(), Some("sw1"));
    assert!(request.via_proxy);
    assert!(!request.auth_required);
    let random = request
        .correlator
        .strip_prefix("CiscoPnP-1.0-1-")
        .expect("correlator form");
    assert!(random.len() == 8 && random.chars().all(|c| c.is_ascii_hexdigit()));
    let sent = f
        .event(|e| matches!(e, AgentEvent::WorkRequestSent { .. }))
        .await;
    assert_eq!(
        sent,
        AgentEvent::WorkRequestSent {
            correlator: request.correlator.clone()
        }
    );
    hit.answer(bye_xml(&request.correlator));
    assert_eq!(f.stop().await, AgentExit::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn via_proxy_follows_the_profile() {
    let mut f = Fixture::start(|p| p.via_proxy = false).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    assert!(!request.via_proxy);
    hit.answer(bye_xml(&request.correlator));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn device_info_job_flows_to_the_proxy_logic_and_back_with_sid() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, first) = f.work_request().await;
    hit.answer(server_message(
        Some("S-1"),
        ServerBody::Request(Request {
            correlator: first.correlator.clone(),
            job: Job::DeviceInfo(DeviceInfoType::All),
        }),
    ));

    let job = f.jobs.recv().await.expect("job");
    assert_eq!(job.udi, udi());
    assert_eq!(job.mac, MAC);
    assert_eq!(job.request.correlator, first.correlator);
    assert_eq!(job.request.job, Job::DeviceInfo(DeviceInfoType::All));
    let reply = DeviceInfoReply {
        udi: Some(udi()),
        image: Some(ImageInfo {
            version_string: Some("15.2(7)E8".to_owned()),
            image_file: None,
        }),
        hardware: None,
    };
    let mut response = Response::ok(Service::DeviceInfo, first.correlator.clone());
    response.body = ResponseBody::DeviceInfo(reply.clone());
    assert!(job.respond(response));

    let hit = f.hit().await;
    let posted = hit.response();
    assert_eq!(hit.content_type.as_deref(), Some(CONTENT_TYPE_XML));
    assert_eq!(hit.message().envelope.sid.as_deref(), Some("S-1"));
    assert_eq!(posted.correlator, first.correlator);
    assert_eq!(posted.service, Service::DeviceInfo);
    assert!(posted.success);
    assert_eq!(posted.body, ResponseBody::DeviceInfo(reply));
    let done_at = hit.at;
    hit.answer(bye_xml(&first.correlator));

    // bye after a successful job: the next work-request follows at once
    // (here: the one-second floor after the previous one).
    let (hit, second) = f.work_request().await;
    assert!(
        hit.at - done_at <= Duration::from_secs(1),
        "{:?}",
        hit.at - done_at
    );
    assert_eq!(hit.message().envelope.sid.as_deref(), Some("S-1"));
    assert!(second.correlator.starts_with("CiscoPnP-1.0-2-"));
    hit.answer(bye_xml(&second.correlator));

    f.event(|e| {
        *e == AgentEvent::JobReceived {
            service: Service::DeviceInfo,
        }
    })
    .await;
    f.event(|e| {
        *e == AgentEvent::JobDone {
            service: Service::DeviceInfo,
            success: true,
        }
    })
    .await;
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn wrong_correlator_or_service_from_the_proxy_logic_is_corrected() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(&request.correlator, Job::Capability));
    let job = f.jobs.recv().await.expect("job");
    let mut response = Response::ok(Service::Topology, "other");
    response.body = ResponseBody::smi_proxy_capabilities();
    job.respond(response);
    let hit = f.hit().await;
    let posted = hit.response();
    assert_eq!(posted.service, Service::Capability);
    assert_eq!(posted.correlator, request.correlator);
    hit.answer(bye_xml(&request.correlator));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn callback_after_is_acknowledged_and_waited() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, first) = f.work_request().await;
    let t0 = hit.at;
    hit.answer(job_xml(
        &first.correlator,
        backoff(BackoffAction::CallbackAfter(Duration::from_secs(300))),
    ));
    let hit = f.hit().await;
    let ack = hit.response();
    assert_eq!(
        ack,
        Response::ok(Service::Backoff, first.correlator.clone())
    );
    hit.answer(bye_xml(&first.correlator));
    let AgentEvent::Backoff { until } = f.event(|e| matches!(e, AgentEvent::Backoff { .. })).await
    else {
        unreachable!()
    };
    assert_jittered(until - t0, Duration::from_secs(300));

    let (hit, second) = f.work_request().await;
    assert_jittered(hit.at - t0, Duration::from_secs(300));
    assert!(hit.at + Duration::from_millis(1) >= until);
    assert!(f.jobs.try_recv().is_err(), "a backoff is not a job");
    hit.answer(bye_xml(&second.correlator));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn default_minutes_replaces_the_idle_interval() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, first) = f.work_request().await;
    let mut last = hit.at;
    hit.answer(job_xml(
        &first.correlator,
        backoff(BackoffAction::DefaultMinutes(10)),
    ));
    let hit = f.hit().await;
    assert!(hit.response().success);
    hit.answer(bye_xml(&first.correlator));

    let (hit, request) = f.work_request().await;
    assert_jittered(hit.at - last, Duration::from_secs(600));
    last = hit.at;
    hit.answer(bye_xml(&request.correlator));
    // Bare byes: 2 s doubling per repeat, capped by the new idle interval
    // (10 min, above the profile's 5).
    let mut nominal = Duration::from_secs(2);
    for _ in 0..10 {
        let (hit, request) = f.work_request().await;
        assert_jittered(hit.at - last, nominal);
        last = hit.at;
        hit.answer(bye_xml(&request.correlator));
        nominal = (nominal * 2).min(Duration::from_secs(600));
    }
    assert_eq!(nominal, Duration::from_secs(600));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_drained_agent_finishes_its_exchange_then_stops() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(
        &request.correlator,
        Job::DeviceInfo(DeviceInfoType::All),
    ));
    let job = f.jobs.recv().await.expect("job");
    // Drained while its job runs: the response still reaches the server.
    f.drain.cancel();
    assert!(job.respond(Response::ok(
        Service::DeviceInfo,
        request.correlator.clone()
    )));
    let hit = f.hit().await;
    assert_eq!(hit.response().correlator, request.correlator);
    hit.answer(bye_xml(&request.correlator));
    assert_eq!((&mut f.agent).await.expect("agent"), AgentExit::Drained);
    assert!(
        f.hits.try_recv().is_err(),
        "no work-request after the drain"
    );
}

#[tokio::test(start_paused = true)]
async fn terminate_is_acknowledged_and_stops_the_agent() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(
        &request.correlator,
        backoff(BackoffAction::Terminate),
    ));
    let hit = f.hit().await;
    assert_eq!(
        hit.response(),
        Response::ok(Service::Backoff, request.correlator.clone())
    );
    hit.answer(bye_xml(&request.correlator));
    assert_eq!((&mut f.agent).await.expect("agent"), AgentExit::Terminated);
    f.event(|e| *e == AgentEvent::Terminated).await;
    assert!(f.hits.try_recv().is_err(), "no request after terminate");
}

#[tokio::test(start_paused = true)]
async fn job_timeout_and_dropped_job_are_reported_as_failures() {
    let mut f = Fixture::start(|p| p.job_timeout = Duration::from_secs(60)).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    let t0 = hit.at;
    hit.answer(job_xml(&request.correlator, config_running()));
    let held = f.jobs.recv().await.expect("job");
    let hit = f.hit().await;
    assert_eq!(hit.at - t0, Duration::from_secs(60));
    let posted = hit.response();
    assert!(!posted.success);
    assert_eq!(posted.correlator, request.correlator);
    assert_eq!(posted.service, Service::ConfigUpgrade);
    let error = posted.error.expect("errorInfo");
    assert_eq!(error.code, ERROR_CODE_JOB_TIMEOUT);
    assert!(error.message.contains("60 s"), "{}", error.message);
    assert!(!held.respond(Response::ok(Service::ConfigUpgrade, "late")));
    hit.answer(bye_xml(&request.correlator));

    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(&request.correlator, Job::Topology));
    drop(f.jobs.recv().await.expect("job"));
    let hit = f.hit().await;
    let posted = hit.response();
    assert!(!posted.success);
    assert_eq!(
        posted.error.expect("errorInfo").code,
        ERROR_CODE_JOB_UNHANDLED
    );
    hit.answer(bye_xml(&request.correlator));
    f.event(|e| {
        *e == AgentEvent::JobDone {
            service: Service::Topology,
            success: false,
        }
    })
    .await;
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unparsable_answer_gets_a_fault_then_a_paced_retry() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, _) = f.work_request().await;
    let t0 = hit.at;
    hit.answer("<pnp xmlns=\"urn:cisco:pnp\"><request");
    let hit = f.hit().await;
    assert_eq!(hit.path, PATH_WORK_RESPONSE);
    let AgentBody::Fault(fault) = hit.message().body else {
        panic!("not a fault: {}", hit.body);
    };
    assert_eq!(fault.code, codec::FAULT_CODE_CLIENT);
    assert!(fault.string.starts_with(FAULT_STRING_UNPARSABLE));
    hit.answer("");
    let (hit, request) = f.work_request().await;
    assert_jittered(hit.at - t0, Duration::from_secs(2));
    hit.answer(bye_xml(&request.correlator));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn transport_errors_back_off_exponentially() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, _) = f.work_request().await;
    let mut last = hit.at;
    hit.status(StatusCode::INTERNAL_SERVER_ERROR);
    let error = f
        .event(|e| matches!(e, AgentEvent::TransportError { .. }))
        .await;
    assert_eq!(
        error,
        AgentEvent::TransportError {
            error: format!("{PATH_WORK_REQUEST}: server answered HTTP 500")
        }
    );
    for nominal in [1, 2, 4, 8] {
        let (hit, _) = f.work_request().await;
        assert_jittered(hit.at - last, Duration::from_secs(nominal));
        last = hit.at;
        hit.status(StatusCode::BAD_GATEWAY);
    }
    let (hit, request) = f.work_request().await;
    assert_jittered(hit.at - last, Duration::from_secs(16));
    hit.answer(bye_xml(&request.correlator));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn response_post_is_retried() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(&request.correlator, Job::Capability));
    let job = f.jobs.recv().await.expect("job");
    job.respond(Response::ok(
        Service::Capability,
        request.correlator.clone(),
    ));
    let hit = f.hit().await;
    let t0 = hit.at;
    hit.status(StatusCode::SERVICE_UNAVAILABLE);
    let hit = f.hit().await;
    assert_jittered(hit.at - t0, Duration::from_secs(1));
    assert_eq!(hit.response().correlator, request.correlator);
    hit.answer(bye_xml(&request.correlator));
    let (hit, request) = f.work_request().await;
    hit.answer(bye_xml(&request.correlator));
    f.stop().await;
}

/// The counters of `stats` that are not zero, as (label, count).
fn nonzero(stats: &PnpStats) -> Vec<(&'static str, u64)> {
    let mut all = stats.exchanges();
    all.extend(stats.errors());
    all.retain(|(_, n)| *n > 0);
    all
}

#[tokio::test(start_paused = true)]
async fn counters_follow_the_exchanges() {
    use PnpErrorKind as E;
    use PnpExchange as X;
    let mut f = Fixture::start(|_| {}).await;
    let stats = f.stats.clone();
    assert_eq!(nonzero(&stats), []);
    f.hit().await.status(StatusCode::SERVICE_UNAVAILABLE);
    f.event(|e| matches!(e, AgentEvent::TransportError { .. }))
        .await;
    assert_eq!(
        (stats.exchange(X::Hello), stats.error(E::HttpStatus)),
        (1, 1)
    );
    f.hello().await;

    // A job, answered with success, then bye.
    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(
        &request.correlator,
        Job::DeviceInfo(DeviceInfoType::All),
    ));
    let job = f.jobs.recv().await.expect("job");
    job.respond(Response::ok(
        Service::DeviceInfo,
        request.correlator.clone(),
    ));
    let hit = f.hit().await;
    assert!(hit.response().success);
    hit.answer(bye_xml(&request.correlator));
    // Bye alone: no work.
    let (hit, request) = f.work_request().await;
    assert_eq!(
        nonzero(&stats),
        [
            ("hello", 2),
            ("work_request", 2),
            ("job_device_info", 1),
            ("bye", 1),
            ("work_response_success", 1),
            ("http_status", 1),
        ]
    );
    hit.answer(bye_xml(&request.correlator));
    // Unparsable: a fault.
    let (hit, _) = f.work_request().await;
    assert_eq!((stats.exchange(X::Bye), stats.exchange(X::NoWork)), (2, 1));
    hit.answer("<pnp xmlns=\"urn:cisco:pnp\"><request");
    let hit = f.hit().await;
    assert_eq!(hit.path, PATH_WORK_RESPONSE);
    assert_eq!(
        (stats.exchange(X::Fault), stats.error(E::MalformedXml)),
        (1, 1)
    );
    hit.answer("");
    // A refused job whose response is retried once, then a backoff.
    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(&request.correlator, Job::Capability));
    let job = f.jobs.recv().await.expect("job");
    job.respond(Response::refused(
        Service::Capability,
        request.correlator.clone(),
        SmiRefusal::ConfigUpgradeRunning,
    ));
    f.hit().await.status(StatusCode::BAD_GATEWAY);
    let hit = f.hit().await;
    assert!(!hit.response().success);
    hit.answer(job_xml(
        &request.correlator,
        backoff(BackoffAction::CallbackAfter(Duration::from_secs(10))),
    ));
    let hit = f.hit().await;
    assert!(hit.response().success);
    hit.answer(bye_xml(&request.correlator));
    // No answer at all: a timeout, then the retry.
    let (held, _) = f.work_request().await;
    let (hit, request) = f.work_request().await;
    drop(held);
    assert_eq!(
        nonzero(&stats),
        [
            ("hello", 2),
            ("work_request", 6),
            ("job_device_info", 1),
            ("job_capability", 1),
            ("backoff", 1),
            ("bye", 3),
            ("no_work", 1),
            ("work_response_success", 2),
            ("work_response_failure", 1),
            ("fault", 1),
            ("timeout", 1),
            ("http_status", 2),
            ("malformed_xml", 1),
        ]
    );
    hit.answer(bye_xml(&request.correlator));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_counted() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("local addr");
    drop(closed);
    let (_keep, hits) = mpsc::channel(1);
    let mut f = Fixture::with_profile(PnpProfile::new(format!("http://{addr}")), hits);
    f.event(|e| matches!(e, AgentEvent::TransportError { .. }))
        .await;
    assert_eq!(f.stats.exchange(PnpExchange::Hello), 1);
    assert_eq!(f.stats.error(PnpErrorKind::Connect), 1);
    f.stop().await;
}

/// Runs the agent against a server answering every work-request with
/// `answer` (and responses with `bye`) for `period` of simulated time;
/// returns the number of work-requests and of failed responses.
async fn run_for(period: Duration, answer: fn(&str) -> String, refuse_jobs: bool) -> (u32, u32) {
    let mut f = Fixture::start(|_| {}).await;
    let mut jobs = std::mem::replace(&mut f.jobs, mpsc::channel(1).1);
    let logic = tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            let correlator = job.request.correlator.clone();
            let response = if refuse_jobs {
                Response::refused(
                    job.request.job.service(),
                    correlator,
                    SmiRefusal::ConfigUpgradeRunning,
                )
            } else {
                Response::ok(job.request.job.service(), correlator)
            };
            job.respond(response);
        }
    });
    f.hello().await;
    let (mut requests, mut failures) = (0, 0);
    let start = Instant::now();
    let mut correlator = String::new();
    loop {
        let hit = f.hit().await;
        if hit.at - start > period {
            break;
        }
        if hit.path == PATH_WORK_REQUEST {
            requests += 1;
            correlator = hit.work_request().correlator;
            hit.answer(answer(&correlator));
        } else {
            let response = hit.response();
            assert_eq!(response.correlator, correlator);
            if !response.success {
                failures += 1;
                assert_eq!(
                    response.error.as_ref().map(|e| e.code.as_str()),
                    Some(SmiRefusal::ConfigUpgradeRunning.code())
                );
            }
            hit.answer(bye_xml(&correlator));
        }
    }
    f.stop().await;
    logic.abort();
    (requests, failures)
}

#[tokio::test(start_paused = true)]
async fn a_failing_job_loop_keeps_the_rate_bounded() {
    let hour = Duration::from_secs(3600);
    let (requests, failures) = run_for(hour, |c| job_xml(c, config_running()), true).await;
    // 2 s doubling to the 5 min idle interval: about 19 in the hour.
    assert!((12..=25).contains(&requests), "{requests} work-requests");
    assert!(
        failures + 1 >= requests,
        "{failures} of {requests} reported"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bye_only_server_keeps_the_rate_bounded() {
    let (requests, failures) = run_for(Duration::from_secs(3600), bye_xml, false).await;
    assert!((12..=25).contains(&requests), "{requests} work-requests");
    assert_eq!(failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_successful_job_loop_is_held_to_the_minimum_cycle() {
    let minutes = Duration::from_secs(120);
    let (requests, _) = run_for(minutes, |c| job_xml(c, Job::Capability), false).await;
    assert!((119..=121).contains(&requests), "{requests} work-requests");
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_waiting_agent() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    hit.answer(job_xml(
        &request.correlator,
        backoff(BackoffAction::CallbackAfter(Duration::from_secs(3600))),
    ));
    let hit = f.hit().await;
    hit.answer(bye_xml(&request.correlator));
    f.event(|e| matches!(e, AgentEvent::Backoff { .. })).await;
    assert_eq!(f.stop().await, AgentExit::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn closed_jobs_channel_stops_the_agent_after_reporting() {
    let mut f = Fixture::start(|_| {}).await;
    f.hello().await;
    let (hit, request) = f.work_request().await;
    f.jobs.close();
    hit.answer(job_xml(&request.correlator, Job::Capability));
    let hit = f.hit().await;
    let posted = hit.response();
    assert!(!posted.success);
    assert_eq!(
        posted.error.expect("errorInfo").code,
        ERROR_CODE_JOB_UNHANDLED
    );
    hit.answer(bye_xml(&request.correlator));
    assert_eq!((&mut f.agent).await.expect("agent"), AgentExit::JobsClosed);
}

// --- Pacing, unit ---------------------------------------------------------

#[test]
fn pacer_grows_on_empty_and_failed_exchanges_and_resets_on_progress() {
    let profile = PnpProfile::new("http://192.0.2.1");
    let mut pacer = Pacer::new(&profile);
    let empty = Exchange::default();
    let failed = Exchange {
        jobs: 1,
        failed: true,
        ..Exchange::default()
    };
    let progress = Exchange {
        jobs: 1,
        ..Exchange::default()
    };
    let secs = |s| Next::After(Duration::from_secs(s));
    assert_eq!(pacer.next(&empty), secs(2));
    assert_eq!(pacer.next(&failed), secs(4));
    assert_eq!(pacer.next(&empty), secs(8));
    assert_eq!(pacer.next(&progress), Next::After(Duration::ZERO));
    assert_eq!(pacer.next(&failed), secs(2));
    for _ in 0..20 {
        pacer.next(&failed);
    }
    assert_eq!(pacer.next(&failed), secs(300));
    let transport = Exchange {
        transport: true,
        ..Exchange::default()
    };
    assert_eq!(pacer.next(&transport), secs(1));
    assert_eq!(pacer.next(&transport), secs(2));
    for _ in 0..10 {
        pacer.next(&transport);
    }
    assert_eq!(pacer.next(&transport), secs(60));
    let callback = |s| Exchange {
        backoff: Some(BackoffAction::CallbackAfter(Duration::from_secs(s))),
        ..Exchange::default()
    };
    assert_eq!(
        pacer.next(&callback(0)),
        Next::Backoff(Duration::from_secs(2))
    );
    assert_eq!(
        pacer.next(&callback(90)),
        Next::Backoff(Duration::from_secs(90))
    );
    let minutes = Exchange {
        backoff: Some(BackoffAction::DefaultMinutes(1)),
        ..Exchange::default()
    };
    assert_eq!(pacer.next(&minutes), Next::Backoff(Duration::from_secs(60)));
    for _ in 0..20 {
        pacer.next(&empty);
    }
    assert_eq!(pacer.next(&empty), secs(60));
    let terminate = Exchange {
        backoff: Some(BackoffAction::Terminate),
        transport: true,
        ..Exchange::default()
    };
    assert_eq!(pacer.next(&terminate), Next::Stop(AgentExit::Terminated));
}

// --- Configuration --------------------------------------------------------

#[test]
fn endpoints_keep_a_path_prefix() {
    let (endpoints, https) = endpoints("http://pnp.example:8080/prefix/").expect("url");
    assert!(!https);
    assert_eq!(
        endpoints.hello.to_string(),
        "http://pnp.example:8080/prefix/pnp/HELLO"
    );
    assert_eq!(
        endpoints.work_response.to_string(),
        "http://pnp.example:8080/prefix/pnp/WORK-RESPONSE"
    );
    let (endpoints, https) = endpoints_of("https://192.0.2.1");
    assert!(https);
    assert_eq!(
        endpoints.work_request.to_string(),
        "https://192.0.2.1/pnp/WORK-REQUEST"
    );
}

fn endpoints_of(url: &str) -> (Endpoints, bool) {
    endpoints(url).expect("url")
}

#[test]
fn unusable_profiles_are_refused_with_the_reason() {
    let refused = |profile: PnpProfile| AgentShared::new(profile).expect_err("refused");
    assert!(matches!(
        refused(PnpProfile::new("ftp://192.0.2.1")),
        AgentConfigError::UnsupportedScheme { .. }
    ));
    assert!(matches!(
        refused(PnpProfile::new("192.0.2.1")),
        AgentConfigError::UnsupportedScheme { .. } | AgentConfigError::BadUrl { .. }
    ));
    assert!(matches!(
        refused(PnpProfile::new("http://192.0.2.1/?q=1")),
        AgentConfigError::BadUrl { .. }
    ));
    let error = refused(PnpProfile::new("https://192.0.2.1"));
    assert!(matches!(error, AgentConfigError::HttpsWithoutTrust { .. }));
    assert!(
        error
            .to_string()
            .contains("no CA bundle or pinned certificate")
    );

    let mut missing = PnpProfile::new("https://192.0.2.1");
    missing.trust = Some(TlsTrust::PinnedCert("/nonexistent/pnp.pem".into()));
    assert!(matches!(refused(missing), AgentConfigError::ReadPem { .. }));

    let empty = TempPem::new("no certificate here\n");
    let mut profile = PnpProfile::new("https://192.0.2.1");
    profile.trust = Some(TlsTrust::CaBundle(empty.path.clone()));
    let error = refused(profile);
    assert!(matches!(error, AgentConfigError::NoCertificate { .. }));
    assert!(
        error.to_string().contains("holds no certificate"),
        "{error}"
    );
}

// --- HTTPS ----------------------------------------------------------------

/// A PEM file removed when dropped.
struct TempPem {
    path: PathBuf,
}

impl TempPem {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "smi-pnp-agent-test-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write PEM");
        Self { path }
    }
}

impl Drop for TempPem {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A server certificate for 127.0.0.1: self-signed, or signed by `ca`.
fn server_cert(
    ca: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    let cert = match ca {
        Some(ca) => params.signed_by(&key, ca),
        None => params.self_signed(&key),
    }
    .expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key, cert.pem())
}

/// A CA named `name`: its issuer and certificate PEM.
fn ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate");
    (rcgen::Issuer::new(params, key), cert.pem())
}

fn tls_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    Arc::new(config)
}

/// Starts an agent against an HTTPS test server presenting `cert`.
async fn https_fixture(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    trust: TlsTrust,
) -> Fixture {
    let (addr, hits) = serve(Some(tls_server(cert, key))).await;
    let mut profile = PnpProfile::new(format!("https://{addr}"));
    profile.trust = Some(trust);
    Fixture::with_profile(profile, hits)
}

#[tokio::test]
async fn https_with_the_pinned_certificate_works() {
    let (cert, key, pem) = server_cert(None);
    let pin = TempPem::new(&pem);
    let mut f = https_fixture(cert, key, TlsTrust::PinnedCert(pin.path.clone())).await;
    f.hello().await;
    f.event(|e| *e == AgentEvent::Hello).await;
    let (hit, request) = f.work_request().await;
    assert_eq!(request.udi, Some(udi()));
    hit.answer(bye_xml(&request.correlator));
    f.stop().await;
}

#[tokio::test]
async fn https_with_another_certificate_than_the_pinned_one_is_refused() {
    let (cert, key, _) = server_cert(None);
    let (_, _, other_pem) = server_cert(None);
    let pin = TempPem::new(&other_pem);
    let mut f = https_fixture(cert, key, TlsTrust::PinnedCert(pin.path.clone())).await;
    let AgentEvent::TransportError { error } = f
        .event(|e| matches!(e, AgentEvent::TransportError { .. }))
        .await
    else {
        unreachable!()
    };
    assert!(error.starts_with(PATH_HELLO), "{error}");
    assert!(
        error.contains("TLS: server certificate refused: the server's certificate is not the pinned certificate from"),
        "{error}"
    );
    assert!(f.hits.try_recv().is_err(), "no request got through");
    assert!(f.stats.error(PnpErrorKind::Tls) >= 1);
    assert_eq!(f.stats.error(PnpErrorKind::Connect), 0);
    f.stop().await;
}

#[tokio::test]
async fn https_with_a_ca_bundle_verifies_the_chain() {
    let (issuer, ca_pem) = ca("test CA");
    let (cert, key, _) = server_cert(Some(&issuer));
    let bundle = TempPem::new(&ca_pem);
    let mut f = https_fixture(cert, key, TlsTrust::CaBundle(bundle.path.clone())).await;
    f.hello().await;
    f.event(|e| *e == AgentEvent::Hello).await;
    f.stop().await;

    let (_, other_ca_pem) = ca("other CA");
    let (cert, key, _) = server_cert(Some(&issuer));
    let other = TempPem::new(&other_ca_pem);
    let mut f = https_fixture(cert, key, TlsTrust::CaBundle(other.path.clone())).await;
    let AgentEvent::TransportError { error } = f
        .event(|e| matches!(e, AgentEvent::TransportError { .. }))
        .await
    else {
        unreachable!()
    };
    assert!(
        error.contains("TLS: server certificate refused: UnknownIssuer"),
        "{error}"
    );
    f.stop().await;
}

// --- Downloads ------------------------------------------------------------

#[tokio::test]
async fn fetch_downloads_a_file_within_the_cap() {
    let (addr, mut hits) = serve(None).await;
    let shared = AgentShared::new(PnpProfile::new(format!("http://{addr}"))).expect("profile");
    let url = format!("http://{addr}/configs/sw1.cfg");
    let server = tokio::spawn(async move {
        let hit = hits.recv().await.expect("download");
        assert_eq!(
            (&hit.method, hit.path.as_str()),
            (&Method::GET, "/configs/sw1.cfg")
        );
        hit.answer("hostname sw1\n");
        let hit = hits.recv().await.expect("second download");
        hit.answer("x".repeat(100));
        let hit = hits.recv().await.expect("third download");
        hit.status(StatusCode::NOT_FOUND);
    });
    let data = shared.fetch(&url, 1024).await.expect("fetched");
    assert_eq!(&data[..], b"hostname sw1\n");
    let error = shared.fetch(&url, 10).await.expect_err("over the cap");
    assert_eq!(
        error.to_string(),
        format!("{url}: reading the answer failed: answer over the 10-byte cap")
    );
    let error = shared.fetch(&url, 1024).await.expect_err("404");
    assert_eq!(
        error.to_string(),
        format!("{url}: server answered HTTP 404")
    );
    server.await.expect("server script");
    let stats = shared.stats();
    assert_eq!(stats.exchange(PnpExchange::FileFetch), 3);
    assert_eq!(stats.error(PnpErrorKind::Body), 1);
    assert_eq!(stats.error(PnpErrorKind::HttpStatus), 1);
    for bad in ["tftp://192.0.2.1/sw1.cfg", "flash:sw1.cfg", "http:///x"] {
        assert!(
            matches!(
                shared.fetch(bad, 1024).await,
                Err(FetchError::BadUrl { .. })
            ),
            "{bad}"
        );
    }
}

/// The agent's lines are in its client's span: they name the switch's MAC
/// and UDI, whichever part of the agent wrote them.
#[tokio::test(start_paused = true)]
async fn the_agent_logs_in_the_span_of_its_client() {
    use crate::logging::{LogFormat, follow, testing::capture};
    let log = capture(LogFormat::Ios, "proxy::pnp=info");
    let _default = tracing::dispatcher::set_default(&log.dispatch);
    follow(MAC, None, Some(&udi()));
    let mut f = Fixture::start(|_| {}).await;
    f.hit().await.status(StatusCode::SERVICE_UNAVAILABLE);
    f.event(|e| matches!(e, AgentEvent::TransportError { .. }))
        .await;
    assert_eq!(f.stop().await, AgentExit::Cancelled);
    let out = log.out.take();
    let client = format!("mac 0011.2233.4455 udi {UDI}: ");
    let warning = out
        .lines()
        .find(|l| l.contains("503"))
        .unwrap_or_else(|| panic!("no transport warning in {out}"));
    assert!(
        warning.contains(&format!(": VSTACK_SMI_PROXY: WARN: {client}PnP agent: ")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            ": VSTACK_SMI_PROXY: {client}PnP agent stopped: Cancelled\n"
        )),
        "{out}"
    );
}
