//! `[customer_keys]` and `on_revocation`: how kekd watches, and honours,
//! each customer's hold on their own KMS key.

use crate::config::defaults;
use crate::config::raw::RawCustomerKeys;
use crate::config::validate::Validator;
use crate::config::ConfigError;
use crate::domain::OnRevocation;
use std::time::Duration;

/// Daemon-wide: the revocation bound and the Test's isolation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CustomerKeys {
    /// A revocation (key disabled, pending deletion, access taken away, key
    /// gone) shows in status within this, even when nothing rotates or
    /// unwraps; so does its end.
    pub(crate) notice_within: Duration,
    /// `org add` refuses a key whose policy does not bind it to the
    /// organization (the Test's isolation probe was granted a data key).
    pub(crate) require_isolation: bool,
    /// How long a customer's role's credentials last (STS
    /// `DurationSeconds`): a change of the role's trust policy reaches
    /// kekd at the next session at the latest, since STS keeps honouring
    /// the one it issued.
    pub(crate) role_session: Duration,
}

impl Default for CustomerKeys {
    fn default() -> Self {
        CustomerKeys {
            notice_within: defaults::NOTICE_REVOCATION_WITHIN,
            require_isolation: false,
            role_session: defaults::ROLE_SESSION,
        }
    }
}

impl CustomerKeys {
    /// How often each organization's key is probed: four fifths of the
    /// bound, leaving the rest for the probe itself (its KMS timeouts, its
    /// wait in the request budget).
    pub(crate) fn probe_every(&self) -> Duration {
        self.notice_within.mul_f64(0.8)
    }

    pub(crate) fn with_config(
        raw: Option<&RawCustomerKeys>,
        allow_frequent_checks: bool,
        v: &Validator,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        const FIELD: &str = "customer_keys.notice_revocation_within";
        let value = raw.notice_revocation_within.as_deref();
        let notice_within = v.duration_or(FIELD, value, defaults::NOTICE_REVOCATION_WITHIN)?;
        if notice_within > defaults::MAX_NOTICE_REVOCATION_WITHIN {
            return Err(v.invalid(
                FIELD,
                value,
                "longer than a day",
                "a duration from 1m to 24h (a customer's revocation must be noticed the same day)",
            ));
        }
        if notice_within < defaults::MIN_NOTICE_REVOCATION_WITHIN {
            if !allow_frequent_checks {
                return Err(v.invalid(
                    FIELD,
                    value,
                    "shorter than 1m (each organization's key is probed with a KMS Decrypt and an audit record within it)",
                    "a duration from 1m to 24h, or set [overrides] allow_frequent_checks = true",
                ));
            }
            warnings.push(format!(
                "{FIELD} is {} (allowed by [overrides] allow_frequent_checks)",
                humantime::format_duration(notice_within)
            ));
        }
        const SESSION: &str = "customer_keys.role_session";
        let value = raw.role_session.as_deref();
        let role_session = v.duration_or(SESSION, value, defaults::ROLE_SESSION)?;
        if !(defaults::MIN_ROLE_SESSION..=defaults::MAX_ROLE_SESSION).contains(&role_session) {
            return Err(v.invalid(
                SESSION,
                value,
                "outside what STS grants",
                "a duration from 15m to 12h, at most the role's maximum session duration",
            ));
        }
        Ok(CustomerKeys {
            notice_within,
            require_isolation: raw.require_isolation.unwrap_or(false),
            role_session,
        })
    }
}

/// A role in the customer's account that kekd assumes to use their key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssumeRole {
    /// `arn:aws:iam::ACCOUNT:role/NAME`.
    pub(crate) role_arn: String,
    /// The `sts:ExternalId` its trust policy requires.
    pub(crate) external_id: Option<String>,
}

