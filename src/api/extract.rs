//! What handlers take from the request path, checked before they run.

use super::auth::bounded;
use super::error::ErrorCode;
use super::ApiError;
use axum::extract::{FromRequestParts, Path};

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
