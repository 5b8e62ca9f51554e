//! Configuration: the TOML file ([`raw`]) validated into typed [`Settings`].
//!
//! Two layers, as in zincati: serde reads what is written (nothing is
//! assumed), then [`Settings::from_raw`] applies defaults and checks every
//! value. Each error names the file, the field, the value and what is allowed,
//! because the person reading it is an operator at a terminal.

pub mod access;
pub mod arn;
pub mod raw;

use crate::schedule::{Cadence, CADENCE_FORMS};
use arn::{KmsKeyArn, ARN_FORMS};
use raw::RawConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not TOML, or an unknown field, or a value of the wrong type.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// serde/toml's message (names the field and the line).
        message: String,
    },
    /// A field is missing or its value is not allowed.
    #[error("{file}: field `{field}`: {problem}{}; allowed: {allowed}", value.as_ref().map(|v| format!(" (value: {v:?})")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: String,
        /// Dotted field name, e.g. `provider.kms_key_arn`.
        field: String,
        /// The offending value, if there is one.
        value: Option<String>,
        /// What is wrong.
        problem: String,
        /// What would be accepted.
        allowed: String,
    },
}

/// RSA modulus sizes kekd generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum KeyBits {
    /// RSA-2048.
    Rsa2048,
    /// RSA-3072 (default).
    Rsa3072,
    /// RSA-4096.
    Rsa4096,
}

impl KeyBits {
    /// The modulus size in bits.
    pub fn bits(self) -> u32 {
        match self {
            KeyBits::Rsa2048 => 2048,
            KeyBits::Rsa3072 => 3072,
            KeyBits::Rsa4096 => 4096,
        }
    }
}

impl TryFrom<u32> for KeyBits {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        match v {
            2048 => Ok(KeyBits::Rsa2048),
            3072 => Ok(KeyBits::Rsa3072),
            4096 => Ok(KeyBits::Rsa4096),
            other => Err(format!("unsupported RSA key size {other}")),
        }
    }
}

impl From<KeyBits> for u32 {
    fn from(k: KeyBits) -> u32 {
        k.bits()
    }
}

/// Which provider wraps the data keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSettings {
    /// The customer's AWS KMS symmetric key.
    AwsKms {
        /// Alias or key ARN, parsed.
        key: KmsKeyArn,
    },
    /// A local 256-bit root key file (development, tests).
    Local {
        /// Where the root key lives; created 0600 on first use.
        root_key_path: PathBuf,
    },
}

/// KMS client timeouts: the SDK has no operation timeout by default, so a hung
/// KMS would hang the caller (DESIGN.md, "Dependencies").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmsTimeouts {
    /// TCP/TLS connect.
    pub connect: Duration,
    /// One HTTP attempt.
    pub attempt: Duration,
    /// The whole operation, retries included.
    pub operation: Duration,
}

/// Backoff after a failed rotation: capped exponential with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The first delay's cap.
    pub initial_delay: Duration,
    /// No delay is longer than this.
    pub max_delay: Duration,
}

/// The decryptability canary: how often, and how many key pairs besides
/// the active one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canary {
    /// Time between checks; `None` = only on demand (`kekctl check`).
    pub interval: Option<Duration>,
    /// How many of the most recent retired key pairs to check as well.
    pub recent: usize,
}

/// Log output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human lines; without timestamps under journald, which adds its own.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Validated, typed settings: everything the daemon needs, nothing unchecked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bound into every encryption context.
    pub organization_id: String,
    /// The KMS home region (required for `aws-kms-symmetric`).
    pub region: Option<String>,
    /// Key provider.
    pub provider: ProviderSettings,
    /// RSA size of new key pairs.
    pub key_bits: KeyBits,
    /// Rotation cadence.
    pub cadence: Cadence,
    /// Time zone the cadence is evaluated in.
    pub timezone: chrono_tz::Tz,
    /// Where the store lives.
    pub state_dir: PathBuf,
    /// The API socket.
    pub socket_path: PathBuf,
    /// Keep retired key pairs at least this long; `None` = keep forever.
    pub retention: Option<Duration>,
    /// The encryption-context key that carries the organization id.
    pub context_key: String,
    /// KMS client timeouts.
    pub kms_timeouts: KmsTimeouts,
    /// Retry backoff.
    pub retry: RetryPolicy,
    /// How long a decrypted private key stays cached for `unwrap`.
    pub unwrap_cache_ttl: Duration,
    /// How many decrypted private keys may be cached; 0 disables the cache.
    pub unwrap_cache_max: usize,
    /// The audit trail (JSON lines, hash-chained).
    pub audit_path: PathBuf,
    /// Warn (status, metric, log) when the active key pair is older.
    pub max_key_age_warning: Option<Duration>,
    /// The decryptability canary.
    pub canary: Canary,
    /// Log level filter (tracing `EnvFilter` syntax); `RUST_LOG` wins.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Who may do what over the socket.
    pub access: access::Access,
}

