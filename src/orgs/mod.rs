//! The organizations one daemon serves, at run time: one [`Tenant`] per
//! organization in the store, and the changes of that set — add (Test
//! first, save only if it passes, then the first key pair made and proven
//! before the answer), remove (nothing served, history kept, unwrap still
//! working), restore within the window, purge after it. Each change is
//! audited and made one at a time.
//!
//! - `tenant.rs`: making and running one organization;
//! - `change.rs`: add, set, remove, restore, purge;
//! - `follow.rs`: following the store (fleet) and the reloaded file.
//!
//! The organization the configuration file declares is created or updated
//! from the file at start, so a file from before organizations means what
//! it always meant: one organization.

mod change;
mod follow;
mod tenant;

pub(crate) use tenant::{Parts, Preflight, Tenant, TenantError};

use crate::audit::Audit;
use crate::config::{ConfigError, Settings};
use crate::current::SharedCurrent;
use crate::domain::Reason;
use crate::metrics::Metrics;
use crate::rotation::RotationError;
use crate::store::{Registry, StoreError};
use crate::tasks::Spawner;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a removed organization can be restored, unless the remove
/// says otherwise.
pub const DEFAULT_RESTORE_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// How long an add waits for the first key pair of the new organization.
pub(super) const FIRST_KEY_PAIR_BOUND: Duration = Duration::from_secs(120);

/// How many organizations are opened at once at start. Each one is a few
/// short store reads on the blocking pool: 64 at a time keep its threads
/// busy, where 16 left them sleeping and waking for each read (10,000
/// organizations served after 1.6 s instead of 2.0 s).
const OPEN_AT_ONCE: usize = 64;

/// What every tenant shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    /// The store's organizations and each one's key store.
    pub(crate) registry: Arc<dyn Registry>,
    /// The daemon's metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The daemon's audit trail.
    pub(crate) audit: Arc<Audit>,
    /// Starts tasks under the daemon's failure rule.
    pub(crate) spawner: Spawner,
    /// The KMS request budget every organization shares.
    pub(crate) budget: Arc<crate::provider::budget::Budget>,
    /// How many organizations are served.
    pub(crate) peers: crate::spread::Peers,
    /// The decrypted private keys behind unwrap, every organization's.
    pub(crate) key_cache: Arc<crate::key_cache::KeyCache>,
}

