//! The audit endpoints: one organization's records for its customer, and
//! starting a new file.

use super::error::ErrorCode;
use super::extract::{Org, OrgSelector};
use super::state::Hub;
use super::ApiError;
use crate::audit::{AuditPage, AuditQuery};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

/// Largest page a caller may ask for.
const MAX_LIMIT: usize = 1000;

/// `GET /v1/audit?limit=&cursor=&since=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    limit: Option<usize>,
    cursor: Option<String>,
    since: Option<String>,
}

/// `GET /v1/orgs/{org}/audit`: a page of the organization's records,
/// oldest first — its KMS and STS calls, refused ones included — and
/// nothing about another organization. The records outlive a purged
/// organization (the trail is the evidence of what was done with its key),
/// so they are still served; an id with neither an organization nor a
/// record is 404 `organization_not_found`.
pub(super) async fn page(
    State(hub): State<Hub>,
    org: Result<Org, ApiError>,
    selector: Option<axum::Extension<OrgSelector>>,
    q: Result<Query<Raw>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let (audit, unknown) = match (org, selector) {
        (Ok(Org(st)), _) => (st.audit.clone(), None),
        (Err(e), Some(axum::Extension(OrgSelector(id))))
            if e.code == ErrorCode::OrganizationNotFound =>
        {
            (hub.audit.for_org(&id), Some(e))
        }
        (Err(e), _) => return Err(e),
    };
    let Query(raw) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let bad = |m: String| ApiError::new(ErrorCode::InvalidQuery, m);
    let limit = raw.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad(format!(
            "limit {limit} is out of range; allowed: 1 to {MAX_LIMIT}"
        )));
    }
    let after = match raw.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse().map_err(|_| {
            bad(format!(
                "cursor {:?} is not a sequence number; pass the next_cursor of the page before",
                super::auth::bounded(c)
            ))
        })?,
    };
    let since = match raw.since.as_deref() {
        None => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    bad(format!(
                        "since {:?} is not an RFC 3339 time ({e}); e.g. 2026-12-01T00:00:00Z",
                        super::auth::bounded(s)
                    ))
                })?
                .to_utc(),
        ),
    };
    let query = AuditQuery {
        after,
        since,
        limit,
    };
    let first = after == 0 && since.is_none();
    let page = tokio::task::spawn_blocking(move || audit.page(&query))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unknown, format!("reading the audit trail: {e}")))?
        .map_err(|e| ApiError::new(ErrorCode::AuditUnavailable, e.to_string()))?;
    match unknown {
        Some(e) if first && page.records.is_empty() => Err(e),
        _ => Ok(Json(page)),
    }
}

/// Starts a new audit file that continues the chain (`kekctl audit
/// rotate`); 500 `audit_rotate_failed` leaves the old file in place.
pub(super) async fn rotate(State(st): State<Hub>) -> Result<Json<crate::audit::Rotated>, ApiError> {
    Ok(Json(st.audit.rotate_async().await?))
}
