//! A [`KeyProvider`] wrapper that counts and times every call for
//! `/metrics`, so both providers are measured the same way.

use super::{
    DataKey, Decrypted, EncryptionContext, KeyDescription, KeyProvider, ProviderError, ReEncrypted,
};
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;

/// Measures the calls of `inner`.
pub struct Metered {
    inner: Arc<dyn KeyProvider>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn KeyProvider>, metrics: Arc<Metrics>) -> Arc<dyn KeyProvider> {
        Arc::new(Metered { inner, metrics })
    }

    fn record<T>(&self, operation: &str, started: Instant, r: &Result<T, ProviderError>) {
        let outcome = match r {
            Ok(_) => "ok".to_string(),
            Err(e) => e.kind.to_string(),
        };
        self.metrics
            .kms_call(operation, &outcome, started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl KeyProvider for Metered {
    fn configured_key(&self) -> String {
        self.inner.configured_key()
    }

    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<DataKey, ProviderError> {
        let t = Instant::now();
        let r = self.inner.generate_data_key(context).await;
        self.record("GenerateDataKey", t, &r);
        r
    }

    async fn decrypt(
        &self,
        wrapping_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, ProviderError> {
        let t = Instant::now();
        let r = self
            .inner
            .decrypt(wrapping_key_arn, ciphertext, context)
            .await;
        self.record("Decrypt", t, &r);
        r
    }

    async fn re_encrypt(
        &self,
        source_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<ReEncrypted, ProviderError> {
        let t = Instant::now();
        let r = self
            .inner
            .re_encrypt(source_key_arn, ciphertext, context)
            .await;
        self.record("ReEncrypt", t, &r);
        r
    }

    async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
        let t = Instant::now();
        let r = self.inner.describe_key().await;
        self.record("DescribeKey", t, &r);
        r
    }
}
