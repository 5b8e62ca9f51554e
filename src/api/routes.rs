//! The `/v1/` handlers.
//!
//! Read paths (status, history, public key) use the engine's in-memory state
//! and redb read transactions only — never KMS — so they answer while KMS
//! hangs (I4). `POST /v1/rotate` waits for the rotation it joins.

use super::auth::{authorize, bounded};
use super::paths;
use super::state::AppState;
use super::views::*;
use super::ApiError;
use crate::domain::{KeyPairRecord, Reason};
use crate::keypair::public_key_pem;
use crate::rotation::{EngineState, RotationError};
use crate::store::{Listed, StoreError};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

/// The largest request body accepted (an unwrap request is well under 2 KiB).
const MAX_BODY: usize = 64 * 1024;

/// The API router. Authorization wraps everything, unknown paths and wrong
/// methods included, so routing answers only a peer that holds a role.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(paths::STATUS, get(status))
        .route(paths::KEYPAIRS, get(list_keypairs))
        .route(paths::KEYPAIR, get(get_keypair))
        .route(paths::PUBLIC_KEY, get(public_key))
        .route(paths::PUBLIC_KEYS, get(public_keys))
        .route(paths::METRICS, get(metrics))
        .route(paths::ENVELOPE, get(get_envelope))
        .route(paths::ROTATE, post(rotate))
        .route(paths::TEST, post(test_round_trip))
        .route(paths::RELOAD, post(reload))
        .route(paths::CHECK, post(check))
        .route(paths::REWRAP, post(rewrap))
        .route(paths::AUDIT_ROTATE, post(audit_rotate))
        .route(paths::UNWRAP, post(unwrap))
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
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(paths::METRICS, get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A key-pair id from the path: percent-decoded, its shape checked. A
/// path segment that is not UTF-8 is a JSON 400, an id of another shape a
/// JSON 404 — never a plain-text rejection, never an echo of the whole
/// segment.
struct KeyPairId(String);

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
                    StatusCode::BAD_REQUEST,
                    "invalid_path",
                    format!(
                        "the key-pair id in the path is not valid UTF-8 text ({})",
                        e.body_text()
                    ),
                )
            })?;
        if !crate::domain::is_key_pair_id(&id) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no key pair with id {:?}; ids are kek- and 16 hex digits",
                    bounded(&id)
                ),
            ));
        }
        Ok(KeyPairId(id))
    }
}

/// A JSON body's rejection as a JSON error: 413 for a body over the limit,
/// 400 for anything else.
fn body_error(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {MAX_BODY} bytes"),
        );
    }
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {}", bounded(uri.path())),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", bounded(uri.path())),
    )
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Corrupt { id, problem } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt_record",
            format!("stored record {id} does not decode ({problem}); it is kept, not deleted"),
        ),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            other.to_string(),
        ),
    }
}

/// What status and metrics both derive from the engine state.
struct Watch {
    degraded: bool,
    audit: AuditHead,
    key_too_old: bool,
    warnings: Vec<String>,
    canary: Option<crate::canary::CanaryReport>,
}

