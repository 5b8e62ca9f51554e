//! The top-level identity fields (who kekd serves, where KMS lives, the
//! context key), the key size and the time zone.

use crate::config::arn;
use crate::config::defaults;
use crate::config::raw::RawConfig;
use crate::config::validate::Validator;
use crate::config::ConfigError;
use crate::domain::{is_context_value, KeyBits, KeyType, KEY_PAIR_CONTEXT_KEY};

const CONTEXT_VALUE_FORMS: &str = "1-128 characters of A-Z a-z 0-9 . _ -";
/// What an organization id may be.
pub(crate) const ORG_ID_FORMS: &str = "1-64 characters of A-Z a-z 0-9 . _ -";

/// The top-level identity fields: who kekd serves and where KMS lives.
pub(crate) struct Identity {
    pub(crate) organization_id: String,
    pub(crate) region: Option<String>,
    pub(crate) context_key: String,
}

impl Identity {
    pub(crate) fn with_config(raw: &RawConfig, v: &Validator) -> Result<Identity, ConfigError> {
        let organization_id = raw
            .organization_id
            .clone()
            .ok_or_else(|| v.invalid("organization_id", None, "missing", ORG_ID_FORMS))?;
        if !crate::domain::is_org_id(&organization_id) {
            return Err(v.invalid(
                "organization_id",
                Some(&organization_id),
                "not a valid organization id",
                ORG_ID_FORMS,
            ));
        }
        let region = match &raw.region {
            Some(r) if arn::is_region(r) => Some(r.clone()),
            Some(r) => {
                return Err(v.invalid(
                    "region",
                    Some(r),
                    "not an AWS region name",
                    "a region such as eu-west-1",
                ))
            }
            None => None,
        };
        let context_key = raw
            .encryption_context_key
            .clone()
            .unwrap_or_else(|| defaults::CONTEXT_KEY.into());
        if !is_context_value(&context_key) || context_key == KEY_PAIR_CONTEXT_KEY {
            return Err(v.invalid(
                "encryption_context_key",
                Some(&context_key),
                "not usable as an encryption-context key",
                &format!("{CONTEXT_VALUE_FORMS}, other than {KEY_PAIR_CONTEXT_KEY}"),
            ));
        }
        Ok(Identity {
            organization_id,
            region,
            context_key,
        })
    }
}

/// `key_type`, or the older `key_bits` (an RSA size) it subsumes; both
/// are accepted only when they agree.
pub(crate) fn key_type(
    raw_type: Option<&str>,
    raw_bits: Option<i64>,
    v: &Validator,
) -> Result<KeyType, ConfigError> {
    let Some(name) = raw_type else {
        return key_bits(raw_bits, v).map(KeyType::Rsa);
    };
    let key_type: KeyType = name
        .parse()
        .map_err(|_| v.invalid("key_type", Some(name), "unknown key type", KeyType::ALLOWED))?;
    if let Some(bits) = raw_bits {
        if i64::from(key_type.rsa_bits()) != bits {
            return Err(v.invalid(
                "key_bits",
                Some(&bits.to_string()),
                &format!("conflicts with key_type = \"{key_type}\""),
                "leave key_bits out: key_type names the size",
            ));
        }
    }
    // X25519 is not a FIPS-approved algorithm, so the hybrid is not one
    // either: a FIPS build offers only what its module approves.
    #[cfg(feature = "fips")]
    if key_type.algorithm() != crate::domain::KeyAlgorithm::Rsa {
        return Err(v.invalid(
            "key_type",
            Some(name),
            "not available in the FIPS build (X25519 is not FIPS-approved, so neither is the X25519 + ML-KEM-768 hybrid)",
            "rsa-2048, rsa-3072, rsa-4096",
        ));
    }
    Ok(key_type)
}

fn key_bits(raw: Option<i64>, v: &Validator) -> Result<KeyBits, ConfigError> {
    let bits = raw.unwrap_or(i64::from(defaults::KEY_BITS));
    u32::try_from(bits)
        .ok()
        .and_then(|b| KeyBits::try_from(b).ok())
        .ok_or_else(|| {
            v.invalid(
                "key_bits",
                Some(&bits.to_string()),
                "unsupported RSA key size",
                "2048, 3072, 4096",
            )
        })
}

pub(crate) fn timezone(raw: Option<&str>, v: &Validator) -> Result<chrono_tz::Tz, ConfigError> {
    let text = raw.unwrap_or(defaults::TIMEZONE);
    text.parse::<chrono_tz::Tz>().map_err(|_| {
        v.invalid(
            "timezone",
            Some(text),
            "unknown time zone",
            "an IANA time zone name such as UTC or Europe/Berlin",
        )
    })
}
