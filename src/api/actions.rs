//! The calls that do something: Change Key Now, the Test round trip,
//! reload, the canary, rewrap, audit rotation, and unwrap for players.

use super::error::{rotation_failed, ErrorCode, Serving};
use super::extract::{KeyPairId, Org, Served};
use super::state::Hub;
use super::views::*;
use super::ApiError;
use crate::domain::Reason;
use crate::provider::budget::{with_priority, Priority};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;

/// `POST /v1/rotate`: Change Key Now; waits for the rotation it joins.
pub(super) async fn rotate(Served(st): Served) -> Result<Json<KeyPairView>, ApiError> {
    let serving = match st.engine.read(|e| e.active.is_some()) {
        true => Serving::ActiveKeyPair,
        false => Serving::Nothing,
    };
    let rec = st
        .rotation
        .rotate(Reason::ChangeKeyNow)
        .await
        .map_err(|e| rotation_failed(e, serving))?;
    Ok(Json(KeyPairView::from(&*rec)))
}

/// The Test round trip against the configured KMS key. Always 200: a failed
/// test is a successful answer whose `ok` is false and whose steps say where.
pub(super) async fn test_round_trip(Served(st): Served) -> Json<TestReport> {
    let cur = st.current.get();
    let report = crate::kms_check::round_trip(&*cur.provider, &cur.settings, false).await;
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
pub(super) async fn reload(State(st): State<Hub>) -> Result<Json<ReloadOutcome>, ApiError> {
    let out = st.reloader.reload().await;
    if out.outcome == ReloadResult::Applied {
        st.orgs.follow_file().await;
    }
    if out.outcome == ReloadResult::Failed {
        return Err(ApiError::new(
            ErrorCode::ReloadFailed,
            format!("{} (the running configuration stays in force)", out.message),
        ));
    }
    Ok(Json(out))
}

/// Runs the decryptability canary now (`kekctl check`). Always 200; `ok`
/// says whether it passed.
pub(super) async fn check(Served(st): Served) -> Json<CanaryReport> {
    Json(st.canary.run().await)
}

/// Rewrap, streamed as JSON lines (`application/x-ndjson`): `start`, one
/// `progress` per key pair, `done` (or `error`). 409 `rewrap_in_progress`
/// if one is already running.
pub(super) async fn rewrap(Served(st): Served) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let rx = st.rewrapper.start().ok_or_else(|| {
        ApiError::new(
            ErrorCode::RewrapInProgress,
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
pub(super) async fn unwrap(
    Org(st): Org,
    KeyPairId(id): KeyPairId,
    body: Result<Json<UnwrapRequest>, JsonRejection>,
) -> Result<Json<UnwrapView>, ApiError> {
    let Json(req) = body?;
    // A player is waiting: its KMS request goes ahead of rotations and
    // checks in the daemon's request budget.
    let key = with_priority(Priority::Unwrap, st.unwrapper.unwrap(&id, &req.wrapped_key))
        .await
        .map_err(|e| ApiError::from(e).about(format_args!("key pair {id}")))?;
    Ok(Json(UnwrapView {
        content_key: key.to_vec(),
    }))
}
