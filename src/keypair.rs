//! Key pairs of every key type — RSA and the X-Wing hybrid
//! (`hybrid.rs`): generation, ids, PEM, the private key as unwrap holds
//! it, and the proof that a private key belongs to a public key
//! (invariant I1 relies on it).

use crate::domain::{KeyAlgorithm, KeyBits, KeyType};
use crate::hybrid::HybridPrivateKey;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA256_MGF1SHA256,
};
use zeroize::Zeroizing;

/// A freshly generated key pair. The private half is zeroized on drop and
/// never printed.
pub struct GeneratedKeyPair {
    /// `kek-` + the first 16 hex digits of SHA-256 over the SPKI DER.
    pub id: String,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// The public key: X.509 SubjectPublicKeyInfo DER for RSA, the raw
    /// X-Wing public key (1,216 bytes) for the hybrid.
    pub public_key_der: Vec<u8>,
    /// The private key: PKCS#8 v1 DER for RSA, the expanded X-Wing key
    /// (2,464 bytes) for the hybrid.
    pub private_key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Generating or checking a key failed. Opaque on purpose: the cause would
/// only describe secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyPairError {
    /// The RNG or the key generator failed.
    #[error("key generation failed")]
    Generation,
    /// The private key does not parse, or is not the one of this public key.
    #[error("the private key does not match the public key")]
    Mismatch,
}

/// Generates a key pair of `key_type`. RSA is CPU-heavy (tens to hundreds
/// of milliseconds; the hybrid takes tens of microseconds): call it from a
/// blocking thread.
pub fn generate(key_type: KeyType) -> Result<GeneratedKeyPair, KeyPairError> {
    match key_type {
        KeyType::Rsa(bits) => generate_rsa(bits),
        KeyType::X25519MlKem768 => {
            let private = HybridPrivateKey::generate().map_err(|_| KeyPairError::Generation)?;
            let public_key_der = private.public_key().to_vec();
            Ok(GeneratedKeyPair {
                id: key_pair_id(&public_key_der),
                algorithm: KeyAlgorithm::X25519MlKem768,
                private_key: private.to_bytes().map_err(|_| KeyPairError::Generation)?,
                public_key_der,
            })
        }
    }
}

/// An RSA key pair of `bits`.
fn generate_rsa(bits: KeyBits) -> Result<GeneratedKeyPair, KeyPairError> {
    let size = match bits {
        KeyBits::Rsa2048 => KeySize::Rsa2048,
        KeyBits::Rsa3072 => KeySize::Rsa3072,
        KeyBits::Rsa4096 => KeySize::Rsa4096,
    };
    let private = PrivateDecryptingKey::generate(size).map_err(|_| KeyPairError::Generation)?;
    // A FIPS build keeps only keys the module itself calls approved.
    #[cfg(feature = "fips")]
    if !private.is_valid_fips_key() {
        return Err(KeyPairError::Generation);
    }
    let pkcs8 = private.as_der().map_err(|_| KeyPairError::Generation)?;
    let public_key_der = private
        .public_key()
        .as_der()
        .map_err(|_| KeyPairError::Generation)?
        .as_ref()
        .to_vec();
    Ok(GeneratedKeyPair {
        id: key_pair_id(&public_key_der),
        algorithm: KeyAlgorithm::Rsa,
        private_key: Zeroizing::new(pkcs8.as_ref().to_vec()),
        public_key_der,
    })
}

/// The key-pair id: `kek-` + first 16 hex of SHA-256 over the public key
/// as stored (SPKI DER for RSA, the raw X-Wing key for the hybrid).
/// Derived from the key itself, so anyone holding the public key can check
/// the id.
pub fn key_pair_id(public_key_der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key_der);
    format!("kek-{}", hex::encode(&d.as_ref()[..8]))
}

/// The PEM label of an RSA public key (SPKI).
pub const RSA_PEM_LABEL: &str = "PUBLIC KEY";

/// The PEM label of a hybrid public key: not `PUBLIC KEY`, so a tool that
/// only reads SPKI (OpenSSL, Python's `cryptography`) refuses it by its
/// label ("expecting: PUBLIC KEY") rather than misreading the bytes.
pub const HYBRID_PEM_LABEL: &str = "X25519-MLKEM768 PUBLIC KEY";

/// The PEM label of `algorithm`'s public keys.
pub fn pem_label(algorithm: KeyAlgorithm) -> &'static str {
    match algorithm {
        KeyAlgorithm::Rsa => RSA_PEM_LABEL,
        KeyAlgorithm::X25519MlKem768 => HYBRID_PEM_LABEL,
    }
}

/// The algorithm whose public keys carry the PEM label `label`.
pub fn algorithm_of_pem_label(label: &str) -> Option<KeyAlgorithm> {
    [KeyAlgorithm::Rsa, KeyAlgorithm::X25519MlKem768]
        .into_iter()
        .find(|a| pem_label(*a) == label)
}

