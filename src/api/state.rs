//! What every handler can reach: the services the daemon wired together.

use crate::audit::Audit;
use crate::canary::Canary;
use crate::current::SharedCurrent;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::rewrap::Rewrapper;
use crate::rotation::{RotationHandle, SharedState};
use crate::store::KeyStore;
use crate::unwrap::Unwrapper;
use std::sync::Arc;

/// The handlers' shared state: one reference count per request, whatever
/// the number of services (axum clones the state for every extractor).
#[derive(Clone)]
pub(crate) struct AppState(Arc<Services>);

impl AppState {
    pub(crate) fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services the daemon wired together.
pub(crate) struct Services {
    /// The store (reads only, here).
    pub(crate) store: Arc<dyn KeyStore>,
    /// Engine state: the active key and health.
    pub(crate) engine: SharedState,
    /// To ask for rotations.
    pub(crate) rotation: RotationHandle,
    /// Configuration and provider in force (swapped on reload).
    pub(crate) current: SharedCurrent,
    /// Reloads the configuration.
    pub(crate) reloader: Arc<Reloader>,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The decryptability canary.
    pub(crate) canary: Arc<Canary>,
    /// Rewrap, one at a time.
    pub(crate) rewrapper: Arc<Rewrapper>,
    /// The audit trail.
    pub(crate) audit: Arc<Audit>,
    /// Content-key unwrap for players.
    pub(crate) unwrapper: Arc<Unwrapper>,
    /// Per-uid limiter of recorded refusals.
    pub(crate) refusals: Arc<super::refusals::Refusals>,
    /// Stored records that do not decode, as the start-up scan found them.
    pub(crate) corrupt: CorruptRecords,
    /// The JWK Set as last made, for the active key pair it was made for.
    pub(crate) jwks: JwksCache,
}

/// The JWK Set's body and strong ETag, made once per active key pair.
#[derive(Clone, Default)]
pub(crate) struct JwksCache(Arc<std::sync::Mutex<Option<MadeFor>>>);

/// A made set and the active key pair it was made for.
type MadeFor = (String, Arc<CachedJwks>);

/// A made JWK Set.
pub(crate) struct CachedJwks {
    pub(crate) body: axum::body::Bytes,
    pub(crate) etag: String,
}

impl JwksCache {
    /// The set made for the active key pair `active`, if there is one.
    pub(crate) fn get(&self, active: &str) -> Option<Arc<CachedJwks>> {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((id, set)) if id == active => Some(set.clone()),
            _ => None,
        }
    }

    pub(crate) fn set(&self, active: &str, set: Arc<CachedJwks>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((active.to_string(), set));
    }
}

/// The records that do not decode, found by a scan of the whole store in
/// the background after start (status and history report them without
/// reading the store).
#[derive(Clone, Default)]
pub(crate) struct CorruptRecords(Arc<std::sync::RwLock<Vec<super::views::CorruptRecord>>>);

impl CorruptRecords {
    pub(crate) fn get(&self) -> Vec<super::views::CorruptRecord> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, found: Vec<super::views::CorruptRecord>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = found;
    }
}
