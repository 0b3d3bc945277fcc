//! When the next work-request goes out: the summary of one exchange, the
//! pure pacing state of one client, and the jitter on every wait (see the
//! [`pnp::agent`](super) documentation).
use std::time::Duration;

use super::{AgentExit, Pacing, PnpProfile, RetryPolicy};
use crate::pnp::codec::BackoffAction;

/// What happened in one exchange (work-request to `bye`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Exchange {
    /// Jobs run (backoffs not counted).
    pub(super) jobs: u32,
    /// A job failed or the server's message could not be parsed.
    pub(super) failed: bool,
    /// The last backoff's instruction.
    pub(super) backoff: Option<BackoffAction>,
    /// An HTTP exchange failed.
    pub(super) transport: bool,
    /// The jobs channel is closed.
    pub(super) jobs_closed: bool,
}

/// What to do after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Wait this long (before jitter), then ask again.
    After(Duration),
    /// A backoff: wait this long (before jitter), then ask again.
    Backoff(Duration),
    /// Stop.
    Stop(AgentExit),
}

/// The pacing state of one client (pure; see the [`pnp::agent`](super)
/// documentation).
#[derive(Clone, Debug)]
pub(super) struct Pacer {
    pub(super) pacing: Pacing,
    retry: RetryPolicy,
    idle: Duration,
    /// Empty or failed exchanges in a row.
    streak: u32,
    /// Transport failures in a row.
    pub(super) errors: u32,
}

/// `base` doubled `n - 1` times, capped at `cap`.
pub(super) fn doubled(base: Duration, n: u32, cap: Duration) -> Duration {
    let factor = 1u32 << n.saturating_sub(1).min(20);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

impl Pacer {
    pub(super) fn new(profile: &PnpProfile) -> Self {
        Self {
            pacing: profile.pacing.clone(),
            retry: profile.retry.clone(),
            idle: profile.pacing.idle_interval,
            streak: 0,
            errors: 0,
        }
    }

    /// Delay before retrying after a transport failure; counts it.
    pub(super) fn transport_failure(&mut self) -> Duration {
        self.errors = self.errors.saturating_add(1);
        doubled(self.retry.initial, self.errors, self.retry.max)
    }

    pub(super) fn next(&mut self, exchange: &Exchange) -> Next {
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
pub(super) fn jitter(d: Duration) -> Duration {
    if d.is_zero() {
        d
    } else {
        d.mul_f64(rand::random_range(0.9..=1.1))
    }
}
