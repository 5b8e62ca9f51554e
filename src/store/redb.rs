//! The embedded store: one redb file. Commits use `Durability::Immediate`
//! (one fdatasync per commit) and redb repairs its file on open after a
//! crash. Records are JSON so a record that fails to decode can be reported
//! by id, skipped and kept — never deleted (I5).
//!
//! Tables: `keypairs` (id → record), `history` ((created ms, id) → (), the
//! index a history page is read from, newest last), `meta` (schema version,
//! active pointer, schedule, and the [`Summary`] counts). Every write goes
//! through [`Tables`], which keeps the index and the counts in step with the
//! records in the same transaction; the counts are also cached in memory,
//! so status never reads the store. Schema 1 stores (no index, no counts)
//! are migrated on open.
//!
//! redb is synchronous; every [`KeyStore`] method runs its transaction on
//! tokio's blocking pool, here and nowhere else.
//!
//! After an I/O error redb refuses every later transaction ("Previous I/O
//! error occurred") until the database is opened again, so a full disk
//! would leave kekd unable to rotate for good even once space is back. The
//! store therefore drops the database on an I/O error and reopens it —
//! letting redb repair the file — at the next operation. The file is mode
//! 0600: it holds the only copies of the (encrypted) private keys.

use super::{HasId, HistoryPage, KeyStore, Listed, StoreError, Summary};
use crate::domain::{Envelope, KeyPairRecord, KeyState, Schedule};
use crate::time::Timestamp;
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Key pair id → JSON [`KeyPairRecord`].
const KEYPAIRS: TableDefinition<&str, &[u8]> = TableDefinition::new("keypairs");
/// (created_at in ms, id) → (): the history, oldest first.
const HISTORY: TableDefinition<(u64, &str), ()> = TableDefinition::new("history");
/// Small named values: schema version, active pointer, schedule, counts.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_SCHEMA: &str = "schema_version";
const META_ACTIVE: &str = "active";
const META_SCHEDULE: &str = "schedule";
const META_SUMMARY: &str = "summary";

/// redb's page cache. Its default (1 GiB) keeps every page ever read, so
/// the start-up scan of every record would leave the whole history
/// resident and the daemon's memory would grow with it. Requests read the
/// newest pages and the index; the kernel's page cache holds the rest.
const CACHE_BYTES: usize = 4 << 20;

/// The store layout this build reads and writes (1: no history index, no
/// counts — migrated on open).
const SCHEMA_VERSION: u64 = 2;

/// redb-backed [`KeyStore`]. Cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

/// Opens the database (again): from the file, or in tests from a backend.
pub(crate) type Opener = Box<dyn Fn() -> Result<redb::Database, redb::DatabaseError> + Send + Sync>;

/// The database and the synchronous operations on it.
struct Inner {
    /// `None` after an I/O error, until the next operation reopens it.
    db: Mutex<Option<Arc<redb::Database>>>,
    opener: Opener,
    path: String,
    /// The counts as of the last commit.
    summary: Mutex<Summary>,
    /// Moves on after every write transaction (committed or not) and every
    /// reopen: readers may reuse what they made from the store while it
    /// stands still ([`KeyStore::changes`]).
    changes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl RedbStore {
    /// Opens (or creates, mode 0600) the store at `path` and checks its
    /// schema version.
    pub async fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let owned = path.to_path_buf();
        let opener: Opener = Box::new(move || {
            redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(&owned)
        });
        let path = path.to_path_buf();
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || {
            restrict_to_owner(&path).map_err(|e| StoreError::Backend {
                path: path.display().to_string(),
                source: e.into(),
            })?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))??;
        RedbStore::open_with(opener, shown).await
    }

    /// Opens a store whose database `opener` makes (tests: fault-injecting
    /// and power-loss backends).
    pub(crate) async fn open_with(opener: Opener, path: String) -> Result<RedbStore, StoreError> {
        let inner = Inner {
            db: Mutex::new(None),
            opener,
            path,
            summary: Mutex::default(),
            changes: std::sync::atomic::AtomicU64::new(0),
        };
        let inner = tokio::task::spawn_blocking(move || inner.db().map(|_| inner))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))??;
        Ok(RedbStore {
            inner: Arc::new(inner),
        })
    }

    /// Starts reopening the database on the blocking pool if an I/O error
    /// dropped its handle. Never waits: a reopen in progress holds the
    /// handle's lock, so a busy lock means there is nothing to start.
    fn reopen_in_background(&self) {
        let closed = match self.inner.db.try_lock() {
            Ok(slot) => slot.is_none(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().is_none(),
            Err(std::sync::TryLockError::WouldBlock) => false,
        };
        if closed {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || {
                let result = inner.db().map(|_| ());
                if let Err(e) = &result {
                    tracing::warn!(store = %inner.path, error = %e, "the store cannot be reopened yet");
                }
                inner.reopen_after_io_error(&result);
            });
        }
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let result = f(&inner);
            inner.reopen_after_io_error(&result);
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}

