//! The durable record of every key pair: the only copies of the (encrypted)
//! private keys.
//!
//! [`KeyStore`] is the one seam between kekd and its storage: an async trait
//! the rest of the code awaits. Each backend does its own blocking or network
//! I/O behind it — `redb.rs` (an embedded file, the default) runs its
//! transactions on tokio's blocking pool — so nothing above this module calls
//! `spawn_blocking` for the store.

mod copy;
mod dynamodb;
mod fleet;
pub mod orgs;
mod redb;
mod summary;

pub use self::copy::{
    copy, create_table, distinct, open_target, read_source, CopyError, CopyReport, Location, Tenant,
};
pub(crate) use self::dynamodb::TableProblem;
pub use self::dynamodb::{DynamoRegistry, DynamoStore};
pub use self::orgs::{Expect, Registry, Revision};
pub use self::redb::{RedbRegistry, RedbStore, Snapshot};
use crate::domain::{Envelope, KeyPairInfo, KeyPairRecord, Schedule};
use crate::time::Timestamp;
use async_trait::async_trait;
pub use fleet::{Fleet, Head, LeaseHolder, LeaseState};
pub use summary::Summary;

/// Opens the store `settings` name: the redb file in the state directory,
/// or the fleet's DynamoDB table — checked first (it exists, has the
/// layout, this instance may read and conditionally write it), so a start
/// fails with the problem named rather than at the first rotation.
pub async fn open(
    settings: &crate::config::Settings,
) -> Result<std::sync::Arc<dyn Registry>, StoreError> {
    use crate::config::StoreSettings;
    Ok(match &settings.store {
        StoreSettings::Redb => {
            std::sync::Arc::new(RedbRegistry::open(&settings.store_path()).await?)
        }
        StoreSettings::DynamoDb(fleet) => {
            std::sync::Arc::new(DynamoRegistry::open(fleet, settings.kms_timeouts).await?)
        }
    })
}

/// One page of the history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The key pairs of the page, without their envelopes (a record that
    /// does not decode is listed as [`Listed::Corrupt`] in its place).
    pub records: Vec<Listed<KeyPairInfo>>,
    /// The id to continue after, if there is more.
    pub next: Option<String>,
}

