//! The router: which handler serves which path, and the JSON answers for
//! unknown paths and methods. The handlers live in
//! `status.rs`, `keys.rs` and `actions.rs`.

use super::auth::{authorize, bounded};
use super::error::{ErrorCode, MAX_BODY};
use super::state::Hub;
use super::{actions, audit, keys, orgs, paths, status, ApiError};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

/// The API router. Authorization wraps everything, unknown paths and wrong
/// methods included, so routing answers only a peer that holds a role.
pub(crate) fn router(state: Hub) -> Router {
    Router::new()
        .route(paths::STATUS, get(status::status))
        .route(paths::KEYPAIRS, get(keys::list_keypairs))
        .route(paths::KEYPAIR, get(keys::get_keypair))
        .route(paths::PUBLIC_KEY, get(keys::public_key))
        .route(paths::PUBLIC_KEYS, get(keys::public_keys))
        .route(paths::METRICS, get(status::metrics))
        .route(paths::ENVELOPE, get(keys::get_envelope))
        .route(paths::ROTATE, post(actions::rotate))
        .route(paths::TEST, post(actions::test_round_trip))
        .route(paths::RELOAD, post(actions::reload))
        .route(paths::CHECK, post(actions::check))
        .route(paths::REWRAP, post(actions::rewrap))
        .route(paths::AUDIT, get(audit::page))
        .route(paths::AUDIT_ROTATE, post(audit::rotate))
        .route(paths::UNWRAP, post(actions::unwrap))
        .route(paths::ORGS, get(orgs::list).post(orgs::add))
        .route(
            paths::ORG,
            get(orgs::show).patch(orgs::set).delete(orgs::remove),
        )
        .route(paths::RESTORE, post(orgs::restore))
        .route(paths::PURGE, post(orgs::purge))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state)
}

/// The TCP listener's router: `GET /metrics` and nothing else (every other
/// path 404), no roles — what Prometheus scrapes.
pub(crate) fn metrics_router(state: Hub) -> Router {
    Router::new()
        .route(paths::METRICS, get(status::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no such endpoint: {}", bounded(uri.path())),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", bounded(uri.path())),
    )
}
