//! The organizations one daemon serves, at run time: one [`Tenant`] per
//! organization in the store, and the changes of that set — add (Test
//! first, save only if it passes, then the first key pair made and proven
//! before the answer), remove (nothing served, history kept, unwrap still
//! working), restore within the window, purge after it. Each change is
//! audited and made one at a time.
//!
//! - `tenant.rs`: making and running one organization.
//!
//! The organization the configuration file declares is created or updated
//! from the file at start, so a file from before organizations means what
//! it always meant: one organization.

mod tenant;

pub(crate) use tenant::{Parts, Preflight, Tenant, TenantError};

use crate::audit::{Audit, AuditEvent};
use crate::config::{ConfigError, Settings};
use crate::current::SharedCurrent;
use crate::domain::{is_org_id, OrgPatch, OrgRecord, OrgSource, OrgSpec, OrgState, Reason};
use crate::metrics::Metrics;
use crate::rotation::RotationError;
use crate::store::{Expect, Registry, StoreError};
use crate::tasks::Spawner;
use crate::time::{self, Timestamp};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a removed organization can be restored, unless the remove
/// says otherwise.
pub const DEFAULT_RESTORE_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// How long an add waits for the first key pair of the new organization.
const FIRST_KEY_PAIR_BOUND: Duration = Duration::from_secs(120);

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
}

