//! How things turned out, in the operator's terms: why a KMS call failed,
//! what a failed rotation ran into, what a reload did, what an access check
//! decided. Vocabulary shared by the audit trail, status and the metrics,
//! so each is spelled one way everywhere.

use super::KeyProblemKind;
use serde::{Deserialize, Serialize};

/// Why a provider call failed, in the operator's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// Connection refused, DNS, TLS: KMS could not be reached.
    Unreachable,
    /// No answer in time (connect, attempt or operation timeout).
    Timeout,
    /// No usable AWS credentials.
    Credentials,
    /// KMS refused: IAM or key policy.
    AccessDenied,
    /// STS refused to let kekd assume the customer's role (its trust
    /// policy or external id changed, or the role is gone).
    AssumeRoleDenied,
    /// The key is disabled.
    KeyDisabled,
    /// The key is pending deletion, pending import or otherwise unusable.
    InvalidKeyState,
    /// The key (or alias) does not exist.
    NotFound,
    /// The ciphertext or encryption context does not match.
    InvalidCiphertext,
    /// KMS is throttling us.
    Throttled,
    /// KMS answered but cannot serve now (5xx, `KeyUnavailableException`,
    /// `KMSInternalException`).
    ServiceUnavailable,
    /// The call could not be recorded in the audit log, so its result is
    /// refused (fail closed).
    AuditUnavailable,
    /// Anything else (5xx, unexpected answers).
    Other,
}

impl FailureKind {
    /// The one availability rule: KMS (or its network) cannot serve right
    /// now, and asking again later can succeed without anyone acting. The API
    /// answers these with `kms_unavailable`; preflight does not stop a start
    /// for them. Access, key-state and ciphertext problems are never
    /// "unavailable": they need an operator and must not be masked.
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable
                | FailureKind::Timeout
                | FailureKind::Throttled
                | FailureKind::ServiceUnavailable
        )
    }
}

impl FailureKind {
    /// A failure that says something about the key itself — its owner
    /// disabled it, scheduled its deletion, changed its policy, or it is
    /// gone — rather than about reaching KMS. Status marks the key as having
    /// a problem until a check passes again.
    pub fn is_key_problem(self) -> bool {
        self.key_problem().is_some()
    }

    /// The key problem this failure is evidence of, if any. A
    /// `KMSInvalidStateException` says only "not usable now": a
    /// `DescribeKey` tells pending deletion from the other states.
    pub fn key_problem(self) -> Option<KeyProblemKind> {
        match self {
            FailureKind::KeyDisabled => Some(KeyProblemKind::Disabled),
            FailureKind::InvalidKeyState => Some(KeyProblemKind::InvalidState),
            FailureKind::AccessDenied => Some(KeyProblemKind::AccessDenied),
            FailureKind::NotFound => Some(KeyProblemKind::NotFound),
            FailureKind::AssumeRoleDenied => Some(KeyProblemKind::AssumeRoleDenied),
            _ => None,
        }
    }
}

crate::domain::display_as_serde!(FailureKind);

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

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadResult {
    /// The new configuration is in force.
    Applied,
    /// The file says what is already in force.
    Unchanged,
    /// Nothing changed; the running configuration stays (see the message).
    Failed,
}

crate::domain::display_as_serde!(ReloadResult);

/// What an access check decided about an API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The caller holds the role.
    Allowed,
    /// The caller lacks the role.
    Refused,
}

crate::domain::display_as_serde!(Decision);
