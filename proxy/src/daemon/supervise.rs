//! Every long-lived task of the daemon runs under one supervisor: a
//! `JoinSet` polled by its own task, which reports the first task that
//! panics or fails, by name, so that the daemon stops with that error
//! instead of running on without it. A generation of services also tracks
//! its own tasks (a `TaskTracker`) so it can wait for them when it stops.
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::task::TaskTracker;

/// A supervised task: its name and its work.
type Task = (
    &'static str,
    Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>,
);

/// Hands tasks to the supervisor. Cheap to clone.
#[derive(Clone)]
pub(super) struct Supervisor {
    tasks: mpsc::UnboundedSender<Task>,
}

/// The first failure of a supervised task.
pub(super) type Failure = oneshot::Receiver<anyhow::Error>;

impl Supervisor {
    /// A supervisor and the receiver of its first failure; the joining
    /// task runs until every [`Supervisor`] is dropped and its tasks end.
    pub(super) fn start() -> (Self, Failure) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (failed_tx, failed_rx) = oneshot::channel();
        tokio::spawn(join(rx, failed_tx));
        (Self { tasks: tx }, failed_rx)
    }

    /// Runs `work` as the task `name`.
    pub(super) fn spawn<F>(&self, name: &'static str, work: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        // Closed only when the joining task ended, i.e. at exit.
        let _ = self.tasks.send((name, Box::pin(work)));
    }

    /// Runs `work` as the task `name`, tracked by `tracker` (so that its
    /// owner can wait for it).
    pub(super) fn spawn_tracked<F>(&self, tracker: &TaskTracker, name: &'static str, work: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.spawn(name, tracker.track_future(work));
    }

    /// Supervises a task spawned elsewhere through its handle.
    pub(super) fn adopt(&self, tracker: &TaskTracker, name: &'static str, task: JoinHandle<()>) {
        self.spawn_tracked(tracker, name, async move {
            task.await
                .map_err(|e| anyhow::Error::new(Ended(describe(e))))
        });
    }
}

/// Joins the tasks; sends the first failure.
async fn join(mut tasks: mpsc::UnboundedReceiver<Task>, failed: oneshot::Sender<anyhow::Error>) {
    let mut set = JoinSet::new();
    let mut names = HashMap::new();
    let mut failed = Some(failed);
    let mut open = true;
    while open || !set.is_empty() {
        tokio::select! {
            task = tasks.recv(), if open => match task {
                Some((name, work)) => {
                    let handle = set.spawn(work);
                    names.insert(handle.id(), name);
                }
                None => open = false,
            },
            Some(done) = set.join_next_with_id() => {
                let failure = match done {
                    Ok((id, Ok(()))) => {
                        names.remove(&id);
                        None
                    }
                    Ok((id, Err(e))) => {
                        let name = names.remove(&id).unwrap_or("?");
                        Some(match e.downcast_ref::<Ended>() {
                            Some(ended) => anyhow::anyhow!("task {name} {ended}"),
                            None => anyhow::anyhow!("task {name} failed: {e:#}"),
                        })
                    }
                    Err(e) => {
                        let name = names.remove(&e.id()).unwrap_or("?");
                        Some(anyhow::anyhow!("task {name} {}", describe(e)))
                    }
                };
                if let Some(failure) = failure {
                    tracing::error!("{failure}");
                    if let Some(tx) = failed.take() {
                        let _ = tx.send(failure);
                    }
                }
            }
        }
    }
}

/// How an adopted task ended abnormally (see [`describe`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Ended(String);

/// "panicked: <message>" or "was cancelled".
fn describe(e: JoinError) -> String {
    if !e.is_panic() {
        return "was cancelled".into();
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_by_name() {
        let (sup, failure) = Supervisor::start();
        sup.spawn("fine", async { Ok(()) });
        sup.spawn("tftp server", async {
            let v: Vec<u8> = Vec::new();
            let _ = v[usize::from(v.is_empty())];
            Ok(())
        });
        let e = failure.await.expect("a failure is reported");
        assert_eq!(
            e.to_string(),
            "task tftp server panicked: index out of bounds: the len is 0 but the index is 1"
        );
    }

    #[tokio::test]
    async fn a_failing_task_is_reported_and_a_finished_one_is_not() {
        let (sup, mut failure) = Supervisor::start();
        let tracker = TaskTracker::new();
        sup.spawn_tracked(&tracker, "quiet", async { Ok(()) });
        tracker.close();
        tracker.wait().await;
        assert!(failure.try_recv().is_err(), "nothing failed yet");
        sup.adopt(
            &tracker,
            "dhcp server",
            tokio::spawn(async { panic!("lease table corrupt") }),
        );
        sup.spawn("metrics", async { Err(anyhow::anyhow!("port in use")) });
        let e = failure.await.expect("a failure is reported").to_string();
        assert!(
            e == "task dhcp server panicked: lease table corrupt"
                || e == "task metrics failed: port in use",
            "{e}"
        );
    }
}
