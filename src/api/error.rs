//! API errors: a typed code, its HTTP status decided in one place, and the
//! library's errors turned into codes by `From` — handlers never pick a
//! code or a status inline, and clients match variants, not strings.
//!
//! On the wire an error is `{"error": {"code", "message"}}`; the code is
//! the variant's snake_case name, stable across versions. A client that
//! meets a code newer than itself reads it as [`ErrorCode::Unknown`].

use crate::rotation::RotationError;
use crate::store::StoreError;
use crate::unwrap::UnwrapError;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// The largest request body accepted (an unwrap request is well under 2 KiB).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// What went wrong, for machines. The HTTP status follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No such endpoint or key pair (404).
    NotFound,
    /// The method is not served on this path (405).
    MethodNotAllowed,
    /// A path segment is not valid text (400).
    InvalidPath,
    /// A query parameter is malformed or out of range (400).
    InvalidQuery,
    /// The body is not the JSON the endpoint takes (400).
    InvalidRequest,
    /// The body is over the size limit (413).
    PayloadTooLarge,
    /// The caller lacks the role the path needs (403).
    Forbidden,
    /// The call changes state or reveals key material and cannot be
    /// audited now (503).
    AuditUnavailable,
    /// No key pair is active yet (503).
    NoActiveKey,
    /// KMS cannot be reached or did not answer in time (503).
    KmsUnavailable,
    /// KMS answered with an error (502).
    KmsError,
    /// The daemon is stopping (503).
    ShuttingDown,
    /// A rotation failed for another reason (500).
    RotationFailed,
    /// The configuration file was not applied (422).
    ReloadFailed,
    /// A new audit file could not be started (500).
    AuditRotateFailed,
    /// A rewrap is already running (409).
    RewrapInProgress,
    /// The wrapped content key does not decrypt with this key pair (400).
    UnwrapFailed,
    /// A stored record does not decode (500); it is kept.
    CorruptRecord,
    /// The store failed (500).
    StoreError,
    /// Several organizations are served and the path names none (400).
    OrganizationRequired,
    /// No such organization (404).
    OrganizationNotFound,
    /// The organization is removed: nothing is served for it (410).
    OrganizationRemoved,
    /// An organization with this id exists already (409).
    OrganizationExists,
    /// Not a valid organization id or settings (400).
    InvalidOrganization,
    /// The Test round trip of the organization's KMS key failed; nothing
    /// was saved (422).
    KmsTestFailed,
    /// The customer revoked kekd's use of their KMS key and the
    /// organization is set to `on_revocation = "withhold"`: no public key
    /// is served, so recorders stop sealing until access is restored (409).
    KeyRevoked,
    /// The change does not fit the organization's state: restore of an
    /// active one, purge inside the restore window, remove of the one the
    /// file declares (409).
    OrganizationConflict,
    /// The active key pair is of a key type the caller did not say it can
    /// seal with (`/v1/public-key?key_types=`; RSA alone when absent), so
    /// it is not sent: a recorder that only knows RSA gets this, not a key
    /// it would misread (406).
    KeyTypeNotAccepted,
    /// A code this client does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status of an answer with this code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            KeyTypeNotAccepted => StatusCode::NOT_ACCEPTABLE,
            InvalidPath | InvalidQuery | InvalidRequest | UnwrapFailed | OrganizationRequired
            | InvalidOrganization => StatusCode::BAD_REQUEST,
            OrganizationNotFound => StatusCode::NOT_FOUND,
            OrganizationRemoved => StatusCode::GONE,
            OrganizationExists | OrganizationConflict | KeyRevoked => StatusCode::CONFLICT,
            KmsTestFailed => StatusCode::UNPROCESSABLE_ENTITY,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Forbidden => StatusCode::FORBIDDEN,
            AuditUnavailable | NoActiveKey | KmsUnavailable | ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            KmsError => StatusCode::BAD_GATEWAY,
            ReloadFailed => StatusCode::UNPROCESSABLE_ENTITY,
            RewrapInProgress => StatusCode::CONFLICT,
            RotationFailed | AuditRotateFailed | CorruptRecord | StoreError | Unknown => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

crate::domain::display_as_serde!(ErrorCode);

/// An API error: a code and a message for people. Never carries key
/// material.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// Stable, machine-readable.
    pub(crate) code: ErrorCode,
    /// What went wrong, for a person.
    pub(crate) message: String,
}

impl ApiError {
    /// A new error.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The same error, its message prefixed with `what` it concerns.
    pub(crate) fn about(mut self, what: impl std::fmt::Display) -> ApiError {
        self.message = format!("{what}: {}", self.message);
        self
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
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.code.status(), Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Corrupt { id, problem } => ApiError::new(
                ErrorCode::CorruptRecord,
                format!("stored record {id} does not decode ({problem}); it is kept, not deleted"),
            ),
            StoreError::UnknownCursor(c) => ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "cursor {:?} is not a stored key pair id",
                    super::auth::bounded(&c)
                ),
            ),
            other => ApiError::new(ErrorCode::StoreError, other.to_string()),
        }
    }
}

