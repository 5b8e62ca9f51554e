//! AWS KMS as the key provider: the customer's symmetric key wraps every data
//! key, so the customer decides who can ever decrypt a private key.
//!
//! The client pins a `BehaviorVersion`, sets connect, attempt *and* operation
//! timeouts (the SDK has no operation timeout by default, so a hung KMS would
//! hang the caller), and takes its endpoint from the standard
//! `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL` variables — nothing
//! project-specific. Errors are classified into [`FailureKind`]s.

use super::{
    DataKey, Decrypted, EncryptionContext, FailureKind, KeyDescription, KeyProvider, ProviderError,
    ReEncrypted,
};
use crate::config::KmsTimeouts;
use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use std::collections::HashMap;
use zeroize::{Zeroize, Zeroizing};

/// KMS through aws-sdk-kms.
#[derive(Debug, Clone)]
pub(crate) struct AwsKmsProvider {
    client: aws_sdk_kms::Client,
    key: String,
}

impl AwsKmsProvider {
    /// A client for `key` (alias or key ARN) in `region`.
    pub(crate) async fn new(region: &str, key: &str, timeouts: KmsTimeouts) -> AwsKmsProvider {
        let sdk = aws_config::defaults(BehaviorVersion::v2026_01_12())
            .region(Region::new(region.to_string()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeouts.connect)
                    .operation_attempt_timeout(timeouts.attempt)
                    .operation_timeout(timeouts.operation)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .load()
            .await;
        AwsKmsProvider {
            client: aws_sdk_kms::Client::new(&sdk),
            key: key.to_string(),
        }
    }
}

fn context_map(context: &EncryptionContext) -> HashMap<String, String> {
    context
        .as_map()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Turns an SDK error into the operator's terms, keeping code, message and
/// request id. Never includes request or response bodies.
fn classify<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let request_id = err.request_id().map(str::to_string);
    let (kind, code, message) = match &err {
        SdkError::TimeoutError(_) => (
            FailureKind::Timeout,
            None,
            "no answer from KMS within the configured timeout".to_string(),
        ),
        SdkError::DispatchFailure(d) => {
            let chain = DisplayErrorContext(&err).to_string();
            if d.is_timeout() {
                (
                    FailureKind::Timeout,
                    None,
                    format!("no answer from KMS in time ({})", root_cause(&err)),
                )
            } else if d.is_io() {
                (
                    FailureKind::Unreachable,
                    None,
                    format!("cannot reach KMS: {}", root_cause(&err)),
                )
            } else if chain.to_ascii_lowercase().contains("credential") {
                (FailureKind::Credentials, None, NO_CREDENTIALS.to_string())
            } else {
                (
                    FailureKind::Unreachable,
                    None,
                    format!("cannot reach KMS: {}", root_cause(&err)),
                )
            }
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().map(str::to_string);
            let message = s.err().message().unwrap_or("").to_string();
            let status = s.raw().status().as_u16();
            let kind = match code.as_deref() {
                Some("AccessDeniedException") => FailureKind::AccessDenied,
                Some(
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException",
                ) => FailureKind::Credentials,
                Some("DisabledException") => FailureKind::KeyDisabled,
                Some("KMSInvalidStateException") => FailureKind::InvalidKeyState,
                Some("NotFoundException") => FailureKind::NotFound,
                Some("InvalidCiphertextException" | "IncorrectKeyException") => {
                    FailureKind::InvalidCiphertext
                }
                Some("ThrottlingException" | "LimitExceededException") => FailureKind::Throttled,
                Some("DependencyTimeoutException") => FailureKind::Timeout,
                Some("KeyUnavailableException" | "KMSInternalException") => {
                    FailureKind::ServiceUnavailable
                }
                _ if status == 429 => FailureKind::Throttled,
                _ if status >= 500 => FailureKind::ServiceUnavailable,
                _ => FailureKind::Other,
            };
            let message = if message.is_empty() {
                format!("HTTP {status}")
            } else {
                message
            };
            (kind, code, message)
        }
        SdkError::ResponseError(r) => (
            if r.raw().status().as_u16() >= 500 {
                FailureKind::ServiceUnavailable
            } else {
                FailureKind::Other
            },
            None,
            format!(
                "unreadable KMS response (HTTP {})",
                r.raw().status().as_u16()
            ),
        ),
        _ => (FailureKind::Other, None, root_cause(&err)),
    };
    ProviderError {
        operation,
        kind,
        code,
        message,
        request_id,
    }
}

/// What an operator reads when kekd has no AWS credentials at all — said
/// once, with where credentials come from, instead of the SDK's attempt log.
const NO_CREDENTIALS: &str = "no AWS credentials found: give the host an instance role (IMDS), \
    or set AWS_PROFILE (with a config file the kekd user can read) or \
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in kekd's environment \
    (under systemd: a drop-in with Environment= or EnvironmentFile=)";

/// The innermost cause of an SDK error, in one line: what happened, not the
/// SDK's whole debug chain.
fn root_cause(err: &dyn std::error::Error) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let line = text.lines().next().unwrap_or_default();
    if line.len() > 300 {
        format!("{}…", &line[..line.floor_char_boundary(300)])
    } else {
        line.to_string()
    }
}

