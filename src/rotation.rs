//! Rotation: the state machine that makes a new key pair active (invariant
//! I1), and the engine task that runs it on schedule, on Change Key Now, and
//! again after a failure.
//!
//! A rotation is: generate → seal (KMS `GenerateDataKey`) → store as
//! `pending` (durable commit) → decrypt back through the provider and prove
//! the private key matches the public key → in one transaction activate it
//! and retire the previous one. Only then is the new public key visible to
//! anyone, because the API reads the active key from [`EngineState`], which
//! is updated after that commit.
//!
//! The engine sleeps until the next due instant *or* a request (mini-redis'
//! background-task pattern). Requests that arrive while a rotation runs are
//! answered with that rotation's outcome (coalesced), so a signal storm
//! yields a bounded number of rotations.

use crate::config::{RetryPolicy, Settings};
use crate::envelope::{self, EnvelopeError};
use crate::keypair::{self, KeyPairError};
use crate::provider::{FailureKind, KeyProvider, ProviderError};
use crate::store::{KeyPairRecord, KeyState, KeyStore, Reason, Schedule, StoreError};
use crate::time::{self, Timestamp};
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Why a rotation failed. Cloned to every coalesced waiter.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// RSA generation failed.
    #[error("key generation failed: {0}")]
    Generate(KeyPairError),
    /// KMS (or the local provider) failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The stored envelope did not decrypt to the generated private key.
    #[error("verification of key pair {id} failed: {problem}")]
    Verify {
        /// The key pair.
        id: String,
        /// What did not match.
        problem: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    /// The engine is gone (shutting down).
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        RotationError::Store(Arc::new(e))
    }
}

impl RotationError {
    /// The provider failure behind this error, if any.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            RotationError::Provider(p) => Some(p),
            _ => None,
        }
    }
}

/// The last failure, as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    /// When it happened.
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
    /// What was being attempted.
    pub reason: Reason,
    /// The KMS operation, when KMS failed.
    pub operation: Option<&'static str>,
    /// Classified cause: `unreachable`, `timeout`, `access_denied`, …, or
    /// `verification`, `store`, `generation`.
    pub kind: String,
    /// KMS error code.
    pub code: Option<String>,
    /// Human message.
    pub message: String,
    /// AWS request id.
    pub request_id: Option<String>,
}

impl LastError {
    fn new(reason: Reason, err: &RotationError) -> LastError {
        let (operation, kind, code, request_id) = match err {
            RotationError::Provider(p) => (
                Some(p.operation),
                p.kind.to_string(),
                p.code.clone(),
                p.request_id.clone(),
            ),
            RotationError::Verify { .. } => (None, "verification".into(), None, None),
            RotationError::Store(_) => (None, "store".into(), None, None),
            RotationError::Generate(_) => (None, "generation".into(), None, None),
            RotationError::ShuttingDown => (None, "shutting_down".into(), None, None),
        };
        let message = match err {
            RotationError::Provider(p) => p.message.clone(),
            other => other.to_string(),
        };
        LastError {
            at: time::now(),
            reason,
            operation,
            kind,
            code,
            message,
            request_id,
        }
    }
}

/// Rotation health, as status shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Since when rotations have been failing; `None` = healthy.
    #[serde(with = "time::rfc3339::option")]
    pub degraded_since: Option<Timestamp>,
    /// The most recent failure (kept after recovery, for the record).
    pub last_error: Option<LastError>,
    /// Failed attempts in a row.
    pub attempts: u32,
    /// When the failed rotation is tried again.
    #[serde(with = "time::rfc3339::option")]
    pub next_retry_at: Option<Timestamp>,
    /// A rotation is running now.
    pub rotating: bool,
    /// The configured KMS key failed a check (preflight); cleared when a
    /// rotation proves the key works again.
    pub kms_key_problem: Option<String>,
}

/// What the API reads without touching KMS or the store's write path.
#[derive(Debug, Clone, Default)]
pub struct EngineState {
    /// The active key pair; set only after its activation committed (I1).
    pub active: Option<Arc<KeyPairRecord>>,
    /// The persisted schedule.
    pub schedule: Schedule,
    /// Rotation health.
    pub health: Health,
}

