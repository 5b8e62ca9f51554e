//! Moving a key history between stores (`kekctl store copy`): from one
//! host's redb file to a fleet's DynamoDB table, and back (a backup of a
//! fleet). Every key pair is copied unchanged — no KMS call, the envelopes
//! are the same bytes — into an empty store only, then read back and
//! compared item by item. A record that does not decode stops the copy
//! before anything is written: nothing is left behind silently.
//!
//! The source is only read: a redb source is opened read-only (a backup on
//! a read-only mount or an immutable file copies as well as a live one),
//! an empty file or another format is an error, a copy onto its own source
//! is refused, and with an organization given every envelope's encryption
//! context must name it — a history copied as another customer's would
//! otherwise serve keys that customer's KMS key never wrapped.

use super::{DynamoStore, KeyStore, Listed, RedbStore, Snapshot, StoreError};
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

/// Opens the store a copy goes into: a redb file (created if missing) or
/// the fleet's table (checked and claimed).
pub async fn open_target(
    location: &Location,
    tenant: Option<&Tenant>,
) -> Result<Arc<dyn KeyStore>, CopyError> {
    Ok(match location {
        Location::Redb(path) => Arc::new(RedbStore::open(path).await?),
        Location::DynamoDb(table) => Arc::new(open_table(table, tenant).await?),
    })
}

/// Reads everything a copy takes from `location`, changing nothing there.
pub async fn read_source(
    location: &Location,
    tenant: Option<&Tenant>,
) -> Result<Snapshot, CopyError> {
    match location {
        Location::Redb(path) => {
            if !path.exists() {
                return Err(CopyError::Missing(location.clone()));
            }
            Ok(RedbStore::read_only(path).await?)
        }
        Location::DynamoDb(table) => {
            let store = open_table(table, tenant).await?;
            Ok(Snapshot {
                records: store.list().await?,
                active: store.active().await?.map(|r| r.id),
                schedule: store.schedule().await?,
            })
        }
    }
}

async fn open_table(table: &str, tenant: Option<&Tenant>) -> Result<DynamoStore, CopyError> {
    let tenant = tenant.ok_or(CopyError::NoTenant)?;
    let settings = FleetStore::with_defaults(table, &tenant.region);
    let store =
        DynamoStore::connect(&settings, &tenant.organization_id, KmsTimeouts::default()).await;
    store.check_and_claim().await?;
    Ok(store)
}

/// Refuses a copy whose target is its source: the same table, or the same
/// file (by path or by inode).
pub fn distinct(from: &Location, to: &Location) -> Result<(), CopyError> {
    use std::os::unix::fs::MetadataExt;
    let same = match (from, to) {
        (Location::Redb(a), Location::Redb(b)) => {
            let inode = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
            a == b || matches!((inode(a), inode(b)), (Some(x), Some(y)) if x == y)
        }
        (Location::DynamoDb(a), Location::DynamoDb(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(CopyError::SameStore(from.clone()));
    }
    Ok(())
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
    /// The target is the source.
    #[error("{0} is both the source and the target; copy into another store")]
    SameStore(Location),
    /// A key pair's envelope is bound to another organization.
    #[error("key pair {id}'s envelope is bound to organization {found:?}, not {expected:?} it is copied as; nothing was copied")]
    OtherOrganization {
        /// The key pair.
        id: String,
        /// What its encryption context names.
        found: String,
        /// The organization the copy is for.
        expected: String,
    },
}

/// What was copied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyReport {
    /// Key pairs copied and verified.
    pub key_pairs: usize,
    /// The active key pair's id.
    pub active: Option<String>,
}

/// Copies every key pair, the active pointer and the schedule read from
/// the source into the empty store `to`, then verifies the copy item by
/// item. With `organization`, every envelope must be bound to it.
/// `progress(done, total)` is called as records are verified.
pub async fn copy(
    from: Snapshot,
    to: &dyn KeyStore,
    organization: Option<&str>,
    progress: impl Fn(usize, usize),
) -> Result<CopyReport, CopyError> {
    let mut records = Vec::new();
    for l in from.records {
        match l {
            Listed::Ok(r) => records.push(*r),
            Listed::Corrupt { id, problem } => return Err(CopyError::Corrupt { id, problem }),
        }
    }
    if let Some(expected) = organization {
        for r in &records {
            bound_to(r, expected)?;
        }
    }
    let (active, schedule) = (from.active, from.schedule);
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

/// Whether `r`'s envelope is bound to `organization`: its encryption
/// context carries it (under whatever context key was configured) beside
/// the key-pair id.
fn bound_to(r: &crate::domain::KeyPairRecord, organization: &str) -> Result<(), CopyError> {
    let context = r.envelope.encryption_context.as_map();
    let found: Vec<&String> = context
        .iter()
        .filter(|(k, _)| k.as_str() != crate::domain::KEY_PAIR_CONTEXT_KEY)
        .map(|(_, v)| v)
        .collect();
    if found.iter().any(|v| v.as_str() == organization) {
        return Ok(());
    }
    Err(CopyError::OtherOrganization {
        id: r.id.clone(),
        found: found
            .first()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(none)".into()),
        expected: organization.to_string(),
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
        let r = crate::rotation::Rotator::new(from.clone(), current.clone());
        r.rotate(crate::domain::Reason::Initial).await.unwrap();
        r.rotate(crate::domain::Reason::ChangeKeyNow).await.unwrap();
        let to = RedbStore::open(&dir.path().join("copy.redb"))
            .await
            .unwrap();
        let snapshot = read_source(&Location::Redb(dir.path().join("s.redb")), None).await;
        assert!(
            matches!(snapshot, Err(CopyError::Store(StoreError::InUse { .. }))),
            "a store open for writing is not read under its writer"
        );
        let snapshot = || async {
            Snapshot {
                records: from.list().await.unwrap(),
                active: from.active().await.unwrap().map(|r| r.id),
                schedule: from.schedule().await.unwrap(),
            }
        };
        let org = current.settings().organization_id.clone();
        let report = copy(snapshot().await, &to, Some(&org), |_, _| {})
            .await
            .unwrap();
        assert_eq!(report.key_pairs, 2);
        assert_eq!(
            crate::store::decodable(to.list().await.unwrap()),
            crate::store::decodable(from.list().await.unwrap())
        );
        assert_eq!(to.summary().await.unwrap(), from.summary().await.unwrap());
        assert!(matches!(
            copy(snapshot().await, &to, None, |_, _| {}).await,
            Err(CopyError::Store(StoreError::NotEmpty { count: 2, .. }))
        ));
    }
}
