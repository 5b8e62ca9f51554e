//! What status shows about rotation: the active key pair, the persisted
//! schedule, and the health of the last attempts (degraded since when, the
//! last error with KMS's code, message and request id, the next retry).

use super::RotationError;
use crate::domain::{KeyPairRecord, KeyProblem, Reason, Schedule};
use crate::provider::FailureKind;
use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

pub use crate::domain::{FailureCause, RotationStep};

/// The last failure, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    /// When it happened.
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
    /// What was being attempted.
    pub reason: Reason,
    /// The KMS operation, when KMS failed.
    pub operation: Option<String>,
    /// The classified cause.
    pub kind: FailureCause,
    /// KMS error code.
    pub code: Option<String>,
    /// Human message.
    pub message: String,
    /// AWS request id.
    pub request_id: Option<String>,
}

impl LastError {
    pub(crate) fn new(reason: Reason, err: &RotationError) -> LastError {
        let step = |s| (None, FailureCause::Step(s), None, None, err.to_string());
        let (operation, kind, code, request_id, message) = match err {
            RotationError::Provider(p) => (
                Some(p.operation.to_string()),
                FailureCause::Provider(p.kind),
                p.code.clone(),
                p.request_id.clone(),
                p.message.clone(),
            ),
            RotationError::Verify(_) => step(RotationStep::Verification),
            RotationError::Store(_) => step(RotationStep::Store),
            RotationError::Generate(_) => step(RotationStep::Generation),
            RotationError::ShuttingDown => step(RotationStep::ShuttingDown),
            RotationError::Panicked(_) => step(RotationStep::Internal),
        };
        LastError {
            at: time::now(),
            reason,
            operation,
            kind,
            code,
            message,
            request_id,
        }
    }
}

/// Rotation health, as status shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Health {
    /// Since when rotations have been failing; `None` = healthy.
    pub(crate) degraded_since: Option<Timestamp>,
    /// The most recent failure (kept after recovery, for the record).
    pub(crate) last_error: Option<LastError>,
    /// Failed attempts in a row.
    pub(crate) attempts: u32,
    /// When the failed rotation is tried again.
    pub(crate) next_retry_at: Option<Timestamp>,
    /// A rotation is running now.
    pub(crate) rotating: bool,
    /// The configured KMS key has a problem (a revocation, or a key set up
    /// wrong), from the latest evidence of any path; cleared when a check
    /// or a rotation proves the key works again.
    pub(crate) kms_key_problem: Option<KeyProblem>,
    /// The key that wraps new key pairs changed with no configuration
    /// change (an alias re-pointed, or a key changed while kekd was
    /// stopped): shown in status until the next reload or restart.
    pub(crate) wrapping_key_changed: Option<WrappingKeyChange>,
}

impl Health {
    /// Marks `problem`, keeping when and by whom it was first seen while its
    /// kind stays the same. Whether it is news (none before, or another
    /// kind).
    pub(crate) fn mark_key_problem(&mut self, problem: KeyProblem) -> bool {
        match &mut self.kms_key_problem {
            Some(p) if p.kind == problem.kind => {
                p.message = problem.message;
                p.deletion_date = problem.deletion_date.or(p.deletion_date);
                false
            }
            slot => {
                *slot = Some(problem);
                true
            }
        }
    }
}

/// A change of the KMS key behind the configured one, as status shows it.
/// Whoever may re-point an alias would otherwise redirect every future
/// private key silently: a new wrapping key that no configuration change
/// asked for is audited and shown (it was proven like any other: I1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrappingKeyChange {
    /// When the rotation under the new key finished.
    pub(crate) at: Timestamp,
    /// The key that wrapped the previous key pair.
    pub(crate) from: String,
    /// The key that wraps the new one.
    pub(crate) to: String,
    /// The key as configured (an alias, usually).
    pub(crate) configured: String,
}

impl WrappingKeyChange {
    /// The change from `prev` (the key pair active before) to `new`, made
    /// for `reason` under the configured key `configured`, if the wrapping
    /// key moved without a configuration change asking for it.
    pub(crate) fn of(
        prev: Option<&KeyPairRecord>,
        new: &KeyPairRecord,
        reason: crate::domain::Reason,
        configured: &str,
    ) -> Option<WrappingKeyChange> {
        let prev = prev?;
        (prev.wrapping_key_arn != new.wrapping_key_arn
            && reason != crate::domain::Reason::KmsKeyChanged)
            .then(|| WrappingKeyChange {
                at: new.activated_at.unwrap_or_else(time::now),
                from: prev.wrapping_key_arn.clone(),
                to: new.wrapping_key_arn.clone(),
                configured: configured.to_string(),
            })
    }

    /// Its audit record, naming the first key pair under the new key.
    pub(crate) fn event(&self, key_pair_id: &str) -> crate::audit::AuditEvent {
        crate::audit::AuditEvent::WrappingKeyChanged {
            from: self.from.clone(),
            to: self.to.clone(),
            configured: self.configured.clone(),
            key_pair_id: key_pair_id.to_string(),
        }
    }
}

