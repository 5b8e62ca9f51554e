//! What handlers take from the request path, checked before they run.

use super::auth::bounded;
use super::error::ErrorCode;
use super::state::{AppState, Hub};
use super::ApiError;
use crate::orgs::Tenant;
use axum::extract::{FromRequestParts, Path};
use std::sync::Arc;

/// A key-pair id from the path: percent-decoded, its shape checked. A
/// path segment that is not UTF-8 is a JSON 400, an id of another shape a
/// JSON 404 — never a plain-text rejection, never an echo of the whole
/// segment.
pub(super) struct KeyPairId(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPairId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidPath,
                    format!(
                        "the key-pair id in the path is not valid UTF-8 text ({})",
                        e.body_text()
                    ),
                )
            })?;
        if !crate::domain::is_key_pair_id(&id) {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "no key pair with id {:?}; ids are kek- and 16 hex digits",
                    bounded(&id)
                ),
            ));
        }
        Ok(KeyPairId(id))
    }
}

/// The organization a request names: `/v1/orgs/{org}/…` is served as
/// `/v1/…` with this in the request's extensions (see [`select`]).
#[derive(Debug, Clone)]
pub(crate) struct OrgSelector(pub(crate) String);

/// Rewrites `/v1/orgs/{org}/REST` to `/v1/REST` and notes `{org}`, before
/// authorization and routing: every per-organization endpoint exists once,
/// and the role a path needs is decided by one rule whichever way the
/// organization is named. `/v1/orgs` and `/v1/orgs/{org}` themselves are
/// left as they are.
pub(crate) fn select<B>(req: &mut axum::http::Request<B>) {
    let Some(rest) = req.uri().path().strip_prefix("/v1/orgs/") else {
        return;
    };
    let Some((org, tail)) = rest.split_once('/') else {
        return;
    };
    if tail.is_empty() || tail == "orgs" || tail.starts_with("orgs/") {
        return;
    }
    let org = percent_encoding::percent_decode_str(org)
        .decode_utf8_lossy()
        .into_owned();
    let path = match req.uri().query() {
        Some(q) => format!("/v1/{tail}?{q}"),
        None => format!("/v1/{tail}"),
    };
    let mut parts = req.uri().clone().into_parts();
    let Ok(pq) = path.parse() else { return };
    parts.path_and_query = Some(pq);
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
        req.extensions_mut().insert(OrgSelector(org));
    }
}

/// The organization a request is about: the one its path names, or the
/// only one there is (today's unprefixed paths), else 400
/// `organization_required`. A removed organization is served here (its
/// history, envelopes and unwrap stay reachable until it is purged).
pub(crate) fn tenant_of(
    parts: &axum::http::request::Parts,
    hub: &Hub,
) -> Result<Arc<Tenant<AppState>>, ApiError> {
    match parts.extensions.get::<OrgSelector>() {
        Some(OrgSelector(id)) => hub.orgs.get(id).ok_or_else(|| {
            ApiError::new(
                ErrorCode::OrganizationNotFound,
                format!("no organization {:?}; kekctl org list shows them", bounded(id)),
            )
        }),
        None => hub.orgs.sole().map_err(|n| {
            ApiError::new(
                ErrorCode::OrganizationRequired,
                format!(
                    "kekd serves {n} organizations: name one, as /v1/orgs/ORG{} (kekctl --org ORG, or KEKD_ORG)",
                    bounded(parts.uri.path()).trim_start_matches("/v1")
                ),
            )
        }),
    }
}

/// One organization's services, removed or not ([`tenant_of`]).
pub(super) struct Org(pub(super) AppState);

impl FromRequestParts<Hub> for Org {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        hub: &Hub,
    ) -> Result<Self, Self::Rejection> {
        Ok(Org(tenant_of(parts, hub)?.api.clone()))
    }
}

/// One organization's services, refused with 410 `organization_removed`
/// if it is removed: no public key is served and nothing rotates for a
/// departed customer.
pub(super) struct Served(pub(super) AppState);

impl FromRequestParts<Hub> for Served {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        hub: &Hub,
    ) -> Result<Self, Self::Rejection> {
        let t = tenant_of(parts, hub)?;
        if t.is_removed() {
            return Err(ApiError::new(
                ErrorCode::OrganizationRemoved,
                format!(
                    "organization {} is removed: its public keys are not served and it does not rotate; kekctl org restore undoes it within the restore window",
                    t.parts.id
                ),
            ));
        }
        Ok(Served(t.api.clone()))
    }
}
