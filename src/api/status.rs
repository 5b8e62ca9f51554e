//! `GET /v1/status` and `GET /metrics`: both from memory (I4), both from
//! one health assessment ([`crate::rotation::EngineState::assess`]), so
//! status, the metrics and the alerts built on them never disagree.

use super::error::ErrorCode;
use super::extract::tenant_of;
use super::json_body;
use super::org_views::DaemonStatus;
use super::scope::OrgSelector;
use super::state::{AppState, Hub};
use super::views::*;
use super::ApiError;
use crate::rotation::{Assessment, EngineState, Evidence};
use axum::extract::State;

/// What status and metrics both read: the engine's state, the health
/// rule's verdict on it, and the evidence beside it.
struct Observed {
    eng: EngineState,
    health: Assessment,
    audit: AuditHead,
    canary: Option<crate::canary::CanaryReport>,
}

fn observe(st: &AppState) -> Observed {
    let eng = st.engine.snapshot();
    let canary = st.canary.last();
    let audit = st.audit.head();
    let cur = st.current.get();
    let evidence = Evidence {
        canary_failed: canary.as_ref().is_some_and(|c| !c.ok),
        audit_failing: audit.problem.is_some(),
        kms_fallback: cur.provider.fallback().is_some(),
        max_key_age: cur.settings.max_key_age_warning,
    };
    let health = eng.assess(&evidence, chrono::Utc::now());
    Observed {
        eng,
        health,
        audit,
        canary,
    }
}

/// One organization's health, by the one rule.
pub(super) fn assess(st: &AppState) -> Assessment {
    observe(st).health
}

/// Every organization at a glance, bounded whatever their number — and
/// computed once for all requests until an organization's state changes
/// (or a second passes, for the canary, audit and KMS-fallback evidence
/// beside it), so status costs the same with 1 organization or 10,000.
fn summary(hub: &Hub) -> DaemonSummary {
    let generation = crate::rotation::generation();
    let mut cached = crate::sync::lock(&hub.summary);
    if let Some(c) = cached.as_ref() {
        if c.generation == generation && c.at.elapsed() < std::time::Duration::from_secs(1) {
            let mut s = c.value.clone();
            s.kms_budget = Some(hub.budget.view());
            return s;
        }
    }
    let value = compute_summary(hub);
    *cached = Some(super::state::CachedSummary {
        generation,
        at: std::time::Instant::now(),
        value: value.clone(),
    });
    value
}

fn compute_summary(hub: &Hub) -> DaemonSummary {
    let mut s = DaemonSummary {
        unavailable: hub.orgs.broken(),
        kms_budget: Some(hub.budget.view()),
        ..DaemonSummary::default()
    };
    for t in hub.orgs.all() {
        s.organizations += 1;
        *s.by_state
            .entry(t.parts.record.state.to_string())
            .or_default() += 1;
        if assess(&t.api).degraded() {
            s.degraded += 1;
            if s.degraded_orgs.len() < DaemonSummary::LISTED {
                s.degraded_orgs.push(t.parts.id.to_string());
            }
        }
    }
    s
}

/// At most this many per-organization series of one kind: every
/// organization degraded at once (a region's KMS outage) must not blow up
/// the scrape.
const MAX_ORG_SERIES: usize = 1000;

/// The per-organization metrics: organizations by state, and only the
/// actionable ones by name — degraded, key past its age warning.
/// The per-organization series of `/metrics`, each bounded.
struct PerOrg {
    by_state: Vec<(String, usize)>,
    degraded: Vec<String>,
    too_old: Vec<String>,
    key_problems: Vec<(String, crate::domain::KeyProblemKind)>,
}

fn per_org_series(hub: &Hub) -> PerOrg {
    let mut by_state = std::collections::BTreeMap::<String, usize>::new();
    let (mut degraded, mut too_old, mut key_problems) = (Vec::new(), Vec::new(), Vec::new());
    for t in hub.orgs.all() {
        if key_problems.len() < MAX_ORG_SERIES {
            if let Some(kind) = t
                .api
                .engine
                .read(|e| e.health.kms_key_problem.as_ref().map(|p| p.kind))
            {
                key_problems.push((t.parts.id.to_string(), kind));
            }
        }
        *by_state
            .entry(t.parts.record.state.to_string())
            .or_default() += 1;
        let a = assess(&t.api);
        if a.degraded() && degraded.len() < MAX_ORG_SERIES {
            degraded.push(t.parts.id.to_string());
        }
        if a.key_too_old && too_old.len() < MAX_ORG_SERIES {
            too_old.push(t.parts.id.to_string());
        }
    }
    let unusable = hub.orgs.broken().len();
    if unusable > 0 {
        by_state.insert("unusable".into(), unusable);
    }
    PerOrg {
        by_state: by_state.into_iter().collect(),
        degraded,
        too_old,
        key_problems,
    }
}