/// What a store failure looked like, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreFailure {
    /// When it happened.
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
    /// The DynamoDB operation, when DynamoDB failed.
    pub operation: Option<String>,
    /// The classified cause (`unreachable`, `throttled`, `access_denied`,
    /// …, or `other`).
    pub kind: FailureKind,
    /// DynamoDB's error code.
    pub code: Option<String>,
    /// Human message.
    pub message: String,
    /// AWS request id.
    pub request_id: Option<String>,
}

impl StoreFailure {
    pub(crate) fn new(err: &crate::store::StoreError) -> StoreFailure {
        match err {
            crate::store::StoreError::Remote { error, .. } => StoreFailure {
                at: time::now(),
                operation: Some(error.operation.to_string()),
                kind: error.kind,
                code: error.code.clone(),
                message: error.message.clone(),
                request_id: error.request_id.clone(),
            },
            other => StoreFailure {
                at: time::now(),
                operation: None,
                kind: FailureKind::Other,
                code: None,
                message: other.to_string(),
                request_id: None,
            },
        }
    }
}

/// How this instance follows a store the fleet shares.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FleetHealth {
    /// `dynamodb:TABLE`.
    pub(crate) location: String,
    /// This instance's id in the fleet.
    pub(crate) instance: String,
    /// The last successful read of the fleet's head.
    pub(crate) last_refresh_at: Option<Timestamp>,
    /// Since when refreshes fail; `None` = healthy.
    pub(crate) unavailable_since: Option<Timestamp>,
    /// The most recent failure (kept after recovery, for the record).
    pub(crate) last_error: Option<StoreFailure>,
    /// Failed refreshes in a row.
    pub(crate) failures: u32,
    /// Who held the rotation lease at the last refresh, and until when.
    pub(crate) lease: Option<crate::store::LeaseHolder>,
    /// A rotation here waits for another instance's lease: whose, since
    /// when. Status shows it, so a wait is never mistaken for a hang.
    pub(crate) waiting: Option<LeaseWait>,
}

/// A rotation waiting for the lease another instance holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseWait {
    /// The holder's instance id.
    pub holder: String,
    /// Since when this instance waits.
    #[serde(with = "time::rfc3339")]
    pub since: Timestamp,
    /// When the holder's lease runs out, as this instance reads it.
    #[serde(with = "time::rfc3339")]
    pub expires_at: Timestamp,
}

/// Why status says degraded: each is a cause an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DegradedCause {
    /// Rotations fail and are being retried.
    RotationFailing,
    /// The configured KMS key is not usable as set up (wrong spec, usage,
    /// region or state): the operator's to fix.
    KmsKeyProblem,
    /// The customer revoked kekd's use of their key (disabled, pending
    /// deletion, access taken away, deleted): the customer's to restore.
    KeyRevoked,
    /// Backup keys serve decryptions while the primary is unavailable.
    KmsFallback,
    /// The fleet's shared store cannot be read.
    StoreUnavailable,
    /// The last decryptability canary failed.
    CanaryFailed,
    /// The audit trail cannot be written, or a damaged record was found.
    AuditFailing,
}

crate::domain::display_as_serde!(DegradedCause);

/// What the health rule looks at besides the engine's own state: the
/// latest evidence of the parts beside it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evidence {
    /// The last canary failed.
    pub(crate) canary_failed: bool,
    /// The audit trail's problem, if it has one.
    pub(crate) audit_failing: bool,
    /// Backups serve while the primary KMS key is unavailable.
    pub(crate) kms_fallback: bool,
    /// `max_key_age_warning`.
    pub(crate) max_key_age: Option<std::time::Duration>,
}

/// The one health rule's verdict, read by status and `/metrics` alike (the
/// alerts read `/metrics`), so they can never disagree.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Assessment {
    /// Every cause of degradation now, in a fixed order; empty = ok.
    pub(crate) causes: Vec<DegradedCause>,
    /// How old the active key pair is.
    pub(crate) key_age: Option<std::time::Duration>,
    /// Older than `max_key_age_warning` (a warning, not a degradation).
    pub(crate) key_too_old: bool,
}

impl Assessment {
    /// Whether status says `degraded`.
    pub(crate) fn degraded(&self) -> bool {
        !self.causes.is_empty()
    }
}

