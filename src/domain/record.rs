//! A key pair as kekd stores it: its life-cycle state, why it was made, its
//! timestamps, and its envelope (the encrypted private key).
//!
//! These types are the store's record format and part of the API, so their
//! serde names are a public format: change them only with a schema version.

use super::context::EncryptionContext;
use super::display_as_serde;
use crate::time::{rfc3339, Timestamp};
use serde::{Deserialize, Serialize};

/// Life cycle of a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Stored, not yet proven; never served.
    Pending,
    /// The one key pair recorders use now.
    Active,
    /// Kept to open older recordings.
    Retired,
    /// Stored but never activated (its proof failed, its rotation lost the
    /// fleet's lease, or a crash interrupted it, or it was announced and
    /// then discarded): never used to seal, kept for audit.
    Superseded,
    /// Generated, stored and proven ahead of a scheduled rotation
    /// (`announce_ahead`), published so recorders know it before it is used;
    /// it becomes active at `activates_at` without a KMS call.
    Announced,
}

/// Why a key pair was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The first key pair of an empty store.
    Initial,
    /// The cadence came due.
    Scheduled,
    /// An operator asked (SIGUSR1 or the API).
    ChangeKeyNow,
    /// The configured KMS key changed.
    KmsKeyChanged,
    /// A rotation was missed while the daemon was down.
    CatchUp,
}

display_as_serde!(KeyState, Reason);

/// RSA modulus sizes kekd generates (all inside the FIPS-approved set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum KeyBits {
    /// RSA-2048.
    Rsa2048,
    /// RSA-3072 (default).
    Rsa3072,
    /// RSA-4096.
    Rsa4096,
}

impl KeyBits {
    /// The modulus size in bits.
    pub fn bits(self) -> u32 {
        match self {
            KeyBits::Rsa2048 => 2048,
            KeyBits::Rsa3072 => 3072,
            KeyBits::Rsa4096 => 4096,
        }
    }
}

/// The algorithm family of a stored key pair. The store and the envelope
/// name it only when it is not RSA, so every record written before hybrid
/// key pairs existed reads as RSA, byte for byte as it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// RSA: an SPKI public key, a PKCS#8 private key, RSA-OAEP recordings.
    #[default]
    #[serde(rename = "rsa")]
    Rsa,
    /// X-Wing (ML-KEM-768 + X25519): raw public key, the expanded private
    /// key, recording format version 2.
    #[serde(rename = "x25519-mlkem768")]
    X25519MlKem768,
}

impl KeyAlgorithm {
    /// RSA, the default (serde skips it).
    pub fn is_rsa(&self) -> bool {
        *self == KeyAlgorithm::Rsa
    }
}

display_as_serde!(KeyAlgorithm);

/// What key pairs an organization gets: `rsa-2048`, `rsa-3072` (default),
/// `rsa-4096` or `x25519-mlkem768` (hybrid post-quantum). A change takes
/// effect at the next rotation; older key pairs keep their own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum KeyType {
    /// RSA of this size.
    Rsa(KeyBits),
    /// The X-Wing hybrid KEM.
    X25519MlKem768,
}

impl KeyType {
    /// Every accepted spelling, for error messages.
    pub const ALLOWED: &'static str = "rsa-2048, rsa-3072, rsa-4096, x25519-mlkem768";

    /// Its algorithm family.
    pub fn algorithm(self) -> KeyAlgorithm {
        match self {
            KeyType::Rsa(_) => KeyAlgorithm::Rsa,
            KeyType::X25519MlKem768 => KeyAlgorithm::X25519MlKem768,
        }
    }

    /// The RSA modulus size, 0 for a key type that is not RSA (the
    /// record's `key_bits`).
    pub fn rsa_bits(self) -> u32 {
        match self {
            KeyType::Rsa(b) => b.bits(),
            KeyType::X25519MlKem768 => 0,
        }
    }

    /// The key type of a record's algorithm and size; `None` for a size
    /// kekd never generates.
    pub fn of(algorithm: KeyAlgorithm, key_bits: u32) -> Option<KeyType> {
        match algorithm {
            KeyAlgorithm::Rsa => KeyBits::try_from(key_bits).ok().map(KeyType::Rsa),
            KeyAlgorithm::X25519MlKem768 => Some(KeyType::X25519MlKem768),
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyType::Rsa(b) => write!(f, "rsa-{}", b.bits()),
            KeyType::X25519MlKem768 => f.write_str("x25519-mlkem768"),
        }
    }
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<KeyType, String> {
        match s {
            "x25519-mlkem768" => Ok(KeyType::X25519MlKem768),
            _ => s
                .strip_prefix("rsa-")
                .and_then(|b| b.parse::<u32>().ok())
                .and_then(|b| KeyBits::try_from(b).ok())
                .map(KeyType::Rsa)
                .ok_or_else(|| format!("unknown key type {s:?}")),
        }
    }
}

