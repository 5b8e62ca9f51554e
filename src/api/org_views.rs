//! JSON shapes of the organization endpoints (`/v1/orgs`…) and of the
//! daemon summary in status; like `views.rs`, shared by the daemon and
//! its clients.

pub use super::views::DaemonSummary;
use super::views::{KeyPairView, ServiceState};
use crate::domain::{OrgSource, OrgSpec, OrgState};
use crate::time::{rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An organization as `GET /v1/orgs/{org}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgView {
    /// The id (the encryption-context value).
    pub id: String,
    /// `active` or `removed`.
    pub state: OrgState,
    /// `file` (the configuration file declares it) or `api`.
    pub source: OrgSource,
    /// `ok` or `degraded`: its own health, whatever the others'.
    pub health: ServiceState,
    /// What is wrong with its KMS key, if anything (`disabled`,
    /// `pending_deletion`, `access_denied`, `not_found` are revocations).
    #[serde(default)]
    pub key_problem: Option<crate::domain::KeyProblemKind>,
    /// The KMS key (or local root key) that wraps its key pairs.
    pub kms_key: String,
    /// Its cadence and time zone, resolved.
    pub cadence: String,
    /// The time zone the cadence is read in.
    pub timezone: String,
    /// What its next key pair will be.
    pub key_type: crate::domain::KeyType,
    /// RSA size of new key pairs; 0 when `key_type` is not RSA.
    pub key_bits: u32,
    /// The active key pair.
    pub active_key_id: Option<String>,
    /// When the next scheduled rotation is due.
    #[serde(with = "rfc3339::option")]
    pub next_rotation_at: Option<Timestamp>,
    /// What was said about it (absent fields take kekd's defaults).
    pub spec: OrgSpec,
    /// When it was added.
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    /// When it last changed.
    #[serde(with = "rfc3339")]
    pub updated_at: Timestamp,
    /// When it was removed.
    #[serde(default, with = "rfc3339::option")]
    pub removed_at: Option<Timestamp>,
    /// Until when it can be restored; purge is refused before.
    #[serde(default, with = "rfc3339::option")]
    pub purge_after: Option<Timestamp>,
}

/// One page of `GET /v1/orgs`, by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgList {
    /// The organizations of the page.
    pub organizations: Vec<OrgView>,
    /// The id to continue after (`?cursor=`), if there is more.
    pub next_cursor: Option<String>,
    /// Organizations in the store that are not served, with why (their
    /// settings do not validate).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unavailable: BTreeMap<String, String>,
}

/// The answer of `POST /v1/orgs`: the organization and its first key
/// pair, active.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgAdded {
    /// The organization.
    pub organization: OrgView,
    /// Its first key pair, proven and active.
    pub key_pair: Option<KeyPairView>,
    /// Whether the customer's key is bound to this organization (the
    /// Test's isolation probe).
    #[serde(default)]
    pub isolation: Option<crate::isolation::Isolation>,
    /// What passed but needs a look.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The answer of a purge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgPurged {
    /// The organization, gone.
    pub organization: String,
    /// How many key pairs were deleted.
    pub key_pairs_deleted: u64,
}

/// The body of a remove (`DELETE /v1/orgs/{org}`, optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// How long it can be restored (default 30 days), e.g. `"7d"`.
    #[serde(default)]
    pub restore_window: Option<String>,
}

/// The body of a purge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// The organization's id again: a purge cannot be undone.
    pub confirm: String,
}

/// `GET /v1/status` when several organizations are served and the path
/// names none: the daemon summary alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// `ok` or `degraded` (any organization degraded, or one unavailable).
    pub state: ServiceState,
    /// kekd version.
    pub version: String,
    /// The summary.
    pub daemon: DaemonSummary,
    /// The audit trail (one for the daemon).
    pub audit: crate::audit::Head,
}
