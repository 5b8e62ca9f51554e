//! A [`KeyProvider`] wrapper that observes every KMS call once, for both
//! providers alike: it counts and times the call for `/metrics`, and writes
//! one audit record (operation, key ARN, encryption context, request id,
//! outcome, duration) — failing the call closed when the audit log cannot be
//! written.

use super::{
    DataKey, Decrypted, EncryptionContext, FailureKind, Fallback, KeyDescription, KeyProvider,
    Primary, ProviderError, ReEncrypted, Wrapped,
};
use crate::audit::{Audit, AuditEvent};
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;

/// Measures and audits the calls of `inner`.
pub(crate) struct Instrumented {
    inner: Arc<dyn KeyProvider>,
    metrics: Arc<Metrics>,
    audit: Arc<Audit>,
    /// Backups serving while the primary is unavailable.
    fallback: std::sync::Mutex<Option<Fallback>>,
}

impl Instrumented {
    /// Wraps `inner`.
    pub(crate) fn wrap(
        inner: Arc<dyn KeyProvider>,
        metrics: Arc<Metrics>,
        audit: Arc<Audit>,
    ) -> Arc<dyn KeyProvider> {
        Arc::new(Instrumented {
            inner,
            metrics,
            audit,
            fallback: Default::default(),
        })
    }

    async fn record<T>(
        &self,
        operation: &'static str,
        key_arn: &str,
        context: Option<&EncryptionContext>,
        started: Instant,
        result: Result<T, ProviderError>,
        request_id: impl Fn(&T) -> Option<String>,
    ) -> Result<T, ProviderError> {
        let (outcome, code, rid) = match &result {
            Ok(v) => ("ok".to_string(), None, request_id(v)),
            Err(e) => (e.kind.to_string(), e.code.clone(), e.request_id.clone()),
        };
        self.metrics
            .kms_call(operation, &outcome, started.elapsed().as_secs_f64());
        let event = AuditEvent::KmsCall {
            operation: operation.to_string(),
            key_arn: key_arn.to_string(),
            encryption_context: context.cloned(),
            request_id: rid,
            outcome: outcome.clone(),
            error_code: code,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        match self.audit.record_async(event).await {
            Ok(()) => result,
            Err(e) => Err(ProviderError {
                operation,
                kind: FailureKind::AuditUnavailable,
                code: None,
                message: format!("{e}; the operation is refused (fail closed)"),
                request_id: None,
            }),
        }
    }
}

#[async_trait]
impl KeyProvider for Instrumented {
    fn configured_key(&self) -> String {
        self.inner.configured_key()
    }

    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<DataKey, ProviderError> {
        let t = Instant::now();
        let r = self.inner.generate_data_key(context).await;
        let arn = r
            .as_ref()
            .map(|k| k.wrapping_key_arn.clone())
            .unwrap_or_else(|_| self.configured_key());
        self.record("GenerateDataKey", &arn, Some(context), t, r, |k| {
            k.request_id.clone()
        })
        .await
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
        self.record("Decrypt", wrapping_key_arn, Some(context), t, r, |d| {
            d.request_id.clone()
        })
        .await
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
        let arn = match &r {
            Ok(x) => format!("{source_key_arn} -> {}", x.wrapping_key_arn),
            Err(_) => format!("{source_key_arn} -> {}", self.configured_key()),
        };
        self.record("ReEncrypt", &arn, Some(context), t, r, |x| {
            x.request_id.clone()
        })
        .await
    }

    async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
        let t = Instant::now();
        let r = self.inner.describe_key().await;
        let key = self.configured_key();
        self.record("DescribeKey", &key, None, t, r, |d| d.request_id.clone())
            .await
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
        let t = Instant::now();
        let r = self.inner.encrypt(key, plaintext, context).await;
        self.record("Encrypt", key, Some(context), t, r, |w| {
            w.request_id.clone()
        })
        .await
    }

    async fn describe(&self, key: &str) -> Result<KeyDescription, ProviderError> {
        let t = Instant::now();
        let r = self.inner.describe(key).await;
        self.record("DescribeKey", key, None, t, r, |d| d.request_id.clone())
            .await
    }

    fn note_served(&self, key: &str, primary: Primary<'_>) {
        let mut f = crate::sync::lock(&self.fallback);
        let now = crate::time::now();
        match primary {
            Primary::Served => {
                if let Some(was) = f.take() {
                    tracing::info!(since = %crate::time::format(&was.primary_unavailable_since), "the primary KMS key decrypts again");
                }
            }
            Primary::Failed(e) => {
                self.metrics.kms_backup_served(key);
                *f = Some(Fallback {
                    primary_unavailable_since: f
                        .as_ref()
                        .map_or(now, |was| was.primary_unavailable_since),
                    primary_error: e.to_string(),
                    served_by: key.to_string(),
                    served_at: now,
                    primary_tried_at: now,
                });
            }
            Primary::NotTried => {
                self.metrics.kms_backup_served(key);
                if let Some(was) = f.as_mut() {
                    was.served_by = key.to_string();
                    was.served_at = now;
                }
            }
        }
    }

    fn prefer_backups(&self) -> bool {
        crate::sync::lock(&self.fallback).as_ref().is_some_and(|f| {
            (crate::time::now() - f.primary_tried_at)
                .to_std()
                .is_ok_and(|d| d < super::PRIMARY_RETRY)
        })
    }

    fn fallback(&self) -> Option<Fallback> {
        crate::sync::lock(&self.fallback).clone()
    }
}
