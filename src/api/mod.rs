//! The local API: HTTP/1.1 + JSON over a Unix socket, versioned under `/v1/`.
//!
//! - `auth.rs`: roles by peer credentials (403 naming the missing role).
//! - `server.rs`: binding the socket (stale-file handling, mode) and serving
//!   with graceful shutdown.
//! - `routes.rs`: the handlers. None of the read paths touches KMS (I4).
//! - `views.rs`: the JSON shapes of the API, shared with `kekctl`.
//! - `client.rs`: the small client `kekctl` and the tests use.
//!
//! Errors are always `{"error": {"code", "message"}}` with a fitting status.

pub mod auth;
pub mod client;
pub mod routes;
pub mod server;
pub mod views;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error: HTTP status, a stable machine-readable code, a message for
/// people. Never carries key material.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `not_found`, `kms_unavailable`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
