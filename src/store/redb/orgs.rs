//! The organizations of a redb store: the `orgs` table, and one set of
//! tables per organization ([`Names`]): the unprefixed ones for the
//! organization that owns them (the first saved, so a store from before
//! organizations keeps its history in place), `org/<id>/…` for the others.

use super::tables::*;
use super::{File, RedbStore};
use crate::domain::OrgRecord;
use crate::store::orgs::{self, Expect, Registry};
use crate::store::{KeyStore, StoreError};
use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The organizations of one redb file, and each one's [`RedbStore`].
pub struct RedbRegistry {
    file: Arc<File>,
    stores: tokio::sync::Mutex<HashMap<String, RedbStore>>,
}

impl std::fmt::Debug for RedbRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbRegistry")
            .field("path", &self.file.path)
            .finish()
    }
}

impl RedbRegistry {
    /// Opens (or creates, mode 0600) the store at `path`, checks and
    /// migrates its schema.
    pub async fn open(path: &Path) -> Result<RedbRegistry, StoreError> {
        let store = RedbStore::open(path).await?;
        Ok(RedbRegistry::of(store))
    }

    /// The registry of the file an open store is in.
    fn of(store: RedbStore) -> RedbRegistry {
        RedbRegistry {
            file: store.inner.file.clone(),
            stores: tokio::sync::Mutex::default(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&File) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let result = f(&file);
            file.reopen_after_io_error(&result);
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}

impl File {
    fn owner(
        meta: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Option<String>, redb::StorageError> {
        Ok(meta
            .get(META_OWNER)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// The tables organization `id` uses.
    fn names_of(&self, id: &str) -> Result<Names, StoreError> {
        let (db, _) = self.db()?;
        let txn = db.begin_read().map_err(self.be())?;
        let meta = txn.open_table(META).map_err(self.be())?;
        Ok(match Self::owner(&meta).map_err(self.be())? {
            Some(owner) if owner == id => Names::unprefixed(),
            _ => Names::of(id),
        })
    }

    fn orgs(&self) -> Result<Vec<OrgRecord>, StoreError> {
        let (db, _) = self.db()?;
        let txn = db.begin_read().map_err(self.be())?;
        let table = txn.open_table(ORGS).map_err(self.be())?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(self.be())? {
            let (k, v) = entry.map_err(self.be())?;
            out.push(orgs::decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn org(&self, id: &str) -> Result<Option<OrgRecord>, StoreError> {
        let (db, _) = self.db()?;
        let txn = db.begin_read().map_err(self.be())?;
        let table = txn.open_table(ORGS).map_err(self.be())?;
        let found = table.get(id).map_err(self.be())?;
        found.map(|v| orgs::decode(id, v.value())).transpose()
    }

    fn save_org(&self, record: &OrgRecord, expect: &Expect) -> Result<(), StoreError> {
        let (db, _) = self.db()?;
        let txn = db.begin_write().map_err(self.be())?;
        {
            let mut table = txn.open_table(ORGS).map_err(self.be())?;
            let id = record.id();
            let stored = table
                .get(id)
                .map_err(self.be())?
                .map(|v| orgs::decode(id, v.value()))
                .transpose()?;
            let fits = match (expect, &stored) {
                (Expect::Absent, None) => true,
                (Expect::Is(want), Some(have)) => **want == *have,
                _ => false,
            };
            if !fits {
                return Err(orgs::expectation_failed(id, expect));
            }
            table
                .insert(id, orgs::encode(record).as_slice())
                .map_err(self.be())?;
            let mut meta = txn.open_table(META).map_err(self.be())?;
            if Self::owner(&meta).map_err(self.be())?.is_none() {
                meta.insert(META_OWNER, id.as_bytes()).map_err(self.be())?;
                tracing::info!(store = %self.path, organization = id, "the store's unprefixed tables (its history from before organizations, if any) belong to this organization");
            }
        }
        txn.commit().map_err(self.be())
    }

    fn purge_org(&self, id: &str) -> Result<u64, StoreError> {
        let (db, _) = self.db()?;
        let txn = db.begin_write().map_err(self.be())?;
        let deleted = {
            let mut orgs_table = txn.open_table(ORGS).map_err(self.be())?;
            orgs_table.remove(id).map_err(self.be())?;
            let mut meta = txn.open_table(META).map_err(self.be())?;
            let owns = Self::owner(&meta).map_err(self.be())?.as_deref() == Some(id);
            let names = if owns {
                Names::unprefixed()
            } else {
                Names::of(id)
            };
            let deleted = match txn.open_table(names.keypairs()) {
                Ok(t) => t.len().map_err(self.be())?,
                Err(_) => 0,
            };
            if owns {
                // The unprefixed tables stay (the schema version lives in
                // `meta`); what was in them goes.
                txn.delete_table(names.keypairs()).map_err(self.be())?;
                txn.delete_table(names.history()).map_err(self.be())?;
                for key in [META_ACTIVE, META_SCHEDULE, META_SUMMARY, META_OWNER] {
                    meta.remove(key).map_err(self.be())?;
                }
                txn.open_table(names.keypairs()).map_err(self.be())?;
                txn.open_table(names.history()).map_err(self.be())?;
            } else {
                drop(meta);
                for t in [names.keypairs(), names.meta()] {
                    txn.delete_table(t).map_err(self.be())?;
                }
                txn.delete_table(names.history()).map_err(self.be())?;
            }
            deleted
        };
        txn.commit().map_err(self.be())?;
        Ok(deleted)
    }
}

impl RedbStore {
    /// Rewrites the store at `path` (not open) as a build from before
    /// organizations wrote it: schema 2, one organization in the
    /// unprefixed tables, no `orgs` table. For the upgrade tests; the
    /// other organizations' tables are left behind unreachable.
    #[doc(hidden)]
    pub fn downgrade_to_schema_2(path: &Path) -> Result<(), StoreError> {
        let shown = path.display().to_string();
        let be = |e: redb::Error| StoreError::Backend {
            path: shown.clone(),
            source: e,
        };
        let db = redb::Database::open(path).map_err(|e| be(e.into()))?;
        let txn = db.begin_write().map_err(|e| be(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| be(e.into()))?;
            meta.remove(META_OWNER).map_err(|e| be(e.into()))?;
            meta.insert(META_SCHEMA, b"2".as_slice())
                .map_err(|e| be(e.into()))?;
        }
        txn.delete_table(ORGS).map_err(|e| be(e.into()))?;
        txn.commit().map_err(|e| be(e.into()))
    }
}

#[async_trait]
impl Registry for RedbRegistry {
    async fn orgs(&self) -> Result<Vec<OrgRecord>, StoreError> {
        self.blocking(|f| f.orgs()).await
    }

    async fn org(&self, id: &str) -> Result<Option<OrgRecord>, StoreError> {
        let id = id.to_string();
        self.blocking(move |f| f.org(&id)).await
    }

    async fn save_org(&self, record: &OrgRecord, expect: Expect) -> Result<(), StoreError> {
        let record = record.clone();
        self.blocking(move |f| f.save_org(&record, &expect)).await
    }

    async fn purge_org(&self, id: &str) -> Result<u64, StoreError> {
        let mut stores = self.stores.lock().await;
        let owned = id.to_string();
        let deleted = self.blocking(move |f| f.purge_org(&owned)).await?;
        stores.remove(id);
        Ok(deleted)
    }

    async fn keys(&self, id: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
        let mut stores = self.stores.lock().await;
        if let Some(s) = stores.get(id) {
            return Ok(Arc::new(s.clone()));
        }
        let owned = id.to_string();
        let names = self.blocking(move |f| f.names_of(&owned)).await?;
        let store = RedbStore::on(self.file.clone(), names).await?;
        stores.insert(id.to_string(), store.clone());
        Ok(Arc::new(store))
    }

    fn location(&self) -> String {
        self.file.path.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrgSource, OrgSpec, Schedule};
    use crate::testing::record_at as record;

    fn org(id: &str) -> OrgRecord {
        OrgRecord::new(
            OrgSpec {
                id: id.into(),
                ..OrgSpec::default()
            },
            OrgSource::Api,
            crate::time::now(),
        )
    }

    /// Two organizations in one file never see each other's key pairs;
    /// purging one leaves the other whole; both survive a reopen.
    #[tokio::test]
    async fn organizations_have_their_own_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let reg = RedbRegistry::open(&path).await.unwrap();
        for id in ["a", "b"] {
            reg.save_org(&org(id), Expect::Absent).await.unwrap();
        }
        assert!(matches!(
            reg.save_org(&org("a"), Expect::Absent).await,
            Err(StoreError::Conflict { .. })
        ));
        let (a, b) = (reg.keys("a").await.unwrap(), reg.keys("b").await.unwrap());
        a.insert_pending(&record("kek-a", 1)).await.unwrap();
        a.activate("kek-a", crate::time::now(), &Schedule::default())
            .await
            .unwrap();
        b.insert_pending(&record("kek-b", 2)).await.unwrap();
        assert!(a.get("kek-b").await.unwrap().is_none());
        assert!(b.get("kek-a").await.unwrap().is_none());
        assert_eq!(a.summary().await.unwrap().total(), 1);
        assert_eq!(b.summary().await.unwrap().total(), 1);
        drop((a, b, reg));
        let reg = RedbRegistry::open(&path).await.unwrap();
        let ids: Vec<String> = reg
            .orgs()
            .await
            .unwrap()
            .iter()
            .map(|o| o.id().to_string())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            reg.keys("a")
                .await
                .unwrap()
                .active()
                .await
                .unwrap()
                .unwrap()
                .id,
            "kek-a"
        );
        assert_eq!(reg.purge_org("a").await.unwrap(), 1);
        assert!(reg.org("a").await.unwrap().is_none());
        assert_eq!(
            reg.keys("b")
                .await
                .unwrap()
                .summary()
                .await
                .unwrap()
                .total(),
            1
        );
        assert!(reg
            .keys("b")
            .await
            .unwrap()
            .get("kek-b")
            .await
            .unwrap()
            .is_some());
        // A purged organization of the same id starts empty.
        reg.save_org(&org("a"), Expect::Absent).await.unwrap();
        let a = reg.keys("a").await.unwrap();
        assert!(a.active().await.unwrap().is_none());
        assert_eq!(a.summary().await.unwrap().total(), 0);
    }

    /// A store from before organizations (schema 2) keeps its history, in
    /// place, for the first organization saved into it.
    #[tokio::test]
    async fn a_schema_2_store_is_adopted_by_the_first_organization() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let old = RedbStore::open(&path).await.unwrap();
            old.insert_pending(&record("kek-old", 1)).await.unwrap();
            old.activate("kek-old", crate::time::now(), &Schedule::default())
                .await
                .unwrap();
            old.inner
                .write(|t| {
                    t.set_meta(META_SCHEMA, b"2")?;
                    Ok(())
                })
                .unwrap();
        }
        let reg = RedbRegistry::open(&path).await.unwrap();
        assert!(reg.orgs().await.unwrap().is_empty());
        reg.save_org(&org("acme"), Expect::Absent).await.unwrap();
        reg.save_org(&org("other"), Expect::Absent).await.unwrap();
        let acme = reg.keys("acme").await.unwrap();
        assert_eq!(acme.active().await.unwrap().unwrap().id, "kek-old");
        assert_eq!(acme.summary().await.unwrap().total(), 1);
        assert!(reg
            .keys("other")
            .await
            .unwrap()
            .active()
            .await
            .unwrap()
            .is_none());
    }
}
