//! The daemon's one cache of decrypted private keys behind `unwrap`,
//! shared by every organization: bounded in entries (`[unwrap] cache_max`)
//! and in time (`cache_ttl`) for the whole daemon, not per organization, so
//! 10,000 organizations cannot hold 10,000 times the bound. Misses are
//! single-flight: many players asking for the same cold key pair at once
//! cost one KMS request, not one each (the cold-cache stampede).
//!
//! An evicted or expired key is dropped, which frees it in aws-lc (it
//! cleanses key material on free).

use crate::keypair::PrivateKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which key: its organization and key pair id.
type Key = (Arc<str>, String);

struct Cached {
    key: Arc<PrivateKey>,
    at: Instant,
}

/// See the module doc. Cheap to share (`Arc`).
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<Key, Cached>>,
    /// One lock per key being loaded, so concurrent misses wait for the
    /// first one instead of each asking KMS.
    loading: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyCache {
    /// The cached key, if younger than `ttl`.
    pub(crate) fn get(&self, org: &Arc<str>, id: &str, ttl: Duration) -> Option<Arc<PrivateKey>> {
        let mut keys = crate::sync::lock(&self.keys);
        keys.retain(|_, c| c.at.elapsed() < ttl);
        keys.get(&(org.clone(), id.to_string()))
            .map(|c| c.key.clone())
    }

    /// Keeps `key`, evicting the oldest entries beyond `max` (0: keeps
    /// nothing).
    pub(crate) fn put(&self, org: &Arc<str>, id: &str, key: Arc<PrivateKey>, max: usize) {
        if max == 0 {
            return;
        }
        let mut keys = crate::sync::lock(&self.keys);
        while keys.len() >= max {
            let oldest = keys
                .iter()
                .min_by_key(|(_, c)| c.at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => keys.remove(&k),
                None => break,
            };
        }
        keys.insert(
            (org.clone(), id.to_string()),
            Cached {
                key,
                at: Instant::now(),
            },
        );
    }

    /// Waits for any load of this key in progress and returns the guard
    /// of this one: the holder loads, the others find it cached after.
    pub(crate) async fn loading(&self, org: &Arc<str>, id: &str) -> LoadGuard<'_> {
        let k = (org.clone(), id.to_string());
        let lock = crate::sync::lock(&self.loading)
            .entry(k.clone())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        LoadGuard {
            cache: self,
            key: k,
            _guard: guard,
        }
    }

    /// How many keys are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        crate::sync::lock(&self.keys).len()
    }

    /// Drops every cached key of `org` (its tenant stopped).
    pub(crate) fn forget(&self, org: &str) {
        crate::sync::lock(&self.keys).retain(|(o, _), _| &**o != org);
    }
}

/// Held while one key is loaded; the last one out removes the lock.
pub(crate) struct LoadGuard<'a> {
    cache: &'a KeyCache,
    key: Key,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        let mut loading = crate::sync::lock(&self.cache.loading);
        // Two references: the map's and our guard's mutex; nobody waits.
        if loading
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            loading.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<PrivateKey> {
        let g =
            crate::keypair::generate(crate::domain::KeyType::Rsa(crate::domain::KeyBits::Rsa2048))
                .unwrap();
        Arc::new(PrivateKey::parse(g.algorithm, &g.private_key).unwrap())
    }

    /// The bound is the daemon's: a second organization's key evicts the
    /// oldest of any organization, and no organization sees another's.
    #[test]
    fn one_bound_for_every_organization() {
        let c = KeyCache::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let k = key();
        let ttl = Duration::from_secs(60);
        c.put(&a, "kek-1", k.clone(), 2);
        c.put(&a, "kek-2", k.clone(), 2);
        c.put(&b, "kek-1", k.clone(), 2);
        assert_eq!(c.len(), 2);
        assert!(c.get(&a, "kek-1", ttl).is_none(), "the oldest went");
        assert!(c.get(&a, "kek-2", ttl).is_some());
        assert!(c.get(&b, "kek-1", ttl).is_some());
        assert!(c.get(&b, "kek-2", ttl).is_none(), "a's key is not b's");
        c.forget("b");
        assert_eq!(c.len(), 1);
        c.put(&a, "kek-3", k, 0);
        assert!(c.get(&a, "kek-3", ttl).is_none(), "0 keeps nothing");
    }

    /// A second load of the same key waits for the first; the lock goes
    /// away with the last holder.
    #[tokio::test]
    async fn loads_of_one_key_take_turns() {
        let c = Arc::new(KeyCache::default());
        let a: Arc<str> = "a".into();
        let first = c.loading(&a, "kek-1").await;
        let (c2, a2) = (c.clone(), a.clone());
        let second = tokio::spawn(async move {
            let _g = c2.loading(&a2, "kek-1").await;
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "waits for the first load");
        let _other = c.loading(&a, "kek-2").await; // another key does not
        drop(first);
        second.await.unwrap();
        drop(_other);
        assert!(crate::sync::lock(&c.loading).is_empty());
    }
}
