//! What status shows about rotation: the active key pair, the persisted
//! schedule, and the health of the last attempts (degraded since when, the
//! last error with KMS's code, message and request id, the next retry).

use super::RotationError;
use crate::domain::{KeyPairRecord, Reason, Schedule};
use crate::provider::FailureKind;
use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

/// What a failed rotation ran into: a classified provider failure, or one of
/// kekd's own steps. One flat name on the wire (`unreachable`,
/// `access_denied`, …, `verification`, `store`, `generation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FailureCause {
    /// KMS (or the local provider) failed this way.
    Provider(FailureKind),
    /// A step of kekd's own failed.
    Step(RotationStep),
}

/// kekd's own steps of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationStep {
    /// The stored envelope did not prove (I1).
    Verification,
    /// The store failed.
    Store,
    /// RSA generation failed.
    Generation,
    /// The daemon was stopping.
    ShuttingDown,
    /// A bug in kekd (a caught panic).
    Internal,
}

crate::domain::display_as_serde!(FailureCause);

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
    /// The configured KMS key failed a check (preflight); cleared when a
    /// rotation proves the key works again.
    pub(crate) kms_key_problem: Option<String>,
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
    pub(crate) lease: Option<(String, Timestamp)>,
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
pub(crate) struct SharedState(Arc<RwLock<EngineState>>);

impl SharedState {
    pub(crate) fn new(state: EngineState) -> SharedState {
        SharedState(Arc::new(RwLock::new(state)))
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
        f(&mut crate::sync::write(&self.0))
    }
}
