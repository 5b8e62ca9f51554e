//! `[store]`: where the key history lives (redb, or a fleet's DynamoDB
//! table).

use crate::config::arn;
use crate::config::defaults;
use crate::config::raw::RawStore;
use crate::config::validate::Validator;
use crate::config::ConfigError;
use std::time::Duration;

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
    /// How often the fleet's revision is read to see what changed.
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
