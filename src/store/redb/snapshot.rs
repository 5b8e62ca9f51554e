//! Reading a store file without changing it: the source of a copy, which
//! may be a backup on a read-only mount or an immutable file. The file is
//! opened read-only (redb's `ReadOnlyDatabase`, which refuses a file that
//! needs repair instead of repairing it), and anything that is not a kekd
//! store — an empty file, another redb file — is said to be so.

use super::tables::*;
use super::Inner;
use crate::domain::{KeyPairRecord, Schedule};
use crate::store::{Listed, StoreError};
use redb::{ReadableDatabase, ReadableTable};
use std::path::Path;

/// Everything a copy takes from a store.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every record, newest first (corrupt ones by id, last).
    pub records: Vec<Listed>,
    /// The active pointer.
    pub active: Option<String>,
    /// The persisted schedule.
    pub schedule: Schedule,
}

/// Why a file is not a store this build reads.
fn not_a_store(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::NotAStore {
        path: path.display().to_string(),
        problem: why.to_string(),
    }
}

/// Reads the whole store at `path` without writing a byte of it.
/// Blocking.
pub(crate) fn read_only(path: &Path) -> Result<Snapshot, StoreError> {
    let meta = std::fs::metadata(path).map_err(|e| not_a_store(path, e))?;
    if !meta.is_file() {
        return Err(not_a_store(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(not_a_store(path, "the file is empty"));
    }
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .open_read_only(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                path: path.display().to_string(),
            },
            other => not_a_store(path, format!("not a redb database kekd can read ({other})")),
        })?;
    let be = |e: redb::Error| StoreError::Backend {
        path: path.display().to_string(),
        source: e,
    };
    let txn = db.begin_read().map_err(|e| be(e.into()))?;
    let meta = txn
        .open_table(META)
        .map_err(|_| not_a_store(path, "it has no kekd tables"))?;
    let schema = meta
        .get(META_SCHEMA)
        .map_err(|e| be(e.into()))?
        .map(|v| String::from_utf8_lossy(v.value()).into_owned());
    match schema.as_deref() {
        Some("1" | "2" | "3") => {}
        Some(other) => {
            return Err(StoreError::Schema {
                path: path.display().to_string(),
                found: other.to_string(),
                supported: SCHEMA_VERSION,
            })
        }
        None => return Err(not_a_store(path, "it has no schema version")),
    }
    let active = meta
        .get(META_ACTIVE)
        .map_err(|e| be(e.into()))?
        .map(|v| String::from_utf8_lossy(v.value()).into_owned());
    let schedule = match meta.get(META_SCHEDULE).map_err(|e| be(e.into()))? {
        None => Schedule::default(),
        Some(v) => serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
            id: META_SCHEDULE.into(),
            problem: e.to_string(),
        })?,
    };
    let kp = txn
        .open_table(KEYPAIRS)
        .map_err(|_| not_a_store(path, "it has no key-pair table"))?;
    let mut records = Vec::new();
    for entry in kp.iter().map_err(|e| be(e.into()))? {
        let (k, v) = entry.map_err(|e| be(e.into()))?;
        records.push(Inner::listed::<KeyPairRecord>(k.value(), v.value()));
    }
    super::ops::newest_first(&mut records);
    Ok(Snapshot {
        records,
        active,
        schedule,
    })
}