/// Status's warnings: accepted states worth a look, never a degradation.
fn warnings(st: &AppState, o: &Observed) -> Vec<String> {
    let mut warnings = Vec::new();
    if o.health.key_too_old {
        let limit = st.current.settings().max_key_age_warning;
        warnings.push(format!(
            "the active key pair is {} old, older than max_key_age_warning ({}); it is still served",
            humantime::format_duration(std::time::Duration::from_secs(
                o.health.key_age.unwrap_or_default().as_secs()
            )),
            humantime::format_duration(limit.unwrap_or_default())
        ));
    }
    if let Some(c) = &o.eng.health.wrapping_key_changed {
        warnings.push(format!(
            "the KMS key that wraps new key pairs changed at {} from {} to {} with no configuration change (configured: {}): an alias was re-pointed, or the key changed while kekd was stopped; the new key was proven, check that it is the customer's (a reload or restart clears this)",
            crate::time::format(&c.at),
            c.from,
            c.to,
            c.configured
        ));
    }
    if let Some(r) = &o.audit.repaired {
        warnings.push(format!("audit trail: {r}"));
    }
    warnings
}

/// Status's counts, from the store's kept summary.
fn counts(s: crate::store::Summary) -> KeyPairCounts {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    KeyPairCounts {
        total: size(s.total()),
        by_state: s.by_state.into_iter().map(|(k, v)| (k, size(v))).collect(),
        by_wrapping_key: s
            .by_wrapping_key
            .into_iter()
            .map(|(k, v)| (k, size(v)))
            .collect(),
    }
}

