//! Why an organization is degraded, cause by cause: since when and what
//! the latest evidence said. Status fills `degraded_since` and the
//! `degraded` list from here for every cause — not only failing rotations
//! — so a key problem found by the preflight, a fleet store that cannot be
//! read or a failed canary never reads as "degraded since -".

use super::views::Degradation;
use crate::audit::Head as AuditHead;
use crate::canary::CanaryReport;
use crate::provider::Fallback;
use crate::rotation::{Assessment, DegradedCause, EngineState};

/// The evidence status has at hand, besides the engine's own state.
pub(super) struct Sources<'a> {
    pub(super) eng: &'a EngineState,
    pub(super) canary: Option<&'a CanaryReport>,
    pub(super) audit: &'a AuditHead,
    pub(super) fallback: Option<&'a Fallback>,
}

/// One entry per cause of `health`, in its order.
pub(super) fn details(health: &Assessment, s: &Sources<'_>) -> Vec<Degradation> {
    health
        .causes
        .iter()
        .map(|&cause| {
            let (since, message) = evidence(cause, s);
            Degradation {
                cause,
                since,
                message,
            }
        })
        .collect()
}

/// The earliest `since` of `details`: since when the organization has
/// been degraded by any cause.
pub(super) fn since(details: &[Degradation]) -> Option<crate::time::Timestamp> {
    details.iter().filter_map(|d| d.since).min()
}

fn evidence(cause: DegradedCause, s: &Sources<'_>) -> (Option<crate::time::Timestamp>, String) {
    let health = &s.eng.health;
    match cause {
        DegradedCause::RotationFailing => (
            health.degraded_since,
            health.last_error.as_ref().map_or_else(
                || "rotations fail and are retried".into(),
                |e| match &e.operation {
                    Some(op) => format!("{op}: {}", e.message),
                    None => e.message.clone(),
                },
            ),
        ),
        DegradedCause::KmsKeyProblem | DegradedCause::KeyRevoked => match &health.kms_key_problem {
            Some(p) => (Some(p.since), format!("{}: {}", p.kind, p.message)),
            None => (None, "the KMS key has a problem".into()),
        },
        DegradedCause::KmsFallback => match s.fallback {
            Some(f) => (
                Some(f.primary_unavailable_since),
                format!(
                    "the primary KMS key is unavailable ({}); {} serves decryptions",
                    f.primary_error, f.served_by
                ),
            ),
            None => (None, "backup KMS keys serve decryptions".into()),
        },
        DegradedCause::StoreUnavailable => match &s.eng.fleet {
            Some(f) => (
                f.unavailable_since,
                f.last_error.as_ref().map_or_else(
                    || format!("{} cannot be read", f.location),
                    |e| format!("{}: {}", f.location, e.message),
                ),
            ),
            None => (None, "the fleet's store cannot be read".into()),
        },
        DegradedCause::CanaryFailed => match s.canary {
            // The failing canary's time: degraded at least since then.
            Some(c) => (Some(c.at), canary_problem(c)),
            None => (None, "the last canary failed".into()),
        },
        DegradedCause::AuditFailing => (
            None,
            s.audit
                .problem
                .clone()
                .unwrap_or_else(|| "the audit trail needs attention".into()),
        ),
    }
}

/// What the failed canary found first: the KMS key, else a key pair.
fn canary_problem(c: &CanaryReport) -> String {
    if let Some(p) = &c.kms_key_problem {
        return format!("canary: {p}");
    }
    c.key_pairs
        .iter()
        .find_map(|k| {
            k.problem
                .as_ref()
                .map(|p| format!("canary: key pair {}: {p}", k.id))
        })
        .unwrap_or_else(|| "the last canary failed".into())
}
