//! Reloading the configuration (`SIGHUP`, `POST /v1/reload`).
//!
//! A reload is all or nothing. The file is validated; fields that cannot
//! change while running (`socket_path`, `state_dir`, `audit_log`, `[store]`)
//! make the
//! reload fail rather than half-apply; a changed KMS key is proven with the
//! Test round trip before it is used, and then a key pair is made under it at
//! once (reason `kms-key-changed`) — the new KMS key wraps nothing before
//! that. A changed cadence reschedules. The outcome is kept for status.

use crate::audit::{Audit, AuditError, AuditEvent};
use crate::config::{ConfigError, Settings};
use crate::current::SharedCurrent;
use crate::domain::Reason;
use crate::kms_check;
use crate::metrics::Metrics;
use crate::provider::{self, local::RootKeyError, KeyProvider};
use crate::rotation::{RotationHandle, SharedState};
use crate::store::{KeyStore, StoreError};
use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use crate::domain::ReloadResult;

/// A reload's outcome, as status and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// When it finished.
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
    /// What it did.
    pub outcome: ReloadResult,
    /// What happened, or why it failed.
    pub message: String,
    /// The key pair made under a new KMS key, if any.
    pub new_key_pair_id: Option<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error("kekd --dev has no configuration file to reload")]
    NoFile,
    #[error("{0}; nothing was applied")]
    NotAudited(AuditError),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{} cannot change while kekd runs; nothing was applied (restart kekd to change {})", .0.join(" and "), if .0.len() == 1 { "it" } else { "them" })]
    Fixed(Vec<&'static str>),
    #[error(transparent)]
    Provider(#[from] RootKeyError),
    #[error("the new KMS key {kms_key} failed the Test round trip at {step}: {detail}")]
    TestFailed {
        kms_key: String,
        step: String,
        detail: String,
    },
    #[error("cannot give socket {path} to group {gid}: {source}")]
    SocketGroup {
        path: String,
        gid: u32,
        source: std::io::Error,
    },
    #[error("configuration applied, but the new schedule could not be stored: {0}")]
    Schedule(StoreError),
    #[error("reading the configuration {0}; nothing was applied")]
    Panicked(String),
}

/// What an applied (or unchanged) reload did.
struct Applied {
    changes: Vec<String>,
    new_key_pair_id: Option<String>,
}

/// What a reloader works on.
pub(crate) struct ReloadParts {
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) current: SharedCurrent,
    pub(crate) engine: SharedState,
    pub(crate) rotation: RotationHandle,
    pub(crate) store: Arc<dyn KeyStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) audit: Arc<Audit>,
    /// The daemon's KMS request budget (its limits follow the file).
    pub(crate) budget: Arc<crate::provider::budget::Budget>,
    /// Brings existing key pairs' backup wrappings in line after the
    /// backup list changed.
    pub(crate) rewrapper: Arc<crate::rewrap::Rewrapper>,
}

