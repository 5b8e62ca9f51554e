//! Following the store: what another fleet member changed, and the file
//! after a reload (its organization stored anew, its daemon-wide sections
//! applied to every organization).

use super::tenant::{self, Preflight};
use super::{OrgError, Orgs};
use crate::audit::{Audit, AuditEvent};
use crate::config::Settings;
use crate::domain::{OrgRecord, OrgSource, OrgState};
use crate::store::{Expect, Registry, Revision, StoreError};
use crate::time::{self, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

impl<X: Send + Sync + 'static> Orgs<X> {
    /// Brings the served set in line with the store: what another fleet
    /// member added, changed, removed or purged is served here from the
    /// next call on. One read of the store's organizations, whatever their
    /// number.
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
            self.follow_record(id, Some(record)).await;
        }
        for t in self.all() {
            if !stored.contains_key(&*t.parts.id) {
                self.follow_record(&t.parts.id, None).await;
            }
        }
        crate::sync::write(&self.broken).retain(|id, _| stored.contains_key(id));
        Ok(())
    }

    /// [`Orgs::sync`] for the one organization `id`: one read.
    async fn sync_one(&self, id: &str) -> Result<(), StoreError> {
        let _one = self.changing.lock().await;
        let record = self.ctx.registry.org(id).await?;
        self.follow_record(id, record.as_ref()).await;
        if record.is_none() {
            crate::sync::write(&self.broken).remove(id);
        }
        Ok(())
    }

    /// Serves organization `id` as the store holds it (`None`: purged).
    async fn follow_record(&self, id: &str, record: Option<&OrgRecord>) {
        if *id == *self.declared {
            return;
        }
        let served = self.get(id);
        let Some(record) = record else {
            if let Some(t) = served {
                tracing::info!(organization = %id, "organization purged by another fleet member");
                t.stop(tokio::time::Instant::now() + Duration::from_secs(30))
                    .await;
                self.take(id);
            }
            return;
        };
        if served.as_ref().is_some_and(|t| *t.parts.record == *record) {
            return;
        }
        let settings = match self.file.settings().for_org(&record.spec) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                crate::sync::write(&self.broken).insert(id.to_string(), e.to_string());
                return;
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
                        self.put(id.to_string(), t);
                        tracing::info!(organization = %id, "organization added by another fleet member");
                    }
                    Err(e) => {
                        crate::sync::write(&self.broken).insert(id.to_string(), e.to_string());
                    }
                }
            }
        }
    }

    /// Follows the fleet (fleet mode): every `interval`, one read of the
    /// fleet's revision. Nothing changed: every organization's head is as
    /// fresh as that read. One change: that organization's record and head
    /// are read. More (or the first read): every record, and every head.
    pub(crate) async fn follow(
        self: Arc<Self>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut seen: Option<Revision> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let read = self.ctx.registry.revision().await;
            let at = time::now();
            let revision = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the fleet's revision; serving the organizations and key pairs known");
                    for t in self.all() {
                        crate::rotation::fleet_watched(&t.parts.engine, Err(&e));
                    }
                    continue;
                }
            };
            let followed = match Change::since(seen.as_ref(), revision.as_ref()) {
                Change::None => Ok(()),
                Change::One(id) => self.sync_one(&id).await.map(|()| {
                    if let Some(t) = self.get(&id) {
                        t.parts.rotation.refresh();
                    }
                }),
                Change::Many => self.sync().await.map(|()| {
                    for t in self.all() {
                        t.parts.rotation.refresh();
                    }
                }),
            };
            match followed {
                Ok(()) => {
                    for t in self.all() {
                        crate::rotation::fleet_watched(&t.parts.engine, Ok(at));
                    }
                    seen = revision;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the organizations from the store; serving the ones known");
                }
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
/// in line with the file. Returns it as stored, and whether its cadence or
/// time zone changed (its stored schedule was made for the old ones).
/// Fleet members starting together race for the same record: a lost race
/// reads it again.
pub(super) async fn declare(
    registry: &dyn Registry,
    audit: &Arc<Audit>,
    file: &Settings,
) -> Result<(OrgRecord, bool), OrgError> {
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
) -> Result<(OrgRecord, bool), OrgError> {
    let spec = file.declared_org();
    let now: Timestamp = time::now();
    match registry.org(&spec.id).await? {
        None => {
            let record = OrgRecord::new(spec, OrgSource::File, now);
            registry.save_org(&record, Expect::Absent).await?;
            Ok((record, false))
        }
        Some(stored) if stored.spec == spec && stored.source == OrgSource::File => {
            Ok((stored, false))
        }
        Some(stored) => {
            let rescheduled =
                stored.spec.cadence != spec.cadence || stored.spec.timezone != spec.timezone;
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
            Ok((record, rescheduled))
        }
    }
}

/// What a read of the fleet's revision says changed since the last one.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    None,
    /// Every change since was this organization's.
    One(String),
    /// More than one, an unknown one, or the first read.
    Many,
}

impl Change {
    fn since(seen: Option<&Revision>, now: Option<&Revision>) -> Change {
        match (seen, now) {
            (Some(s), Some(n)) if n.changes == s.changes => Change::None,
            (Some(s), Some(n)) if n.changes > s.changes && n.changes - s.changes <= n.run => {
                match &n.last {
                    Some(id) => Change::One(id.clone()),
                    None => Change::Many,
                }
            }
            _ => Change::Many,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(changes: u64, last: &str, run: u64) -> Revision {
        Revision {
            changes,
            last: Some(last.into()),
            run,
        }
    }

    #[test]
    fn changes_of_one_organization_read_it_alone_and_anything_else_reads_all() {
        let (a, b) = (rev(7, "a", 1), rev(8, "b", 1));
        assert_eq!(Change::since(Some(&a), Some(&a)), Change::None);
        assert_eq!(Change::since(Some(&a), Some(&b)), Change::One("b".into()));
        // Three changes since, the last three all b's (an organization
        // added: its record, its pending key pair, its activation).
        assert_eq!(
            Change::since(Some(&a), Some(&rev(10, "b", 3))),
            Change::One("b".into())
        );
        // Two changes since, only the last one b's: someone else changed
        // too. So do a table made anew, the first read, and no revision at
        // all (a store with none): everything is read.
        assert_eq!(Change::since(Some(&a), Some(&rev(9, "b", 1))), Change::Many);
        assert_eq!(Change::since(Some(&b), Some(&rev(0, "b", 0))), Change::Many);
        assert_eq!(Change::since(None, Some(&a)), Change::Many);
        assert_eq!(Change::since(Some(&a), None), Change::Many);
        assert_eq!(Change::since(None, None), Change::Many);
    }
}
