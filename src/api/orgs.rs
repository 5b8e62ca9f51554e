//! The organization endpoints: `GET/POST /v1/orgs`, `GET/DELETE
//! /v1/orgs/{org}`, `POST /v1/orgs/{org}/restore` and `…/purge`. The
//! changes themselves live in [`crate::orgs`]; here they are checked and
//! answered.

use super::error::ErrorCode;
use super::extract::Org;
use super::org_views::*;
use super::state::{AppState, Hub};
use super::views::{KeyPairView, ServiceState};
use super::ApiError;
use crate::domain::{OrgSpec, OrgState};
use crate::orgs::{Tenant, DEFAULT_RESTORE_WINDOW};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

/// Largest page of organizations a caller may ask for.
const MAX_LIMIT: usize = 1000;

/// `?limit=&cursor=` of the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// An organization as the API shows it.
pub(super) fn view(t: &Tenant<AppState>) -> OrgView {
    let st = &t.api;
    let cur = st.current.get();
    let settings = &cur.settings;
    let eng = st.engine.snapshot();
    let record = &t.parts.record;
    OrgView {
        id: record.id().to_string(),
        state: record.state,
        source: record.source,
        health: if super::status::assess(st).degraded() {
            ServiceState::Degraded
        } else {
            ServiceState::Ok
        },
        key_problem: eng.health.kms_key_problem.as_ref().map(|p| p.kind),
        kms_key: cur.provider.configured_key(),
        cadence: settings.cadence.to_string(),
        timezone: settings.timezone.name().to_string(),
        key_type: settings.key_type,
        key_bits: settings.key_type.rsa_bits(),
        active_key_id: eng.active.as_ref().map(|a| a.id.clone()),
        next_rotation_at: match record.state {
            OrgState::Active => eng.schedule.next_rotation_at,
            _ => None,
        },
        spec: record.spec.clone(),
        created_at: record.created_at,
        updated_at: record.updated_at,
        removed_at: record.removed_at,
        purge_after: record.purge_after,
    }
}

/// `GET /v1/orgs`: one page, by id.
pub(super) async fn list(
    State(hub): State<Hub>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<OrgList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit {limit} is out of range; allowed: 1 to {MAX_LIMIT}"),
        ));
    }
    let mut page: Vec<OrgView> = hub
        .orgs
        .page(q.cursor.as_deref(), limit + 1)
        .iter()
        .map(|t| view(t))
        .collect();
    let next_cursor = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|o| o.id.clone()).unwrap_or_default()
    });
    Ok(Json(OrgList {
        organizations: page,
        next_cursor,
        unavailable: hub.orgs.broken(),
    }))
}

/// `POST /v1/orgs?require_isolation=true`: refuse a key the Test's
/// isolation probe finds not bound to the organization.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddQuery {
    #[serde(default)]
    require_isolation: bool,
}

/// `POST /v1/orgs`: Test, save, first key pair — or nothing at all.
pub(super) async fn add(
    State(hub): State<Hub>,
    q: Result<Query<AddQuery>, QueryRejection>,
    body: Result<Json<OrgSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<OrgAdded>), ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let Json(spec) = body?;
    let (t, test) = hub.orgs.add(spec, q.require_isolation).await?;
    let key_pair = t
        .api
        .engine
        .read(|e| e.active.as_deref().map(KeyPairView::from));
    Ok((
        StatusCode::CREATED,
        Json(OrgAdded {
            organization: view(&t),
            key_pair,
            isolation: test.isolation,
            warnings: test.warnings,
        }),
    ))
}

/// `GET /v1/orgs/{org}`.
pub(super) async fn show(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<OrgView>, ApiError> {
    let t = find(&hub, &id)?;
    Ok(Json(view(&t)))
}

/// `DELETE /v1/orgs/{org}`: removes it (restorable for the window).
pub(super) async fn remove(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    body: Option<Json<RemoveRequest>>,
) -> Result<Json<OrgView>, ApiError> {
    find(&hub, &id)?;
    let window = match body.and_then(|Json(b)| b.restore_window) {
        None => DEFAULT_RESTORE_WINDOW,
        Some(w) => humantime::parse_duration(&w).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("restore_window {w:?} is not a duration ({e}); e.g. \"30d\" or \"12h\""),
            )
        })?,
    };
    let t = hub.orgs.remove(&id, window).await?;
    Ok(Json(view(&t)))
}

/// `PATCH /v1/orgs/{org}`: changes its settings (a new KMS key is
/// proven first and a key pair made under it).
pub(super) async fn set(
    State(hub): State<Hub>,
    Path(id): Path<String>,
    body: Result<Json<crate::domain::OrgPatch>, JsonRejection>,
) -> Result<Json<OrgView>, ApiError> {
    let Json(patch) = body?;
    find(&hub, &id)?;
    let t = hub.orgs.set(&id, patch).await?;
    Ok(Json(view(&t)))
}

/// `POST /v1/orgs/{org}/restore`.
pub(super) async fn restore(
    State(hub): State<Hub>,
    Org(st): Org,
) -> Result<Json<OrgView>, ApiError> {
    let t = hub.orgs.restore(st.org.id()).await?;
    Ok(Json(view(&t)))
}

/// `POST /v1/orgs/{org}/purge` with `{"confirm": "<org>"}`.
pub(super) async fn purge(
    State(hub): State<Hub>,
    Org(st): Org,
    body: Result<Json<PurgeRequest>, JsonRejection>,
) -> Result<Json<OrgPurged>, ApiError> {
    let Json(req) = body?;
    let id = st.org.id().to_string();
    drop(st);
    let deleted = hub.orgs.purge(&id, &req.confirm).await?;
    Ok(Json(OrgPurged {
        organization: id,
        key_pairs_deleted: deleted,
    }))
}

/// A served organization, or 404 `organization_not_found`.
fn find(hub: &Hub, id: &str) -> Result<std::sync::Arc<Tenant<AppState>>, ApiError> {
    hub.orgs.get(id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::OrganizationNotFound,
            format!(
                "no organization {:?}; kekctl org list shows them",
                super::auth::bounded(id)
            ),
        )
    })
}
