//! The local key provider: a 256-bit root key in a file, for `kekd --dev` and
//! unit tests. It behaves like KMS where it matters — data keys are wrapped
//! with AES-256-GCM under the root key and the encryption context is bound as
//! associated data — so the rest of kekd cannot tell the difference.
//!
//! Wrapped data key layout: `0x01 ‖ nonce (12) ‖ AES-GCM(dk) ‖ tag (16)`.

use super::{
    DataKey, Decrypted, EncryptionContext, FailureKind, KeyDescription, KeyProvider, ProviderError,
    ReEncrypted,
};
use crate::aead;
use async_trait::async_trait;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

const BLOB_VERSION: u8 = 1;

/// A root key file acting as the wrapping key.
pub(crate) struct LocalProvider {
    root: Zeroizing<[u8; 32]>,
    key_id: String,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Why the root key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("root key file {path}: {problem}")]
pub struct RootKeyError {
    /// The file.
    pub path: String,
    /// What is wrong (never the key).
    pub problem: String,
}

/// What to do when the root key file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMissing {
    /// Make one (the daemon, on first start).
    Create,
    /// Say so (a candidate configuration's Test, which writes nothing).
    Refuse,
}

impl LocalProvider {
    /// Opens the root key at `path`; `if_missing` says what a missing file
    /// means.
    pub(crate) fn open(path: &Path, if_missing: IfMissing) -> Result<LocalProvider, RootKeyError> {
        let create = if_missing == IfMissing::Create;
        let err = |problem: String| RootKeyError {
            path: path.display().to_string(),
            problem,
        };
        let root = match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    err(format!(
                        "is {} bytes long, expected exactly 32",
                        bytes.len()
                    ))
                })?;
                Zeroizing::new(arr)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
                return Err(err("does not exist".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| err(format!("cannot create its directory: {e}")))?;
                }
                let key = Zeroizing::new(aead::random::<32>());
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| err(format!("cannot create: {e}")))?;
                f.write_all(&*key)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(format!("cannot write: {e}")))?;
                key
            }
            Err(e) => return Err(err(format!("cannot read: {e}"))),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &*root);
        let key_id = format!("local:root-key/{}", hex::encode(&digest.as_ref()[..8]));
        Ok(LocalProvider { root, key_id })
    }

    fn aad(&self, context: &EncryptionContext) -> Vec<u8> {
        let mut aad = self.key_id.as_bytes().to_vec();
        aad.extend_from_slice(&context.canonical_bytes());
        aad
    }

    /// Wraps `plaintext` under the root key, bound to `context`.
    pub(crate) fn wrap(&self, plaintext: &[u8], context: &EncryptionContext) -> Vec<u8> {
        let (nonce, ct) = aead::seal(&self.root, &self.aad(context), plaintext);
        let mut blob = vec![BLOB_VERSION];
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        blob
    }

    fn unwrap(
        &self,
        operation: &'static str,
        wrapping_key_arn: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let invalid = |message: &str| ProviderError {
            operation,
            kind: FailureKind::InvalidCiphertext,
            code: Some("InvalidCiphertextException".into()),
            message: message.into(),
            request_id: None,
        };
        if wrapping_key_arn != self.key_id {
            return Err(ProviderError {
                kind: FailureKind::NotFound,
                code: Some("NotFoundException".into()),
                ..invalid(&format!(
                    "wrapping key {wrapping_key_arn} is not this root key ({})",
                    self.key_id
                ))
            });
        }
        if blob.len() < 1 + 12 + 16 || blob[0] != BLOB_VERSION {
            return Err(invalid("wrapped data key is malformed"));
        }
        let nonce: [u8; 12] = blob[1..13].try_into().expect("length checked");
        aead::open(&self.root, &nonce, &self.aad(context), &blob[13..])
            .map_err(|_| invalid("wrapped data key does not decrypt under this root key with this encryption context"))
    }
}

#[async_trait]
impl KeyProvider for LocalProvider {
    fn configured_key(&self) -> String {
        self.key_id.clone()
    }

    async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<DataKey, ProviderError> {
        let plaintext = Zeroizing::new(aead::random::<32>());
        let ciphertext = self.wrap(&*plaintext, context);
        Ok(DataKey {
            plaintext,
            ciphertext,
            wrapping_key_arn: self.key_id.clone(),
            request_id: None,
        })
    }

    async fn decrypt(
        &self,
        wrapping_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Decrypted, ProviderError> {
        Ok(Decrypted {
            plaintext: self.unwrap("Decrypt", wrapping_key_arn, ciphertext, context)?,
            request_id: None,
        })
    }

    async fn re_encrypt(
        &self,
        source_key_arn: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> Result<ReEncrypted, ProviderError> {
        let plaintext = self.unwrap("ReEncrypt", source_key_arn, ciphertext, context)?;
        Ok(ReEncrypted {
            ciphertext: self.wrap(&plaintext, context),
            wrapping_key_arn: self.key_id.clone(),
            request_id: None,
        })
    }

    async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
        Ok(KeyDescription {
            arn: self.key_id.clone(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_state: "Enabled".into(),
            multi_region: false,
            deletion_date: None,
            request_id: None,
            local: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ctx(org: &str) -> EncryptionContext {
        EncryptionContext([("organization-id".to_string(), org.to_string())].into())
    }

    #[tokio::test]
    async fn creates_root_key_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/root.key");
        let p = LocalProvider::open(&path, crate::provider::IfMissing::Create).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dk = p.generate_data_key(&ctx("a")).await.unwrap();
        let back = p
            .decrypt(&dk.wrapping_key_arn, &dk.ciphertext, &ctx("a"))
            .await
            .unwrap();
        assert_eq!(&back.plaintext[..], &dk.plaintext[..]);
        // Same file, same key id; the wrapped key still opens after reopening.
        let again = LocalProvider::open(&path, crate::provider::IfMissing::Create).unwrap();
        assert_eq!(again.configured_key(), p.configured_key());
        assert!(again
            .decrypt(&dk.wrapping_key_arn, &dk.ciphertext, &ctx("a"))
            .await
            .is_ok());
        // Regression: `--dev` logged "SYMMETRIC_DEFAULT ENCRYPT_DECRYPT" for
        // the local root key, which is no KMS key and has neither.
        let said = p.describe_key().await.unwrap().summary();
        assert!(said.contains("local root key"), "{said}");
        assert!(!said.contains("SYMMETRIC"), "{said}");
    }

    #[tokio::test]
    async fn context_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            LocalProvider::open(&dir.path().join("k"), crate::provider::IfMissing::Create).unwrap();
        let dk = p.generate_data_key(&ctx("a")).await.unwrap();
        let e = p
            .decrypt(&dk.wrapping_key_arn, &dk.ciphertext, &ctx("b"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidCiphertext);
        let e = p
            .decrypt("local:root-key/other", &dk.ciphertext, &ctx("a"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::NotFound);
    }

    #[test]
    fn short_root_key_file_is_refused_without_printing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, b"short-secret").unwrap();
        let e = LocalProvider::open(&path, crate::provider::IfMissing::Create)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is 12 bytes long, expected exactly 32"), "{e}");
        assert!(!e.contains("short-secret"));
    }
}
