//! Validation, section by section. Each section turns its raw serde struct
//! into typed settings and owns its defaults (read from `defaults.rs`), as
//! zincati's `with_config` does; `mod.rs` only puts the sections together.

use super::access;
use super::arn::{self, KmsKeyArn, ARN_FORMS};
use super::defaults;
use super::raw::{
    RawApi, RawCanary, RawConfig, RawKms, RawLog, RawMetrics, RawOverrides, RawProvider, RawRetry,
    RawStore, RawUnwrap,
};
use super::validate::{Validator, DURATION_FORMS};
use super::ConfigError;
use crate::domain::{is_context_value, KeyBits, KEY_PAIR_CONTEXT_KEY};
use crate::schedule::{Cadence, CADENCE_FORMS};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CONTEXT_VALUE_FORMS: &str = "1-128 characters of A-Z a-z 0-9 . _ -";

/// Which provider wraps the data keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProviderSettings {
    /// The customer's AWS KMS symmetric key.
    AwsKms {
        /// Alias or key ARN, parsed.
        key: KmsKeyArn,
        /// Keys (usually in other regions, or multi-Region replicas) that
        /// each also wrap every data key, so playback survives an outage of
        /// the primary's region.
        backups: Vec<KmsKeyArn>,
    },
    /// A local 256-bit root key file (development, tests).
    Local {
        /// Where the root key lives; created 0600 on first use.
        root_key_path: PathBuf,
    },
}

impl std::fmt::Display for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderSettings::AwsKms { key, backups } if backups.is_empty() => write!(f, "{key}"),
            ProviderSettings::AwsKms { key, backups } => {
                let b: Vec<String> = backups.iter().map(|k| k.to_string()).collect();
                write!(f, "{key} (backups: {})", b.join(", "))
            }
            ProviderSettings::Local { root_key_path } => {
                write!(f, "local root key {}", root_key_path.display())
            }
        }
    }
}

/// KMS client timeouts: the SDK has no operation timeout by default, so a hung
/// KMS would hang the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KmsTimeouts {
    /// TCP/TLS connect.
    pub(crate) connect: Duration,
    /// One HTTP attempt.
    pub(crate) attempt: Duration,
    /// The whole operation, retries included.
    pub(crate) operation: Duration,
}

/// Backoff after a failed rotation: capped exponential with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// The first delay's cap.
    pub(crate) initial_delay: Duration,
    /// No delay is longer than this.
    pub(crate) max_delay: Duration,
}

/// The in-memory cache of decrypted private keys behind `unwrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnwrapCache {
    /// How long a decrypted private key stays cached.
    pub(crate) ttl: Duration,
    /// How many may be cached; 0 disables the cache.
    pub(crate) max: usize,
}

/// The decryptability canary: how often, and how many key pairs besides
/// the active one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Canary {
    /// Time between checks; `None` = only on demand (`kekctl check`).
    pub(crate) interval: Option<Duration>,
    /// How many of the most recent retired key pairs to check as well.
    pub(crate) recent: usize,
}

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

/// The top-level identity fields: who kekd serves and where KMS lives.
pub(crate) struct Identity {
    pub(crate) organization_id: String,
    pub(crate) region: Option<String>,
    pub(crate) context_key: String,
}

impl Identity {
    pub(crate) fn with_config(raw: &RawConfig, v: &Validator) -> Result<Identity, ConfigError> {
        let organization_id = raw
            .organization_id
            .clone()
            .ok_or_else(|| v.invalid("organization_id", None, "missing", CONTEXT_VALUE_FORMS))?;
        if !is_context_value(&organization_id) {
            return Err(v.invalid(
                "organization_id",
                Some(&organization_id),
                "not a valid organization id",
                CONTEXT_VALUE_FORMS,
            ));
        }
        let region = match &raw.region {
            Some(r) if arn::is_region(r) => Some(r.clone()),
            Some(r) => {
                return Err(v.invalid(
                    "region",
                    Some(r),
                    "not an AWS region name",
                    "a region such as eu-west-1",
                ))
            }
            None => None,
        };
        let context_key = raw
            .encryption_context_key
            .clone()
            .unwrap_or_else(|| defaults::CONTEXT_KEY.into());
        if !is_context_value(&context_key) || context_key == KEY_PAIR_CONTEXT_KEY {
            return Err(v.invalid(
                "encryption_context_key",
                Some(&context_key),
                "not usable as an encryption-context key",
                &format!("{CONTEXT_VALUE_FORMS}, other than {KEY_PAIR_CONTEXT_KEY}"),
            ));
        }
        Ok(Identity {
            organization_id,
            region,
            context_key,
        })
    }
}

