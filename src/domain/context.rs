//! The KMS encryption context: non-secret key/value pairs bound to every
//! wrapped data key. KMS refuses to decrypt without the same context, and
//! kekd uses its canonical encoding as the AES-GCM associated data of the
//! envelope, so a ciphertext cannot be moved to another organization or key
//! pair.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The context key that carries the key-pair id.
pub const KEY_PAIR_CONTEXT_KEY: &str = "key-pair-id";

/// The pairs, ordered by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(pub BTreeMap<String, String>);

impl EncryptionContext {
    /// Canonical, unambiguous encoding: for each pair in ascending byte order
    /// of the key, `u16 BE len(key) ‖ key ‖ u16 BE len(value) ‖ value` (UTF-8).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            for s in [k, v] {
                // Longer strings cannot be encoded unambiguously; they are
                // refused at validation (128 bytes at most), so this only
                // truncates input that was never accepted.
                let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
            }
        }
        out
    }

    /// The pairs as a map, e.g. for the SDK.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
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

/// Encryption-context keys and values kekd writes: short, printable, and
/// unambiguous in logs and key policies (1-128 of `A-Z a-z 0-9 . _ -`).
pub fn is_context_value(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the byte format documented in docs/envelope-format.md.
    #[test]
    fn canonical_encoding_matches_the_documented_example() {
        let ctx = context_for("organization-id", "acme", "kek-0123456789abcdef");
        assert_eq!(
            hex::encode(ctx.canonical_bytes()),
            "000b6b65792d706169722d696400146b656b2d30313233343536373839616263646566000f6f7267616e697a6174696f6e2d6964000461636d65"
        );
    }

    #[test]
    fn context_values_are_short_and_printable() {
        assert!(is_context_value("acme-1.prod_x"));
        for bad in ["", "a b", "ä", &"x".repeat(129)] {
            assert!(!is_context_value(bad), "{bad:?}");
        }
    }
}
