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
pub struct RawConfig {
    pub organization_id: Option<String>,
    pub region: Option<String>,
    pub key_bits: Option<i64>,
    pub cadence: Option<String>,
    pub timezone: Option<String>,
    pub state_dir: Option<String>,
    pub socket_path: Option<String>,
    pub retention: Option<String>,
    pub encryption_context_key: Option<String>,
    pub provider: Option<RawProvider>,
    pub kms: Option<RawKms>,
    pub retry: Option<RawRetry>,
    pub max_key_age_warning: Option<String>,
    pub audit_log: Option<String>,
    pub unwrap: Option<RawUnwrap>,
    pub canary: Option<RawCanary>,
    pub log: Option<RawLog>,
    pub access: Option<RawAccess>,
}

/// `[provider]`: which key provider wraps the data keys.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub kms_key_arn: Option<String>,
    pub root_key_path: Option<String>,
}

/// `[kms]`: client timeouts.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKms {
    pub connect_timeout: Option<String>,
    pub attempt_timeout: Option<String>,
    pub operation_timeout: Option<String>,
}

/// `[retry]`: backoff after a failed rotation.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub initial_delay: Option<String>,
    pub max_delay: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// `[access]`: who may do what over the socket.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub socket_group: Option<String>,
    pub view: Option<RawGrant>,
    pub edit: Option<RawGrant>,
    pub decrypt: Option<RawGrant>,
}

/// `[access.<role>]`: user and group names granted the role.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    pub users: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
}

/// `[canary]`: the periodic decryptability check.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    pub interval: Option<String>,
    pub recent: Option<i64>,
}

/// `[unwrap]`: the in-memory cache of decrypted private keys.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnwrap {
    pub cache_ttl: Option<String>,
    pub cache_max: Option<i64>,
}