impl TryFrom<String> for KeyType {
    type Error = String;
    fn try_from(s: String) -> Result<KeyType, String> {
        s.parse()
    }
}

impl From<KeyType> for String {
    fn from(k: KeyType) -> String {
        k.to_string()
    }
}

impl TryFrom<u32> for KeyBits {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        match v {
            2048 => Ok(KeyBits::Rsa2048),
            3072 => Ok(KeyBits::Rsa3072),
            4096 => Ok(KeyBits::Rsa4096),
            other => Err(format!("unsupported RSA key size {other}")),
        }
    }
}

impl From<KeyBits> for u32 {
    fn from(k: KeyBits) -> u32 {
        k.bits()
    }
}

/// `kek-` + 16 lower-case hex digits: the only shape of a key-pair id.
/// Anything else (from a URL, a recording header, a request) is refused
/// before it is used or recorded.
pub fn is_key_pair_id(s: &str) -> bool {
    s.len() == 20
        && s.starts_with("kek-")
        && s.bytes()
            .skip(4)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `format` value of the single-wrapping envelope.
pub const ENVELOPE_V1: &str = "kekd-envelope-v1";

/// The `format` value of an envelope whose data key is also wrapped under
/// backup KMS keys (`backups` non-empty).
pub const ENVELOPE_V2: &str = "kekd-envelope-v2";

/// The data key wrapped under one backup KMS key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wrapping {
    /// The backup key's ARN, as KMS reported it.
    pub wrapping_key_arn: String,
    /// KMS `CiphertextBlob` of the same 256-bit data key (base64).
    #[serde(with = "b64")]
    pub encrypted_data_key: Vec<u8>,
}

/// An encrypted private key and everything needed to decrypt it with KMS.
/// Its JSON form is the `export` format (docs/envelope-format.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// [`ENVELOPE_V1`], or [`ENVELOPE_V2`] when `backups` is not empty.
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
    /// The private key's type: absent for RSA (a PKCS#8 DER key), else
    /// `x25519-mlkem768` (the expanded X-Wing private key).
    #[serde(
        rename = "key_type",
        default,
        skip_serializing_if = "KeyAlgorithm::is_rsa"
    )]
    pub algorithm: KeyAlgorithm,
    /// AES-256-GCM ciphertext of the private key (PKCS#8 DER for RSA, the
    /// 2,464-byte expanded key for the hybrid), 16-byte tag appended
    /// (base64).
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
    /// The same data key wrapped under each backup KMS key, in the
    /// configured order (v2); any one of them can decrypt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<Wrapping>,
}

/// One stored key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPairRecord {
    /// `kek-…`, derived from the public key.
    pub id: String,
    /// Life-cycle state.
    pub state: KeyState,
    /// Its algorithm; absent (RSA) in records older than hybrid key pairs.
    #[serde(
        rename = "key_type",
        default,
        skip_serializing_if = "KeyAlgorithm::is_rsa"
    )]
    pub algorithm: KeyAlgorithm,
    /// RSA modulus size; 0 for a key pair that is not RSA.
    pub key_bits: u32,
    /// Why it was made.
    pub reason: Reason,
    /// When it was generated.
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    /// When it became active (never, for a pending key abandoned by a crash).
    #[serde(with = "rfc3339::option")]
    pub activated_at: Option<Timestamp>,
    /// When it stopped being active.
    #[serde(with = "rfc3339::option")]
    pub retired_at: Option<Timestamp>,
    /// For an announced key pair: when it becomes active.
    #[serde(
        with = "rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub activates_at: Option<Timestamp>,
    /// The KMS key ARN that wraps its data key.
    pub wrapping_key_arn: String,
    /// The public key, base64: SPKI DER for RSA, the raw 1,216-byte X-Wing
    /// public key for the hybrid.
    #[serde(with = "b64")]
    pub public_key_der: Vec<u8>,
    /// The encrypted private key.
    pub envelope: Envelope,
}

