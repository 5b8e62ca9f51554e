//! Retention pruning: retired key pairs retired longer ago than `retention`
//! are deleted — the recordings they protect are past the retention period.
//! The active key pair and anything retired more recently are never touched;
//! without `retention` nothing is pruned. Each deletion is audited first, and
//! skipped if it cannot be.

use crate::audit::{Audit, AuditEvent};
use crate::current::SharedCurrent;
use crate::domain::KeyState;
use crate::store::{decodable, KeyStore};
use crate::time;
use std::sync::Arc;

/// Prunes the store by the retention in force.
pub(crate) struct Pruner {
    store: Arc<dyn KeyStore>,
    current: SharedCurrent,
    audit: Option<Arc<Audit>>,
}

impl Pruner {
    pub(crate) fn new(
        store: Arc<dyn KeyStore>,
        current: SharedCurrent,
        audit: Option<Arc<Audit>>,
    ) -> Pruner {
        Pruner {
            store,
            current,
            audit,
        }
    }

    /// Deletes what is past retention; returns the pruned ids.
    pub(crate) async fn prune(&self) -> Vec<String> {
        let Some(retention) = self.current.settings().retention else {
            return Vec::new();
        };
        let Ok(limit) = chrono::Duration::from_std(retention) else {
            return Vec::new();
        };
        let records = match self.store.list().await {
            Ok(list) => decodable(list),
            Err(e) => {
                tracing::warn!(error = %e, "prune skipped: cannot list the store");
                return Vec::new();
            }
        };
        // Checked: a retention reaching before the calendar's start prunes
        // nothing, it never panics.
        let Some(cutoff) = time::now().checked_sub_signed(limit) else {
            return Vec::new();
        };
        let mut pruned = Vec::new();
        for r in records {
            let expired = matches!(r.state, KeyState::Retired | KeyState::Superseded)
                && r.retired_at.is_some_and(|t| t < cutoff);
            if !expired {
                continue;
            }
            if let Some(audit) = &self.audit {
                let event = AuditEvent::Prune {
                    key_pair_id: r.id.clone(),
                    retired_at: r.retired_at,
                };
                if let Err(e) = audit.record_async(event).await {
                    tracing::error!(error = %e, key_pair_id = %r.id, "not pruning: the deletion cannot be audited");
                    continue;
                }
            }
            crate::failpoint::crash_point!("prune-after-audit-before-delete");
            match self.store.delete_retired(&r.id).await {
                Ok(()) => {
                    tracing::info!(key_pair_id = %r.id, "pruned: retired longer ago than the retention period");
                    pruned.push(r.id);
                }
                Err(e) => tracing::warn!(error = %e, "prune skipped"),
            }
        }
        pruned
    }
}
