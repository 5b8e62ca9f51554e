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
pub(crate) enum Cadence {
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
pub(crate) const CADENCE_FORMS: &str =
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
    /// The pattern, parsed once per process for the named cadences: with
    /// 10,000 organizations, parsing it for each schedule computation was
    /// the largest cost of starting.
    fn pattern(&self) -> Option<&Cron> {
        use std::sync::OnceLock;
        fn built_in(cell: &'static OnceLock<Cron>, p: &str) -> &'static Cron {
            cell.get_or_init(|| Cron::from_str(p).expect("built-in cadence patterns parse"))
        }
        static DAILY: OnceLock<Cron> = OnceLock::new();
        static WEEKLY: OnceLock<Cron> = OnceLock::new();
        static MONTHLY: OnceLock<Cron> = OnceLock::new();
        static YEARLY: OnceLock<Cron> = OnceLock::new();
        Some(match self {
            Cadence::Daily => built_in(&DAILY, "0 0 * * *"),
            Cadence::Weekly => built_in(&WEEKLY, "0 0 * * MON"),
            Cadence::Monthly => built_in(&MONTHLY, "0 0 1 * *"),
            Cadence::Yearly => built_in(&YEARLY, "0 0 1 1 *"),
            Cadence::Never => return None,
            Cadence::Cron(_, c) => c,
        })
    }

    /// The first rotation instant strictly after `after`, in time zone `tz`;
    /// `None` for `never` (or a pattern with no future match).
    pub(crate) fn next_after(&self, after: Timestamp, tz: Tz) -> Option<Timestamp> {
        let cron = self.pattern()?;
        // Whole seconds: croner keeps sub-second parts, and a rotation due
        // "at 00:00" should be due at 00:00:00.000.
        let after = after.trunc_subsecs(0);
        cron.find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// A cadence whose pattern matches no instant (e.g. 30 February).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NeverFires;

impl Cadence {
    /// The shortest time between two of the next few rotation instants
    /// after `from`; `None` for `never`. Used to refuse cadences that never
    /// fire or fire too often.
    pub(crate) fn shortest_gap(
        &self,
        from: Timestamp,
        tz: Tz,
    ) -> Result<Option<std::time::Duration>, NeverFires> {
        if matches!(self, Cadence::Never) {
            return Ok(None);
        }
        let mut at = self.next_after(from, tz).ok_or(NeverFires)?;
        let mut shortest: Option<std::time::Duration> = None;
        for _ in 0..4 {
            let Some(next) = self.next_after(at, tz) else {
                break;
            };
            let gap = (next - at).to_std().unwrap_or_default();
            shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
            at = next;
        }
        Ok(shortest)
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
    fn gaps_between_rotations_are_measured_and_impossible_dates_found() {
        let from = utc("2026-11-23T10:00:00Z");
        let z = chrono_tz::UTC;
        let gap = |c: &str| c.parse::<Cadence>().unwrap().shortest_gap(from, z);
        assert_eq!(
            gap("daily"),
            Ok(Some(std::time::Duration::from_secs(86_400)))
        );
        assert_eq!(gap("never"), Ok(None));
        assert_eq!(
            gap("* * * * * *"),
            Ok(Some(std::time::Duration::from_secs(1)))
        );
        assert_eq!(gap("0 0 30 2 *"), Err(NeverFires));
        assert!(gap("0 0 29 2 *").unwrap().is_some(), "leap days exist");
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

#[cfg(test)]
mod dst_tests {
    use super::*;
    use chrono::TimeZone;

    /// One occurrence per local day, across both DST changes of 2026 in
    /// New York, for times that fall in the skipped hour (02:30 in March),
    /// the repeated hour (01:30 in November) and at midnight. croner 3 ran
    /// "30 1 * * *" twice on 8 March 2026 (01:30 EST and 03:00 EDT); croner 4
    /// does not — this test pins that.
    #[test]
    fn no_rotation_is_skipped_or_doubled_across_dst() {
        let tz = chrono_tz::America::New_York;
        for expr in [
            "30 2 * * *",
            "30 1 * * *",
            "0 0 * * *",
            "0 3 * * *",
            "daily",
        ] {
            let cadence: Cadence = expr.parse().unwrap();
            for (y, m, d) in [(2026, 3, 5), (2026, 10, 29)] {
                let mut t = tz
                    .with_ymd_and_hms(y, m, d, 12, 0, 0)
                    .unwrap()
                    .with_timezone(&chrono::Utc);
                let mut days = Vec::new();
                for _ in 0..7 {
                    let next = cadence.next_after(t, tz).unwrap();
                    assert!(next > t);
                    days.push(next.with_timezone(&tz).date_naive());
                    t = next;
                }
                let expected: Vec<_> = (1..=7)
                    .map(|i| {
                        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap() + chrono::Days::new(i)
                    })
                    .collect();
                assert_eq!(days, expected, "{expr} around {y}-{m}-{d}");
            }
        }
    }

    #[test]
    fn skipped_local_time_moves_to_the_end_of_the_gap_and_repeated_time_runs_first() {
        let tz = chrono_tz::America::New_York;
        let c: Cadence = "30 2 * * *".parse().unwrap();
        let t = tz
            .with_ymd_and_hms(2026, 3, 7, 12, 0, 0)
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            c.next_after(t, tz).unwrap().to_rfc3339(),
            "2026-03-08T07:00:00+00:00"
        ); // 03:00 EDT
        let c: Cadence = "30 1 * * *".parse().unwrap();
        let t = tz
            .with_ymd_and_hms(2026, 10, 31, 12, 0, 0)
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            c.next_after(t, tz).unwrap().to_rfc3339(),
            "2026-11-01T05:30:00+00:00"
        ); // 01:30 EDT
    }

    #[test]
    fn weekly_monthly_yearly_in_a_time_zone() {
        let tz = chrono_tz::Europe::Berlin;
        let t = tz
            .with_ymd_and_hms(2026, 3, 27, 12, 0, 0)
            .unwrap()
            .with_timezone(&chrono::Utc); // a Friday
        let local = |c: Cadence| c.next_after(t, tz).unwrap().with_timezone(&tz).to_rfc3339();
        assert_eq!(local(Cadence::Weekly), "2026-03-30T00:00:00+02:00"); // Monday, after the change to CEST
        assert_eq!(local(Cadence::Monthly), "2026-04-01T00:00:00+02:00");
        assert_eq!(local(Cadence::Yearly), "2027-01-01T00:00:00+01:00");
    }
}
