//! Rewrap (DESIGN.md item 9): after a KMS key change, re-encrypt every
//! stored key pair's data key under the current KMS key with KMS
//! `ReEncrypt` — the plaintext data key never leaves KMS — so the old KMS key
//! can be retired.
//!
//! One key pair per store transaction, and a key pair already wrapped by the
//! current key is skipped: a rewrap interrupted by a crash is simply run
//! again, and running it twice changes nothing. Each re-wrapped envelope is
//! decrypted back and matched to its public key before it replaces the old
//! one, so a bad answer from KMS can never cost a private key.

use crate::provider::ReEncrypted;
use crate::rotation::{Current, Rotator};
use crate::store::KeyPairRecord;
use serde::{Deserialize, Serialize};

/// One line of rewrap progress (the API streams these as JSON lines).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RewrapEvent {
    /// Before the first key pair.
    Start {
        /// Key pairs to look at.
        total: usize,
        /// The key ARN everything ends up under.
        target_key_arn: String,
    },
    /// After each key pair.
    Progress {
        /// How many are done.
        done: usize,
        /// Out of.
        total: usize,
        /// The key pair.
        id: String,
        /// `rewrapped`, `skipped` (already under the target) or `failed`.
        outcome: String,
        /// Why it failed.
        problem: Option<String>,
    },
    /// At the end.
    Done {
        /// Re-wrapped now.
        rewrapped: usize,
        /// Already under the target.
        skipped: usize,
        /// Failed (left as they were; run rewrap again).
        failed: usize,
    },
    /// Nothing could be done (e.g. the target key cannot be described).
    Error {
        /// Why.
        message: String,
    },
}

/// Runs one rewrap at a time in the background, streaming its progress.
pub struct Rewrapper {
    rotator: Rotator,
    running: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Rewrapper {
    /// A rewrapper over the rotator's store and provider.
    pub fn new(rotator: Rotator) -> Rewrapper {
        Rewrapper {
            rotator,
            running: Default::default(),
        }
    }

    /// Starts a rewrap and returns its event stream, or `None` if one is
    /// already running. The rewrap finishes even if nobody listens.
    pub fn start(
        self: &std::sync::Arc<Self>,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<RewrapEvent>> {
        let guard = self.running.clone().try_lock_owned().ok()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let me = self.clone();
        tokio::spawn(async move {
            let _one_at_a_time = guard;
            rewrap(&me.rotator, |e| {
                let _ = tx.send(e);
            })
            .await;
        });
        Some(rx)
    }
}

/// Re-wraps every decodable key pair; reports each step to `progress`.
pub async fn rewrap(rotator: &Rotator, mut progress: impl FnMut(RewrapEvent)) {
    let cur = Current::get(&rotator.current);
    let target = match cur.provider.describe_key().await {
        Ok(d) => d.arn,
        Err(e) => {
            progress(RewrapEvent::Error {
                message: format!("cannot resolve the current KMS key: {e}"),
            });
            return;
        }
    };
    let records = match rotator.records().await {
        Ok(r) => r,
        Err(message) => {
            progress(RewrapEvent::Error { message });
            return;
        }
    };
    let total = records.len();
    progress(RewrapEvent::Start {
        total,
        target_key_arn: target.clone(),
    });
    let (mut rewrapped, mut skipped, mut failed) = (0, 0, 0);
    for (i, rec) in records.into_iter().enumerate() {
        let (outcome, problem) = if rec.wrapping_key_arn == target {
            skipped += 1;
            ("skipped", None)
        } else {
            match rewrap_one(rotator, &cur, rec.clone()).await {
                Ok(()) => {
                    rewrapped += 1;
                    tracing::info!(key_pair_id = %rec.id, from = %rec.wrapping_key_arn, to = %target, "key pair re-wrapped");
                    ("rewrapped", None)
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(key_pair_id = %rec.id, error = %e, "rewrap failed; the key pair stays under its old KMS key");
                    ("failed", Some(e))
                }
            }
        };
        progress(RewrapEvent::Progress {
            done: i + 1,
            total,
            id: rec.id,
            outcome: outcome.into(),
            problem,
        });
    }
    progress(RewrapEvent::Done {
        rewrapped,
        skipped,
        failed,
    });
}

async fn rewrap_one(
    rotator: &Rotator,
    cur: &Current,
    mut rec: KeyPairRecord,
) -> Result<(), String> {
    let env = &rec.envelope;
    let ReEncrypted {
        ciphertext: blob,
        wrapping_key_arn: arn,
        ..
    } = cur
        .provider
        .re_encrypt(
            &env.wrapping_key_arn,
            &env.encrypted_data_key,
            &env.encryption_context,
        )
        .await
        .map_err(|e| e.to_string())?;
    rec.envelope.encrypted_data_key = blob;
    rec.envelope.wrapping_key_arn = arn.clone();
    rec.wrapping_key_arn = arn;
    // Prove the new envelope before it replaces the old one.
    rotator
        .verify(&rec)
        .await
        .map_err(|e| format!("the re-wrapped envelope does not verify: {e}"))?;
    let store = rotator.store.clone();
    let (id, envelope) = (rec.id.clone(), rec.envelope.clone());
    tokio::task::spawn_blocking(move || store.replace_envelope(&id, &envelope))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::LocalProvider;
    use crate::store::{KeyStore, Reason, RedbStore};
    use std::sync::Arc;

    #[tokio::test]
    async fn rewrap_moves_everything_to_the_current_key_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::config::Settings::dev(dir.path());
        settings.key_bits = crate::config::KeyBits::Rsa2048;
        let settings = Arc::new(settings);
        let store: Arc<dyn KeyStore> =
            Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap());
        let old = Arc::new(LocalProvider::open_or_create(&dir.path().join("old.key")).unwrap());
        let r = Rotator {
            store: store.clone(),
            current: Current::shared(settings.clone(), old.clone()),
            metrics: Default::default(),
            audit: None,
        };
        r.rotate(Reason::Initial).await.unwrap();
        r.rotate(Reason::ChangeKeyNow).await.unwrap();
        // With one key everything is already under it: all skipped, nothing
        // rewritten. (Moving between two KMS keys is tested against moto.)
        let mut events = Vec::new();
        rewrap(&r, |e| events.push(e)).await;
        assert_eq!(
            events.last(),
            Some(&RewrapEvent::Done {
                rewrapped: 0,
                skipped: 2,
                failed: 0
            })
        );
    }
}