/// Shared, cheaply readable engine state.
pub type SharedState = Arc<RwLock<EngineState>>;

/// The outcome every waiter of one rotation receives.
pub type Outcome = Result<Arc<KeyPairRecord>, RotationError>;

struct Request {
    reason: Reason,
    reply: Option<oneshot::Sender<Outcome>>,
}

/// Asks the engine to rotate. Cheap to clone.
#[derive(Clone)]
pub struct RotationHandle {
    tx: mpsc::Sender<Request>,
    reschedule: Arc<tokio::sync::Notify>,
}

impl RotationHandle {
    /// Fire and forget (signals). Returns false if a request is already
    /// queued and this one was folded into it, or the engine is gone.
    pub fn request(&self, reason: Reason) -> bool {
        self.tx
            .try_send(Request {
                reason,
                reply: None,
            })
            .is_ok()
    }

    /// Tells the engine the schedule changed (reload), so it re-reads the
    /// next due instant instead of sleeping until the old one.
    pub fn reschedule(&self) {
        self.reschedule.notify_one();
    }

    /// Rotates and waits for the outcome (the API's `POST /v1/rotate`).
    pub async fn rotate(&self, reason: Reason) -> Outcome {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                reason,
                reply: Some(reply),
            })
            .await
            .map_err(|_| RotationError::ShuttingDown)?;
        rx.await.unwrap_or(Err(RotationError::ShuttingDown))
    }
}

/// The configuration in force and the provider built from it. Swapped as a
/// whole on reload, so a rotation always sees one consistent pair.
pub struct Current {
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// The key provider for those settings.
    pub provider: Arc<dyn KeyProvider>,
}

/// Shared, swappable [`Current`].
pub type SharedCurrent = Arc<RwLock<Arc<Current>>>;

impl Current {
    /// Wraps a first configuration for sharing.
    pub fn shared(settings: Arc<Settings>, provider: Arc<dyn KeyProvider>) -> SharedCurrent {
        Arc::new(RwLock::new(Arc::new(Current { settings, provider })))
    }

    /// A snapshot of the configuration in force.
    pub fn get(shared: &SharedCurrent) -> Arc<Current> {
        shared.read().expect("config lock").clone()
    }
}

/// Performs single rotations. Holds no state between them except what the
/// store holds.
pub struct Rotator {
    /// The store.
    pub store: Arc<dyn KeyStore>,
    /// Configuration and provider in force.
    pub current: SharedCurrent,
    /// Where rotations are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where rotations and outages are recorded (none in unit tests).
    pub audit: Option<Arc<crate::audit::Audit>>,
}

impl Rotator {
    /// One rotation, enforcing I1. On failure after the pending record was
    /// stored, that record is retired unused (it was never served).
    pub async fn rotate(&self, reason: Reason) -> Result<KeyPairRecord, RotationError> {
        let cur = Current::get(&self.current);
        let (settings, provider) = (&cur.settings, &*cur.provider);
        let bits = settings.key_bits;
        let generated = tokio::task::spawn_blocking(move || keypair::generate(bits))
            .await
            .map_err(|_| RotationError::Generate(KeyPairError::Generation))?
            .map_err(RotationError::Generate)?;
        let id = generated.id.clone();
        let context = envelope::context_for(&settings.context_key, &settings.organization_id, &id);
        let env = envelope::seal(provider, context, &id, &generated.private_pkcs8).await?;
        let created_at = time::now();
        let record = KeyPairRecord {
            id: id.clone(),
            state: KeyState::Pending,
            key_bits: bits.bits(),
            reason,
            created_at,
            activated_at: None,
            retired_at: None,
            wrapping_key_arn: env.wrapping_key_arn.clone(),
            public_key_der: generated.public_key_der.clone(),
            envelope: env,
        };
        drop(generated); // the plaintext private key is zeroized here
        self.blocking({
            let record = record.clone();
            move |s| s.insert_pending(&record)
        })
        .await?;

        if let Err(e) = self.verify(&record).await {
            let _ = self
                .blocking({
                    let id = id.clone();
                    move |s| s.abandon(&id, time::now())
                })
                .await;
            return Err(e);
        }

        let now = time::now();
        let schedule = Schedule {
            last_rotation_at: Some(now),
            next_rotation_at: settings.next_rotation_after(now),
        };
        let active = self
            .blocking(move |s| s.activate(&id, now, &schedule))
            .await?;
        Ok(active)
    }

