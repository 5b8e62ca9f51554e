//! The daemon's background tasks and their shutdown, as in mini-redis: every
//! task gets the same stop signal, finishes what it is doing, and is waited
//! for — within a bound, so a wedged task cannot keep the process alive.
//!
//! A task that ends on its own (a bug, or a panic) stops the daemon with an
//! error, so systemd restarts it (`Restart=on-failure`): a daemon whose
//! rotation engine or watchdog is gone must not go on serving as if healthy.

use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Background tasks that stop together.
pub(crate) struct Tasks {
    spawner: Spawner,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

/// Starts tasks under the daemon's failure rule, from anywhere (an
/// organization added at run time starts its tasks with it). Cheap to
/// clone.
#[derive(Clone)]
pub(crate) struct Spawner {
    stop: CancellationToken,
    failed: Arc<Mutex<Option<&'static str>>>,
}

impl Spawner {
    /// The daemon's stop signal.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Starts `fut`, which stops when `own` is cancelled (the daemon's stop
    /// or a child of it). Ending on its own, or panicking, while neither
    /// is cancelled stops the daemon.
    pub(crate) fn spawn<F>(
        &self,
        name: &'static str,
        own: CancellationToken,
        fut: F,
    ) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, failed) = (self.stop.clone(), self.failed.clone());
        tokio::spawn(async move {
            let ended = AssertUnwindSafe(fut).catch_unwind().await;
            if stop.is_cancelled() || own.is_cancelled() {
                return;
            }
            match ended {
                Ok(()) => tracing::error!(
                    task = name,
                    "a background task stopped on its own; stopping kekd so it is restarted"
                ),
                Err(p) => {
                    let message = crate::report::panic_message(&*p);
                    tracing::error!(task = name, panic = %message, "a background task panicked; stopping kekd so it is restarted");
                }
            }
            crate::sync::lock(&failed).get_or_insert(name);
            stop.cancel();
        })
    }
}

impl Tasks {
    /// Tasks that stop when `stop` is cancelled, and cancel it themselves
    /// if one of them ends on its own.
    pub(crate) fn new(stop: CancellationToken) -> Tasks {
        Tasks {
            spawner: Spawner {
                stop,
                failed: Arc::default(),
            },
            running: Vec::new(),
        }
    }

    /// What starts tasks under the same rule elsewhere.
    pub(crate) fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// Starts `task`, handing it the stop signal.
    pub(crate) fn spawn<F>(&mut self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.spawner.stop.clone();
        let handle = self.spawner.spawn(name, stop.clone(), task(stop));
        self.running.push((name, handle));
    }

    /// Tells every task to stop and waits for each, at most `within` in all.
    /// A task that does not stop in time is named in the log and abandoned
    /// (it dies with the process). Returns the task that ended on its own
    /// and so caused the stop, if any.
    pub(crate) async fn drain(self, within: Duration) -> Option<&'static str> {
        self.spawner.stop.cancel();
        let deadline = tokio::time::Instant::now() + within;
        for (name, handle) in self.running {
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(_) => tracing::debug!(task = name, "stopped"),
                Err(_) => tracing::warn!(
                    task = name,
                    "did not stop within the shutdown bound; abandoning it"
                ),
            }
        }
        *crate::sync::lock(&self.spawner.failed)
    }
}
