//! Organizations: the customers one daemon (and one fleet) serves. An
//! organization is data in the store — its id, its KMS keys and the
//! settings of its rotation — not a process and not a config file.

use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};

/// Longest organization id: it is the encryption-context value and part of
/// store keys, table names and metric labels.
pub const MAX_ORG_ID: usize = 64;

/// Whether `id` is a valid organization id: 1–64 characters of
/// `[A-Za-z0-9._-]` (the characters that need no escaping in an encryption
/// context, a URL path, a redb table name or a DynamoDB key).
pub fn is_org_id(id: &str) -> bool {
    (1..=MAX_ORG_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && id != "."
        && id != ".."
}

/// What an operator says about one organization. Every field but the id is
/// optional: absent means kekd's documented default (never the value of
/// some member's file, so every fleet member makes the same settings of
/// it). Stored as given; validated by making its settings
/// (`Settings::for_org`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// The organization id (the encryption-context value).
    pub id: String,
    /// The customer's KMS key; absent: the daemon's local root key (only
    /// where the daemon's provider is local, as in `--dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// Backup KMS keys every key pair is also wrapped under.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_kms_key_arns: Vec<String>,
    /// A role in the customer's account kekd assumes to use the key
    /// (absent: the platform's own credentials, granted by the key policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role_arn: Option<String>,
    /// The external id the role's trust policy requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The KMS home region, when it is not the one the ARN names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Rotation cadence (`daily`, `weekly`, `monthly`, or cron).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cadence: Option<String>,
    /// The time zone the cadence is read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// RSA size of new key pairs (the older spelling of `key_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_bits: Option<i64>,
    /// What new key pairs are: `rsa-3072`, …, or `x25519-mlkem768`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// How long retired key pairs are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// How long before a rotation the next key pair is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_ahead: Option<String>,
    /// The encryption-context key that carries the organization id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context_key: Option<String>,
    /// While the customer's key is revoked: keep serving the last public
    /// key (`serve`, the default) or stop (`withhold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_revocation: Option<super::OnRevocation>,
}

/// What `org set` changes: each field given replaces the organization's;
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    /// A new KMS key.
    #[serde(default)]
    pub kms_key_arn: Option<String>,
    /// New backup keys (the whole list).
    #[serde(default)]
    pub backup_kms_key_arns: Option<Vec<String>>,
    /// A new role to assume.
    #[serde(default)]
    pub assume_role_arn: Option<String>,
    /// A new external id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// A new region.
    #[serde(default)]
    pub region: Option<String>,
    /// A new cadence.
    #[serde(default)]
    pub cadence: Option<String>,
    /// A new time zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// A new key size (RSA).
    #[serde(default)]
    pub key_bits: Option<i64>,
    /// A new key type; the next key pair is made of it.
    #[serde(default)]
    pub key_type: Option<String>,
    /// A new retention.
    #[serde(default)]
    pub retention: Option<String>,
    /// A new `announce_ahead`.
    #[serde(default)]
    pub announce_ahead: Option<String>,
    /// A new `on_revocation`.
    #[serde(default)]
    pub on_revocation: Option<super::OnRevocation>,
}

impl OrgPatch {
    /// `spec` with this patch's fields in place.
    pub fn apply(self, mut spec: OrgSpec) -> OrgSpec {
        if let Some(v) = self.kms_key_arn {
            spec.kms_key_arn = Some(v);
        }
        if let Some(v) = self.backup_kms_key_arns {
            spec.backup_kms_key_arns = v;
        }
        // One of the two spellings of the key type replaces both: a new
        // `key_type` never conflicts with an older `key_bits`.
        if self.key_type.is_some() {
            spec.key_bits = None;
        }
        if self.key_bits.is_some() {
            spec.key_type = None;
        }
        macro_rules! take {
            ($($f:ident),*) => {$(if self.$f.is_some() { spec.$f = self.$f; })*};
        }
        take!(
            assume_role_arn,
            external_id,
            region,
            cadence,
            timezone,
            key_bits,
            key_type,
            retention,
            announce_ahead,
            on_revocation
        );
        spec
    }
}

/// Where an organization is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OrgState {
    /// Rotating and served.
    Active,
    /// Offboarded: no rotation, no public key served, history kept and
    /// unwrap still working until it is purged.
    Removed,
}

crate::domain::display_as_serde!(OrgState);

/// Where an organization's settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OrgSource {
    /// The daemon's configuration file (created or updated from it at
    /// start and reload).
    File,
    /// The API (`kekctl org add`, `org set`, `org apply`).
    Api,
}

crate::domain::display_as_serde!(OrgSource);

/// An organization as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// What the operator said.
    pub spec: OrgSpec,
    /// Active or removed.
    pub state: OrgState,
    /// Who declared it.
    pub source: OrgSource,
    /// When it was added.
    #[serde(with = "time::rfc3339")]
    pub created_at: Timestamp,
    /// When its spec or state last changed.
    #[serde(with = "time::rfc3339")]
    pub updated_at: Timestamp,
    /// When it was removed (the restore window runs from here).
    #[serde(default, with = "time::rfc3339::option")]
    pub removed_at: Option<Timestamp>,
    /// The end of the restore window: purge is refused before it.
    #[serde(default, with = "time::rfc3339::option")]
    pub purge_after: Option<Timestamp>,
}

impl OrgRecord {
    /// A new, active organization.
    pub fn new(spec: OrgSpec, source: OrgSource, at: Timestamp) -> OrgRecord {
        OrgRecord {
            spec,
            state: OrgState::Active,
            source,
            created_at: at,
            updated_at: at,
            removed_at: None,
            purge_after: None,
        }
    }

    /// The organization id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_ids_are_short_plain_names() {
        for good in ["acme", "a", "Acme-Corp_2.eu", &"x".repeat(64)] {
            assert!(is_org_id(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a/b",
            "a#b",
            "é",
            "a\n",
            &"x".repeat(65),
        ] {
            assert!(!is_org_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_spec_keeps_only_what_was_said() {
        let spec = OrgSpec {
            id: "acme".into(),
            cadence: Some("weekly".into()),
            ..OrgSpec::default()
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, r#"{"id":"acme","cadence":"weekly"}"#);
        assert_eq!(serde_json::from_str::<OrgSpec>(&json).unwrap(), spec);
        assert!(serde_json::from_str::<OrgSpec>(r#"{"id":"a","cadense":"x"}"#).is_err());
    }
}
