//! Roles by peer credentials: every request is checked against `[access]`
//! with the uid/gid the kernel reports for the connection (`SO_PEERCRED`),
//! plus the caller's supplementary groups. Root and the daemon's own user
//! always pass. A refusal is a 403 naming the missing role.

use super::server::Peer;
use super::state::AppState;
use super::ApiError;
use crate::audit::AuditEvent;
use crate::config::access::{groups_of, Role};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: lets the request through only if the peer holds `role`.
pub(crate) async fn require_role(
    State((st, role)): State<(AppState, Role)>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Without credentials nobody can be authorized; fail closed.
    let Some(&ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<Peer>>() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the caller's credentials are unknown (SO_PEERCRED unavailable)",
        ));
    };
    let access = st.current.settings().access.clone();
    let daemon_uid = rustix::process::geteuid().as_raw();
    let groups = tokio::task::spawn_blocking(move || groups_of(peer.uid, peer.gid))
        .await
        .unwrap_or_else(|_| vec![peer.gid]);
    let allowed = access.allows(role, peer.uid, &groups, daemon_uid);
    if role != Role::View {
        // Calls that change state or reveal key material are audited — and
        // refused if they cannot be (fail closed). Refusals are audited too.
        let path = req.uri().path().to_string();
        let key_pair_id = path
            .strip_prefix("/v1/keypairs/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string);
        let event = AuditEvent::Api {
            method: req.method().to_string(),
            path,
            uid: peer.uid,
            gid: peer.gid,
            pid: peer.pid,
            role: role.name().to_string(),
            key_pair_id,
            outcome: if allowed { "allowed" } else { "refused" }.to_string(),
        };
        if let Err(e) = st.audit.record_async(event).await {
            if allowed {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_unavailable",
                    format!("{e}; the request is refused because it cannot be audited"),
                ));
            }
        }
    }
    if allowed {
        return Ok(next.run(req).await);
    }
    tracing::warn!(
        uid = peer.uid,
        gid = peer.gid,
        pid = peer.pid,
        role = role.name(),
        method = %req.method(),
        path = %req.uri().path(),
        "request refused: missing role"
    );
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "uid {} lacks the `{}` role needed for {} {}; grant it under [access.{}] users or groups",
            peer.uid,
            role.name(),
            req.method(),
            req.uri().path(),
            role.name()
        ),
    ))
}
