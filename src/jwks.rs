//! The public keys recorders may need, as an RFC 7517 JSON Web Key Set
//! (`GET /v1/public-keys`): the active key pair and the last few retired
//! ones, each with `kid` = key-pair id, `kty` `RSA`, `n`, `e` (base64url,
//! RFC 7518 §6.3.1), `use` `enc`, `alg` `RSA-OAEP-256`, plus kekd's state and
//! times under `kekd_*` members (RFC 7517 §4: unknown members are ignored).
//!
//! A recorder caches the set and seals with the key that is active at the
//! moment it seals; a key retired since still opens what it sealed, so a
//! stale cache never loses a recording. The answer is made once per active
//! key pair and carries a strong `ETag` (SHA-256 of the body), so a
//! recorder's poll is answered `304 Not Modified` until the next rotation.

use crate::domain::{KeyPairInfo, KeyState};
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

/// One RSA public key as a JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA`.
    pub kty: String,
    /// The key-pair id; recordings name it in their header.
    pub kid: String,
    /// `enc`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `RSA-OAEP-256` (RSA-OAEP with SHA-256 and MGF1-SHA-256).
    pub alg: String,
    /// The modulus, big-endian, base64url without padding.
    pub n: String,
    /// The public exponent, likewise.
    pub e: String,
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

/// A public key that is not an RSA SubjectPublicKeyInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RSA public key")]
pub struct NotRsa;

impl Jwk {
    /// The JWK of a stored key pair.
    pub fn of(r: &KeyPairInfo) -> Result<Jwk, NotRsa> {
        let (n, e) = components(&r.public_key_der)?;
        Ok(Jwk {
            kty: "RSA".into(),
            kid: r.id.clone(),
            use_: "enc".into(),
            alg: "RSA-OAEP-256".into(),
            n: B64URL.encode(n),
            e: B64URL.encode(e),
            kekd_state: r.state,
            kekd_activated_at: r.activated_at,
            kekd_retired_at: r.retired_at,
            kekd_activates_at: r.activates_at,
        })
    }

    /// The SPKI DER public key this JWK describes (what `seal` takes).
    pub fn public_key_der(&self) -> Result<Vec<u8>, NotRsa> {
        use aws_lc_rs::encoding::AsDer;
        let n = B64URL.decode(&self.n).map_err(|_| NotRsa)?;
        let e = B64URL.decode(&self.e).map_err(|_| NotRsa)?;
        let key = aws_lc_rs::rsa::PublicKeyComponents { n, e };
        Ok(key.as_der().map_err(|_| NotRsa)?.as_ref().to_vec())
    }
}

/// Modulus and exponent, big-endian without leading zeros.
fn components(spki_der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), NotRsa> {
    let key = aws_lc_rs::rsa::PublicKey::from_der(spki_der).map_err(|_| NotRsa)?;
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
    /// A set that names no such key, several, or one that is not an
    /// RSA-OAEP encryption key is refused: a recorder must never seal with
    /// a key kekd did not publish for sealing.
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
        if chosen.kty != "RSA" || chosen.use_ != "enc" || chosen.alg != "RSA-OAEP-256" {
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
    /// The active key is not an RSA-OAEP-256 encryption key.
    #[error("key {kid} is kty {kty}, use {use_}, alg {alg}; kekd seals only with kty RSA, use enc, alg RSA-OAEP-256")]
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
        let pair = crate::keypair::generate(crate::domain::KeyBits::Rsa2048).unwrap();
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
        let pair = crate::keypair::generate(crate::domain::KeyBits::Rsa2048).unwrap();
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
        assert_eq!(k.public_key_der().unwrap(), pair.public_key_der);
        assert_eq!(k.e, "AQAB");
        assert_eq!(B64URL.decode(&k.n).unwrap().len(), 256);
        let json = serde_json::to_value(k).unwrap();
        assert_eq!(json["use"], "enc");
        assert_eq!(json["alg"], "RSA-OAEP-256");
        assert_eq!(json["kekd_state"], "active");
    }
}