impl EngineState {
    /// The health rule: degraded while any cause holds, each cleared by its
    /// own latest evidence.
    pub(crate) fn assess(&self, evidence: &Evidence, now: Timestamp) -> Assessment {
        let mut causes = Vec::new();
        let mut cause = |holds: bool, c| {
            if holds {
                causes.push(c)
            }
        };
        cause(
            self.health.degraded_since.is_some(),
            DegradedCause::RotationFailing,
        );
        let problem = self.health.kms_key_problem.as_ref();
        cause(
            problem.is_some_and(|p| !p.revoked),
            DegradedCause::KmsKeyProblem,
        );
        cause(
            problem.is_some_and(|p| p.revoked),
            DegradedCause::KeyRevoked,
        );
        cause(evidence.kms_fallback, DegradedCause::KmsFallback);
        cause(
            self.fleet
                .as_ref()
                .is_some_and(|f| f.unavailable_since.is_some()),
            DegradedCause::StoreUnavailable,
        );
        cause(evidence.canary_failed, DegradedCause::CanaryFailed);
        cause(evidence.audit_failing, DegradedCause::AuditFailing);
        let key_age = self
            .active
            .as_ref()
            .and_then(|a| a.activated_at)
            .and_then(|t| (now - t).to_std().ok());
        let key_too_old = matches!((key_age, evidence.max_key_age), (Some(a), Some(l)) if a > l);
        Assessment {
            causes,
            key_age,
            key_too_old,
        }
    }
}

/// What the API reads without touching KMS or the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct EngineState {
    /// The active key pair; set only after its activation committed (I1).
    pub(crate) active: Option<Arc<KeyPairRecord>>,
    /// The key pair announced for the next scheduled rotation
    /// (`announce_ahead`), proven and stored.
    pub(crate) announced: Option<Arc<KeyPairRecord>>,
    /// The persisted schedule.
    pub(crate) schedule: Schedule,
    /// Rotation health.
    pub(crate) health: Health,
    /// Fleet mode: how this instance follows the shared store.
    pub(crate) fleet: Option<FleetHealth>,
}

/// Shared, cheaply readable engine state.
#[derive(Clone, Default)]
pub(crate) struct SharedState(Arc<RwLock<EngineState>>, Arc<tokio::sync::Notify>);

impl SharedState {
    pub(crate) fn new(state: EngineState) -> SharedState {
        SharedState(Arc::new(RwLock::new(state)), Default::default())
    }

    /// Tells the key watch a path marked a key problem (it drops the
    /// organization's cached private keys on a revocation and confirms the
    /// problem's kind).
    pub(crate) fn key_problem_marked(&self) {
        self.1.notify_one();
    }

    /// Resolves at the next [`SharedState::key_problem_marked`] (or at
    /// once, if one came since the last wait).
    pub(crate) async fn key_problem_noticed(&self) {
        self.1.notified().await;
    }

    /// A copy of the state now.
    pub(crate) fn snapshot(&self) -> EngineState {
        crate::sync::read(&self.0).clone()
    }

    /// Reads a part of the state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&EngineState) -> T) -> T {
        f(&crate::sync::read(&self.0))
    }

    /// Changes the state.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut EngineState) -> T) -> T {
        let out = f(&mut crate::sync::write(&self.0));
        changed();
        out
    }
}

/// Bumped whenever any organization's engine state (or the set of
/// organizations) changes: what is derived from all of them (the daemon
/// summary) is recomputed only when this moved. A hint, never a value to
/// trust — spurious bumps only cost a recomputation.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Something every-organization views derive from changed.
pub(crate) fn changed() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Release);
}

/// The current generation (see [`changed`]).
pub(crate) fn generation() -> u64 {
    GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cause degrades on its own and clears with its own evidence.
    #[test]
    fn every_cause_degrades_and_clears_on_its_own() {
        let now = time::now();
        let ok = EngineState::default();
        assert!(!ok.assess(&Evidence::default(), now).degraded());
        let mut failing = EngineState::default();
        failing.health.degraded_since = Some(now);
        failing.health.kms_key_problem = Some(KeyProblem::new(
            crate::domain::KeyProblemKind::Misconfigured,
            "wrong key spec".into(),
            crate::domain::NoticedBy::Preflight,
        ));
        let a = failing.assess(
            &Evidence {
                audit_failing: true,
                ..Evidence::default()
            },
            now,
        );
        assert_eq!(
            a.causes,
            [
                DegradedCause::RotationFailing,
                DegradedCause::KmsKeyProblem,
                DegradedCause::AuditFailing
            ]
        );
        for (e, c) in [
            (
                Evidence {
                    canary_failed: true,
                    ..Evidence::default()
                },
                DegradedCause::CanaryFailed,
            ),
            (
                Evidence {
                    kms_fallback: true,
                    ..Evidence::default()
                },
                DegradedCause::KmsFallback,
            ),
        ] {
            assert_eq!(ok.assess(&e, now).causes, [c]);
        }
        // A revocation is its own cause, not a misconfigured key.
        let mut revoked = EngineState::default();
        let problem = KeyProblem::new(
            crate::domain::KeyProblemKind::AccessDenied,
            "AccessDeniedException".into(),
            crate::domain::NoticedBy::Probe,
        );
        assert!(revoked.health.mark_key_problem(problem.clone()));
        assert!(
            !revoked.health.mark_key_problem(problem),
            "same kind: not news"
        );
        assert_eq!(
            revoked.assess(&Evidence::default(), now).causes,
            [DegradedCause::KeyRevoked]
        );
    }
}