    /// Every decodable stored record, newest first (corrupt ones are
    /// reported elsewhere and skipped here).
    pub async fn records(&self) -> Result<Vec<KeyPairRecord>, String> {
        let store = self.store.clone();
        let list = tokio::task::spawn_blocking(move || store.list())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("store: {e}"))?;
        Ok(list
            .into_iter()
            .filter_map(|l| match l {
                crate::store::Listed::Ok(r) => Some(*r),
                crate::store::Listed::Corrupt { .. } => None,
            })
            .collect())
    }

    /// Deletes retired key pairs retired longer ago than `retention` — the
    /// recordings they protect are past the retention period. The active
    /// key pair and anything retired more recently are never touched;
    /// without `retention` nothing is pruned. Each deletion is audited
    /// first (and skipped if it cannot be). Returns the pruned ids.
    pub async fn prune(&self) -> Vec<String> {
        let Some(retention) = Current::get(&self.current).settings.retention else {
            return Vec::new();
        };
        let Ok(limit) = chrono::Duration::from_std(retention) else {
            return Vec::new();
        };
        let now = time::now();
        let mut pruned = Vec::new();
        for r in self.records().await.unwrap_or_default() {
            let expired =
                r.state == KeyState::Retired && r.retired_at.is_some_and(|t| t + limit < now);
            if !expired {
                continue;
            }
            if let Some(audit) = &self.audit {
                let event = serde_json::json!({"type": "prune", "key_pair_id": r.id, "retired_at": r.retired_at.map(|t| time::format(&t))});
                if let Err(e) = audit.record_async(event).await {
                    tracing::error!(error = %e, key_pair_id = %r.id, "not pruning: the deletion cannot be audited");
                    continue;
                }
            }
            let store = self.store.clone();
            let id = r.id.clone();
            match tokio::task::spawn_blocking(move || store.delete_retired(&id)).await {
                Ok(Ok(())) => {
                    tracing::info!(key_pair_id = %r.id, "pruned: retired longer ago than the retention period");
                    pruned.push(r.id);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "prune skipped"),
                Err(e) => tracing::warn!(error = %e, "prune skipped"),
            }
        }
        pruned
    }

    /// Decrypts a stored record's private key through the provider and
    /// proves it matches the record's public key.
    pub async fn verify(&self, record: &KeyPairRecord) -> Result<(), RotationError> {
        let provider = Current::get(&self.current).provider.clone();
        let private = envelope::open(&*provider, &record.envelope)
            .await
            .map_err(|e| match e {
                EnvelopeError::Provider(p) => RotationError::Provider(p),
                other => RotationError::Verify {
                    id: record.id.clone(),
                    problem: other.to_string(),
                },
            })?;
        keypair::verify_matches(&private, &record.public_key_der).map_err(|e| {
            RotationError::Verify {
                id: record.id.clone(),
                problem: e.to_string(),
            }
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn KeyStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RotationError> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|_| RotationError::ShuttingDown)??)
    }
}

/// Capped exponential backoff with full jitter: a uniformly random delay in
/// `[0, min(max, initial·2^(attempt-1))]`, floored at 100 ms so a retry
/// storm cannot form.
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let cap = policy
        .initial_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)))
        .min(policy.max_delay);
    let r = u64::from_le_bytes(crate::aead::random::<8>());
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(if millis == 0 { 0 } else { r % (millis + 1) })
        .max(Duration::from_millis(100))
}

