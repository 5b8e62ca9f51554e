//! An organization's settings: the file as the template, the
//! organization's own fields in place of the file's.

use super::{ConfigError, Settings};

impl Settings {
    /// The organization this file declares: its id and the fields of the
    /// file that belong to an organization, as written.
    pub fn declared_org(&self) -> crate::domain::OrgSpec {
        let raw = &self.raw;
        let provider = raw.provider.as_ref();
        crate::domain::OrgSpec {
            id: self.organization_id.clone(),
            kms_key_arn: provider.and_then(|p| p.kms_key_arn.clone()),
            backup_kms_key_arns: provider
                .and_then(|p| p.backup_kms_key_arns.clone())
                .unwrap_or_default(),
            region: raw.region.clone(),
            cadence: raw.cadence.clone(),
            timezone: raw.timezone.clone(),
            key_bits: raw.key_bits,
            key_type: raw.key_type.clone(),
            retention: raw.retention.clone(),
            announce_ahead: raw.announce_ahead.clone(),
            encryption_context_key: raw.encryption_context_key.clone(),
            assume_role_arn: provider.and_then(|p| p.assume_role_arn.clone()),
            external_id: provider.and_then(|p| p.external_id.clone()),
            // Validated with the file: an unknown value never gets here.
            on_revocation: Some(self.on_revocation).filter(|_| raw.on_revocation.is_some()),
        }
    }

    /// The settings of organization `spec`: the daemon-wide sections of
    /// this file, the organization's own fields from `spec` (absent ones
    /// take kekd's defaults, never this file's, so every fleet member makes
    /// the same settings of one organization). Errors name the organization
    /// and the field.
    pub fn for_org(&self, spec: &crate::domain::OrgSpec) -> Result<Settings, ConfigError> {
        let mut raw = (*self.raw).clone();
        raw.organization_id = Some(spec.id.clone());
        raw.region = spec.region.clone();
        raw.cadence = spec.cadence.clone();
        raw.timezone = spec.timezone.clone();
        raw.key_bits = spec.key_bits;
        raw.key_type = spec.key_type.clone();
        raw.retention = spec.retention.clone();
        raw.announce_ahead = spec.announce_ahead.clone();
        raw.encryption_context_key = spec.encryption_context_key.clone();
        raw.on_revocation = spec.on_revocation.map(|o| o.to_string());
        let mut provider = raw.provider.clone().unwrap_or_default();
        match &spec.kms_key_arn {
            Some(arn) => {
                provider.kind = Some("aws-kms-symmetric".into());
                provider.kms_key_arn = Some(arn.clone());
                provider.root_key_path = None;
                provider.backup_kms_key_arns = Some(spec.backup_kms_key_arns.clone());
                provider.assume_role_arn = spec.assume_role_arn.clone();
                provider.external_id = spec.external_id.clone();
            }
            None if self.uses_kms() => {
                return Err(ConfigError::Invalid {
                    file: format!("organization {}", spec.id),
                    field: "kms_key_arn".into(),
                    value: None,
                    problem: "missing".into(),
                    allowed: "the ARN of the organization's KMS key (only a daemon whose [provider] is local serves organizations without one)".into(),
                });
            }
            None => {
                provider.kms_key_arn = None;
                provider.backup_kms_key_arns = None;
                provider.assume_role_arn = spec.assume_role_arn.clone();
                provider.external_id = spec.external_id.clone();
            }
        }
        raw.provider = Some(provider);
        let mut settings = Self::from_raw(&raw, &format!("organization {}", spec.id))?;
        // The daemon's file stays the template of the next organization.
        settings.raw = self.raw.clone();
        Ok(settings)
    }
}