/// PEM (`-----BEGIN PUBLIC KEY-----` for RSA, 64 base64 characters a line,
/// LF) of a public key. Every history record carries one, so the lines
/// are cut from one base64 string here rather than through the `pem`
/// crate's formatter (a fifth of a history record's cost); the test below
/// holds the output byte for byte to the crate's.
pub fn public_key_pem(algorithm: KeyAlgorithm, public_key_der: &[u8]) -> String {
    use base64::Engine;
    let label = pem_label(algorithm);
    let b64 = base64::engine::general_purpose::STANDARD.encode(public_key_der);
    let mut out = String::with_capacity(2 * label.len() + b64.len() + b64.len() / 64 + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, more) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = more;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// A private key as unwrap holds it, parsed once.
pub enum PrivateKey {
    /// RSA, for RSA-OAEP wrapped content keys (recording format 1).
    Rsa(PrivateDecryptingKey),
    /// X-Wing, for encapsulations (recording format 2).
    Hybrid(HybridPrivateKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    /// Parses `bytes` as a private key of `algorithm`.
    pub fn parse(algorithm: KeyAlgorithm, bytes: &[u8]) -> Result<PrivateKey, KeyPairError> {
        match algorithm {
            KeyAlgorithm::Rsa => PrivateDecryptingKey::from_pkcs8(bytes)
                .map(PrivateKey::Rsa)
                .map_err(|_| KeyPairError::Mismatch),
            KeyAlgorithm::X25519MlKem768 => HybridPrivateKey::from_bytes(bytes)
                .map(PrivateKey::Hybrid)
                .map_err(|_| KeyPairError::Mismatch),
        }
    }

    /// The content key inside `wrapped` (an RSA-OAEP ciphertext or an
    /// X-Wing encapsulation, as the recording's header carries it).
    pub fn unwrap(
        &self,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, crate::recording::BadWrappedKey> {
        match self {
            PrivateKey::Rsa(k) => crate::recording::unwrap_with_private_key(k, wrapped),
            PrivateKey::Hybrid(k) => crate::recording::unwrap_with_hybrid_key(k, wrapped),
        }
    }
}

/// Proves `private` is the private half of `public` for `algorithm`.
pub(crate) fn verify_matches(
    algorithm: KeyAlgorithm,
    private: &[u8],
    public: &[u8],
) -> Result<(), KeyPairError> {
    match algorithm {
        KeyAlgorithm::Rsa => verify_rsa(private, public),
        KeyAlgorithm::X25519MlKem768 => verify_hybrid(private, public),
    }
}

/// The hybrid proof: the public key held in the private key is the
/// stored one, and a fresh encapsulation to the *stored* public key
/// decapsulates to the same secret (ML-KEM's implicit rejection would
/// give another one for a key that does not belong).
fn verify_hybrid(private: &[u8], public: &[u8]) -> Result<(), KeyPairError> {
    let key = HybridPrivateKey::from_bytes(private).map_err(|_| KeyPairError::Mismatch)?;
    if key.public_key() != public {
        return Err(KeyPairError::Mismatch);
    }
    let (ct, sent) = crate::hybrid::encapsulate(public).map_err(|_| KeyPairError::Mismatch)?;
    let got = key.decapsulate(&ct).map_err(|_| KeyPairError::Mismatch)?;
    if *got != *sent {
        return Err(KeyPairError::Mismatch);
    }
    Ok(())
}

/// Proves `private_pkcs8` is the private half of `public_key_der`: the public
/// key derived from it must be byte-identical, and an RSA-OAEP round trip of a
/// random message through the stored public key must come back.
fn verify_rsa(private_pkcs8: &[u8], public_key_der: &[u8]) -> Result<(), KeyPairError> {
    let private =
        PrivateDecryptingKey::from_pkcs8(private_pkcs8).map_err(|_| KeyPairError::Mismatch)?;
    let derived = private
        .public_key()
        .as_der()
        .map_err(|_| KeyPairError::Mismatch)?;
    if derived.as_ref() != public_key_der {
        return Err(KeyPairError::Mismatch);
    }
    let public =
        PublicEncryptingKey::from_der(public_key_der).map_err(|_| KeyPairError::Mismatch)?;
    let enc = OaepPublicEncryptingKey::new(public).map_err(|_| KeyPairError::Mismatch)?;
    let dec = OaepPrivateDecryptingKey::new(private).map_err(|_| KeyPairError::Mismatch)?;
    let probe = crate::aead::random::<32>();
    let mut ct_buf = vec![0u8; enc.ciphertext_size()];
    let ct = enc
        .encrypt(&OAEP_SHA256_MGF1SHA256, &probe, &mut ct_buf, None)
        .map_err(|_| KeyPairError::Mismatch)?;
    let mut pt_buf = Zeroizing::new(vec![0u8; dec.min_output_size()]);
    let pt = dec
        .decrypt(&OAEP_SHA256_MGF1SHA256, ct, &mut pt_buf[..], None)
        .map_err(|_| KeyPairError::Mismatch)?;
    if pt[..] != probe[..] {
        return Err(KeyPairError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: KeyType = KeyType::Rsa(KeyBits::Rsa2048);

    #[test]
    fn generated_pairs_match_themselves_not_another() {
        for key_type in [RSA, KeyType::X25519MlKem768] {
            let alg = key_type.algorithm();
            let a = generate(key_type).unwrap();
            let b = generate(key_type).unwrap();
            assert_eq!(a.algorithm, alg);
            assert!(a.id.starts_with("kek-") && a.id.len() == 20);
            assert_ne!(a.id, b.id);
            assert_eq!(a.id, key_pair_id(&a.public_key_der));
            verify_matches(alg, &a.private_key, &a.public_key_der).unwrap();
            assert_eq!(
                verify_matches(alg, &a.private_key, &b.public_key_der),
                Err(KeyPairError::Mismatch),
                "{key_type}"
            );
            assert_eq!(
                verify_matches(alg, b"garbage", &a.public_key_der),
                Err(KeyPairError::Mismatch)
            );
            assert!(!format!("{a:?}").contains(&hex::encode(&a.private_key[..])));
            // The other type's proof never accepts it.
            let other = match alg {
                KeyAlgorithm::Rsa => KeyAlgorithm::X25519MlKem768,
                KeyAlgorithm::X25519MlKem768 => KeyAlgorithm::Rsa,
            };
            assert!(verify_matches(other, &a.private_key, &a.public_key_der).is_err());
        }
    }

    /// The hybrid proof is more than a comparison of the public key in
    /// the private one: a private key whose ML-KEM half was swapped for
    /// another (its public key patched to match) fails by decapsulation.
    #[test]
    fn the_hybrid_proof_decapsulates() {
        let a = generate(KeyType::X25519MlKem768).unwrap();
        let b = generate(KeyType::X25519MlKem768).unwrap();
        // a's public key, b's private ML-KEM key with a's encapsulation key
        // written into it: the embedded public key matches, the secret not.
        let mut forged = b.private_key.to_vec();
        forged[1152..1152 + 1184].copy_from_slice(&a.public_key_der[..1184]);
        forged[2400..].copy_from_slice(&a.private_key[2400..]);
        assert_eq!(
            verify_matches(KeyAlgorithm::X25519MlKem768, &forged, &a.public_key_der),
            Err(KeyPairError::Mismatch)
        );
    }

    #[test]
    fn private_keys_unwrap_what_their_public_keys_wrapped() {
        let h = generate(KeyType::X25519MlKem768).unwrap();
        let key = PrivateKey::parse(KeyAlgorithm::X25519MlKem768, &h.private_key).unwrap();
        let (ct, ss) = crate::hybrid::encapsulate(&h.public_key_der).unwrap();
        assert_eq!(&key.unwrap(&ct).unwrap()[..], &ss[..]);
        assert!(key.unwrap(&ct[..100]).is_err());
        assert!(PrivateKey::parse(KeyAlgorithm::Rsa, &h.private_key).is_err());
        assert_eq!(format!("{key:?}"), "PrivateKey(..)");
    }

    #[test]
    fn pem_round_trips() {
        for key_type in [RSA, KeyType::X25519MlKem768] {
            let a = generate(key_type).unwrap();
            let text = public_key_pem(a.algorithm, &a.public_key_der);
            let parsed = pem::parse(&text).unwrap();
            assert_eq!(algorithm_of_pem_label(parsed.tag()), Some(a.algorithm));
            assert_eq!(parsed.contents(), &a.public_key_der[..]);
        }
        assert!(public_key_pem(KeyAlgorithm::Rsa, b"x").starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(algorithm_of_pem_label("PRIVATE KEY"), None);
    }

    /// The PEM is byte for byte what the `pem` crate writes, at every
    /// length around a line's end and for real keys of each size.
    #[test]
    fn pem_is_the_pem_crates_output() {
        let crate_pem = |der: &[u8]| {
            pem::encode_config(
                &pem::Pem::new(RSA_PEM_LABEL, der.to_vec()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        };
        for len in (0..=100).chain([294, 398, 422, 550]) {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(
                public_key_pem(KeyAlgorithm::Rsa, &der),
                crate_pem(&der),
                "{len} bytes"
            );
        }
        for bits in [KeyBits::Rsa2048, KeyBits::Rsa3072, KeyBits::Rsa4096] {
            let der = generate(KeyType::Rsa(bits)).unwrap().public_key_der;
            assert_eq!(
                public_key_pem(KeyAlgorithm::Rsa, &der),
                crate_pem(&der),
                "{bits:?}"
            );
        }
    }
}
