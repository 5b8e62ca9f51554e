//! Changes of the set made here: add (Test first, save only if it
//! passes, the first key pair before the answer), set, remove, restore,
//! purge — each audited, one at a time.

use super::tenant::{self, Preflight, Tenant};
use super::{OrgError, Orgs, FIRST_KEY_PAIR_BOUND};
use crate::audit::AuditEvent;
use crate::config::Settings;
use crate::domain::{is_org_id, OrgPatch, OrgRecord, OrgSource, OrgSpec, OrgState, Reason};
use crate::rotation::RotationError;
use crate::store::{Expect, StoreError};
use crate::time;
use std::sync::Arc;
use std::time::Duration;

impl<X: Send + Sync + 'static> Orgs<X> {
    /// Adds an organization as the anchor's admin page does: its settings
    /// validated, the Test round trip with its own encryption context, and
    /// only then saved; its first key pair is made and proven before this
    /// returns. On any failure nothing is kept.
    pub(crate) async fn add(
        &self,
        spec: OrgSpec,
        require_isolation: bool,
    ) -> Result<(Arc<Tenant<X>>, crate::kms_check::TestReport), OrgError> {
        if !is_org_id(&spec.id) || spec.id == crate::isolation::PROBE_ORG {
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
        let report = test(&self.ctx, &settings, require_isolation).await?;
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
            self.put(id.clone(), tenant.clone());
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
            self.take(&id);
            tenant
                .stop(tokio::time::Instant::now() + Duration::from_secs(30))
                .await;
            self.undo_add(&id).await;
            return Err(e);
        }
        tracing::info!(organization = %id, isolation = ?report.isolation, "organization added");
        for w in &report.warnings {
            tracing::warn!(organization = %id, "{w}");
        }
        Ok((tenant, report))
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
        self.take(id);
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
    pub(super) async fn swap(
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
        self.put(id, tenant.clone());
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
            test(&self.ctx, &settings, false).await?;
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
}

/// The Test round trip of a new organization's key, with its own
/// encryption context. Nothing is saved, but each call is in the
/// organization's audit trail (refused ones too: what a customer is shown).
async fn test(
    ctx: &super::Ctx,
    settings: &Settings,
    require_isolation: bool,
) -> Result<crate::kms_check::TestReport, OrgError> {
    let audit = ctx.audit.for_org(settings.organization_id());
    let report =
        crate::kms_check::test_recorded(settings, require_isolation, ctx.metrics.clone(), audit)
            .await;
    match report.failure() {
        None => Ok(report),
        Some(step) => Err(OrgError::TestFailed {
            org: settings.organization_id().to_string(),
            kms_key: report.kms_key.clone(),
            step: step.step.clone(),
            detail: step.detail.clone(),
        }),
    }
}
