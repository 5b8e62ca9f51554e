//! The fleet store: one DynamoDB table that several kekd instances share.
//!
//! Every write that changes a key pair is one `TransactWriteItems`: the key
//! pair item (conditioned on the state it was read in), the head's counts
//! (atomic `ADD`s, so they need no read), and — for the steps of a rotation —
//! the lease item, conditioned on this instance's fencing counter. Reads that
//! decide anything are strongly consistent. Layout: `items.rs`; lease and
//! head: `lease.rs`; table creation and checks: `table.rs`; requests and
//! error classification: `requests.rs`; the operations: `ops.rs`; the
//! fleet-wide revision that tells members what changed: `revision.rs`.

mod items;
mod lease;
mod ops;
mod registry;
mod requests;
mod revision;
mod table;
use super::{HistoryPage, KeyStore, Listed, StoreError, Summary};
use crate::config::{FleetStore, KmsTimeouts};
use crate::domain::{Envelope, KeyPairRecord, Schedule};
use crate::provider::{aws_sdk, FailureKind};
use crate::time::Timestamp;
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

pub use registry::DynamoRegistry;
pub(crate) use table::TableProblem;

/// A DynamoDB-backed [`KeyStore`] shared by a fleet. Cheap to clone.
#[derive(Clone)]
pub struct DynamoStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: aws_sdk_dynamodb::Client,
    settings: FleetStore,
    org: String,
    instance: String,
    /// The counts as of the last head this instance read or wrote.
    summary: Mutex<Summary>,
    /// Our fencing counter while we hold the lease.
    fence: Mutex<Option<i64>>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.inner.settings.table)
            .field("instance", &self.inner.instance)
            .finish()
    }
}

/// DynamoDB's error codes, in the operator's terms.
fn dynamodb_code(code: &str) -> Option<FailureKind> {
    Some(match code {
        "ResourceNotFoundException" => FailureKind::NotFound,
        "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "LimitExceededException" => FailureKind::Throttled,
        "InternalServerError" | "ServiceUnavailable" => FailureKind::ServiceUnavailable,
        _ => return None,
    })
}

/// This process in the fleet: host, pid and a random tag (a restarted
/// instance is a new holder).
fn instance_id() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    format!(
        "{host}/{}/{}",
        std::process::id(),
        hex::encode(crate::aead::random::<3>())
    )
}

impl DynamoStore {
    /// Reads the fleet's counts once (status answers from memory).
    pub(crate) async fn load_counts(&self) -> Result<(), StoreError> {
        let head = self.inner.read_head().await?;
        self.inner.cache(&head);
        Ok(())
    }

    /// A store on a DynamoDB client the caller configured (tools and tests
    /// that talk to a particular endpoint), for organization `org`; checks
    /// the table like a start does.
    pub async fn with_client(
        client: aws_sdk_dynamodb::Client,
        table: &str,
        org: &str,
    ) -> Result<DynamoStore, StoreError> {
        let store = DynamoStore::on(client, &FleetStore::with_defaults(table, ""), org);
        store.check_and_claim().await?;
        Ok(store)
    }

    /// A client without any request (for `store init` and checks).
    pub(crate) async fn connect(
        settings: &FleetStore,
        org: &str,
        timeouts: KmsTimeouts,
    ) -> DynamoStore {
        let sdk = aws_sdk::config(&settings.region, timeouts).await;
        DynamoStore::on(aws_sdk_dynamodb::Client::new(&sdk), settings, org)
    }

    /// A store on `client`; sends nothing.
    fn on(client: aws_sdk_dynamodb::Client, settings: &FleetStore, org: &str) -> DynamoStore {
        DynamoStore {
            inner: Arc::new(Inner {
                client,
                settings: settings.clone(),
                org: org.to_string(),
                instance: instance_id(),
                summary: Mutex::default(),
                fence: Mutex::default(),
            }),
        }
    }

    /// The store of organization `org` on the same client, as the same
    /// fleet instance; sends nothing.
    pub(crate) fn sibling(&self, org: &str) -> DynamoStore {
        DynamoStore {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                settings: self.inner.settings.clone(),
                org: org.to_string(),
                instance: self.inner.instance.clone(),
                summary: Mutex::default(),
                fence: Mutex::default(),
            }),
        }
    }

    /// `dynamodb:TABLE`.
    pub fn location(&self) -> String {
        self.inner.location()
    }
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn insert_pending(&self, record: &KeyPairRecord) -> Result<(), StoreError> {
        self.inner.insert_pending(record).await
    }

    async fn activate(
        &self,
        id: &str,
        at: Timestamp,
        schedule: &Schedule,
    ) -> Result<KeyPairRecord, StoreError> {
        self.inner.activate(id, at, schedule).await
    }

    async fn abandon(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.inner.abandon(id, at).await
    }

    async fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        self.inner.get(id).await
    }

    async fn announce(
        &self,
        id: &str,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, StoreError> {
        self.inner.announce(id, activates_at).await
    }

    async fn active(&self) -> Result<Option<KeyPairRecord>, StoreError> {
        self.inner.active().await
    }

    async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        self.inner.list().await
    }

    async fn corrupt_records(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .inner
            .list()
            .await?
            .into_iter()
            .filter_map(|l| match l {
                Listed::Corrupt { id, problem } => Some((id, problem)),
                Listed::Ok(_) => None,
            })
            .collect())
    }

    async fn page(&self, after: Option<&str>, limit: usize) -> Result<HistoryPage, StoreError> {
        self.inner.page(after, limit).await
    }

    async fn summary(&self) -> Result<Summary, StoreError> {
        // From memory: the counts of the last head read (every refresh).
        Ok(crate::sync::lock(&self.inner.summary).clone())
    }

    async fn import(
        &self,
        records: &[KeyPairRecord],
        active: Option<&str>,
        schedule: &Schedule,
    ) -> Result<(), StoreError> {
        self.inner.import(records, active, schedule).await
    }

    async fn schedule(&self) -> Result<Schedule, StoreError> {
        Ok(self.inner.read_head().await?.schedule)
    }

    async fn set_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.inner.set_schedule(schedule).await
    }

    async fn replace_envelope(&self, id: &str, envelope: &Envelope) -> Result<(), StoreError> {
        let old = self.inner.get_existing(id).await?;
        let mut rec = old.clone();
        rec.wrapping_key_arn = envelope.wrapping_key_arn.clone();
        rec.envelope = envelope.clone();
        self.inner
            .change_record(&old, Some(&rec), "replacing the envelope")
            .await
    }

    async fn delete_retired(&self, id: &str) -> Result<(), StoreError> {
        let rec = self.inner.get_existing(id).await?;
        let head = self.inner.read_head().await?;
        rec.prunable(head.active.as_deref() == Some(id))
            .map_err(|refused| StoreError::refused(id, refused))?;
        self.inner
            .change_record(&rec, None, "pruning the key pair")
            .await
    }

    fn fleet(&self) -> Option<&dyn super::Fleet> {
        Some(self)
    }
}
