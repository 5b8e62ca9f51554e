//! Authorization first: every request — a known route or not — is checked
//! against `[access]` with the caller's uid and groups as the kernel reported
//! them for the connection (`peer.rs`), before routing can answer 404 or
//! 405, so a peer without a role learns nothing. Root and the daemon's own
//! user always pass; a refusal is a 403 naming the missing role.
//!
//! Calls that change state or reveal key material are audited (and refused
//! if they cannot be: fail closed), and so are refusals. What a request
//! puts into the audit trail and the log is bounded: the path is cut to a
//! few hundred bytes, a key-pair id is recorded only when it is one (after
//! percent-decoding), and refusals are rate-limited per uid with a counted
//! summary, so a peer cannot fill the disk by asking.

use super::paths;
use super::peer::Peer;
use super::state::Hub;
use super::{ApiError, ErrorCode};
use crate::audit::AuditEvent;
use crate::config::access::Role;
use crate::domain::is_key_pair_id;
use crate::domain::Decision;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: lets the request through only if the peer holds the role the
/// path needs.
pub(crate) async fn authorize(
    State(st): State<Hub>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Without credentials nobody can be authorized; fail closed.
    let Some(peer) = req.extensions().get::<Peer>().cloned() else {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "the caller's credentials are unknown (SO_PEERCRED unavailable)",
        ));
    };
    let role = paths::required_role(req.method(), req.uri().path());
    static DAEMON_UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let daemon_uid = *DAEMON_UID.get_or_init(|| rustix::process::geteuid().as_raw());
    let org = org_of(&req, &st);
    let allowed = st.orgs.file().settings().access.allows(
        role,
        org.as_deref(),
        peer.uid,
        peer.gid,
        peer.groups.as_deref().unwrap_or(&[]),
        daemon_uid,
    );
    // The common case — a view request by a peer holding the role — records
    // nothing and allocates nothing here.
    if allowed && role == Role::View {
        return Ok(next.run(req).await);
    }
    let path = bounded(req.uri().path());
    let method = req.method().to_string();
    let event = AuditEvent::Api {
        method: method.clone(),
        path: path.clone(),
        uid: peer.uid,
        gid: peer.gid,
        pid: peer.pid,
        role,
        key_pair_id: key_pair_id_in(req.uri().path()),
        outcome: if allowed {
            Decision::Allowed
        } else {
            Decision::Refused
        },
    };
    if !allowed {
        if st.refusals.note(peer.uid) {
            tracing::warn!(uid = peer.uid, gid = peer.gid, pid = peer.pid, role = role.name(), organization = org.as_deref().unwrap_or("-"), %method, %path, "request refused: missing role");
            if let Err(e) = audit_for(&st, org.as_deref()).record_async(event).await {
                tracing::error!(error = %e, "cannot audit a refused request");
            }
        }
        let scope = match &org {
            Some(o) => format!(" for organization {o}"),
            None => String::new(),
        };
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "uid {} lacks the `{}` role{scope} needed for {method} {path}; grant it under [access.{}] (every organization) or an [[access.grant]] listing the organization",
                peer.uid,
                role.name(),
                role.name()
            ),
        ));
    }
    if role != Role::View {
        // Fail closed: a call that changes state or reveals key material
        // and cannot be audited is not made. The record names the
        // organization the request is about.
        if let Err(e) = audit_for(&st, org.as_deref()).record_async(event).await {
            return Err(ApiError::new(
                ErrorCode::AuditUnavailable,
                format!("{e}; the request is refused because it cannot be audited"),
            ));
        }
    }
    Ok(next.run(req).await)
}

/// The audit writer whose records name `org` (the daemon's own without).
fn audit_for(st: &Hub, org: Option<&str>) -> std::sync::Arc<crate::audit::Audit> {
    match org {
        Some(o) if crate::domain::is_org_id(o) => st.audit.for_org(o),
        _ => st.audit.clone(),
    }
}

/// The organization a request is about, for a grant limited to some:
/// the one its path names (`/v1/orgs/{org}/…`, `/v1/orgs/{org}`), or on
/// an unprefixed per-organization path the only one there is. `None` for
/// the daemon-wide endpoints (the organization list, reload, audit,
/// metrics), which no limited grant covers.
fn org_of(req: &Request, st: &Hub) -> Option<String> {
    if let Some(o) = req.extensions().get::<super::scope::OrgSelector>() {
        return Some(o.0.clone());
    }
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v1/orgs/") {
        return Some(
            percent_encoding::percent_decode_str(rest)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    let daemonwide = path == paths::ORGS
        || path == paths::RELOAD
        || path == paths::AUDIT_ROTATE
        || path == paths::METRICS;
    if daemonwide {
        return None;
    }
    st.orgs.sole().ok().map(|t| t.parts.id.to_string())
}

/// The longest path recorded as is; longer ones are cut and their length
/// noted.
const MAX_RECORDED_PATH: usize = 256;

/// `path`, cut to [`MAX_RECORDED_PATH`] bytes (on a character boundary).
pub(crate) fn bounded(path: &str) -> String {
    if path.len() <= MAX_RECORDED_PATH {
        return path.to_string();
    }
    let mut cut = MAX_RECORDED_PATH;
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[{} bytes]", &path[..cut], path.len())
}

/// The key-pair id a path names, percent-decoded, if it is a valid one.
fn key_pair_id_in(path: &str) -> Option<String> {
    let segment = path.strip_prefix("/v1/keypairs/")?.split('/').next()?;
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    is_key_pair_id(&decoded).then(|| decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_fields_are_bounded() {
        let long = format!("/v1/keypairs/{}/unwrap", "a".repeat(65_000));
        let b = bounded(&long);
        assert!(b.len() < 300, "{}", b.len());
        assert!(b.ends_with("[65020 bytes]"), "{b}");
        assert_eq!(key_pair_id_in(&long), None);
        assert_eq!(bounded("/v1/status"), "/v1/status");
        let multibyte = "é".repeat(200);
        assert!(bounded(&multibyte).starts_with('é'));
    }

    /// Regression: an export of a percent-encoded id was audited under the
    /// encoded string, not the key pair it resolved to.
    #[test]
    fn percent_encoded_ids_are_recorded_decoded() {
        let encoded: String = "kek-0123456789abcdef"
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        assert_eq!(
            key_pair_id_in(&format!("/v1/keypairs/{encoded}/envelope")).as_deref(),
            Some("kek-0123456789abcdef")
        );
        assert_eq!(key_pair_id_in("/v1/keypairs/%FF%FE/envelope"), None);
    }
}
