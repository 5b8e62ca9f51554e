//! One rotation, enforcing I1: generate → seal (KMS `GenerateDataKey`) →
//! store as `pending` (durable commit) → decrypt back through the provider
//! and prove the private key matches the public key → in one transaction
//! activate it and retire the previous one. Only then can the new public key
//! be served, because the API reads the active key from the engine state,
//! which is updated after that commit.

use crate::current::SharedCurrent;
use crate::domain::{context_for, KeyPairRecord, KeyState, Reason, Schedule};
use crate::envelope;
use crate::keypair::{self, KeyPairError};
use crate::proof::{self, ProofError};
use crate::provider::ProviderError;
use crate::store::{KeyStore, StoreError};
use crate::time::{self, Timestamp};
use std::sync::Arc;

/// Why a rotation failed. Cloned to every coalesced waiter.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RotationError {
    /// RSA generation failed.
    #[error("key generation failed: {0}")]
    Generate(KeyPairError),
    /// KMS (or the local provider) failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The stored envelope did not decrypt to the generated private key.
    #[error("verification failed: {0}")]
    Verify(ProofError),
    /// The store failed.
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    /// The engine is gone (shutting down).
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A bug: the rotation panicked (caught; the active key pair stays).
    #[error("internal error (the rotation panicked: {0})")]
    Panicked(String),
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        RotationError::Store(Arc::new(e))
    }
}

impl From<ProofError> for RotationError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Provider(p) => RotationError::Provider(p),
            other => RotationError::Verify(other),
        }
    }
}

/// Performs single rotations. Holds nothing between them but the ids of
/// pending key pairs it could not retire yet (the store was failing).
pub(crate) struct Rotator {
    pub(super) store: Arc<dyn KeyStore>,
    pub(super) current: SharedCurrent,
    orphans: std::sync::Mutex<Vec<String>>,
    /// The engine's state, where a fleet rotation waiting for another
    /// instance's lease says so and keeps the fleet's head fresh.
    pub(super) state: Option<super::SharedState>,
}

impl Rotator {
    pub(crate) fn new(store: Arc<dyn KeyStore>, current: SharedCurrent) -> Rotator {
        Rotator {
            store,
            current,
            orphans: Default::default(),
            state: None,
        }
    }

    /// Reports lease waits and fleet reads into `state` (status).
    pub(crate) fn with_state(mut self, state: super::SharedState) -> Rotator {
        self.state = Some(state);
        self
    }

    /// One rotation: here, or — on a store a fleet shares — once for the
    /// whole fleet, by whichever instance holds the lease.
    pub(crate) async fn rotate(&self, reason: Reason) -> Result<KeyPairRecord, RotationError> {
        match self.store.fleet() {
            None => self.rotate_here(reason).await,
            Some(fleet) => self.rotate_in_fleet(fleet, reason).await,
        }
    }

    /// One rotation by this instance. On failure after the pending record
    /// was stored, that record is marked superseded (it was never served) —
    /// now, or, if the store is failing, before the next rotation.
    pub(super) async fn rotate_here(&self, reason: Reason) -> Result<KeyPairRecord, RotationError> {
        let record = self.prepare(reason).await?;
        self.activate(&record.id, IfActivationFails::RetireIt).await
    }

    /// Ahead of a scheduled rotation (`announce_ahead`): the next key pair,
    /// generated, stored and proven exactly as for a rotation (I1), stored
    /// as announced, to become active at `activates_at` with no KMS call.
    /// On a store a fleet shares, once for the whole fleet, under the
    /// lease.
    pub(crate) async fn announce(
        &self,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, RotationError> {
        match self.store.fleet() {
            None => self.announce_here(activates_at).await,
            Some(fleet) => self.announce_in_fleet(fleet, activates_at).await,
        }
    }

    /// [`Rotator::announce`] by this instance.
    pub(super) async fn announce_here(
        &self,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, RotationError> {
        let record = self.prepare(Reason::Scheduled).await?;
        match self.store.announce(&record.id, activates_at).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.retire_unused(&record.id).await;
                Err(e.into())
            }
        }
    }

    /// Activates an announced key pair: a store transaction, no KMS call
    /// (it was proven when it was announced). A failed activation leaves it
    /// announced, so the retry is again a store transaction and not a new
    /// rotation that needs KMS — the point of announcing ahead.
    /// In a fleet, whichever member takes the lease at the instant
    /// activates the fleet's announced key pair; the others adopt it.
    pub(crate) async fn activate_announced(
        &self,
        id: &str,
    ) -> Result<KeyPairRecord, RotationError> {
        match self.store.fleet() {
            None => self.activate_kept(id).await,
            Some(fleet) => self.rotate_in_fleet(fleet, Reason::Scheduled).await,
        }
    }

