//! Cadences and the next rotation instant.
//!
//! Every cadence is a cron pattern evaluated by croner in the configured time
//! zone, so calendar cadences stay on local midnight across DST changes.

use crate::time::Timestamp;
use chrono::SubsecRound;
use chrono_tz::Tz;
use croner::Cron;
use std::fmt;
use std::str::FromStr;

/// How often key pairs rotate on their own.
#[derive(Clone)]
pub enum Cadence {
    /// Every day at 00:00 local time.
    Daily,
    /// Mondays at 00:00.
    Weekly,
    /// The 1st of the month at 00:00.
    Monthly,
    /// 1 January at 00:00.
    Yearly,
    /// Only on demand (Change Key Now, API).
    Never,
    /// A cron expression (5 fields, or 6 with seconds).
    Cron(String, Box<Cron>),
}

/// The words accepted for `cadence`, quoted in errors.
pub const CADENCE_FORMS: &str =
    "daily, weekly, monthly, yearly, never, or a cron expression such as \"0 3 * * MON\"";

impl FromStr for Cadence {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "daily" => Cadence::Daily,
            "weekly" => Cadence::Weekly,
            "monthly" => Cadence::Monthly,
            "yearly" => Cadence::Yearly,
            "never" => Cadence::Never,
            expr if expr.split_whitespace().count() >= 5 => {
                let cron =
                    Cron::from_str(expr).map_err(|e| format!("invalid cron expression: {e}"))?;
                Cadence::Cron(expr.to_string(), Box::new(cron))
            }
            _ => return Err("not a known cadence".into()),
        })
    }
}

impl fmt::Display for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cadence::Daily => f.write_str("daily"),
            Cadence::Weekly => f.write_str("weekly"),
            Cadence::Monthly => f.write_str("monthly"),
            Cadence::Yearly => f.write_str("yearly"),
            Cadence::Never => f.write_str("never"),
            Cadence::Cron(s, _) => f.write_str(s),
        }
    }
}

impl fmt::Debug for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cadence({self})")
    }
}

impl Cadence {
    fn pattern(&self) -> Option<Cron> {
        let p = match self {
            Cadence::Daily => "0 0 * * *",
            Cadence::Weekly => "0 0 * * MON",
            Cadence::Monthly => "0 0 1 * *",
            Cadence::Yearly => "0 0 1 1 *",
            Cadence::Never => return None,
            Cadence::Cron(_, c) => return Some((**c).clone()),
        };
        Some(Cron::from_str(p).expect("built-in cadence patterns parse"))
    }

    /// The first rotation instant strictly after `after`, in time zone `tz`;
    /// `None` for `never` (or a pattern with no future match).
    pub fn next_after(&self, after: Timestamp, tz: Tz) -> Option<Timestamp> {
        let cron = self.pattern()?;
        // Whole seconds: croner keeps sub-second parts, and a rotation due
        // "at 00:00" should be due at 00:00:00.000.
        let after = after.trunc_subsecs(0);
        cron.find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn calendar_cadences_in_utc() {
        let t = utc("2026-11-23T10:00:00.371Z"); // a Monday
        let z = chrono_tz::UTC;
        assert_eq!(
            Cadence::Daily.next_after(t, z),
            Some(utc("2026-11-24T00:00:00Z"))
        );
        assert_eq!(
            Cadence::Weekly.next_after(t, z),
            Some(utc("2026-11-30T00:00:00Z"))
        );
        assert_eq!(
            Cadence::Monthly.next_after(t, z),
            Some(utc("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            Cadence::Yearly.next_after(t, z),
            Some(utc("2027-01-01T00:00:00Z"))
        );
        assert_eq!(Cadence::Never.next_after(t, z), None);
    }

    #[test]
    fn daily_follows_local_midnight_in_a_time_zone() {
        let tz = chrono_tz::America::New_York;
        let t = utc("2026-11-23T10:00:00Z");
        let next = Cadence::Daily.next_after(t, tz).unwrap();
        assert_eq!(
            next,
            tz.with_ymd_and_hms(2026, 11, 24, 0, 0, 0)
                .unwrap()
                .with_timezone(&chrono::Utc)
        );
    }

    #[test]
    fn cron_expressions_parse_and_bad_ones_fail() {
        let c: Cadence = "30 2 * * *".parse().unwrap();
        assert_eq!(
            c.next_after(utc("2026-11-23T10:00:00Z"), chrono_tz::UTC),
            Some(utc("2026-11-24T02:30:00Z"))
        );
        assert!("hourly".parse::<Cadence>().is_err());
        assert!("61 * * * *"
            .parse::<Cadence>()
            .unwrap_err()
            .contains("cron"));
    }
}
