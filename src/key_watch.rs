//! What status says about the configured KMS key, from the latest evidence
//! of every path that touches it — not only the start-up preflight and the
//! next successful rotation.
//!
//! A revocation-kind failure (the key disabled, pending deletion, access
//! denied, not found) seen by an unwrap, a rotation or the canary marks the
//! key as having a problem at once (status `degraded`, cause
//! `kms_key_problem`); an outage never does (that is "unavailable", not a
//! key problem). While a problem is marked, [`KeyWatch::run`] re-runs the
//! preflight with the retry backoff, and the first pass clears it — so a
//! key re-enabled by its owner stops the alarm within the backoff, not at
//! the next rotation a month later.

use crate::current::SharedCurrent;
use crate::provider::budget::{with_priority, Priority};
use crate::provider::ProviderError;
use crate::rotation::SharedState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The configured key's health, kept in the engine state status reads.
#[derive(Clone)]
pub(crate) struct KeyWatch {
    state: SharedState,
    current: SharedCurrent,
    /// Wakes the watch when a problem is marked (it sleeps otherwise: 10,000
    /// organizations' watches cost nothing while their keys are fine).
    marked: Arc<Notify>,
    /// A start-up preflight left to the watch, after this delay.
    start_check: Option<Duration>,
}

impl KeyWatch {
    pub(crate) fn new(state: SharedState, current: SharedCurrent) -> KeyWatch {
        KeyWatch {
            state,
            current,
            marked: Default::default(),
            start_check: None,
        }
    }

    /// Leaves the start-up preflight to the watch, `after` the start: an
    /// organization with a proven active key pair serves at once, and many
    /// organizations' preflights are spread instead of delaying the start.
    pub(crate) fn check_at_start(mut self, after: Option<Duration>) -> KeyWatch {
        self.start_check = after;
        self
    }

    /// An unwrap saw `e` decrypting a private key wrapped by
    /// `wrapping_key_arn`. A key problem is marked when that is the key the
    /// active key pair is wrapped by (the one new recordings depend on); a
    /// retired KMS key's trouble is the unwrap's answer alone.
    pub(crate) fn saw_unwrap_failure(&self, wrapping_key_arn: &str, e: &ProviderError) {
        let current_key = self.state.read(|s| {
            s.active
                .as_ref()
                .is_some_and(|a| a.wrapping_key_arn == wrapping_key_arn)
        });
        if current_key && e.kind.is_key_problem() {
            self.mark("unwrap", e.to_string());
        }
    }

    /// Marks a problem with the configured key.
    pub(crate) fn mark(&self, path: &'static str, problem: String) {
        let new = self.state.update(|s| {
            let new = s.health.kms_key_problem.as_deref() != Some(problem.as_str());
            s.health.kms_key_problem = Some(problem.clone());
            new
        });
        self.marked.notify_one();
        if new {
            tracing::error!(%path, %problem, "the configured KMS key has a problem; recordings may not be playable back until it is fixed");
        }
    }

    /// A path proved the configured key usable: any problem is cleared.
    pub(crate) fn usable(&self, path: &'static str) {
        if let Some(was) = self.state.update(|s| s.health.kms_key_problem.take()) {
            tracing::info!(%path, was = %was, "the configured KMS key is usable again");
        }
    }

    /// While a problem is marked, re-runs the preflight with the retry
    /// backoff until it passes.
    pub(crate) async fn run(self, stop: CancellationToken) {
        if let Some(after) = self.start_check {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(after) => self.preflight().await,
            }
        }
        let mut attempt = 0u32;
        loop {
            let marked = self.state.read(|s| s.health.kms_key_problem.is_some());
            if marked {
                attempt += 1;
                let wait = crate::backoff::backoff(&self.current.settings().retry, attempt);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            } else {
                attempt = 0;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.marked.notified() => {}
                }
                continue;
            }
            if self.state.read(|s| s.health.kms_key_problem.is_some()) {
                self.preflight().await;
            }
        }
    }

    /// One preflight, its KMS requests last in the budget.
    async fn preflight(&self) {
        let cur = self.current.get();
        let checked = with_priority(
            Priority::Background,
            crate::kms_check::preflight(&*cur.provider, &cur.settings),
        )
        .await;
        match checked {
            Ok(_) => self.usable("preflight"),
            Err(e) if e.is_unavailable() => {} // an outage says nothing
            Err(e) => self.mark("preflight", e.to_string()),
        }
    }
}
