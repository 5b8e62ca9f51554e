//! Unwrapping content keys for players (`POST /v1/keypairs/{id}/unwrap`,
//! role `decrypt`).
//!
//! The key pair's private key is decrypted through the provider (KMS) and
//! kept in the daemon's one key cache (`key_cache.rs`: bounded in time and
//! count for every organization together, single-flight on misses), so
//! playing back many recordings does not cost one KMS call each; an
//! organization's keys are dropped when it stops. A wrapped key that does not
//! decrypt gets one opaque error whatever the cause — no padding oracle.

use crate::current::SharedCurrent;
use crate::key_cache::KeyCache;
use crate::keypair::PrivateKey;
use crate::proof::{self, ProofError};
use crate::provider::ProviderError;
use crate::store::{KeyStore, StoreError};
use std::sync::Arc;
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

/// The unwrap service of one organization, over the daemon's key cache.
pub(crate) struct Unwrapper {
    store: Arc<dyn KeyStore>,
    current: SharedCurrent,
    /// The organization (its keys' place in the cache).
    org: Arc<str>,
    cache: Arc<KeyCache>,
    /// Where a key problem an unwrap runs into goes (status).
    key_watch: Option<crate::key_watch::KeyWatch>,
}

impl Unwrapper {
    /// A service over the store and the provider in force, with a cache of
    /// its own (tests; the daemon shares one with [`Unwrapper::with_cache`]).
    pub(crate) fn new(store: Arc<dyn KeyStore>, current: SharedCurrent) -> Unwrapper {
        let org = current.settings().organization_id.as_str().into();
        Unwrapper {
            store,
            current,
            org,
            cache: Default::default(),
            key_watch: None,
        }
    }

    /// Caches in the daemon's one cache.
    pub(crate) fn with_cache(mut self, cache: Arc<KeyCache>) -> Unwrapper {
        self.cache = cache;
        self
    }

    /// Reports the key problems unwraps run into to `watch`.
    pub(crate) fn with_key_watch(mut self, watch: crate::key_watch::KeyWatch) -> Unwrapper {
        self.key_watch = Some(watch);
        self
    }

    /// Drops this organization's cached private keys (shutdown).
    pub(crate) fn clear(&self) {
        self.cache.forget(&self.org);
    }

    fn cached_key(&self, id: &str) -> Option<Arc<PrivateKey>> {
        let ttl = self.current.settings().unwrap.ttl;
        self.cache.get(&self.org, id, ttl)
    }

    fn remember(&self, id: &str, key: Arc<PrivateKey>) {
        let max = self.current.settings().unwrap.max;
        self.cache.put(&self.org, id, key, max);
    }

    async fn private_key(&self, id: &str) -> Result<Arc<PrivateKey>, UnwrapError> {
        if let Some(k) = self.cached_key(id) {
            return Ok(k);
        }
        // Single flight: one load per key at a time; who waited finds it
        // cached (or, if the load failed, tries again itself).
        let _loading = self.cache.loading(&self.org, id).await;
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
        let private =
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
        let key = Arc::new(
            PrivateKey::parse(record.algorithm, &private).map_err(|_| UnwrapError::Failed)?,
        );
        drop(private);
        self.remember(id, key.clone());
        Ok(key)
    }

    /// The 32-byte content key inside `wrapped` (an RSA-OAEP ciphertext or
    /// an X-Wing encapsulation, whichever the key pair's type takes), for
    /// key pair `id`.
    pub(crate) async fn unwrap(
        &self,
        id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
        let key = self.private_key(id).await?;
        key.unwrap(wrapped).map_err(|_| UnwrapError::Failed)
    }
}