fn missing(operation: &'static str, field: &str) -> ProviderError {
    ProviderError {
        operation,
        kind: FailureKind::Other,
        code: None,
        message: format!("KMS answered without {field}"),
        request_id: None,
    }
}

#[async_trait]
impl KeyProvider for AwsKmsProvider {
    fn configured_key(&self) -> String {
        self.key.clone()
    }

    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<DataKey, ProviderError> {
        const OP: &str = "GenerateDataKey";
        let mut out = self
            .client
            .generate_data_key()
            .key_id(&self.key)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let mut plain = out
            .plaintext
            .take()
            .ok_or_else(|| missing(OP, "Plaintext"))?
            .into_inner();
        let arr: Result<[u8; 32], _> = plain.as_slice().try_into();
        plain.zeroize();
        let plaintext = Zeroizing::new(arr.map_err(|_| missing(OP, "a 32-byte Plaintext"))?);
        Ok(DataKey {
            plaintext,
            ciphertext: out
                .ciphertext_blob
                .take()
                .ok_or_else(|| missing(OP, "CiphertextBlob"))?
                .into_inner(),
            wrapping_key_arn: out.key_id.take().ok_or_else(|| missing(OP, "KeyId"))?,
            request_id: out.request_id().map(str::to_string),
        })
    }

    async fn decrypt(
        &self,
        wrapping_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, ProviderError> {
        const OP: &str = "Decrypt";
        let mut out = self
            .client
            .decrypt()
            .key_id(wrapping_key_arn)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let plain = out
            .plaintext
            .take()
            .ok_or_else(|| missing(OP, "Plaintext"))?;
        Ok(Decrypted {
            plaintext: Zeroizing::new(plain.into_inner()),
            request_id: out.request_id().map(str::to_string),
        })
    }

    async fn re_encrypt(
        &self,
        source_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<ReEncrypted, ProviderError> {
        const OP: &str = "ReEncrypt";
        let map = context_map(context);
        let mut out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(ciphertext))
            .source_key_id(source_key_arn)
            .set_source_encryption_context(Some(map.clone()))
            .destination_key_id(&self.key)
            .set_destination_encryption_context(Some(map))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(ReEncrypted {
            ciphertext: out
                .ciphertext_blob
                .take()
                .ok_or_else(|| missing(OP, "CiphertextBlob"))?
                .into_inner(),
            wrapping_key_arn: out.key_id.take().ok_or_else(|| missing(OP, "KeyId"))?,
            request_id: out.request_id().map(str::to_string),
        })
    }

    async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
        const OP: &str = "DescribeKey";
        let out = self
            .client
            .describe_key()
            .key_id(&self.key)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let meta = out
            .key_metadata()
            .ok_or_else(|| missing(OP, "KeyMetadata"))?;
        Ok(KeyDescription {
            arn: meta.arn().unwrap_or_default().to_string(),
            key_spec: meta
                .key_spec()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            key_usage: meta
                .key_usage()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            key_state: meta
                .key_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            multi_region: meta.multi_region().unwrap_or(false),
            request_id: out.request_id().map(str::to_string),
        })
    }
}