impl ProviderSettings {
    pub(crate) fn with_config(
        raw: Option<&RawProvider>,
        region: Option<&str>,
        v: &Validator,
    ) -> Result<ProviderSettings, ConfigError> {
        let raw = raw.ok_or_else(|| {
            v.invalid(
                "provider",
                None,
                "missing section [provider]",
                "type = \"aws-kms-symmetric\" or \"local\"",
            )
        })?;
        match raw.kind.as_deref() {
            Some("aws-kms-symmetric") => {
                if raw.root_key_path.is_some() {
                    return Err(v.invalid(
                        "provider.root_key_path",
                        raw.root_key_path.as_deref(),
                        "only valid with type = \"local\"",
                        "kms_key_arn for aws-kms-symmetric",
                    ));
                }
                let text = raw
                    .kms_key_arn
                    .as_deref()
                    .ok_or_else(|| v.invalid("provider.kms_key_arn", None, "missing", ARN_FORMS))?;
                let key: KmsKeyArn = text.parse().map_err(|why: String| {
                    v.invalid(
                        "provider.kms_key_arn",
                        Some(text),
                        &format!("malformed ARN: {why}"),
                        ARN_FORMS,
                    )
                })?;
                let home = region.ok_or_else(|| {
                    v.invalid(
                        "region",
                        None,
                        "missing (required with aws-kms-symmetric)",
                        "the KMS home region, e.g. eu-west-1",
                    )
                })?;
                if key.region != home {
                    return Err(v.invalid(
                        "provider.kms_key_arn",
                        Some(text),
                        &format!(
                            "the ARN's region {} is not the configured region {home}",
                            key.region
                        ),
                        "a key or alias ARN in the configured region",
                    ));
                }
                let mut backups = Vec::new();
                for (i, text) in raw.backup_kms_key_arns.iter().flatten().enumerate() {
                    let field = format!("provider.backup_kms_key_arns[{i}]");
                    let backup: KmsKeyArn = text.parse().map_err(|why: String| {
                        v.invalid(
                            &field,
                            Some(text),
                            &format!("malformed ARN: {why}"),
                            ARN_FORMS,
                        )
                    })?;
                    if backup == key || backups.contains(&backup) {
                        return Err(v.invalid(
                            &field,
                            Some(text),
                            "listed twice (or the primary key itself)",
                            "distinct KMS keys other than kms_key_arn",
                        ));
                    }
                    backups.push(backup);
                }
                Ok(ProviderSettings::AwsKms { key, backups })
            }
            Some("local") => {
                if raw.backup_kms_key_arns.is_some() {
                    return Err(v.invalid(
                        "provider.backup_kms_key_arns",
                        None,
                        "only valid with type = \"aws-kms-symmetric\"",
                        "absent for the local provider",
                    ));
                }
                if raw.kms_key_arn.is_some() {
                    return Err(v.invalid(
                        "provider.kms_key_arn",
                        raw.kms_key_arn.as_deref(),
                        "only valid with type = \"aws-kms-symmetric\"",
                        "root_key_path for local",
                    ));
                }
                let path = raw.root_key_path.as_deref().ok_or_else(|| {
                    v.invalid(
                        "provider.root_key_path",
                        None,
                        "missing",
                        "an absolute path to a 32-byte root key file",
                    )
                })?;
                // Relative to what? The daemon's working directory differs
                // between a shell, systemd and a reload.
                Ok(ProviderSettings::Local {
                    root_key_path: v.absolute_path("provider.root_key_path", Some(path), "")?,
                })
            }
            other => Err(v.invalid(
                "provider.type",
                other,
                if other.is_some() {
                    "unknown provider"
                } else {
                    "missing"
                },
                "aws-kms-symmetric, local",
            )),
        }
    }
}

pub(crate) fn key_bits(raw: Option<i64>, v: &Validator) -> Result<KeyBits, ConfigError> {
    let bits = raw.unwrap_or(i64::from(defaults::KEY_BITS));
    u32::try_from(bits)
        .ok()
        .and_then(|b| KeyBits::try_from(b).ok())
        .ok_or_else(|| {
            v.invalid(
                "key_bits",
                Some(&bits.to_string()),
                "unsupported RSA key size",
                "2048, 3072, 4096",
            )
        })
}

/// Explicit consent to values refused by default (`[overrides]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) allow_short_retention: bool,
    pub(crate) allow_frequent_rotation: bool,
}

