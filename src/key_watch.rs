//! What status says about an organization's KMS key, from the latest
//! evidence of every path that touches it — and a probe, so that a
//! customer's revocation is noticed within a published bound even when
//! nothing rotates or unwraps.
//!
//! - A key problem seen by an unwrap, a rotation, the canary or the probe
//!   is marked at once with its kind (disabled, pending deletion, access
//!   denied, not found, …); an outage never is (that is "unavailable", not
//!   a key problem). A revocation drops the organization's cached private
//!   keys at once: from then on every unwrap asks KMS, which refuses.
//! - The probe: every four fifths of `[customer_keys]
//!   notice_revocation_within`, at the organization's own place in that
//!   period (so 10,000 organizations' probes are spread, not bunched), a
//!   `GenerateDataKey` of a probe data key (a random key no one uses, under
//!   the organization's context) and a `Decrypt` of what it returned: the
//!   two operations kekd needs of the key, rotations and playback, so a
//!   customer who takes away either one alone is noticed too, and a probe
//!   that passes is evidence enough to clear a problem either path marked.
//!   Two requests per organization per period, last in the request budget.
//! - A failed probe asks `DescribeKey` what exactly is wrong (a pending
//!   deletion and its date); while a problem is marked, a revocation is
//!   re-checked at the probe's pace (only the customer can end it) and any
//!   other problem with the retry backoff; the first check that passes
//!   clears it.

use crate::current::{Current, SharedCurrent};
use crate::domain::{context_for, KeyProblem, KeyProblemKind, NoticedBy};
use crate::key_cache::KeyCache;
use crate::provider::budget::{with_priority, Priority};
use crate::provider::{FailureKind, ProviderError};
use crate::rotation::SharedState;
use crate::time::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The key-pair id of the probe's encryption context: no key pair has it
/// (ids are `kek-` and hex).
const PROBE_KEY_PAIR: &str = "kek-revocation-probe";

/// An organization's key health, kept in the engine state status reads.
#[derive(Clone)]
pub(crate) struct KeyWatch {
    state: SharedState,
    current: SharedCurrent,
    /// A start-up preflight left to the watch, after this delay.
    start_check: Option<Duration>,
    /// The daemon's cache of private keys, and this organization's id in it.
    cache: Option<(Arc<KeyCache>, Arc<str>)>,
}

impl KeyWatch {
    pub(crate) fn new(state: SharedState, current: SharedCurrent) -> KeyWatch {
        KeyWatch {
            state,
            current,
            start_check: None,
            cache: None,
        }
    }

    /// Leaves the start-up preflight to the watch, `after` the start: an
    /// organization with a proven active key pair serves at once, and many
    /// organizations' preflights are spread instead of delaying the start.
    pub(crate) fn check_at_start(mut self, after: Option<Duration>) -> KeyWatch {
        self.start_check = after;
        self
    }

    /// Drops `org`'s entries of `cache` when its key is revoked.
    pub(crate) fn with_cache(mut self, cache: Arc<KeyCache>, org: Arc<str>) -> KeyWatch {
        self.cache = Some((cache, org));
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
        if current_key {
            self.saw(NoticedBy::Unwrap, e);
        }
    }

    /// A path saw `e` using the configured key: marked if it is evidence of
    /// a key problem.
    pub(crate) fn saw(&self, by: NoticedBy, e: &ProviderError) {
        if let Some(kind) = e.kind.key_problem() {
            self.mark(KeyProblem::new(kind, e.to_string(), by));
        }
    }

    /// Marks a problem with the configured key.
    pub(crate) fn mark(&self, problem: KeyProblem) {
        let (kind, revoked) = (problem.kind, problem.revoked);
        let message = problem.message.clone();
        let by = problem.noticed_by;
        let new = self.state.update(|s| s.health.mark_key_problem(problem));
        if revoked {
            self.forget_keys();
        }
        self.state.key_problem_marked();
        if new {
            if revoked {
                tracing::error!(%kind, noticed_by = %by, problem = %message, "the customer's KMS key is revoked: recordings cannot be played back until the customer restores access");
            } else {
                tracing::error!(%kind, noticed_by = %by, problem = %message, "the configured KMS key has a problem; recordings may not be playable back until it is fixed");
            }
        }
    }

    /// A path proved the configured key usable: any problem is cleared.
    pub(crate) fn usable(&self, by: NoticedBy) {
        if let Some(was) = self.state.update(|s| s.health.kms_key_problem.take()) {
            tracing::info!(noticed_by = %by, was = %was.kind, "the configured KMS key is usable again");
        }
    }

    fn forget_keys(&self) {
        if let Some((cache, org)) = &self.cache {
            cache.forget(org);
        }
    }

