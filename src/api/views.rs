//! JSON shapes of the API. The daemon serializes them; `kekctl`, the tests
//! and third-party clients deserialize them, so both sides agree by
//! construction. Every shape the API answers with is named here.

use crate::domain::{Envelope, KeyPairInfo, KeyPairRecord, KeyState, KeyType, Reason};
use crate::keypair::public_key_pem;
use crate::time::{rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::audit::Head as AuditHead;
pub use crate::canary::{CanaryReport, CheckedKeyPair};
pub use crate::kms_check::{TestReport, TestStep};
pub use crate::reload::{ReloadOutcome, ReloadResult};
pub use crate::rewrap::{RewrapEvent, RewrapOutcome};
pub use crate::rotation::{DegradedCause, FailureCause, LastError, RotationStep};

/// A key pair as the API shows it: everything but the envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyPairView {
    /// `kek-…`.
    pub id: String,
    /// Life-cycle state.
    pub state: KeyState,
    /// Its key type (`null` only for a record of a size kekd never makes).
    pub key_type: Option<KeyType>,
    /// RSA size; 0 for a key pair that is not RSA.
    pub key_bits: u32,
    /// Why it was made.
    pub reason: Reason,
    /// Generated at.
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    /// Became active at.
    #[serde(with = "rfc3339::option")]
    pub activated_at: Option<Timestamp>,
    /// Retired at.
    #[serde(with = "rfc3339::option")]
    pub retired_at: Option<Timestamp>,
    /// The KMS key ARN that wraps its data key.
    pub wrapping_key_arn: String,
    /// The public key, PEM (label `PUBLIC KEY` for RSA SPKI,
    /// `X25519-MLKEM768 PUBLIC KEY` for the raw hybrid key).
    pub public_key_pem: String,
}

impl From<&KeyPairRecord> for KeyPairView {
    fn from(r: &KeyPairRecord) -> Self {
        KeyPairView::from(&r.info())
    }
}

impl From<&KeyPairInfo> for KeyPairView {
    fn from(r: &KeyPairInfo) -> Self {
        KeyPairView {
            id: r.id.clone(),
            state: r.state,
            key_type: r.key_type(),
            key_bits: r.key_bits,
            reason: r.reason,
            created_at: r.created_at,
            activated_at: r.activated_at,
            retired_at: r.retired_at,
            wrapping_key_arn: r.wrapping_key_arn.clone(),
            public_key_pem: public_key_pem(r.algorithm, &r.public_key_der),
        }
    }
}

/// One cause of a degraded state, as status shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Degradation {
    /// The cause.
    pub cause: DegradedCause,
    /// Since when (for a failed canary: when it ran); `null` when only
    /// the fact is known (an audit problem).
    #[serde(with = "rfc3339::option")]
    pub since: Option<Timestamp>,
    /// What the latest evidence said: the error, the key problem, the
    /// store failure.
    pub message: String,
}

/// A stored record that does not decode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CorruptRecord {
    /// Its id.
    pub id: String,
    /// Why it does not decode.
    pub problem: String,
}

/// `GET /v1/keypairs?limit=&cursor=`: the query of a history page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Key pairs per page (1 to 1000; 50 when absent).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/keypairs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyPairList {
    /// Newest first.
    pub keypairs: Vec<KeyPairView>,
    /// Pass as `cursor` to get the next page; `null` at the end.
    pub next_cursor: Option<String>,
    /// Records skipped because they do not decode (kept in the store).
    pub corrupt_records: Vec<CorruptRecord>,
}

/// `GET /v1/public-key?key_types=`: the key types the caller can seal
/// with, comma-separated (`rsa`, `x25519-mlkem768`); `rsa` when absent,
/// which is what every recorder from before hybrid key pairs knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyQuery {
    /// E.g. `rsa,x25519-mlkem768`.
    pub key_types: Option<String>,
}

