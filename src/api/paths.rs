//! Every route of the API, named once: the router mounts these and the
//! client requests them, so they cannot drift apart.

/// `GET`: daemon state.
pub const STATUS: &str = "/v1/status";
/// `GET`: key pair history, newest first (`?limit=&cursor=`).
pub const KEYPAIRS: &str = "/v1/keypairs";
/// `GET`: one key pair (router pattern).
pub const KEYPAIR: &str = "/v1/keypairs/{id}";
/// `GET`: one key pair's envelope (router pattern).
pub const ENVELOPE: &str = "/v1/keypairs/{id}/envelope";
/// `POST`: unwrap a content key with one key pair (router pattern).
pub const UNWRAP: &str = "/v1/keypairs/{id}/unwrap";
/// `GET`: the active public key.
pub const PUBLIC_KEY: &str = "/v1/public-key";
/// `GET`: the active and recently retired public keys, a JWK Set.
pub const PUBLIC_KEYS: &str = "/v1/public-keys";
/// `POST`: Change Key Now.
pub const ROTATE: &str = "/v1/rotate";
/// `POST`: the Test round trip.
pub const TEST: &str = "/v1/test";
/// `POST`: reload the configuration file.
pub const RELOAD: &str = "/v1/reload";
/// `POST`: run the decryptability canary now.
pub const CHECK: &str = "/v1/check";
/// `POST`: re-wrap every key pair under the current KMS key (JSON lines).
pub const REWRAP: &str = "/v1/rewrap";
/// `GET`: one organization's audit records, oldest first
/// (`?limit=&cursor=&since=`).
pub const AUDIT: &str = "/v1/audit";
/// `POST`: start a new audit file that continues the chain.
pub const AUDIT_ROTATE: &str = "/v1/audit/rotate";
/// `GET`: Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// `GET`: the organizations, a page (`?limit=&cursor=`); `POST`: add one.
pub const ORGS: &str = "/v1/orgs";
/// `GET`: one organization; `DELETE`: remove it (router pattern).
pub const ORG: &str = "/v1/orgs/{org}";
/// `POST`: restore a removed organization (under `/v1/orgs/{org}`).
pub const RESTORE: &str = "/v1/restore";
/// `POST`: purge a removed organization (under `/v1/orgs/{org}`).
pub const PURGE: &str = "/v1/purge";

/// `path` (one of the per-organization paths above, `/v1/…`) for
/// organization `org`: `/v1/orgs/{org}/…`; unchanged without one.
pub fn for_org(org: Option<&str>, path: &str) -> String {
    match (org, path.strip_prefix("/v1/")) {
        (Some(org), Some(rest)) => format!("/v1/orgs/{org}/{rest}"),
        _ => path.to_string(),
    }
}

/// One organization.
pub fn org(id: &str) -> String {
    ORG.replace("{org}", id)
}

/// The path of one key pair.
pub fn keypair(id: &str) -> String {
    KEYPAIR.replace("{id}", id)
}

/// The path of one key pair's envelope.
pub fn envelope(id: &str) -> String {
    ENVELOPE.replace("{id}", id)
}

/// The path of one key pair's unwrap.
pub fn unwrap(id: &str) -> String {
    UNWRAP.replace("{id}", id)
}

/// A page of the audit records (see [`AUDIT`]).
pub fn audit(limit: usize, cursor: Option<&str>, since: Option<&crate::time::Timestamp>) -> String {
    let mut path = format!("{AUDIT}?limit={limit}");
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={c}"));
    }
    if let Some(s) = since {
        // UTC with `Z`: nothing in it needs escaping in a query.
        path.push_str(&format!("&since={}", crate::time::format(s)));
    }
    path
}

/// A history page.
pub fn keypairs(limit: usize, cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("{KEYPAIRS}?limit={limit}&cursor={c}"),
        None => format!("{KEYPAIRS}?limit={limit}"),
    }
}

/// The role a request for `path` needs, whatever its method — known routes
/// and unknown paths alike, so authorization comes before routing.
pub(crate) fn required_role(
    method: &axum::http::Method,
    path: &str,
) -> crate::config::access::Role {
    use crate::config::access::Role;
    let reads = method == axum::http::Method::GET || method == axum::http::Method::HEAD;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "keypairs", _, "unwrap"] => Role::Decrypt,
        ["v1", "keypairs", _, "envelope"]
        | ["v1", "rotate" | "test" | "reload" | "check" | "rewrap" | "restore" | "purge"]
        | ["v1", "audit", "rotate"] => Role::Edit,
        // Reading organizations is viewing; adding, changing or removing
        // one is editing.
        ["v1", "orgs"] | ["v1", "orgs", _] if !reads => Role::Edit,
        _ => Role::View,
    }
}