impl Overrides {
    pub(crate) fn with_config(raw: Option<&RawOverrides>) -> Overrides {
        let raw = raw.cloned().unwrap_or_default();
        Overrides {
            allow_short_retention: raw.allow_short_retention.unwrap_or(false),
            allow_frequent_rotation: raw.allow_frequent_rotation.unwrap_or(false),
        }
    }
}

/// The cadence, checked to fire at all and not more often than
/// [`defaults::MIN_ROTATION_INTERVAL`] (unless overridden).
pub(crate) fn cadence(
    raw: Option<&str>,
    tz: chrono_tz::Tz,
    overrides: Overrides,
    v: &Validator,
    warnings: &mut Vec<String>,
) -> Result<Cadence, ConfigError> {
    let text = raw.unwrap_or(defaults::CADENCE);
    let cadence = text
        .parse::<Cadence>()
        .map_err(|why| v.invalid("cadence", Some(text), &why, CADENCE_FORMS))?;
    let min = defaults::MIN_ROTATION_INTERVAL;
    match cadence.shortest_gap(crate::time::now(), tz) {
        Err(_) => Err(v.invalid(
            "cadence",
            Some(text),
            "never fires (no date matches it)",
            "a pattern that matches real dates, or \"never\" for rotation on demand only",
        )),
        Ok(Some(gap)) if gap < min && !overrides.allow_frequent_rotation => Err(v.invalid(
            "cadence",
            Some(text),
            &format!(
                "fires every {}, more often than once every {}",
                humantime::format_duration(gap),
                humantime::format_duration(min)
            ),
            "a cadence of at least an hour between rotations, or [overrides] allow_frequent_rotation = true",
        )),
        Ok(Some(gap)) if gap < min => {
            warnings.push(format!(
                "cadence {text:?} rotates every {} ([overrides] allow_frequent_rotation): each rotation keeps a key pair for the retention period",
                humantime::format_duration(gap)
            ));
            Ok(cadence)
        }
        Ok(_) => Ok(cadence),
    }
}

/// `retention`, checked against [`defaults::MIN_RETENTION`] (unless
/// overridden).
pub(crate) fn retention(
    raw: Option<&str>,
    overrides: Overrides,
    v: &Validator,
    warnings: &mut Vec<String>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(retention) = v.duration("retention", raw, None)? else {
        return Ok(None);
    };
    let min = defaults::MIN_RETENTION;
    if retention < min {
        if !overrides.allow_short_retention {
            return Err(v.invalid(
                "retention",
                raw,
                &format!(
                    "shorter than {}: retired key pairs, and the ability to play back the recordings they sealed, would be deleted that soon",
                    humantime::format_duration(min)
                ),
                &format!("{DURATION_FORMS}, of at least 1 day; or [overrides] allow_short_retention = true"),
            ));
        }
        warnings.push(format!(
            "retention {} is shorter than {} ([overrides] allow_short_retention): recordings sealed with a key pair retired longer ago can no longer be played back",
            humantime::format_duration(retention),
            humantime::format_duration(min)
        ));
    }
    Ok(Some(retention))
}

/// The state directory: kekd makes it 0700 and keeps the only copies of the
/// encrypted private keys in it, so it must be a directory of its own — not
/// `/`, a top-level directory, a kernel file system, or a shared
/// world-writable directory such as `/tmp`.
pub(crate) fn state_dir(raw: Option<&str>, v: &Validator) -> Result<PathBuf, ConfigError> {
    let dir = v.absolute_path("state_dir", raw, defaults::STATE_DIR)?;
    const ALLOWED: &str = "a directory of kekd's own, e.g. /var/lib/kekd";
    let shown = dir.display().to_string();
    if dir.components().count() < 3 {
        return Err(v.invalid(
            "state_dir",
            Some(&shown),
            "is / or a top-level directory; kekd would make it private (mode 0700) to itself",
            ALLOWED,
        ));
    }
    if is_kernel_fs(&dir) {
        return Err(v.invalid(
            "state_dir",
            Some(&shown),
            "is on a kernel file system",
            ALLOWED,
        ));
    }
    if let Ok(meta) = std::fs::metadata(&dir) {
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_dir() {
            return Err(v.invalid(
                "state_dir",
                Some(&shown),
                "exists and is not a directory",
                ALLOWED,
            ));
        }
        if meta.permissions().mode() & 0o002 != 0 {
            return Err(v.invalid(
                "state_dir",
                Some(&shown),
                "is world-writable (shared, like /tmp); kekd would make it private (mode 0700) to itself",
                ALLOWED,
            ));
        }
    }
    Ok(dir)
}

