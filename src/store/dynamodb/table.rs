//! The table itself: creating it (`kekctl store init`), and checking that
//! it can serve as a store (preflight at start, `kekctl test`) — it exists,
//! has the expected keys and index, holds a schema this build reads, and
//! this instance may read and conditionally write it. Each failure is named.

use super::items::{self, CREATED, HISTORY_INDEX, PK, SCHEMA, SCHEMA_VERSION, SK};
use super::{DynamoStore, Inner};
use crate::store::StoreError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
};
use std::time::Duration;

/// Why a table cannot serve as a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableProblem {
    /// No such table in the region.
    #[error("table not found (create it with `kekctl store init`, or see the README for `aws dynamodb create-table`)")]
    Missing,
    /// Its keys or index differ from the layout.
    #[error("wrong key schema: {0} (kekd needs partition key `org` (S), sort key `item` (S) and the local secondary index `history` on `created` (S))")]
    KeySchema(String),
    /// It is being created or deleted.
    #[error("table status is {0}, kekd needs ACTIVE")]
    NotActive(String),
}

const EXPECTED: &str = "org HASH S, item RANGE S, index history on created";

impl Inner {
    fn problem(&self, problem: TableProblem) -> StoreError {
        StoreError::Table {
            store: self.location(),
            problem,
        }
    }

    async fn describe(&self) -> Result<TableDescription, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(self.table())
            .send()
            .await
        {
            Ok(out) => out.table.ok_or_else(|| {
                self.problem(TableProblem::KeySchema("DescribeTable said nothing".into()))
            }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(DescribeTableError::is_resource_not_found_exception) =>
            {
                Err(self.problem(TableProblem::Missing))
            }
            Err(e) => Err(self.remote("DescribeTable", e)),
        }
    }

    /// The keys and index of `t` against the layout.
    fn check_keys(&self, t: &TableDescription) -> Result<(), StoreError> {
        let key = |schema: &[KeySchemaElement]| -> Vec<(String, String)> {
            schema
                .iter()
                .map(|k| {
                    (
                        k.attribute_name().to_string(),
                        k.key_type().as_str().to_string(),
                    )
                })
                .collect()
        };
        let string_typed = |name: &str| {
            t.attribute_definitions().iter().any(|a| {
                a.attribute_name() == name && *a.attribute_type() == ScalarAttributeType::S
            })
        };
        let want = vec![
            (PK.to_string(), "HASH".to_string()),
            (SK.to_string(), "RANGE".to_string()),
        ];
        let found = key(t.key_schema());
        if found != want || !string_typed(PK) || !string_typed(SK) {
            return Err(self.problem(TableProblem::KeySchema(format!(
                "the table's key is {found:?}, expected {EXPECTED}"
            ))));
        }
        let index = t
            .local_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(HISTORY_INDEX));
        let index_key = index.map(|i| key(i.key_schema()));
        let want_index = vec![
            (PK.to_string(), "HASH".to_string()),
            (CREATED.to_string(), "RANGE".to_string()),
        ];
        if index_key.as_ref() != Some(&want_index) || !string_typed(CREATED) {
            return Err(self.problem(TableProblem::KeySchema(format!(
                "the local secondary index `history` is {}, expected {EXPECTED}",
                index_key.map_or("missing".to_string(), |k| format!("{k:?}"))
            ))));
        }
        Ok(())
    }

    /// Reads the schema item; writes it (conditionally) into a table no
    /// instance has used yet.
    pub(super) async fn check_schema(&self) -> Result<(), StoreError> {
        let found = self
            .get_item(SCHEMA)
            .await?
            .map(|i| items::number(&i, "version"));
        match found {
            Some(Some(v)) if v == SCHEMA_VERSION as i64 => Ok(()),
            Some(v) => Err(StoreError::Schema {
                path: self.location(),
                found: v.map_or("unreadable".into(), |v| v.to_string()),
                supported: SCHEMA_VERSION,
            }),
            None => {
                let result = self
                    .client
                    .update_item()
                    .table_name(self.table())
                    .set_key(Some(items::key(&self.org, SCHEMA)))
                    .update_expression("SET version = :v")
                    .condition_expression("attribute_not_exists(version) OR version = :v")
                    .expression_attribute_values(":v", items::n(SCHEMA_VERSION))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    // Another instance wrote another version meanwhile.
                    Err(e)
                        if e.as_service_error().is_some_and(
                            UpdateItemError::is_conditional_check_failed_exception,
                        ) =>
                    {
                        Box::pin(self.check_schema()).await
                    }
                    Err(e) => Err(self.remote("UpdateItem", e)),
                }
            }
        }
    }

    /// Reads the schema item: absent (a table no instance used yet) or a
    /// version this build reads.
    async fn read_schema(&self) -> Result<(), StoreError> {
        match self.get_item(SCHEMA).await? {
            None => Ok(()),
            Some(item) => match items::number(&item, "version") {
                Some(v) if v == SCHEMA_VERSION as i64 => Ok(()),
                v => Err(StoreError::Schema {
                    path: self.location(),
                    found: v.map_or("unreadable".into(), |v| v.to_string()),
                    supported: SCHEMA_VERSION,
                }),
            },
        }
    }

    /// A conditional write whose condition cannot hold: DynamoDB checks
    /// the permission before the condition, so `ConditionalCheckFailed`
    /// proves this instance may write conditionally — and nothing is
    /// written.
    async fn probe_conditional_write(&self) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(items::key(&self.org, "probe")))
            .update_expression("SET probed = :t")
            .condition_expression("attribute_exists(#never) AND attribute_not_exists(#never)")
            .expression_attribute_names("#never", "never")
            .expression_attribute_values(":t", items::n(1))
            .send()
            .await;
        match result {
            Err(e)
                if e.as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(e) => Err(self.remote("UpdateItem", e)),
            Ok(_) => Ok(()),
        }
    }
}

