//! The agent task of one switch: HELLO, then work-request, jobs and
//! responses until `bye`, paced, until cancelled, drained or terminated.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::pacing::{Exchange, Next, Pacer, doubled, jitter};
use super::{
    AgentEvent, AgentExit, AgentIdentity, AgentReport, AgentShared, ERROR_CODE_JOB_TIMEOUT,
    ERROR_CODE_JOB_UNHANDLED, FAULT_STRING_UNPARSABLE, JobRequest, PnpErrorKind, PnpExchange,
    TransportError,
};
use crate::pnp::codec::{
    self, Envelope, ErrorInfo, Fault, Job, Request, Response, ServerBody, Service, WorkRequest,
};

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
    /// The whole run is in the client's span (see [`crate::logging::client`]).
    /// (Not an `async fn`, which would hold a second copy of the agent.)
    pub fn run(self) -> impl Future<Output = AgentExit> + Send + 'static {
        let span = crate::logging::client(self.identity.mac);
        self.run_in_span().instrument(span)
    }

    async fn run_in_span(mut self) -> AgentExit {
        let cancel = self.cancel.clone();
        let exit = tokio::select! {
            () = cancel.cancelled() => AgentExit::Cancelled,
            exit = self.work() => exit,
        };
        tracing::info!("PnP agent stopped: {exit:?}");
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
            tracing::debug!("PnP agent: next work-request in {wait:?}");
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
            tracing::debug!("PnP agent events full, dropped {:?}", report.event);
        }
    }

    fn transport_error(&self, error: TransportError) {
        tracing::warn!("PnP agent: {error}");
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
            tracing::warn!("PnP agent: server message names UDI {udi}");
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
                    tracing::warn!("PnP agent: unparsable server message: {error}");
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
                        tracing::warn!(
                            "PnP agent: bye correlator {:?} does not match {expected}",
                            correlator.unwrap_or_default()
                        );
                    }
                    return exchange;
                }
                ServerBody::Request(request) => request,
            };
            self.shared.stats.count(PnpExchange::job(&request.job));
            if step >= self.shared.profile.pacing.max_chain {
                tracing::warn!(
                    "PnP agent: over {} requests in one exchange, ending it",
                    self.shared.profile.pacing.max_chain
                );
                self.shared.stats.count_error(PnpErrorKind::ChainLimit);
                exchange.failed = true;
                return exchange;
            }
            if step == 0 && request.correlator != expected {
                tracing::warn!(
                    "PnP agent: request correlator {} does not match work-request {expected}",
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
            mac: self.identity.mac,
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
                    tracing::warn!(
                        "PnP agent: job result for {} {} answers {} {}; fixed",
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
