//! The daemon's background tasks and their shutdown, as in mini-redis: every
//! task gets the same stop signal, finishes what it is doing, and is waited
//! for — within a bound, so a wedged task cannot keep the process alive.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Background tasks that stop together.
pub(crate) struct Tasks {
    stop: CancellationToken,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    /// Tasks that stop when `stop` is cancelled.
    pub(crate) fn new(stop: CancellationToken) -> Tasks {
        Tasks {
            stop,
            running: Vec::new(),
        }
    }

    /// Starts `task`, handing it the stop signal.
    pub(crate) fn spawn<F>(&mut self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task(self.stop.clone()));
        self.running.push((name, handle));
    }

    /// Tells every task to stop and waits for each, at most `within` in all.
    /// A task that does not stop in time is named in the log and abandoned
    /// (it dies with the process).
    pub(crate) async fn drain(self, within: Duration) {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + within;
        for (name, handle) in self.running {
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(())) => tracing::debug!(task = name, "stopped"),
                Ok(Err(e)) if e.is_panic() => {
                    tracing::error!(task = name, "had panicked before shutdown")
                }
                Ok(Err(_)) => tracing::debug!(task = name, "cancelled"),
                Err(_) => tracing::warn!(
                    task = name,
                    "did not stop within the shutdown bound; abandoning it"
                ),
            }
        }
    }
}
