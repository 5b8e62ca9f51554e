//! The store's tables and the one door every write goes through
//! ([`Tables`]), which keeps the history index and the counts in step with
//! the records.

use super::Inner;
use crate::domain::{KeyPairRecord, Schedule};
use crate::store::{StoreError, Summary};
use redb::{ReadableTable, TableDefinition};

/// Key pair id → JSON [`KeyPairRecord`] (the unprefixed organization's).
pub(super) const KEYPAIRS: TableDefinition<&str, &[u8]> = TableDefinition::new("keypairs");
/// (created_at in ms, id) → (): the history, oldest first.
pub(super) const HISTORY: TableDefinition<(u64, &str), ()> = TableDefinition::new("history");
/// Small named values: schema version, active pointer, schedule, counts.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Organization id → JSON [`crate::domain::OrgRecord`].
pub(super) const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");

pub(super) const META_SCHEMA: &str = "schema_version";
pub(super) const META_ACTIVE: &str = "active";
pub(super) const META_SCHEDULE: &str = "schedule";
pub(super) const META_SUMMARY: &str = "summary";
/// In the unprefixed `meta`: the organization the unprefixed tables belong
/// to — the first one saved (a store from before organizations keeps its
/// history where it is, adopted by the organization its file declares).
pub(super) const META_OWNER: &str = "tables_owner";

/// The tables of one organization: the unprefixed ones for the
/// organization that owns them, `org/<id>/…` for every other.
#[derive(Debug, Clone)]
pub(super) struct Names {
    keypairs: String,
    history: String,
    meta: String,
}

impl Names {
    /// The unprefixed tables (a store from before organizations, and the
    /// first organization of every store).
    pub(super) fn unprefixed() -> Names {
        Names {
            keypairs: "keypairs".into(),
            history: "history".into(),
            meta: "meta".into(),
        }
    }

    /// The tables of organization `org` when it does not own the
    /// unprefixed ones. An organization id has no `/`, so no two
    /// organizations' names meet.
    pub(super) fn of(org: &str) -> Names {
        Names {
            keypairs: format!("org/{org}/keypairs"),
            history: format!("org/{org}/history"),
            meta: format!("org/{org}/meta"),
        }
    }

    pub(super) fn keypairs(&self) -> TableDefinition<'_, &'static str, &'static [u8]> {
        TableDefinition::new(&self.keypairs)
    }

    pub(super) fn history(&self) -> TableDefinition<'_, (u64, &'static str), ()> {
        TableDefinition::new(&self.history)
    }

    pub(super) fn meta(&self) -> TableDefinition<'_, &'static str, &'static [u8]> {
        TableDefinition::new(&self.meta)
    }
}

/// redb's page cache. Its default (1 GiB) keeps every page ever read, so
/// the start-up scan of every record would leave the whole history
/// resident and the daemon's memory would grow with it. Requests read the
/// newest pages and the index; the kernel's page cache holds the rest.
pub(super) const CACHE_BYTES: usize = 4 << 20;

/// The store layout this build reads and writes (1: no history index, no
/// counts; 2: one organization, no `orgs` table — both migrated on open).
pub(super) const SCHEMA_VERSION: u64 = 3;

/// The key of a record in the history index.
pub(super) fn history_key(r: &KeyPairRecord) -> (u64, &str) {
    (
        u64::try_from(r.created_at.timestamp_millis()).unwrap_or(0),
        r.id.as_str(),
    )
}

/// The tables of one write transaction. Every change of a record goes
/// through [`Tables::put`] or [`Tables::remove`], which keep the history
/// index and the counts in step with it.
pub(super) struct Tables<'t> {
    pub(super) kp: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) history: redb::Table<'t, (u64, &'static str), ()>,
    pub(super) meta: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) summary: Summary,
    pub(super) path: &'t str,
}

/// Wraps a redb error with the store's location.
pub(super) fn backend<E: Into<redb::Error>>(path: &str) -> impl Fn(E) -> StoreError + '_ {
    move |e| StoreError::Backend {
        path: path.to_string(),
        source: e.into(),
    }
}

impl Tables<'_> {
    pub(super) fn be<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StoreError + '_ {
        backend(self.path)
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        Inner::read_record(&self.kp, id)
    }

    pub(super) fn get_existing(&self, id: &str) -> Result<KeyPairRecord, StoreError> {
        self.get(id)?.ok_or_else(|| StoreError::Conflict {
            id: id.into(),
            problem: "not stored".into(),
        })
    }

    /// Stores `new`, replacing `old` (the same key pair as it was, if it
    /// was stored and decodes).
    pub(super) fn put(
        &mut self,
        old: Option<&KeyPairRecord>,
        new: &KeyPairRecord,
    ) -> Result<(), StoreError> {
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

    pub(super) fn remove(&mut self, old: &KeyPairRecord) -> Result<(), StoreError> {
        let path = self.path;
        self.kp.remove(old.id.as_str()).map_err(backend(path))?;
        self.history
            .remove(history_key(old))
            .map_err(backend(path))?;
        self.summary.remove(old);
        Ok(())
    }

    pub(super) fn active_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(META_ACTIVE)
            .map_err(self.be())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    pub(super) fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.path;
        self.meta.insert(key, value).map_err(backend(path))?;
        Ok(())
    }

    pub(super) fn set_schedule(&mut self, schedule: &Schedule) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(schedule).expect("schedules serialize");
        self.set_meta(META_SCHEDULE, &bytes)
    }
}
