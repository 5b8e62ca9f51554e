//! A [`KeyProvider`] wrapper that sends every KMS request of one
//! organization through the daemon's shared [`Budget`]: its turn, its
//! priority, and the retries of what asking again can fix. It sits outside
//! the instrumented provider, so each attempt on the wire is counted and
//! audited on its own (a throttled attempt too).

use super::budget::{self, Budget};
use super::{
    DataKey, Decrypted, EncryptionContext, KeyDescription, KeyProvider, ProviderError, ReEncrypted,
    Wrapped,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// `inner` (AWS KMS) behind `budget`, on behalf of organization `org`.
pub(crate) struct Budgeted {
    inner: Arc<dyn KeyProvider>,
    budget: Arc<Budget>,
    org: Arc<str>,
    operation_timeout: Duration,
}

impl Budgeted {
    pub(crate) fn wrap(
        inner: Arc<dyn KeyProvider>,
        budget: Arc<Budget>,
        org: &str,
        operation_timeout: Duration,
    ) -> Arc<dyn KeyProvider> {
        Arc::new(Budgeted {
            inner,
            budget,
            org: org.into(),
            operation_timeout,
        })
    }

    async fn send<T, F, Fut>(&self, describe: bool, f: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        budget::send(&self.budget, &self.org, describe, self.operation_timeout, f).await
    }
}

#[async_trait]
impl KeyProvider for Budgeted {
    fn configured_key(&self) -> String {
        self.inner.configured_key()
    }

    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<DataKey, ProviderError> {
        self.send(false, || self.inner.generate_data_key(context))
            .await
    }

    async fn decrypt(
        &self,
        wrapping_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, ProviderError> {
        self.send(false, || {
            self.inner.decrypt(wrapping_key_arn, ciphertext, context)
        })
        .await
    }

    async fn re_encrypt(
        &self,
        source_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<ReEncrypted, ProviderError> {
        self.send(false, || {
            self.inner.re_encrypt(source_key_arn, ciphertext, context)
        })
        .await
    }

    async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
        self.send(true, || self.inner.describe_key()).await
    }

    fn backup_keys(&self) -> Vec<String> {
        self.inner.backup_keys()
    }

    async fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, ProviderError> {
        self.send(false, || self.inner.encrypt(key, plaintext, context))
            .await
    }

    async fn describe(&self, key: &str) -> Result<KeyDescription, ProviderError> {
        self.send(true, || self.inner.describe(key)).await
    }

    fn note_served(&self, key: &str, primary: super::Primary<'_>) {
        self.inner.note_served(key, primary);
    }

    fn fallback(&self) -> Option<super::Fallback> {
        self.inner.fallback()
    }

    fn prefer_backups(&self) -> bool {
        self.inner.prefer_backups()
    }
}
