//! The operations behind every [`KeyStore`] method: each write one
//! `TransactWriteItems`, each read that decides anything strongly
//! consistent.
//!
//! [`KeyStore`]: crate::store::KeyStore

use super::items::{self, Item, PK};
use super::Inner;
use crate::domain::{KeyPairInfo, KeyPairRecord, KeyState, Schedule};
use crate::store::{HistoryPage, Listed, StoreError};
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, WriteRequest};
use std::collections::HashMap;
use std::time::Duration;

impl Inner {
    pub(super) async fn insert_pending(&self, record: &KeyPairRecord) -> Result<(), StoreError> {
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

    pub(super) async fn activate(
        &self,
        id: &str,
        at: Timestamp,
        schedule: &Schedule,
    ) -> Result<KeyPairRecord, StoreError> {
        let fence = self.fence()?;
        let head = self.read_head().await?;
        let old = self.get_existing(id).await?;
        // A corrupt previous record must not block rotation: only the
        // pointer moves.
        let prev = match &head.active {
            Some(prev_id) => self.get(prev_id).await.ok().flatten(),
            None => None,
        };
        let at = old.activation_instant(at, prev.as_ref());
        let rec = old
            .activated(at)
            .map_err(|refused| StoreError::refused(id, refused))?;
        let mut counts = items::HeadUpdate::default();
        counts.replace(Some(&old), Some(&rec));
        // Pending, or announced ahead.
        let mut ops = vec![self.put_record(&rec, Some(old.state))];
        if let Some(prev) = &prev {
            let retired = prev.retired(at);
            counts.replace(Some(prev), Some(&retired));
            ops.push(self.put_record(&retired, Some(prev.state)));
        }
        counts.set("active", items::s(id));
        counts.set("schedule", items::schedule_json(schedule));
        if head.announced.is_some() {
            // Activated, or replaced by another key pair: announced no more.
            counts.remove("announced");
        }
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
    pub(super) async fn change_record(
        &self,
        old: &KeyPairRecord,
        new: Option<&KeyPairRecord>,
        what: &str,
    ) -> Result<(), StoreError> {
        let mut counts = items::HeadUpdate::default();
        counts.replace(Some(old), new);
        // An announced key pair superseded or deleted is announced no more
        // (rewrapped, it still is).
        if old.state == KeyState::Announced && new.map(|n| n.state) != Some(KeyState::Announced) {
            counts.remove("announced");
        }
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

    /// Under the lease: the proven pending key pair becomes the fleet's
    /// announced one. It is no longer the lease's pending key pair, so a
    /// later holder does not take it for one left behind by a crash.
    pub(super) async fn announce(
        &self,
        id: &str,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, StoreError> {
        let fence = self.fence()?;
        let old = self.get_existing(id).await?;
        let rec = old
            .announced(activates_at)
            .map_err(|refused| StoreError::refused(id, refused))?;
        let mut counts = items::HeadUpdate::default();
        counts.replace(Some(&old), Some(&rec));
        counts.set("announced", items::s(id));
        let ops = vec![
            self.put_record(&rec, Some(KeyState::Pending)),
            self.update_head(
                counts,
                Some(("attribute_not_exists(announced)", HashMap::new())),
            ),
            self.lease_step(fence, "REMOVE pending", HashMap::new()),
        ];
        self.transact(id, "announcing the key pair", ops, Some(2))
            .await?;
        self.after_write().await;
        Ok(rec)
    }

    pub(super) async fn abandon(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        if let Some(old) = self.get(id).await? {
            if let Some(rec) = old.superseded(at) {
                self.change_record(&old, Some(&rec), "superseding the key pair")
                    .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn active(&self) -> Result<Option<KeyPairRecord>, StoreError> {
        let head = self.read_head().await?;
        self.cache(&head);
        match head.active {
            None => Ok(None),
            Some(id) => self.get(&id).await,
        }
    }

    /// Key pair items newest first, `limit` at most, after `start`.
    pub(super) async fn query(
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

    pub(super) async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let (all, _) = self.query(None, None).await?;
        Ok(all.iter().map(items::listed::<KeyPairRecord>).collect())
    }

    pub(super) async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
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

    pub(super) async fn import(
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

    pub(super) async fn set_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
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
