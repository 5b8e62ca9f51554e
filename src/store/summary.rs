//! Counts of stored key pairs per state and per wrapping KMS key — what
//! status and `/metrics` show. A store keeps them current as it writes, in
//! the same transaction, so they never need a scan of the history.

use crate::domain::{KeyPairRecord, KeyState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts of the stored (decodable) key pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Per life-cycle state.
    pub by_state: BTreeMap<KeyState, u64>,
    /// Per wrapping KMS key ARN.
    pub by_wrapping_key: BTreeMap<String, u64>,
}

impl Summary {
    /// All key pairs counted.
    pub fn total(&self) -> u64 {
        self.by_state.values().sum()
    }

    /// Counts `r` in.
    pub(crate) fn add(&mut self, r: &KeyPairRecord) {
        *self.by_state.entry(r.state).or_default() += 1;
        *self
            .by_wrapping_key
            .entry(r.wrapping_key_arn.clone())
            .or_default() += 1;
    }

    /// Counts `r` out.
    pub(crate) fn remove(&mut self, r: &KeyPairRecord) {
        fn dec<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
        dec(&mut self.by_state, r.state);
        dec(&mut self.by_wrapping_key, r.wrapping_key_arn.clone());
    }

    /// Counted from scratch (a store migrating to kept counts, tests).
    pub(crate) fn of<'a>(records: impl IntoIterator<Item = &'a KeyPairRecord>) -> Summary {
        let mut s = Summary::default();
        for r in records {
            s.add(r);
        }
        s
    }
}