/// Creates the store file with mode 0600, or narrows an existing one to it.
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode != 0o600 {
                tracing::warn!(store = %path.display(), mode = format!("{mode:o}"), "store file was readable by others; narrowing it to 0600");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The key of a record in the history index.
fn history_key(r: &KeyPairRecord) -> (u64, &str) {
    (
        u64::try_from(r.created_at.timestamp_millis()).unwrap_or(0),
        r.id.as_str(),
    )
}

/// The tables of one write transaction. Every change of a record goes
/// through [`Tables::put`] or [`Tables::remove`], which keep the history
/// index and the counts in step with it.
struct Tables<'t> {
    kp: redb::Table<'t, &'static str, &'static [u8]>,
    history: redb::Table<'t, (u64, &'static str), ()>,
    meta: redb::Table<'t, &'static str, &'static [u8]>,
    summary: Summary,
    path: &'t str,
}

/// Wraps a redb error with the store's location.
fn backend<E: Into<redb::Error>>(path: &str) -> impl Fn(E) -> StoreError + '_ {
    move |e| StoreError::Backend {
        path: path.to_string(),
        source: e.into(),
    }
}

impl Tables<'_> {
    fn be<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StoreError + '_ {
        backend(self.path)
    }

    fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        Inner::read_record(&self.kp, id)
    }

    fn get_existing(&self, id: &str) -> Result<KeyPairRecord, StoreError> {
        self.get(id)?.ok_or_else(|| StoreError::Conflict {
            id: id.into(),
            problem: "not stored".into(),
        })
    }

    /// Stores `new`, replacing `old` (the same key pair as it was, if it
    /// was stored and decodes).
    fn put(&mut self, old: Option<&KeyPairRecord>, new: &KeyPairRecord) -> Result<(), StoreError> {
        let path = self.path;
        if let Some(old) = old {
            self.summary.remove(old);
            self.history
                .remove(history_key(old))
                .map_err(backend(path))?;
        }
        self.kp
            .insert(new.id.as_str(), Inner::encode(new).as_slice())
            .map_err(backend(path))?;
        self.history
            .insert(history_key(new), ())
            .map_err(backend(path))?;
        self.summary.add(new);
        Ok(())
    }

    fn remove(&mut self, old: &KeyPairRecord) -> Result<(), StoreError> {
        let path = self.path;
        self.kp.remove(old.id.as_str()).map_err(backend(path))?;
        self.history
            .remove(history_key(old))
            .map_err(backend(path))?;
        self.summary.remove(old);
        Ok(())
    }

    fn active_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(META_ACTIVE)
            .map_err(self.be())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.path;
        self.meta.insert(key, value).map_err(backend(path))?;
        Ok(())
    }

    fn set_schedule(&mut self, schedule: &Schedule) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(schedule).expect("schedules serialize");
        self.set_meta(META_SCHEDULE, &bytes)
    }
}

