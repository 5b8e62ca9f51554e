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
use crate::provider::ProviderError;
use crate::rotation::SharedState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the watch looks whether a problem is marked (memory only).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The configured key's health, kept in the engine state status reads.
#[derive(Clone)]
pub(crate) struct KeyWatch {
    state: SharedState,
    current: SharedCurrent,
}

impl KeyWatch {
    pub(crate) fn new(state: SharedState, current: SharedCurrent) -> KeyWatch {
        KeyWatch { state, current }
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
        let mut attempt = 0u32;
        loop {
            let marked = self.state.read(|s| s.health.kms_key_problem.is_some());
            let wait = if marked {
                attempt += 1;
                crate::rotation::backoff(&self.current.settings().retry, attempt)
            } else {
                attempt = 0;
                LOOK_EVERY
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if !self.state.read(|s| s.health.kms_key_problem.is_some()) {
                continue;
            }
            let cur = self.current.get();
            match crate::kms_check::preflight(&*cur.provider, &cur.settings).await {
                Ok(_) => self.usable("preflight"),
                Err(e) if e.is_unavailable() => {} // an outage says nothing
                Err(e) => self.mark("preflight", e.to_string()),
            }
        }
    }
}
