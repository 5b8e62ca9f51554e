//! What every AWS client of kekd shares: one SDK configuration (a pinned
//! `BehaviorVersion`; connect, attempt *and* operation timeouts, since the
//! SDK has none for a whole operation and a hung service would hang the
//! caller; the endpoint only from the standard `AWS_ENDPOINT_URL[_<SERVICE>]`
//! variables) and one classification of SDK errors into [`FailureKind`]s that
//! keeps the service's code, message and request id — never a body.

use super::{FailureKind, ProviderError};
use crate::config::KmsTimeouts;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;

/// The SDK configuration for a client in `region`. A FIPS build talks TLS
/// through rustls' FIPS provider only (FIPS cipher suites and key
/// exchanges), on the AWS-LC FIPS module.
pub(crate) async fn config(region: &str, timeouts: KmsTimeouts) -> SdkConfig {
    config_with_attempts(region, timeouts, SDK_ATTEMPTS).await
}

/// Attempts per request the SDK makes on its own (standard retry mode).
pub(crate) const SDK_ATTEMPTS: u32 = 3;

/// [`config`] with `attempts` attempts per request (1: the caller retries,
/// as the KMS request budget does).
pub(crate) async fn config_with_attempts(
    region: &str,
    timeouts: KmsTimeouts,
    attempts: u32,
) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::v2026_01_12());
    #[cfg(feature = "fips")]
    let loader = loader.http_client(
        aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLcFips,
            ))
            .build_https(),
    );
    loader
        .region(Region::new(region.to_string()))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .operation_attempt_timeout(timeouts.attempt)
                .operation_timeout(timeouts.operation)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .load()
        .await
}

/// Turns an SDK error of `service` into the operator's terms. `code_kind`
/// names the service's own error codes; throttling, credentials, 5xx and
/// transport failures are the same for every service.
pub(crate) fn classify<E>(
    service: &str,
    operation: &'static str,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
    code_kind: fn(&str) -> Option<FailureKind>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let request_id = err.request_id().map(str::to_string);
    let unreachable =
        |err: &dyn std::error::Error| format!("cannot reach {service}: {}", root_cause(err));
    let (kind, code, message) = match &err {
        SdkError::TimeoutError(_) => (
            FailureKind::Timeout,
            None,
            format!("no answer from {service} within the configured timeout"),
        ),
        SdkError::DispatchFailure(d) => {
            let chain = DisplayErrorContext(&err).to_string();
            if d.is_timeout() {
                (
                    FailureKind::Timeout,
                    None,
                    format!("no answer from {service} in time ({})", root_cause(&err)),
                )
            } else if !d.is_io() && chain.to_ascii_lowercase().contains("credential") {
                (FailureKind::Credentials, None, NO_CREDENTIALS.to_string())
            } else {
                (FailureKind::Unreachable, None, unreachable(&err))
            }
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().map(str::to_string);
            let message = s.err().message().unwrap_or("").to_string();
            let status = s.raw().status().as_u16();
            let kind = code
                .as_deref()
                .and_then(code_kind)
                .unwrap_or(match code.as_deref() {
                    Some("AccessDeniedException") => FailureKind::AccessDenied,
                    Some(
                        "UnrecognizedClientException"
                        | "InvalidSignatureException"
                        | "ExpiredTokenException",
                    ) => FailureKind::Credentials,
                    Some("ThrottlingException") => FailureKind::Throttled,
                    _ if status == 429 => FailureKind::Throttled,
                    _ if status >= 500 => FailureKind::ServiceUnavailable,
                    _ => FailureKind::Other,
                });
            let message = if message.is_empty() {
                format!("HTTP {status}")
            } else {
                message
            };
            (kind, code, message)
        }
        SdkError::ResponseError(r) => (
            if r.raw().status().as_u16() >= 500 {
                FailureKind::ServiceUnavailable
            } else {
                FailureKind::Other
            },
            None,
            format!(
                "unreadable {service} response (HTTP {})",
                r.raw().status().as_u16()
            ),
        ),
        _ => (FailureKind::Other, None, root_cause(&err)),
    };
    ProviderError {
        operation,
        kind,
        code,
        message,
        request_id,
    }
}

/// What an operator reads when kekd has no AWS credentials at all — said
/// once, with where credentials come from, instead of the SDK's attempt log.
const NO_CREDENTIALS: &str = "no AWS credentials found: give the host an instance role (IMDS), \
    or set AWS_PROFILE (with a config file the kekd user can read) or \
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in kekd's environment \
    (under systemd: a drop-in with Environment= or EnvironmentFile=)";

/// The innermost cause of an SDK error, in one line: what happened, not the
/// SDK's whole debug chain.
fn root_cause(err: &dyn std::error::Error) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let line = text.lines().next().unwrap_or_default();
    if line.len() > 300 {
        format!("{}…", &line[..line.floor_char_boundary(300)])
    } else {
        line.to_string()
    }
}
