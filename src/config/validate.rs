//! The helpers every section's validation uses, so each error names the file,
//! the field, the value and what is allowed, in the same words.

use super::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

/// Validates fields of one file.
pub(crate) struct Validator<'a> {
    file: &'a str,
}

/// What durations may be written as, quoted in errors.
pub(crate) const DURATION_FORMS: &str =
    "a duration from 1ms to 100y such as 500ms, 30s, 10m, 12h, 400d, 7y (units ms, s, m, h, d, w, M, y)";

/// No configured duration is longer: beyond it timestamp arithmetic could
/// overflow, and no retention, timeout or interval needs more.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl<'a> Validator<'a> {
    pub(crate) fn new(file: &'a str) -> Validator<'a> {
        Validator { file }
    }

    /// The error for `field`.
    pub(crate) fn invalid(
        &self,
        field: &str,
        value: Option<&str>,
        problem: &str,
        allowed: &str,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            field: field.to_string(),
            value: value.map(str::to_string),
            problem: problem.to_string(),
            allowed: allowed.to_string(),
        }
    }

    /// A positive duration, or `default` when the field is absent.
    pub(crate) fn duration(
        &self,
        field: &str,
        value: Option<&str>,
        default: Option<Duration>,
    ) -> Result<Option<Duration>, ConfigError> {
        match value {
            None => Ok(default),
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if d > MAX_DURATION => {
                    Err(self.invalid(field, Some(s), "longer than 100 years", DURATION_FORMS))
                }
                Ok(d) if !d.is_zero() => Ok(Some(d)),
                Ok(_) => Err(self.invalid(field, Some(s), "must be positive", DURATION_FORMS)),
                Err(e) => Err(self.invalid(
                    field,
                    Some(s),
                    &format!("not a positive duration ({e})"),
                    DURATION_FORMS,
                )),
            },
        }
    }

    /// A duration that has a default.
    pub(crate) fn duration_or(
        &self,
        field: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        Ok(self
            .duration(field, value, Some(default))?
            .unwrap_or(default))
    }

    /// An absolute path, or `default` when the field is absent.
    pub(crate) fn absolute_path(
        &self,
        field: &str,
        value: Option<&str>,
        default: &str,
    ) -> Result<PathBuf, ConfigError> {
        let v = value.unwrap_or(default);
        if !v.starts_with('/') {
            return Err(self.invalid(field, Some(v), "not an absolute path", "an absolute path"));
        }
        Ok(PathBuf::from(v))
    }

    /// A count in `range`, or `default` when absent.
    pub(crate) fn count(
        &self,
        field: &str,
        value: Option<i64>,
        range: std::ops::RangeInclusive<i64>,
        default: usize,
        allowed: &str,
    ) -> Result<usize, ConfigError> {
        match value {
            None => Ok(default),
            Some(n) if range.contains(&n) => Ok(n as usize),
            Some(n) => Err(self.invalid(field, Some(&n.to_string()), "out of range", allowed)),
        }
    }
}
