//! Preflight and the Test round trip: proving a KMS key (and, in fleet
//! mode, the store's table) is usable before kekd depends on it.
//!
//! Preflight asks `DescribeKey` and checks the answer: a symmetric
//! `SYMMETRIC_DEFAULT` / `ENCRYPT_DECRYPT` key, `Enabled`, in the configured
//! region. The Test round trip then exercises exactly what a rotation does —
//! `GenerateDataKey`, AES-GCM over test data, `Decrypt`, compare — and stores
//! nothing. Both report each step, so the operator sees where it broke.

use crate::config::{arn::KmsKeyArn, Settings};
use crate::domain::{context_for, KeyProblem, KeyProblemKind, NoticedBy};
use crate::provider::{FailureKind, KeyDescription, KeyProvider, ProviderError};
use serde::{Deserialize, Serialize};

/// Why a key fails preflight, named precisely.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    /// The alias or key does not exist.
    #[error("KMS key or alias not found: {0}")]
    NotFound(String),
    /// Not a symmetric encryption key.
    #[error("KMS key spec is {}, kekd needs SYMMETRIC_DEFAULT", shown(.0))]
    WrongKeySpec(String),
    /// Not for encryption.
    #[error("KMS key usage is {}, kekd needs ENCRYPT_DECRYPT", shown(.0))]
    WrongKeyUsage(String),
    /// Disabled.
    #[error("KMS key is disabled (enable it, or configure another key)")]
    Disabled,
    /// Scheduled for deletion.
    #[error("KMS key is pending deletion{} (cancel the deletion, or configure another key)", deletion_on(.deletion_date))]
    PendingDeletion {
        /// When KMS deletes it, as `DescribeKey` says.
        deletion_date: Option<crate::time::Timestamp>,
    },
    /// Any other unusable state.
    #[error("KMS key state is {0}, kekd needs Enabled")]
    NotEnabled(String),
    /// The key lives in another region.
    #[error("KMS key {arn} is in region {found}, the configured region is {expected}")]
    RegionMismatch {
        /// The key ARN.
        arn: String,
        /// Its region.
        found: String,
        /// The configured region.
        expected: String,
    },
    /// IAM or key policy refuses kekd.
    #[error("access denied by KMS: {0}")]
    AccessDenied(String),
    /// kekd has no AWS credentials to ask with.
    #[error("{}", .0.message)]
    NoCredentials(ProviderError),
    /// KMS could not be asked, or failed in a way not named above.
    #[error("KMS unavailable: {0}")]
    Provider(ProviderError),
}

fn deletion_on(date: &Option<crate::time::Timestamp>) -> String {
    date.map(|d| format!(" (deleted on {})", crate::time::format(&d)))
        .unwrap_or_default()
}

/// A value KMS reported, or that it reported none (moto leaves `KeyUsage`
/// out when a key was created without it).
fn shown(value: &str) -> &str {
    if value.is_empty() {
        "absent (DescribeKey named none)"
    } else {
        value
    }
}

impl PreflightError {
    /// Whether KMS could not serve now (the provider's one availability
    /// rule): asking again later may succeed without anyone acting.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(self, PreflightError::Provider(p) if p.kind.is_unavailable())
    }

    /// The key problem this is, as status shows it; `None` for an outage
    /// (which says nothing about the key).
    pub(crate) fn problem(&self, by: NoticedBy) -> Option<KeyProblem> {
        use KeyProblemKind as K;
        let (kind, date) = match self {
            _ if self.is_unavailable() => return None,
            PreflightError::NotFound(_) => (K::NotFound, None),
            PreflightError::Disabled => (K::Disabled, None),
            PreflightError::PendingDeletion { deletion_date } => {
                (K::PendingDeletion, *deletion_date)
            }
            PreflightError::NotEnabled(_) => (K::InvalidState, None),
            PreflightError::AccessDenied(_) => (K::AccessDenied, None),
            PreflightError::Provider(p) => (p.kind.key_problem().unwrap_or(K::Misconfigured), None),
            _ => (K::Misconfigured, None),
        };
        Some(KeyProblem::new(kind, self.to_string(), by).deleted_at(date))
    }
}

impl From<ProviderError> for PreflightError {
    fn from(e: ProviderError) -> Self {
        match e.kind {
            FailureKind::NotFound => PreflightError::NotFound(e.to_string()),
            FailureKind::AccessDenied => PreflightError::AccessDenied(e.to_string()),
            FailureKind::Credentials => PreflightError::NoCredentials(e),
            FailureKind::KeyDisabled => PreflightError::Disabled,
            FailureKind::InvalidKeyState => PreflightError::NotEnabled(e.to_string()),
            _ => PreflightError::Provider(e),
        }
    }
}

