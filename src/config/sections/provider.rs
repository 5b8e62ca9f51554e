//! `[provider]`: which provider wraps the data keys, the KMS key and its
//! backups.

use crate::config::arn::{KmsKeyArn, ARN_FORMS};
use crate::config::raw::RawProvider;
use crate::config::validate::Validator;
use crate::config::ConfigError;
use std::path::PathBuf;

/// Which provider wraps the data keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProviderSettings {
    /// The customer's AWS KMS symmetric key.
    AwsKms {
        /// Alias or key ARN, parsed.
        key: KmsKeyArn,
        /// Keys (usually in other regions, or multi-Region replicas) that
        /// each also wrap every data key, so playback survives an outage of
        /// the primary's region.
        backups: Vec<KmsKeyArn>,
    },
    /// A local 256-bit root key file (development, tests).
    Local {
        /// Where the root key lives; created 0600 on first use.
        root_key_path: PathBuf,
    },
}

impl std::fmt::Display for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderSettings::AwsKms { key, backups } if backups.is_empty() => write!(f, "{key}"),
            ProviderSettings::AwsKms { key, backups } => {
                let b: Vec<String> = backups.iter().map(|k| k.to_string()).collect();
                write!(f, "{key} (backups: {})", b.join(", "))
            }
            ProviderSettings::Local { root_key_path } => {
                write!(f, "local root key {}", root_key_path.display())
            }
        }
    }
}

impl ProviderSettings {
    pub(crate) fn with_config(
        raw: Option<&RawProvider>,
        region: Option<&str>,
        v: &Validator,
    ) -> Result<ProviderSettings, ConfigError> {
        let raw = raw.ok_or_else(|| {
            v.invalid(
                "provider",
                None,
                "missing section [provider]",
                "type = \"aws-kms-symmetric\" or \"local\"",
            )
        })?;
        match raw.kind.as_deref() {
            Some("aws-kms-symmetric") => {
                if raw.root_key_path.is_some() {
                    return Err(v.invalid(
                        "provider.root_key_path",
                        raw.root_key_path.as_deref(),
                        "only valid with type = \"local\"",
                        "kms_key_arn for aws-kms-symmetric",
                    ));
                }
                let text = raw
                    .kms_key_arn
                    .as_deref()
                    .ok_or_else(|| v.invalid("provider.kms_key_arn", None, "missing", ARN_FORMS))?;
                let key: KmsKeyArn = text.parse().map_err(|why: String| {
                    v.invalid(
                        "provider.kms_key_arn",
                        Some(text),
                        &format!("malformed ARN: {why}"),
                        ARN_FORMS,
                    )
                })?;
                // The home region is the ARN's own unless `region` names
                // one; then the two must agree.
                let home = region.unwrap_or(&key.region);
                if key.region != home {
                    return Err(v.invalid(
                        "provider.kms_key_arn",
                        Some(text),
                        &format!(
                            "the ARN's region {} is not the configured region {home}",
                            key.region
                        ),
                        "a key or alias ARN in the configured region",
                    ));
                }
                let mut backups = Vec::new();
                for (i, text) in raw.backup_kms_key_arns.iter().flatten().enumerate() {
                    let field = format!("provider.backup_kms_key_arns[{i}]");
                    let backup: KmsKeyArn = text.parse().map_err(|why: String| {
                        v.invalid(
                            &field,
                            Some(text),
                            &format!("malformed ARN: {why}"),
                            ARN_FORMS,
                        )
                    })?;
                    if backup == key || backups.contains(&backup) {
                        return Err(v.invalid(
                            &field,
                            Some(text),
                            "listed twice (or the primary key itself)",
                            "distinct KMS keys other than kms_key_arn",
                        ));
                    }
                    backups.push(backup);
                }
                Ok(ProviderSettings::AwsKms { key, backups })
            }
            Some("local") => {
                if raw.backup_kms_key_arns.is_some() {
                    return Err(v.invalid(
                        "provider.backup_kms_key_arns",
                        None,
                        "only valid with type = \"aws-kms-symmetric\"",
                        "absent for the local provider",
                    ));
                }
                if raw.kms_key_arn.is_some() {
                    return Err(v.invalid(
                        "provider.kms_key_arn",
                        raw.kms_key_arn.as_deref(),
                        "only valid with type = \"aws-kms-symmetric\"",
                        "root_key_path for local",
                    ));
                }
                let path = raw.root_key_path.as_deref().ok_or_else(|| {
                    v.invalid(
                        "provider.root_key_path",
                        None,
                        "missing",
                        "an absolute path to a 32-byte root key file",
                    )
                })?;
                // Relative to what? The daemon's working directory differs
                // between a shell, systemd and a reload.
                Ok(ProviderSettings::Local {
                    root_key_path: v.absolute_path("provider.root_key_path", Some(path), "")?,
                })
            }
            other => Err(v.invalid(
                "provider.type",
                other,
                if other.is_some() {
                    "unknown provider"
                } else {
                    "missing"
                },
                "aws-kms-symmetric, local",
            )),
        }
    }
}