/// `GET /metrics`: Prometheus text.
pub(super) async fn metrics(State(hub): State<Hub>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let st = hub.orgs.declared().api.clone();
    let per_org = per_org_series(&hub);
    let counts = counts(st.store.summary().await?);
    let o = observe(&st);
    let now = chrono::Utc::now();
    let eng = &o.eng;
    let snapshot = crate::metrics::Snapshot {
        active_key_age_seconds: o.health.key_age.map(|a| a.as_secs_f64()),
        next_rotation_unix: eng
            .schedule
            .next_rotation_at
            .map(|t| t.timestamp_millis() as f64 / 1000.0),
        degraded: o.health.degraded(),
        by_state: counts
            .by_state
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        by_wrapping_key: counts.by_wrapping_key.into_iter().collect(),
        canary_ok: o.canary.as_ref().map(|c| c.ok),
        key_too_old: o.health.key_too_old,
        store_up: eng
            .fleet
            .as_ref()
            .is_none_or(|f| f.unavailable_since.is_none()),
        store_staleness_seconds: eng
            .fleet
            .as_ref()
            .and_then(|f| f.last_refresh_at)
            .map_or(0.0, |t| (now - t).num_milliseconds() as f64 / 1000.0),
        orgs_by_state: per_org.by_state,
        degraded_orgs: per_org.degraded,
        key_too_old_orgs: per_org.too_old,
        key_problem_orgs: per_org.key_problems,
        kms_budget: Some(hub.budget.view()),
    };
    let body = st.metrics.render(&snapshot);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// `GET /v1/status`: one organization's status with the daemon summary;
/// with several organizations and none named, the daemon summary alone.
pub(super) async fn status(
    State(hub): State<Hub>,
    parts: axum::http::request::Parts,
) -> Result<axum::response::Response, ApiError> {
    let st = match tenant_of(&parts, &hub) {
        Ok(t) => t.api.clone(),
        Err(e)
            if e.code == ErrorCode::OrganizationRequired
                && parts.extensions.get::<OrgSelector>().is_none() =>
        {
            let daemon = summary(&hub);
            let degraded = daemon.degraded > 0 || !daemon.unavailable.is_empty();
            let view = DaemonStatus {
                state: if degraded {
                    ServiceState::Degraded
                } else {
                    ServiceState::Ok
                },
                version: env!("CARGO_PKG_VERSION").into(),
                daemon,
                audit: hub.audit.head(),
            };
            return Ok(json_body(axum::body::Bytes::from(
                serde_json::to_vec(&view).expect("status serializes"),
            )));
        }
        Err(e) => return Err(e),
    };
    // Everything here is in memory: the cost is the same with ten key
    // pairs or ten thousand (I4).
    let counts = counts(st.store.summary().await?);
    let corrupt_records = st.corrupt.get();
    let o = observe(&st);
    let warnings = warnings(&st, &o);
    let cur = st.current.get();
    let settings = &cur.settings;
    let Observed {
        eng,
        health,
        audit,
        canary,
    } = o;
    let fallback = cur.provider.fallback();
    let degraded = super::degraded::details(
        &health,
        &super::degraded::Sources {
            eng: &eng,
            canary: canary.as_ref(),
            audit: &audit,
            fallback: fallback.as_ref(),
        },
    );
    let view = StatusView {
        state: if health.degraded() {
            ServiceState::Degraded
        } else {
            ServiceState::Ok
        },
        degraded_causes: health.causes.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        fips: crate::fips::FIPS_BUILD,
        organization_id: settings.organization_id.clone(),
        daemon: Some(summary(&hub)),
        kms_key: cur.provider.configured_key(),
        active_key_id: eng.active.as_ref().map(|a| a.id.clone()),
        active_key_type: eng.active.as_ref().and_then(|a| a.key_type()),
        next_key_type: Some(settings.key_type),
        active_since: eng.active.as_ref().and_then(|a| a.activated_at),
        announced_key_id: eng.announced.as_ref().map(|a| a.id.clone()),
        announced_activates_at: eng.announced.as_ref().and_then(|a| a.activates_at),
        cadence: settings.cadence.to_string(),
        timezone: settings.timezone.name().to_string(),
        last_rotation_at: eng.schedule.last_rotation_at,
        next_rotation_at: eng.schedule.next_rotation_at,
        rotation_in_progress: eng.health.rotating,
        degraded_since: super::degraded::since(&degraded),
        degraded,
        failed_attempts: eng.health.attempts,
        next_retry_at: eng.health.next_retry_at,
        last_error: eng.health.last_error.clone(),
        kms_key_problem: eng
            .health
            .kms_key_problem
            .as_ref()
            .map(|p| p.message.clone()),
        key_problem: eng.health.kms_key_problem.clone(),
        backup_kms_keys: cur.provider.backup_keys(),
        kms_fallback: fallback,
        last_reload: hub.reloader.last(),
        last_canary: canary,
        audit,
        warnings,
        key_pairs: counts,
        corrupt_records,
        store: store_status(settings, &eng),
    };
    Ok(json_body(st.status.json(view, |v| {
        serde_json::to_vec(v).expect("status serializes")
    })))
}

/// The store part of status.
fn store_status(settings: &crate::config::Settings, eng: &EngineState) -> StoreStatus {
    let fleet = eng.fleet.as_ref();
    let now = chrono::Utc::now();
    StoreStatus {
        kind: match settings.store {
            crate::config::StoreSettings::Redb => "redb",
            crate::config::StoreSettings::DynamoDb(_) => "dynamodb",
        }
        .into(),
        location: fleet.map_or_else(
            || settings.store_path().display().to_string(),
            |f| f.location.clone(),
        ),
        instance: fleet.map(|f| f.instance.clone()),
        last_refresh_at: fleet.and_then(|f| f.last_refresh_at),
        staleness_ms: fleet
            .and_then(|f| f.last_refresh_at)
            .map(|t| u64::try_from((now - t).num_milliseconds()).unwrap_or(0)),
        lease_holder: fleet.and_then(|f| f.lease.as_ref().map(|l| l.holder.clone())),
        lease_expires_at: fleet.and_then(|f| f.lease.as_ref().map(|l| l.expires_at)),
        waiting_for_lease: fleet.and_then(|f| f.waiting.clone()),
        unavailable_since: fleet.and_then(|f| f.unavailable_since),
        last_error: fleet.and_then(|f| f.last_error.clone()),
    }
}
