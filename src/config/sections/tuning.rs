//! KMS timeouts, the retry backoff, the unwrap cache and the canary: how
//! kekd paces its work.

use crate::config::defaults;
use crate::config::raw::{RawCanary, RawKms, RawRetry, RawUnwrap};
use crate::config::validate::Validator;
use crate::config::ConfigError;
use std::time::Duration;

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

/// The KMS request budget, shared by every organization of the daemon:
/// AWS throttles the calling account, so all customers' keys draw on the
/// platform's one regional quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KmsBudget {
    /// Cryptographic requests (GenerateDataKey, Decrypt, Encrypt,
    /// ReEncrypt) per second.
    pub(crate) requests_per_second: usize,
    /// DescribeKey requests per second.
    pub(crate) describe_key_per_second: usize,
}

impl Default for KmsBudget {
    fn default() -> Self {
        KmsBudget {
            requests_per_second: defaults::KMS_MAX_REQUESTS_PER_SECOND,
            describe_key_per_second: defaults::KMS_MAX_DESCRIBE_KEY_PER_SECOND,
        }
    }
}

impl KmsBudget {
    pub(crate) fn with_config(raw: Option<&RawKms>, v: &Validator) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        Ok(KmsBudget {
            requests_per_second: v.count(
                "kms.max_requests_per_second",
                raw.max_requests_per_second,
                1..=100_000,
                defaults::KMS_MAX_REQUESTS_PER_SECOND,
                "1 to 100000 (requests per second, every organization together)",
            )?,
            describe_key_per_second: v.count(
                "kms.max_describe_key_per_second",
                raw.max_describe_key_per_second,
                1..=10_000,
                defaults::KMS_MAX_DESCRIBE_KEY_PER_SECOND,
                "1 to 10000 (DescribeKey requests per second, every organization together)",
            )?,
        })
    }
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
        if r.initial_delay < defaults::MIN_RETRY_DELAY {
            return Err(v.invalid(
                "retry.initial_delay",
                raw.initial_delay.as_deref(),
                "shorter than 100ms (a tighter retry loop only hammers KMS)",
                "a duration of at least 100ms",
            ));
        }
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
    pub(crate) fn with_config(
        raw: Option<&RawCanary>,
        overrides: crate::config::sections::Overrides,
        v: &Validator,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let raw = raw.cloned().unwrap_or_default();
        let interval = match raw.interval.as_deref() {
            Some("off") => None,
            other => v.duration("canary.interval", other, Some(defaults::CANARY_INTERVAL))?,
        };
        if let Some(d) = interval.filter(|d| *d < defaults::MIN_CANARY_INTERVAL) {
            if !overrides.allow_frequent_checks {
                return Err(v.invalid(
                    "canary.interval",
                    raw.interval.as_deref(),
                    &format!(
                        "shorter than {} (each check decrypts key pairs through KMS and writes audit records)",
                        humantime::format_duration(defaults::MIN_CANARY_INTERVAL)
                    ),
                    "\"off\", a duration of at least 1m, or set [overrides] allow_frequent_checks = true",
                ));
            }
            warnings.push(format!(
                "canary.interval is {} (allowed by [overrides] allow_frequent_checks)",
                humantime::format_duration(d)
            ));
        }
        Ok(Canary {
            interval,
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
