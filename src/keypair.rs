//! RSA key pairs: generation, ids, PEM, and the proof that a private key
//! belongs to a public key (invariant I1 relies on it).

use crate::domain::KeyBits;
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
    /// The public key, X.509 SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
    /// The private key, PKCS#8 v1 DER.
    pub private_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("id", &self.id)
            .field("private_pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Generating or checking a key failed. Opaque on purpose: the cause would
/// only describe secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyPairError {
    /// The RNG or the RSA generator failed.
    #[error("RSA key generation failed")]
    Generation,
    /// The private key does not parse, or is not the one of this public key.
    #[error("the private key does not match the public key")]
    Mismatch,
}

/// Generates an RSA key pair of `bits`. CPU-heavy (tens to hundreds of
/// milliseconds): call it from a blocking thread.
pub fn generate(bits: KeyBits) -> Result<GeneratedKeyPair, KeyPairError> {
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
        private_pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
        public_key_der,
    })
}

/// The key-pair id: `kek-` + first 16 hex of SHA-256(SPKI DER). Derived from
/// the key itself, so anyone holding the public key can check the id.
pub fn key_pair_id(public_key_der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key_der);
    format!("kek-{}", hex::encode(&d.as_ref()[..8]))
}

/// PEM (`-----BEGIN PUBLIC KEY-----`, 64 base64 characters a line, LF) of
/// an SPKI DER public key. Every history record carries one, so the lines
/// are cut from one base64 string here rather than through the `pem`
/// crate's formatter (a fifth of a history record's cost); the test below
/// holds the output byte for byte to the crate's.
pub fn public_key_pem(public_key_der: &[u8]) -> String {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----\n";
    const END: &str = "-----END PUBLIC KEY-----\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(public_key_der);
    let mut out = String::with_capacity(BEGIN.len() + b64.len() + b64.len() / 64 + 1 + END.len());
    out.push_str(BEGIN);
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, more) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = more;
    }
    out.push_str(END);
    out
}

/// Proves `private_pkcs8` is the private half of `public_key_der`: the public
/// key derived from it must be byte-identical, and an RSA-OAEP round trip of a
/// random message through the stored public key must come back.
pub(crate) fn verify_matches(
    private_pkcs8: &[u8],
    public_key_der: &[u8],
) -> Result<(), KeyPairError> {
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

    #[test]
    fn generated_pair_matches_itself_not_another() {
        let a = generate(KeyBits::Rsa2048).unwrap();
        let b = generate(KeyBits::Rsa2048).unwrap();
        assert!(a.id.starts_with("kek-") && a.id.len() == 20);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id, key_pair_id(&a.public_key_der));
        verify_matches(&a.private_pkcs8, &a.public_key_der).unwrap();
        assert_eq!(
            verify_matches(&a.private_pkcs8, &b.public_key_der),
            Err(KeyPairError::Mismatch)
        );
        assert_eq!(
            verify_matches(b"garbage", &a.public_key_der),
            Err(KeyPairError::Mismatch)
        );
        assert!(!format!("{a:?}").contains(&hex::encode(&a.private_pkcs8[..])));
    }

    #[test]
    fn pem_round_trips() {
        let a = generate(KeyBits::Rsa2048).unwrap();
        let text = public_key_pem(&a.public_key_der);
        assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(pem::parse(text).unwrap().contents(), &a.public_key_der[..]);
    }

    /// The PEM is byte for byte what the `pem` crate writes, at every
    /// length around a line's end and for real keys of each size.
    #[test]
    fn pem_is_the_pem_crates_output() {
        let crate_pem = |der: &[u8]| {
            pem::encode_config(
                &pem::Pem::new("PUBLIC KEY", der.to_vec()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        };
        for len in (0..=100).chain([294, 398, 422, 550]) {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(public_key_pem(&der), crate_pem(&der), "{len} bytes");
        }
        for bits in [KeyBits::Rsa2048, KeyBits::Rsa3072, KeyBits::Rsa4096] {
            let der = generate(bits).unwrap().public_key_der;
            assert_eq!(public_key_pem(&der), crate_pem(&der), "{bits:?}");
        }
    }
}
