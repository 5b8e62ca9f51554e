//! What the audit trail records: one typed event per line, so every record
//! of a kind has the same fields and a reader can rely on them. Events carry
//! ids, ARNs, encryption contexts and request ids — never key material.

use crate::config::Role;
use crate::domain::{Decision, EncryptionContext, FailureCause, Reason, ReloadResult};
use crate::time::{rfc3339, Timestamp};
use serde::{Deserialize, Serialize};

/// One audited event. `type` on the wire names the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// One KMS (key provider) call.
    KmsCall {
        /// e.g. `GenerateDataKey`.
        operation: String,
        /// The key (or `source -> destination` for ReEncrypt).
        key_arn: String,
        /// The encryption context sent.
        encryption_context: Option<EncryptionContext>,
        /// KMS's request id.
        request_id: Option<String>,
        /// `ok` or the failure kind.
        outcome: String,
        /// KMS's error code.
        error_code: Option<String>,
        /// How long the call took.
        duration_ms: u64,
    },
    /// A rotation finished.
    Rotation {
        /// Why it ran.
        reason: Reason,
        /// `success` or `failure`.
        outcome: Outcome,
        /// The key pair active before.
        old_key_pair_id: Option<String>,
        /// The key pair active after a success.
        new_key_pair_id: Option<String>,
        /// Why it failed.
        error: Option<String>,
    },
    /// Rotations started failing.
    OutageStarted {
        /// The classified cause.
        cause: FailureCause,
        /// The KMS operation, when KMS failed.
        operation: Option<String>,
        /// KMS's error code.
        code: Option<String>,
        /// The message.
        message: String,
        /// KMS's request id.
        request_id: Option<String>,
    },
    /// Rotations work again.
    OutageEnded {
        /// When the outage started.
        #[serde(with = "rfc3339")]
        since: Timestamp,
        /// How long it lasted.
        duration_ms: i64,
        /// The last cause seen.
        cause: Option<FailureCause>,
    },
    /// An API call that changes state or reveals key material.
    Api {
        /// HTTP method.
        method: String,
        /// Request path (bounded; see `api::auth`).
        path: String,
        /// Caller's uid (`SO_PEERCRED`).
        uid: u32,
        /// Caller's primary gid.
        gid: u32,
        /// Caller's pid.
        pid: Option<i32>,
        /// The role the call needs.
        role: Role,
        /// The key pair the call is about.
        key_pair_id: Option<String>,
        /// Whether the caller held the role.
        outcome: Decision,
    },
    /// Refusals of one uid beyond the per-minute allowance, summed up.
    ApiRefusalsSuppressed {
        /// The caller's uid.
        uid: u32,
        /// How many refusals were not recorded one by one.
        refused: u64,
        /// Since when.
        #[serde(with = "rfc3339")]
        since: Timestamp,
    },
    /// A reload began (written before anything changes: fail closed).
    ConfigReloadStarted {
        /// The configuration file.
        file: Option<String>,
    },
    /// A reload ended.
    ConfigReload {
        /// What happened.
        outcome: ReloadResult,
        /// Details.
        message: String,
        /// The key pair made under a new KMS key.
        new_key_pair_id: Option<String>,
    },
    /// The trail itself was repaired at start.
    AuditRepaired {
        /// What was repaired.
        what: String,
    },
    /// The first record of a file started by `kekctl audit rotate`: the
    /// chain goes on from the archived file's last record (this record's
    /// `prev` is that record's hash).
    AuditContinued {
        /// The archived file's name (in the same directory).
        previous_file: String,
        /// Records up to and including the archived file's last.
        previous_records: u64,
    },
    /// The KMS key that wraps new key pairs changed with no configuration
    /// change: the configured alias now points to another key (or the key
    /// was changed while kekd was stopped).
    WrappingKeyChanged {
        /// The key that wrapped the previous key pair.
        from: String,
        /// The key that wraps the new one.
        to: String,
        /// The key as configured.
        configured: String,
        /// The first key pair under the new key.
        key_pair_id: String,
    },
    /// An organization was added (`kekctl org add`), after its Test
    /// passed.
    OrgAdded {
        /// What it was added with.
        spec: crate::domain::OrgSpec,
    },
    /// An organization's settings changed (`org set`, or the file that
    /// declares it).
    OrgChanged {
        /// Its settings now.
        spec: crate::domain::OrgSpec,
    },
    /// An organization was removed: nothing served, history kept.
    OrgRemoved {
        /// The end of its restore window.
        #[serde(with = "rfc3339")]
        purge_after: Timestamp,
    },
    /// A removed organization was restored.
    OrgRestored {},
    /// A purge started: every key pair of the organization is being
    /// deleted.
    OrgPurgeStarted {},
    /// A purge finished.
    OrgPurged {
        /// How many key pairs were deleted.
        key_pairs_deleted: u64,
    },
    /// A retired key pair was deleted (retention).
    Prune {
        /// The key pair.
        key_pair_id: String,
        /// When it was retired.
        #[serde(with = "rfc3339::option")]
        retired_at: Option<Timestamp>,
    },
}

/// Success or failure of an audited operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    Success,
    /// It did not.
    Failure,
}

crate::domain::display_as_serde!(Outcome);