impl Inner {
    /// The open database, opening it (again) if needed, checking (and
    /// migrating) its schema and loading its counts each time.
    fn db(&self) -> Result<Arc<redb::Database>, StoreError> {
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
    fn reopen_after_io_error<T>(&self, result: &Result<T, StoreError>) {
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
    fn check_schema(&self, db: &redb::Database) -> Result<Summary, StoreError> {
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

    fn read_summary(
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Summary, String> {
        match meta.get(META_SUMMARY).map_err(|e| e.to_string())? {
            None => Ok(Summary::default()),
            Some(v) => serde_json::from_slice(v.value()).map_err(|e| e.to_string()),
        }
    }

    fn be<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StoreError + '_ {
        move |e| StoreError::Backend {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    fn decode(id: &str, bytes: &[u8]) -> Result<KeyPairRecord, StoreError> {
        Self::decode_as(id, bytes)
    }

    /// Decodes a stored record as `R` — the whole record, or only what a
    /// history page shows (its envelope skipped, not decoded).
    fn decode_as<R: serde::de::DeserializeOwned + HasId>(
        id: &str,
        bytes: &[u8],
    ) -> Result<R, StoreError> {
        let rec: R = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            id: id.to_string(),
            problem: e.to_string(),
        })?;
        if rec.id() != id {
            return Err(StoreError::Corrupt {
                id: id.to_string(),
                problem: format!("record says its id is {}", rec.id()),
            });
        }
        Ok(rec)
    }

    fn encode(rec: &KeyPairRecord) -> Vec<u8> {
        serde_json::to_vec(rec).expect("records serialize")
    }

    /// Marks the store as changed (after the change, so a reader that saw
    /// the old count never keeps what it read as current).
    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Runs `f` in one write transaction and commits durably; the counts
    /// are written with it and cached once it committed. Counts as a change
    /// whatever the outcome: a failed commit may still have reached the
    /// file.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = self.write_once(f);
        self.changed();
        result
    }

    fn write_once<T>(
        &self,
        f: impl FnOnce(&mut Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db()?.begin_write().map_err(self.be())?;
        let (out, summary) = {
            let meta = txn.open_table(META).map_err(self.be())?;
            let summary = Self::read_summary(&meta).map_err(|problem| StoreError::Corrupt {
                id: META_SUMMARY.into(),
                problem,
            })?;
            let mut t = Tables {
                kp: txn.open_table(KEYPAIRS).map_err(self.be())?,
                history: txn.open_table(HISTORY).map_err(self.be())?,
                meta,
                summary,
                path: &self.path,
            };
            let out = f(&mut t)?;
            let bytes = serde_json::to_vec(&t.summary).expect("counts serialize");
            t.set_meta(META_SUMMARY, &bytes)?;
            (out, t.summary)
        };
        txn.commit().map_err(self.be())?;
        *crate::sync::lock(&self.summary) = summary;
        Ok(out)
    }

    fn read_record(
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        id: &str,
    ) -> Result<Option<KeyPairRecord>, StoreError> {
        let be = |e: redb::StorageError| StoreError::Corrupt {
            id: id.to_string(),
            problem: e.to_string(),
        };
        match table.get(id).map_err(be)? {
            Some(v) => Self::decode(id, v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn listed<R: serde::de::DeserializeOwned + HasId>(id: &str, bytes: &[u8]) -> Listed<R> {
        match Self::decode_as::<R>(id, bytes) {
            Ok(rec) => Listed::Ok(Box::new(rec)),
            Err(e) => Listed::Corrupt {
                id: id.to_string(),
                problem: match e {
                    StoreError::Corrupt { problem, .. } => problem,
                    other => other.to_string(),
                },
            },
        }
    }
}

impl Inner {
    fn insert_pending(&self, record: &KeyPairRecord) -> Result<(), StoreError> {
        self.write(|t| {
            if t.kp.get(record.id.as_str()).map_err(t.be())?.is_some() {
                return Err(StoreError::Conflict {
                    id: record.id.clone(),
                    problem: "a key pair with this id is already stored".into(),
                });
            }
            let mut rec = record.clone();
            rec.state = KeyState::Pending;
            t.put(None, &rec)
        })
    }

    fn activate(
        &self,
        id: &str,
        at: Timestamp,
        schedule: &Schedule,
    ) -> Result<KeyPairRecord, StoreError> {
        self.write(|t| {
            let old = t.get_existing(id)?;
            let rec = old.activated(at).map_err(|problem| StoreError::Conflict {
                id: id.into(),
                problem,
            })?;
            if let Some(prev_id) = t.active_id()? {
                // A corrupt previous record must not block rotation: it stays
                // as it is (reported elsewhere); only the pointer moves.
                if let Ok(Some(prev)) = t.get(&prev_id) {
                    t.put(Some(&prev), &prev.retired(at))?;
                }
            }
            t.put(Some(&old), &rec)?;
            t.set_meta(META_ACTIVE, id.as_bytes())?;
            t.set_schedule(schedule)?;
            crate::failpoint::crash_point!("store-activate-before-commit");
            Ok(rec)
        })
    }

    fn abandon(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.write(|t| {
            if let Some(old) = t.get(id)? {
                if let Some(rec) = old.superseded(at) {
                    t.put(Some(&old), &rec)?;
                }
            }
            Ok(())
        })
    }

    fn announce(&self, id: &str, activates_at: Timestamp) -> Result<KeyPairRecord, StoreError> {
        self.write(|t| {
            let old = t.get_existing(id)?;
            let rec = old
                .announced(activates_at)
                .map_err(|problem| StoreError::Conflict {
                    id: id.into(),
                    problem,
                })?;
            t.put(Some(&old), &rec)?;
            Ok(rec)
        })
    }

    fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(KEYPAIRS).map_err(self.be())?;
        Self::read_record(&kp, id)
    }

    fn active(&self) -> Result<Option<KeyPairRecord>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let meta = txn.open_table(META).map_err(self.be())?;
        let Some(id) = meta
            .get(META_ACTIVE)
            .map_err(self.be())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned())
        else {
            return Ok(None);
        };
        let kp = txn.open_table(KEYPAIRS).map_err(self.be())?;
        Self::read_record(&kp, &id)
    }

    fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(KEYPAIRS).map_err(self.be())?;
        let mut out = Vec::new();
        for entry in kp.iter().map_err(self.be())? {
            let (k, v) = entry.map_err(self.be())?;
            out.push(Self::listed::<KeyPairRecord>(k.value(), v.value()));
        }
        // Newest first; corrupt records (no trustworthy time) last, by id.
        out.sort_by(|a, b| match (a, b) {
            (Listed::Ok(a), Listed::Ok(b)) => b
                .created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id)),
            (Listed::Ok(_), Listed::Corrupt { .. }) => std::cmp::Ordering::Less,
            (Listed::Corrupt { .. }, Listed::Ok(_)) => std::cmp::Ordering::Greater,
            (Listed::Corrupt { id: a, .. }, Listed::Corrupt { id: b, .. }) => a.cmp(b),
        });
        Ok(out)
    }

