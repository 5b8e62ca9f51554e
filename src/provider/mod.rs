//! Key providers: who wraps the per-key-pair data keys.
//!
//! [`KeyProvider`] is the one seam between kekd and the customer's KMS.
//! `aws_kms.rs` talks to AWS KMS; `local.rs` uses a root key file so a new
//! user can run `kekd --dev` without an AWS account. Both bind the
//! [`EncryptionContext`] to every wrapped key, and both report failures as a
//! classified [`ProviderError`] that keeps KMS's code, message and request id
//! for the operator — never key material.

mod assume_role;
mod aws_kms;
pub(crate) mod aws_sdk;
pub(crate) mod budget;
mod budgeted;
mod instrumented;
pub(crate) mod local;

pub(crate) use crate::domain::EncryptionContext;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

pub(crate) use aws_kms::AwsKmsProvider;
pub use local::RootKeyError;
pub(crate) use local::{IfMissing, LocalProvider};

/// Builds the provider `settings` ask for. `create_root_key` lets the local
/// provider create a missing root key file (the daemon); a check that must
/// write nothing (`kekctl test --config`) passes false.
pub(crate) async fn from_settings(
    settings: &crate::config::Settings,
    root_key: local::IfMissing,
) -> Result<std::sync::Arc<dyn KeyProvider>, local::RootKeyError> {
    build(settings, None, root_key, aws_sdk::SDK_ATTEMPTS).await
}

/// The provider of a Test that records its calls (KMS and STS, refused
/// ones too) in `audit` — an organization's, while it is added or changed,
/// so its customer is shown every call made for them — and counts them,
/// but creates nothing (no local root key) and takes no turn in the budget.
pub(crate) async fn recorded(
    settings: &crate::config::Settings,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    audit: std::sync::Arc<crate::audit::Audit>,
) -> Result<std::sync::Arc<dyn KeyProvider>, local::RootKeyError> {
    let inner = build(
        settings,
        Some(audit.clone()),
        local::IfMissing::Refuse,
        aws_sdk::SDK_ATTEMPTS,
    )
    .await?;
    Ok(instrumented::Instrumented::wrap(inner, metrics, audit))
}

/// The provider, with `sdk_attempts` attempts per KMS request in the SDK.
async fn build(
    settings: &crate::config::Settings,
    audit: Option<std::sync::Arc<crate::audit::Audit>>,
    root_key: local::IfMissing,
    sdk_attempts: u32,
) -> Result<std::sync::Arc<dyn KeyProvider>, local::RootKeyError> {
    use crate::config::ProviderSettings;
    Ok(match &settings.provider {
        ProviderSettings::Local { root_key_path } => {
            std::sync::Arc::new(LocalProvider::open(root_key_path, root_key)?)
        }
        ProviderSettings::AwsKms { key, backups } => {
            let region = settings.region.as_deref().unwrap_or(&key.region);
            std::sync::Arc::new(
                AwsKmsProvider::new(
                    region,
                    &key.to_string(),
                    backups,
                    settings.kms_timeouts,
                    sdk_attempts,
                    settings.assume_role.as_ref().map(|r| assume_role::Assume {
                        role_arn: &r.role_arn,
                        external_id: r.external_id.as_deref(),
                        org: &settings.organization_id,
                        session: settings.customer_keys.role_session,
                        audit,
                    }),
                )
                .await,
            )
        }
    })
}

/// The provider the daemon uses: built from `settings`, every call counted
/// and timed for `/metrics` and recorded in the audit trail — and, for AWS
/// KMS, every request sent through the daemon's shared `budget` (which then
/// does the retrying, so each attempt takes its turn).
pub(crate) async fn instrumented(
    settings: &crate::config::Settings,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    audit: std::sync::Arc<crate::audit::Audit>,
    budget: &std::sync::Arc<budget::Budget>,
) -> Result<std::sync::Arc<dyn KeyProvider>, local::RootKeyError> {
    use crate::config::ProviderSettings;
    let kms = matches!(settings.provider, ProviderSettings::AwsKms { .. });
    let attempts = if kms { 1 } else { aws_sdk::SDK_ATTEMPTS };
    let inner = build(
        settings,
        Some(audit.clone()),
        local::IfMissing::Create,
        attempts,
    )
    .await?;
    let measured = instrumented::Instrumented::wrap(inner, metrics, audit);
    Ok(if kms {
        budgeted::Budgeted::wrap(
            measured,
            budget.clone(),
            &settings.organization_id,
            settings.kms_timeouts.operation,
        )
    } else {
        measured
    })
}

/// A fresh 256-bit data key: the plaintext (zeroized on drop, never printed)
/// and the provider's ciphertext of it.
pub(crate) struct DataKey {
    /// Plaintext AES-256 key; use once, then drop.
    pub(crate) plaintext: Zeroizing<[u8; 32]>,
    /// The wrapped data key (KMS `CiphertextBlob`).
    pub(crate) ciphertext: Vec<u8>,
    /// The key that wrapped it: the key ARN KMS reports, not the alias.
    pub(crate) wrapping_key_arn: String,
    /// KMS's request id (for the audit trail).
    pub(crate) request_id: Option<String>,
}

