//! AWS KMS as the key provider: the customer's symmetric key wraps every data
//! key, so the customer decides who can ever decrypt a private key.
//!
//! The client pins a `BehaviorVersion`, sets connect, attempt *and* operation
//! timeouts (the SDK has no operation timeout by default, so a hung KMS would
//! hang the caller), and takes its endpoint from the standard
//! `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL` variables — nothing
//! project-specific. Errors are classified into [`FailureKind`]s.

use super::assume_role::{Assume, AssumedRole, RoleCredentials};
use super::aws_sdk;
use super::{
    DataKey, Decrypted, EncryptionContext, FailureKind, KeyDescription, KeyProvider, ProviderError,
    ReEncrypted, Wrapped,
};
use crate::config::KmsTimeouts;
use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// KMS through aws-sdk-kms: one client for the primary key's region, and
/// one per other region a backup key lives in.
#[derive(Debug, Clone)]
pub(crate) struct AwsKmsProvider {
    client: aws_sdk_kms::Client,
    key: String,
    backups: Vec<String>,
    /// Clients by region, for keys outside the primary's region.
    regional: HashMap<String, aws_sdk_kms::Client>,
    /// The customer's role every client's credentials come from, when the
    /// organization is reached by assuming it.
    assumed: Option<Arc<AssumedRole>>,
}

impl AwsKmsProvider {
    /// A client for `key` (alias or key ARN) in `region`, and for each
    /// backup key (ARNs) in its own region.
    pub(crate) async fn new(
        region: &str,
        key: &str,
        backups: &[crate::config::arn::KmsKeyArn],
        timeouts: KmsTimeouts,
        attempts: u32,
        assume: Option<Assume<'_>>,
    ) -> AwsKmsProvider {
        let sdk = aws_sdk::config_with_attempts(region, timeouts, attempts).await;
        let assumed = assume.map(|a| AssumedRole::new(&sdk, &a));
        let client = |sdk: &aws_config::SdkConfig| {
            let mut conf = aws_sdk_kms::config::Builder::from(sdk);
            if let Some(role) = &assumed {
                conf = conf.credentials_provider(RoleCredentials(role.clone()));
            }
            aws_sdk_kms::Client::from_conf(conf.build())
        };
        let mut regional = HashMap::new();
        for b in backups {
            if b.region != region && !regional.contains_key(&b.region) {
                let sdk = aws_sdk::config_with_attempts(&b.region, timeouts, attempts).await;
                regional.insert(b.region.clone(), client(&sdk));
            }
        }
        AwsKmsProvider {
            client: client(&sdk),
            key: key.to_string(),
            backups: backups.iter().map(|b| b.to_string()).collect(),
            regional,
            assumed,
        }
    }

    /// With an assumed role: its credentials are fresh, or why not (an STS
    /// refusal is `assume_role_denied`, not a KMS error).
    async fn ready(&self) -> Result<(), ProviderError> {
        match &self.assumed {
            Some(role) => role.credentials().await.map(drop),
            None => Ok(()),
        }
    }

    /// The client for the region an ARN names (the primary's otherwise).
    fn client_for(&self, arn: &str) -> &aws_sdk_kms::Client {
        arn.parse::<crate::config::arn::KmsKeyArn>()
            .ok()
            .and_then(|a| self.regional.get(&a.region))
            .unwrap_or(&self.client)
    }
}

fn context_map(context: &EncryptionContext) -> HashMap<String, String> {
    context
        .as_map()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Turns a KMS SDK error into the operator's terms.
fn classify<E>(
    operation: &'static str,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    aws_sdk::classify("KMS", operation, err, kms_code)
}

/// KMS's error codes, in the operator's terms.
fn kms_code(code: &str) -> Option<FailureKind> {
    Some(match code {
        "AccessDeniedException" => FailureKind::AccessDenied,
        "DisabledException" => FailureKind::KeyDisabled,
        "KMSInvalidStateException" => FailureKind::InvalidKeyState,
        "NotFoundException" => FailureKind::NotFound,
        "InvalidCiphertextException" | "IncorrectKeyException" => FailureKind::InvalidCiphertext,
        "LimitExceededException" => FailureKind::Throttled,
        "DependencyTimeoutException" => FailureKind::Timeout,
        "KeyUnavailableException" | "KMSInternalException" => FailureKind::ServiceUnavailable,
        _ => return None,
    })
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
        self.ready().await?;
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
        self.ready().await?;
        let mut out = self
            .client_for(wrapping_key_arn)
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
        self.ready().await?;
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

    fn backup_keys(&self) -> Vec<String> {
        self.backups.clone()
    }

    async fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, ProviderError> {
        const OP: &str = "Encrypt";
        self.ready().await?;
        let out = self
            .client_for(key)
            .encrypt()
            .key_id(key)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(Wrapped {
            wrapping_key_arn: out
                .key_id()
                .ok_or_else(|| missing(OP, "KeyId"))?
                .to_string(),
            ciphertext: out
                .ciphertext_blob()
                .ok_or_else(|| missing(OP, "CiphertextBlob"))?
                .as_ref()
                .to_vec(),
            request_id: out.request_id().map(str::to_string),
        })
    }

    async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
        self.describe(&self.key).await
    }

    async fn describe(&self, key: &str) -> Result<KeyDescription, ProviderError> {
        const OP: &str = "DescribeKey";
        self.ready().await?;
        let out = self
            .client_for(key)
            .describe_key()
            .key_id(key)
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
            deletion_date: meta
                .deletion_date()
                .and_then(|d| chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos())),
            request_id: out.request_id().map(str::to_string),
            local: false,
        })
    }
}