    fn corrupt_records(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(KEYPAIRS).map_err(self.be())?;
        let mut out = Vec::new();
        for entry in kp.iter().map_err(self.be())? {
            let (k, v) = entry.map_err(self.be())?;
            if let Listed::Corrupt { id, problem } =
                Self::listed::<KeyPairRecord>(k.value(), v.value())
            {
                out.push((id, problem));
            }
        }
        Ok(out)
    }

    fn page(&self, after: Option<&str>, limit: usize) -> Result<HistoryPage, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(KEYPAIRS).map_err(self.be())?;
        let history = txn.open_table(HISTORY).map_err(self.be())?;
        let start = match after {
            None => None,
            Some(id) => {
                let rec = Self::read_record(&kp, id)?
                    .ok_or_else(|| StoreError::UnknownCursor(id.to_string()))?;
                Some((history_key(&rec).0, rec.id))
            }
        };
        let mut ids = Vec::with_capacity(limit + 1);
        let range = match &start {
            None => history.iter().map_err(self.be())?,
            Some((ms, id)) => history.range(..(*ms, id.as_str())).map_err(self.be())?,
        };
        for entry in range.rev().take(limit + 1) {
            let (k, _) = entry.map_err(self.be())?;
            ids.push(k.value().1.to_string());
        }
        let more = ids.len() > limit;
        ids.truncate(limit);
        let mut records = Vec::with_capacity(ids.len());
        for id in &ids {
            match kp.get(id.as_str()).map_err(self.be())? {
                Some(v) => records.push(Self::listed::<crate::domain::KeyPairInfo>(id, v.value())),
                None => records.push(Listed::Corrupt {
                    id: id.clone(),
                    problem: "indexed but not stored".into(),
                }),
            }
        }
        Ok(HistoryPage {
            next: if more { ids.last().cloned() } else { None },
            records,
        })
    }

    fn schedule(&self) -> Result<Schedule, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let meta = txn.open_table(META).map_err(self.be())?;
        match meta.get(META_SCHEDULE).map_err(self.be())? {
            None => Ok(Schedule::default()),
            Some(v) => serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                id: META_SCHEDULE.into(),
                problem: e.to_string(),
            }),
        }
    }

    fn set_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.write(|t| t.set_schedule(schedule))
    }

    fn delete_retired(&self, id: &str) -> Result<(), StoreError> {
        self.write(|t| {
            let rec = t.get_existing(id)?;
            let active = t.active_id()?.is_some_and(|a| a == id);
            rec.prunable(active)
                .map_err(|problem| StoreError::Conflict {
                    id: id.into(),
                    problem,
                })?;
            t.remove(&rec)?;
            crate::failpoint::crash_point!("store-delete-before-commit");
            Ok(())
        })
    }

    fn replace_envelope(&self, id: &str, envelope: &Envelope) -> Result<(), StoreError> {
        self.write(|t| {
            let old = t.get_existing(id)?;
            let mut rec = old.clone();
            rec.wrapping_key_arn = envelope.wrapping_key_arn.clone();
            rec.envelope = envelope.clone();
            t.put(Some(&old), &rec)?;
            crate::failpoint::crash_point!("store-replace-envelope-before-commit");
            Ok(())
        })
    }

    fn import(
        &self,
        records: &[KeyPairRecord],
        active: Option<&str>,
        schedule: &Schedule,
    ) -> Result<(), StoreError> {
        self.write(|t| {
            let count = t.kp.len().map_err(t.be())?;
            if count > 0 {
                return Err(StoreError::NotEmpty {
                    path: t.path.to_string(),
                    count,
                });
            }
            for r in records {
                t.put(None, r)?;
            }
            if let Some(id) = active {
                t.set_meta(META_ACTIVE, id.as_bytes())?;
            }
            t.set_schedule(schedule)
        })
    }
}

