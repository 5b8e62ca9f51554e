//! AES-256-GCM, the one symmetric cipher kekd uses (envelopes and the local
//! provider), with random 96-bit nonces: each key here seals only a handful of
//! messages, far below the random-nonce limit.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

/// A GCM nonce.
pub(crate) type NonceBytes = [u8; NONCE_LEN];

/// Decryption failed: wrong key, wrong associated data, or tampered bytes.
/// Deliberately opaque, as in rage: the cause is not an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authenticated decryption failed")]
pub(crate) struct OpenError;

fn key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes is an AES-256 key"))
}

/// Random bytes from the system CSPRNG.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG available");
    b
}

/// Seals `plaintext` under `k` with a fresh random nonce; returns the nonce
/// and `ciphertext ‖ 16-byte tag`.
pub(crate) fn seal(k: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> (NonceBytes, Vec<u8>) {
    let nonce = random::<NONCE_LEN>();
    let mut out = plaintext.to_vec();
    key(k)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out,
        )
        .expect("AES-GCM seal of a small buffer cannot fail");
    (nonce, out)
}

/// Opens `ciphertext ‖ tag`; the plaintext is zeroized when dropped.
pub(crate) fn open(
    k: &[u8; 32],
    nonce: &NonceBytes,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = key(k)
        .open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| OpenError)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = random::<32>();
        let (n, ct) = seal(&k, b"ad", b"secret");
        assert_eq!(&*open(&k, &n, b"ad", &ct).unwrap(), b"secret");
        assert_eq!(open(&k, &n, b"other", &ct), Err(OpenError));
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(open(&k, &n, b"ad", &bad), Err(OpenError));
        assert_eq!(open(&random::<32>(), &n, b"ad", &ct), Err(OpenError));
    }
}