/// Checks the configured key with `DescribeKey`.
pub(crate) async fn preflight(
    provider: &dyn KeyProvider,
    settings: &Settings,
) -> Result<KeyDescription, PreflightError> {
    let d = provider.describe_key().await?;
    check_description(&d, settings.region.as_deref())?;
    // Each backup key: the same checks, in its own region.
    for backup in provider.backup_keys() {
        let b = provider.describe(&backup).await?;
        check_description(&b, None)?;
    }
    Ok(d)
}

/// The checks on a `DescribeKey` answer, separate so they are unit-tested.
pub(crate) fn check_description(
    d: &KeyDescription,
    region: Option<&str>,
) -> Result<(), PreflightError> {
    if d.key_spec != "SYMMETRIC_DEFAULT" {
        return Err(PreflightError::WrongKeySpec(d.key_spec.clone()));
    }
    if d.key_usage != "ENCRYPT_DECRYPT" {
        return Err(PreflightError::WrongKeyUsage(d.key_usage.clone()));
    }
    match d.key_state.as_str() {
        "Enabled" => {}
        "Disabled" => return Err(PreflightError::Disabled),
        "PendingDeletion" | "PendingReplicaDeletion" => {
            return Err(PreflightError::PendingDeletion {
                deletion_date: d.deletion_date,
            })
        }
        other => return Err(PreflightError::NotEnabled(other.to_string())),
    }
    // For a multi-Region key the ARN DescribeKey returns is that of the
    // primary or replica *in the region asked*, so one check covers both.
    if let (Some(expected), Ok(arn)) = (region, d.arn.parse::<KmsKeyArn>()) {
        if arn.region != expected {
            return Err(PreflightError::RegionMismatch {
                arn: d.arn.clone(),
                found: arn.region,
                expected: expected.to_string(),
            });
        }
    }
    Ok(())
}

/// One step of the Test round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestStep {
    /// `describe-key`, `generate-data-key`, `encrypt-test-data`,
    /// `decrypt-data-key`, `decrypt-test-data`, `compare`.
    pub step: String,
    /// Whether it passed.
    pub ok: bool,
    /// What happened (errors include the KMS code and request id).
    pub detail: String,
}

/// The outcome of a Test round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestReport {
    /// All steps passed.
    pub ok: bool,
    /// The key tested, as configured.
    pub kms_key: String,
    /// The steps in order; the run stops at the first failure.
    pub steps: Vec<TestStep>,
    /// Whether the key is bound to this organization (the isolation
    /// probe); `null` when the Test stopped before it.
    #[serde(default)]
    pub isolation: Option<crate::isolation::Isolation>,
    /// What passed but needs a look (e.g. the key is not bound to the
    /// organization).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl TestReport {
    fn new(kms_key: String) -> TestReport {
        TestReport {
            ok: false,
            kms_key,
            steps: Vec::new(),
            isolation: None,
            warnings: Vec::new(),
        }
    }

    fn step(&mut self, step: &str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        self.steps.push(TestStep {
            step: step.into(),
            ok,
            detail: result.unwrap_or_else(|e| e),
        });
        self.ok = ok;
        ok
    }

    /// The first failed step, if any.
    pub fn failure(&self) -> Option<&TestStep> {
        self.steps.iter().find(|s| !s.ok)
    }
}

/// The encryption context of test data: the organization id, and a
/// key-pair id no real key pair can have (ids are `kek-` + hex).
pub(crate) fn test_context(settings: &Settings) -> crate::domain::EncryptionContext {
    context_for(
        &settings.context_key,
        &settings.organization_id,
        "kek-test-round-trip",
    )
}

/// The Test round trip of a candidate configuration, straight against its
/// KMS key (`kekctl test --config FILE`): builds the provider the file names
/// without creating anything (a missing local root key is a failed step, not
/// a new file), and writes nothing. `require_isolation` makes a key not
/// bound to the organization a failed step.
pub async fn test_candidate(settings: &Settings, require_isolation: bool) -> TestReport {
    let provider =
        crate::provider::from_settings(settings, crate::provider::IfMissing::Refuse).await;
    test_with(provider, settings, require_isolation).await
}