    /// Activates a proven key pair that stays as it is if the activation
    /// fails.
    pub(super) async fn activate_kept(&self, id: &str) -> Result<KeyPairRecord, RotationError> {
        self.activate(id, IfActivationFails::KeepIt).await
    }

    /// A new key pair, stored as pending and proven (I1): everything of a
    /// rotation but the activation. On failure after the pending commit the
    /// key pair is superseded.
    async fn prepare(&self, reason: Reason) -> Result<KeyPairRecord, RotationError> {
        self.retire_orphans().await;
        let cur = self.current.get();
        let (settings, provider) = (&cur.settings, &*cur.provider);
        let key_type = settings.key_type;
        // RSA generation is CPU-bound (tens to hundreds of ms): off the
        // async workers, and on at most all cores but one for the whole
        // daemon, so a burst of rotations across many organizations never
        // takes the CPU the API and players' unwraps need.
        let core = generation_slots()
            .acquire()
            .await
            .map_err(|_| RotationError::ShuttingDown)?;
        let generated = tokio::task::spawn_blocking(move || keypair::generate(key_type))
            .await
            .map_err(|_| RotationError::Generate(KeyPairError::Generation))?
            .map_err(RotationError::Generate)?;
        drop(core);
        crate::failpoint::crash_point!("rotation-after-generate");
        let id = generated.id.clone();
        let context = context_for(&settings.context_key, &settings.organization_id, &id);
        let env = envelope::seal(
            provider,
            context,
            &id,
            generated.algorithm,
            &generated.private_key,
        )
        .await?;
        crate::failpoint::crash_point!("rotation-after-seal");
        let created_at = self.after_newest(time::now()).await;
        let record = KeyPairRecord {
            id: id.clone(),
            state: KeyState::Pending,
            algorithm: key_type.algorithm(),
            key_bits: key_type.rsa_bits(),
            reason,
            created_at,
            activated_at: None,
            retired_at: None,
            activates_at: None,
            wrapping_key_arn: env.wrapping_key_arn.clone(),
            public_key_der: generated.public_key_der.clone(),
            envelope: env,
        };
        drop(generated); // the plaintext private key is zeroized here
        self.store.insert_pending(&record).await?;
        crate::failpoint::crash_point!("rotation-after-pending-commit");

        if let Err(e) = proof::prove(provider, &record).await {
            self.retire_unused(&id).await;
            return Err(e.into());
        }
        crate::failpoint::crash_point!("rotation-after-verify");
        Ok(record)
    }

    /// `now`, or just after the newest key pair in the store if that one
    /// was created later by its writer's clock: the history is ordered by
    /// creation, so a new key pair must sort after every one before it
    /// whatever the clocks of the members that wrote them (a member running
    /// fast would otherwise leave its key pair listed above its
    /// successors). A store that cannot be read leaves `now`: the insert
    /// that follows fails on its own if the store is down.
    async fn after_newest(&self, now: time::Timestamp) -> time::Timestamp {
        match self.store.page(None, 1).await {
            Ok(page) => page
                .records
                .iter()
                .filter_map(|l| match l {
                    crate::store::Listed::Ok(r) => Some(r.created_at),
                    crate::store::Listed::Corrupt { .. } => None,
                })
                .map(|t| t + chrono::Duration::milliseconds(1))
                .fold(now, |a, b| a.max(b)),
            Err(_) => now,
        }
    }

    /// Activates a proven key pair (pending or announced) and retires the
    /// previous one, in one store transaction.
    async fn activate(
        &self,
        id: &str,
        if_fails: IfActivationFails,
    ) -> Result<KeyPairRecord, RotationError> {
        let settings = self.current.settings();
        let now = time::now();
        let schedule = Schedule {
            last_rotation_at: Some(now),
            next_rotation_at: settings.next_rotation_after(now),
        };
        let active = match self.store.activate(id, now, &schedule).await {
            Ok(a) => a,
            Err(e) => {
                if if_fails == IfActivationFails::RetireIt {
                    self.retire_unused(id).await;
                }
                return Err(e.into());
            }
        };
        crate::failpoint::crash_point!("rotation-after-activate");
        Ok(active)
    }

    /// Retires a pending key pair that will never be activated, or keeps its
    /// id to retry (a stale `pending` must not linger in the history).
    pub(super) async fn retire_unused(&self, id: &str) {
        if let Err(e) = self.store.abandon(id, time::now()).await {
            tracing::warn!(key_pair_id = %id, error = %e, "cannot retire the unused key pair now; retrying before the next rotation");
            crate::sync::lock(&self.orphans).push(id.to_string());
        }
    }

    async fn retire_orphans(&self) {
        let ids = std::mem::take(&mut *crate::sync::lock(&self.orphans));
        for id in ids {
            self.retire_unused(&id).await;
        }
    }
}

