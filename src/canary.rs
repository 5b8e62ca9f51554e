//! The decryptability canary: proves, before anyone needs to play a
//! recording back, that the active key pair and the most recent ones still
//! decrypt through KMS and match their public keys, and that the KMS key is
//! still `Enabled` and not pending deletion. Runs on an interval and on
//! `kekctl check`; a failure shows in status, metrics and the log.

use crate::current::SharedCurrent;
use crate::domain::{KeyPairRecord, KeyState, NoticedBy};
use crate::kms_check;
use crate::metrics::Metrics;
use crate::proof;
use crate::provider::budget::{with_priority, Priority};
use crate::store::{decodable, KeyStore, StoreError};
use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// One key pair's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedKeyPair {
    /// The key pair (`-` when the store itself could not be read).
    pub id: String,
    /// Decrypted through KMS and matched its public key.
    pub ok: bool,
    /// Why not.
    pub problem: Option<String>,
}

/// A canary run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryReport {
    /// When it finished.
    #[serde(with = "time::rfc3339")]
    pub at: Timestamp,
    /// Everything passed.
    pub ok: bool,
    /// The KMS key check (DescribeKey): `null` when it passed.
    pub kms_key_problem: Option<String>,
    /// The key pairs checked, active first.
    pub key_pairs: Vec<CheckedKeyPair>,
}

/// Runs canaries and keeps the last report.
pub(crate) struct Canary {
    store: Arc<dyn KeyStore>,
    current: SharedCurrent,
    metrics: Arc<Metrics>,
    last: Mutex<Option<CanaryReport>>,
    /// Where the preflight's verdict on the KMS key goes (status).
    key_watch: Option<crate::key_watch::KeyWatch>,
}

impl Canary {
    pub(crate) fn new(
        store: Arc<dyn KeyStore>,
        current: SharedCurrent,
        metrics: Arc<Metrics>,
    ) -> Canary {
        Canary {
            store,
            current,
            metrics,
            last: Mutex::new(None),
            key_watch: None,
        }
    }

    /// Reports the preflight's verdict on the KMS key to `watch`.
    pub(crate) fn with_key_watch(mut self, watch: crate::key_watch::KeyWatch) -> Canary {
        self.key_watch = Some(watch);
        self
    }

    /// The last report.
    pub(crate) fn last(&self) -> Option<CanaryReport> {
        crate::sync::lock(&self.last).clone()
    }

    /// Checks now; logs, counts and keeps the report.
    pub(crate) async fn run(&self) -> CanaryReport {
        let cur = self.current.get();
        let preflight = kms_check::preflight(&*cur.provider, &cur.settings).await;
        if let Some(w) = &self.key_watch {
            match &preflight {
                Ok(_) => w.usable(NoticedBy::Canary),
                Err(e) => {
                    if let Some(p) = e.problem(NoticedBy::Canary) {
                        w.mark(p);
                    }
                }
            }
        }
        let kms_key_problem = preflight.err().map(|e| e.to_string());
        let mut key_pairs = Vec::new();
        let chosen = match self.chosen(cur.settings.canary.recent).await {
            Ok(c) => c,
            Err(e) => {
                key_pairs.push(CheckedKeyPair {
                    id: "-".into(),
                    ok: false,
                    problem: Some(format!("store: {e}")),
                });
                Vec::new()
            }
        };
        for r in &chosen {
            let result = proof::prove(&*cur.provider, r).await;
            if let (Some(w), Err(proof::ProofError::Provider(p))) = (&self.key_watch, &result) {
                // The active key pair's wrapping key is the configured one.
                if r.state == KeyState::Active {
                    w.saw(NoticedBy::Canary, p);
                }
            }
            key_pairs.push(CheckedKeyPair {
                id: r.id.clone(),
                ok: result.is_ok(),
                problem: result.err().map(|e| e.to_string()),
            });
        }
        let ok = kms_key_problem.is_none() && key_pairs.iter().all(|k| k.ok);
        let report = CanaryReport {
            at: time::now(),
            ok,
            kms_key_problem,
            key_pairs,
        };
        self.metrics
            .canary(if report.ok { "success" } else { "failure" });
        if report.ok {
            tracing::info!(
                checked = report.key_pairs.len(),
                "canary passed: key pairs decrypt and match, KMS key usable"
            );
        } else {
            tracing::error!(
                kms_key_problem = report.kms_key_problem.as_deref().unwrap_or("-"),
                failed = ?report.key_pairs.iter().filter(|k| !k.ok).map(|k| &k.id).collect::<Vec<_>>(),
                "canary FAILED: recordings may not be playable back"
            );
        }
        *crate::sync::lock(&self.last) = Some(report.clone());
        report
    }

    /// The active key pair, then the `recent` newest ones that were ever
    /// active — read page by page from the newest, never the whole history.
    async fn chosen(&self, recent: usize) -> Result<Vec<KeyPairRecord>, StoreError> {
        let mut chosen: Vec<KeyPairRecord> = self.store.active().await?.into_iter().collect();
        let (mut wanted, mut cursor, mut looked) = (recent, None::<String>, 0usize);
        while wanted > 0 && looked < 10_000 {
            let page = self.store.page(cursor.as_deref(), 100).await?;
            looked += page.records.len();
            for r in decodable(page.records) {
                if wanted > 0 && r.state == KeyState::Retired && r.activated_at.is_some() {
                    if let Some(full) = self.store.get(&r.id).await? {
                        chosen.push(full);
                        wanted -= 1;
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(chosen)
    }

    /// Runs on the configured interval (re-read after each run, so reloads
    /// apply) until `shutdown`. A run in progress is finished first.
    ///
    /// The first run falls at the organization's own place in the first
    /// interval, so many organizations' canaries are spread over it instead
    /// of all running at once; their KMS requests come last in the budget.
    pub(crate) async fn run_periodically(&self, shutdown: CancellationToken) {
        let mut first = true;
        loop {
            let settings = self.current.settings();
            let interval = settings
                .canary
                .interval
                .unwrap_or(std::time::Duration::from_secs(60));
            let wait = if first {
                crate::spread::offset(&settings.organization_id, "canary", interval)
            } else {
                interval
            };
            first = false;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if self.current.settings().canary.interval.is_some() {
                // Boxed: an idle canary's task stays small.
                Box::pin(with_priority(Priority::Background, self.run())).await;
            }
        }
    }
}
