//! Preparing the next key pair ahead of a scheduled rotation (the engine's
//! `announce_ahead` / `prepare_window` side): when to prepare it, preparing
//! and announcing it, and discarding it when the schedule moved.

use super::engine::{AnnounceRetry, Engine, Retry};
use super::rotate::RotationError;
use crate::backoff::backoff;
use crate::provider::budget::{with_priority, Priority};
use crate::time;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// When to prepare and announce the next key pair: its lead
    /// ([`crate::spread::lead`]) before the next scheduled rotation, unless one is announced, a failed rotation is
    /// being retried, or the rotation itself is due (it then happens the
    /// usual way). A failed announcement is retried with backoff.
    pub(super) fn next_announce(
        &self,
        retry: &Option<Retry>,
        announce_retry: &Option<AnnounceRetry>,
    ) -> Option<tokio::time::Instant> {
        let settings = self.parts.current.settings();
        // In a fleet every member wakes at the same lead (it depends on
        // the organization alone); the first to take the lease prepares.
        let many = self.parts.peers.many();
        let ahead = crate::spread::lead(
            &settings.organization_id,
            settings.announce_ahead,
            settings.prepare_window,
            many,
        )?;
        if retry.is_some() {
            return None;
        }
        let (announced, due) = self
            .parts
            .state
            .read(|s| (s.announced.is_some(), s.schedule.next_rotation_at));
        let due = due?;
        let now = time::now();
        if announced || due <= now {
            return None;
        }
        let at = due - chrono::Duration::from_std(ahead).ok()?;
        let mut when = tokio::time::Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO);
        if let Some(r) = announce_retry {
            when = when.max(r.not_before);
        }
        Some(when)
    }

    /// Announces the next key pair (generate, seal, store, prove: I1), to
    /// become active at the next scheduled rotation.
    pub(super) async fn announce(&self, announce_retry: &mut Option<AnnounceRetry>) {
        let Some(due) = self.parts.state.read(|s| s.schedule.next_rotation_at) else {
            return;
        };
        let outcome = AssertUnwindSafe(with_priority(
            Priority::Scheduled,
            self.parts.rotator.announce(due),
        ))
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(RotationError::Panicked(crate::report::panic_message(&*p))));
        match outcome {
            Ok(rec) => {
                tracing::info!(key_pair_id = %rec.id, activates_at = %time::format(&due), "next key pair announced");
                self.parts
                    .state
                    .update(|s| s.announced = Some(Arc::new(rec)));
                *announce_retry = None;
            }
            Err(e) => {
                let attempts = announce_retry.map_or(1, |r| r.attempts + 1);
                let delay = backoff(&self.parts.current.settings().retry, attempts);
                tracing::warn!(error = %e, attempt = attempts, retry_in_ms = delay.as_millis() as u64, "cannot announce the next key pair; retrying (the rotation itself happens at its time regardless)");
                *announce_retry = Some(AnnounceRetry {
                    attempts,
                    not_before: tokio::time::Instant::now() + delay,
                });
            }
        }
    }

    /// An announced key pair whose instant is no longer the schedule's
    /// (a reload changed the cadence) is discarded; the next one is
    /// announced for the new instant.
    pub(super) async fn retime_announced(&self) {
        let stale = self.parts.state.update(|s| {
            let stale = s
                .announced
                .as_ref()
                .is_some_and(|a| a.activates_at != s.schedule.next_rotation_at);
            if stale {
                s.announced.take()
            } else {
                None
            }
        });
        if let Some(a) = stale {
            tracing::info!(key_pair_id = %a.id, "the schedule changed: discarding the announced key pair (superseded)");
            self.parts.rotator.retire_unused(&a.id).await;
        }
    }
}