/// Performs reloads, one at a time.
pub(crate) struct Reloader {
    parts: ReloadParts,
    last: Mutex<Option<ReloadOutcome>>,
    serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub(crate) fn new(parts: ReloadParts) -> Reloader {
        Reloader {
            parts,
            last: Mutex::new(None),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// The last reload's outcome, for status.
    pub(crate) fn last(&self) -> Option<ReloadOutcome> {
        crate::sync::lock(&self.last).clone()
    }

    /// Reloads now and records the outcome.
    pub(crate) async fn reload(&self) -> ReloadOutcome {
        let _one_at_a_time = self.serial.lock().await;
        let audit = &self.parts.audit;
        // Fail closed: a configuration change that cannot be audited is not
        // made.
        let started = audit
            .record_async(AuditEvent::ConfigReloadStarted {
                file: self
                    .parts
                    .config_path
                    .as_ref()
                    .map(|p| p.display().to_string()),
            })
            .await
            .map_err(ReloadError::NotAudited);
        let result = match started {
            Ok(()) => self.try_reload().await,
            Err(e) => Err(e),
        };
        let out = match result {
            Ok(a) if a.changes.is_empty() => ReloadOutcome {
                at: time::now(),
                outcome: ReloadResult::Unchanged,
                message: "configuration unchanged".into(),
                new_key_pair_id: None,
            },
            Ok(a) => ReloadOutcome {
                at: time::now(),
                outcome: ReloadResult::Applied,
                message: a.changes.join("; "),
                new_key_pair_id: a.new_key_pair_id,
            },
            Err(e) => ReloadOutcome {
                at: time::now(),
                outcome: ReloadResult::Failed,
                message: e.to_string(),
                new_key_pair_id: None,
            },
        };
        if out.outcome == ReloadResult::Failed {
            tracing::warn!(message = %out.message, "reload failed; the running configuration stays in force");
        } else {
            tracing::info!(outcome = %out.outcome, message = %out.message, "reload");
        }
        let event = AuditEvent::ConfigReload {
            outcome: out.outcome,
            message: out.message.clone(),
            new_key_pair_id: out.new_key_pair_id.clone(),
        };
        if let Err(e) = audit.record_async(event).await {
            tracing::error!(error = %e, "cannot write the audit record of a reload");
        }
        *crate::sync::lock(&self.last) = Some(out.clone());
        out
    }

    async fn try_reload(&self) -> Result<Applied, ReloadError> {
        let p = &self.parts;
        let path = p.config_path.as_ref().ok_or(ReloadError::NoFile)?;
        // Reading and validating touch the file system: off the runtime.
        let owned = path.clone();
        let new = tokio::task::spawn_blocking(move || Settings::load(&owned))
            .await
            .map_err(|e| ReloadError::Panicked(crate::report::join_error(e)))??;
        let cur = p.current.get();
        let old = &cur.settings;

        let fixed: Vec<&'static str> = [
            ("socket_path", new.socket_path != old.socket_path),
            ("state_dir", new.state_dir != old.state_dir),
            ("audit_log", new.audit_path != old.audit_path),
            ("[store]", new.store != old.store),
            ("[metrics] listen", new.metrics_listen != old.metrics_listen),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        if !fixed.is_empty() {
            return Err(ReloadError::Fixed(fixed));
        }

        let kms_key_changed = new.provider != old.provider || new.region != old.region;
        let provider: Arc<dyn KeyProvider> =
            if kms_key_changed || new.kms_timeouts != old.kms_timeouts {
                provider::instrumented(&new, p.metrics.clone(), p.audit.clone(), &p.budget).await?
            } else {
                cur.provider.clone()
            };
        if kms_key_changed {
            let report = kms_check::round_trip(&*provider, &new, false).await;
            if let Some(f) = report.failure() {
                return Err(ReloadError::TestFailed {
                    kms_key: report.kms_key.clone(),
                    step: f.step.clone(),
                    detail: f.detail.clone(),
                });
            }
        }

        let mut changes = Vec::new();
        if kms_key_changed {
            changes.push(format!(
                "KMS key {} -> {}",
                cur.provider.configured_key(),
                provider.configured_key()
            ));
        }
        let reschedule =
            new.cadence.to_string() != old.cadence.to_string() || new.timezone != old.timezone;
        if reschedule {
            changes.push(format!(
                "cadence {} ({}) -> {} ({})",
                old.cadence, old.timezone, new.cadence, new.timezone
            ));
        }
        for (name, differs) in [
            (
                "organization_id",
                new.organization_id != old.organization_id,
            ),
            ("encryption_context_key", new.context_key != old.context_key),
            ("key_type", new.key_type != old.key_type),
            ("retention", new.retention != old.retention),
            ("kms timeouts", new.kms_timeouts != old.kms_timeouts),
            ("kms request budget", new.kms_budget != old.kms_budget),
            ("retry", new.retry != old.retry),
            (
                "max_key_age_warning",
                new.max_key_age_warning != old.max_key_age_warning,
            ),
            ("announce_ahead", new.announce_ahead != old.announce_ahead),
            ("prepare_window", new.prepare_window != old.prepare_window),
            ("canary", new.canary != old.canary),
            ("unwrap cache", new.unwrap != old.unwrap),
        ] {
            if differs {
                changes.push(name.to_string());
            }
        }
        if new.access != old.access {
            changes.push("access".into());
            if new.access.socket_group != old.access.socket_group {
                if let Some(gid) = new.access.socket_group {
                    std::os::unix::fs::chown(&new.socket_path, None, Some(gid)).map_err(
                        |source| ReloadError::SocketGroup {
                            path: new.socket_path.display().to_string(),
                            gid,
                            source,
                        },
                    )?;
                }
            }
        }
        if new.log != old.log {
            changes.push("log settings (take effect at the next start)".into());
        }

        let new = Arc::new(new);
        p.budget.configure(new.kms_budget);
        p.current.replace(new.clone(), provider);
        // The operator looked at the configuration: a notice of the key
        // behind it changing is taken as seen.
        p.engine.update(|s| s.health.wrapping_key_changed = None);

        if reschedule {
            crate::rotation::reschedule(&p.engine, &*p.store, &p.rotation, &new)
                .await
                .map_err(ReloadError::Schedule)?;
        }

        if new.backup_keys() != old.backup_keys() {
            // The new backups were proven by the round trip above; every
            // existing key pair gets its wrappings added or dropped by a
            // rewrap, each proven before it is stored.
            match p.rewrapper.start() {
                Some(mut events) => {
                    changes.push("backup KMS keys: existing key pairs are being re-wrapped".into());
                    tokio::spawn(async move {
                        while let Some(e) = events.recv().await {
                            if let crate::rewrap::RewrapEvent::Done { rewrapped, failed, .. } = e {
                                tracing::info!(rewrapped, failed, "re-wrap after the backup keys changed finished");
                            }
                        }
                    });
                }
                None => changes.push(
                    "backup KMS keys: a rewrap is already running; run kekctl rewrap again after it".into(),
                ),
            }
        }

        let mut new_key_pair_id = None;
        if kms_key_changed {
            match p.rotation.rotate(Reason::KmsKeyChanged).await {
                Ok(rec) => {
                    changes.push(format!("new key pair {} under the new KMS key", rec.id));
                    new_key_pair_id = Some(rec.id.clone());
                }
                Err(e) => changes.push(format!(
                    "the key pair under the new KMS key failed and is being retried: {e}"
                )),
            }
        }
        Ok(Applied {
            changes,
            new_key_pair_id,
        })
    }
}