fn watch_items(st: &AppState, eng: &EngineState) -> Watch {
    let canary = st.canary.last();
    let canary_failed = canary.as_ref().is_some_and(|c| !c.ok);
    let mut warnings = Vec::new();
    let limit = st.current.settings().max_key_age_warning;
    let age = eng
        .active
        .as_ref()
        .and_then(|a| a.activated_at)
        .and_then(|t| (chrono::Utc::now() - t).to_std().ok());
    let key_too_old = matches!((age, limit), (Some(a), Some(l)) if a > l);
    if key_too_old {
        warnings.push(format!(
            "the active key pair is {} old, older than max_key_age_warning ({}); it is still served",
            humantime::format_duration(std::time::Duration::from_secs(age.unwrap_or_default().as_secs())),
            humantime::format_duration(limit.unwrap_or_default())
        ));
    }
    let audit = st.audit.head();
    if let Some(r) = &audit.repaired {
        warnings.push(format!("audit trail: {r}"));
    }
    Watch {
        degraded: eng.health.degraded_since.is_some()
            || eng.health.kms_key_problem.is_some()
            || st.current.get().provider.fallback().is_some()
            || eng
                .fleet
                .as_ref()
                .is_some_and(|f| f.unavailable_since.is_some())
            || canary_failed
            || audit.problem.is_some(),
        audit,
        key_too_old,
        warnings,
        canary,
    }
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

/// `GET /metrics`: Prometheus text. State gauges come from the same
/// snapshot status uses.
async fn metrics(State(st): State<AppState>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let counts = counts(st.store.summary().await.map_err(store_error)?);
    let eng = st.engine.snapshot();
    let now = chrono::Utc::now();
    let w = watch_items(&st, &eng);
    let snapshot = crate::metrics::Snapshot {
        active_key_age_seconds: eng
            .active
            .as_ref()
            .and_then(|a| a.activated_at)
            .map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
        next_rotation_unix: eng
            .schedule
            .next_rotation_at
            .map(|t| t.timestamp_millis() as f64 / 1000.0),
        degraded: w.degraded,
        by_state: counts
            .by_state
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        by_wrapping_key: counts.by_wrapping_key.into_iter().collect(),
        canary_ok: w.canary.as_ref().map(|c| c.ok),
        key_too_old: w.key_too_old,
        store_up: eng
            .fleet
            .as_ref()
            .is_none_or(|f| f.unavailable_since.is_none()),
        store_staleness_seconds: eng
            .fleet
            .as_ref()
            .and_then(|f| f.last_refresh_at)
            .map_or(0.0, |t| (now - t).num_milliseconds() as f64 / 1000.0),
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

async fn status(State(st): State<AppState>) -> Result<axum::response::Response, ApiError> {
    // Everything here is in memory: the cost is the same with ten key
    // pairs or ten thousand (I4).
    let counts = counts(st.store.summary().await.map_err(store_error)?);
    let corrupt_records = st.corrupt.get();
    let eng = st.engine.snapshot();
    let cur = st.current.get();
    let settings = &cur.settings;
    let w = watch_items(&st, &eng);
    let view = StatusView {
        state: if w.degraded {
            ServiceState::Degraded
        } else {
            ServiceState::Ok
        },
        version: env!("CARGO_PKG_VERSION").into(),
        fips: crate::fips::FIPS_BUILD,
        organization_id: settings.organization_id.clone(),
        kms_key: cur.provider.configured_key(),
        active_key_id: eng.active.as_ref().map(|a| a.id.clone()),
        active_since: eng.active.as_ref().and_then(|a| a.activated_at),
        announced_key_id: eng.announced.as_ref().map(|a| a.id.clone()),
        announced_activates_at: eng.announced.as_ref().and_then(|a| a.activates_at),
        cadence: settings.cadence.to_string(),
        timezone: settings.timezone.name().to_string(),
        last_rotation_at: eng.schedule.last_rotation_at,
        next_rotation_at: eng.schedule.next_rotation_at,
        rotation_in_progress: eng.health.rotating,
        degraded_since: eng.health.degraded_since,
        failed_attempts: eng.health.attempts,
        next_retry_at: eng.health.next_retry_at,
        last_error: eng.health.last_error.clone(),
        kms_key_problem: eng.health.kms_key_problem.clone(),
        backup_kms_keys: cur.provider.backup_keys(),
        kms_fallback: cur.provider.fallback(),
        last_reload: st.reloader.last(),
        last_canary: w.canary,
        audit: w.audit,
        warnings: w.warnings,
        key_pairs: counts,
        corrupt_records,
        store: store_status(settings, &eng),
    };
    Ok(json_body(st.status.json(view, |v| {
        serde_json::to_vec(v).expect("status serializes")
    })))
}

/// The store part of status.
fn store_status(
    settings: &crate::config::Settings,
    eng: &crate::rotation::EngineState,
) -> crate::api::views::StoreStatus {
    let fleet = eng.fleet.as_ref();
    let now = chrono::Utc::now();
    crate::api::views::StoreStatus {
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
        lease_holder: fleet.and_then(|f| f.lease.as_ref().map(|l| l.0.clone())),
        lease_expires_at: fleet.and_then(|f| f.lease.as_ref().map(|l| l.1)),
        unavailable_since: fleet.and_then(|f| f.unavailable_since),
        last_error: fleet.and_then(|f| f.last_error.clone()),
    }
}

/// Largest page a caller may ask for.
const MAX_LIMIT: usize = 1000;

async fn list_keypairs(
    State(st): State<AppState>,
    page: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(page) =
        page.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit {limit} is out of range; allowed: 1 to {MAX_LIMIT}"),
        ));
    }
    let mut corrupt_records = st.corrupt.get();
    // The newest page, while the store stands still, is the last answer
    // (the change count is read before the store, so a write racing this
    // request only makes the next one read again).
    let newest = match (&page.cursor, st.store.changes()) {
        (None, Some(changes)) => Some((changes, limit, corrupt_records.clone())),
        _ => None,
    };
    if let Some(body) = newest.as_ref().and_then(|key| st.newest_page.get(key)) {
        return Ok(json_body(body));
    }
    // One page of the history index: the cost is the page, not the history.
    let found = st
        .store
        .page(page.cursor.as_deref(), limit)
        .await
        .map_err(|e| match e {
            StoreError::UnknownCursor(c) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("cursor {:?} is not a stored key pair id", bounded(&c)),
            ),
            other => store_error(other),
        })?;
    let mut page_items = Vec::with_capacity(found.records.len());
    for l in found.records {
        match l {
            Listed::Ok(r) => page_items.push(KeyPairView::from(&*r)),
            Listed::Corrupt { id, problem } => {
                if !corrupt_records.iter().any(|c| c.id == id) {
                    corrupt_records.push(CorruptRecord { id, problem });
                }
            }
        }
    }
    let body = axum::body::Bytes::from(
        serde_json::to_vec(&KeyPairList {
            keypairs: page_items,
            next_cursor: found.next,
            corrupt_records,
        })
        .expect("a history page serializes"),
    );
    if let Some(key) = newest {
        st.newest_page.keep(key, body.clone());
    }
    Ok(json_body(body))
}