/// Default socket path under systemd's `RuntimeDirectory=kekd`.
pub const DEFAULT_SOCKET: &str = "/run/kekd/kekd.sock";
/// Default state directory (systemd `StateDirectory=kekd`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/kekd";

impl Settings {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Settings, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        Self::from_raw(raw, file)
    }

    /// The `--dev` settings: local provider, state and socket under `state_dir`.
    pub fn dev(state_dir: &Path) -> Settings {
        Settings {
            organization_id: "dev".into(),
            region: None,
            provider: ProviderSettings::Local {
                root_key_path: state_dir.join("root.key"),
            },
            key_bits: KeyBits::Rsa3072,
            cadence: Cadence::Daily,
            timezone: chrono_tz::UTC,
            state_dir: state_dir.to_path_buf(),
            socket_path: state_dir.join("kekd.sock"),
            retention: None,
            context_key: "organization-id".into(),
            kms_timeouts: default_timeouts(),
            retry: default_retry(),
            max_key_age_warning: None,
            audit_path: state_dir.join("audit.jsonl"),
            unwrap_cache_ttl: Duration::from_secs(300),
            unwrap_cache_max: 16,
            canary: Canary {
                interval: Some(Duration::from_secs(3600)),
                recent: 3,
            },
            log_level: "info".into(),
            log_format: LogFormat::Plain,
            access: access::Access::default(),
        }
    }

    /// Validates the raw layer into settings.
    pub fn from_raw(raw: RawConfig, file: &str) -> Result<Settings, ConfigError> {
        let invalid =
            |field: &str, value: Option<&str>, problem: &str, allowed: &str| ConfigError::Invalid {
                file: file.to_string(),
                field: field.to_string(),
                value: value.map(str::to_string),
                problem: problem.to_string(),
                allowed: allowed.to_string(),
            };

        let organization_id = raw.organization_id.ok_or_else(|| {
            invalid(
                "organization_id",
                None,
                "missing",
                "1-128 characters of A-Z a-z 0-9 . _ -",
            )
        })?;
        if !is_context_value(&organization_id) {
            return Err(invalid(
                "organization_id",
                Some(&organization_id),
                "not a valid organization id",
                "1-128 characters of A-Z a-z 0-9 . _ -",
            ));
        }

        let region = match raw.region {
            Some(r) if arn::is_region(&r) => Some(r),
            Some(r) => {
                return Err(invalid(
                    "region",
                    Some(&r),
                    "not an AWS region name",
                    "a region such as eu-west-1",
                ))
            }
            None => None,
        };

        let raw_provider = raw.provider.ok_or_else(|| {
            invalid(
                "provider",
                None,
                "missing section [provider]",
                "type = \"aws-kms-symmetric\" or \"local\"",
            )
        })?;
        let provider = match raw_provider.kind.as_deref() {
            Some("aws-kms-symmetric") => {
                if raw_provider.root_key_path.is_some() {
                    return Err(invalid(
                        "provider.root_key_path",
                        raw_provider.root_key_path.as_deref(),
                        "only valid with type = \"local\"",
                        "kms_key_arn for aws-kms-symmetric",
                    ));
                }
                let text = raw_provider
                    .kms_key_arn
                    .ok_or_else(|| invalid("provider.kms_key_arn", None, "missing", ARN_FORMS))?;
                let key: KmsKeyArn = text.parse().map_err(|why: String| {
                    invalid(
                        "provider.kms_key_arn",
                        Some(&text),
                        &format!("malformed ARN: {why}"),
                        ARN_FORMS,
                    )
                })?;
                let home = region.as_deref().ok_or_else(|| {
                    invalid(
                        "region",
                        None,
                        "missing (required with aws-kms-symmetric)",
                        "the KMS home region, e.g. eu-west-1",
                    )
                })?;
                if key.region != home {
                    return Err(invalid(
                        "provider.kms_key_arn",
                        Some(&text),
                        &format!(
                            "the ARN's region {} is not the configured region {home}",
                            key.region
                        ),
                        "a key or alias ARN in the configured region",
                    ));
                }
                ProviderSettings::AwsKms { key }
            }
            Some("local") => {
                if raw_provider.kms_key_arn.is_some() {
                    return Err(invalid(
                        "provider.kms_key_arn",
                        raw_provider.kms_key_arn.as_deref(),
                        "only valid with type = \"aws-kms-symmetric\"",
                        "root_key_path for local",
                    ));
                }
                let path = raw_provider.root_key_path.ok_or_else(|| {
                    invalid(
                        "provider.root_key_path",
                        None,
                        "missing",
                        "a path to a 32-byte root key file",
                    )
                })?;
                ProviderSettings::Local {
                    root_key_path: PathBuf::from(path),
                }
            }
            other => {
                return Err(invalid(
                    "provider.type",
                    other,
                    if other.is_some() {
                        "unknown provider"
                    } else {
                        "missing"
                    },
                    "aws-kms-symmetric, local",
                ))
            }
        };

        let key_bits = match raw.key_bits {
            None => KeyBits::Rsa3072,
            Some(b) => u32::try_from(b)
                .ok()
                .and_then(|b| KeyBits::try_from(b).ok())
                .ok_or_else(|| {
                    invalid(
                        "key_bits",
                        Some(&b.to_string()),
                        "unsupported RSA key size",
                        "2048, 3072, 4096",
                    )
                })?,
        };

        let cadence = match raw.cadence {
            None => Cadence::Monthly,
            Some(c) => c
                .parse::<Cadence>()
                .map_err(|why| invalid("cadence", Some(&c), &why, CADENCE_FORMS))?,
        };

        let timezone = match raw.timezone {
            None => chrono_tz::UTC,
            Some(z) => z.parse::<chrono_tz::Tz>().map_err(|_| {
                invalid(
                    "timezone",
                    Some(&z),
                    "unknown time zone",
                    "an IANA time zone name such as UTC or Europe/Berlin",
                )
            })?,
        };

        let path_field =
            |field: &str, v: Option<String>, default: &str| -> Result<PathBuf, ConfigError> {
                let v = v.unwrap_or_else(|| default.to_string());
                if !v.starts_with('/') {
                    return Err(invalid(
                        field,
                        Some(&v),
                        "not an absolute path",
                        "an absolute path",
                    ));
                }
                Ok(PathBuf::from(v))
            };
        let state_dir = path_field("state_dir", raw.state_dir, DEFAULT_STATE_DIR)?;
        let socket_path = path_field("socket_path", raw.socket_path, DEFAULT_SOCKET)?;

        let duration = |field: &str,
                        v: Option<String>,
                        default: Option<Duration>|
         -> Result<Option<Duration>, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => match humantime::parse_duration(&s) {
                    Ok(d) if !d.is_zero() => Ok(Some(d)),
                    _ => Err(invalid(
                        field,
                        Some(&s),
                        "not a positive duration",
                        "a duration such as 30s, 10m, 400d, 7y",
                    )),
                },
            }
        };
        let retention = duration("retention", raw.retention, None)?;

        let context_key = raw
            .encryption_context_key
            .unwrap_or_else(|| "organization-id".into());
        if !is_context_value(&context_key) || context_key == crate::envelope::KEY_PAIR_CONTEXT_KEY {
            return Err(invalid(
                "encryption_context_key",
                Some(&context_key),
                "not usable as an encryption-context key",
                "1-128 characters of A-Z a-z 0-9 . _ -, other than key-pair-id",
            ));
        }

        let kms = raw.kms.unwrap_or_default();
        let d = default_timeouts();
        let kms_timeouts = KmsTimeouts {
            connect: duration("kms.connect_timeout", kms.connect_timeout, Some(d.connect))?
                .unwrap_or(d.connect),
            attempt: duration("kms.attempt_timeout", kms.attempt_timeout, Some(d.attempt))?
                .unwrap_or(d.attempt),
            operation: duration(
                "kms.operation_timeout",
                kms.operation_timeout,
                Some(d.operation),
            )?
            .unwrap_or(d.operation),
        };
        if kms_timeouts.attempt > kms_timeouts.operation {
            return Err(invalid(
                "kms.attempt_timeout",
                Some(&humantime::format_duration(kms_timeouts.attempt).to_string()),
                "longer than kms.operation_timeout",
                "an attempt timeout no longer than the operation timeout",
            ));
        }

        let retry = raw.retry.unwrap_or_default();
        let r = default_retry();
        let retry = RetryPolicy {
            initial_delay: duration(
                "retry.initial_delay",
                retry.initial_delay,
                Some(r.initial_delay),
            )?
            .unwrap_or(r.initial_delay),
            max_delay: duration("retry.max_delay", retry.max_delay, Some(r.max_delay))?
                .unwrap_or(r.max_delay),
        };
        if retry.initial_delay > retry.max_delay {
            return Err(invalid(
                "retry.initial_delay",
                Some(&humantime::format_duration(retry.initial_delay).to_string()),
                "longer than retry.max_delay",
                "an initial delay no longer than the maximum delay",
            ));
        }

        let audit_path = match raw.audit_log {
            None => state_dir.join("audit.jsonl"),
            Some(p) if p.starts_with('/') => PathBuf::from(p),
            Some(p) => {
                return Err(invalid(
                    "audit_log",
                    Some(&p),
                    "not an absolute path",
                    "an absolute path",
                ))
            }
        };
        let raw_unwrap = raw.unwrap.unwrap_or_default();
        let unwrap_cache_ttl = duration(
            "unwrap.cache_ttl",
            raw_unwrap.cache_ttl,
            Some(Duration::from_secs(300)),
        )?
        .unwrap_or(Duration::from_secs(300));
        let unwrap_cache_max = match raw_unwrap.cache_max {
            None => 16,
            Some(n) if (0..=10_000).contains(&n) => n as usize,
            Some(n) => {
                return Err(invalid(
                    "unwrap.cache_max",
                    Some(&n.to_string()),
                    "out of range",
                    "0 (no cache) to 10000",
                ))
            }
        };
        let max_key_age_warning = duration("max_key_age_warning", raw.max_key_age_warning, None)?;
        let raw_canary = raw.canary.unwrap_or_default();
        let canary = Canary {
            interval: match raw_canary.interval.as_deref() {
                Some("off") => None,
                other => duration(
                    "canary.interval",
                    other.map(str::to_string),
                    Some(Duration::from_secs(3600)),
                )?,
            },
            recent: match raw_canary.recent {
                None => 3,
                Some(n) if (0..=1000).contains(&n) => n as usize,
                Some(n) => {
                    return Err(invalid(
                        "canary.recent",
                        Some(&n.to_string()),
                        "out of range",
                        "0 to 1000",
                    ))
                }
            },
        };

        let log = raw.log.unwrap_or_default();
        let log_level = log.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log.level",
                Some(&log_level),
                "not a log filter",
                "error, warn, info, debug, trace, or a filter like kekd=debug",
            ));
        }
        let log_format = match log.format.as_deref() {
            None | Some("plain") => LogFormat::Plain,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log.format",
                    Some(other),
                    "unknown log format",
                    "plain, json",
                ))
            }
        };

        let access = access::resolve(raw.access).map_err(|u| {
            invalid(
                &u.field,
                Some(&u.value),
                &format!("no such {} on this system", u.kind),
                &format!(
                    "an existing {} name (see getent {})",
                    u.kind,
                    if u.kind == "user" { "passwd" } else { "group" }
                ),
            )
        })?;

        Ok(Settings {
            organization_id,
            region,
            provider,
            key_bits,
            cadence,
            timezone,
            state_dir,
            socket_path,
            retention,
            context_key,
            kms_timeouts,
            retry,
            max_key_age_warning,
            audit_path,
            unwrap_cache_ttl,
            unwrap_cache_max,
            canary,
            log_level,
            log_format,
            access,
        })
    }

    /// When the cadence next comes due after `after` (`None` for `never`).
    pub fn next_rotation_after(
        &self,
        after: crate::time::Timestamp,
    ) -> Option<crate::time::Timestamp> {
        self.cadence.next_after(after, self.timezone)
    }

    /// Path of the redb store inside the state directory.
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("kekd.redb")
    }
}

