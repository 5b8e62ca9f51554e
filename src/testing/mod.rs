//! Unit-test fixtures shared by several modules, and the power-loss tests of
//! the store (`power_loss.rs`), which need the whole rotation.

mod power_loss;

use crate::current::SharedCurrent;
use crate::domain::{context_for, Envelope, KeyBits, KeyPairRecord, KeyState, Reason, ENVELOPE_V1};
use crate::provider::LocalProvider;
use crate::store::{KeyStore, RedbStore};
use std::sync::Arc;

/// A store and the configuration in force for unit tests: the `--dev`
/// settings with RSA-2048 (fast) and the local provider, all under `dir`.
pub(crate) async fn fixture(dir: &std::path::Path) -> (Arc<dyn KeyStore>, SharedCurrent) {
    let mut s = crate::config::Settings::dev(dir).unwrap();
    s.key_bits = KeyBits::Rsa2048;
    let store: Arc<dyn KeyStore> = Arc::new(RedbStore::open(&dir.join("s.redb")).await.unwrap());
    let provider = Arc::new(LocalProvider::open_or_create(&dir.join("root.key")).unwrap());
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
