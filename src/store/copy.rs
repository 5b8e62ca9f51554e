//! Moving a key history between stores (`kekctl store copy`): from one
//! host's redb file to a fleet's DynamoDB table, and back (a backup of a
//! fleet). Every key pair is copied unchanged — no KMS call, the envelopes
//! are the same bytes — into an empty store only, then read back and
//! compared item by item. A record that does not decode stops the copy
//! before anything is written: nothing is left behind silently.

use super::{DynamoStore, KeyStore, Listed, RedbStore, StoreError};
use crate::config::{is_table_name, FleetStore, KmsTimeouts};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a store is, as an operator writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `redb:PATH`.
    Redb(PathBuf),
    /// `dynamodb:TABLE`.
    DynamoDb(String),
}

/// What `LOCATION` may be, quoted in errors.
pub const LOCATION_FORMS: &str = "redb:PATH (a kekd.redb file) or dynamodb:TABLE";

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Location, String> {
        match s.split_once(':') {
            Some(("redb", path)) if !path.is_empty() => Ok(Location::Redb(PathBuf::from(path))),
            Some(("dynamodb", table)) if is_table_name(table) => {
                Ok(Location::DynamoDb(table.to_string()))
            }
            Some(("dynamodb", table)) => Err(format!(
                "{table:?} is not a DynamoDB table name (3-255 characters of A-Z a-z 0-9 _ . -)"
            )),
            _ => Err(format!(
                "{s:?} is not a store location; expected {LOCATION_FORMS}"
            )),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Redb(p) => write!(f, "redb:{}", p.display()),
            Location::DynamoDb(t) => write!(f, "dynamodb:{t}"),
        }
    }
}

/// Who the DynamoDB side belongs to.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The organization id (the table's partition key).
    pub organization_id: String,
    /// The table's region.
    pub region: String,
}

/// Which end of a copy a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Copied from: must exist.
    Source,
    /// Copied into: created if missing, must be empty.
    Target,
}

/// Opens the store at `location`. A redb source must exist (opening would
/// otherwise create an empty one).
pub async fn open_location(
    location: &Location,
    tenant: Option<&Tenant>,
    side: Side,
) -> Result<Arc<dyn KeyStore>, CopyError> {
    Ok(match location {
        Location::Redb(path) => {
            if side == Side::Source && !path.exists() {
                return Err(CopyError::Missing(location.clone()));
            }
            Arc::new(RedbStore::open(path).await?)
        }
        Location::DynamoDb(table) => {
            let tenant = tenant.ok_or(CopyError::NoTenant)?;
            let settings = FleetStore::with_defaults(table, &tenant.region);
            let store =
                DynamoStore::connect(&settings, &tenant.organization_id, KmsTimeouts::default())
                    .await;
            store.check_and_claim().await?;
            Arc::new(store)
        }
    })
}

/// Creates the fleet table `table` in `region` (`kekctl store init`);
/// false if it was already there with the layout's keys.
pub async fn create_table(table: &str, region: &str) -> Result<bool, StoreError> {
    DynamoStore::connect(
        &FleetStore::with_defaults(table, region),
        "-",
        KmsTimeouts::default(),
    )
    .await
    .create_table()
    .await
}

/// Why a copy did not happen (or did not verify).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// A store failed (includes a target that is not empty).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source file does not exist.
    #[error("{0}: no such store")]
    Missing(Location),
    /// A DynamoDB side needs an organization and a region.
    #[error(
        "a dynamodb: location needs --organization (or --config) and --region (or AWS_REGION)"
    )]
    NoTenant,
    /// The source holds a record that does not decode.
    #[error("source record {id} does not decode ({problem}); nothing was copied")]
    Corrupt {
        /// Its id.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// The copy read back differs.
    #[error("verification failed: {0}")]
    Verify(String),
}

/// What was copied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyReport {
    /// Key pairs copied and verified.
    pub key_pairs: usize,
    /// The active key pair's id.
    pub active: Option<String>,
}

/// Copies every key pair, the active pointer and the schedule from `from`
/// into the empty store `to`, then verifies the copy item by item.
/// `progress(done, total)` is called as records are verified.
pub async fn copy(
    from: &dyn KeyStore,
    to: &dyn KeyStore,
    progress: impl Fn(usize, usize),
) -> Result<CopyReport, CopyError> {
    let mut records = Vec::new();
    for l in from.list().await? {
        match l {
            Listed::Ok(r) => records.push(*r),
            Listed::Corrupt { id, problem } => return Err(CopyError::Corrupt { id, problem }),
        }
    }
    let active = from.active().await?.map(|r| r.id);
    let schedule = from.schedule().await?;
    to.import(&records, active.as_deref(), &schedule).await?;
    let total = records.len();
    for (i, r) in records.iter().enumerate() {
        match to.get(&r.id).await? {
            Some(copied) if copied == *r => {}
            Some(_) => return Err(CopyError::Verify(format!("key pair {} differs", r.id))),
            None => return Err(CopyError::Verify(format!("key pair {} is missing", r.id))),
        }
        progress(i + 1, total);
    }
    let copied_active = to.active().await?.map(|r| r.id);
    if copied_active != active {
        return Err(CopyError::Verify(format!(
            "the active key pair is {copied_active:?}, expected {active:?}"
        )));
    }
    if to.schedule().await? != schedule {
        return Err(CopyError::Verify("the schedule differs".into()));
    }
    Ok(CopyReport {
        key_pairs: total,
        active,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_name_what_is_wrong() {
        assert_eq!(
            "redb:/var/lib/kekd/kekd.redb".parse::<Location>(),
            Ok(Location::Redb("/var/lib/kekd/kekd.redb".into()))
        );
        assert_eq!(
            "dynamodb:kekd-keys".parse::<Location>(),
            Ok(Location::DynamoDb("kekd-keys".into()))
        );
        let e = "dynamodb:a".parse::<Location>().unwrap_err();
        assert!(e.contains("not a DynamoDB table name"), "{e}");
        let e = "s3:bucket".parse::<Location>().unwrap_err();
        assert!(e.contains("redb:PATH"), "{e}");
    }

    #[tokio::test]
    async fn a_copy_between_redb_stores_is_identical_and_refuses_a_full_target() {
        let dir = tempfile::tempdir().unwrap();
        let (from, current) = crate::testing::fixture(dir.path()).await;
        let r = crate::rotation::Rotator::new(from.clone(), current);
        r.rotate(crate::domain::Reason::Initial).await.unwrap();
        r.rotate(crate::domain::Reason::ChangeKeyNow).await.unwrap();
        let to = RedbStore::open(&dir.path().join("copy.redb"))
            .await
            .unwrap();
        let report = copy(&*from, &to, |_, _| {}).await.unwrap();
        assert_eq!(report.key_pairs, 2);
        assert_eq!(
            crate::store::decodable(to.list().await.unwrap()),
            crate::store::decodable(from.list().await.unwrap())
        );
        assert_eq!(to.summary().await.unwrap(), from.summary().await.unwrap());
        assert!(matches!(
            copy(&*from, &to, |_, _| {}).await,
            Err(CopyError::Store(StoreError::NotEmpty { count: 2, .. }))
        ));
    }
}
