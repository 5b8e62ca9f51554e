//! The hybrid post-quantum KEM of the `x25519-mlkem768` key type: X-Wing
//! (draft-connolly-cfrg-xwing-kem), ML-KEM-768 (FIPS 203) and X25519
//! (RFC 7748) combined so that breaking either one alone reveals nothing.
//!
//! Why X-Wing: it is one fixed construction with a security proof, its
//! combiner is a single SHA3-256 over both shared secrets, the X25519
//! ciphertext and public key, and a six-byte label — nothing to choose —
//! and it is the hybrid the IETF's HPKE and JOSE/COSE drafts build on. It
//! needs SHA3-256, which aws-lc-rs (already kekd's one crypto module) has.
//!
//! The private key is kept in X-Wing's *expanded* form: the FIPS 203
//! ML-KEM-768 decapsulation key (2,400 bytes, which holds the encapsulation
//! key too), the X25519 scalar and the X25519 public key — 2,464 bytes. The
//! draft's 32-byte seed form derives all three with SHAKE and ML-KEM's
//! key generation from a seed, which aws-lc-rs does not expose; the
//! expanded form is a standard encoding any FIPS 203 implementation reads,
//! and decapsulates exactly as the seed form does. It is zeroized when
//! dropped and never in `Debug`.
//!
//! Failures are opaque ([`HybridError`]): which half or which length was
//! wrong is not an oracle.

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
use zeroize::Zeroizing;

/// ML-KEM-768's encapsulation key, in bytes.
const ML_KEM_PUBLIC: usize = 1184;
/// ML-KEM-768's ciphertext.
const ML_KEM_CIPHERTEXT: usize = 1088;
/// ML-KEM-768's (expanded) decapsulation key.
const ML_KEM_PRIVATE: usize = 2400;
/// Where the encapsulation key sits in the decapsulation key (FIPS 203:
/// `dk = dk_PKE ‖ ek ‖ H(ek) ‖ z`, `dk_PKE` 384·k bytes).
const ML_KEM_EK_AT: usize = 384 * 3;
/// An X25519 key or share.
const X25519_LEN: usize = 32;

/// The public key: `pk_M ‖ pk_X`.
pub const PUBLIC_KEY_LEN: usize = ML_KEM_PUBLIC + X25519_LEN;
/// The encapsulation (what a recording's header carries): `ct_M ‖ ct_X`.
pub const CIPHERTEXT_LEN: usize = ML_KEM_CIPHERTEXT + X25519_LEN;
/// The expanded private key: `sk_M ‖ sk_X ‖ pk_X`.
pub const PRIVATE_KEY_LEN: usize = ML_KEM_PRIVATE + 2 * X25519_LEN;
/// The shared secret, used as a recording's content key.
pub const SHARED_SECRET_LEN: usize = 32;

/// X-Wing's domain label, `\./` over `/^\`.
const LABEL: &[u8; 6] = b"\\.//^\\";

/// A hybrid key operation failed; deliberately says no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hybrid key operation failed")]
pub struct HybridError;

/// A hybrid key pair's private half, with its public key.
pub struct HybridPrivateKey {
    ml_kem: DecapsulationKey,
    x25519: agreement::PrivateKey,
    /// `pk_M ‖ pk_X`.
    public: Vec<u8>,
}

impl std::fmt::Debug for HybridPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HybridPrivateKey(..)")
    }
}

/// The shared secret of one encapsulation, zeroized when dropped.
pub type SharedSecret = Zeroizing<[u8; SHARED_SECRET_LEN]>;

impl HybridPrivateKey {
    /// A new key pair from the system's random generator.
    pub fn generate() -> Result<HybridPrivateKey, HybridError> {
        let ml_kem = DecapsulationKey::generate(&ML_KEM_768).map_err(|_| HybridError)?;
        let x25519 = agreement::PrivateKey::generate(&X25519).map_err(|_| HybridError)?;
        let pk_m = ml_kem
            .encapsulation_key()
            .and_then(|e| e.key_bytes())
            .map_err(|_| HybridError)?;
        let pk_x = x25519.compute_public_key().map_err(|_| HybridError)?;
        let public = [pk_m.as_ref(), pk_x.as_ref()].concat();
        Ok(HybridPrivateKey {
            ml_kem,
            x25519,
            public,
        })
    }