/// Why a change of the set of organizations was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrgError {
    /// Not an organization id.
    #[error("{0:?} is not a valid organization id; allowed: 1-64 characters of A-Z a-z 0-9 . _ -")]
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
        let declared = declare(&*ctx.registry, &ctx.audit, &file).await?;
        let declared_id = declared.id().to_string();
        let first = tenant::make(&ctx, declared, file.clone(), Preflight::Fatal, &make_api).await?;
        let mut tenants = BTreeMap::new();
        let mut broken = BTreeMap::new();
        let file_current = first.parts.current.clone();
        tenants.insert(declared_id.clone(), Arc::new(first));
        for record in ctx.registry.orgs().await? {
            let id = record.id().to_string();
            if id == declared_id {
                continue;
            }
            let settings = match file.for_org(&record.spec) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::error!(organization = %id, error = %e, "a stored organization's settings do not validate; it is not served until they are fixed (kekctl org set)");
                    broken.insert(id, e.to_string());
                    continue;
                }
            };
            match tenant::make(&ctx, record, settings, Preflight::Reported, &make_api).await {
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

    /// Adds an organization as the anchor's admin page does: its settings
    /// validated, the Test round trip with its own encryption context, and
    /// only then saved; its first key pair is made and proven before this
    /// returns. On any failure nothing is kept.
    pub(crate) async fn add(&self, spec: OrgSpec) -> Result<Arc<Tenant<X>>, OrgError> {
        if !is_org_id(&spec.id) {
            return Err(OrgError::InvalidId(spec.id));
        }
        let id = spec.id.clone();
        if self.get(&id).is_some() || self.ctx.registry.org(&id).await?.is_some() {
            return Err(OrgError::Exists(id));
        }
        // The Test talks to the customer's KMS key, which may be slow: no
        // lock is held meanwhile, so it delays no other change of the set
        // (nor a fleet member's following of the store).
        let settings = Arc::new(self.file.settings().for_org(&spec)?);
        test(&settings).await?;
        let record = OrgRecord::new(spec, OrgSource::Api, time::now());
        let (tenant, first) = {
            let _one = self.changing.lock().await;
            let audit = self.ctx.audit.for_org(&id);
            audit
                .record_async(AuditEvent::OrgAdded {
                    spec: record.spec.clone(),
                })
                .await?;
            // Conditional: of two adds of one id (here or on another
            // member), one saves and the other is told it exists.
            self.ctx
                .registry
                .save_org(&record, Expect::Absent)
                .await
                .map_err(|e| match e {
                    StoreError::Conflict { .. } => OrgError::Exists(id.clone()),
                    other => other.into(),
                })?;
            let made =
                tenant::make(&self.ctx, record, settings, Preflight::Done, &self.make_api).await;
            let tenant = match made {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    self.undo_add(&id).await;
                    return Err(e.into());
                }
            };
            let first = tenant.with_engine(|e| e.first_rotation());
            tenant.start(&self.ctx);
            // In the set before the lock is let go, so following the store
            // never makes a second tenant of it.
            crate::sync::write(&self.tenants).insert(id.clone(), tenant.clone());
            (tenant, first)
        };
        let outcome = match first {
            Some(rx) => match tokio::time::timeout(FIRST_KEY_PAIR_BOUND, rx).await {
                Ok(r) => r
                    .unwrap_or(Err(RotationError::ShuttingDown))
                    .map(|_| ())
                    .map_err(|source| OrgError::FirstKeyPair {
                        org: id.clone(),
                        source: Box::new(source),
                    }),
                Err(_) => Err(OrgError::FirstKeyPairTimedOut {
                    org: id.clone(),
                    after: FIRST_KEY_PAIR_BOUND,
                }),
            },
            None => Err(OrgError::FirstKeyPair {
                org: id.clone(),
                source: Box::new(RotationError::ShuttingDown),
            }),
        };
        if let Err(e) = outcome {
            let _one = self.changing.lock().await;
            crate::sync::write(&self.tenants).remove(&id);
            tenant
                .stop(tokio::time::Instant::now() + Duration::from_secs(30))
                .await;
            self.undo_add(&id).await;
            return Err(e);
        }
        tracing::info!(organization = %id, "organization added");
        Ok(tenant)
    }

    /// An organization the API may change: served, not removed, and not
    /// the one the file declares (its file changes it).
    fn changeable(&self, id: &str) -> Result<Arc<Tenant<X>>, OrgError> {
        let t = self.get(id).ok_or_else(|| OrgError::NotFound(id.into()))?;
        if id == self.declared {
            return Err(OrgError::Declared(id.into()));
        }
        if t.is_removed() {
            return Err(OrgError::Removed(id.into()));
        }
        Ok(t)
    }

    /// Deletes what a failed add left (the record, a superseded key pair).
    async fn undo_add(&self, id: &str) {
        if let Err(e) = self.ctx.registry.purge_org(id).await {
            tracing::error!(organization = id, error = %e, "cannot take back a failed add; remove and purge the organization by hand");
        }
    }

    /// Removes an organization: its rotation stops and its public keys are
    /// no longer served, its history stays and unwrap keeps working;
    /// restorable for `window`.
    pub(crate) async fn remove(
        &self,
        id: &str,
        window: Duration,
    ) -> Result<Arc<Tenant<X>>, OrgError> {
        let _one = self.changing.lock().await;
        let old = self.changeable(id)?;
        let now = time::now();
        let mut record = (*old.parts.record).clone();
        record.state = OrgState::Removed;
        record.updated_at = now;
        record.removed_at = Some(now);
        record.purge_after =
            Some(now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX));
        old.parts
            .audit
            .record_async(AuditEvent::OrgRemoved {
                purge_after: record.purge_after.expect("set above"),
            })
            .await?;
        self.replace(old, record).await
    }

    /// Restores a removed organization within its window.
    pub(crate) async fn restore(&self, id: &str) -> Result<Arc<Tenant<X>>, OrgError> {
        let _one = self.changing.lock().await;
        let old = self.get(id).ok_or_else(|| OrgError::NotFound(id.into()))?;
        if !old.is_removed() {
            return Err(OrgError::NotRemoved(id.into()));
        }
        let mut record = (*old.parts.record).clone();
        record.state = OrgState::Active;
        record.updated_at = time::now();
        record.removed_at = None;
        record.purge_after = None;
        old.parts
            .audit
            .record_async(AuditEvent::OrgRestored {})
            .await?;
        self.replace(old, record).await
    }

    /// Deletes every key pair of a removed organization whose window has
    /// ended, and the organization: its recordings are unrecoverable from
    /// then on, whatever becomes of its KMS key. Returns how many key pairs
    /// were deleted.
    pub(crate) async fn purge(&self, id: &str, confirm: &str) -> Result<u64, OrgError> {
        let _one = self.changing.lock().await;
        let old = self.get(id).ok_or_else(|| OrgError::NotFound(id.into()))?;
        if confirm != id {
            return Err(OrgError::Unconfirmed(id.into()));
        }
        if !old.is_removed() {
            return Err(OrgError::NotRemoved(id.into()));
        }
        let until = old.parts.record.purge_after.unwrap_or_else(time::now);
        if time::now() < until {
            return Err(OrgError::WindowOpen {
                org: id.into(),
                until: time::format(&until),
            });
        }
        let audit = old.parts.audit.clone();
        audit.record_async(AuditEvent::OrgPurgeStarted {}).await?;
        old.stop(tokio::time::Instant::now() + Duration::from_secs(30))
            .await;
        crate::sync::write(&self.tenants).remove(id);
        let deleted = self.ctx.registry.purge_org(id).await?;
        if let Err(e) = audit
            .record_async(AuditEvent::OrgPurged {
                key_pairs_deleted: deleted,
            })
            .await
        {
            tracing::error!(organization = id, error = %e, "the purge is done but its end could not be audited");
        }
        tracing::warn!(
            organization = id,
            key_pairs_deleted = deleted,
            "organization purged"
        );
        Ok(deleted)
    }

    /// Saves `record` in place of `old`'s and serves it with a new tenant.
    async fn replace(
        &self,
        old: Arc<Tenant<X>>,
        record: OrgRecord,
    ) -> Result<Arc<Tenant<X>>, OrgError> {
        self.ctx
            .registry
            .save_org(&record, Expect::Is(Box::new((*old.parts.record).clone())))
            .await?;
        let settings = old.parts.current.settings();
        self.swap(old, record, settings, None).await
    }

    /// Serves `record` with a new tenant in place of `old` (whose tasks
    /// stop first; an in-flight rotation finishes). With `schedule`, the
    /// organization's next rotation is stored anew in between (its cadence
    /// changed).
    async fn swap(
        &self,
        old: Arc<Tenant<X>>,
        record: OrgRecord,
        settings: Arc<Settings>,
        schedule: Option<crate::domain::Schedule>,
    ) -> Result<Arc<Tenant<X>>, OrgError> {
        let id = record.id().to_string();
        old.stop(tokio::time::Instant::now() + Duration::from_secs(30))
            .await;
        if let Some(s) = schedule {
            old.parts.store.set_schedule(&s).await?;
        }
        let tenant = Arc::new(
            tenant::make(&self.ctx, record, settings, Preflight::Done, &self.make_api).await?,
        );
        tenant.start(&self.ctx);
        crate::sync::write(&self.tenants).insert(id, tenant.clone());
        Ok(tenant)
    }

    /// Changes an organization's settings, as a reload changes the file's:
    /// a new KMS key passes the Test round trip first and a key pair is
    /// made under it at once (reason `kms-key-changed`); a new cadence
    /// reschedules; new backup keys re-wrap the existing key pairs.
    pub(crate) async fn set(&self, id: &str, patch: OrgPatch) -> Result<Arc<Tenant<X>>, OrgError> {
        let _one = self.changing.lock().await;
        let old = self.changeable(id)?;
        let mut record = (*old.parts.record).clone();
        record.spec = patch.apply(record.spec);
        if record.spec == old.parts.record.spec {
            return Ok(old);
        }
        let settings = Arc::new(self.file.settings().for_org(&record.spec)?);
        let before = old.parts.current.settings();
        let key_changed = settings.provider_key() != before.provider_key();
        let backups_changed = settings.backup_keys() != before.backup_keys();
        if key_changed || backups_changed {
            test(&settings).await?;
        }
        let reschedule = settings.cadence.to_string() != before.cadence.to_string()
            || settings.timezone != before.timezone;
        record.updated_at = time::now();
        old.parts
            .audit
            .record_async(AuditEvent::OrgChanged {
                spec: record.spec.clone(),
            })
            .await?;
        self.ctx
            .registry
            .save_org(&record, Expect::Is(Box::new((*old.parts.record).clone())))
            .await?;
        let schedule = reschedule.then(|| {
            let last = old.parts.engine.read(|e| e.schedule.last_rotation_at);
            crate::domain::Schedule {
                last_rotation_at: last,
                next_rotation_at: settings.next_rotation_after(time::now()),
            }
        });
        let tenant = self.swap(old, record, settings, schedule).await?;
        if key_changed {
            if let Err(e) = tenant.parts.rotation.rotate(Reason::KmsKeyChanged).await {
                tracing::warn!(organization = id, error = %e, "the key pair under the new KMS key could not be made yet; it is retried");
            }
        } else if backups_changed {
            if let Some(mut events) = tenant.parts.rewrapper.start() {
                tokio::spawn(async move { while events.recv().await.is_some() {} });
            }
        }
        Ok(tenant)
    }

    /// Brings the served set in line with the store: what another fleet
    /// member added, changed, removed or purged is served here from the
    /// next call on. One read of the store, whatever the number of
    /// organizations.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let _one = self.changing.lock().await;
        let stored: BTreeMap<String, OrgRecord> = self
            .ctx
            .registry
            .orgs()
            .await?
            .into_iter()
            .map(|r| (r.id().to_string(), r))
            .collect();
        for (id, record) in &stored {
            if *id == self.declared {
                continue;
            }
            let served = self.get(id);
            if served.as_ref().is_some_and(|t| *t.parts.record == *record) {
                continue;
            }
            let settings = match self.file.settings().for_org(&record.spec) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    crate::sync::write(&self.broken).insert(id.clone(), e.to_string());
                    continue;
                }
            };
            crate::sync::write(&self.broken).remove(id);
            match served {
                Some(old) => {
                    tracing::info!(organization = %id, state = %record.state, "organization changed by another fleet member");
                    if let Err(e) = self.swap(old, record.clone(), settings, None).await {
                        tracing::error!(organization = %id, error = %e, "cannot serve the organization as another member changed it");
                    }
                }
                None => {
                    let made = tenant::make(
                        &self.ctx,
                        record.clone(),
                        settings,
                        Preflight::Reported,
                        &self.make_api,
                    )
                    .await;
                    match made {
                        Ok(t) => {
                            let t = Arc::new(t);
                            t.start(&self.ctx);
                            crate::sync::write(&self.tenants).insert(id.clone(), t);
                            tracing::info!(organization = %id, "organization added by another fleet member");
                        }
                        Err(e) => {
                            crate::sync::write(&self.broken).insert(id.clone(), e.to_string());
                        }
                    }
                }
            }
        }
        for t in self.all() {
            if *t.parts.id != *self.declared && !stored.contains_key(&*t.parts.id) {
                tracing::info!(organization = %t.parts.id, "organization purged by another fleet member");
                t.stop(tokio::time::Instant::now() + Duration::from_secs(30))
                    .await;
                crate::sync::write(&self.tenants).remove(&*t.parts.id);
            }
        }
        crate::sync::write(&self.broken).retain(|id, _| stored.contains_key(id));
        Ok(())
    }

    /// Follows the store's organizations every `interval` (fleet mode).
    pub(crate) async fn follow(
        self: Arc<Self>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if let Err(e) = self.sync().await {
                tracing::warn!(error = %e, "cannot read the organizations from the store; serving the ones known");
            }
        }
    }

    /// After the file was reloaded: the organization it declares is stored
    /// as the file now says, and every other organization's settings are
    /// made again from the new file (its daemon-wide sections — KMS
    /// timeouts, retry, canary, unwrap cache — apply to every
    /// organization), with a provider for them.
    pub(crate) async fn follow_file(&self) {
        let _one = self.changing.lock().await;
        let file = self.file.settings();
        if let Err(e) = declare(&*self.ctx.registry, &self.ctx.audit, &file).await {
            tracing::error!(error = %e, "the reloaded file's organization could not be stored; other fleet members keep its previous settings");
        }
        for t in self.all() {
            if *t.parts.id == *self.declared {
                continue;
            }
            let settings = match file.for_org(&t.parts.record.spec) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::error!(organization = %t.parts.id, error = %e, "under the reloaded file the organization's settings do not validate; it keeps its previous ones");
                    continue;
                }
            };
            match crate::provider::instrumented(
                &settings,
                self.ctx.metrics.clone(),
                t.parts.audit.clone(),
            )
            .await
            {
                Ok(provider) => t.parts.current.replace(settings, provider),
                Err(e) => {
                    tracing::error!(organization = %t.parts.id, error = %e, "no provider for the organization under the reloaded file; it keeps its previous one");
                }
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

/// The Test round trip of a new organization's key, with its own
/// encryption context; nothing is written.
async fn test(settings: &Settings) -> Result<(), OrgError> {
    let report = crate::kms_check::test_candidate(settings).await;
    match report.failure() {
        None => Ok(()),
        Some(step) => Err(OrgError::TestFailed {
            org: settings.organization_id().to_string(),
            kms_key: report.kms_key.clone(),
            step: step.step.clone(),
            detail: step.detail.clone(),
        }),
    }
}

/// Creates the organization the file declares, or brings its stored spec
/// in line with the file. Returns it as stored. Fleet members starting
/// together race for the same record: a lost race reads it again.
async fn declare(
    registry: &dyn Registry,
    audit: &Arc<Audit>,
    file: &Settings,
) -> Result<OrgRecord, OrgError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match declare_once(registry, audit, file).await {
            Err(OrgError::Store(StoreError::Conflict { .. })) if attempts < 5 => continue,
            other => return other,
        }
    }
}

async fn declare_once(
    registry: &dyn Registry,
    audit: &Arc<Audit>,
    file: &Settings,
) -> Result<OrgRecord, OrgError> {
    let spec = file.declared_org();
    let now: Timestamp = time::now();
    match registry.org(&spec.id).await? {
        None => {
            let record = OrgRecord::new(spec, OrgSource::File, now);
            registry.save_org(&record, Expect::Absent).await?;
            Ok(record)
        }
        Some(stored) if stored.spec == spec && stored.source == OrgSource::File => Ok(stored),
        Some(stored) => {
            let mut record = stored.clone();
            record.spec = spec;
            record.source = OrgSource::File;
            record.updated_at = now;
            if record.state == OrgState::Removed {
                tracing::warn!(organization = %record.id(), "the configuration file declares an organization that was removed; it stays removed until restored");
            }
            registry
                .save_org(&record, Expect::Is(Box::new(stored)))
                .await?;
            audit
                .for_org(record.id())
                .record_async(AuditEvent::OrgChanged {
                    spec: record.spec.clone(),
                })
                .await?;
            Ok(record)
        }
    }
}