/// The background task that owns rotation.
pub struct Engine {
    rotator: Rotator,
    state: SharedState,
    rx: mpsc::Receiver<Request>,
    started_at: Timestamp,
    activated: watch::Sender<Option<String>>,
    reschedule: Arc<tokio::sync::Notify>,
}

impl Engine {
    /// Creates the engine and the handle that feeds it.
    pub fn new(rotator: Rotator, state: SharedState) -> (Engine, RotationHandle) {
        // Requests queue here while a rotation runs and are all answered by
        // the next one (or the running one). Signals use try_send: when the
        // queue is full, the signal is already covered by a queued request.
        let (tx, rx) = mpsc::channel(64);
        let active_id = state
            .read()
            .expect("state lock")
            .active
            .as_ref()
            .map(|a| a.id.clone());
        let reschedule = Arc::new(tokio::sync::Notify::new());
        (
            Engine {
                reschedule: reschedule.clone(),
                activated: watch::Sender::new(active_id),
                rotator,
                state,
                rx,
                started_at: time::now(),
            },
            RotationHandle { tx, reschedule },
        )
    }

    /// Follows the active key pair id (systemd readiness and status).
    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.activated.subscribe()
    }

    /// Runs until `shutdown` turns true. A rotation in flight is finished
    /// first; shutdown is only looked at between rotations.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut retry: Option<(Reason, tokio::time::Instant)> = None;
        let has_active = self.state.read().expect("state lock").active.is_some();
        let mut initial = (!has_active).then_some(Reason::Initial);
        self.rotator.prune().await;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let (reason, mut waiters) = if let Some(r) = initial.take() {
                (r, Vec::new())
            } else {
                let (wake, wake_reason) = self.next_wake(&retry);
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => continue,
                    _ = self.reschedule.notified() => continue,
                    req = self.rx.recv() => match req {
                        None => break,
                        Some(req) => {
                            let mut reqs = vec![req];
                            while let Ok(r) = self.rx.try_recv() {
                                reqs.push(r);
                            }
                            // A retry in progress keeps its own reason only
                            // if nobody asked for something more specific.
                            let reason = reqs[0].reason;
                            (reason, reqs.into_iter().filter_map(|r| r.reply).collect())
                        }
                    },
                    _ = sleep_until_opt(wake) => (wake_reason, Vec::new()),
                }
            };

            self.state.write().expect("state lock").health.rotating = true;
            tracing::info!(%reason, "rotation started");
            let outcome: Outcome = self.rotator.rotate(reason).await.map(Arc::new);
            if outcome.is_ok() {
                self.rotator.prune().await;
            }
            // Coalesce: whoever asked while it ran gets this outcome.
            while let Ok(r) = self.rx.try_recv() {
                waiters.extend(r.reply);
            }
            self.record(reason, &outcome, &mut retry);
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
        }
        tracing::info!("rotation engine stopped");
    }

    fn next_wake(
        &self,
        retry: &Option<(Reason, tokio::time::Instant)>,
    ) -> (Option<tokio::time::Instant>, Reason) {
        if let Some((reason, at)) = retry {
            // A failed rotation being retried covers anything due meanwhile:
            // the rotation due during an outage happens once.
            return (Some(*at), *reason);
        }
        let next = self
            .state
            .read()
            .expect("state lock")
            .schedule
            .next_rotation_at;
        match next {
            None => (None, Reason::Scheduled),
            Some(due) => {
                let reason = if due < self.started_at {
                    Reason::CatchUp
                } else {
                    Reason::Scheduled
                };
                let wait = (due - time::now()).to_std().unwrap_or(Duration::ZERO);
                (Some(tokio::time::Instant::now() + wait), reason)
            }
        }
    }

    fn record(
        &self,
        reason: Reason,
        outcome: &Outcome,
        retry: &mut Option<(Reason, tokio::time::Instant)>,
    ) {
        self.rotator.metrics.rotation(
            &reason.to_string(),
            if outcome.is_ok() {
                "success"
            } else {
                "failure"
            },
        );
        let mut events = Vec::new();
        let mut st = self.state.write().expect("state lock");
        st.health.rotating = false;
        let old_id = st.active.as_ref().map(|a| a.id.clone());
        events.push(serde_json::json!({
            "type": "rotation",
            "reason": reason,
            "outcome": if outcome.is_ok() { "success" } else { "failure" },
            "old_key_pair_id": old_id,
            "new_key_pair_id": outcome.as_ref().ok().map(|r| r.id.clone()),
            "error": outcome.as_ref().err().map(|e| e.to_string()),
        }));
        match outcome {
            Ok(rec) => {
                tracing::info!(%reason, key_pair_id = %rec.id, wrapping_key_arn = %rec.wrapping_key_arn, "rotation complete: new key pair active");
                st.schedule = Schedule {
                    last_rotation_at: rec.activated_at,
                    next_rotation_at: Current::get(&self.rotator.current)
                        .settings
                        .next_rotation_after(rec.activated_at.unwrap_or_else(time::now)),
                };
                st.active = Some(rec.clone());
                self.activated.send_replace(Some(rec.id.clone()));
                if let Some(since) = st.health.degraded_since.take() {
                    tracing::info!(since = %time::format(&since), "rotation recovered; state ok");
                    events.push(serde_json::json!({
                        "type": "outage_ended",
                        "since": time::format(&since),
                        "duration_ms": (time::now() - since).num_milliseconds(),
                        "cause": st.health.last_error.as_ref().map(|e| e.kind.clone()),
                    }));
                }
                st.health.attempts = 0;
                st.health.next_retry_at = None;
                st.health.kms_key_problem = None;
                *retry = None;
            }
            Err(e) => {
                st.health.attempts += 1;
                let policy = Current::get(&self.rotator.current).settings.retry;
                let delay = backoff(&policy, st.health.attempts);
                let last = LastError::new(reason, e);
                if st.health.degraded_since.is_none() {
                    events.push(serde_json::json!({
                        "type": "outage_started",
                        "cause": last.kind,
                        "operation": last.operation,
                        "code": last.code,
                        "message": last.message,
                        "request_id": last.request_id,
                    }));
                }
                st.health.degraded_since.get_or_insert(last.at);
                st.health.next_retry_at =
                    chrono::Duration::from_std(delay).ok().map(|d| last.at + d);
                tracing::warn!(
                    %reason,
                    error = %e,
                    attempt = st.health.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    "rotation failed; the active key pair stays active"
                );
                st.health.last_error = Some(last);
                *retry = Some((reason, tokio::time::Instant::now() + delay));
            }
        }
        drop(st);
        if let Some(audit) = &self.rotator.audit {
            for e in events {
                if let Err(err) = audit.record(e) {
                    tracing::error!(error = %err, "cannot write the audit record of a rotation");
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether a provider failure means "KMS is not reachable right now" (the
/// API answers `kms_unavailable`).
pub fn is_unavailable(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::Unreachable
            | FailureKind::Timeout
            | FailureKind::Throttled
            | FailureKind::ServiceUnavailable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::LocalProvider;
    use crate::store::RedbStore;

    fn rotator(dir: &std::path::Path) -> Rotator {
        let mut s = Settings::dev(dir);
        s.key_bits = crate::config::KeyBits::Rsa2048;
        Rotator {
            store: Arc::new(RedbStore::open(&dir.join("s.redb")).unwrap()),
            current: Current::shared(
                Arc::new(s),
                Arc::new(LocalProvider::open_or_create(&dir.join("root.key")).unwrap()),
            ),
            metrics: Default::default(),
            audit: None,
        }
    }

    #[tokio::test]
    async fn rotation_activates_only_after_verification() {
        let dir = tempfile::tempdir().unwrap();
        let r = rotator(dir.path());
        let a = r.rotate(Reason::Initial).await.unwrap();
        assert_eq!(a.state, KeyState::Active);
        let b = r.rotate(Reason::ChangeKeyNow).await.unwrap();
        assert_eq!(r.store.active().unwrap().unwrap().id, b.id);
        assert_eq!(
            r.store.get(&a.id).unwrap().unwrap().state,
            KeyState::Retired
        );
        r.verify(&r.store.get(&a.id).unwrap().unwrap())
            .await
            .unwrap();
        assert!(r.store.schedule().unwrap().next_rotation_at.is_some());
    }

    #[tokio::test]
    async fn a_key_that_does_not_verify_is_never_activated() {
        // The provider is swapped for another root key between seal and
        // verify: the stored envelope cannot be decrypted, so I1 forbids
        // activation.
        let dir = tempfile::tempdir().unwrap();
        let r = rotator(dir.path());
        let first = r.rotate(Reason::Initial).await.unwrap();
        let other = tempfile::tempdir().unwrap();
        let broken = Rotator {
            store: r.store.clone(),
            current: Current::shared(
                Current::get(&r.current).settings.clone(),
                Arc::new(SealOnly {
                    seal: LocalProvider::open_or_create(&dir.path().join("root.key")).unwrap(),
                    open: LocalProvider::open_or_create(&other.path().join("root.key")).unwrap(),
                }),
            ),
            metrics: Default::default(),
            audit: None,
        };
        assert!(broken.rotate(Reason::ChangeKeyNow).await.is_err());
        assert_eq!(
            r.store.active().unwrap().unwrap().id,
            first.id,
            "active key unchanged"
        );
        let states: Vec<KeyState> = r
            .store
            .list()
            .unwrap()
            .into_iter()
            .filter_map(|l| match l {
                crate::store::Listed::Ok(r) => Some(r.state),
                _ => None,
            })
            .collect();
        assert_eq!(states.iter().filter(|s| **s == KeyState::Active).count(), 1);
        assert!(
            !states.contains(&KeyState::Pending),
            "the failed key pair was retired unused"
        );
    }

    /// Seals with one root key, decrypts with another.
    struct SealOnly {
        seal: LocalProvider,
        open: LocalProvider,
    }

    #[async_trait::async_trait]
    impl KeyProvider for SealOnly {
        fn configured_key(&self) -> String {
            self.seal.configured_key()
        }
        async fn generate_data_key(
            &self,
            c: &crate::provider::EncryptionContext,
        ) -> Result<crate::provider::DataKey, ProviderError> {
            self.seal.generate_data_key(c).await
        }
        async fn decrypt(
            &self,
            _arn: &str,
            ct: &[u8],
            c: &crate::provider::EncryptionContext,
        ) -> Result<crate::provider::Decrypted, ProviderError> {
            self.open.decrypt(&self.open.configured_key(), ct, c).await
        }
        async fn re_encrypt(
            &self,
            a: &str,
            ct: &[u8],
            c: &crate::provider::EncryptionContext,
        ) -> Result<crate::provider::ReEncrypted, ProviderError> {
            self.seal.re_encrypt(a, ct, c).await
        }
        async fn describe_key(&self) -> Result<crate::provider::KeyDescription, ProviderError> {
            self.seal.describe_key().await
        }
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        };
        for attempt in 1..40 {
            let d = backoff(&p, attempt);
            assert!(d <= Duration::from_secs(8).max(Duration::from_millis(100)));
            assert!(d >= Duration::from_millis(100));
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(&p, 5)).collect();
        assert!(samples.len() > 1, "delays are jittered");
    }

    #[tokio::test]
    async fn engine_makes_the_initial_key_and_coalesces_requests() {
        let dir = tempfile::tempdir().unwrap();
        let r = rotator(dir.path());
        let store = r.store.clone();
        let state: SharedState = Default::default();
        let (engine, handle) = Engine::new(r, state.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(engine.run(stop_rx));
        // Many concurrent requests: far fewer rotations than requests.
        let waits: Vec<_> = (0..20)
            .map(|_| {
                let h = handle.clone();
                tokio::spawn(async move { h.rotate(Reason::ChangeKeyNow).await })
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let n = store.list().unwrap().len();
        assert!(
            n <= 3,
            "20 requests must coalesce into few rotations, got {n}"
        );
        assert_eq!(
            state.read().unwrap().active.as_ref().unwrap().id,
            store.active().unwrap().unwrap().id
        );
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