/// Whether a key pair was active when a rotation failed: what the caller
/// is told stays served depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serving {
    /// The active key pair stays active.
    ActiveKeyPair,
    /// Nothing is active yet (the first rotation failed).
    Nothing,
}

/// A failed rotation, as the API says it.
pub(crate) fn rotation_failed(e: RotationError, serving: Serving) -> ApiError {
    let stays = match serving {
        Serving::ActiveKeyPair => "rotation failed, the active key pair stays active",
        Serving::Nothing => {
            "rotation failed and no key pair is active yet (recorders cannot seal until one is)"
        }
    };
    let failed =
        |code, detail: &dyn std::fmt::Display| ApiError::new(code, format!("{stays}: {detail}"));
    match &e {
        RotationError::Provider(p) if p.kind.is_unavailable() => {
            failed(ErrorCode::KmsUnavailable, p)
        }
        RotationError::Provider(p) => failed(ErrorCode::KmsError, p),
        RotationError::ShuttingDown => ApiError::new(ErrorCode::ShuttingDown, e.to_string()),
        _ => failed(ErrorCode::RotationFailed, &e),
    }
}

impl From<RotationError> for ApiError {
    /// A rotation that failed while a key pair was active.
    fn from(e: RotationError) -> ApiError {
        rotation_failed(e, Serving::ActiveKeyPair)
    }
}

impl From<UnwrapError> for ApiError {
    fn from(e: UnwrapError) -> ApiError {
        let code = match &e {
            UnwrapError::NotFound(_) => ErrorCode::NotFound,
            UnwrapError::Provider(p) if p.kind.is_unavailable() => {
                return ApiError::new(
                    ErrorCode::KmsUnavailable,
                    format!("the private key is not cached and KMS cannot decrypt it now: {p}"),
                )
            }
            UnwrapError::Deadline(_) => ErrorCode::KmsUnavailable,
            UnwrapError::Provider(_) => ErrorCode::KmsError,
            UnwrapError::Failed => ErrorCode::UnwrapFailed,
            UnwrapError::Store(StoreError::Corrupt { .. }) | UnwrapError::Proof(_) => {
                ErrorCode::CorruptRecord
            }
            UnwrapError::Store(_) => ErrorCode::StoreError,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    /// 413 for a body over the limit, 400 for anything else.
    fn from(e: JsonRejection) -> ApiError {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {MAX_BODY} bytes"),
            );
        }
        ApiError::new(ErrorCode::InvalidRequest, e.body_text())
    }
}

impl From<crate::orgs::OrgError> for ApiError {
    fn from(e: crate::orgs::OrgError) -> ApiError {
        use crate::orgs::OrgError::*;
        let code = match &e {
            InvalidId(_) | Invalid(_) | Unconfirmed(_) => ErrorCode::InvalidOrganization,
            NotFound(_) => ErrorCode::OrganizationNotFound,
            Exists(_) => ErrorCode::OrganizationExists,
            TestFailed { .. } => ErrorCode::KmsTestFailed,
            FirstKeyPair { source, .. } => {
                return rotation_failed((**source).clone(), Serving::Nothing)
                    .about(format_args!("{e}"))
            }
            FirstKeyPairTimedOut { .. } => ErrorCode::KmsUnavailable,
            Removed(_) => ErrorCode::OrganizationRemoved,
            NotRemoved(_) | WindowOpen { .. } | Declared(_) => ErrorCode::OrganizationConflict,
            Store(StoreError::Conflict { .. }) => ErrorCode::OrganizationConflict,
            Store(_) | Tenant(_) => ErrorCode::StoreError,
            Audit(_) => ErrorCode::AuditUnavailable,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::audit::AuditError> for ApiError {
    /// An audit file that cannot be rotated (the old one stays).
    fn from(e: crate::audit::AuditError) -> ApiError {
        ApiError::new(ErrorCode::AuditRotateFailed, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes on the wire are the ones clients and scripts already
    /// match; a newer daemon's code reads as `Unknown`, not as an error.
    #[test]
    fn codes_keep_their_wire_names_and_unknown_ones_are_read() {
        for (code, wire, status) in [
            (ErrorCode::NotFound, "not_found", 404),
            (ErrorCode::KmsUnavailable, "kms_unavailable", 503),
            (ErrorCode::KmsError, "kms_error", 502),
            (ErrorCode::ReloadFailed, "reload_failed", 422),
            (ErrorCode::RewrapInProgress, "rewrap_in_progress", 409),
            (ErrorCode::PayloadTooLarge, "payload_too_large", 413),
            (ErrorCode::Forbidden, "forbidden", 403),
            (
                ErrorCode::OrganizationRequired,
                "organization_required",
                400,
            ),
            (ErrorCode::OrganizationRemoved, "organization_removed", 410),
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), wire);
            assert_eq!(code.to_string(), wire);
            assert_eq!(code.status().as_u16(), status, "{wire}");
        }
        let d: ErrorDetail =
            serde_json::from_str(r#"{"code":"brand_new_code","message":"m"}"#).unwrap();
        assert_eq!(d.code, ErrorCode::Unknown);
    }
}