/// A listed record: decoded, or kept aside because it does not decode.
#[derive(Debug, Clone)]
pub enum Listed<R = KeyPairRecord> {
    /// A good record.
    Ok(Box<R>),
    /// A record that fails to decode; reported, never deleted.
    Corrupt {
        /// Its key in the store.
        id: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, lock, corruption it could not repair).
    #[error("store {path}: {source}")]
    Backend {
        /// The store's location.
        path: String,
        /// The backend's error.
        source: ::redb::Error,
    },
    /// Another process holds the store file (a kekd already running with
    /// this state directory).
    #[error("store {path} is in use by another process: kekd is already running with this state directory")]
    InUse {
        /// The store's location.
        path: String,
    },
    /// The store was written by another kekd version.
    #[error("store {path}: schema version {found} is not the supported version {supported}")]
    Schema {
        /// The store's location.
        path: String,
        /// What the store says.
        found: String,
        /// What this build reads and writes.
        supported: u64,
    },
    /// A record does not decode; the id names it.
    #[error("store record {id} is corrupt: {problem}")]
    Corrupt {
        /// The record's id.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// A history cursor that names no stored key pair.
    #[error("cursor {0:?} is not a stored key pair id")]
    UnknownCursor(String),
    /// A copy into a store that already holds key pairs.
    #[error("store {path} already holds {count} key pairs; a copy goes only into an empty store")]
    NotEmpty {
        /// The store's location.
        path: String,
        /// How many it holds.
        count: u64,
    },
    /// A file that is not a kekd store (empty, another format).
    #[error("{path} is not a kekd store: {problem}")]
    NotAStore {
        /// The file.
        path: String,
        /// What it is instead.
        problem: String,
    },
    /// A state change that does not fit the record's state.
    #[error("key pair {id}: {problem}")]
    Conflict {
        /// The record's id.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// DynamoDB failed (classified like a KMS failure: unreachable,
    /// timeout, throttled, access denied, …).
    #[error("store {store}: {} failed: {} ({})", error.operation, error.message, error.kind)]
    Remote {
        /// `dynamodb:TABLE`.
        store: String,
        /// What DynamoDB (or the network) said.
        error: crate::provider::ProviderError,
    },
    /// This instance's rotation lease was taken over (it was paused or cut
    /// off longer than the lease): it must not activate anything.
    #[error("store {store}: this instance no longer holds the rotation lease")]
    LeaseLost {
        /// `dynamodb:TABLE`.
        store: String,
    },
    /// Another instance held the rotation lease longer than this instance
    /// waits for its result.
    #[error("store {store}: instance {holder} held the rotation lease and did not finish in time")]
    LeaseHeld {
        /// `dynamodb:TABLE`.
        store: String,
        /// The holder.
        holder: String,
    },
    /// The table cannot serve as a store.
    #[error("store {store}: {problem}")]
    Table {
        /// `dynamodb:TABLE`.
        store: String,
        /// What is wrong with it.
        problem: TableProblem,
    },
    /// The worker running the store operation died (a bug; reported, never
    /// a silent success).
    #[error("store operation failed: {0}")]
    Worker(String),
}

/// What the rotation engine, the API and the operations on key pairs need
/// from a store.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Durably stores a new key pair in state `pending`.
    async fn insert_pending(&self, record: &KeyPairRecord) -> Result<(), StoreError>;
    /// In one transaction: `id` (pending or announced) becomes active, the previous active
    /// key pair is retired, and the schedule is updated. Returns the record.
    async fn activate(
        &self,
        id: &str,
        at: Timestamp,
        schedule: &Schedule,
    ) -> Result<KeyPairRecord, StoreError>;
    /// A pending or announced key pair that will never be activated
    /// becomes superseded (with `retired_at` set); any other state is left
    /// as it is.
    async fn abandon(&self, id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// A proven pending key pair becomes announced, to be activated at
    /// `activates_at`. Returns the record.
    async fn announce(
        &self,
        id: &str,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, StoreError>;
    /// One record.
    async fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError>;
    /// The active record, if any.
    async fn active(&self) -> Result<Option<KeyPairRecord>, StoreError>;
    /// Every record, newest first; undecodable ones as [`Listed::Corrupt`].
    /// Costs the whole history: for start-up checks, rewrap, pruning and
    /// copies, never for a request.
    async fn list(&self) -> Result<Vec<Listed>, StoreError>;
    /// The records that do not decode (id, problem), found by reading every
    /// record once without keeping any: memory stays flat however long the
    /// history.
    async fn corrupt_records(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// One page of the history, newest first, after the key pair `after`
    /// (the previous page's last id). Costs the page, not the history.
    async fn page(&self, after: Option<&str>, limit: usize) -> Result<HistoryPage, StoreError>;
    /// Counts per state and per wrapping key, kept current by every write:
    /// answered from memory.
    async fn summary(&self) -> Result<Summary, StoreError>;
    /// Stores key pairs exactly as they are, with the active pointer and
    /// the schedule, in one transaction (a copy of another store). Refuses
    /// a store that already holds key pairs.
    async fn import(
        &self,
        records: &[KeyPairRecord],
        active: Option<&str>,
        schedule: &Schedule,
    ) -> Result<(), StoreError>;
    /// The persisted schedule.
    async fn schedule(&self) -> Result<Schedule, StoreError>;
    /// Replaces the persisted schedule.
    async fn set_schedule(&self, schedule: &Schedule) -> Result<(), StoreError>;
    /// Replaces a record's envelope (rewrap), keeping everything else.
    async fn replace_envelope(&self, id: &str, envelope: &Envelope) -> Result<(), StoreError>;
    /// Deletes a retired or superseded key pair (retention pruning).
    /// Refuses anything else.
    async fn delete_retired(&self, id: &str) -> Result<(), StoreError>;
    /// The coordination of a store several instances share (`None`: this
    /// instance is the store's only writer).
    fn fleet(&self) -> Option<&dyn Fleet> {
        None
    }
    /// A count that moves on with every write this process makes, when it
    /// is the store's only writer: while it stands still, so does every
    /// record, and a reader may reuse what it made from them. Read it
    /// *before* reading the store. `None` (the default) for a store others
    /// write too.
    fn changes(&self) -> Option<u64> {
        None
    }
}

impl StoreError {
    /// A step the key pair's lifecycle does not allow, as the conflict the
    /// caller sees (the record is not in the state the step needs).
    pub(crate) fn refused(id: &str, refused: crate::domain::IllegalTransition) -> StoreError {
        StoreError::Conflict {
            id: id.into(),
            problem: refused.to_string(),
        }
    }

    /// The store (or its network) cannot serve now, and asking again later
    /// can succeed without anyone acting — the same rule as for KMS.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Remote { error, .. } if error.kind.is_unavailable())
    }
}

/// What a stored record decodes into names its id.
pub(crate) trait HasId {
    fn id(&self) -> &str;
}

impl HasId for KeyPairRecord {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for crate::domain::KeyPairInfo {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The decodable records of a listing (corrupt ones are reported elsewhere).
pub fn decodable<R>(list: Vec<Listed<R>>) -> Vec<R> {
    list.into_iter()
        .filter_map(|l| match l {
            Listed::Ok(r) => Some(*r),
            Listed::Corrupt { .. } => None,
        })
        .collect()
}
