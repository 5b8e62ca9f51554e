//! The local API: HTTP/1.1 + JSON over a Unix socket, versioned under `/v1/`.
//!
//! - `paths.rs`: every route, named once for the server and the client.
//! - `views.rs`: the JSON shapes of every answer, shared with `kekctl`.
//! - `client.rs`: the typed client `kekctl`, the tests and benches use.
//! - `state.rs`: what every handler can reach ([`state::AppState`]).
//! - `auth.rs`: roles by peer credentials, checked before routing (403
//!   naming the missing role), with bounded records; `refusals.rs` limits
//!   how many refusals per uid are recorded one by one.
//! - `error.rs`: the typed [`ErrorCode`], its HTTP status in one place, and
//!   the library's errors turned into codes by `From`.
//! - `extract.rs`: the path extractors (a key-pair id, checked);
//! - `routes.rs`: the router and the fallbacks;
//!   `status.rs` (status and `/metrics`, from one health assessment;
//!   `degraded.rs` says since when and why for each cause),
//!   `keys.rs` (history, key pairs, envelopes, the public key, the JWK
//!   Set), `actions.rs` (rotate, test, reload, check, rewrap, unwrap),
//!   `audit.rs` (one organization's records; a new audit file). No read
//!   path touches KMS (I4).
//! - `server.rs`: binding the socket, the accept loop with its timeouts,
//!   and the graceful drain; `connections.rs` caps connections, `peer.rs`
//!   reads the caller's credentials and groups once per connection.
//!
//! Errors are always `{"error": {"code", "message"}}` with a fitting status.

mod actions;
mod audit;
pub(crate) mod auth;
pub mod client;
pub(crate) mod connections;
mod degraded;
mod error;
mod extract;
mod keys;
pub mod org_views;
mod orgs;
pub mod paths;
mod peer;
pub(crate) mod refusals;
pub(crate) mod routes;
mod scope;
pub(crate) mod server;
pub(crate) mod state;
mod status;
pub mod views;

pub(crate) use error::ApiError;
pub use error::{ErrorBody, ErrorCode, ErrorDetail};

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
