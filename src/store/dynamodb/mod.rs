//! The fleet store: one DynamoDB table that several kekd instances share.
//!
//! Every write that changes a key pair is one `TransactWriteItems`: the key
//! pair item (conditioned on the state it was read in), the head's counts
//! (atomic `ADD`s, so they need no read), and — for the steps of a rotation —
//! the lease item, conditioned on this instance's fencing counter. Reads that
//! decide anything are strongly consistent. Layout: `items.rs`; lease and
//! head: `lease.rs`; table creation and checks: `table.rs`.

mod items;
mod lease;
mod table;

use super::{Head, HistoryPage, KeyStore, Listed, StoreError, Summary};
use crate::config::{FleetStore, KmsTimeouts};
use crate::domain::{Envelope, KeyPairInfo, KeyPairRecord, KeyState, Schedule};
use crate::provider::{aws_sdk, FailureKind};
use crate::time::Timestamp;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, TransactWriteItem, Update, WriteRequest,
};
use items::{Item, HEAD, PK, SK};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

    /// `dynamodb:TABLE`.
    pub fn location(&self) -> String {
        self.inner.location()
    }
}

impl Inner {
    fn location(&self) -> String {
        format!("dynamodb:{}", self.settings.table)
    }

    fn table(&self) -> &str {
        &self.settings.table
    }

    /// An SDK error as a store error.
    fn remote<E>(
        &self,
        operation: &'static str,
        err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        StoreError::Remote {
            store: self.location(),
            error: aws_sdk::classify("DynamoDB", operation, err, dynamodb_code),
        }
    }

    fn cache(&self, head: &Head) {
        *crate::sync::lock(&self.summary) = head.summary.clone();
    }

    fn fence(&self) -> Result<i64, StoreError> {
        crate::sync::lock(&self.fence).ok_or_else(|| StoreError::LeaseLost {
            store: self.location(),
        })
    }

    async fn get_item(&self, sort: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(items::key(&self.org, sort)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.remote("GetItem", e))?;
        Ok(out.item)
    }

    async fn read_head(&self) -> Result<Head, StoreError> {
        match self.get_item(HEAD).await? {
            None => Ok(Head::default()),
            Some(item) => items::head(&item),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        match self.get_item(&items::key_pair_sort(id)).await? {
            None => Ok(None),
            Some(item) => items::record(&item).map(Some),
        }
    }

    async fn get_existing(&self, id: &str) -> Result<KeyPairRecord, StoreError> {
        self.get(id).await?.ok_or_else(|| StoreError::Conflict {
            id: id.into(),
            problem: "not stored".into(),
        })
    }

    /// A `Put` of key pair `r`, conditioned on the stored item being in
    /// `expected` state (`None`: on there being no such item).
    fn put_record(&self, r: &KeyPairRecord, expected: Option<KeyState>) -> TransactWriteItem {
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(items::key_pair_item(&self.org, r)));
        put = match expected {
            None => put
                .condition_expression("attribute_not_exists(#sk)")
                .expression_attribute_names("#sk", SK),
            Some(state) => put
                .condition_expression("#st = :expected")
                .expression_attribute_names("#st", "state")
                .expression_attribute_values(":expected", items::s(state.to_string())),
        };
        TransactWriteItem::builder()
            .put(put.build().expect("table, item set"))
            .build()
    }

