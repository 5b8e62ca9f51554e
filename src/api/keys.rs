//! The key pairs as recorders, players and operators read them: the
//! history (one page at a time), one key pair, its envelope, the active
//! public key and the JWK Set. No KMS call on any of these (I4).

use super::auth::bounded;
use super::error::ErrorCode;
use super::extract::{KeyPairId, Org, Served};
use super::state::AppState;
use super::views::*;
use super::{json_body, ApiError};
use crate::domain::{KeyAlgorithm, KeyPairRecord};
use crate::keypair::public_key_pem;
use crate::store::Listed;
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::Json;

/// Largest page a caller may ask for.
const MAX_LIMIT: usize = 1000;

/// Longest a recorder may cache the JWK Set; shorter when the next
/// scheduled rotation comes sooner.
const JWKS_MAX_AGE: i64 = 300;

/// `GET /v1/keypairs`: one page of the history, newest first.
pub(super) async fn list_keypairs(
    Org(st): Org,
    page: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(page) = page.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
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
    let found = st.store.page(page.cursor.as_deref(), limit).await?;
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

/// A stored key pair, or 404.
pub(super) async fn find(st: &AppState, id: String) -> Result<KeyPairRecord, ApiError> {
    st.store.get(&id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no key pair with id {:?}", bounded(&id)),
        )
    })
}

/// `GET /v1/keypairs/{id}`.
pub(super) async fn get_keypair(
    Org(st): Org,
    KeyPairId(id): KeyPairId,
) -> Result<Json<KeyPairView>, ApiError> {
    Ok(Json(KeyPairView::from(&find(&st, id).await?)))
}

/// `GET /v1/keypairs/{id}/envelope`: for backup and break-glass.
pub(super) async fn get_envelope(
    Org(st): Org,
    KeyPairId(id): KeyPairId,
) -> Result<Json<ExportView>, ApiError> {
    let rec = find(&st, id).await?;
    tracing::info!(key_pair_id = %rec.id, "envelope exported");
    Ok(Json(ExportView {
        public_key_pem: public_key_pem(rec.algorithm, &rec.public_key_der),
        state: rec.state,
        envelope: rec.envelope,
    }))
}

/// Before the first key pair exists.
fn no_active_key() -> ApiError {
    ApiError::new(
        ErrorCode::NoActiveKey,
        "no key pair is active yet (the initial rotation has not completed; see /v1/status)",
    )
}

/// Refuses to publish while the customer's key is revoked and the
/// organization withholds then: sealing to a key pair the customer has
/// just cut off is what such a customer asked not to happen.
fn publishing(st: &AppState) -> Result<(), ApiError> {
    if st.current.settings().on_revocation != crate::domain::OnRevocation::Withhold {
        return Ok(());
    }
    match st.engine.read(|e| e.health.kms_key_problem.clone()) {
        Some(p) if p.revoked => Err(ApiError::new(
            ErrorCode::KeyRevoked,
            format!(
                "the customer's KMS key is revoked ({}, since {}) and this organization withholds its public keys then (on_revocation = \"withhold\"); sealing resumes when the customer restores access",
                p.kind,
                crate::time::format(&p.since)
            ),
        )),
        _ => Ok(()),
    }
}

/// The key algorithms a `key_types` list names.
fn accepted(list: Option<&str>) -> Result<Vec<KeyAlgorithm>, ApiError> {
    let Some(list) = list else {
        return Ok(vec![KeyAlgorithm::Rsa]);
    };
    list.split(',')
        .map(|name| {
            serde_json::from_value(serde_json::Value::String(name.trim().to_string())).map_err(
                |_| {
                    ApiError::new(
                        ErrorCode::InvalidQuery,
                        format!(
                            "key_types: {:?} is not a key type; allowed: rsa, x25519-mlkem768",
                            bounded(name)
                        ),
                    )
                },
            )
        })
        .collect()
}

/// `GET /v1/public-key`: what recorders seal with, if they said they can.
pub(super) async fn public_key(
    Served(st): Served,
    q: Result<Query<PublicKeyQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let accepted = accepted(q.key_types.as_deref())?;
    publishing(&st)?;
    let active = st.engine.read(|e| e.active.clone());
    let a = active.ok_or_else(no_active_key)?;
    if !accepted.contains(&a.algorithm) {
        return Err(ApiError::new(
            ErrorCode::KeyTypeNotAccepted,
            format!(
                "the active key pair {} is {} (recording format 2) and this request accepts only {}; a recorder that seals format 2 asks with ?key_types=rsa,x25519-mlkem768 or reads the JWK Set",
                a.id,
                a.key_type().map_or("-".into(), |k| k.to_string()),
                accepted.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let body = st.public_key.json((a.id.clone(), a.activated_at), |_| {
        serde_json::to_vec(&PublicKeyView {
            id: a.id.clone(),
            pem: public_key_pem(a.algorithm, &a.public_key_der),
            key_type: a.key_type(),
            key_bits: a.key_bits,
            activated_at: a.activated_at,
        })
        .expect("the public key serializes")
    });
    Ok(json_body(body))
}

/// Whether an `If-None-Match` header value matches `etag`. RFC 9110 has
/// `If-None-Match` compare weakly: `W/"x"` matches `"x"`.
fn none_match(header_value: &str, etag: &str) -> bool {
    header_value.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

/// `GET /v1/public-keys`: the JWK Set, with a strong ETag (`If-None-Match`
/// → 304) and a `max-age` that never outlives the next scheduled rotation.
/// Made once per active key pair: a poll costs a hash-map lookup.
pub(super) async fn public_keys(
    Served(st): Served,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    publishing(&st)?;
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
            let page = st.store.page(None, 16).await?;
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
        .any(|v| none_match(v, &set.etag));
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

#[cfg(test)]
mod tests {
    /// Regression: `If-None-Match: W/"…"` answered 200; RFC 9110 compares
    /// `If-None-Match` weakly, so a weak tag of the same value is a match.
    #[test]
    fn if_none_match_compares_weakly() {
        let etag = "\"abc\"";
        assert!(super::none_match("\"abc\"", etag));
        assert!(super::none_match("W/\"abc\"", etag));
        assert!(super::none_match("\"x\", W/\"abc\"", etag));
        assert!(super::none_match("*", etag));
        assert!(!super::none_match("\"abd\"", etag));
        assert!(!super::none_match("W/\"abd\"", etag));
    }
}
