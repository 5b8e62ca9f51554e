//! How the store talks to its table: one item read, the head, the key
//! pair items and the head's counts as transaction steps, the lease step
//! that fences every write of a rotation, and the error classification.

use super::items::{self, Item, HEAD, SK};
use super::{dynamodb_code, Inner};
use crate::domain::{KeyPairRecord, KeyState};
use crate::provider::aws_sdk;
use crate::store::{Head, StoreError};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::collections::HashMap;

impl Inner {
    pub(super) fn location(&self) -> String {
        format!("dynamodb:{}", self.settings.table)
    }

    pub(super) fn table(&self) -> &str {
        &self.settings.table
    }

    /// An SDK error as a store error.
    pub(super) fn remote<E>(
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

    pub(super) fn cache(&self, head: &Head) {
        *crate::sync::lock(&self.summary) = head.summary.clone();
    }

    pub(super) fn fence(&self) -> Result<i64, StoreError> {
        crate::sync::lock(&self.fence).ok_or_else(|| StoreError::LeaseLost {
            store: self.location(),
        })
    }

    pub(super) async fn get_item(&self, sort: &str) -> Result<Option<Item>, StoreError> {
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

    pub(super) async fn read_head(&self) -> Result<Head, StoreError> {
        match self.get_item(HEAD).await? {
            None => Ok(Head::default()),
            Some(item) => items::head(&item),
        }
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        match self.get_item(&items::key_pair_sort(id)).await? {
            None => Ok(None),
            Some(item) => items::record(&item).map(Some),
        }
    }

    pub(super) async fn get_existing(&self, id: &str) -> Result<KeyPairRecord, StoreError> {
        self.get(id).await?.ok_or_else(|| StoreError::Conflict {
            id: id.into(),
            problem: "not stored".into(),
        })
    }

    /// A `Put` of key pair `r`, conditioned on the stored item being in
    /// `expected` state (`None`: on there being no such item).
    pub(super) fn put_record(
        &self,
        r: &KeyPairRecord,
        expected: Option<KeyState>,
    ) -> TransactWriteItem {
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
    pub(super) fn update_head(
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
    pub(super) async fn transact(
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
            Ok(_) => {
                self.announce_change(&self.org).await;
                Ok(())
            }
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
    pub(super) async fn after_write(&self) {
        if let Ok(head) = self.read_head().await {
            self.cache(&head);
        }
    }

    /// The lease-item step of a rotation write: `set` on it, conditioned on
    /// our fence.
    pub(super) fn lease_step(
        &self,
        fence: i64,
        expression: &str,
        values: Item,
    ) -> TransactWriteItem {
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
}