/// A key pair without its envelope: what history pages, status and views
/// need. Read from a stored record, its envelope is skipped, not decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPairInfo {
    /// `kek-…`.
    pub id: String,
    /// Life-cycle state.
    pub state: KeyState,
    /// Its algorithm (RSA when absent).
    #[serde(
        rename = "key_type",
        default,
        skip_serializing_if = "KeyAlgorithm::is_rsa"
    )]
    pub algorithm: KeyAlgorithm,
    /// RSA modulus size; 0 for a key pair that is not RSA.
    pub key_bits: u32,
    /// Why it was made.
    pub reason: Reason,
    /// When it was generated.
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    /// When it became active.
    #[serde(with = "rfc3339::option")]
    pub activated_at: Option<Timestamp>,
    /// When it stopped being active.
    #[serde(with = "rfc3339::option")]
    pub retired_at: Option<Timestamp>,
    /// For an announced key pair: when it becomes active.
    #[serde(
        with = "rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub activates_at: Option<Timestamp>,
    /// The KMS key ARN that wraps its data key.
    pub wrapping_key_arn: String,
    /// SPKI DER public key, base64.
    #[serde(with = "b64")]
    pub public_key_der: Vec<u8>,
}

impl KeyPairInfo {
    /// Its key type; `None` for a record of a size kekd never makes.
    pub fn key_type(&self) -> Option<KeyType> {
        KeyType::of(self.algorithm, self.key_bits)
    }
}

impl KeyPairRecord {
    /// Its key type; `None` for a record of a size kekd never makes.
    pub fn key_type(&self) -> Option<KeyType> {
        KeyType::of(self.algorithm, self.key_bits)
    }

    /// The record without its envelope.
    pub fn info(&self) -> KeyPairInfo {
        KeyPairInfo {
            id: self.id.clone(),
            state: self.state,
            algorithm: self.algorithm,
            key_bits: self.key_bits,
            reason: self.reason,
            created_at: self.created_at,
            activated_at: self.activated_at,
            retired_at: self.retired_at,
            activates_at: self.activates_at,
            wrapping_key_arn: self.wrapping_key_arn.clone(),
            public_key_der: self.public_key_der.clone(),
        }
    }
}

/// The rotation schedule, persisted so a restart never rotates twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The last completed rotation.
    #[serde(with = "rfc3339::option")]
    pub last_rotation_at: Option<Timestamp>,
    /// When the next scheduled rotation is due; `None` = on demand only.
    #[serde(with = "rfc3339::option")]
    pub next_rotation_at: Option<Timestamp>,
}

/// serde helpers: bytes as standard, padded base64 (RFC 4648 §4), the one
/// binary encoding of the envelope, the store and the API.
pub(crate) mod b64 {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        B64.decode(String::deserialize(d)?)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_the_wire_and_in_text_agree() {
        assert_eq!(Reason::ChangeKeyNow.to_string(), "change-key-now");
        assert_eq!(KeyState::Retired.to_string(), "retired");
        assert_eq!(
            serde_json::to_string(&Reason::KmsKeyChanged).unwrap(),
            "\"kms-key-changed\""
        );
    }

    #[test]
    fn key_types_are_spelled_one_way_and_old_records_read_as_rsa() {
        for name in KeyType::ALLOWED.split(", ") {
            let k: KeyType = name.parse().unwrap();
            assert_eq!(k.to_string(), name);
            assert_eq!(KeyType::of(k.algorithm(), k.rsa_bits()), Some(k));
        }
        for bad in ["rsa-1024", "rsa", "RSA-3072", "x25519", ""] {
            assert!(bad.parse::<KeyType>().is_err(), "{bad:?}");
        }
        // A record from before hybrid key pairs has no `key_type`: RSA.
        let mut old =
            serde_json::to_value(crate::testing::record_at("kek-0123456789abcdef", 1)).unwrap();
        assert!(
            old.get("key_type").is_none(),
            "RSA records stay as they were"
        );
        old.as_object_mut().unwrap().remove("key_type");
        let back: KeyPairRecord = serde_json::from_value(old).unwrap();
        assert_eq!(back.algorithm, KeyAlgorithm::Rsa);
        assert_eq!(back.key_type(), Some(KeyType::Rsa(KeyBits::Rsa3072)));
        let mut hybrid = back.clone();
        hybrid.algorithm = KeyAlgorithm::X25519MlKem768;
        hybrid.key_bits = 0;
        let v = serde_json::to_value(&hybrid).unwrap();
        assert_eq!(v["key_type"], "x25519-mlkem768");
        assert_eq!(
            serde_json::from_value::<KeyPairRecord>(v)
                .unwrap()
                .key_type(),
            Some(KeyType::X25519MlKem768)
        );
    }

    #[test]
    fn key_pair_ids_have_one_shape() {
        assert!(is_key_pair_id("kek-0123456789abcdef"));
        for bad in [
            "kek-0123456789ABCDEF",
            "kek-0123456789abcde",
            "kek-0123456789abcdef0",
            "kek-0123456789abcdeg",
            "%6B%65%6B",
            "",
        ] {
            assert!(!is_key_pair_id(bad), "{bad:?}");
        }
    }
}