    /// The key from its expanded encoding (`sk_M ‖ sk_X ‖ pk_X`); the
    /// X25519 public key in it must be the scalar's.
    pub fn from_bytes(bytes: &[u8]) -> Result<HybridPrivateKey, HybridError> {
        if bytes.len() != PRIVATE_KEY_LEN {
            return Err(HybridError);
        }
        let (sk_m, rest) = bytes.split_at(ML_KEM_PRIVATE);
        let (sk_x, pk_x) = rest.split_at(X25519_LEN);
        let ml_kem = DecapsulationKey::new(&ML_KEM_768, sk_m).map_err(|_| HybridError)?;
        let x25519 =
            agreement::PrivateKey::from_private_key(&X25519, sk_x).map_err(|_| HybridError)?;
        let computed = x25519.compute_public_key().map_err(|_| HybridError)?;
        if computed.as_ref() != pk_x {
            return Err(HybridError);
        }
        let pk_m = &sk_m[ML_KEM_EK_AT..ML_KEM_EK_AT + ML_KEM_PUBLIC];
        Ok(HybridPrivateKey {
            ml_kem,
            x25519,
            public: [pk_m, pk_x].concat(),
        })
    }

    /// The expanded encoding, zeroized when dropped.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, HybridError> {
        let sk_m = self.ml_kem.key_bytes().map_err(|_| HybridError)?;
        let sk_x: Curve25519SeedBin<'static> =
            self.x25519.as_be_bytes().map_err(|_| HybridError)?;
        let mut out = Zeroizing::new(Vec::with_capacity(PRIVATE_KEY_LEN));
        out.extend_from_slice(sk_m.as_ref());
        out.extend_from_slice(sk_x.as_ref());
        out.extend_from_slice(&self.public[ML_KEM_PUBLIC..]);
        Ok(out)
    }

    /// The public key, `pk_M ‖ pk_X` (1,216 bytes).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret of the encapsulation `ct` (`ct_M ‖ ct_X`).
    /// ML-KEM's implicit rejection makes a tampered `ct_M` give an
    /// unrelated secret rather than an error, so a wrong key shows where
    /// the secret is used (the recording's AEAD), as it must.
    pub fn decapsulate(&self, ct: &[u8]) -> Result<SharedSecret, HybridError> {
        if ct.len() != CIPHERTEXT_LEN {
            return Err(HybridError);
        }
        let (ct_m, ct_x) = ct.split_at(ML_KEM_CIPHERTEXT);
        let ss_m = self
            .ml_kem
            .decapsulate(Ciphertext::from(ct_m))
            .map_err(|_| HybridError)?;
        let ss_x = agreement::agree(
            &self.x25519,
            UnparsedPublicKey::new(&X25519, ct_x),
            HybridError,
            |s| Ok(Zeroizing::new(s.to_vec())),
        )?;
        Ok(combine(
            ss_m.as_ref(),
            &ss_x,
            ct_x,
            &self.public[ML_KEM_PUBLIC..],
        ))
    }
}

/// A new encapsulation to the public key `pk` (`pk_M ‖ pk_X`): the
/// ciphertext for the recording's header, and the shared secret.
pub fn encapsulate(pk: &[u8]) -> Result<(Vec<u8>, SharedSecret), HybridError> {
    if pk.len() != PUBLIC_KEY_LEN {
        return Err(HybridError);
    }
    let (pk_m, pk_x) = pk.split_at(ML_KEM_PUBLIC);
    let ek = EncapsulationKey::new(&ML_KEM_768, pk_m).map_err(|_| HybridError)?;
    let (ct_m, ss_m) = ek.encapsulate().map_err(|_| HybridError)?;
    let ephemeral = agreement::PrivateKey::generate(&X25519).map_err(|_| HybridError)?;
    let ct_x = ephemeral.compute_public_key().map_err(|_| HybridError)?;
    let ss_x = agreement::agree(
        &ephemeral,
        UnparsedPublicKey::new(&X25519, pk_x),
        HybridError,
        |s| Ok(Zeroizing::new(s.to_vec())),
    )?;
    let ss = combine(ss_m.as_ref(), &ss_x, ct_x.as_ref(), pk_x);
    Ok(([ct_m.as_ref(), ct_x.as_ref()].concat(), ss))
}

