//! The public keys recorders may need, as an RFC 7517 JSON Web Key Set
//! (`GET /v1/public-keys`): the active key pair and the last few retired
//! ones, each with `kid` = key-pair id and `use` `enc`, plus kekd's state
//! and times under `kekd_*` members (RFC 7517 §4: unknown members are
//! ignored). An RSA key is `kty` `RSA`, `n`, `e` (base64url, RFC 7518
//! §6.3.1), `alg` `RSA-OAEP-256`. A hybrid key is `kty` `AKP` with its raw
//! public key in `pub` (base64url) — the "algorithm key pair" type of the
//! JOSE/COSE post-quantum drafts, where the algorithm, not the key type,
//! says how the bytes are read — and `alg` `X-Wing`; the drafts have not
//! settled a JOSE name for X-Wing, so kekd uses the KEM's own. A JOSE
//! library that only knows RSA skips an `AKP` key (RFC 7517 §5), so it
//! never misreads one.
//!
//! A recorder caches the set and seals with the key that is active at the
//! moment it seals; a key retired since still opens what it sealed, so a
//! stale cache never loses a recording. The answer is made once per active
//! key pair and carries a strong `ETag` (SHA-256 of the body), so a
//! recorder's poll is answered `304 Not Modified` until the next rotation.

use crate::domain::{KeyAlgorithm, KeyPairInfo, KeyState};
use crate::time::{self, Timestamp};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How many retired key pairs the set lists besides the active one.
pub const RETIRED_IN_SET: usize = 3;

/// A JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// Newest first: the active key pair, then the most recently retired.
    pub keys: Vec<Jwk>,
}

/// `kty` of an RSA key.
pub const KTY_RSA: &str = "RSA";
/// `alg` of an RSA key: RSA-OAEP with SHA-256 and MGF1-SHA-256.
pub const ALG_RSA: &str = "RSA-OAEP-256";
/// `kty` of a hybrid key: an "algorithm key pair".
pub const KTY_AKP: &str = "AKP";
/// `alg` of a hybrid key.
pub const ALG_XWING: &str = "X-Wing";

/// One public key as a JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA` or `AKP`.
    pub kty: String,
    /// The key-pair id; recordings name it in their header.
    pub kid: String,
    /// `enc`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `RSA-OAEP-256` (RSA-OAEP with SHA-256 and MGF1-SHA-256) or `X-Wing`.
    pub alg: String,
    /// RSA: the modulus, big-endian, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA: the public exponent, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// AKP: the raw public key (X-Wing: 1,216 bytes), base64url.
    #[serde(rename = "pub", default, skip_serializing_if = "Option::is_none")]
    pub pub_: Option<String>,
    /// kekd's state of the key pair.
    pub kekd_state: KeyState,
    /// When it became active.
    #[serde(with = "time::rfc3339::option", default)]
    pub kekd_activated_at: Option<Timestamp>,
    /// When it was retired (`null` while active).
    #[serde(with = "time::rfc3339::option", default)]
    pub kekd_retired_at: Option<Timestamp>,
    /// For the announced key pair: when it becomes active.
    #[serde(with = "time::rfc3339::option", default)]
    pub kekd_activates_at: Option<Timestamp>,
}

/// A public key kekd does not seal with: not an RSA SubjectPublicKeyInfo,
/// not an X-Wing key of the right length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a public key kekd seals with (an RSA key, or an X-Wing key of 1,216 bytes)")]
pub struct UnusableKey;