/// A JSON answer from bytes already serialized.
fn json_body(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn find(st: &AppState, id: String) -> Result<KeyPairRecord, ApiError> {
    st.store
        .get(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no key pair with id {id:?}"),
            )
        })
}

async fn get_keypair(
    State(st): State<AppState>,
    KeyPairId(id): KeyPairId,
) -> Result<Json<KeyPairView>, ApiError> {
    Ok(Json(KeyPairView::from(&find(&st, id).await?)))
}

async fn get_envelope(
    State(st): State<AppState>,
    KeyPairId(id): KeyPairId,
) -> Result<Json<ExportView>, ApiError> {
    let rec = find(&st, id).await?;
    tracing::info!(key_pair_id = %rec.id, "envelope exported");
    Ok(Json(ExportView {
        public_key_pem: public_key_pem(&rec.public_key_der),
        state: rec.state,
        envelope: rec.envelope,
    }))
}

/// Before the first key pair exists.
fn no_active_key() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_active_key",
        "no key pair is active yet (the initial rotation has not completed; see /v1/status)",
    )
}

async fn public_key(State(st): State<AppState>) -> Result<axum::response::Response, ApiError> {
    let active = st.engine.read(|e| e.active.clone());
    let a = active.ok_or_else(no_active_key)?;
    let body = st.public_key.json((a.id.clone(), a.activated_at), |_| {
        serde_json::to_vec(&PublicKeyView {
            id: a.id.clone(),
            pem: public_key_pem(&a.public_key_der),
            key_bits: a.key_bits,
            activated_at: a.activated_at,
        })
        .expect("the public key serializes")
    });
    Ok(json_body(body))
}

/// Longest a recorder may cache the JWK Set; shorter when the next
/// scheduled rotation comes sooner.
const JWKS_MAX_AGE: i64 = 300;

/// `GET /v1/public-keys`: the JWK Set, with a strong ETag (`If-None-Match`
/// → 304) and a `max-age` that never outlives the next scheduled rotation.
/// Made once per active key pair: a poll costs a hash-map lookup.
async fn public_keys(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let (active, announced, next) = st.engine.read(|e| {
        (
            e.active.clone(),
            e.announced.clone(),
            e.schedule.next_rotation_at,
        )
    });
    let a = active.ok_or_else(no_active_key)?;
    let made_for = match &announced {
        Some(n) => format!("{}+{}", a.id, n.id),
        None => a.id.clone(),
    };
    let set = match st.jwks.get(&made_for) {
        Some(set) => set,
        None => {
            let page = st.store.page(None, 16).await.map_err(store_error)?;
            let recent: Vec<_> = page
                .records
                .into_iter()
                .filter_map(|l| match l {
                    Listed::Ok(r) => Some(*r),
                    Listed::Corrupt { .. } => None,
                })
                .filter(|r| r.id != a.id)
                .collect();
            let announced = announced.as_ref().map(|n| n.info());
            let jwks = crate::jwks::JwkSet::new(Some(&a.info()), announced.as_ref(), &recent);
            let body = serde_json::to_vec(&jwks).expect("JWK Sets serialize");
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
            let set = std::sync::Arc::new(crate::api::state::CachedJwks {
                etag: format!("\"{}\"", hex::encode(&digest.as_ref()[..16])),
                body: body.into(),
            });
            st.jwks.set(&made_for, set.clone());
            set
        }
    };
    let until_next = next.map_or(JWKS_MAX_AGE, |t| {
        (t - chrono::Utc::now())
            .num_seconds()
            .clamp(0, JWKS_MAX_AGE)
    });
    let cache_control = format!("max-age={until_next}");
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == set.etag || tag.trim() == "*");
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/jwk-set+json")],
            set.body.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        header::HeaderValue::from_str(&set.etag).expect("hex is a valid header"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_str(&cache_control).expect("ascii"),
    );
    Ok(response)
}

