//! The organizations of a fleet's table: one item each in the partition
//! [`ORGS_PARTITION`] (an organization id has no `#`, so no organization's
//! partition is that one), read in one query whatever their number; and
//! each organization's [`DynamoStore`] on the one client of the process.

use super::items::{self, Item, PK, SK};
use super::{DynamoStore, Inner};
use crate::config::{FleetStore, KmsTimeouts};
use crate::domain::OrgRecord;
use crate::provider::aws_sdk;
use crate::store::orgs::{self, Expect, Registry, Revision};
use crate::store::{KeyStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use std::collections::HashMap;
use std::sync::Arc;

/// The partition the organization items live in.
pub(crate) const ORGS_PARTITION: &str = "#orgs";

/// The organizations of a fleet's table.
pub struct DynamoRegistry {
    /// The registry partition, as a store (its requests and error
    /// classification).
    base: DynamoStore,
    stores: tokio::sync::Mutex<HashMap<String, DynamoStore>>,
}

impl std::fmt::Debug for DynamoRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoRegistry")
            .field("table", &self.base.inner.settings.table)
            .finish()
    }
}

impl DynamoRegistry {
    /// Connects and checks the table like a start does (it exists, has the
    /// layout, this instance may read and conditionally write it).
    pub(crate) async fn open(
        settings: &FleetStore,
        timeouts: KmsTimeouts,
    ) -> Result<Self, StoreError> {
        let sdk = aws_sdk::config(&settings.region, timeouts).await;
        Self::on(aws_sdk_dynamodb::Client::new(&sdk), settings).await
    }

    /// The registry of table `table` on a client the caller configured
    /// (tools and tests that talk to a particular endpoint); checks the
    /// table like a start does.
    pub async fn with_client(
        client: aws_sdk_dynamodb::Client,
        table: &str,
    ) -> Result<Self, StoreError> {
        Self::on(client, &FleetStore::with_defaults(table, "")).await
    }

    /// The registry on a client the caller configured (tools and tests).
    pub(crate) async fn on(
        client: aws_sdk_dynamodb::Client,
        settings: &FleetStore,
    ) -> Result<Self, StoreError> {
        let base = DynamoStore::on(client, settings, ORGS_PARTITION);
        base.check().await?;
        Ok(DynamoRegistry {
            base,
            stores: tokio::sync::Mutex::default(),
        })
    }

    fn inner(&self) -> &Inner {
        &self.base.inner
    }

    fn item(record: &OrgRecord) -> Item {
        let mut item = items::key(ORGS_PARTITION, record.id());
        item.insert(
            "record".into(),
            items::s(String::from_utf8(orgs::encode(record)).expect("JSON is UTF-8")),
        );
        item
    }

    fn decode(item: &Item) -> Result<OrgRecord, StoreError> {
        let id = items::string(item, SK).unwrap_or("?");
        orgs::decode(id, items::string(item, "record").unwrap_or("").as_bytes())
    }

    /// Every item of partition `pk`, strongly consistent, page by page.
    async fn partition(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        let inner = self.inner();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = inner
                .client
                .query()
                .table_name(inner.table())
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", items::s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| inner.remote("Query", e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl Registry for DynamoRegistry {
    async fn orgs(&self) -> Result<Vec<OrgRecord>, StoreError> {
        self.partition(ORGS_PARTITION)
            .await?
            .iter()
            .map(Self::decode)
            .collect()
    }

    async fn org(&self, id: &str) -> Result<Option<OrgRecord>, StoreError> {
        self.inner()
            .get_item(id)
            .await?
            .as_ref()
            .map(Self::decode)
            .transpose()
    }

    async fn save_org(&self, record: &OrgRecord, expect: Expect) -> Result<(), StoreError> {
        let inner = self.inner();
        let put = inner
            .client
            .put_item()
            .table_name(inner.table())
            .set_item(Some(Self::item(record)));
        let put = match &expect {
            Expect::Absent => put
                .condition_expression("attribute_not_exists(#sk)")
                .expression_attribute_names("#sk", SK),
            Expect::Is(old) => put
                .condition_expression("#r = :old")
                .expression_attribute_names("#r", "record")
                .expression_attribute_values(
                    ":old",
                    items::s(String::from_utf8(orgs::encode(old)).expect("JSON is UTF-8")),
                ),
        };
        match put.send().await {
            Ok(_) => {
                inner.announce_change(record.id()).await;
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Err(orgs::expectation_failed(record.id(), &expect))
            }
            Err(e) => Err(inner.remote("PutItem", e)),
        }
    }

    async fn purge_org(&self, id: &str) -> Result<u64, StoreError> {
        let mut stores = self.stores.lock().await;
        let inner = self.inner();
        let all = self.partition(id).await?;
        let deleted = all
            .iter()
            .filter(|i| items::string(i, SK).is_some_and(|s| s.starts_with("kp#")))
            .count() as u64;
        // The organization's items first, its registry item last: a purge
        // cut off half-way is finished by running it again.
        for chunk in all.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|i| {
                    let key = items::key(id, items::string(i, SK).unwrap_or_default());
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key))
                                .build()
                                .expect("key set"),
                        )
                        .build()
                })
                .collect();
            while !requests.is_empty() {
                let out = inner
                    .client
                    .batch_write_item()
                    .request_items(inner.table(), requests)
                    .send()
                    .await
                    .map_err(|e| inner.remote("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(inner.table()))
                    .unwrap_or_default();
            }
        }
        inner
            .client
            .delete_item()
            .table_name(inner.table())
            .set_key(Some(items::key(ORGS_PARTITION, id)))
            .send()
            .await
            .map_err(|e| inner.remote("DeleteItem", e))?;
        inner.announce_change(id).await;
        stores.remove(id);
        Ok(deleted)
    }

    async fn keys(&self, id: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
        let mut stores = self.stores.lock().await;
        if let Some(s) = stores.get(id) {
            return Ok(Arc::new(s.clone()));
        }
        let store = self.base.sibling(id);
        store.inner.check_schema().await?;
        store.load_counts().await?;
        stores.insert(id.to_string(), store.clone());
        Ok(Arc::new(store))
    }

    async fn revision(&self) -> Result<Option<Revision>, StoreError> {
        self.inner().revision().await.map(Some)
    }

    fn location(&self) -> String {
        self.inner().location()
    }
}
