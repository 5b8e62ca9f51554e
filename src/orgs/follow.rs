//! Following the store: what another fleet member changed, and the file
//! after a reload (its organization stored anew, its daemon-wide sections
//! applied to every organization).

use super::tenant::{self, Preflight};
use super::{OrgError, Orgs};
use crate::audit::{Audit, AuditEvent};
use crate::config::Settings;
use crate::domain::{OrgRecord, OrgSource, OrgState};
use crate::store::{Expect, Registry, StoreError};
use crate::time::{self, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

impl<X: Send + Sync + 'static> Orgs<X> {
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
                            self.put(id.clone(), t);
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
                self.take(&t.parts.id);
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
                &self.ctx.budget,
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
}

/// Creates the organization the file declares, or brings its stored spec
/// in line with the file. Returns it as stored. Fleet members starting
/// together race for the same record: a lost race reads it again.
pub(super) async fn declare(
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
