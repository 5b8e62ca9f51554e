//! Key providers: who wraps the per-key-pair data keys.
//!
//! [`KeyProvider`] is the one seam between kekd and the customer's KMS.
//! `aws_kms.rs` talks to AWS KMS; `local.rs` uses a root key file so a new
//! user can run `kekd --dev` without an AWS account. Both bind the
//! [`EncryptionContext`] to every wrapped key, and both report failures as a
//! classified [`ProviderError`] that keeps KMS's code, message and request id
//! for the operator — never key material.

pub mod aws_kms;
pub mod instrumented;
pub mod local;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

pub use aws_kms::AwsKmsProvider;
pub use local::LocalProvider;

/// Builds the provider `settings` ask for. `create_root_key` lets the local
/// provider create a missing root key file (the daemon); a check that must
/// write nothing (`kekctl test --config`) passes false.
pub async fn from_settings(
    settings: &crate::config::Settings,
    create_root_key: bool,
) -> Result<std::sync::Arc<dyn KeyProvider>, local::RootKeyError> {
    use crate::config::ProviderSettings;
    Ok(match &settings.provider {
        ProviderSettings::Local { root_key_path } => std::sync::Arc::new(if create_root_key {
            LocalProvider::open_or_create(root_key_path)?
        } else {
            LocalProvider::open_existing(root_key_path)?
        }),
        ProviderSettings::AwsKms { key } => {
            let region = settings.region.as_deref().unwrap_or(&key.region);
            std::sync::Arc::new(
                AwsKmsProvider::new(region, &key.to_string(), settings.kms_timeouts).await,
            )
        }
    })
}

/// The provider the daemon uses: built from `settings`, every call counted
/// and timed for `/metrics` and recorded in the audit trail.
pub async fn instrumented(
    settings: &crate::config::Settings,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    audit: std::sync::Arc<crate::audit::Audit>,
) -> Result<std::sync::Arc<dyn KeyProvider>, local::RootKeyError> {
    let inner = from_settings(settings, true).await?;
    Ok(instrumented::Instrumented::wrap(inner, metrics, audit))
}

/// The KMS encryption context: non-secret key/value pairs that must be
/// presented again to decrypt. kekd puts the organization id and the key-pair
/// id in it, and uses [`EncryptionContext::canonical_bytes`] as the AES-GCM
/// associated data of the envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(pub BTreeMap<String, String>);

impl EncryptionContext {
    /// Canonical, unambiguous encoding: for each pair in ascending byte order
    /// of the key, `u16 BE len(key) ‖ key ‖ u16 BE len(value) ‖ value` (UTF-8).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            for s in [k, v] {
                let len = u16::try_from(s.len()).expect("context strings are validated short");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        out
    }

    /// The pairs as a map, e.g. for the SDK.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// A fresh 256-bit data key: the plaintext (zeroized on drop, never printed)
/// and the provider's ciphertext of it.
pub struct DataKey {
    /// Plaintext AES-256 key; use once, then drop.
    pub plaintext: Zeroizing<[u8; 32]>,
    /// The wrapped data key (KMS `CiphertextBlob`).
    pub ciphertext: Vec<u8>,
    /// The key that wrapped it: the key ARN KMS reports, not the alias.
    pub wrapping_key_arn: String,
    /// KMS's request id (for the audit trail).
    pub request_id: Option<String>,
}

/// An unwrapped data key (zeroized on drop, never printed).
pub struct Decrypted {
    /// The plaintext data key.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// KMS's request id.
    pub request_id: Option<String>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext", &"<redacted>")
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// A data key re-wrapped under the configured key.
#[derive(Debug, Clone)]
pub struct ReEncrypted {
    /// The new wrapped data key.
    pub ciphertext: Vec<u8>,
    /// The key ARN that wraps it now.
    pub wrapping_key_arn: String,
    /// KMS's request id.
    pub request_id: Option<String>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("wrapping_key_arn", &self.wrapping_key_arn)
            .finish()
    }
}

