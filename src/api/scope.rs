//! Which organization a request names, decided before authorization and
//! routing.

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