/// [`test_candidate`], each call recorded in `audit` (see
/// [`crate::provider::recorded`]).
pub(crate) async fn test_recorded(
    settings: &Settings,
    require_isolation: bool,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    audit: std::sync::Arc<crate::audit::Audit>,
) -> TestReport {
    let provider = crate::provider::recorded(settings, metrics, audit).await;
    test_with(provider, settings, require_isolation).await
}

async fn test_with(
    provider: Result<std::sync::Arc<dyn KeyProvider>, crate::provider::RootKeyError>,
    settings: &Settings,
    require_isolation: bool,
) -> TestReport {
    match provider {
        Ok(provider) => round_trip(&*provider, settings, require_isolation).await,
        Err(e) => {
            let mut r = TestReport::new(settings.provider.to_string());
            r.step("open-provider", Err(e.to_string()));
            r
        }
    }
}

/// In fleet mode, the store's own check (table, layout, schema, read and
/// conditional write), as a last step of the Test round trip.
async fn store_step(r: &mut TestReport, settings: &Settings) {
    if let crate::config::StoreSettings::DynamoDb(fleet) = &settings.store {
        let store = crate::store::DynamoStore::connect(
            fleet,
            &settings.organization_id,
            settings.kms_timeouts,
        )
        .await;
        let result = store
            .check()
            .await
            .map(|()| {
                format!(
                    "{} in {}: keys and index as expected, readable, conditionally writable",
                    store.location(),
                    fleet.region
                )
            })
            .map_err(|e| e.to_string());
        r.step("check-store", result);
    }
}

/// Preflight, then GenerateDataKey → encrypt → Decrypt → decrypt → compare,
/// the isolation probe, the backup keys, then (fleet mode) the store's
/// check. Writes nothing anywhere. Isolation not proven is a warning, or a
/// failed step when `require_isolation` (or `[customer_keys]
/// require_isolation`) says so.
pub(crate) async fn round_trip(
    provider: &dyn KeyProvider,
    settings: &Settings,
    require_isolation: bool,
) -> TestReport {
    let mut r = TestReport::new(provider.configured_key());
    let described = preflight(provider, settings)
        .await
        .map(|d| format!("{} is {}", d.arn, d.summary()))
        .map_err(|e| e.to_string());
    if !r.step("describe-key", described) {
        return r;
    }
    let context = test_context(settings);
    let data_key = match provider.generate_data_key(&context).await {
        Ok(k) => k,
        Err(e) => {
            r.step("generate-data-key", Err(e.to_string()));
            return r;
        }
    };
    r.step(
        "generate-data-key",
        Ok(format!(
            "256-bit data key under {}",
            data_key.wrapping_key_arn
        )),
    );
    let probe = crate::aead::random::<32>();
    let aad = context.canonical_bytes();
    let (nonce, sealed) = crate::aead::seal(&data_key.plaintext, &aad, &probe);
    r.step(
        "encrypt-test-data",
        Ok("AES-256-GCM over 32 random bytes".into()),
    );
    let unwrapped = match provider
        .decrypt(&data_key.wrapping_key_arn, &data_key.ciphertext, &context)
        .await
    {
        Ok(k) => k,
        Err(e) => {
            r.step("decrypt-data-key", Err(e.to_string()));
            return r;
        }
    };
    let same_key = unwrapped.plaintext.as_slice() == data_key.plaintext.as_slice();
    drop(data_key);
    if !r.step(
        "decrypt-data-key",
        if same_key {
            Ok("KMS returned the same data key".into())
        } else {
            Err("KMS returned a different data key".into())
        },
    ) {
        return r;
    }
    let key: [u8; 32] = unwrapped
        .plaintext
        .as_slice()
        .try_into()
        .expect("checked equal to a 32-byte key");
    let key = zeroize::Zeroizing::new(key);
    let opened = crate::aead::open(&key, &nonce, &aad, &sealed);
    if !r.step(
        "decrypt-test-data",
        opened
            .as_ref()
            .map(|_| "authenticated".to_string())
            .map_err(|e| e.to_string()),
    ) {
        return r;
    }
    let same = opened.map(|p| p.as_slice() == probe).unwrap_or(false);
    if r.step(
        "compare",
        if same {
            Ok("decrypted test data equals the original".into())
        } else {
            Err("decrypted test data differs".into())
        },
    ) && isolation_step(
        &mut r,
        provider,
        settings,
        require_isolation || settings.customer_keys.require_isolation,
    )
    .await
        && backup_steps(&mut r, provider, settings).await
    {
        store_step(&mut r, settings).await;
    }
    r
}