#[async_trait]
impl KeyStore for RedbStore {
    async fn insert_pending(&self, record: &KeyPairRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.blocking(move |s| s.insert_pending(&record)).await
    }

    async fn activate(
        &self,
        id: &str,
        at: Timestamp,
        schedule: &Schedule,
    ) -> Result<KeyPairRecord, StoreError> {
        let (id, schedule) = (id.to_string(), schedule.clone());
        self.blocking(move |s| s.activate(&id, at, &schedule)).await
    }

    async fn abandon(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        let id = id.to_string();
        self.blocking(move |s| s.abandon(&id, at)).await
    }

    async fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        let id = id.to_string();
        self.blocking(move |s| s.get(&id)).await
    }

    async fn announce(
        &self,
        id: &str,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, StoreError> {
        let id = id.to_string();
        self.blocking(move |s| s.announce(&id, activates_at)).await
    }

    async fn active(&self) -> Result<Option<KeyPairRecord>, StoreError> {
        self.blocking(|s| s.active()).await
    }

    async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        self.blocking(|s| s.list()).await
    }

    async fn corrupt_records(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.blocking(|s| s.corrupt_records()).await
    }

    async fn page(&self, after: Option<&str>, limit: usize) -> Result<HistoryPage, StoreError> {
        let after = after.map(str::to_string);
        self.blocking(move |s| s.page(after.as_deref(), limit))
            .await
    }

    fn changes(&self) -> Option<u64> {
        Some(
            self.inner
                .changes
                .load(std::sync::atomic::Ordering::Acquire),
        )
    }

    async fn summary(&self) -> Result<Summary, StoreError> {
        // From memory, whatever the disk does: status and /metrics call
        // this on the runtime. A handle dropped after an I/O error is
        // reopened (and repaired, and its counts reloaded) on the blocking
        // pool; until then the counts are the last committed ones.
        self.reopen_in_background();
        Ok(crate::sync::lock(&self.inner.summary).clone())
    }

    async fn import(
        &self,
        records: &[KeyPairRecord],
        active: Option<&str>,
        schedule: &Schedule,
    ) -> Result<(), StoreError> {
        let (records, active, schedule) = (
            records.to_vec(),
            active.map(str::to_string),
            schedule.clone(),
        );
        self.blocking(move |s| s.import(&records, active.as_deref(), &schedule))
            .await
    }

    async fn schedule(&self) -> Result<Schedule, StoreError> {
        self.blocking(|s| s.schedule()).await
    }

    async fn set_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let schedule = schedule.clone();
        self.blocking(move |s| s.set_schedule(&schedule)).await
    }

    async fn replace_envelope(&self, id: &str, envelope: &Envelope) -> Result<(), StoreError> {
        let (id, envelope) = (id.to_string(), envelope.clone());
        self.blocking(move |s| s.replace_envelope(&id, &envelope))
            .await
    }

    async fn delete_retired(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.blocking(move |s| s.delete_retired(&id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::decodable;

    use crate::testing::record_at as record;

    async fn open() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = RedbStore::open(&dir.path().join("s.redb")).await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn activation_retires_previous_in_one_step() {
        let (_d, s) = open().await;
        let sched = Schedule::default();
        s.insert_pending(&record("a", 1)).await.unwrap();
        assert_eq!(s.active().await.unwrap(), None, "pending is never active");
        s.activate("a", crate::time::now(), &sched).await.unwrap();
        s.insert_pending(&record("b", 2)).await.unwrap();
        let b = s.activate("b", crate::time::now(), &sched).await.unwrap();
        assert_eq!(b.state, KeyState::Active);
        assert_eq!(s.active().await.unwrap().unwrap().id, "b");
        let a = s.get("a").await.unwrap().unwrap();
        assert_eq!(a.state, KeyState::Retired);
        assert!(a.retired_at.is_some());
        let ids: Vec<String> = s
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|l| match l {
                Listed::Ok(r) => r.id,
                Listed::Corrupt { id, .. } => id,
            })
            .collect();
        assert_eq!(ids, ["b", "a"], "newest first");
        // Activating twice, or an unknown id, is refused and changes nothing.
        assert!(matches!(
            s.activate("b", crate::time::now(), &sched).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            s.activate("zz", crate::time::now(), &sched).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            s.insert_pending(&record("a", 3)).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(s.active().await.unwrap().unwrap().id, "b");
    }

    #[tokio::test]
    async fn schedule_and_reopen_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let sched = Schedule {
            last_rotation_at: Some(crate::time::now()),
            next_rotation_at: Some(crate::time::now()),
        };
        {
            let s = RedbStore::open(&path).await.unwrap();
            s.insert_pending(&record("a", 1)).await.unwrap();
            s.activate("a", crate::time::now(), &sched).await.unwrap();
        }
        let s = RedbStore::open(&path).await.unwrap();
        assert_eq!(s.schedule().await.unwrap(), sched);
        assert_eq!(s.active().await.unwrap().unwrap().id, "a");
    }

    #[tokio::test]
    async fn only_retired_key_pairs_can_be_deleted() {
        let (_d, s) = open().await;
        let sched = Schedule::default();
        s.insert_pending(&record("a", 1)).await.unwrap();
        assert!(
            matches!(
                s.delete_retired("a").await,
                Err(StoreError::Conflict { .. })
            ),
            "pending"
        );
        s.activate("a", crate::time::now(), &sched).await.unwrap();
        assert!(
            matches!(
                s.delete_retired("a").await,
                Err(StoreError::Conflict { .. })
            ),
            "active"
        );
        s.insert_pending(&record("b", 2)).await.unwrap();
        s.activate("b", crate::time::now(), &sched).await.unwrap();
        s.delete_retired("a").await.unwrap();
        assert!(s.get("a").await.unwrap().is_none());
        assert_eq!(s.active().await.unwrap().unwrap().id, "b");
    }

    #[tokio::test]
    async fn corrupt_record_is_listed_not_lost() {
        let (_d, s) = open().await;
        s.insert_pending(&record("a", 1)).await.unwrap();
        s.inner
            .write(|t| {
                t.kp.insert("kek-bad", b"{not json".as_slice()).unwrap();
                Ok(())
            })
            .unwrap();
        let list = s.list().await.unwrap();
        assert_eq!(list.len(), 2);
        assert!(matches!(&list[1], Listed::Corrupt { id, .. } if id == "kek-bad"));
        assert!(
            matches!(s.get("kek-bad").await, Err(StoreError::Corrupt { id, .. }) if id == "kek-bad")
        );
    }

    /// An in-memory redb backend whose writes and syncs fail (like a full
    /// disk) while `failing` is set.
    #[derive(Debug, Clone)]
    struct Faulty {
        mem: Arc<redb::backends::InMemoryBackend>,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Faulty {
        fn check(&self) -> std::io::Result<()> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
            } else {
                Ok(())
            }
        }
    }

    impl redb::StorageBackend for Faulty {
        fn len(&self) -> std::io::Result<u64> {
            self.mem.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.mem.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.mem.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.check()?;
            self.mem.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.mem.write(offset, data)
        }
    }

    /// Regression: after a write error (a full disk) redb refused every
    /// later write ("Previous I/O error occurred") even once space was back,
    /// so kekd could never rotate again without a restart.
    #[tokio::test]
    async fn the_store_recovers_after_a_write_error() {
        let backend = Faulty {
            mem: Arc::new(redb::backends::InMemoryBackend::new()),
            failing: Arc::default(),
        };
        let b = backend.clone();
        let s = RedbStore::open_with(
            Box::new(move || redb::Database::builder().create_with_backend(b.clone())),
            "memory".into(),
        )
        .await
        .unwrap();
        s.insert_pending(&record("a", 1)).await.unwrap();
        s.activate("a", crate::time::now(), &Schedule::default())
            .await
            .unwrap();

        backend
            .failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let e = s.insert_pending(&record("b", 2)).await.unwrap_err();
        assert!(matches!(e, StoreError::Backend { .. }), "{e}");
        backend
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);

        // Space is back: writes work again, and nothing was half written.
        s.insert_pending(&record("b", 2)).await.unwrap();
        s.activate("b", crate::time::now(), &Schedule::default())
            .await
            .unwrap();
        assert_eq!(s.active().await.unwrap().unwrap().id, "b");
        assert_eq!(s.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_store_file_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        drop(RedbStore::open(&path).await.unwrap());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "created 0600");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(RedbStore::open(&path).await.unwrap());
        assert_eq!(mode(&path), 0o600, "an existing 0644 file is narrowed");
    }

    fn ids(page: &HistoryPage) -> Vec<String> {
        page.records
            .iter()
            .map(|l| match l {
                Listed::Ok(r) => r.id.clone(),
                Listed::Corrupt { id, .. } => id.clone(),
            })
            .collect()
    }

    #[tokio::test]
    async fn history_pages_follow_the_cursor_newest_first() {
        let (_d, s) = open().await;
        for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            s.insert_pending(&record(id, i as u32)).await.unwrap();
        }
        let p1 = s.page(None, 2).await.unwrap();
        assert_eq!(ids(&p1), ["e", "d"]);
        let p2 = s.page(p1.next.as_deref(), 2).await.unwrap();
        assert_eq!(ids(&p2), ["c", "b"]);
        let p3 = s.page(p2.next.as_deref(), 2).await.unwrap();
        assert_eq!((ids(&p3), p3.next), (vec!["a".to_string()], None));
        assert!(matches!(
            s.page(Some("zz"), 2).await,
            Err(StoreError::UnknownCursor(_))
        ));
    }

    #[tokio::test]
    async fn counts_follow_every_write_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = RedbStore::open(&path).await.unwrap();
        let sched = Schedule::default();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            s.insert_pending(&record(id, i as u32)).await.unwrap();
            s.activate(id, crate::time::now(), &sched).await.unwrap();
        }
        s.insert_pending(&record("d", 9)).await.unwrap();
        s.delete_retired("a").await.unwrap();
        let mut env = record("b", 1).envelope;
        env.wrapping_key_arn = "arn:new".into();
        s.replace_envelope("b", &env).await.unwrap();
        let want = Summary::of(&decodable(s.list().await.unwrap()));
        assert_eq!(s.summary().await.unwrap(), want);
        assert_eq!(want.total(), 3);
        assert_eq!(want.by_state[&KeyState::Pending], 1);
        assert_eq!(want.by_wrapping_key["arn:new"], 1);
        drop(s);
        let again = RedbStore::open(&path).await.unwrap();
        assert_eq!(again.summary().await.unwrap(), want);
    }

    /// Every kind of write moves the change count on, even one that is
    /// refused, and no read does: the API reuses the newest history page
    /// only while the count stands still.
    #[tokio::test]
    async fn every_write_moves_the_change_count_and_no_read_does() {
        let (_d, s) = open().await;
        let sched = Schedule::default();
        let mut last = s.changes().expect("redb is its process's own store");
        let mut moved = |what: &str, s: &RedbStore| {
            let now = s.changes().unwrap();
            assert!(now > last, "{what} did not move the change count");
            last = now;
        };
        s.insert_pending(&record("a", 1)).await.unwrap();
        moved("insert_pending", &s);
        s.activate("a", crate::time::now(), &sched).await.unwrap();
        moved("activate", &s);
        s.insert_pending(&record("b", 2)).await.unwrap();
        moved("insert_pending", &s);
        s.announce("b", crate::time::now()).await.unwrap();
        moved("announce", &s);
        s.abandon("b", crate::time::now()).await.unwrap();
        moved("abandon", &s);
        s.set_schedule(&sched).await.unwrap();
        moved("set_schedule", &s);
        let mut env = record("a", 1).envelope;
        env.wrapping_key_arn = "arn:new".into();
        s.replace_envelope("a", &env).await.unwrap();
        moved("replace_envelope", &s);
        s.delete_retired("b").await.unwrap();
        moved("delete_retired", &s);
        assert!(s.delete_retired("a").await.is_err());
        moved("a refused delete", &s);
        let before = s.changes();
        s.get("a").await.unwrap();
        s.active().await.unwrap();
        s.page(None, 10).await.unwrap();
        s.list().await.unwrap();
        s.summary().await.unwrap();
        s.schedule().await.unwrap();
        assert_eq!(s.changes(), before, "a read moved the change count");
    }

    /// Regression: after an I/O error, `summary` (which status calls on the
    /// runtime) reopened, repaired and schema-checked the file right there.
    #[tokio::test]
    async fn summary_never_reopens_the_store_on_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new((0u32, entered_tx, release_rx));
        let file = path.clone();
        let opener: Opener = Box::new(move || {
            let mut g = crate::sync::lock(&gate);
            g.0 += 1;
            if g.0 > 1 {
                // Every reopen waits here, as a slow disk's repair would.
                let _ = g.1.send(());
                let _ = g.2.recv();
            }
            redb::Database::create(&file)
        });
        let s = RedbStore::open_with(opener, path.display().to_string())
            .await
            .unwrap();
        s.insert_pending(&record("a", 1)).await.unwrap();
        // As reopen_after_io_error does after an I/O error.
        *crate::sync::lock(&s.inner.db) = None;
        let counts = s.summary().await.unwrap();
        assert_eq!(counts.total(), 1, "the last committed counts, from memory");
        // The reopen runs on the blocking pool, and waits there...
        tokio::task::spawn_blocking(move || entered.recv().unwrap())
            .await
            .unwrap();
        // ...while summary still answers at once.
        assert_eq!(s.summary().await.unwrap().total(), 1);
        release.send(()).unwrap();
        assert!(s.get("a").await.unwrap().is_some(), "reopened");
    }

    /// A schema 1 store (no history index, no counts) is migrated on open.
    #[tokio::test]
    async fn a_schema_1_store_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut kp = txn.open_table(KEYPAIRS).unwrap();
                let mut meta = txn.open_table(META).unwrap();
                for (i, id) in ["a", "b"].iter().enumerate() {
                    let r = record(id, i as u32);
                    kp.insert(*id, Inner::encode(&r).as_slice()).unwrap();
                }
                meta.insert(META_SCHEMA, b"1".as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let s = RedbStore::open(&path).await.unwrap();
        assert_eq!(ids(&s.page(None, 10).await.unwrap()), ["b", "a"]);
        assert_eq!(s.summary().await.unwrap().total(), 2);
    }

    #[tokio::test]
    async fn import_copies_into_an_empty_store_only() {
        let (_d, s) = open().await;
        let mut a = record("a", 1);
        a.state = KeyState::Active;
        s.import(std::slice::from_ref(&a), Some("a"), &Schedule::default())
            .await
            .unwrap();
        assert_eq!(s.active().await.unwrap(), Some(a.clone()));
        assert!(matches!(
            s.import(&[a], None, &Schedule::default()).await,
            Err(StoreError::NotEmpty { count: 1, .. })
        ));
    }

    #[tokio::test]
    async fn other_schema_version_is_refused() {
        let (d, s) = open().await;
        s.inner
            .write(|t| {
                t.meta.insert(META_SCHEMA, b"99".as_slice()).unwrap();
                Ok(())
            })
            .unwrap();
        drop(s);
        let e = RedbStore::open(&d.path().join("s.redb"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }
}
