//! The organizations a store holds: [`Registry`], the seam beside
//! [`KeyStore`] that lists, saves and purges organizations and hands out
//! each one's own [`KeyStore`]. Both backends keep organizations in the
//! store itself, so every member of a fleet serves the same set.

use super::{KeyStore, StoreError};
use crate::domain::OrgRecord;
use async_trait::async_trait;
use std::sync::Arc;

/// What a save of an organization expects to find.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// No organization with this id (an add).
    Absent,
    /// Exactly this record (a change: two concurrent changes cannot both
    /// win).
    Is(Box<OrgRecord>),
}

/// The organizations of a store.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Every organization, by id.
    async fn orgs(&self) -> Result<Vec<OrgRecord>, StoreError>;
    /// One organization.
    async fn org(&self, id: &str) -> Result<Option<OrgRecord>, StoreError>;
    /// Saves `record` if the stored one is as `expect` says; otherwise
    /// [`StoreError::Conflict`] and nothing is written.
    async fn save_org(&self, record: &OrgRecord, expect: Expect) -> Result<(), StoreError>;
    /// Deletes the organization and every key pair of it (its envelopes
    /// are gone: crypto-shredding). Returns how many key pairs were
    /// deleted.
    async fn purge_org(&self, id: &str) -> Result<u64, StoreError>;
    /// The key store of organization `id` (saved before). One per
    /// organization and registry: asking again gives the same store.
    async fn keys(&self, id: &str) -> Result<Arc<dyn KeyStore>, StoreError>;
    /// The fleet's revision: how many changes were announced, and whose
    /// was the latest. `None` for a store only one daemon uses, whose
    /// changes are all its own.
    async fn revision(&self) -> Result<Option<Revision>, StoreError> {
        Ok(None)
    }
    /// What the operator knows the store by.
    fn location(&self) -> String;
}

/// A fleet's count of announced changes (any organization's head or
/// record), read once per refresh so that a member reads further only when
/// something changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    /// Changes announced since the table was made.
    pub changes: u64,
    /// The organization of the latest.
    pub last: Option<String>,
    /// How many of the latest changes in a row were `last`'s (at least
    /// that many; never more).
    pub run: u64,
}

/// The conflict a failed [`Expect`] is reported as.
pub(crate) fn expectation_failed(id: &str, expect: &Expect) -> StoreError {
    StoreError::Conflict {
        id: id.to_string(),
        problem: match expect {
            Expect::Absent => "an organization with this id already exists".into(),
            Expect::Is(_) => "the organization changed meanwhile; read it again".into(),
        },
    }
}

/// Decodes a stored organization record.
pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<OrgRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        id: format!("organization {id}"),
        problem: e.to_string(),
    })
}

/// Encodes an organization record.
pub(crate) fn encode(record: &OrgRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("organization records serialize")
}