    /// Probes, and re-checks a marked problem, until `stop`.
    ///
    /// The probes start at once (at the organization's place in the first
    /// period), whether or not the start-up preflight was left for later:
    /// the bound holds from the start.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let (org, every) = {
            let s = self.current.settings();
            (s.organization_id.clone(), s.customer_keys.probe_every())
        };
        let mut start_check = self.start_check.map(|after| Instant::now() + after);
        let mut next = Instant::now() + crate::spread::offset(&org, "probe", every);
        let mut attempt = 0u32;
        // The problem whose kind was last confirmed (by when it was seen).
        let mut confirmed: Option<Timestamp> = None;
        loop {
            let problem = self.state.read(|s| s.health.kms_key_problem.clone());
            let due = match &problem {
                Some(p) if !p.revoked => {
                    attempt += 1;
                    let wait = crate::backoff::backoff(&self.current.settings().retry, attempt);
                    (Instant::now() + wait).min(next)
                }
                _ => {
                    attempt = 0;
                    next
                }
            };
            let due = start_check.map_or(due, |s| s.min(due));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(due) => {
                    if start_check.is_some_and(|s| Instant::now() >= s) {
                        start_check = None;
                        Box::pin(self.preflight(NoticedBy::Preflight)).await;
                        continue;
                    }
                    // Boxed, as the engine's steps: an idle watch stays small.
                    Box::pin(self.check(NoticedBy::Probe)).await;
                    if Instant::now() >= next {
                        next = Instant::now() + self.current.settings().customer_keys.probe_every();
                    }
                }
                _ = self.state.key_problem_noticed() => {
                    // Another path marked a problem: on a revocation, no
                    // cached private key of this organization serves again;
                    // "invalid state" is asked about once (DescribeKey
                    // tells a pending deletion and its date).
                    let Some(p) = self.state.read(|s| s.health.kms_key_problem.clone()) else {
                        continue;
                    };
                    if p.revoked {
                        self.forget_keys();
                    }
                    if p.kind == KeyProblemKind::InvalidState && confirmed != Some(p.since) {
                        confirmed = Some(p.since);
                        Box::pin(self.check(p.noticed_by)).await;
                    }
                }
            }
        }
    }

    /// One check: the probe, then — when it failed, or a problem is marked —
    /// `DescribeKey` for the exact state. Its KMS requests come last in the
    /// budget.
    async fn check(&self, by: NoticedBy) {
        let cur = self.current.get();
        let probed = with_priority(Priority::Background, self.probe_once(&cur)).await;
        let marked = self.state.read(|s| s.health.kms_key_problem.is_some());
        match probed {
            Err(e) if e.kind.is_unavailable() => {} // an outage says nothing
            Err(e) => match e.kind.key_problem() {
                Some(kind) => {
                    let described = self.described_problem(&cur, by).await;
                    self.mark(
                        described.unwrap_or_else(|| KeyProblem::new(kind, e.to_string(), by)),
                    );
                }
                None => {
                    tracing::warn!(error = %e, "the revocation probe failed in a way that says nothing about the key");
                }
            },
            Ok(()) if marked => self.preflight(by).await,
            Ok(()) => {}
        }
    }

    /// What `DescribeKey` (and the preflight's checks) say is wrong, if
    /// anything.
    async fn described_problem(&self, cur: &Current, by: NoticedBy) -> Option<KeyProblem> {
        with_priority(
            Priority::Background,
            crate::kms_check::preflight(&*cur.provider, &cur.settings),
        )
        .await
        .err()
        .and_then(|e| e.problem(by))
    }

    /// One preflight: passing clears a problem, failing marks one.
    async fn preflight(&self, by: NoticedBy) {
        let cur = self.current.get();
        let checked = with_priority(
            Priority::Background,
            crate::kms_check::preflight(&*cur.provider, &cur.settings),
        )
        .await;
        match checked {
            Ok(_) => self.usable(by),
            Err(e) => {
                if let Some(p) = e.problem(by) {
                    self.mark(p);
                }
            }
        }
    }

    /// The probe's two KMS requests: `GenerateDataKey` of a new probe
    /// key, then `Decrypt` of it, which must give the same bytes back. The
    /// plaintexts are zeroized when dropped; nothing is kept.
    async fn probe_once(&self, cur: &Current) -> Result<(), ProviderError> {
        let s = &cur.settings;
        let context = context_for(&s.context_key, &s.organization_id, PROBE_KEY_PAIR);
        let made = cur.provider.generate_data_key(&context).await?;
        let back = cur
            .provider
            .decrypt(&made.wrapping_key_arn, &made.ciphertext, &context)
            .await?;
        if digest(back.plaintext.as_slice()) == digest(made.plaintext.as_slice()) {
            Ok(())
        } else {
            Err(ProviderError {
                operation: "Decrypt",
                kind: FailureKind::InvalidCiphertext,
                code: None,
                message: "the probe key decrypted to different bytes".into(),
                request_id: back.request_id,
            })
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}
