//! The configuration file as written: every field optional, unknown fields
//! refused. Defaults and checks live in `mod.rs`, so this layer stays a plain
//! mirror of the TOML.

// The fields mirror the TOML keys one to one; they are documented where an
// operator reads them: README "Configuration" and the commented config/*.toml.
#![allow(missing_docs)]

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) organization_id: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) key_bits: Option<i64>,
    pub(crate) key_type: Option<String>,
    pub(crate) cadence: Option<String>,
    pub(crate) timezone: Option<String>,
    pub(crate) state_dir: Option<String>,
    pub(crate) socket_path: Option<String>,
    pub(crate) retention: Option<String>,
    pub(crate) encryption_context_key: Option<String>,
    pub(crate) provider: Option<RawProvider>,
    pub(crate) kms: Option<RawKms>,
    pub(crate) retry: Option<RawRetry>,
    pub(crate) max_key_age_warning: Option<String>,
    pub(crate) announce_ahead: Option<String>,
    pub(crate) prepare_window: Option<String>,
    pub(crate) on_revocation: Option<String>,
    pub(crate) customer_keys: Option<RawCustomerKeys>,
    pub(crate) audit_log: Option<String>,
    pub(crate) unwrap: Option<RawUnwrap>,
    pub(crate) canary: Option<RawCanary>,
    pub(crate) log: Option<RawLog>,
    pub(crate) access: Option<RawAccess>,
    pub(crate) overrides: Option<RawOverrides>,
    pub(crate) api: Option<RawApi>,
    pub(crate) store: Option<RawStore>,
    pub(crate) metrics: Option<RawMetrics>,
}

/// `[provider]`: which key provider wraps the data keys.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) kms_key_arn: Option<String>,
    pub(crate) root_key_path: Option<String>,
    pub(crate) backup_kms_key_arns: Option<Vec<String>>,
    pub(crate) assume_role_arn: Option<String>,
    pub(crate) external_id: Option<String>,
}

/// `[kms]`: client timeouts and the request budget.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKms {
    pub(crate) connect_timeout: Option<String>,
    pub(crate) attempt_timeout: Option<String>,
    pub(crate) operation_timeout: Option<String>,
    pub(crate) max_requests_per_second: Option<i64>,
    pub(crate) max_describe_key_per_second: Option<i64>,
}

/// `[retry]`: backoff after a failed rotation.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) initial_delay: Option<String>,
    pub(crate) max_delay: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub(crate) level: Option<String>,
    pub(crate) format: Option<String>,
}

/// `[access]`: who may do what over the socket.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    pub(crate) socket_group: Option<String>,
    pub(crate) view: Option<RawGrant>,
    pub(crate) edit: Option<RawGrant>,
    pub(crate) decrypt: Option<RawGrant>,
    /// `[[access.grant]]`: a role for some organizations only.
    pub(crate) grant: Option<Vec<RawScopedGrant>>,
}

/// `[[access.grant]]`: `role` for `users` and `groups`, limited to
/// `organizations`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScopedGrant {
    pub(crate) role: Option<String>,
    pub(crate) users: Option<Vec<String>>,
    pub(crate) groups: Option<Vec<String>>,
    pub(crate) organizations: Option<Vec<String>>,
}

/// `[access.<role>]`: user and group names granted the role.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrant {
    pub(crate) users: Option<Vec<String>>,
    pub(crate) groups: Option<Vec<String>>,
}

/// `[canary]`: the periodic decryptability check.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCanary {
    pub(crate) interval: Option<String>,
    pub(crate) recent: Option<i64>,
}

/// `[customer_keys]`: the revocation bound and the isolation rule.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCustomerKeys {
    pub(crate) notice_revocation_within: Option<String>,
    pub(crate) require_isolation: Option<bool>,
    pub(crate) role_session: Option<String>,
}

/// `[unwrap]`: the in-memory cache of decrypted private keys.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUnwrap {
    pub(crate) cache_ttl: Option<String>,
    pub(crate) cache_max: Option<i64>,
}

/// `[overrides]`: explicit consent to values kekd refuses by default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverrides {
    pub(crate) allow_short_retention: Option<bool>,
    pub(crate) allow_frequent_rotation: Option<bool>,
    pub(crate) allow_frequent_checks: Option<bool>,
}

/// `[api]`: how the socket treats connections.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) header_timeout: Option<String>,
    pub(crate) max_connections: Option<i64>,
    pub(crate) max_connections_per_uid: Option<i64>,
}

/// `[store]`: where the key history lives.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) table: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) refresh_interval: Option<String>,
    pub(crate) lease_duration: Option<String>,
}

/// `[metrics]`: an optional TCP listener for Prometheus.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) listen: Option<String>,
    pub(crate) allow_remote: Option<bool>,
}
