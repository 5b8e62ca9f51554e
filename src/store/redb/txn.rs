//! How every operation reads and writes: one write transaction with a
//! retry after a reopen, records decoded and encoded as JSON (a record that
//! does not decode is reported by id and kept), and the change count.

use super::tables::*;
use super::Inner;
use crate::domain::KeyPairRecord;
use crate::store::{HasId, Listed, StoreError};
use redb::ReadableTable;

impl Inner {
    pub(super) fn be<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StoreError + '_ {
        move |e| StoreError::Backend {
            path: self.path.clone(),
            source: e.into(),
        }
    }

    pub(super) fn decode(id: &str, bytes: &[u8]) -> Result<KeyPairRecord, StoreError> {
        Self::decode_as(id, bytes)
    }

    /// Decodes a stored record as `R` — the whole record, or only what a
    /// history page shows (its envelope skipped, not decoded).
    pub(super) fn decode_as<R: serde::de::DeserializeOwned + HasId>(
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

    pub(super) fn encode(rec: &KeyPairRecord) -> Vec<u8> {
        serde_json::to_vec(rec).expect("records serialize")
    }

    /// Marks the store as changed (after the change, so a reader that saw
    /// the old count never keeps what it read as current).
    pub(super) fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Runs `f` in one write transaction and commits durably; the counts
    /// are written with it and cached once it committed. Counts as a change
    /// whatever the outcome: a failed commit may still have reached the
    /// file.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = self.write_once(f);
        self.changed();
        result
    }

    pub(super) fn write_once<T>(
        &self,
        f: impl FnOnce(&mut Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db()?.begin_write().map_err(self.be())?;
        let (out, summary) = {
            let meta = txn.open_table(self.names.meta()).map_err(self.be())?;
            let summary = Self::read_summary(&meta).map_err(|problem| StoreError::Corrupt {
                id: META_SUMMARY.into(),
                problem,
            })?;
            let mut t = Tables {
                kp: txn.open_table(self.names.keypairs()).map_err(self.be())?,
                history: txn.open_table(self.names.history()).map_err(self.be())?,
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

    pub(super) fn read_record(
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

    pub(super) fn listed<R: serde::de::DeserializeOwned + HasId>(
        id: &str,
        bytes: &[u8],
    ) -> Listed<R> {
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