/// `GET /v1/public-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicKeyView {
    /// The active key pair's id; recorders put it in each recording's header.
    pub id: String,
    /// The public key, PEM: `PUBLIC KEY` (SPKI) for RSA,
    /// `X25519-MLKEM768 PUBLIC KEY` for the hybrid.
    pub pem: String,
    /// Its key type; what a recorder must be able to seal with.
    pub key_type: Option<KeyType>,
    /// RSA size; 0 for a key pair that is not RSA.
    pub key_bits: u32,
    /// Active since.
    #[serde(with = "rfc3339::option")]
    pub activated_at: Option<Timestamp>,
}

/// `GET /v1/keypairs/{id}/envelope`: the encrypted private key and what is
/// needed to decrypt it with KMS (docs/envelope-format.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportView {
    /// The envelope itself.
    pub envelope: Envelope,
    /// The public key, to check the decrypted private key against.
    pub public_key_pem: String,
    /// Life-cycle state at export time.
    pub state: KeyState,
}

/// `POST /v1/keypairs/{id}/unwrap` request body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnwrapRequest {
    /// The recording header's RSA-OAEP wrapped content key.
    #[serde(with = "crate::domain::b64")]
    pub wrapped_key: Vec<u8>,
}

/// `POST /v1/keypairs/{id}/unwrap` answer: the one API answer that carries a
/// secret (the recording's content key), for role `decrypt` only.
#[derive(Clone, Serialize, Deserialize)]
pub struct UnwrapView {
    /// The 32-byte content key.
    #[serde(with = "crate::domain::b64")]
    pub content_key: Vec<u8>,
}

impl std::fmt::Debug for UnwrapView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnwrapView { content_key: <redacted> }")
    }
}

impl Drop for UnwrapView {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.content_key);
    }
}

/// Counts of stored key pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPairCounts {
    /// All decodable records.
    pub total: usize,
    /// By state.
    pub by_state: BTreeMap<KeyState, usize>,
    /// By wrapping KMS key ARN.
    pub by_wrapping_key: BTreeMap<String, usize>,
}

/// The daemon's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Everything works.
    Ok,
    /// Still serving the active public key, but something needs attention:
    /// rotations fail, the KMS key failed a check, or the canary failed.
    Degraded,
}

crate::domain::display_as_serde!(ServiceState);

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// `ok` or `degraded`.
    pub state: ServiceState,
    /// Why it is degraded (empty when ok): every cause that holds now.
    #[serde(default)]
    pub degraded_causes: Vec<DegradedCause>,
    /// kekd version.
    pub version: String,
    /// The build does its cryptography in the AWS-LC FIPS module, checked
    /// to be in FIPS mode at start.
    pub fips: bool,
    /// The organization bound into every encryption context.
    pub organization_id: String,
    /// The daemon as a whole (every organization it serves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonSummary>,
    /// The configured KMS key (as written) or local key id.
    pub kms_key: String,
    /// The active key pair, if any.
    pub active_key_id: Option<String>,
    /// The active key pair's type.
    #[serde(default)]
    pub active_key_type: Option<KeyType>,
    /// What the next key pair will be (differs from the active one's
    /// while a change of key type waits for the next rotation).
    #[serde(default)]
    pub next_key_type: Option<KeyType>,
    /// Active since.
    #[serde(with = "rfc3339::option")]
    pub active_since: Option<Timestamp>,
    /// The key pair announced for the next scheduled rotation
    /// (`announce_ahead`), if any.
    pub announced_key_id: Option<String>,
    /// When it becomes active.
    #[serde(with = "rfc3339::option")]
    pub announced_activates_at: Option<Timestamp>,
    /// Cadence as configured.
    pub cadence: String,
    /// Time zone of the cadence.
    pub timezone: String,
    /// The last completed rotation.
    #[serde(with = "rfc3339::option")]
    pub last_rotation_at: Option<Timestamp>,
    /// When the next scheduled rotation is due.
    #[serde(with = "rfc3339::option")]
    pub next_rotation_at: Option<Timestamp>,
    /// A rotation is running now.
    pub rotation_in_progress: bool,
    /// Since when the organization has been degraded, by any cause (the
    /// earliest `since` of `degraded`).
    #[serde(with = "rfc3339::option")]
    pub degraded_since: Option<Timestamp>,
    /// Every cause of degradation now, each with since when and what the
    /// latest evidence said; empty when ok.
    #[serde(default)]
    pub degraded: Vec<Degradation>,
    /// Failed attempts in a row.
    pub failed_attempts: u32,
    /// The next retry of a failed rotation.
    #[serde(with = "rfc3339::option")]
    pub next_retry_at: Option<Timestamp>,
    /// The most recent failure, `null` if none since start.
    pub last_error: Option<LastError>,
    /// What is wrong with the configured KMS key, in words (`null` if
    /// nothing): `key_problem.message`.
    pub kms_key_problem: Option<String>,
    /// What is wrong with the configured KMS key: its kind, whether the
    /// customer revoked it, since when, which path noticed, and a pending
    /// deletion's date; `null` if nothing.
    #[serde(default)]
    pub key_problem: Option<crate::domain::KeyProblem>,
    /// Backup KMS keys configured (they also wrap every new data key).
    pub backup_kms_keys: Vec<String>,
    /// While the primary KMS key is unavailable and backups decrypt:
    /// since when, why, and which backup served last; `null` otherwise.
    pub kms_fallback: Option<crate::provider::Fallback>,
    /// The last reload since start, `null` if none.
    pub last_reload: Option<ReloadOutcome>,
    /// The last decryptability canary, `null` if none ran yet.
    pub last_canary: Option<CanaryReport>,
    /// The audit trail: file, records, head hash (compare with a copy kept
    /// elsewhere to notice a truncated tail).
    pub audit: AuditHead,
    /// Things to look at that do not stop anything (e.g. the active key pair
    /// is older than `max_key_age_warning`).
    pub warnings: Vec<String>,
    /// Stored key pairs.
    pub key_pairs: KeyPairCounts,
    /// Records that do not decode.
    pub corrupt_records: Vec<CorruptRecord>,
    /// Where the key history lives; in fleet mode, how this instance
    /// follows it.
    pub store: StoreStatus,
}