/// The isolation probe as a step: a pass, a warning, or (when required) a
/// failure.
async fn isolation_step(
    r: &mut TestReport,
    provider: &dyn KeyProvider,
    settings: &Settings,
    required: bool,
) -> bool {
    use crate::isolation::Isolation;
    let probed = crate::isolation::probe(provider, settings).await;
    r.isolation = Some(probed.isolation);
    let refused =
        required && matches!(probed.isolation, Isolation::NotBound | Isolation::Unchecked);
    if matches!(probed.isolation, Isolation::NotBound | Isolation::Unchecked) && !refused {
        r.warnings.push(probed.detail.clone());
    }
    r.step(
        "isolation-probe",
        if refused {
            Err(format!("{} (isolation is required)", probed.detail))
        } else {
            Ok(probed.detail)
        },
    )
}

/// Each backup key: `Encrypt` of random test data under it with the test
/// context, then `Decrypt`, compare — the wrapping a rotation adds, and the
/// decryption a fallback needs.
async fn backup_steps(r: &mut TestReport, provider: &dyn KeyProvider, settings: &Settings) -> bool {
    let context = test_context(settings);
    for key in provider.backup_keys() {
        let probe = zeroize::Zeroizing::new(crate::aead::random::<32>());
        let result = async {
            let w = provider
                .encrypt(&key, probe.as_slice(), &context)
                .await
                .map_err(|e| e.to_string())?;
            let back = provider
                .decrypt(&w.wrapping_key_arn, &w.ciphertext, &context)
                .await
                .map_err(|e| e.to_string())?;
            if back.plaintext.as_slice() == probe.as_slice() {
                Ok(format!("{} wraps and unwraps", w.wrapping_key_arn))
            } else {
                Err(format!("{} returned different data", w.wrapping_key_arn))
            }
        }
        .await;
        if !r.step("backup-key", result) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(spec: &str, usage: &str, state: &str, arn: &str) -> KeyDescription {
        KeyDescription {
            arn: arn.into(),
            key_spec: spec.into(),
            key_usage: usage.into(),
            key_state: state.into(),
            multi_region: false,
            deletion_date: None,
            request_id: None,
            local: false,
        }
    }

    const ARN: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn each_preflight_failure_is_named() {
        let r = Some("eu-west-1");
        assert_eq!(
            check_description(
                &desc("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled", ARN),
                r
            ),
            Ok(())
        );
        assert_eq!(
            check_description(&desc("RSA_2048", "ENCRYPT_DECRYPT", "Enabled", ARN), r),
            Err(PreflightError::WrongKeySpec("RSA_2048".into()))
        );
        assert_eq!(
            check_description(
                &desc("SYMMETRIC_DEFAULT", "GENERATE_VERIFY_MAC", "Enabled", ARN),
                r
            ),
            Err(PreflightError::WrongKeyUsage("GENERATE_VERIFY_MAC".into()))
        );
        assert_eq!(
            PreflightError::WrongKeyUsage(String::new()).to_string(),
            "KMS key usage is absent (DescribeKey named none), kekd needs ENCRYPT_DECRYPT"
        );
        assert_eq!(
            check_description(
                &desc("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Disabled", ARN),
                r
            ),
            Err(PreflightError::Disabled)
        );
        assert_eq!(
            check_description(
                &desc(
                    "SYMMETRIC_DEFAULT",
                    "ENCRYPT_DECRYPT",
                    "PendingDeletion",
                    ARN
                ),
                r
            ),
            Err(PreflightError::PendingDeletion {
                deletion_date: None
            })
        );
        assert!(matches!(
            check_description(
                &desc("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled", ARN),
                Some("us-east-1")
            ),
            Err(PreflightError::RegionMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn round_trip_passes_with_the_local_provider_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = crate::provider::LocalProvider::open(
            &dir.path().join("k"),
            crate::provider::IfMissing::Create,
        )
        .unwrap();
        let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        let r = round_trip(&p, &Settings::dev(dir.path()).unwrap(), true).await;
        assert!(r.ok, "{r:?}");
        let names: Vec<&str> = r.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            names,
            [
                "describe-key",
                "generate-data-key",
                "encrypt-test-data",
                "decrypt-data-key",
                "decrypt-test-data",
                "compare",
                "isolation-probe"
            ]
        );
        assert_eq!(
            r.isolation,
            Some(crate::isolation::Isolation::NotApplicable)
        );
        assert!(r.warnings.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before.len());
    }
}