impl Jwk {
    /// The JWK of a stored key pair.
    pub fn of(r: &KeyPairInfo) -> Result<Jwk, UnusableKey> {
        let (kty, alg, n, e, pub_) = match r.algorithm {
            KeyAlgorithm::Rsa => {
                let (n, e) = components(&r.public_key_der)?;
                (
                    KTY_RSA,
                    ALG_RSA,
                    Some(B64URL.encode(n)),
                    Some(B64URL.encode(e)),
                    None,
                )
            }
            KeyAlgorithm::X25519MlKem768 => {
                if r.public_key_der.len() != crate::hybrid::PUBLIC_KEY_LEN {
                    return Err(UnusableKey);
                }
                let key = B64URL.encode(&r.public_key_der);
                (KTY_AKP, ALG_XWING, None, None, Some(key))
            }
        };
        Ok(Jwk {
            kty: kty.into(),
            kid: r.id.clone(),
            use_: "enc".into(),
            alg: alg.into(),
            n,
            e,
            pub_,
            kekd_state: r.state,
            kekd_activated_at: r.activated_at,
            kekd_retired_at: r.retired_at,
            kekd_activates_at: r.activates_at,
        })
    }

    /// The key's algorithm and its public key as kekd stores it (SPKI DER
    /// for RSA, the raw key for X-Wing): what `seal` takes and what the
    /// key-pair id is the hash of.
    pub fn public_key(&self) -> Result<(KeyAlgorithm, Vec<u8>), UnusableKey> {
        use aws_lc_rs::encoding::AsDer;
        let field = |v: &Option<String>| {
            v.as_deref()
                .and_then(|s| B64URL.decode(s).ok())
                .ok_or(UnusableKey)
        };
        match (self.kty.as_str(), self.alg.as_str()) {
            (KTY_RSA, ALG_RSA) => {
                let key = aws_lc_rs::rsa::PublicKeyComponents {
                    n: field(&self.n)?,
                    e: field(&self.e)?,
                };
                let der = key.as_der().map_err(|_| UnusableKey)?.as_ref().to_vec();
                Ok((KeyAlgorithm::Rsa, der))
            }
            (KTY_AKP, ALG_XWING) => {
                let key = field(&self.pub_)?;
                if key.len() != crate::hybrid::PUBLIC_KEY_LEN {
                    return Err(UnusableKey);
                }
                Ok((KeyAlgorithm::X25519MlKem768, key))
            }
            _ => Err(UnusableKey),
        }
    }
}

/// Modulus and exponent, big-endian without leading zeros.
fn components(spki_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), UnusableKey> {
    let key = aws_lc_rs::rsa::PublicKey::from_der(spki_der).map_err(|_| UnusableKey)?;
    Ok((
        key.modulus().big_endian_without_leading_zero().to_vec(),
        key.exponent().big_endian_without_leading_zero().to_vec(),
    ))
}

impl JwkSet {
    /// The set of the `announced` key pair, `active`, and the retired key
    /// pairs among `recent` (newest first; superseded and pending ones are
    /// never listed).
    pub fn new<'a>(
        active: Option<&'a KeyPairInfo>,
        announced: Option<&'a KeyPairInfo>,
        recent: impl IntoIterator<Item = &'a KeyPairInfo>,
    ) -> JwkSet {
        let retired = recent
            .into_iter()
            .filter(|r| r.state == KeyState::Retired && r.activated_at.is_some())
            .take(RETIRED_IN_SET);
        JwkSet {
            keys: announced
                .filter(|r| r.state == KeyState::Announced)
                .into_iter()
                .chain(active)
                .chain(retired)
                .filter_map(|r| Jwk::of(r).ok())
                .collect(),
        }
    }

    /// The key to seal with now: the announced one once its instant has
    /// come (the cache may predate the activation), else the active one.
    /// A set that names no such key, several, or one that is neither an
    /// RSA-OAEP nor an X-Wing encryption key is refused: a recorder must
    /// never seal with a key kekd did not publish for sealing.
    pub fn sealing_key(&self) -> Result<&Jwk, SealingKeyError> {
        let now = time::now();
        let due: Vec<&Jwk> = self
            .keys
            .iter()
            .filter(|k| {
                k.kekd_state == KeyState::Announced && k.kekd_activates_at.is_some_and(|t| t <= now)
            })
            .collect();
        let active: Vec<&Jwk> = self
            .keys
            .iter()
            .filter(|k| k.kekd_state == KeyState::Active)
            .collect();
        let chosen = match (due.as_slice(), active.as_slice()) {
            ([k], _) | ([], [k]) => *k,
            ([], []) => return Err(SealingKeyError::NoActiveKey),
            ([], many) | (many, _) => {
                return Err(SealingKeyError::SeveralActive(
                    many.iter().map(|k| shown_kid(&k.kid)).collect(),
                ))
            }
        };
        let kind = (chosen.kty.as_str(), chosen.alg.as_str());
        if chosen.use_ != "enc" || !matches!(kind, (KTY_RSA, ALG_RSA) | (KTY_AKP, ALG_XWING)) {
            return Err(SealingKeyError::NotForSealing {
                kid: shown_kid(&chosen.kid),
                kty: shown_kid(&chosen.kty),
                use_: shown_kid(&chosen.use_),
                alg: shown_kid(&chosen.alg),
            });
        }
        Ok(chosen)
    }
}