/// The audit log: a regular file (never a device such as `/dev/null`, which
/// would silently discard the trail).
pub(crate) fn audit_log(
    raw: Option<&str>,
    state_dir: &Path,
    v: &Validator,
) -> Result<PathBuf, ConfigError> {
    let Some(text) = raw else {
        return Ok(state_dir.join(defaults::AUDIT_FILE));
    };
    let path = v.absolute_path("audit_log", Some(text), "")?;
    const ALLOWED: &str = "an absolute path to a regular file (created if missing)";
    if is_kernel_fs(&path) {
        return Err(v.invalid(
            "audit_log",
            Some(text),
            "is a device or kernel file, not a file that keeps records",
            ALLOWED,
        ));
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        if !meta.is_file() {
            return Err(v.invalid(
                "audit_log",
                Some(text),
                "exists and is not a regular file",
                ALLOWED,
            ));
        }
    }
    Ok(path)
}

fn is_kernel_fs(path: &Path) -> bool {
    ["/dev", "/proc", "/sys"]
        .iter()
        .any(|root| path.starts_with(root))
}

pub(crate) fn timezone(raw: Option<&str>, v: &Validator) -> Result<chrono_tz::Tz, ConfigError> {
    let text = raw.unwrap_or(defaults::TIMEZONE);
    text.parse::<chrono_tz::Tz>().map_err(|_| {
        v.invalid(
            "timezone",
            Some(text),
            "unknown time zone",
            "an IANA time zone name such as UTC or Europe/Berlin",
        )
    })
}

impl Default for KmsTimeouts {
    fn default() -> Self {
        KmsTimeouts {
            connect: defaults::KMS_CONNECT_TIMEOUT,
            attempt: defaults::KMS_ATTEMPT_TIMEOUT,
            operation: defaults::KMS_OPERATION_TIMEOUT,
        }
    }
}

impl KmsTimeouts {
    pub(crate) fn with_config(raw: Option<&RawKms>, v: &Validator) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        let t = KmsTimeouts {
            connect: v.duration_or(
                "kms.connect_timeout",
                raw.connect_timeout.as_deref(),
                defaults::KMS_CONNECT_TIMEOUT,
            )?,
            attempt: v.duration_or(
                "kms.attempt_timeout",
                raw.attempt_timeout.as_deref(),
                defaults::KMS_ATTEMPT_TIMEOUT,
            )?,
            operation: v.duration_or(
                "kms.operation_timeout",
                raw.operation_timeout.as_deref(),
                defaults::KMS_OPERATION_TIMEOUT,
            )?,
        };
        if t.attempt > t.operation {
            return Err(v.invalid(
                "kms.attempt_timeout",
                Some(&humantime::format_duration(t.attempt).to_string()),
                "longer than kms.operation_timeout",
                "an attempt timeout no longer than the operation timeout",
            ));
        }
        Ok(t)
    }
}

impl RetryPolicy {
    pub(crate) fn with_config(raw: Option<&RawRetry>, v: &Validator) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        let r = RetryPolicy {
            initial_delay: v.duration_or(
                "retry.initial_delay",
                raw.initial_delay.as_deref(),
                defaults::RETRY_INITIAL_DELAY,
            )?,
            max_delay: v.duration_or(
                "retry.max_delay",
                raw.max_delay.as_deref(),
                defaults::RETRY_MAX_DELAY,
            )?,
        };
        if r.initial_delay > r.max_delay {
            return Err(v.invalid(
                "retry.initial_delay",
                Some(&humantime::format_duration(r.initial_delay).to_string()),
                "longer than retry.max_delay",
                "an initial delay no longer than the maximum delay",
            ));
        }
        Ok(r)
    }
}

impl UnwrapCache {
    pub(crate) fn with_config(raw: Option<&RawUnwrap>, v: &Validator) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        Ok(UnwrapCache {
            ttl: v.duration_or(
                "unwrap.cache_ttl",
                raw.cache_ttl.as_deref(),
                defaults::UNWRAP_CACHE_TTL,
            )?,
            max: v.count(
                "unwrap.cache_max",
                raw.cache_max,
                0..=10_000,
                defaults::UNWRAP_CACHE_MAX,
                "0 (no cache) to 10000",
            )?,
        })
    }
}