/// What a provider says about its key (KMS `DescribeKey`).
#[derive(Debug, Clone, Serialize)]
pub struct KeyDescription {
    /// The key ARN.
    pub arn: String,
    /// e.g. `SYMMETRIC_DEFAULT`.
    pub key_spec: String,
    /// e.g. `ENCRYPT_DECRYPT`.
    pub key_usage: String,
    /// e.g. `Enabled`, `Disabled`, `PendingDeletion`.
    pub key_state: String,
    /// A multi-Region key (primary or replica).
    pub multi_region: bool,
    /// KMS's request id.
    pub request_id: Option<String>,
}

/// Why a provider call failed, in the operator's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// Connection refused, DNS, TLS: KMS could not be reached.
    Unreachable,
    /// No answer in time (connect, attempt or operation timeout).
    Timeout,
    /// No usable AWS credentials.
    Credentials,
    /// KMS refused: IAM or key policy.
    AccessDenied,
    /// The key is disabled.
    KeyDisabled,
    /// The key is pending deletion, pending import or otherwise unusable.
    InvalidKeyState,
    /// The key (or alias) does not exist.
    NotFound,
    /// The ciphertext or encryption context does not match.
    InvalidCiphertext,
    /// KMS is throttling us.
    Throttled,
    /// KMS answered but cannot serve now (5xx, `KeyUnavailableException`,
    /// `KMSInternalException`).
    ServiceUnavailable,
    /// The call could not be recorded in the audit log, so its result is
    /// refused (fail closed).
    AuditUnavailable,
    /// Anything else (5xx, unexpected answers).
    Other,
}

impl FailureKind {
    /// Whether retrying later can help without an operator acting.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureKind::Unreachable
                | FailureKind::Timeout
                | FailureKind::Throttled
                | FailureKind::Other
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("other"))
    }
}

/// A failed provider call. Carries KMS's diagnostics, never key material.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{operation} failed ({kind}){}: {message}{}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default(), request_id.as_ref().map(|r| format!(" [request id {r}]")).unwrap_or_default())]
pub struct ProviderError {
    /// The operation, e.g. `GenerateDataKey`.
    pub operation: &'static str,
    /// The classified cause.
    pub kind: FailureKind,
    /// KMS's error code, e.g. `AccessDeniedException`.
    pub code: Option<String>,
    /// KMS's (or the transport's) message.
    pub message: String,
    /// The AWS request id, when KMS answered.
    pub request_id: Option<String>,
}

/// The operations kekd needs from a key provider.
#[async_trait]
pub trait KeyProvider: Send + Sync + 'static {
    /// The configured key, as the operator wrote it (ARN or local key id).
    fn configured_key(&self) -> String;

    /// A new AES-256 data key bound to `context` (KMS `GenerateDataKey`).
    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<DataKey, ProviderError>;

    /// Unwraps a data key (KMS `Decrypt`). `wrapping_key_arn` pins the key so
    /// a ciphertext cannot be redirected to another key.
    async fn decrypt(
        &self,
        wrapping_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, ProviderError>;

    /// Re-wraps a data key under the configured key without the plaintext
    /// leaving the provider (KMS `ReEncrypt`).
    async fn re_encrypt(
        &self,
        source_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<ReEncrypted, ProviderError>;

    /// Describes the configured key (KMS `DescribeKey`).
    async fn describe_key(&self) -> Result<KeyDescription, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the byte format documented in README "Envelope format".
    #[test]
    fn canonical_encoding_matches_the_documented_example() {
        let ctx = EncryptionContext(
            [
                ("organization-id".to_string(), "acme".to_string()),
                (
                    "key-pair-id".to_string(),
                    "kek-0123456789abcdef".to_string(),
                ),
            ]
            .into(),
        );
        assert_eq!(
            hex::encode(ctx.canonical_bytes()),
            "000b6b65792d706169722d696400146b656b2d30313233343536373839616263646566000f6f7267616e697a6174696f6e2d6964000461636d65"
        );
    }
}