fn default_timeouts() -> KmsTimeouts {
    KmsTimeouts {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(5),
        operation: Duration::from_secs(15),
    }
}

fn default_retry() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(300),
    }
}

/// Encryption-context keys and values kekd writes: short, printable, and
/// unambiguous in logs and key policies.
fn is_context_value(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
organization_id = "acme"
region = "eu-west-1"
[provider]
type = "aws-kms-symmetric"
kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:alias/kekd"
"#;

    fn err(text: &str) -> String {
        Settings::parse(text, "/etc/kekd/kekd.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn good_file_gets_defaults() {
        let s = Settings::parse(GOOD, "f.toml").unwrap();
        assert_eq!(s.key_bits, KeyBits::Rsa3072);
        assert_eq!(s.cadence.to_string(), "monthly");
        assert_eq!(s.timezone, chrono_tz::UTC);
        assert_eq!(s.context_key, "organization-id");
        assert_eq!(s.socket_path, PathBuf::from(DEFAULT_SOCKET));
        assert!(s.retention.is_none(), "nothing is pruned by default");
    }

    #[test]
    fn malformed_arn_names_file_field_and_value() {
        let e = err(&GOOD.replace("alias/kekd", "alias"));
        assert!(
            e.starts_with("/etc/kekd/kekd.toml: field `provider.kms_key_arn`"),
            "{e}"
        );
        assert!(e.contains("malformed ARN"), "{e}");
        assert!(
            e.contains("arn:aws:kms:eu-west-1:123456789012:alias"),
            "{e}"
        );
        assert!(e.contains("allowed: arn:aws:kms:{region}"), "{e}");
    }

    #[test]
    fn arn_region_must_match_region() {
        let e = err(&GOOD.replace("region = \"eu-west-1\"", "region = \"us-east-1\""));
        assert!(e.contains("provider.kms_key_arn"), "{e}");
        assert!(
            e.contains("region eu-west-1 is not the configured region us-east-1"),
            "{e}"
        );
    }

    #[test]
    fn unknown_cadence_is_named() {
        let e = err(&format!("cadence = \"fortnightly\"\n{GOOD}"));
        assert!(
            e.contains("field `cadence`") && e.contains("\"fortnightly\""),
            "{e}"
        );
        assert!(e.contains("daily, weekly, monthly, yearly, never"), "{e}");
    }

    #[test]
    fn unsupported_key_size_is_named() {
        let e = err(&format!("key_bits = 1024\n{GOOD}"));
        assert!(
            e.contains("field `key_bits`") && e.contains("\"1024\""),
            "{e}"
        );
        assert!(e.contains("2048, 3072, 4096"), "{e}");
    }

    #[test]
    fn unknown_field_is_named_with_file() {
        let e = err(&format!("key_size = 3072\n{GOOD}"));
        assert!(e.starts_with("/etc/kekd/kekd.toml:"), "{e}");
        assert!(e.contains("unknown field `key_size`"), "{e}");
        let e = err(&GOOD.replace("[provider]", "[provider]\ncolor = 1"));
        assert!(e.contains("unknown field `color`"), "{e}");
    }

    #[test]
    fn access_names_must_exist() {
        let e = err(&format!(
            "{GOOD}\n[access.view]\nusers = [\"no-such-user-kekd\"]\n"
        ));
        assert!(e.contains("field `access.view.users`: no such user on this system (value: \"no-such-user-kekd\")"), "{e}");
        let e = err(&format!(
            "{GOOD}\n[access]\nsocket_group = \"no-such-group-kekd\"\n"
        ));
        assert!(
            e.contains("field `access.socket_group`: no such group"),
            "{e}"
        );
        let e = err(&format!("{GOOD}\n[access.admin]\nusers = [\"root\"]\n"));
        assert!(e.contains("unknown field `admin`"), "{e}");
        let s = Settings::parse(
            &format!("{GOOD}\n[access.edit]\nusers = [\"root\"]\ngroups = [\"root\"]\n"),
            "f",
        )
        .unwrap();
        assert!(s.access.edit.uids.contains(&0) && s.access.edit.gids.contains(&0));
    }

    #[test]
    fn shipped_example_configs_are_valid() {
        for f in ["config/kekd.toml", "config/kekd-local.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            Settings::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn other_checks() {
        assert!(err(&format!("timezone = \"Mars/Olympus\"\n{GOOD}")).contains("field `timezone`"));
        assert!(err(&format!("retention = \"forever\"\n{GOOD}")).contains("field `retention`"));
        assert!(err(&format!("state_dir = \"relative\"\n{GOOD}")).contains("absolute path"));
        assert!(err(&GOOD.replace("acme", "ac me")).contains("field `organization_id`"));
        assert!(err(&GOOD.replace("aws-kms-symmetric", "vault")).contains("unknown provider"));
        assert!(err("organization_id = \"a\"").contains("[provider]"));
        let local =
            "organization_id = \"a\"\n[provider]\ntype = \"local\"\nroot_key_path = \"/tmp/k\"\n";
        assert!(Settings::parse(local, "f").is_ok());
    }
}
