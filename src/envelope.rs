//! Envelope encryption of a private key (DESIGN.md item 2).
//!
//! One KMS `GenerateDataKey` (AES_256) per key pair; AES-256-GCM over the
//! PKCS#8 DER private key with a random 96-bit nonce; the encryption context
//! (organization id and key-pair id) is sent to KMS *and* used, canonically
//! encoded, as the GCM associated data; the plaintext data key is zeroized as
//! soon as it has been used. The serialized form is the `export` JSON, so the
//! field names below are a public format (README, "Envelope format").

use crate::provider::{EncryptionContext, KeyProvider, ProviderError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The context key that carries the key-pair id.
pub const KEY_PAIR_CONTEXT_KEY: &str = "key-pair-id";
/// The `format` value of this envelope version.
pub const FORMAT_V1: &str = "kekd-envelope-v1";

/// An encrypted private key and everything needed to decrypt it with KMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always [`FORMAT_V1`].
    pub format: String,
    /// The key pair this private key belongs to.
    pub key_pair_id: String,
    /// The KMS key ARN that wrapped the data key.
    pub wrapping_key_arn: String,
    /// The KMS encryption context; canonically encoded, the GCM associated data.
    pub encryption_context: EncryptionContext,
    /// KMS `CiphertextBlob` of the 256-bit data key (base64).
    #[serde(with = "b64")]
    pub encrypted_data_key: Vec<u8>,
    /// The 12-byte GCM nonce (base64).
    #[serde(with = "b64")]
    pub nonce: Vec<u8>,
    /// AES-256-GCM ciphertext of the PKCS#8 DER private key, 16-byte tag
    /// appended (base64).
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

/// Opening an envelope failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The provider could not unwrap the data key (KMS down, denied, …).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The envelope is not well-formed; names the field.
    #[error("envelope field `{0}` is malformed")]
    Malformed(&'static str),
    /// The data key unwrapped but the private key does not authenticate.
    /// Opaque, whatever the cause.
    #[error("the envelope's private key does not decrypt")]
    Decrypt,
}

/// The encryption context of a key pair: `{context_key: organization_id,
/// "key-pair-id": id}`.
pub fn context_for(
    context_key: &str,
    organization_id: &str,
    key_pair_id: &str,
) -> EncryptionContext {
    EncryptionContext(
        [
            (context_key.to_string(), organization_id.to_string()),
            (KEY_PAIR_CONTEXT_KEY.to_string(), key_pair_id.to_string()),
        ]
        .into(),
    )
}

/// Seals `private_pkcs8` under a fresh data key from `provider`.
pub async fn seal(
    provider: &dyn KeyProvider,
    context: EncryptionContext,
    key_pair_id: &str,
    private_pkcs8: &[u8],
) -> Result<Envelope, ProviderError> {
    let data_key = provider.generate_data_key(&context).await?;
    let (nonce, ciphertext) = crate::aead::seal(
        &data_key.plaintext,
        &context.canonical_bytes(),
        private_pkcs8,
    );
    drop(data_key.plaintext); // zeroized here, before anything else happens
    Ok(Envelope {
        format: FORMAT_V1.into(),
        key_pair_id: key_pair_id.into(),
        wrapping_key_arn: data_key.wrapping_key_arn,
        encryption_context: context,
        encrypted_data_key: data_key.ciphertext,
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

/// Decrypts the private key (PKCS#8 DER) through `provider`.
pub async fn open(
    provider: &dyn KeyProvider,
    env: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if env.format != FORMAT_V1 {
        return Err(EnvelopeError::Malformed("format"));
    }
    if env.encryption_context.as_map().get(KEY_PAIR_CONTEXT_KEY) != Some(&env.key_pair_id) {
        return Err(EnvelopeError::Malformed("encryption_context"));
    }
    let nonce: [u8; 12] = env
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::Malformed("nonce"))?;
    let data_key = provider
        .decrypt(
            &env.wrapping_key_arn,
            &env.encrypted_data_key,
            &env.encryption_context,
        )
        .await?;
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(
        data_key
            .plaintext
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::Malformed("encrypted_data_key"))?,
    );
    drop(data_key);
    crate::aead::open(
        &key,
        &nonce,
        &env.encryption_context.canonical_bytes(),
        &env.ciphertext,
    )
    .map_err(|_| EnvelopeError::Decrypt)
}

/// serde helpers: bytes as standard, padded base64 (RFC 4648 §4), the one
/// binary encoding of the envelope and the store.
pub(crate) mod b64 {
    use super::{Engine, B64};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        B64.decode(String::deserialize(d)?)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::LocalProvider;

    async fn sealed() -> (tempfile::TempDir, LocalProvider, Envelope) {
        let dir = tempfile::tempdir().unwrap();
        let p = LocalProvider::open_or_create(&dir.path().join("root.key")).unwrap();
        let env = seal(
            &p,
            context_for("organization-id", "acme", "kek-1"),
            "kek-1",
            b"private key bytes",
        )
        .await
        .unwrap();
        (dir, p, env)
    }

    #[tokio::test]
    async fn round_trip() {
        let (_d, p, env) = sealed().await;
        assert_eq!(&open(&p, &env).await.unwrap()[..], b"private key bytes");
        let json = serde_json::to_string(&env).unwrap();
        assert!(!json.contains("private key bytes"));
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), env);
    }

    #[tokio::test]
    async fn wrong_context_is_refused() {
        let (_d, p, mut env) = sealed().await;
        env.encryption_context
            .0
            .insert("organization-id".into(), "evil".into());
        assert!(matches!(
            open(&p, &env).await,
            Err(EnvelopeError::Provider(_))
        ));
    }

    #[tokio::test]
    async fn flipped_bit_in_each_field_is_detected() {
        let (_d, p, env) = sealed().await;
        let fields: [fn(&mut Envelope); 5] = [
            |e| e.encrypted_data_key[5] ^= 1,
            |e| e.nonce[0] ^= 1,
            |e| e.ciphertext[0] ^= 1,
            |e| *e.ciphertext.last_mut().unwrap() ^= 1, // the tag
            |e| e.wrapping_key_arn.push('x'),
        ];
        for (i, flip) in fields.iter().enumerate() {
            let mut bad = env.clone();
            flip(&mut bad);
            assert!(open(&p, &bad).await.is_err(), "flip {i} went unnoticed");
        }
        let mut bad = env.clone();
        bad.key_pair_id = "kek-2".into();
        assert!(matches!(
            open(&p, &bad).await,
            Err(EnvelopeError::Malformed("encryption_context"))
        ));
        let mut bad = env.clone();
        bad.format = "v0".into();
        assert!(matches!(
            open(&p, &bad).await,
            Err(EnvelopeError::Malformed("format"))
        ));
    }
}
