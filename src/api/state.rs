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

/// What the handlers of one organization reach: one reference count per
/// request, whatever the number of services.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Services>);

/// The router's state: the organizations and what the daemon has once.
#[derive(Clone)]
pub(crate) struct Hub(Arc<Daemonwide>);

impl Hub {
    pub(crate) fn new(d: Daemonwide) -> Hub {
        Hub(Arc::new(d))
    }
}

impl std::ops::Deref for Hub {
    type Target = Daemonwide;
    fn deref(&self) -> &Daemonwide {
        &self.0
    }
}

/// What the daemon has once, whatever the number of organizations.
pub(crate) struct Daemonwide {
    /// Every organization and what the API made of it.
    pub(crate) orgs: Arc<crate::orgs::Orgs<AppState>>,
    /// Reloads the configuration file.
    pub(crate) reloader: Arc<Reloader>,
    /// The audit trail (records about no organization in particular).
    pub(crate) audit: Arc<Audit>,
    /// Per-uid limiter of recorded refusals.
    pub(crate) refusals: Arc<super::refusals::Refusals>,
    /// The KMS request budget every organization shares (status).
    pub(crate) budget: Arc<crate::provider::budget::Budget>,
    /// The last daemon summary (recomputed when an organization's state
    /// changed, or after a second for the evidence beside it).
    pub(crate) summary: std::sync::Mutex<Option<CachedSummary>>,
}

/// A daemon summary and what it was computed from.
pub(crate) struct CachedSummary {
    pub(crate) generation: u64,
    pub(crate) at: std::time::Instant,
    pub(crate) value: super::views::DaemonSummary,
}

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

/// The services of one organization.
pub(crate) struct Services {
    /// The organization as stored.
    pub(crate) org: Arc<crate::domain::OrgRecord>,
    /// The store (reads only, here).
    pub(crate) store: Arc<dyn KeyStore>,
    /// Engine state: the active key and health.
    pub(crate) engine: SharedState,
    /// To ask for rotations.
    pub(crate) rotation: RotationHandle,
    /// Configuration and provider in force (swapped on reload).
    pub(crate) current: SharedCurrent,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The decryptability canary.
    pub(crate) canary: Arc<Canary>,
    /// Rewrap, one at a time.
    pub(crate) rewrapper: Arc<Rewrapper>,
    /// The audit trail; its records name the organization.
    pub(crate) audit: Arc<Audit>,
    /// Content-key unwrap for players.
    pub(crate) unwrapper: Arc<Unwrapper>,
    /// Stored records that do not decode, as the start-up scan found them.
    pub(crate) corrupt: CorruptRecords,
    /// The JWK Set as last made, for the active key pair it was made for.
    pub(crate) jwks: JwksCache,
    /// The last status answer, serialized.
    pub(crate) status: JsonMemo<super::views::StatusView>,
    /// The last public-key answer, serialized, and the key pair (id,
    /// activation) it was made for.
    pub(crate) public_key: JsonMemo<(String, Option<crate::time::Timestamp>)>,
    /// The last answer for the newest history page (what `kekctl history`
    /// and dashboards ask for), with the store's change count, the page
    /// size and the corrupt records it was made with.
    pub(crate) newest_page: JsonMemo<NewestPage>,
}

/// What the newest history page's JSON was made from: while the store has
/// not changed ([`crate::store::KeyStore::changes`]), the same size of page
/// with the same corrupt records is the same answer.
pub(crate) type NewestPage = (u64, usize, Vec<super::views::CorruptRecord>);

/// The last answer of a read path as JSON, and what it was made from.
/// Answers are built fresh from memory for every request, but turning them
/// into JSON costs more than building them (string escaping, base64,
/// timestamp formatting); while `key` — the view itself, or what it is made
/// of — equals the last one, the bytes are reused. Nothing can be stale:
/// the comparison is with what this request just read.
///
/// Boxed: most of 10,000 organizations are never asked, and an empty
/// memo should cost a pointer, not the size of a status view.
pub(crate) struct JsonMemo<K>(std::sync::Mutex<Option<Box<(K, axum::body::Bytes)>>>);

impl<K> Default for JsonMemo<K> {
    fn default() -> Self {
        JsonMemo(std::sync::Mutex::new(None))
    }
}

impl<K: PartialEq> JsonMemo<K> {
    /// The JSON for `key`: the last bytes if `key` equals the last key,
    /// else `make(&key)`, kept for the next request.
    pub(crate) fn json(&self, key: K, make: impl FnOnce(&K) -> Vec<u8>) -> axum::body::Bytes {
        if let Some(body) = self.get(&key) {
            return body;
        }
        let body = axum::body::Bytes::from(make(&key));
        self.keep(key, body.clone());
        body
    }

    /// The last bytes, if they were made for `key`.
    pub(crate) fn get(&self, key: &K) -> Option<axum::body::Bytes> {
        match crate::sync::lock(&self.0).as_deref() {
            Some((k, body)) if k == key => Some(body.clone()),
            _ => None,
        }
    }

    /// Keeps `body`, made for `key`, for the next request.
    pub(crate) fn keep(&self, key: K, body: axum::body::Bytes) {
        *crate::sync::lock(&self.0) = Some(Box::new((key, body)));
    }
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
        match &*crate::sync::lock(&self.0) {
            Some((id, set)) if id == active => Some(set.clone()),
            _ => None,
        }
    }

    pub(crate) fn set(&self, active: &str, set: Arc<CachedJwks>) {
        *crate::sync::lock(&self.0) = Some((active.to_string(), set));
    }
}

/// The records that do not decode, found by a scan of the whole store in
/// the background after start (status and history report them without
/// reading the store).
#[derive(Clone, Default)]
pub(crate) struct CorruptRecords(Arc<std::sync::RwLock<Vec<super::views::CorruptRecord>>>);

impl CorruptRecords {
    pub(crate) fn get(&self) -> Vec<super::views::CorruptRecord> {
        crate::sync::read(&self.0).clone()
    }

    pub(crate) fn set(&self, found: Vec<super::views::CorruptRecord>) {
        *crate::sync::write(&self.0) = found;
    }
}

#[cfg(test)]
mod tests {
    use super::JsonMemo;

    /// The memo reuses bytes only for an equal key, and makes them again
    /// for any other — including a key it had before the last one.
    #[test]
    fn a_json_memo_never_answers_for_another_key() {
        let memo = JsonMemo::<u32>::default();
        let made = std::cell::Cell::new(0);
        let make = |k: &u32| {
            made.set(made.get() + 1);
            format!("{{\"k\":{k}}}").into_bytes()
        };
        assert_eq!(&memo.json(1, make)[..], b"{\"k\":1}");
        assert_eq!(&memo.json(1, make)[..], b"{\"k\":1}");
        assert_eq!(made.get(), 1, "an equal key reuses the bytes");
        assert_eq!(&memo.json(2, make)[..], b"{\"k\":2}");
        assert_eq!(&memo.json(1, make)[..], b"{\"k\":1}");
        assert_eq!(made.get(), 3);
    }
}
