//! Rewrap: after a KMS key change, re-encrypt every stored key pair's data
//! key under the current KMS key with KMS `ReEncrypt` — the plaintext data
//! key never leaves KMS — so the old KMS key can be retired.
//!
//! One key pair per store transaction, and a key pair already wrapped by the
//! current key is skipped: a rewrap interrupted by a crash is simply run
//! again, and running it twice changes nothing. Each re-wrapped envelope is
//! decrypted back and matched to its public key before it replaces the old
//! one, so a bad answer from KMS can never cost a private key.

use crate::current::{Current, SharedCurrent};
use crate::domain::KeyPairRecord;
use crate::proof::{self, ProofError};
use crate::provider::{ProviderError, ReEncrypted};
use crate::store::{decodable, KeyStore, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What happened to one key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewrapOutcome {
    /// Re-wrapped under the current key now.
    Rewrapped,
    /// Already under the current key.
    Skipped,
    /// Left as it was (see the problem; run rewrap again).
    Failed,
}

crate::domain::display_as_serde!(RewrapOutcome);

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
        /// What happened to it.
        outcome: RewrapOutcome,
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

/// Why one key pair could not be re-wrapped.
#[derive(Debug, thiserror::Error)]
enum RewrapError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the re-wrapped envelope does not verify: {0}")]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs one rewrap at a time in the background, streaming its progress.
pub(crate) struct Rewrapper {
    store: Arc<dyn KeyStore>,
    current: SharedCurrent,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Rewrapper {
    pub(crate) fn new(store: Arc<dyn KeyStore>, current: SharedCurrent) -> Rewrapper {
        Rewrapper {
            store,
            current,
            running: Default::default(),
        }
    }

    /// Starts a rewrap and returns its event stream, or `None` if one is
    /// already running. The rewrap finishes even if nobody listens.
    pub(crate) fn start(
        self: &Arc<Self>,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<RewrapEvent>> {
        let guard = self.running.clone().try_lock_owned().ok()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let me = self.clone();
        tokio::spawn(async move {
            let _one_at_a_time = guard;
            me.rewrap(|e| {
                let _ = tx.send(e);
            })
            .await;
        });
        Some(rx)
    }

    /// Re-wraps every decodable key pair; reports each step to `progress`.
    pub(crate) async fn rewrap(&self, progress: impl FnMut(RewrapEvent)) {
        // Bulk work: behind unwraps and Change Key Now in the KMS budget.
        crate::provider::budget::with_priority(
            crate::provider::budget::Priority::Scheduled,
            self.rewrap_all(progress),
        )
        .await
    }

    async fn rewrap_all(&self, mut progress: impl FnMut(RewrapEvent)) {
        let cur = self.current.get();
        let target = match cur.provider.describe_key().await {
            Ok(d) => d.arn,
            Err(e) => {
                progress(RewrapEvent::Error {
                    message: format!("cannot resolve the current KMS key: {e}"),
                });
                return;
            }
        };
        // The backup keys as KMS names them (the configuration may use
        // aliases): what every envelope's backup wrappings should be.
        let mut backups = Vec::new();
        for b in cur.provider.backup_keys() {
            match cur.provider.describe(&b).await {
                Ok(d) => backups.push(d.arn),
                Err(e) => {
                    progress(RewrapEvent::Error {
                        message: format!("cannot resolve the backup KMS key {b}: {e}"),
                    });
                    return;
                }
            }
        }
        let records = match self.store.list().await {
            Ok(list) => decodable(list),
            Err(e) => {
                progress(RewrapEvent::Error {
                    message: format!("store: {e}"),
                });
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
            let has_backups = rec
                .envelope
                .backups
                .iter()
                .map(|w| &w.wrapping_key_arn)
                .eq(backups.iter());
            let (outcome, problem) = if rec.wrapping_key_arn == target && has_backups {
                skipped += 1;
                (RewrapOutcome::Skipped, None)
            } else {
                let (id, from) = (rec.id.clone(), rec.wrapping_key_arn.clone());
                match self.rewrap_one(&cur, rec.clone(), &target, &backups).await {
                    Ok(()) => {
                        rewrapped += 1;
                        tracing::info!(key_pair_id = %id, %from, to = %target, "key pair re-wrapped");
                        (RewrapOutcome::Rewrapped, None)
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(key_pair_id = %id, error = %e, "rewrap failed; the key pair stays under its old KMS key");
                        (RewrapOutcome::Failed, Some(e.to_string()))
                    }
                }
            };
            crate::failpoint::crash_point!("rewrap-between-key-pairs");
            progress(RewrapEvent::Progress {
                done: i + 1,
                total,
                id: rec.id,
                outcome,
                problem,
            });
        }
        progress(RewrapEvent::Done {
            rewrapped,
            skipped,
            failed,
        });
    }

    /// Moves the primary wrapping to the current KMS key `target` (resolved
    /// once per rewrap; ReEncrypt: the
    /// data key never leaves KMS), then makes the backup wrappings exactly
    /// `backups`: missing ones added (the data key decrypted through the
    /// primary and `Encrypt`ed under the backup), others dropped.
    async fn rewrap_one(
        &self,
        cur: &Current,
        mut rec: KeyPairRecord,
        target: &str,
        backups: &[String],
    ) -> Result<(), RewrapError> {
        if rec.envelope.wrapping_key_arn != target {
            let env = &rec.envelope;
            let ReEncrypted {
                ciphertext,
                wrapping_key_arn,
                ..
            } = cur
                .provider
                .re_encrypt(
                    &env.wrapping_key_arn,
                    &env.encrypted_data_key,
                    &env.encryption_context,
                )
                .await?;
            rec.envelope.encrypted_data_key = ciphertext;
            rec.envelope.wrapping_key_arn = wrapping_key_arn.clone();
            rec.wrapping_key_arn = wrapping_key_arn;
        }
        let mut wrappings = Vec::new();
        for b in backups {
            match rec
                .envelope
                .backups
                .iter()
                .find(|w| w.wrapping_key_arn == *b)
            {
                Some(w) => wrappings.push(w.clone()),
                None => {
                    let env = &rec.envelope;
                    let data_key = cur
                        .provider
                        .decrypt(
                            &env.wrapping_key_arn,
                            &env.encrypted_data_key,
                            &env.encryption_context,
                        )
                        .await?;
                    let w = cur
                        .provider
                        .encrypt(b, &data_key.plaintext, &env.encryption_context)
                        .await?;
                    wrappings.push(crate::domain::Wrapping {
                        wrapping_key_arn: w.wrapping_key_arn,
                        encrypted_data_key: w.ciphertext,
                    });
                }
            }
        }
        rec.envelope.format = if wrappings.is_empty() {
            crate::domain::ENVELOPE_V1
        } else {
            crate::domain::ENVELOPE_V2
        }
        .into();
        rec.envelope.backups = wrappings;
        // Prove the new envelope, through every wrapping, before it
        // replaces the old one.
        proof::prove(&*cur.provider, &rec).await?;
        self.store.replace_envelope(&rec.id, &rec.envelope).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EncryptionContext, Reason};
    use crate::provider::{DataKey, Decrypted, KeyDescription, KeyProvider, LocalProvider};
    use crate::rotation::Rotator;
    use crate::testing::fixture;

    /// A provider that knows two root keys, as KMS knows an old and a new
    /// KMS key: it decrypts under either and re-encrypts into the new one.
    struct TwoKeys {
        old: LocalProvider,
        new: LocalProvider,
    }

    impl TwoKeys {
        fn by_arn(&self, arn: &str) -> &LocalProvider {
            if arn == self.old.configured_key() {
                &self.old
            } else {
                &self.new
            }
        }
    }

    #[async_trait::async_trait]
    impl KeyProvider for TwoKeys {
        fn configured_key(&self) -> String {
            self.new.configured_key()
        }
        async fn generate_data_key(&self, c: &EncryptionContext) -> Result<DataKey, ProviderError> {
            self.new.generate_data_key(c).await
        }
        async fn decrypt(
            &self,
            arn: &str,
            ct: &[u8],
            c: &EncryptionContext,
        ) -> Result<Decrypted, ProviderError> {
            self.by_arn(arn).decrypt(arn, ct, c).await
        }
        async fn re_encrypt(
            &self,
            arn: &str,
            ct: &[u8],
            c: &EncryptionContext,
        ) -> Result<ReEncrypted, ProviderError> {
            let plain = self.by_arn(arn).decrypt(arn, ct, c).await?;
            Ok(ReEncrypted {
                ciphertext: self.new.wrap(&plain.plaintext, c),
                wrapping_key_arn: self.new.configured_key(),
                request_id: None,
            })
        }
        async fn describe_key(&self) -> Result<KeyDescription, ProviderError> {
            self.new.describe_key().await
        }
    }

    fn done(events: &[RewrapEvent]) -> Option<&RewrapEvent> {
        events.last()
    }

    #[tokio::test]
    async fn rewrap_moves_everything_to_the_current_key_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (store, old) = fixture(dir.path()).await;
        let rotator = Rotator::new(store.clone(), old.clone());
        rotator.rotate(Reason::Initial).await.unwrap();
        rotator.rotate(Reason::ChangeKeyNow).await.unwrap();
        rotator.rotate(Reason::ChangeKeyNow).await.unwrap();

        let keys = Arc::new(TwoKeys {
            old: LocalProvider::open(
                &dir.path().join("root.key"),
                crate::provider::IfMissing::Create,
            )
            .unwrap(),
            new: LocalProvider::open(
                &dir.path().join("new.key"),
                crate::provider::IfMissing::Create,
            )
            .unwrap(),
        });
        let new_arn = keys.new.configured_key();
        let current = SharedCurrent::new(old.settings(), keys.clone());
        let rewrapper = Rewrapper::new(store.clone(), current.clone());

        let mut events = Vec::new();
        rewrapper.rewrap(|e| events.push(e)).await;
        assert_eq!(
            done(&events),
            Some(&RewrapEvent::Done {
                rewrapped: 3,
                skipped: 0,
                failed: 0
            })
        );
        let records = decodable(store.list().await.unwrap());
        for r in &records {
            assert_eq!(r.wrapping_key_arn, new_arn, "{} moved", r.id);
            assert_eq!(r.envelope.wrapping_key_arn, new_arn);
            // Decrypts under the new key alone.
            proof::prove(&keys.new, r).await.unwrap();
        }

        // Running it again changes nothing.
        let before = records;
        let mut again = Vec::new();
        rewrapper.rewrap(|e| again.push(e)).await;
        assert_eq!(
            done(&again),
            Some(&RewrapEvent::Done {
                rewrapped: 0,
                skipped: 3,
                failed: 0
            })
        );
        assert_eq!(decodable(store.list().await.unwrap()), before);
    }
}
