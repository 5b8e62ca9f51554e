//! Timestamps: UTC, millisecond precision, RFC 3339 on the wire.
//!
//! One helper so the store, the API and `--json` output agree to the letter.

use chrono::{DateTime, SubsecRound, Utc};

/// An instant in UTC. Serialized by serde as RFC 3339 with a `Z` suffix.
pub type Timestamp = DateTime<Utc>;

/// Now, truncated to milliseconds (what the store keeps and the API shows).
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// RFC 3339 text, e.g. `2026-11-23T00:00:00.000Z`.
pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The one form people read (kekctl's tables and fields, check-config):
/// `2026-12-03 06:10:16 UTC` — UTC, with its zone, to the second. JSON and
/// logs keep RFC 3339 ([`format`]).
pub fn human(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// [`human`] to the minute, for columns: `2026-12-03 06:10 UTC`.
pub fn human_minute(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// [`human`] in the time zone `tz`, named by its abbreviation
/// (`2026-12-07 03:00:00 CET`): what a cadence in that zone means.
pub fn human_in(t: &Timestamp, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// serde helpers that pin the RFC 3339 form used everywhere.
pub mod rfc3339 {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as RFC 3339 UTC with milliseconds.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(t))
    }

    /// Parse RFC 3339 (any offset), normalised to UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(serde::de::Error::custom)
    }

    /// The same for optional timestamps (`null` when absent).
    pub mod option {
        use super::super::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialize `Some` as RFC 3339, `None` as null.
        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format(t)),
                None => s.serialize_none(),
            }
        }

        /// Parse an optional RFC 3339 timestamp.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            let s = Option::<String>::deserialize(d)?;
            s.map(|s| {
                chrono::DateTime::parse_from_rfc3339(&s)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        }
    }
}