/// Key generations that may run at once, daemon-wide: all cores but one
/// (at least one).
fn generation_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// What becomes of a key pair whose activation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IfActivationFails {
    /// A fresh pending key pair: superseded, a retry makes a new one.
    RetireIt,
    /// An announced key pair: kept, the retry activates it.
    KeepIt,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{
        DataKey, Decrypted, EncryptionContext, KeyDescription, KeyProvider, LocalProvider,
        ReEncrypted,
    };
    use crate::store::decodable;
    use crate::testing::{fixture, FailingWrites};

    #[tokio::test]
    async fn rotation_activates_only_after_verification() {
        let dir = tempfile::tempdir().unwrap();
        let (store, current) = fixture(dir.path()).await;
        let r = Rotator::new(store.clone(), current.clone());
        let a = r.rotate(Reason::Initial).await.unwrap();
        assert_eq!(a.state, KeyState::Active);
        let b = r.rotate(Reason::ChangeKeyNow).await.unwrap();
        assert_eq!(store.active().await.unwrap().unwrap().id, b.id);
        let a = store.get(&a.id).await.unwrap().unwrap();
        assert_eq!(a.state, KeyState::Retired);
        proof::prove(&*current.get().provider, &a).await.unwrap();
        assert!(store.schedule().await.unwrap().next_rotation_at.is_some());
    }

    /// Regression: a fleet member whose clock ran minutes fast left its key
    /// pair listed above its successor (history and JWK Set order), and the
    /// successor's rotation retired it before it had been activated. The
    /// store's order now holds in its times, whatever the writers' clocks.
    #[tokio::test]
    async fn a_fast_clock_never_leaves_the_history_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let (store, current) = fixture(dir.path()).await;
        let r = Rotator::new(store.clone(), current.clone());
        r.rotate(Reason::Initial).await.unwrap();
        // What a member ten minutes fast wrote and activated.
        let ahead = time::now() + chrono::Duration::minutes(10);
        let mut fast = crate::testing::record_at("kek-00000000000000fa", 1);
        fast.created_at = ahead;
        store.insert_pending(&fast).await.unwrap();
        let schedule = store.schedule().await.unwrap();
        store.activate(&fast.id, ahead, &schedule).await.unwrap();
        // A member with a correct clock rotates next.
        let next = r.rotate(Reason::ChangeKeyNow).await.unwrap();
        let fast = store.get(&fast.id).await.unwrap().unwrap();
        assert!(
            next.created_at > fast.created_at,
            "sorts after what the store holds"
        );
        assert!(next.activated_at >= fast.activated_at, "{next:?} {fast:?}");
        assert!(fast.retired_at >= fast.activated_at, "{fast:?}");
        let page = store.page(None, 10).await.unwrap();
        let first = match &page.records[0] {
            crate::store::Listed::Ok(r) => r.id.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(first, next.id, "the active key pair is listed first");
    }

    #[tokio::test]
    async fn a_key_that_does_not_verify_is_never_activated() {
        // The provider is swapped for another root key between seal and
        // verify: the stored envelope cannot be decrypted, so I1 forbids
        // activation.
        let dir = tempfile::tempdir().unwrap();
        let (store, current) = fixture(dir.path()).await;
        let first = Rotator::new(store.clone(), current.clone())
            .rotate(Reason::Initial)
            .await
            .unwrap();
        let other = tempfile::tempdir().unwrap();
        let broken = SharedCurrent::new(
            current.settings(),
            Arc::new(SealOnly {
                seal: LocalProvider::open(
                    &dir.path().join("root.key"),
                    crate::provider::IfMissing::Create,
                )
                .unwrap(),
                open: LocalProvider::open(
                    &other.path().join("root.key"),
                    crate::provider::IfMissing::Create,
                )
                .unwrap(),
            }),
        );
        assert!(Rotator::new(store.clone(), broken)
            .rotate(Reason::ChangeKeyNow)
            .await
            .is_err());
        assert_eq!(
            store.active().await.unwrap().unwrap().id,
            first.id,
            "active key unchanged"
        );
        let states: Vec<KeyState> = decodable(store.list().await.unwrap())
            .into_iter()
            .map(|r| r.state)
            .collect();
        assert_eq!(states.iter().filter(|s| **s == KeyState::Active).count(), 1);
        assert!(
            !states.contains(&KeyState::Pending),
            "the failed key pair was superseded"
        );
    }

    /// Regression: a store write error between the pending commit and the
    /// activation left a stale `pending` key pair in the history.
    #[tokio::test]
    async fn a_stale_pending_key_pair_never_lingers() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, current) = fixture(dir.path()).await;
        let store = Arc::new(FailingWrites {
            inner,
            failing: Default::default(),
        });
        let r = Rotator::new(store.clone(), current);
        let first = r.rotate(Reason::Initial).await.unwrap();
        store
            .failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(r.rotate(Reason::ChangeKeyNow).await.is_err());
        let pending = |list: Vec<KeyPairRecord>| {
            list.into_iter()
                .filter(|k| k.state == KeyState::Pending)
                .count()
        };
        assert_eq!(pending(decodable(store.list().await.unwrap())), 1);
        store
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let second = r.rotate(Reason::ChangeKeyNow).await.unwrap();
        let all = decodable(store.list().await.unwrap());
        assert_eq!(
            pending(all.clone()),
            0,
            "the stale pending key pair was retired"
        );
        assert_eq!(all.len(), 3);
        assert_ne!(first.id, second.id);
        assert_eq!(store.active().await.unwrap().unwrap().id, second.id);
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
        async fn generate_data_key(&self, c: &EncryptionContext) -> Result<DataKey, ProviderError> {
            self.seal.generate_data_key(c).await
        }
        async fn decrypt(
            &self,
            _arn: &str,
            ct: &[u8],
            c: &EncryptionContext,
        ) -> Result<Decrypted, ProviderError> {
            self.open.decrypt(&self.open.configured_key(), ct, c).await
        }
        async fn re_encrypt(
            &self,
            a: &str,
            ct: &[u8],
            c: &EncryptionContext,
        ) -> Result<ReEncrypted, ProviderError> {
            self.seal.re_encrypt(a, ct, c).await
        }
        async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
            self.seal.describe_key().await
        }
    }

    /// The local provider plus a backup key whose wrappings never decrypt.
    struct BrokenBackup {
        primary: LocalProvider,
    }

    const BACKUP: &str = "arn:aws:kms:eu-central-1:111122223333:key/backup";

    #[async_trait::async_trait]
    impl KeyProvider for BrokenBackup {
        fn configured_key(&self) -> String {
            self.primary.configured_key()
        }
        async fn generate_data_key(&self, c: &EncryptionContext) -> Result<DataKey, ProviderError> {
            self.primary.generate_data_key(c).await
        }
        async fn decrypt(
            &self,
            arn: &str,
            ct: &[u8],
            c: &EncryptionContext,
        ) -> Result<Decrypted, ProviderError> {
            if arn == BACKUP {
                return Err(ProviderError {
                    operation: "Decrypt",
                    kind: crate::provider::FailureKind::InvalidCiphertext,
                    code: None,
                    message: "the backup wrapping does not decrypt".into(),
                    request_id: None,
                });
            }
            self.primary.decrypt(arn, ct, c).await
        }
        async fn re_encrypt(
            &self,
            a: &str,
            ct: &[u8],
            c: &EncryptionContext,
        ) -> Result<ReEncrypted, ProviderError> {
            self.primary.re_encrypt(a, ct, c).await
        }
        async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
            self.primary.describe_key().await
        }
        fn backup_keys(&self) -> Vec<String> {
            vec![BACKUP.into()]
        }
        async fn encrypt(
            &self,
            _key: &str,
            _plaintext: &[u8],
            _c: &EncryptionContext,
        ) -> Result<crate::provider::Wrapped, ProviderError> {
            Ok(crate::provider::Wrapped {
                wrapping_key_arn: BACKUP.into(),
                ciphertext: crate::aead::random::<64>().to_vec(),
                request_id: None,
            })
        }
    }

    /// I1 with backup keys: a key pair is activated only when its private
    /// key decrypts through **every** wrapping; one backup wrapping that
    /// does not decrypt keeps it from ever being served.
    #[tokio::test]
    async fn a_key_whose_backup_wrapping_does_not_decrypt_is_never_activated() {
        let dir = tempfile::tempdir().unwrap();
        let (store, current) = fixture(dir.path()).await;
        let first = Rotator::new(store.clone(), current.clone())
            .rotate(Reason::Initial)
            .await
            .unwrap();
        let broken = SharedCurrent::new(
            current.settings(),
            Arc::new(BrokenBackup {
                primary: LocalProvider::open(
                    &dir.path().join("root.key"),
                    crate::provider::IfMissing::Create,
                )
                .unwrap(),
            }),
        );
        let err = Rotator::new(store.clone(), broken)
            .rotate(Reason::ChangeKeyNow)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("backup wrapping"), "{err}");
        assert_eq!(store.active().await.unwrap().unwrap().id, first.id);
        let all = decodable(store.list().await.unwrap());
        let unproven = all.iter().find(|r| r.id != first.id).unwrap();
        assert_eq!(unproven.state, KeyState::Superseded, "never activated");
        assert_eq!(
            unproven.envelope.backups.len(),
            1,
            "it had a backup wrapping"
        );
    }
}