/// An unwrapped data key (zeroized on drop, never printed).
pub(crate) struct Decrypted {
    /// The plaintext data key.
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    /// KMS's request id.
    pub(crate) request_id: Option<String>,
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
pub(crate) struct ReEncrypted {
    /// The new wrapped data key.
    pub(crate) ciphertext: Vec<u8>,
    /// The key ARN that wraps it now.
    pub(crate) wrapping_key_arn: String,
    /// KMS's request id.
    pub(crate) request_id: Option<String>,
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
pub(crate) struct KeyDescription {
    /// The key ARN.
    pub(crate) arn: String,
    /// e.g. `SYMMETRIC_DEFAULT`.
    pub(crate) key_spec: String,
    /// e.g. `ENCRYPT_DECRYPT`.
    pub(crate) key_usage: String,
    /// e.g. `Enabled`, `Disabled`, `PendingDeletion`.
    pub(crate) key_state: String,
    /// A multi-Region key (primary or replica).
    pub(crate) multi_region: bool,
    /// When a key pending deletion is deleted.
    pub(crate) deletion_date: Option<crate::time::Timestamp>,
    /// KMS's request id.
    pub(crate) request_id: Option<String>,
    /// The local provider's root key, not a KMS key: it has no key spec,
    /// usage or state of its own, and is never described as if it had.
    pub(crate) local: bool,
}

impl KeyDescription {
    /// What the key is, for people: `SYMMETRIC_DEFAULT ENCRYPT_DECRYPT
    /// Enabled` for a KMS key, or what a local root key really is.
    pub(crate) fn summary(&self) -> String {
        if self.local {
            "a local root key (AES-256-GCM in this process, no KMS)".into()
        } else {
            format!("{} {} {}", self.key_spec, self.key_usage, self.key_state)
        }
    }
}

pub use crate::domain::FailureKind;

/// A failed provider call. Carries KMS's diagnostics, never key material.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
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
pub(crate) trait KeyProvider: Send + Sync + 'static {
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

    /// The backup keys that also wrap every new data key (ARNs as
    /// configured); none by default.
    fn backup_keys(&self) -> Vec<String> {
        Vec::new()
    }

    /// Wraps a data key under another key (KMS `Encrypt`), with the same
    /// encryption context: a backup wrapping.
    async fn encrypt(
        &self,
        key: &str,
        _plaintext: &[u8],
        _context: &EncryptionContext,
    ) -> Result<Wrapped, ProviderError> {
        Err(ProviderError {
            operation: "Encrypt",
            kind: FailureKind::Other,
            code: None,
            message: format!("this key provider cannot wrap under {key}"),
            request_id: None,
        })
    }

    /// Told which key decrypted a data key and what the primary did;
    /// instrumented providers keep it for status, metrics and the order of
    /// the next attempts.
    fn note_served(&self, _key: &str, _primary: Primary<'_>) {}

    /// Whether backups have been serving decryptions since the primary
    /// became unavailable (`None`: the primary serves).
    fn fallback(&self) -> Option<Fallback> {
        None
    }

    /// Whether to try the backups first: the primary failed as unavailable
    /// less than [`PRIMARY_RETRY`] ago, so every decryption need not wait
    /// for its timeout again; after that the primary is tried first again.
    fn prefer_backups(&self) -> bool {
        false
    }

    /// Describes any key (KMS `DescribeKey`): the backups' preflight.
    async fn describe(&self, key: &str) -> Result<KeyDescription, ProviderError> {
        if key == self.configured_key() {
            return self.describe_key().await;
        }
        Err(ProviderError {
            operation: "DescribeKey",
            kind: FailureKind::NotFound,
            code: None,
            message: format!("this key provider knows no key {key}"),
            request_id: None,
        })
    }
}

/// What the primary key did for one decryption.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Primary<'a> {
    /// It decrypted.
    Served,
    /// It was unavailable (and a backup served).
    Failed(&'a ProviderError),
    /// It was not asked (it failed recently; a backup served).
    NotTried,
}

/// How long after the primary key failed as unavailable decryptions go to
/// the backups first.
pub(crate) const PRIMARY_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Decryptions served by a backup key while the primary is unavailable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    /// Since when the primary key has been failing (the first fallback).
    #[serde(with = "crate::time::rfc3339")]
    pub primary_unavailable_since: crate::time::Timestamp,
    /// Why, the last time (operation, kind, code, message, request id).
    pub primary_error: String,
    /// The backup key that served last.
    pub served_by: String,
    /// When.
    #[serde(with = "crate::time::rfc3339")]
    pub served_at: crate::time::Timestamp,
    /// When the primary was last asked (and failed).
    #[serde(with = "crate::time::rfc3339")]
    pub primary_tried_at: crate::time::Timestamp,
}

/// A data key wrapped under a backup key.
pub(crate) struct Wrapped {
    /// The key ARN KMS reports.
    pub(crate) wrapping_key_arn: String,
    /// KMS `CiphertextBlob`.
    pub(crate) ciphertext: Vec<u8>,
    /// KMS's request id.
    pub(crate) request_id: Option<String>,
}