/// Why a JWK Set gives no key to seal with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealingKeyError {
    /// No key is active (or announced and due).
    #[error("no key in the set is active")]
    NoActiveKey,
    /// More than one key claims to be the one to seal with.
    #[error("several keys in the set claim to be active ({}); a set kekd serves has one", .0.join(", "))]
    SeveralActive(Vec<String>),
    /// The active key is neither an RSA-OAEP-256 nor an X-Wing encryption
    /// key.
    #[error("key {kid} is kty {kty}, use {use_}, alg {alg}; kekd seals only with use enc and kty RSA, alg RSA-OAEP-256 or kty AKP, alg X-Wing")]
    NotForSealing {
        /// Its id (bounded, escaped).
        kid: String,
        /// Its `kty`.
        kty: String,
        /// Its `use`.
        use_: String,
        /// Its `alg`.
        alg: String,
    },
}

/// A value from an untrusted set as it may appear in a message: quoted,
/// control characters escaped, at most 64 characters.
pub fn shown_kid(kid: &str) -> String {
    let cut: String = kid.chars().take(64).collect();
    let more = if kid.chars().count() > 64 { "…" } else { "" };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `seal --jwks` took an EC key, a `sig` key, `RSA1_5`, or
    /// the first of two "active" keys, and echoed a huge or control-filled
    /// `kid` raw.
    #[test]
    fn only_one_rsa_oaep_encryption_key_is_sealed_with() {
        let pair =
            crate::keypair::generate(crate::domain::KeyType::Rsa(crate::domain::KeyBits::Rsa2048))
                .unwrap();
        let mut rec = crate::testing::record_at("kek-a", 3);
        rec.public_key_der = pair.public_key_der.clone();
        rec.state = KeyState::Active;
        rec.activated_at = Some(rec.created_at);
        let good = JwkSet::new(Some(&rec.info()), None, []);
        assert_eq!(good.sealing_key().unwrap().kid, "kek-a");
        for (field, value) in [("kty", "EC"), ("use", "sig"), ("alg", "RSA1_5")] {
            let mut set = good.clone();
            match field {
                "kty" => set.keys[0].kty = value.into(),
                "use" => set.keys[0].use_ = value.into(),
                _ => set.keys[0].alg = value.into(),
            }
            let e = set.sealing_key().unwrap_err();
            assert!(matches!(e, SealingKeyError::NotForSealing { .. }), "{e}");
            assert!(e.to_string().contains(value), "{e}");
        }
        let mut two = good.clone();
        two.keys.push(two.keys[0].clone());
        two.keys[1].kid = format!("kek-\u{1b}[31m{}", "x".repeat(5000));
        let e = two.sealing_key().unwrap_err().to_string();
        assert!(e.contains("several keys"), "{e}");
        assert!(
            !e.contains('\u{1b}') && e.len() < 300,
            "bounded and escaped: {e}"
        );
        let mut none = good;
        none.keys[0].kekd_state = KeyState::Retired;
        assert_eq!(none.sealing_key(), Err(SealingKeyError::NoActiveKey));
    }

    #[test]
    fn a_jwk_carries_the_same_public_key_and_the_set_lists_only_what_was_served() {
        let pair =
            crate::keypair::generate(crate::domain::KeyType::Rsa(crate::domain::KeyBits::Rsa2048))
                .unwrap();
        let mut active = crate::testing::record_at("kek-a", 3);
        active.public_key_der = pair.public_key_der.clone();
        active.state = KeyState::Active;
        active.activated_at = Some(active.created_at);
        let mut retired = active.clone();
        retired.id = "kek-r".into();
        retired.state = KeyState::Retired;
        let mut superseded = active.clone();
        superseded.id = "kek-s".into();
        superseded.state = KeyState::Superseded;
        superseded.activated_at = None;
        let set = JwkSet::new(
            Some(&active.info()),
            None,
            [&superseded.info(), &retired.info()],
        );
        let kids: Vec<&str> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["kek-a", "kek-r"]);
        let k = set.sealing_key().unwrap();
        assert_eq!(
            k.public_key().unwrap(),
            (KeyAlgorithm::Rsa, pair.public_key_der.clone())
        );
        assert_eq!(k.e.as_deref(), Some("AQAB"));
        assert_eq!(B64URL.decode(k.n.as_ref().unwrap()).unwrap().len(), 256);
        let json = serde_json::to_value(k).unwrap();
        assert_eq!(json["use"], "enc");
        assert_eq!(json["alg"], "RSA-OAEP-256");
        assert_eq!(json["kekd_state"], "active");
        assert!(json.get("pub").is_none());
    }

    /// A hybrid key is an AKP JWK with its raw key in `pub`; it is what a
    /// set in the middle of a migration seals with, and the retired RSA
    /// key stays listed for what it sealed.
    #[test]
    fn a_hybrid_key_is_an_akp_jwk() {
        let rsa =
            crate::keypair::generate(crate::domain::KeyType::Rsa(crate::domain::KeyBits::Rsa2048))
                .unwrap();
        let hybrid = crate::keypair::generate(crate::domain::KeyType::X25519MlKem768).unwrap();
        let mut active = crate::testing::record_at("kek-h", 4);
        active.algorithm = KeyAlgorithm::X25519MlKem768;
        active.key_bits = 0;
        active.public_key_der = hybrid.public_key_der.clone();
        active.state = KeyState::Active;
        active.activated_at = Some(active.created_at);
        let mut retired = crate::testing::record_at("kek-r", 3);
        retired.public_key_der = rsa.public_key_der.clone();
        retired.state = KeyState::Retired;
        retired.activated_at = Some(retired.created_at);
        let set = JwkSet::new(Some(&active.info()), None, [&retired.info()]);
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(json["keys"][0]["kty"], "AKP");
        assert_eq!(json["keys"][0]["alg"], "X-Wing");
        assert!(json["keys"][0].get("n").is_none());
        assert_eq!(json["keys"][1]["kty"], "RSA");
        let k = set.sealing_key().unwrap();
        assert_eq!(k.kid, "kek-h");
        assert_eq!(
            k.public_key().unwrap(),
            (KeyAlgorithm::X25519MlKem768, hybrid.public_key_der.clone())
        );
        // A truncated key, or an AKP key of another algorithm, is refused.
        let mut cut = k.clone();
        cut.pub_ = Some(B64URL.encode(&hybrid.public_key_der[..100]));
        assert_eq!(cut.public_key(), Err(UnusableKey));
        let mut other = set.clone();
        other.keys[0].alg = "ML-DSA-65".into();
        assert!(matches!(
            other.sealing_key(),
            Err(SealingKeyError::NotForSealing { .. })
        ));
        // Round trip through JSON, as a recorder's cache does.
        let back: JwkSet = serde_json::from_value(json).unwrap();
        assert_eq!(back, set);
    }
}