/// X-Wing's combiner: `SHA3-256(label ‖ ss_M ‖ ss_X ‖ ct_X ‖ pk_X)`.
fn combine(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8], pk_x: &[u8]) -> SharedSecret {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA3_256);
    for part in [&LABEL[..], ss_m, ss_x, ct_x, pk_x] {
        h.update(part);
    }
    let d = h.finish();
    let mut out = Zeroizing::new([0u8; SHARED_SECRET_LEN]);
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encapsulation_opens_with_its_key_pair_and_no_other() {
        let k = HybridPrivateKey::generate().unwrap();
        assert_eq!(k.public_key().len(), PUBLIC_KEY_LEN);
        let (ct, ss) = encapsulate(k.public_key()).unwrap();
        assert_eq!(ct.len(), CIPHERTEXT_LEN);
        assert_eq!(*k.decapsulate(&ct).unwrap(), *ss);
        let other = HybridPrivateKey::generate().unwrap();
        assert_ne!(*other.decapsulate(&ct).unwrap(), *ss);
        // Two encapsulations to one key share nothing.
        let (ct2, ss2) = encapsulate(k.public_key()).unwrap();
        assert_ne!(ct, ct2);
        assert_ne!(*ss, *ss2);
    }

    #[test]
    fn either_half_tampered_changes_the_secret() {
        let k = HybridPrivateKey::generate().unwrap();
        let (ct, ss) = encapsulate(k.public_key()).unwrap();
        for at in [
            0,
            ML_KEM_CIPHERTEXT - 1,
            ML_KEM_CIPHERTEXT,
            CIPHERTEXT_LEN - 2,
        ] {
            let mut bad = ct.clone();
            bad[at] ^= 1;
            // ML-KEM's implicit rejection, or a different X25519 share (or
            // a refused one: a low-order point).
            if let Ok(other) = k.decapsulate(&bad) {
                assert_ne!(*other, *ss, "byte {at}");
            }
        }
        assert_eq!(k.decapsulate(&ct[1..]), Err(HybridError));
        assert_eq!(
            encapsulate(&k.public_key()[1..]).map(|_| ()),
            Err(HybridError)
        );
    }

    #[test]
    fn the_expanded_private_key_round_trips_and_is_checked() {
        let k = HybridPrivateKey::generate().unwrap();
        let bytes = k.to_bytes().unwrap();
        assert_eq!(bytes.len(), PRIVATE_KEY_LEN);
        let back = HybridPrivateKey::from_bytes(&bytes).unwrap();
        assert_eq!(back.public_key(), k.public_key());
        let (ct, ss) = encapsulate(k.public_key()).unwrap();
        assert_eq!(*back.decapsulate(&ct).unwrap(), *ss);
        // The X25519 public key must be the scalar's.
        let mut wrong = bytes.to_vec();
        wrong[PRIVATE_KEY_LEN - 1] ^= 1;
        assert!(HybridPrivateKey::from_bytes(&wrong).is_err());
        assert!(HybridPrivateKey::from_bytes(&bytes[1..]).is_err());
        assert_eq!(format!("{k:?}"), "HybridPrivateKey(..)");
    }

    #[test]
    fn the_combiner_is_x_wings() {
        // SHA3-256 of the label and four parts, in that order; checked
        // against hashlib's sha3_256 of the same bytes.
        let ss = combine(&[1; 32], &[2; 32], &[3; 32], &[4; 32]);
        assert_eq!(
            hex::encode(*ss),
            "925e1ec05c263852aa5b6d198e21014b10cf57f2eaa8527692ad49487d36fb22"
        );
    }

    /// The committed vector, made by the independent Python reference.
    #[test]
    fn the_committed_vector_decapsulates_to_its_secret() {
        let v = |name: &str| {
            let path = format!(
                "{}/tests/vectors/xwing/{name}.hex",
                env!("CARGO_MANIFEST_DIR")
            );
            hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap()
        };
        let k = HybridPrivateKey::from_bytes(&v("private")).unwrap();
        assert_eq!(k.public_key(), v("public"));
        assert_eq!(
            k.decapsulate(&v("ciphertext")).unwrap().to_vec(),
            v("shared-secret")
        );
        assert_eq!(*k.to_bytes().unwrap(), v("private"));
    }
}
