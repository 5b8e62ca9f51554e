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
//!
//! Files: `tables.rs` (the tables and [`Tables`], the one door for writes),
//! `schema.rs` (open, reopen, schema check and migration), `txn.rs`
//! (transactions, record encoding), `ops.rs` (the operations); this file
//! holds the store itself and its [`KeyStore`] methods.

use super::{HistoryPage, KeyStore, Listed, StoreError, Summary};
use crate::domain::{Envelope, KeyPairRecord, Schedule};
use crate::time::Timestamp;
use async_trait::async_trait;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

mod ops;
mod orgs;
mod schema;
mod snapshot;
mod tables;
mod txn;

pub use orgs::RedbRegistry;
pub use snapshot::Snapshot;
use tables::*;

/// redb-backed [`KeyStore`]. Cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

/// Opens the database (again): from the file, or in tests from a backend.
pub(crate) type Opener = Box<dyn Fn() -> Result<redb::Database, redb::DatabaseError> + Send + Sync>;

/// The database file every organization's tables live in, opened (again
/// after an I/O error) on demand.
struct File {
    /// `None` after an I/O error, until the next operation reopens it.
    db: Mutex<Option<Arc<redb::Database>>>,
    opener: Opener,
    path: String,
    /// Moves on with every open: an organization's cached counts made
    /// before it are read again.
    opened: std::sync::atomic::AtomicU64,
}

/// One organization's tables and the synchronous operations on them.
struct Inner {
    file: Arc<File>,
    names: Names,
    path: String,
    /// The counts as of the last commit.
    summary: Mutex<Summary>,
    /// The open of the file the counts were read after.
    loaded: std::sync::atomic::AtomicU64,
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
        let file = Arc::new(File {
            db: Mutex::new(None),
            opener,
            path,
            opened: std::sync::atomic::AtomicU64::new(0),
        });
        RedbStore::on(file, Names::unprefixed()).await
    }

    /// The store of the organization whose tables `names` names, in `file`;
    /// its tables are created if they are not there yet.
    async fn on(file: Arc<File>, names: Names) -> Result<RedbStore, StoreError> {
        let inner = Inner {
            path: file.path.clone(),
            file,
            names,
            summary: Mutex::default(),
            loaded: std::sync::atomic::AtomicU64::new(0),
            changes: std::sync::atomic::AtomicU64::new(0),
        };
        let inner = tokio::task::spawn_blocking(move || inner.create_tables().map(|_| inner))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))??;
        Ok(RedbStore {
            inner: Arc::new(inner),
        })
    }

    /// Reads the whole store at `path` without writing to it (the source of
    /// a copy: a backup may be read-only or immutable).
    pub async fn read_only(path: &Path) -> Result<Snapshot, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || snapshot::read_only(&path))
            .await
            .map_err(|e| StoreError::Worker(crate::report::join_error(e)))?
    }

    /// Starts reopening the database on the blocking pool if an I/O error
    /// dropped its handle. Never waits: a reopen in progress holds the
    /// handle's lock, so a busy lock means there is nothing to start.
    fn reopen_in_background(&self) {
        let closed = match self.inner.file.db.try_lock() {
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
    use crate::domain::KeyState;
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
        *crate::sync::lock(&s.inner.file.db) = None;
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
