//! Unit-test fixtures shared by several modules, and the power-loss tests of
//! the store (`power_loss.rs`), which need the whole rotation.

mod power_loss;

use crate::current::SharedCurrent;
use crate::domain::{
    context_for, Envelope, KeyAlgorithm, KeyBits, KeyPairRecord, KeyState, KeyType, Reason,
    ENVELOPE_V1,
};
use crate::provider::LocalProvider;
use crate::store::{KeyStore, RedbStore};
use std::sync::Arc;

/// A store and the configuration in force for unit tests: the `--dev`
/// settings with RSA-2048 (fast) and the local provider, all under `dir`.
pub(crate) async fn fixture(dir: &std::path::Path) -> (Arc<dyn KeyStore>, SharedCurrent) {
    let mut s = crate::config::Settings::dev(dir).unwrap();
    s.key_type = KeyType::Rsa(KeyBits::Rsa2048);
    let store: Arc<dyn KeyStore> = Arc::new(RedbStore::open(&dir.join("s.redb")).await.unwrap());
    let provider = Arc::new(
        LocalProvider::open(&dir.join("root.key"), crate::provider::IfMissing::Create).unwrap(),
    );
    (store, SharedCurrent::new(Arc::new(s), provider))
}

/// A stored-looking pending record created at 10:`minute` (its envelope
/// is filler: for store tests, not for decryption).
pub(crate) fn record_at(id: &str, minute: u32) -> KeyPairRecord {
    let t = chrono::DateTime::parse_from_rfc3339(&format!("2026-11-23T10:{minute:02}:00Z"))
        .unwrap()
        .with_timezone(&chrono::Utc);
    KeyPairRecord {
        id: id.into(),
        state: KeyState::Pending,
        algorithm: KeyAlgorithm::Rsa,
        key_bits: 3072,
        reason: Reason::Scheduled,
        created_at: t,
        activated_at: None,
        retired_at: None,
        activates_at: None,
        wrapping_key_arn: "arn:k".into(),
        public_key_der: vec![1, 2, 3],
        envelope: Envelope {
            format: ENVELOPE_V1.into(),
            algorithm: KeyAlgorithm::Rsa,
            key_pair_id: id.into(),
            wrapping_key_arn: "arn:k".into(),
            encryption_context: context_for("organization-id", "o", id),
            encrypted_data_key: vec![4],
            nonce: vec![0; 12],
            ciphertext: vec![5],
            backups: Vec::new(),
        },
    }
}

/// Fails activation and abandonment while `failing` is set, as a store
/// on a full disk does.
pub(crate) struct FailingWrites {
    pub(crate) inner: Arc<dyn KeyStore>,
    pub(crate) failing: std::sync::atomic::AtomicBool,
}

impl FailingWrites {
    fn fail(&self) -> Result<(), crate::store::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::store::StoreError::Worker("disk full".into()));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl KeyStore for FailingWrites {
    async fn insert_pending(&self, r: &KeyPairRecord) -> Result<(), crate::store::StoreError> {
        self.inner.insert_pending(r).await
    }
    async fn activate(
        &self,
        id: &str,
        at: crate::time::Timestamp,
        s: &crate::domain::Schedule,
    ) -> Result<KeyPairRecord, crate::store::StoreError> {
        self.fail()?;
        self.inner.activate(id, at, s).await
    }
    async fn abandon(
        &self,
        id: &str,
        at: crate::time::Timestamp,
    ) -> Result<(), crate::store::StoreError> {
        self.fail()?;
        self.inner.abandon(id, at).await
    }
    async fn get(&self, id: &str) -> Result<Option<KeyPairRecord>, crate::store::StoreError> {
        self.inner.get(id).await
    }
    async fn announce(
        &self,
        id: &str,
        at: crate::time::Timestamp,
    ) -> Result<KeyPairRecord, crate::store::StoreError> {
        self.inner.announce(id, at).await
    }
    async fn active(&self) -> Result<Option<KeyPairRecord>, crate::store::StoreError> {
        self.inner.active().await
    }
    async fn list(&self) -> Result<Vec<crate::store::Listed>, crate::store::StoreError> {
        self.inner.list().await
    }
    async fn corrupt_records(&self) -> Result<Vec<(String, String)>, crate::store::StoreError> {
        self.inner.corrupt_records().await
    }
    async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::store::HistoryPage, crate::store::StoreError> {
        self.inner.page(after, limit).await
    }
    async fn summary(&self) -> Result<crate::store::Summary, crate::store::StoreError> {
        self.inner.summary().await
    }
    async fn import(
        &self,
        records: &[KeyPairRecord],
        active: Option<&str>,
        schedule: &crate::domain::Schedule,
    ) -> Result<(), crate::store::StoreError> {
        self.inner.import(records, active, schedule).await
    }
    async fn schedule(&self) -> Result<crate::domain::Schedule, crate::store::StoreError> {
        self.inner.schedule().await
    }
    async fn set_schedule(
        &self,
        s: &crate::domain::Schedule,
    ) -> Result<(), crate::store::StoreError> {
        self.inner.set_schedule(s).await
    }
    async fn replace_envelope(
        &self,
        id: &str,
        e: &crate::domain::Envelope,
    ) -> Result<(), crate::store::StoreError> {
        self.inner.replace_envelope(id, e).await
    }
    async fn delete_retired(&self, id: &str) -> Result<(), crate::store::StoreError> {
        self.inner.delete_retired(id).await
    }
}

/// A key provider whose KMS cannot be reached: every call fails as
/// unavailable, and is counted.
#[derive(Default)]
pub(crate) struct Unreachable(std::sync::atomic::AtomicUsize);

impl Unreachable {
    /// Calls made so far.
    pub(crate) fn calls(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn fail(&self, operation: &'static str) -> crate::provider::ProviderError {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        crate::provider::ProviderError {
            operation,
            kind: crate::provider::FailureKind::Timeout,
            code: None,
            message: "black-holed".into(),
            request_id: None,
        }
    }
}

#[async_trait::async_trait]
impl crate::provider::KeyProvider for Unreachable {
    fn configured_key(&self) -> String {
        "arn:aws:kms:eu-west-1:123456789012:alias/unreachable".into()
    }
    async fn generate_data_key(
        &self,
        _: &crate::provider::EncryptionContext,
    ) -> Result<crate::provider::DataKey, crate::provider::ProviderError> {
        Err(self.fail("GenerateDataKey"))
    }
    async fn decrypt(
        &self,
        _: &str,
        _: &[u8],
        _: &crate::provider::EncryptionContext,
    ) -> Result<crate::provider::Decrypted, crate::provider::ProviderError> {
        Err(self.fail("Decrypt"))
    }
    async fn re_encrypt(
        &self,
        _: &str,
        _: &[u8],
        _: &crate::provider::EncryptionContext,
    ) -> Result<crate::provider::ReEncrypted, crate::provider::ProviderError> {
        Err(self.fail("ReEncrypt"))
    }
    async fn describe_key(
        &self,
    ) -> Result<crate::provider::KeyDescription, crate::provider::ProviderError> {
        Err(self.fail("DescribeKey"))
    }
}
