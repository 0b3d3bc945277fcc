//! What an agent and the proxy logic pass each other: the identity it
//! speaks for, the jobs it hands over and their responses, the reports it
//! sends, and why its loop ended.
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::mac::Mac;
use crate::pnp::codec::{Request, Response, Service};
use crate::udi::Udi;

/// Who one agent speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The switch's UDI (the PnP identity).
    pub udi: Udi,
    /// Its hostname, sent in `<deviceId>` when known.
    pub hostname: Option<String>,
    /// The MAC the proxy logic knows it by; handed back in every
    /// [`JobRequest`].
    pub mac: Mac,
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
    pub mac: Mac,
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