    /// The head update of one write, with an optional condition.
    fn update_head(
        &self,
        mut u: items::HeadUpdate,
        condition: Option<(&str, HashMap<String, AttributeValue>)>,
    ) -> TransactWriteItem {
        let expression = u.expression();
        let mut update = Update::builder()
            .table_name(self.table())
            .set_key(Some(items::key(&self.org, HEAD)))
            .update_expression(expression)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values));
        if let Some((cond, values)) = condition {
            update = update.condition_expression(cond);
            for (k, v) in values {
                update = update.expression_attribute_values(k, v);
            }
        }
        TransactWriteItem::builder()
            .update(update.build().expect("table, key, expression set"))
            .build()
    }

    /// Runs one transaction. A failed condition is a conflict (`what` says
    /// which step); the cancellation reasons name the item that failed.
    async fn transact(
        &self,
        id: &str,
        what: &str,
        ops: Vec<TransactWriteItem>,
        lease_at: Option<usize>,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let failed: Vec<usize> = c
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                        .map(|(i, _)| i)
                        .collect();
                    if lease_at.is_some_and(|l| failed.contains(&l)) {
                        *crate::sync::lock(&self.fence) = None;
                        return Err(StoreError::LeaseLost {
                            store: self.location(),
                        });
                    }
                    if !failed.is_empty() || c.cancellation_reasons().is_empty() {
                        return Err(StoreError::Conflict {
                            id: id.into(),
                            problem: format!("{what}: changed by another instance meanwhile"),
                        });
                    }
                }
                Err(self.remote("TransactWriteItems", e))
            }
        }
    }

    /// Refreshes the cached counts after a write (best effort).
    async fn after_write(&self) {
        if let Ok(head) = self.read_head().await {
            self.cache(&head);
        }
    }

    /// The lease-item step of a rotation write: `set` on it, conditioned on
    /// our fence.
    fn lease_step(&self, fence: i64, expression: &str, values: Item) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(self.table())
            .set_key(Some(items::key(&self.org, items::LEASE)))
            .update_expression(expression)
            .condition_expression("holder = :me AND fence = :fence")
            .expression_attribute_values(":me", items::s(&self.instance))
            .expression_attribute_values(":fence", items::n(fence));
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        TransactWriteItem::builder()
            .update(update.build().expect("table, key, expression set"))
            .build()
    }

    async fn insert_pending(&self, record: &KeyPairRecord) -> Result<(), StoreError> {
        let fence = self.fence()?;
        let mut rec = record.clone();
        rec.state = KeyState::Pending;
        let mut counts = items::HeadUpdate::default();
        counts.replace(None, Some(&rec));
        let ops = vec![
            self.put_record(&rec, None),
            self.update_head(counts, None),
            self.lease_step(
                fence,
                "SET pending = :id",
                HashMap::from([(":id".to_string(), items::s(&rec.id))]),
            ),
        ];
        self.transact(&rec.id, "storing the pending key pair", ops, Some(2))
            .await?;
        self.after_write().await;
        Ok(())
    }

    async fn activate(
        &self,
        id: &str,
        at: Timestamp,
        schedule: &Schedule,
    ) -> Result<KeyPairRecord, StoreError> {
        let fence = self.fence()?;
        let head = self.read_head().await?;
        let old = self.get_existing(id).await?;
        let rec = old.activated(at).map_err(|problem| StoreError::Conflict {
            id: id.into(),
            problem,
        })?;
        let mut counts = items::HeadUpdate::default();
        counts.replace(Some(&old), Some(&rec));
        let mut ops = vec![self.put_record(&rec, Some(KeyState::Pending))];
        if let Some(prev_id) = &head.active {
            // A corrupt previous record must not block rotation: only the
            // pointer moves.
            if let Ok(Some(prev)) = self.get(prev_id).await {
                let retired = prev.retired(at);
                counts.replace(Some(&prev), Some(&retired));
                ops.push(self.put_record(&retired, Some(prev.state)));
            }
        }
        counts.set("active", items::s(id));
        counts.set("schedule", items::schedule_json(schedule));
        let condition = match &head.active {
            Some(prev) => (
                "active = :prev",
                HashMap::from([(":prev".to_string(), items::s(prev))]),
            ),
            None => ("attribute_not_exists(active)", HashMap::new()),
        };
        ops.push(self.update_head(counts, Some(condition)));
        ops.push(self.lease_step(fence, "REMOVE pending", HashMap::new()));
        let lease_at = ops.len() - 1;
        crate::failpoint::crash_point!("store-activate-before-commit");
        self.transact(id, "activating the key pair", ops, Some(lease_at))
            .await?;
        self.after_write().await;
        Ok(rec)
    }

    /// A write that changes one key pair (and its counts), conditioned on
    /// its state being still what was read.
    async fn change_record(
        &self,
        old: &KeyPairRecord,
        new: Option<&KeyPairRecord>,
        what: &str,
    ) -> Result<(), StoreError> {
        let mut counts = items::HeadUpdate::default();
        counts.replace(Some(old), new);
        let step = match new {
            Some(new) => self.put_record(new, Some(old.state)),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(self.table())
                        .set_key(Some(items::key(&self.org, &items::key_pair_sort(&old.id))))
                        .condition_expression("#st = :expected")
                        .expression_attribute_names("#st", "state")
                        .expression_attribute_values(":expected", items::s(old.state.to_string()))
                        .build()
                        .expect("table, key set"),
                )
                .build(),
        };
        self.transact(
            &old.id,
            what,
            vec![step, self.update_head(counts, None)],
            None,
        )
        .await?;
        self.after_write().await;
        Ok(())
    }

    async fn abandon(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        if let Some(old) = self.get(id).await? {
            if let Some(rec) = old.superseded(at) {
                self.change_record(&old, Some(&rec), "superseding the key pair")
                    .await?;
            }
        }
        Ok(())
    }

    async fn active(&self) -> Result<Option<KeyPairRecord>, StoreError> {
        let head = self.read_head().await?;
        self.cache(&head);
        match head.active {
            None => Ok(None),
            Some(id) => self.get(&id).await,
        }
    }

    /// Key pair items newest first, `limit` at most, after `start`.
    async fn query(
        &self,
        start: Option<Item>,
        limit: Option<usize>,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let mut out = Vec::new();
        let mut start = start;
        loop {
            let want = limit.map(|l| l + 1 - out.len());
            let page = self
                .client
                .query()
                .table_name(self.table())
                .index_name(items::HISTORY_INDEX)
                .key_condition_expression("#pk = :org")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":org", items::s(&self.org))
                .scan_index_forward(false)
                .consistent_read(true)
                .set_limit(want.map(|w| i32::try_from(w).unwrap_or(i32::MAX)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.remote("Query", e))?;
            out.extend(page.items.unwrap_or_default());
            if let Some(l) = limit {
                if out.len() > l {
                    out.truncate(l);
                    return Ok((out, true));
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((out, false)),
            }
        }
    }

    async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let (all, _) = self.query(None, None).await?;
        Ok(all.iter().map(items::listed::<KeyPairRecord>).collect())
    }

    async fn page(&self, after: Option<&str>, limit: usize) -> Result<HistoryPage, StoreError> {
        let start = match after {
            None => None,
            Some(id) => {
                let item = self
                    .get_item(&items::key_pair_sort(id))
                    .await?
                    .ok_or_else(|| StoreError::UnknownCursor(id.to_string()))?;
                let mut key = items::key(&self.org, &items::key_pair_sort(id));
                let created = item
                    .get(items::CREATED)
                    .cloned()
                    .ok_or_else(|| StoreError::UnknownCursor(id.to_string()))?;
                key.insert(items::CREATED.into(), created);
                Some(key)
            }
        };
        let (found, more) = self.query(start, Some(limit)).await?;
        let records: Vec<Listed<KeyPairInfo>> = found.iter().map(items::listed).collect();
        let next = if more {
            found
                .last()
                .and_then(items::key_pair_id)
                .map(str::to_string)
        } else {
            None
        };
        Ok(HistoryPage { records, next })
    }

    async fn import(
        &self,
        records: &[KeyPairRecord],
        active: Option<&str>,
        schedule: &Schedule,
    ) -> Result<(), StoreError> {
        let (existing, _) = self.query(None, Some(1)).await?;
        let head = self.read_head().await?;
        if !existing.is_empty() || head.active.is_some() {
            return Err(StoreError::NotEmpty {
                path: self.location(),
                count: head.summary.total().max(existing.len() as u64),
            });
        }
        let mut counts = items::HeadUpdate::default();
        for chunk in records.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|r| {
                    counts.replace(None, Some(r));
                    WriteRequest::builder()
                        .put_request(
                            aws_sdk_dynamodb::types::PutRequest::builder()
                                .set_item(Some(items::key_pair_item(&self.org, r)))
                                .build()
                                .expect("item set"),
                        )
                        .build()
                })
                .collect();
            let mut attempt = 0;
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table(), requests)
                    .send()
                    .await
                    .map_err(|e| self.remote("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(self.table()))
                    .unwrap_or_default();
                attempt += 1;
                if !requests.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50 * attempt.min(20))).await;
                }
            }
        }
        if let Some(id) = active {
            counts.set("active", items::s(id));
        }
        counts.set("schedule", items::schedule_json(schedule));
        self.transact(
            active.unwrap_or("-"),
            "writing the copied head",
            vec![self.update_head(
                counts,
                Some(("attribute_not_exists(active)", HashMap::new())),
            )],
            None,
        )
        .await?;
        self.after_write().await;
        Ok(())
    }

    async fn set_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let mut u = items::HeadUpdate::default();
        u.set("schedule", items::schedule_json(schedule));
        self.transact(
            "-",
            "writing the schedule",
            vec![self.update_head(u, None)],
            None,
        )
        .await
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

    /// Not in fleet mode: the configuration refuses `announce_ahead` with a
    /// DynamoDB store (the announcement would need the lease's fencing too).
    async fn announce(
        &self,
        id: &str,
        _activates_at: Timestamp,
    ) -> Result<KeyPairRecord, StoreError> {
        Err(StoreError::Conflict {
            id: id.into(),
            problem: "announce_ahead is not supported with a DynamoDB store".into(),
        })
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
            .map_err(|problem| StoreError::Conflict {
                id: id.into(),
                problem,
            })?;
        self.inner
            .change_record(&rec, None, "pruning the key pair")
            .await
    }

    fn fleet(&self) -> Option<&dyn super::Fleet> {
        Some(self)
    }
}