/// The store, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// `redb` (this host) or `dynamodb` (a fleet).
    #[serde(rename = "type")]
    pub kind: String,
    /// The file, or `dynamodb:TABLE`.
    pub location: String,
    /// Fleet mode: this instance's id (host/pid/tag).
    pub instance: Option<String>,
    /// Fleet mode: the last successful read of the fleet's active key pair.
    #[serde(with = "rfc3339::option")]
    pub last_refresh_at: Option<Timestamp>,
    /// Fleet mode: how old that read is, in milliseconds.
    pub staleness_ms: Option<u64>,
    /// Fleet mode: the instance holding the rotation lease at the last
    /// read, `null` if none.
    pub lease_holder: Option<String>,
    /// Until when it holds it.
    #[serde(with = "rfc3339::option")]
    pub lease_expires_at: Option<Timestamp>,
    /// Fleet mode: a rotation here waits for that holder's lease — since
    /// when; `null` when nothing waits.
    #[serde(default)]
    pub waiting_for_lease: Option<crate::rotation::LeaseWait>,
    /// Since when the store does not answer; `null` = healthy.
    #[serde(with = "rfc3339::option")]
    pub unavailable_since: Option<Timestamp>,
    /// The most recent store failure (kept after recovery).
    pub last_error: Option<crate::rotation::StoreFailure>,
}

/// The daemon as a whole, in `GET /v1/status`: what an operator of many
/// organizations looks at first. Bounded whatever their number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DaemonSummary {
    /// Organizations served.
    pub organizations: usize,
    /// How many are in each state.
    pub by_state: BTreeMap<String, usize>,
    /// How many are degraded.
    pub degraded: usize,
    /// The first degraded ones, by id (at most [`DaemonSummary::LISTED`]).
    pub degraded_orgs: Vec<String>,
    /// Organizations in the store that are not served, with why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unavailable: BTreeMap<String, String>,
    /// The KMS request budget every organization shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_budget: Option<KmsBudgetView>,
}

pub use crate::domain::{BucketView, KmsBudgetView};

impl DaemonSummary {
    /// How many degraded organizations are named.
    pub const LISTED: usize = 20;
}
