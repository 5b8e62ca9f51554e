//! What handlers take from the request path, checked before they run.

use super::auth::bounded;
use super::error::ErrorCode;
pub(crate) use super::scope::OrgSelector;
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
