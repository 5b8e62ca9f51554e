//! The synchronous operations behind every [`KeyStore`] method, each one
//! transaction, run on the blocking pool by `mod.rs`.
//!
//! [`KeyStore`]: crate::store::KeyStore

use super::tables::*;
use super::Inner;
use crate::domain::{Envelope, KeyPairRecord, KeyState, Schedule};
use crate::store::{HistoryPage, Listed, StoreError};
use crate::time::Timestamp;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

impl Inner {
    pub(super) fn insert_pending(&self, record: &KeyPairRecord) -> Result<(), StoreError> {
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

    pub(super) fn activate(
        &self,
        id: &str,
        at: Timestamp,
        schedule: &Schedule,
    ) -> Result<KeyPairRecord, StoreError> {
        self.write(|t| {
            let old = t.get_existing(id)?;
            // A corrupt previous record must not block rotation: it stays
            // as it is (reported elsewhere); only the pointer moves.
            let prev = match t.active_id()? {
                Some(prev_id) => t.get(&prev_id).ok().flatten(),
                None => None,
            };
            let at = old.activation_instant(at, prev.as_ref());
            let rec = old
                .activated(at)
                .map_err(|refused| StoreError::refused(id, refused))?;
            if let Some(prev) = &prev {
                t.put(Some(prev), &prev.retired(at))?;
            }
            t.put(Some(&old), &rec)?;
            t.set_meta(META_ACTIVE, id.as_bytes())?;
            t.set_schedule(schedule)?;
            crate::failpoint::crash_point!("store-activate-before-commit");
            Ok(rec)
        })
    }

    pub(super) fn abandon(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.write(|t| {
            if let Some(old) = t.get(id)? {
                if let Some(rec) = old.superseded(at) {
                    t.put(Some(&old), &rec)?;
                }
            }
            Ok(())
        })
    }

    pub(super) fn announce(
        &self,
        id: &str,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, StoreError> {
        self.write(|t| {
            let old = t.get_existing(id)?;
            let rec = old
                .announced(activates_at)
                .map_err(|refused| StoreError::refused(id, refused))?;
            t.put(Some(&old), &rec)?;
            Ok(rec)
        })
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(self.names.keypairs()).map_err(self.be())?;
        Self::read_record(&kp, id)
    }

    pub(super) fn active(&self) -> Result<Option<KeyPairRecord>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let meta = txn.open_table(self.names.meta()).map_err(self.be())?;
        let Some(id) = meta
            .get(META_ACTIVE)
            .map_err(self.be())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned())
        else {
            return Ok(None);
        };
        let kp = txn.open_table(self.names.keypairs()).map_err(self.be())?;
        Self::read_record(&kp, &id)
    }

    pub(super) fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(self.names.keypairs()).map_err(self.be())?;
        let mut out = Vec::new();
        for entry in kp.iter().map_err(self.be())? {
            let (k, v) = entry.map_err(self.be())?;
            out.push(Self::listed::<KeyPairRecord>(k.value(), v.value()));
        }
        newest_first(&mut out);
        Ok(out)
    }

    pub(super) fn corrupt_records(&self) -> Result<Vec<(String, String)>, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(self.names.keypairs()).map_err(self.be())?;
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

    pub(super) fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let kp = txn.open_table(self.names.keypairs()).map_err(self.be())?;
        let history = txn.open_table(self.names.history()).map_err(self.be())?;
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

    pub(super) fn schedule(&self) -> Result<Schedule, StoreError> {
        let txn = self.db()?.begin_read().map_err(self.be())?;
        let meta = txn.open_table(self.names.meta()).map_err(self.be())?;
        match meta.get(META_SCHEDULE).map_err(self.be())? {
            None => Ok(Schedule::default()),
            Some(v) => serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                id: META_SCHEDULE.into(),
                problem: e.to_string(),
            }),
        }
    }

    pub(super) fn set_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        self.write(|t| t.set_schedule(schedule))
    }

    pub(super) fn delete_retired(&self, id: &str) -> Result<(), StoreError> {
        self.write(|t| {
            let rec = t.get_existing(id)?;
            let active = t.active_id()?.is_some_and(|a| a == id);
            rec.prunable(active)
                .map_err(|refused| StoreError::refused(id, refused))?;
            t.remove(&rec)?;
            crate::failpoint::crash_point!("store-delete-before-commit");
            Ok(())
        })
    }

    pub(super) fn replace_envelope(&self, id: &str, envelope: &Envelope) -> Result<(), StoreError> {
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

    pub(super) fn import(
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

/// Newest first; corrupt records (no trustworthy time) last, by id.
pub(super) fn newest_first(records: &mut [Listed]) {
    records.sort_by(|a, b| match (a, b) {
        (Listed::Ok(a), Listed::Ok(b)) => b
            .created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id)),
        (Listed::Ok(_), Listed::Corrupt { .. }) => std::cmp::Ordering::Less,
        (Listed::Corrupt { .. }, Listed::Ok(_)) => std::cmp::Ordering::Greater,
        (Listed::Corrupt { id: a, .. }, Listed::Corrupt { id: b, .. }) => a.cmp(b),
    });
}
