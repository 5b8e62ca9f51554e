//! Access to a customer's key by assuming a role in the customer's account
//! (STS `AssumeRole`), the model most SaaS integrations use: the customer
//! creates a role that trusts the platform's role, with an `ExternalId`
//! condition against the confused deputy, and grants that role use of
//! their key. kekd asks STS for the role's temporary credentials with a
//! session name naming kekd and the organization, keeps them per
//! organization, and asks again before they expire (five minutes before, or
//! halfway through a shorter life) — so a KMS request waits for STS about
//! once a session (`[customer_keys] role_session`, an hour by default), not
//! every time. The probe of the revocation watch runs more often than that,
//! so the renewal is almost always its request, not a recorder's.
//!
//! STS keeps honouring a session it issued until it expires, whatever
//! happens to the trust policy after: a trust-policy change reaches kekd at
//! the next renewal, within one session. Taking the role's permissions on
//! the key away, or revoking its sessions, makes KMS refuse at once, and the
//! probe notices that within the revocation bound.
//!
//! An STS failure is classified as a KMS one is; a refusal (the trust
//! policy or the external id no longer let kekd in) is its own kind,
//! `assume_role_denied`, a revocation.

use super::{aws_sdk, FailureKind, ProviderError};
use aws_config::SdkConfig;
use aws_credential_types::provider::{self, future, ProvideCredentials};
use aws_credential_types::Credentials;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How an organization reaches its customer's key when not with the
/// platform's own credentials: a role in the customer's account.
#[derive(Clone)]
pub(crate) struct Assume<'a> {
    /// The role's ARN.
    pub(crate) role_arn: &'a str,
    /// The external id its trust policy requires.
    pub(crate) external_id: Option<&'a str>,
    /// The organization (the session name names it).
    pub(crate) org: &'a str,
    /// How long each session's credentials last.
    pub(crate) session: std::time::Duration,
    /// Where each AssumeRole is recorded (the daemon's; none for a check
    /// that records nothing).
    pub(crate) audit: Option<Arc<crate::audit::Audit>>,
}

/// Credentials are renewed this long before they expire (or halfway
/// through their life, if that is earlier).
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Whether credentials obtained at `obtained` that expire at `expiry` are
/// to be renewed at `now`: less than five minutes, or less than half their
/// life, left. Credentials without an expiry are kept.
fn due(obtained: SystemTime, expiry: Option<SystemTime>, now: SystemTime) -> bool {
    let Some(expiry) = expiry else {
        return false;
    };
    let life = expiry.duration_since(obtained).unwrap_or_default();
    let margin = RENEW_BEFORE.min(life / 2);
    expiry
        .duration_since(now)
        .map_or(true, |left| left <= margin)
}

/// The longest session name STS accepts.
const MAX_SESSION_NAME: usize = 64;

/// One organization's role in its customer's account.
pub(crate) struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<String>,
    session_name: String,
    /// STS `DurationSeconds`.
    session: Duration,
    /// The credentials and when STS issued them.
    cached: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
    audit: Option<Arc<crate::audit::Audit>>,
}

impl std::fmt::Debug for AssumedRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The external id is not a secret, but credentials are: never shown.
        f.debug_struct("AssumedRole")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

/// The session name STS records (the customer's CloudTrail shows it):
/// `kekd-` and the organization id, cut to STS's 64 characters.
pub(crate) fn session_name(org: &str) -> String {
    let mut name = format!("kekd-{org}");
    name.truncate(MAX_SESSION_NAME);
    name
}

impl AssumedRole {
    /// The role `a.role_arn` assumed with `a.external_id`, through an STS
    /// client made of `sdk` (the platform's own credentials, the KMS
    /// client's timeouts; endpoint from `AWS_ENDPOINT_URL_STS`).
    pub(crate) fn new(sdk: &SdkConfig, a: &Assume<'_>) -> Arc<AssumedRole> {
        Arc::new(AssumedRole {
            sts: aws_sdk_sts::Client::new(sdk),
            role_arn: a.role_arn.to_string(),
            external_id: a.external_id.map(str::to_string),
            session_name: session_name(a.org),
            session: a.session,
            cached: Default::default(),
            audit: a.audit.clone(),
        })
    }

