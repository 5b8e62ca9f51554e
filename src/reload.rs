//! Reloading the configuration (`SIGHUP`, `POST /v1/reload`), DESIGN.md
//! item 6.
//!
//! A reload is all or nothing. The file is validated; fields that cannot
//! change while running (`socket_path`, `state_dir`) make the reload fail
//! rather than half-apply; a changed KMS key is proven with the Test round
//! trip before it is used, and then a key pair is made under it at once
//! (reason `kms-key-changed`) — the new KMS key wraps nothing before that.
//! A changed cadence reschedules. The outcome is kept for status.

use crate::config::Settings;
use crate::kms_check;
use crate::provider::{self, KeyProvider};
use crate::rotation::{Current, RotationHandle, SharedCurrent, SharedState};
use crate::store::{KeyStore, Reason, Schedule};
use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What a reload did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// When it finished.
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
    /// `applied`, `unchanged` or `failed`.
    pub outcome: String,
    /// What happened, or why it failed.
    pub message: String,
    /// The key pair made under a new KMS key, if any.
    pub new_key_pair_id: Option<String>,
}

/// Performs reloads, one at a time.
pub struct Reloader {
    config_path: Option<PathBuf>,
    current: SharedCurrent,
    engine: SharedState,
    rotation: RotationHandle,
    store: Arc<dyn KeyStore>,
    metrics: Arc<crate::metrics::Metrics>,
    audit: Arc<crate::audit::Audit>,
    last: Mutex<Option<ReloadOutcome>>,
    serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for `config_path` (`None` in `--dev`, which has no file).
    pub fn new(
        config_path: Option<PathBuf>,
        current: SharedCurrent,
        engine: SharedState,
        rotation: RotationHandle,
        store: Arc<dyn KeyStore>,
        metrics: Arc<crate::metrics::Metrics>,
        audit: Arc<crate::audit::Audit>,
    ) -> Reloader {
        Reloader {
            config_path,
            current,
            engine,
            rotation,
            store,
            metrics,
            audit,
            last: Mutex::new(None),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// The last reload's outcome, for status.
    pub fn last(&self) -> Option<ReloadOutcome> {
        self.last.lock().expect("reload lock").clone()
    }

    /// Reloads now and records the outcome.
    pub async fn reload(&self) -> ReloadOutcome {
        let _one_at_a_time = self.serial.lock().await;
        // Fail closed: a configuration change that cannot be audited is not
        // made.
        let started = self
            .audit
            .record_async(
                serde_json::json!({"type": "config_reload_started", "file": self.config_path}),
            )
            .await
            .map_err(|e| format!("{e}; nothing was applied"));
        let result = match started {
            Ok(()) => self.try_reload().await,
            Err(e) => Err(e),
        };
        let (outcome, message, new_key_pair_id) = match result {
            Ok((changed, message, id)) => {
                (if changed { "applied" } else { "unchanged" }, message, id)
            }
            Err(message) => ("failed", message, None),
        };
        let out = ReloadOutcome {
            at: time::now(),
            outcome: outcome.into(),
            message,
            new_key_pair_id,
        };
        if out.outcome == "failed" {
            tracing::warn!(message = %out.message, "reload failed; the running configuration stays in force");
        } else {
            tracing::info!(outcome = %out.outcome, message = %out.message, "reload");
        }
        if let Err(e) = self
            .audit
            .record_async(serde_json::json!({
                "type": "config_reload",
                "outcome": out.outcome,
                "message": out.message,
                "new_key_pair_id": out.new_key_pair_id,
            }))
            .await
        {
            tracing::error!(error = %e, "cannot write the audit record of a reload");
        }
        *self.last.lock().expect("reload lock") = Some(out.clone());
        out
    }

    async fn try_reload(&self) -> Result<(bool, String, Option<String>), String> {
        let path = self
            .config_path
            .as_ref()
            .ok_or("kekd --dev has no configuration file to reload")?;
        let new = Settings::load(path).map_err(|e| e.to_string())?;
        let cur = Current::get(&self.current);
        let old = &cur.settings;

        let mut fixed = Vec::new();
        if new.socket_path != old.socket_path {
            fixed.push("socket_path");
        }
        if new.state_dir != old.state_dir {
            fixed.push("state_dir");
        }
        if new.audit_path != old.audit_path {
            fixed.push("audit_log");
        }
        if !fixed.is_empty() {
            return Err(format!(
                "{} cannot change while kekd runs; nothing was applied (restart kekd to change {})",
                fixed.join(" and "),
                if fixed.len() == 1 { "it" } else { "them" }
            ));
        }

        let kms_key_changed = new.provider != old.provider || new.region != old.region;
        let provider: Arc<dyn KeyProvider> =
            if kms_key_changed || new.kms_timeouts != old.kms_timeouts {
                provider::instrumented(&new, self.metrics.clone(), self.audit.clone())
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                cur.provider.clone()
            };
        if kms_key_changed {
            let report = kms_check::round_trip(&*provider, &new).await;
            if let Some(f) = report.failure() {
                return Err(format!(
                    "the new KMS key {} failed the Test round trip at {}: {}",
                    report.kms_key, f.step, f.detail
                ));
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
            ("key_bits", new.key_bits != old.key_bits),
            ("retention", new.retention != old.retention),
            ("kms timeouts", new.kms_timeouts != old.kms_timeouts),
            (
                "retry",
                new.retry.initial_delay != old.retry.initial_delay
                    || new.retry.max_delay != old.retry.max_delay,
            ),
        ] {
            if differs {
                changes.push(name.to_string());
            }
        }
        if new.access != old.access {
            changes.push("access".into());
            if new.access.socket_group != old.access.socket_group {
                if let Some(gid) = new.access.socket_group {
                    std::os::unix::fs::chown(&new.socket_path, None, Some(gid)).map_err(|e| {
                        format!(
                            "cannot give socket {} to group {gid}: {e}",
                            new.socket_path.display()
                        )
                    })?;
                }
            }
        }
        if new.log_level != old.log_level || new.log_format != old.log_format {
            changes.push("log settings (take effect at the next start)".into());
        }

        let new = Arc::new(new);
        *self.current.write().expect("config lock") = Arc::new(Current {
            settings: new.clone(),
            provider,
        });

        if reschedule {
            let next = new.next_rotation_after(time::now());
            let schedule = {
                let mut st = self.engine.write().expect("state lock");
                st.schedule = Schedule {
                    last_rotation_at: st.schedule.last_rotation_at,
                    next_rotation_at: next,
                };
                st.schedule.clone()
            };
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.set_schedule(&schedule))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| {
                    format!("configuration applied, but the new schedule could not be stored: {e}")
                })?;
            self.rotation.reschedule();
        }

        let mut new_key_pair_id = None;
        if kms_key_changed {
            match self.rotation.rotate(Reason::KmsKeyChanged).await {
                Ok(rec) => {
                    changes.push(format!("new key pair {} under the new KMS key", rec.id));
                    new_key_pair_id = Some(rec.id.clone());
                }
                Err(e) => changes.push(format!(
                    "the key pair under the new KMS key failed and is being retried: {e}"
                )),
            }
        }
        if changes.is_empty() {
            return Ok((false, "configuration unchanged".into(), None));
        }
        Ok((true, changes.join("; "), new_key_pair_id))
    }
}
