//! How often kekd rotates and how long it keeps key pairs: the cadence,
//! the retention, and the `[overrides]` that allow values refused by
//! default.

use crate::config::defaults;
use crate::config::raw::RawOverrides;
use crate::config::validate::{Validator, DURATION_FORMS};
use crate::config::ConfigError;
use crate::schedule::{Cadence, CADENCE_FORMS};
use std::time::Duration;

/// Explicit consent to values refused by default (`[overrides]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) allow_short_retention: bool,
    pub(crate) allow_frequent_rotation: bool,
    pub(crate) allow_frequent_checks: bool,
}

impl Overrides {
    pub(crate) fn with_config(raw: Option<&RawOverrides>) -> Overrides {
        let raw = raw.cloned().unwrap_or_default();
        Overrides {
            allow_short_retention: raw.allow_short_retention.unwrap_or(false),
            allow_frequent_rotation: raw.allow_frequent_rotation.unwrap_or(false),
            allow_frequent_checks: raw.allow_frequent_checks.unwrap_or(false),
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
