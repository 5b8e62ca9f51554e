//! Unwrapping content keys for players (`POST /v1/keypairs/{id}/unwrap`,
//! role `decrypt`).
//!
//! The key pair's private key is decrypted through the provider (KMS) and
//! kept in memory for a bounded time and count (`[unwrap]`), so playing back
//! many recordings does not cost one KMS call each. Evicted and expired keys
//! are dropped, which frees them in aws-lc (it cleanses key material on
//! free); the cache is cleared on shutdown. A wrapped key that does not
//! decrypt gets one opaque error whatever the cause — no padding oracle.

use crate::current::SharedCurrent;
use crate::proof::{self, ProofError};
use crate::provider::ProviderError;
use crate::store::{KeyStore, StoreError};
use aws_lc_rs::rsa::PrivateDecryptingKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use zeroize::Zeroizing;

/// Why an unwrap failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum UnwrapError {
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
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The stored key pair does not decrypt or match (corrupt envelope).
    #[error(transparent)]
    Proof(ProofError),
}

struct Cached {
    key: Arc<PrivateDecryptingKey>,
    at: Instant,
}

/// The unwrap service and its private-key cache.
pub(crate) struct Unwrapper {
    store: Arc<dyn KeyStore>,
    current: SharedCurrent,
    cache: Mutex<HashMap<String, Cached>>,
    /// Where a key problem an unwrap runs into goes (status).
    key_watch: Option<crate::key_watch::KeyWatch>,
}

impl Unwrapper {
    /// A service over the store and the provider in force.
    pub(crate) fn new(store: Arc<dyn KeyStore>, current: SharedCurrent) -> Unwrapper {
        Unwrapper {
            store,
            current,
            cache: Mutex::new(HashMap::new()),
            key_watch: None,
        }
    }

    /// Reports the key problems unwraps run into to `watch`.
    pub(crate) fn with_key_watch(mut self, watch: crate::key_watch::KeyWatch) -> Unwrapper {
        self.key_watch = Some(watch);
        self
    }

    /// Drops every cached private key (shutdown).
    pub(crate) fn clear(&self) {
        crate::sync::lock(&self.cache).clear();
    }

    fn cached_key(&self, id: &str) -> Option<Arc<PrivateDecryptingKey>> {
        let ttl = self.current.settings().unwrap.ttl;
        let mut cache = crate::sync::lock(&self.cache);
        cache.retain(|_, c| c.at.elapsed() < ttl);
        cache.get(id).map(|c| c.key.clone())
    }

    fn remember(&self, id: &str, key: Arc<PrivateDecryptingKey>) {
        let max = self.current.settings().unwrap.max;
        if max == 0 {
            return;
        }
        let mut cache = crate::sync::lock(&self.cache);
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
        let record = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| UnwrapError::NotFound(id.to_string()))?;
        let cur = self.current.get();
        // Never a hang: bounded by one KMS operation timeout per wrapping
        // (the primary, then each backup it may fall back to), even if the
        // SDK's own timeouts were to misbehave.
        let tries = 1 + u32::try_from(record.envelope.backups.len()).unwrap_or(u32::MAX);
        let deadline = cur.settings.kms_timeouts.operation.saturating_mul(tries);
        let pkcs8 =
            tokio::time::timeout(deadline, proof::open_private_key(&*cur.provider, &record))
                .await
                .map_err(|_| UnwrapError::Deadline(deadline))?
                .map_err(|e| match e {
                    ProofError::Provider(p) => {
                        if let Some(w) = &self.key_watch {
                            w.saw_unwrap_failure(&record.wrapping_key_arn, &p);
                        }
                        UnwrapError::Provider(p)
                    }
                    other => UnwrapError::Proof(other),
                })?;
        let key =
            Arc::new(PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(|_| UnwrapError::Failed)?);
        drop(pkcs8);
        self.remember(id, key.clone());
        Ok(key)
    }

    /// The 32-byte content key inside `wrapped`, for key pair `id`.
    pub(crate) async fn unwrap(
        &self,
        id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
        let key = self.private_key(id).await?;
        crate::recording::unwrap_with_private_key(&key, wrapped).map_err(|_| UnwrapError::Failed)
    }
}
