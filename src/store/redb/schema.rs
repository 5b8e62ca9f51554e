//! Opening the database (again, after an I/O error), checking its schema
//! version, and migrating older stores: schema 1 (no history index, no
//! counts) gets both; schema 2 (one organization) gets the `orgs` table,
//! and its history stays in the unprefixed tables for the organization
//! the daemon's file declares to adopt.

use super::tables::*;
use super::{File, Inner};
use crate::store::{StoreError, Summary};
use redb::{ReadableDatabase, ReadableTable};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl File {
    pub(super) fn be<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StoreError + '_ {
        backend(&self.path)
    }

    /// The open database, opening it (again) if needed and checking (and
    /// migrating) its schema each time. Returns it with the count of opens.
    pub(super) fn db(&self) -> Result<(Arc<redb::Database>, u64), StoreError> {
        let mut slot = crate::sync::lock(&self.db);
        if let Some(db) = slot.as_ref() {
            return Ok((db.clone(), self.opened.load(Ordering::Acquire)));
        }
        let db = (self.opener)().map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                path: self.path.clone(),
            },
            other => self.be()(other),
        })?;
        self.check_schema(&db)?;
        let db = Arc::new(db);
        *slot = Some(db.clone());
        let opened = self.opened.fetch_add(1, Ordering::AcqRel) + 1;
        Ok((db, opened))
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
    /// an older one, in one transaction.
    fn check_schema(&self, db: &redb::Database) -> Result<(), StoreError> {
        let txn = db.begin_write().map_err(self.be())?;
        {
            let kp = txn.open_table(KEYPAIRS).map_err(self.be())?;
            let mut history = txn.open_table(HISTORY).map_err(self.be())?;
            let mut meta = txn.open_table(META).map_err(self.be())?;
            txn.open_table(ORGS).map_err(self.be())?;
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
                        if let Ok(r) = Inner::decode(k.value(), v.value()) {
                            records.push(r);
                        }
                    }
                    for r in &records {
                        history.insert(history_key(r), ()).map_err(self.be())?;
                    }
                    let summary = Summary::of(&records);
                    if found.is_some() {
                        tracing::info!(store = %self.path, key_pairs = records.len(), "store migrated from schema 1 (history index and counts)");
                    }
                    meta.insert(
                        META_SUMMARY,
                        serde_json::to_vec(&summary)
                            .expect("counts serialize")
                            .as_slice(),
                    )
                    .map_err(self.be())?;
                }
                Some("2") => {
                    tracing::info!(store = %self.path, "store migrated from schema 2: its history stays where it is, for the organization the configuration declares");
                }
                Some(v) if v == SCHEMA_VERSION.to_string() => {}
                Some(v) => {
                    return Err(StoreError::Schema {
                        path: self.path.clone(),
                        found: v.to_string(),
                        supported: SCHEMA_VERSION,
                    })
                }
            }
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_string().as_bytes())
                .map_err(self.be())?;
        }
        txn.commit().map_err(self.be())?;
        Ok(())
    }
}

impl Inner {
    /// The open database; the organization's counts are (re)loaded after
    /// every open of the file.
    pub(super) fn db(&self) -> Result<Arc<redb::Database>, StoreError> {
        let (db, opened) = self.file.db()?;
        if self.loaded.load(Ordering::Acquire) != opened {
            let txn = db.begin_read().map_err(self.be())?;
            let meta = txn.open_table(self.names.meta()).map_err(self.be())?;
            let summary = Self::read_summary(&meta).map_err(|problem| StoreError::Corrupt {
                id: META_SUMMARY.into(),
                problem,
            })?;
            *crate::sync::lock(&self.summary) = summary;
            self.loaded.store(opened, Ordering::Release);
            self.changed();
        }
        Ok(db)
    }

    /// Creates the organization's tables if they are not there (a read of
    /// a table that does not exist is an error in redb).
    pub(super) fn create_tables(&self) -> Result<(), StoreError> {
        let (db, _) = self.file.db()?;
        let exists = {
            let txn = db.begin_read().map_err(self.be())?;
            txn.open_table(self.names.meta()).is_ok()
        };
        if exists {
            return self.db().map(|_| ());
        }
        let txn = db.begin_write().map_err(self.be())?;
        txn.open_table(self.names.keypairs()).map_err(self.be())?;
        txn.open_table(self.names.history()).map_err(self.be())?;
        txn.open_table(self.names.meta()).map_err(self.be())?;
        txn.commit().map_err(self.be())?;
        self.db().map(|_| ())
    }

    /// See [`File::reopen_after_io_error`].
    pub(super) fn reopen_after_io_error<T>(&self, result: &Result<T, StoreError>) {
        self.file.reopen_after_io_error(result);
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