impl DynamoStore {
    /// Checks that the table can serve as this organization's store: it
    /// exists and is active, has the layout's keys and index, no schema
    /// this build cannot read, and this instance may read and
    /// conditionally write it. Writes nothing.
    pub async fn check(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let t = inner.describe().await?;
        inner.check_keys(&t)?;
        if let Some(status) = t.table_status() {
            if *status != TableStatus::Active {
                return Err(inner.problem(TableProblem::NotActive(status.as_str().into())));
            }
        }
        inner.read_schema().await?;
        inner.probe_conditional_write().await
    }

    /// [`Self::check`], then writes the schema item into a table no
    /// instance has used yet (what a start does).
    pub(crate) async fn check_and_claim(&self) -> Result<(), StoreError> {
        self.check().await?;
        self.inner.check_schema().await?;
        self.load_counts().await
    }

    /// Creates the table (on-demand billing) and waits until it is active.
    /// Returns false if it already existed (with the layout's keys).
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let inner = &self.inner;
        match inner.describe().await {
            Ok(t) => {
                inner.check_keys(&t)?;
                return Ok(false);
            }
            Err(StoreError::Table {
                problem: TableProblem::Missing,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type set")
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("name and type set")
        };
        inner
            .client
            .create_table()
            .table_name(inner.table())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(PK))
            .attribute_definitions(attr(SK))
            .attribute_definitions(attr(CREATED))
            .key_schema(key(PK, KeyType::Hash))
            .key_schema(key(SK, KeyType::Range))
            .local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name(HISTORY_INDEX)
                    .key_schema(key(PK, KeyType::Hash))
                    .key_schema(key(CREATED, KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("name, keys and projection set"),
            )
            .send()
            .await
            .map_err(|e| inner.remote("CreateTable", e))?;
        for _ in 0..600 {
            let t = inner.describe().await?;
            if t.table_status() == Some(&TableStatus::Active) {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(inner.problem(TableProblem::NotActive(
            "still CREATING after 5 minutes".into(),
        )))
    }
}
