//! Envelope encryption of a private key.
//!
//! One KMS `GenerateDataKey` (AES_256) per key pair; AES-256-GCM over the
//! PKCS#8 DER private key with a random 96-bit nonce; the encryption context
//! (organization id and key-pair id) is sent to KMS *and* used, canonically
//! encoded, as the GCM associated data; the plaintext data key is zeroized as
//! soon as it has been used. The serialized form ([`Envelope`]) is the
//! `export` format (docs/envelope-format.md).

use crate::domain::{EncryptionContext, Envelope, ENVELOPE_V1, KEY_PAIR_CONTEXT_KEY};
use crate::provider::{KeyProvider, ProviderError};
use zeroize::Zeroizing;

/// Opening an envelope failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EnvelopeError {
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

/// Seals `private_pkcs8` under a fresh data key from `provider`.
pub(crate) async fn seal(
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
        format: ENVELOPE_V1.into(),
        key_pair_id: key_pair_id.into(),
        wrapping_key_arn: data_key.wrapping_key_arn,
        encryption_context: context,
        encrypted_data_key: data_key.ciphertext,
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

/// Decrypts the private key (PKCS#8 DER) through `provider`.
pub(crate) async fn open(
    provider: &dyn KeyProvider,
    env: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if env.format != ENVELOPE_V1 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::context_for;
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