    /// Fresh credentials of the role: the kept ones until they are [`due`]
    /// for renewal, then new ones from STS.
    pub(crate) async fn credentials(&self) -> Result<Credentials, ProviderError> {
        let mut cached = self.cached.lock().await;
        if let Some((c, obtained)) = cached.as_ref() {
            if !due(*obtained, c.expiry(), SystemTime::now()) {
                return Ok(c.clone());
            }
        }
        let obtained = SystemTime::now();
        const OP: &str = "AssumeRole";
        let started = std::time::Instant::now();
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .duration_seconds(i32::try_from(self.session.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| aws_sdk::classify("STS", OP, e, sts_code));
        self.record(&out, started).await?;
        let out = out?;
        let c = out.credentials().ok_or_else(|| ProviderError {
            operation: OP,
            kind: FailureKind::Other,
            code: None,
            message: "STS answered without credentials".into(),
            request_id: None,
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let made = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "kekd-assume-role",
        );
        tracing::debug!(role = %self.role_arn, session = %self.session_name, "assumed the customer's role");
        *cached = Some((made.clone(), obtained));
        Ok(made)
    }
}

impl AssumedRole {
    /// Writes the AssumeRole call to the organization's audit trail, as
    /// every KMS call is (refused ones too): the customer's own CloudTrail
    /// shows the session, not what kekd was refused. Fails closed.
    async fn record(
        &self,
        out: &Result<aws_sdk_sts::operation::assume_role::AssumeRoleOutput, ProviderError>,
        started: std::time::Instant,
    ) -> Result<(), ProviderError> {
        use aws_sdk_sts::operation::RequestId;
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let (outcome, error_code, request_id) = match out {
            Ok(o) => ("ok".to_string(), None, o.request_id().map(str::to_string)),
            Err(e) => (e.kind.to_string(), e.code.clone(), e.request_id.clone()),
        };
        let event = crate::audit::AuditEvent::KmsCall {
            operation: "AssumeRole".into(),
            key_arn: self.role_arn.clone(),
            encryption_context: None,
            request_id,
            outcome,
            error_code,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        audit.record_async(event).await.map_err(|e| ProviderError {
            operation: "AssumeRole",
            kind: FailureKind::AuditUnavailable,
            code: None,
            message: format!("{e}; the operation is refused (fail closed)"),
            request_id: None,
        })
    }
}

/// STS's error codes, in the operator's terms.
fn sts_code(code: &str) -> Option<FailureKind> {
    Some(match code {
        "AccessDenied" | "AccessDeniedException" => FailureKind::AssumeRoleDenied,
        "RegionDisabledException" => FailureKind::AssumeRoleDenied,
        "ExpiredTokenException" | "InvalidClientTokenId" => FailureKind::Credentials,
        "Throttling" => FailureKind::Throttled,
        _ => return None,
    })
}

/// The role's credentials as the KMS clients' credentials provider.
#[derive(Debug, Clone)]
pub(crate) struct RoleCredentials(pub(crate) Arc<AssumedRole>);

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0
                .credentials()
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_five_minutes_early_or_halfway_through_a_short_life() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        // An hour: kept until five minutes are left.
        assert!(!due(t0, Some(at(3600)), at(3299)));
        assert!(due(t0, Some(at(3600)), at(3300)));
        // Ten seconds (as a test's proxy hands out): renewed after five.
        assert!(!due(t0, Some(at(10)), at(4)));
        assert!(due(t0, Some(at(10)), at(5)));
        // Expired: renewed.
        assert!(due(t0, Some(at(10)), at(11)));
        assert!(!due(t0, None, at(1_000_000)));
    }

    #[test]
    fn session_names_name_kekd_and_the_organization_within_stss_limit() {
        assert_eq!(session_name("acme"), "kekd-acme");
        assert_eq!(session_name(&"x".repeat(64)).len(), 64);
        assert_eq!(
            sts_code("AccessDenied"),
            Some(FailureKind::AssumeRoleDenied)
        );
    }
}