async fn rotate(State(st): State<AppState>) -> Result<Json<KeyPairView>, ApiError> {
    match st.rotation.rotate(Reason::ChangeKeyNow).await {
        Ok(rec) => Ok(Json(KeyPairView::from(&*rec))),
        Err(e) => Err(rotation_error(e)),
    }
}

fn rotation_error(e: RotationError) -> ApiError {
    match &e {
        RotationError::Provider(p) if p.kind.is_unavailable() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "kms_unavailable",
            format!("rotation failed, the active key pair stays active: {p}"),
        ),
        RotationError::Provider(p) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "kms_error",
            format!("rotation failed, the active key pair stays active: {p}"),
        ),
        RotationError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            e.to_string(),
        ),
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rotation_failed",
            format!("rotation failed, the active key pair stays active: {e}"),
        ),
    }
}

/// The Test round trip against the configured KMS key. Always 200: a failed
/// test is a successful answer whose `ok` is false and whose steps say where.
async fn test_round_trip(State(st): State<AppState>) -> Json<TestReport> {
    let cur = st.current.get();
    let report = crate::kms_check::round_trip(&*cur.provider, &cur.settings).await;
    match report.failure() {
        None => tracing::info!(kms_key = %report.kms_key, "Test round trip passed"),
        Some(f) => {
            tracing::warn!(kms_key = %report.kms_key, step = %f.step, detail = %f.detail, "Test round trip failed")
        }
    }
    Json(report)
}

/// Reloads the configuration file. 200 with the outcome when it was applied
/// or unchanged; 422 `reload_failed` (the running configuration stays) when
/// the file is invalid, names fields that cannot change, or the new KMS key
/// fails its Test round trip.
async fn reload(State(st): State<AppState>) -> Result<Json<ReloadOutcome>, ApiError> {
    let out = st.reloader.reload().await;
    if out.outcome == ReloadResult::Failed {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            format!("{} (the running configuration stays in force)", out.message),
        ));
    }
    Ok(Json(out))
}

/// Starts a new audit file that continues the chain (`kekctl audit
/// rotate`); 500 `audit_rotate_failed` leaves the old file in place.
async fn audit_rotate(State(st): State<AppState>) -> Result<Json<crate::audit::Rotated>, ApiError> {
    st.audit.rotate_async().await.map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "audit_rotate_failed",
            e.to_string(),
        )
    })
}

/// Runs the decryptability canary now (`kekctl check`). Always 200; `ok`
/// says whether it passed.
async fn check(State(st): State<AppState>) -> Json<CanaryReport> {
    Json(st.canary.run().await)
}

/// Rewrap, streamed as JSON lines (`application/x-ndjson`): `start`, one
/// `progress` per key pair, `done` (or `error`). 409 `rewrap_in_progress`
/// if one is already running.
async fn rewrap(State(st): State<AppState>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let rx = st.rewrapper.start().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "rewrap_in_progress",
            "a rewrap is already running; wait for it (status shows counts per wrapping key)",
        )
    })?;
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_string(&event).expect("events serialize");
        line.push('\n');
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}

/// Unwraps a recording's content key with the key pair's private key
/// (role `decrypt`).
async fn unwrap(
    State(st): State<AppState>,
    KeyPairId(id): KeyPairId,
    body: Result<Json<UnwrapRequest>, JsonRejection>,
) -> Result<Json<UnwrapView>, ApiError> {
    use crate::unwrap::UnwrapError;
    let Json(req) = body.map_err(body_error)?;
    match st.unwrapper.unwrap(&id, &req.wrapped_key).await {
        Ok(key) => Ok(Json(UnwrapView {
            content_key: key.to_vec(),
        })),
        Err(e) => Err(match e {
            UnwrapError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            UnwrapError::Provider(p) if p.kind.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "kms_unavailable",
                format!("the private key of {id} is not cached and KMS cannot decrypt it now: {p}"),
            ),
            UnwrapError::Deadline(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "kms_unavailable",
                e.to_string(),
            ),
            UnwrapError::Provider(p) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "kms_error", p.to_string())
            }
            UnwrapError::Failed => {
                ApiError::new(StatusCode::BAD_REQUEST, "unwrap_failed", e.to_string())
            }
            UnwrapError::Store(StoreError::Corrupt { .. }) | UnwrapError::Proof(_) => {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "corrupt_record",
                    e.to_string(),
                )
            }
            UnwrapError::Store(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_error",
                e.to_string(),
            ),
        }),
    }
}