impl Canary {
    pub(crate) fn with_config(raw: Option<&RawCanary>, v: &Validator) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        Ok(Canary {
            interval: match raw.interval.as_deref() {
                Some("off") => None,
                other => v.duration("canary.interval", other, Some(defaults::CANARY_INTERVAL))?,
            },
            recent: v.count(
                "canary.recent",
                raw.recent,
                0..=1000,
                defaults::CANARY_RECENT,
                "0 to 1000",
            )?,
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
    raw: Option<&super::raw::RawAccess>,
    v: &Validator,
) -> Result<access::Access, ConfigError> {
    access::resolve(raw).map_err(|u| {
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

/// `[store]`: where the key history lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSettings {
    /// One redb file in the state directory (one host).
    Redb,
    /// One DynamoDB table shared by a fleet of instances.
    DynamoDb(FleetStore),
}

/// A DynamoDB store shared by several instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FleetStore {
    /// The table (it may hold several organizations).
    pub(crate) table: String,
    /// Its region.
    pub(crate) region: String,
    /// How often the fleet's active key pair is re-read.
    pub(crate) refresh_interval: Duration,
    /// How long a rotation lease lasts unless renewed.
    pub(crate) lease_duration: Duration,
}

impl FleetStore {
    /// `table` in `region` with the default refresh and lease (one-off
    /// commands, tools).
    pub(crate) fn with_defaults(table: &str, region: &str) -> FleetStore {
        FleetStore {
            table: table.to_string(),
            region: region.to_string(),
            refresh_interval: defaults::STORE_REFRESH_INTERVAL,
            lease_duration: defaults::STORE_LEASE_DURATION,
        }
    }
}

const TABLE_FORMS: &str = "3-255 characters of A-Z a-z 0-9 _ . -";

/// Whether `name` is a DynamoDB table name.
pub fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl StoreSettings {
    pub(crate) fn with_config(
        raw: Option<&RawStore>,
        top_region: Option<&str>,
        v: &Validator,
    ) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        match raw.kind.as_deref().unwrap_or("redb") {
            "redb" => {
                for (field, value) in [
                    ("store.table", &raw.table),
                    ("store.region", &raw.region),
                    ("store.refresh_interval", &raw.refresh_interval),
                    ("store.lease_duration", &raw.lease_duration),
                ] {
                    if value.is_some() {
                        return Err(v.invalid(
                            field,
                            value.as_deref(),
                            "only for store type \"dynamodb\"",
                            "absent with type \"redb\"",
                        ));
                    }
                }
                Ok(StoreSettings::Redb)
            }
            "dynamodb" => {
                let table = raw
                    .table
                    .clone()
                    .ok_or_else(|| v.invalid("store.table", None, "missing", TABLE_FORMS))?;
                if !is_table_name(&table) {
                    return Err(v.invalid(
                        "store.table",
                        Some(&table),
                        "not a DynamoDB table name",
                        TABLE_FORMS,
                    ));
                }
                let region = match (raw.region.as_deref(), top_region) {
                    (Some(r), _) if arn::is_region(r) => r.to_string(),
                    (Some(r), _) => {
                        return Err(v.invalid(
                            "store.region",
                            Some(r),
                            "not an AWS region name",
                            "a region such as eu-west-1",
                        ))
                    }
                    (None, Some(r)) => r.to_string(),
                    (None, None) => {
                        return Err(v.invalid(
                            "store.region",
                            None,
                            "missing (and no top-level region to default to)",
                            "a region such as eu-west-1",
                        ))
                    }
                };
                let bounded = |field: &str, value: Option<&str>, default, min, max, allowed| {
                    let d = v.duration_or(field, value, default)?;
                    if d < min || d > max {
                        return Err(v.invalid(field, value, "out of range", allowed));
                    }
                    Ok(d)
                };
                let refresh_interval = bounded(
                    "store.refresh_interval",
                    raw.refresh_interval.as_deref(),
                    defaults::STORE_REFRESH_INTERVAL,
                    Duration::from_millis(100),
                    Duration::from_secs(600),
                    "100ms to 10m",
                )?;
                let lease_duration = bounded(
                    "store.lease_duration",
                    raw.lease_duration.as_deref(),
                    defaults::STORE_LEASE_DURATION,
                    Duration::from_secs(1),
                    Duration::from_secs(600),
                    "1s to 10m",
                )?;
                Ok(StoreSettings::DynamoDb(FleetStore {
                    table,
                    region,
                    refresh_interval,
                    lease_duration,
                }))
            }
            other => Err(v.invalid(
                "store.type",
                Some(other),
                "unknown store type",
                "\"redb\" (one host, the default) or \"dynamodb\" (a fleet)",
            )),
        }
    }
}

impl std::fmt::Display for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSettings::Redb => write!(f, "redb (this host)"),
            StoreSettings::DynamoDb(d) => write!(
                f,
                "dynamodb table {} in {} (refresh every {}, lease {})",
                d.table,
                d.region,
                humantime::format_duration(d.refresh_interval),
                humantime::format_duration(d.lease_duration)
            ),
        }
    }
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
