//! Opening the database (again, after an I/O error), checking its schema
//! version, and migrating a schema 1 store (building the history index and
//! the counts).

use super::tables::*;
use super::Inner;
use crate::store::{StoreError, Summary};
use redb::ReadableTable;
use std::sync::Arc;

impl Inner {
    /// The open database, opening it (again) if needed, checking (and
    /// migrating) its schema and loading its counts each time.
    pub(super) fn db(&self) -> Result<Arc<redb::Database>, StoreError> {
        let mut slot = crate::sync::lock(&self.db);
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let db = (self.opener)().map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                path: self.path.clone(),
            },
            other => self.be()(other),
        })?;
        let summary = self.check_schema(&db)?;
        *crate::sync::lock(&self.summary) = summary;
        self.changed();
        let db = Arc::new(db);
        *slot = Some(db.clone());
        Ok(db)
    }

    /// After an I/O error redb accepts nothing more from this handle: drop
    /// it, so the next operation reopens (and repairs) the file.
    pub(super) fn reopen_after_io_error<T>(&self, result: &Result<T, StoreError>) {
        if let Err(StoreError::Backend {
            source: redb::Error::Io(_) | redb::Error::PreviousIo,
            ..
        }) = result
        {
            tracing::warn!(store = %self.path, "store I/O error; the store is reopened at the next operation");
            *crate::sync::lock(&self.db) = None;
        }
    }

    /// Checks the schema version; creates a new store's tables, or migrates
    /// a schema 1 store (builds the history index and the counts). Returns
    /// the counts.
    pub(super) fn check_schema(&self, db: &redb::Database) -> Result<Summary, StoreError> {
        let txn = db.begin_write().map_err(self.be())?;
        let summary = {
            let kp = txn.open_table(KEYPAIRS).map_err(self.be())?;
            let mut history = txn.open_table(HISTORY).map_err(self.be())?;
            let mut meta = txn.open_table(META).map_err(self.be())?;
            let found = meta
                .get(META_SCHEMA)
                .map_err(self.be())?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            match found.as_deref() {
                None | Some("1") => {
                    // New, or schema 1: index and count what is there.
                    let mut records = Vec::new();
                    for entry in kp.iter().map_err(self.be())? {
                        let (k, v) = entry.map_err(self.be())?;
                        if let Ok(r) = Self::decode(k.value(), v.value()) {
                            records.push(r);
                        }
                    }
                    for r in &records {
                        history.insert(history_key(r), ()).map_err(self.be())?;
                    }
                    let summary = Summary::of(&records);
                    if found.is_some() {
                        tracing::info!(store = %self.path, key_pairs = records.len(), "store migrated to schema {SCHEMA_VERSION} (history index and counts)");
                    }
                    meta.insert(
                        META_SUMMARY,
                        serde_json::to_vec(&summary)
                            .expect("counts serialize")
                            .as_slice(),
                    )
                    .map_err(self.be())?;
                    meta.insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())
                        .map_err(self.be())?;
                    summary
                }
                Some(v) if v == SCHEMA_VERSION.to_string() => {
                    Self::read_summary(&meta).map_err(|problem| StoreError::Corrupt {
                        id: META_SUMMARY.into(),
                        problem,
                    })?
                }
                Some(v) => {
                    return Err(StoreError::Schema {
                        path: self.path.clone(),
                        found: v.to_string(),
                        supported: SCHEMA_VERSION,
                    })
                }
            }
        };
        txn.commit().map_err(self.be())?;
        Ok(summary)
    }

    pub(super) fn read_summary(
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Summary, String> {
        match meta.get(META_SUMMARY).map_err(|e| e.to_string())? {
            None => Ok(Summary::default()),
            Some(v) => serde_json::from_slice(v.value()).map_err(|e| e.to_string()),
        }
    }
}
