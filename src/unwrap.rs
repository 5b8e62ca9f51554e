//! Unwrapping content keys for players (`POST /v1/keypairs/{id}/unwrap`,
//! role `decrypt`).
//!
//! The key pair's private key is decrypted through the provider (KMS) and
//! kept in memory for a bounded time and count (`[unwrap]`), so playing back
//! many recordings does not cost one KMS call each. Evicted and expired keys
//! are dropped, which frees them in aws-lc (it cleanses key material on
//! free); the cache is cleared on shutdown. A wrapped key that does not
//! decrypt gets one opaque error whatever the cause — no padding oracle.

use crate::envelope::{self, EnvelopeError};
use crate::provider::ProviderError;
use crate::rotation::{Current, SharedCurrent};
use crate::store::{KeyStore, StoreError};
use aws_lc_rs::rsa::PrivateDecryptingKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use zeroize::Zeroizing;

/// Why an unwrap failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnwrapError {
    /// No such key pair.
    #[error("no key pair with id {0:?}")]
    NotFound(String),
    /// KMS could not decrypt the private key (unreachable, denied, …).
    #[error(transparent)]
    Provider(ProviderError),
    /// KMS did not answer within the unwrap deadline.
    #[error("KMS did not answer within {0:?}; nothing is cached for this key pair")]
    Deadline(std::time::Duration),
    /// The wrapped content key does not decrypt with this key pair. Opaque.
    #[error("the wrapped content key does not decrypt with this key pair")]
    Failed,
    /// The stored record is unusable.
    #[error("store: {0}")]
    Store(String),
}

struct Cached {
    key: Arc<PrivateDecryptingKey>,
    at: Instant,
}

/// The unwrap service and its private-key cache.
pub struct Unwrapper {
    store: Arc<dyn KeyStore>,
    current: SharedCurrent,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Unwrapper {
    /// A service over the store and the provider in force.
    pub fn new(store: Arc<dyn KeyStore>, current: SharedCurrent) -> Unwrapper {
        Unwrapper {
            store,
            current,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Decrypted private keys cached now.
    pub fn cached(&self) -> usize {
        self.cache.lock().expect("cache lock").len()
    }

    /// Drops every cached private key (shutdown).
    pub fn clear(&self) {
        self.cache.lock().expect("cache lock").clear();
    }

    fn cached_key(&self, id: &str) -> Option<Arc<PrivateDecryptingKey>> {
        let ttl = Current::get(&self.current).settings.unwrap_cache_ttl;
        let mut cache = self.cache.lock().expect("cache lock");
        cache.retain(|_, c| c.at.elapsed() < ttl);
        cache.get(id).map(|c| c.key.clone())
    }

    fn remember(&self, id: &str, key: Arc<PrivateDecryptingKey>) {
        let max = Current::get(&self.current).settings.unwrap_cache_max;
        if max == 0 {
            return;
        }
        let mut cache = self.cache.lock().expect("cache lock");
        while cache.len() >= max {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => cache.remove(&k),
                None => break,
            };
        }
        cache.insert(
            id.to_string(),
            Cached {
                key,
                at: Instant::now(),
            },
        );
    }

    async fn private_key(&self, id: &str) -> Result<Arc<PrivateDecryptingKey>, UnwrapError> {
        if let Some(k) = self.cached_key(id) {
            return Ok(k);
        }
        let store = self.store.clone();
        let owned = id.to_string();
        let record = tokio::task::spawn_blocking(move || store.get(&owned))
            .await
            .map_err(|e| UnwrapError::Store(e.to_string()))?
            .map_err(|e: StoreError| UnwrapError::Store(e.to_string()))?
            .ok_or_else(|| UnwrapError::NotFound(id.to_string()))?;
        let cur = Current::get(&self.current);
        // Never a hang: bounded by the KMS operation timeout, even if the
        // SDK's own timeouts were to misbehave.
        let deadline = cur.settings.kms_timeouts.operation;
        let pkcs8 =
            tokio::time::timeout(deadline, envelope::open(&*cur.provider, &record.envelope))
                .await
                .map_err(|_| UnwrapError::Deadline(deadline))?
                .map_err(|e| match e {
                    EnvelopeError::Provider(p) => UnwrapError::Provider(p),
                    other => UnwrapError::Store(format!("key pair {id}: {other}")),
                })?;
        crate::keypair::verify_matches(&pkcs8, &record.public_key_der)
            .map_err(|e| UnwrapError::Store(format!("key pair {id}: {e}")))?;
        let key =
            Arc::new(PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(|_| UnwrapError::Failed)?);
        drop(pkcs8);
        self.remember(id, key.clone());
        Ok(key)
    }

    /// The 32-byte content key inside `wrapped`, for key pair `id`.
    pub async fn unwrap(
        &self,
        id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
        let key = self.private_key(id).await?;
        crate::recording::unwrap_with_private_key(&key, wrapped).map_err(|_| UnwrapError::Failed)
    }
}
