//! The local API: HTTP/1.1 + JSON over a Unix socket, versioned under `/v1/`.
//!
//! - `paths.rs`: every route, named once for the server and the client.
//! - `views.rs`: the JSON shapes of every answer, shared with `kekctl`.
//! - `client.rs`: the typed client `kekctl`, the tests and benches use.
//! - `state.rs`: what every handler can reach ([`state::AppState`]).
//! - `auth.rs`: roles by peer credentials, checked before routing (403
//!   naming the missing role), with bounded records; `refusals.rs` limits
//!   how many refusals per uid are recorded one by one.
//! - `routes.rs`: the router and handlers. No read path touches KMS (I4).
//! - `server.rs`: binding the socket, the accept loop with its timeouts,
//!   and the graceful drain; `connections.rs` caps connections, `peer.rs`
//!   reads the caller's credentials and groups once per connection.
//!
//! Errors are always `{"error": {"code", "message"}}` with a fitting status.

pub(crate) mod auth;
pub mod client;
pub(crate) mod connections;
pub mod paths;
mod peer;
pub(crate) mod refusals;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod state;
pub mod views;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// An API error: HTTP status, a stable machine-readable code, a message for
/// people. Never carries key material.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// Stable code, e.g. `not_found`, `kms_unavailable`.
    pub(crate) code: &'static str,
    /// What went wrong, for a person.
    pub(crate) message: String,
}

impl ApiError {
    /// A new error.
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The error body on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// `error` in [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: String,
    /// For people.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