/// Why a change of the set of organizations was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrgError {
    /// Not an organization id.
    #[error("{0:?} is not a valid organization id; allowed: 1-64 characters of A-Z a-z 0-9 . _ -, except the reserved kekd-isolation-probe")]
    InvalidId(String),
    /// No such organization.
    #[error("no organization {0:?}")]
    NotFound(String),
    /// It exists already.
    #[error("organization {0} already exists")]
    Exists(String),
    /// Its settings do not validate.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The Test round trip with the organization's context failed: nothing
    /// was saved.
    #[error("organization {org}: the Test of KMS key {kms_key} failed at {step}: {detail}; nothing was saved")]
    TestFailed {
        /// The organization.
        org: String,
        /// The key tested.
        kms_key: String,
        /// The failing step.
        step: String,
        /// What KMS said.
        detail: String,
    },
    /// The first key pair could not be made: nothing was kept.
    #[error(
        "organization {org}: the first key pair could not be made ({source}); nothing was kept"
    )]
    FirstKeyPair {
        /// The organization.
        org: String,
        /// Why.
        source: Box<RotationError>,
    },
    /// The first key pair took longer than the bound: nothing was kept.
    #[error("organization {org}: the first key pair was not made within {after:?} (KMS slow or unreachable); nothing was kept")]
    FirstKeyPairTimedOut {
        /// The organization.
        org: String,
        /// The bound.
        after: Duration,
    },
    /// The organization is removed (nothing is served for it).
    #[error("organization {0} is removed: it is not served; restore it within its restore window (kekctl org restore)")]
    Removed(String),
    /// Restore or purge of an organization that is not removed.
    #[error("organization {0} is not removed; remove it first")]
    NotRemoved(String),
    /// Purge before the restore window ended.
    #[error("organization {org} can be restored until {until}; purge is refused before then")]
    WindowOpen {
        /// The organization.
        org: String,
        /// The end of the window.
        until: String,
    },
    /// Purge without the organization's id as confirmation.
    #[error("purging organization {0} deletes every key pair of it for good; confirm with its id (--confirm {0})")]
    Unconfirmed(String),
    /// The configuration file declares it.
    #[error("organization {0} is the one the configuration file declares (organization_id); it cannot be removed through the API")]
    Declared(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant could not be made.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// The change could not be audited, so it was not made.
    #[error("{0}; nothing was changed")]
    Audit(#[from] crate::audit::AuditError),
}

/// The organizations of the daemon, each running as a [`Tenant`]; `X` is
/// what the API makes of each.
pub(crate) struct Orgs<X> {
    ctx: Ctx,
    /// The daemon's file: daemon-wide settings, the organization it
    /// declares, and the template of every other organization's settings.
    file: SharedCurrent,
    declared: String,
    make_api: Box<dyn Fn(&Parts) -> X + Send + Sync>,
    tenants: RwLock<BTreeMap<String, Arc<Tenant<X>>>>,
    /// Organizations stored but not served (their settings do not
    /// validate under this file), with why.
    broken: RwLock<BTreeMap<String, String>>,
    /// One change of the set at a time.
    changing: tokio::sync::Mutex<()>,
}

impl<X: Send + Sync + 'static> Orgs<X> {
    /// Creates or updates the organization `file` declares, then makes a
    /// tenant of every organization in the store. Nothing runs until
    /// [`Orgs::start`].
    pub(crate) async fn open(
        ctx: Ctx,
        file: Arc<Settings>,
        make_api: impl Fn(&Parts) -> X + Send + Sync + 'static,
    ) -> Result<Orgs<X>, OrgError> {
        let (declared, rescheduled) = follow::declare(&*ctx.registry, &ctx.audit, &file).await?;
        let declared_id = declared.id().to_string();
        let first = tenant::make(&ctx, declared, file.clone(), Preflight::Fatal, &make_api).await?;
        if rescheduled {
            let p = &first.parts;
            tracing::info!(organization = %declared_id, cadence = %file.cadence, "the file's cadence changed while kekd was stopped; the next rotation is scheduled again");
            crate::rotation::reschedule(&p.engine, &*p.store, &p.rotation, &file).await?;
        }
        let mut tenants = BTreeMap::new();
        let mut broken = BTreeMap::new();
        let file_current = first.parts.current.clone();
        tenants.insert(declared_id.clone(), Arc::new(first));
        let mut ready = Vec::new();
        for record in ctx.registry.orgs().await? {
            let id = record.id().to_string();
            if id == declared_id {
                continue;
            }
            match file.for_org(&record.spec) {
                Ok(s) => ready.push((id, record, Arc::new(s))),
                Err(e) => {
                    tracing::error!(organization = %id, error = %e, "a stored organization's settings do not validate; it is not served until they are fixed (kekctl org set)");
                    broken.insert(id, e.to_string());
                }
            }
        }
        // Made several at a time: each waits mostly on store reads, so
        // 10,000 organizations open in seconds, not one after the other.
        let (ctx_ref, api) = (&ctx, &make_api);
        let made: Vec<_> = futures_util::stream::iter(ready)
            .map(|(id, record, settings)| async move {
                let made = tenant::make(ctx_ref, record, settings, Preflight::Reported, api).await;
                (id, made)
            })
            .buffer_unordered(OPEN_AT_ONCE)
            .collect()
            .await;
        for (id, made) in made {
            match made {
                Ok(t) => {
                    tenants.insert(id, Arc::new(t));
                }
                Err(e) => {
                    tracing::error!(organization = %id, error = %e, "an organization cannot be opened; it is not served");
                    broken.insert(id, e.to_string());
                }
            }
        }
        tracing::info!(organizations = tenants.len(), "organizations loaded");
        ctx.peers.set(tenants.len());
        Ok(Orgs {
            ctx,
            file: file_current,
            declared: declared_id,
            make_api: Box::new(make_api),
            tenants: RwLock::new(tenants),
            broken: RwLock::new(broken),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    /// Serves `tenant` as `id` (added, restored or seen in the store).
    fn put(&self, id: String, tenant: Arc<Tenant<X>>) {
        let mut tenants = crate::sync::write(&self.tenants);
        tenants.insert(id, tenant);
        self.counted(&tenants);
    }

    /// Serves `id` no more.
    fn take(&self, id: &str) {
        let mut tenants = crate::sync::write(&self.tenants);
        tenants.remove(id);
        self.counted(&tenants);
    }

    /// Keeps the count every engine reads; when the daemon goes from one
    /// organization to many (or back), each engine plans its next
    /// preparation again.
    fn counted(&self, tenants: &BTreeMap<String, Arc<Tenant<X>>>) {
        let was = self.ctx.peers.many();
        self.ctx.peers.set(tenants.len());
        crate::rotation::changed();
        if self.ctx.peers.many() != was {
            for t in tenants.values() {
                t.parts.rotation.reschedule();
            }
        }
    }

    /// Starts every organization's tasks.
    pub(crate) fn start(&self) {
        for t in self.all() {
            t.start(&self.ctx);
        }
    }

    /// The daemon's file in force (swapped on reload).
    pub(crate) fn file(&self) -> &SharedCurrent {
        &self.file
    }

    /// The organization the file declares.
    pub(crate) fn declared(&self) -> Arc<Tenant<X>> {
        self.get(&self.declared)
            .expect("the declared organization is always served")
    }

    /// One organization.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Tenant<X>>> {
        crate::sync::read(&self.tenants).get(id).cloned()
    }

    /// The only organization, or how many there are.
    pub(crate) fn sole(&self) -> Result<Arc<Tenant<X>>, usize> {
        let tenants = crate::sync::read(&self.tenants);
        let stored = tenants.len() + crate::sync::read(&self.broken).len();
        match (stored, tenants.values().next()) {
            (1, Some(t)) => Ok(t.clone()),
            _ => Err(stored),
        }
    }

    /// Up to `n` served organizations after `after`, by id: a page costs
    /// the page, whatever the number of organizations.
    pub(crate) fn page(&self, after: Option<&str>, n: usize) -> Vec<Arc<Tenant<X>>> {
        use std::ops::Bound;
        let tenants = crate::sync::read(&self.tenants);
        let from = match after {
            Some(c) => Bound::Excluded(c),
            None => Bound::Unbounded,
        };
        tenants
            .range::<str, _>((from, Bound::Unbounded))
            .take(n)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Every served organization, by id.
    pub(crate) fn all(&self) -> Vec<Arc<Tenant<X>>> {
        crate::sync::read(&self.tenants).values().cloned().collect()
    }

    /// Organizations stored but not served, with why.
    pub(crate) fn broken(&self) -> BTreeMap<String, String> {
        crate::sync::read(&self.broken).clone()
    }

    /// Change Key Now for every active organization (SIGUSR1).
    pub(crate) fn rotate_all(&self) {
        for t in self.all() {
            if !t.is_removed() {
                t.parts.rotation.request(Reason::ChangeKeyNow);
            }
        }
    }

    /// Stops every organization's tasks (shutdown), until `deadline`.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant) {
        for t in self.all() {
            t.stop(deadline).await;
        }
    }
}
