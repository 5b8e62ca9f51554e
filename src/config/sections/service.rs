//! How kekd serves and reports: `[log]`, `[api]`, `[access]` and
//! `[metrics]`.

use crate::config::access;
use crate::config::defaults;
use crate::config::raw::{RawApi, RawLog, RawMetrics};
use crate::config::validate::Validator;
use crate::config::ConfigError;
use std::time::Duration;

/// Log output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human lines; without timestamps under journald, which adds its own.
    Plain,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Level filter (tracing `EnvFilter` syntax); `RUST_LOG` wins.
    pub level: String,
    /// Output shape.
    pub format: LogFormat,
}

/// `[api]`: how the socket treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSettings {
    /// A connection that has not sent a complete request head this long
    /// after connecting or after its previous response is closed.
    pub header_timeout: Duration,
    /// Connections held at once (kept below the descriptor limit too).
    pub max_connections: usize,
    /// Connections one uid may hold (root and kekd's uid are exempt).
    pub max_connections_per_uid: usize,
}

impl ApiSettings {
    pub(crate) fn with_config(raw: Option<&RawApi>, v: &Validator) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        let header_timeout = v.duration_or(
            "api.header_timeout",
            raw.header_timeout.as_deref(),
            defaults::API_HEADER_TIMEOUT,
        )?;
        if header_timeout < Duration::from_secs(1) || header_timeout > Duration::from_secs(600) {
            return Err(v.invalid(
                "api.header_timeout",
                raw.header_timeout.as_deref(),
                "out of range",
                "1s to 10m",
            ));
        }
        let max_connections = v.count(
            "api.max_connections",
            raw.max_connections,
            8..=65_536,
            defaults::API_MAX_CONNECTIONS,
            "8 to 65536",
        )?;
        let max_connections_per_uid = v.count(
            "api.max_connections_per_uid",
            raw.max_connections_per_uid,
            1..=max_connections as i64,
            defaults::API_MAX_CONNECTIONS_PER_UID.min(max_connections),
            "1 to api.max_connections",
        )?;
        Ok(ApiSettings {
            header_timeout,
            max_connections,
            max_connections_per_uid,
        })
    }
}

impl LogSettings {
    pub(crate) fn with_config(raw: Option<&RawLog>, v: &Validator) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        let level = raw.level.unwrap_or_else(|| defaults::LOG_LEVEL.into());
        if !is_log_filter(&level) || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(v.invalid(
                "log.level",
                Some(&level),
                "not a log filter",
                "error, warn, info, debug, trace, or a filter like kekd=debug",
            ));
        }
        let format = match raw.format.as_deref() {
            None | Some("plain") => LogFormat::Plain,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(v.invalid(
                    "log.format",
                    Some(other),
                    "unknown log format",
                    "plain, json",
                ))
            }
        };
        Ok(LogSettings { level, format })
    }
}

/// A level, or comma-separated `target=level` directives. A bare word that
/// is not a level (`verbose`) would be taken as a target name and silence
/// everything else, so it is refused.
fn is_log_filter(text: &str) -> bool {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |s: &str| LEVELS.contains(&s.trim().to_ascii_lowercase().as_str());
    !text.trim().is_empty()
        && text.split(',').all(|d| match d.split_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
            None => is_level(d),
        })
}

pub(crate) fn access(
    raw: Option<&crate::config::raw::RawAccess>,
    v: &Validator,
) -> Result<access::Access, ConfigError> {
    access::resolve(raw).map_err(|u| {
        if let Some((problem, allowed)) = u.invalid {
            return v.invalid(&u.field, Some(&u.value), problem, allowed);
        }
        v.invalid(
            &u.field,
            Some(&u.value),
            &format!("no such {} on this system", u.kind),
            &format!(
                "an existing {} name (see getent {})",
                u.kind,
                if u.kind == "user" { "passwd" } else { "group" }
            ),
        )
    })
}

/// `[metrics] listen`: where Prometheus scrapes `/metrics` over TCP (the
/// Unix socket it cannot reach). Off by default; loopback only unless
/// `allow_remote` says otherwise.
pub(crate) fn metrics_listen(
    raw: Option<&RawMetrics>,
    v: &Validator,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let Some(text) = raw.listen.as_deref() else {
        if raw.allow_remote.is_some() {
            return Err(v.invalid(
                "metrics.allow_remote",
                None,
                "only with metrics.listen",
                "absent without a listen address",
            ));
        }
        return Ok(None);
    };
    let addr: std::net::SocketAddr = text.parse().map_err(|_| {
        v.invalid(
            "metrics.listen",
            Some(text),
            "not an IP address and port",
            "an address such as 127.0.0.1:9464 or [::1]:9464",
        )
    })?;
    if !addr.ip().is_loopback() && !raw.allow_remote.unwrap_or(false) {
        return Err(v.invalid(
            "metrics.listen",
            Some(text),
            "not a loopback address",
            "127.0.0.1 or ::1, or set metrics.allow_remote = true to expose metrics beyond this host",
        ));
    }
    Ok(Some(addr))
}
