//! The domain vocabulary every other module speaks: key-pair states and
//! reasons, the stored key-pair record and its envelope, RSA sizes, and the
//! KMS encryption context.
//!
//! A leaf: it imports nothing from the rest of the crate but [`crate::time`],
//! so config, store, api and the rotation engine can all depend on it without
//! depending on each other.

mod budget;
mod context;
mod key_access;
mod lifecycle;
mod org;
mod outcome;
mod record;

pub use budget::{BucketView, KmsBudgetView};
pub use context::{context_for, is_context_value, EncryptionContext, KEY_PAIR_CONTEXT_KEY};
pub use key_access::{KeyProblem, KeyProblemKind, NoticedBy, OnRevocation};
pub use lifecycle::{IllegalTransition, Step};
pub use org::{is_org_id, OrgPatch, OrgRecord, OrgSource, OrgSpec, OrgState, MAX_ORG_ID};
pub use outcome::{Decision, FailureCause, FailureKind, ReloadResult, RotationStep};
pub(crate) use record::b64;
pub use record::{
    is_key_pair_id, Envelope, KeyAlgorithm, KeyBits, KeyPairInfo, KeyPairRecord, KeyState, KeyType,
    Reason, Schedule, Wrapping, ENVELOPE_V1, ENVELOPE_V2,
};

/// Implements `Display` as the value's serde name, so an enum is spelled one
/// way everywhere: on the wire, in logs, in metrics labels and in tables.
macro_rules! display_as_serde {
    ($($t:ty),+ $(,)?) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => Err(std::fmt::Error),
                }
            }
        }
    )+};
}
pub(crate) use display_as_serde;
