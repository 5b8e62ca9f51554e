//! Unit-test fixtures shared by several modules, and the power-loss tests of
//! the store (`power_loss.rs`), which need the whole rotation.

mod power_loss;

use crate::current::SharedCurrent;
use crate::domain::KeyBits;
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
