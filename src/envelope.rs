//! Envelope encryption of a private key.
//!
//! One KMS `GenerateDataKey` (AES_256) per key pair; AES-256-GCM over the
//! PKCS#8 DER private key with a random 96-bit nonce; the encryption context
//! (organization id and key-pair id) is sent to KMS *and* used, canonically
//! encoded, as the GCM associated data; the plaintext data key is zeroized as
//! soon as it has been used. The serialized form ([`Envelope`]) is the
//! `export` format (docs/envelope-format.md).
//!
//! With backup KMS keys the same data key is also wrapped (KMS `Encrypt`,
//! same encryption context) under each backup (`kekd-envelope-v2`). Opening
//! tries the primary; only when KMS is *unavailable* there (unreachable,
//! timeout, throttled, 5xx, key unavailable) does it try the backups, in
//! order — an access refusal or a bad ciphertext is reported, never masked.

use crate::domain::{
    EncryptionContext, Envelope, KeyAlgorithm, Wrapping, ENVELOPE_V1, ENVELOPE_V2,
    KEY_PAIR_CONTEXT_KEY,
};
use crate::provider::{KeyProvider, Primary, ProviderError};
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

/// Seals the private key `private` (of `algorithm`) under a fresh data key
/// from `provider`.
pub(crate) async fn seal(
    provider: &dyn KeyProvider,
    context: EncryptionContext,
    key_pair_id: &str,
    algorithm: KeyAlgorithm,
    private: &[u8],
) -> Result<Envelope, ProviderError> {
    let data_key = provider.generate_data_key(&context).await?;
    let (nonce, ciphertext) =
        crate::aead::seal(&data_key.plaintext, &context.canonical_bytes(), private);
    let mut backups = Vec::new();
    for key in provider.backup_keys() {
        // A backup that cannot wrap fails the rotation (retried): an
        // envelope never lacks a configured wrapping.
        let w = provider
            .encrypt(&key, data_key.plaintext.as_slice(), &context)
            .await?;
        backups.push(Wrapping {
            wrapping_key_arn: w.wrapping_key_arn,
            encrypted_data_key: w.ciphertext,
        });
    }
    drop(data_key.plaintext); // zeroized here, before anything else happens
    Ok(Envelope {
        format: if backups.is_empty() {
            ENVELOPE_V1
        } else {
            ENVELOPE_V2
        }
        .into(),
        backups,
        algorithm,
        key_pair_id: key_pair_id.into(),
        wrapping_key_arn: data_key.wrapping_key_arn,
        encryption_context: context,
        encrypted_data_key: data_key.ciphertext,
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

/// Every wrapping of the envelope's data key, the primary first.
pub(crate) fn wrappings(env: &Envelope) -> Vec<Wrapping> {
    std::iter::once(Wrapping {
        wrapping_key_arn: env.wrapping_key_arn.clone(),
        encrypted_data_key: env.encrypted_data_key.clone(),
    })
    .chain(env.backups.iter().cloned())
    .collect()
}

/// Decrypts the private key (PKCS#8 DER) through `provider`: through the
/// primary wrapping, or — only while KMS is unavailable there — through the
/// first backup that answers. Right after the primary failed that way the
/// backups are tried first, so each decryption does not wait for the
/// primary's timeout again. The provider is told which one served.
pub(crate) async fn open(
    provider: &dyn KeyProvider,
    env: &Envelope,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let all = wrappings(env);
    let mut order: Vec<usize> = (0..all.len()).collect();
    if all.len() > 1 && provider.prefer_backups() {
        order.rotate_left(1); // backups first, the primary last
    }
    let mut primary_failure: Option<ProviderError> = None;
    let mut last = None;
    for i in order {
        match open_with(provider, env, &all[i]).await {
            Ok(k) => {
                let primary = match (i, &primary_failure) {
                    (0, _) => Primary::Served,
                    (_, Some(e)) => Primary::Failed(e),
                    (_, None) => Primary::NotTried,
                };
                if i > 0 {
                    tracing::warn!(key_pair_id = %env.key_pair_id, primary = %all[0].wrapping_key_arn, served_by = %all[i].wrapping_key_arn, "KMS unavailable for the primary key; a backup key decrypted");
                }
                provider.note_served(&all[i].wrapping_key_arn, primary);
                return Ok(k);
            }
            // Unavailable: the next wrapping may answer.
            Err(EnvelopeError::Provider(e)) if e.kind.is_unavailable() && all.len() > 1 => {
                if i == 0 {
                    primary_failure = Some(e.clone());
                }
                last = Some(e);
            }
            // Refused, a bad ciphertext, a malformed envelope: reported,
            // never masked by another key.
            Err(e) => return Err(e),
        }
    }
    Err(EnvelopeError::Provider(
        primary_failure
            .or(last)
            .expect("at least one wrapping was tried"),
    ))
}

/// Decrypts the private key through one wrapping of its data key.
pub(crate) async fn open_with(
    provider: &dyn KeyProvider,
    env: &Envelope,
    wrapping: &Wrapping,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let expected = if env.backups.is_empty() {
        ENVELOPE_V1
    } else {
        ENVELOPE_V2
    };
    if env.format != expected {
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
            &wrapping.wrapping_key_arn,
            &wrapping.encrypted_data_key,
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
        let p = LocalProvider::open(
            &dir.path().join("root.key"),
            crate::provider::IfMissing::Create,
        )
        .unwrap();
        let env = seal(
            &p,
            context_for("organization-id", "acme", "kek-1"),
            "kek-1",
            KeyAlgorithm::Rsa,
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