/// `[provider] assume_role_arn` and `external_id` (only with AWS KMS).
pub(crate) fn assume_role(
    role_arn: Option<&str>,
    external_id: Option<&str>,
    kms: bool,
    v: &Validator,
) -> Result<Option<AssumeRole>, ConfigError> {
    let Some(role_arn) = role_arn else {
        if external_id.is_some() {
            return Err(v.invalid(
                "provider.external_id",
                external_id,
                "given without provider.assume_role_arn",
                "an external id only with the role whose trust policy asks for it",
            ));
        }
        return Ok(None);
    };
    if !kms {
        return Err(v.invalid(
            "provider.assume_role_arn",
            Some(role_arn),
            "only valid with type = \"aws-kms-symmetric\"",
            "absent for the local provider",
        ));
    }
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let role_ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty());
    if !role_ok {
        return Err(v.invalid(
            "provider.assume_role_arn",
            Some(role_arn),
            "not an IAM role ARN",
            "arn:aws:iam::ACCOUNT:role/NAME (the role in the customer's account)",
        ));
    }
    if let Some(id) = external_id {
        let id_ok = (2..=1224).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
        if !id_ok {
            return Err(v.invalid(
                "provider.external_id",
                Some(id),
                "not an external id STS accepts",
                "2-1224 characters of A-Z a-z 0-9 _ + = , . @ : / -",
            ));
        }
    }
    Ok(Some(AssumeRole {
        role_arn: role_arn.to_string(),
        external_id: external_id.map(str::to_string),
    }))
}

/// `on_revocation`: `serve` (the default) or `withhold`.
pub(crate) fn on_revocation(
    value: Option<&str>,
    v: &Validator,
) -> Result<OnRevocation, ConfigError> {
    match value {
        None => Ok(OnRevocation::default()),
        Some(s) => s.parse().map_err(|()| {
            v.invalid(
                "on_revocation",
                Some(s),
                "unknown",
                "\"serve\" (keep serving the last public key) or \"withhold\" (stop serving public keys)",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CustomerKeys, ConfigError> {
        let raw: RawCustomerKeys = toml::from_str(text).unwrap();
        let v = Validator::new("kekd.toml");
        CustomerKeys::with_config(Some(&raw), false, &v, &mut Vec::new())
    }

    #[test]
    fn the_bound_is_a_minute_to_a_day() {
        let d = parse("").unwrap();
        assert_eq!(d.notice_within, Duration::from_secs(300));
        assert_eq!(d.probe_every(), Duration::from_secs(240));
        assert!(!d.require_isolation);
        assert_eq!(d.role_session, Duration::from_secs(3600));
        assert_eq!(
            parse("role_session = \"15m\"").unwrap().role_session,
            Duration::from_secs(900)
        );
        for bad in ["10m", "13h"] {
            let e = parse(&format!("role_session = \"{bad}\""))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("customer_keys.role_session") && e.contains("15m to 12h"),
                "{e}"
            );
        }
        let e = parse("notice_revocation_within = \"10s\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("customer_keys.notice_revocation_within")
                && e.contains("allow_frequent_checks"),
            "{e}"
        );
        let e = parse("notice_revocation_within = \"2d\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than a day"), "{e}");
        let v = Validator::new("kekd.toml");
        let mut w = Vec::new();
        let raw: RawCustomerKeys = toml::from_str("notice_revocation_within = \"10s\"").unwrap();
        assert!(CustomerKeys::with_config(Some(&raw), true, &v, &mut w).is_ok());
        assert_eq!(w.len(), 1);
        assert!(on_revocation(Some("stop"), &v)
            .unwrap_err()
            .to_string()
            .contains("withhold"));
    }

    #[test]
    fn an_assumed_role_is_an_iam_role_with_an_optional_external_id() {
        let v = Validator::new("kekd.toml");
        let role = "arn:aws:iam::210987654321:role/kekd-access";
        let r = assume_role(Some(role), Some("ext-123"), true, &v)
            .unwrap()
            .unwrap();
        assert_eq!(r.external_id.as_deref(), Some("ext-123"));
        for bad in [
            "arn:aws:iam::2109:role/x",
            "arn:aws:iam::210987654321:user/x",
            "role/x",
        ] {
            let e = assume_role(Some(bad), None, true, &v)
                .unwrap_err()
                .to_string();
            assert!(e.contains("provider.assume_role_arn"), "{e}");
        }
        let e = assume_role(None, Some("x1"), true, &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("without provider.assume_role_arn"), "{e}");
        let e = assume_role(Some(role), Some("a b"), true, &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("provider.external_id"), "{e}");
        assert!(assume_role(Some(role), None, false, &v).is_err());
    }
}
