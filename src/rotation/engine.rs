//! The engine task that owns rotation: it sleeps until the next due instant
//! *or* a request (mini-redis' background-task pattern), runs one rotation at
//! a time, and retries a failed one with capped exponential backoff and
//! jitter while the active key pair stays active.
//!
//! Requests that arrive while a rotation runs are answered with that
//! rotation's outcome (coalesced), so a signal storm yields a bounded number
//! of rotations. A retry covers anything due meanwhile: the rotation due
//! during an outage happens once.

use super::health::{LastError, SharedState, WrappingKeyChange};
use super::prune::Pruner;
use super::rotate::{RotationError, Rotator};
use crate::audit::{Audit, AuditEvent, Outcome as AuditOutcome};
use crate::backoff::backoff;
use crate::current::SharedCurrent;
use crate::domain::{KeyPairRecord, KeyProblem, NoticedBy, Reason, Schedule};
use crate::metrics::Metrics;
use crate::provider::budget::{with_priority, Priority};
use crate::time::{self, Timestamp};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

/// A failed rotation waiting for its retry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    /// The reason of the rotation that failed (kept by the retry).
    pub(super) reason: Reason,
    /// When it is tried again.
    pub(super) at: tokio::time::Instant,
}

/// A failed announcement waiting for its next try.
#[derive(Debug, Clone, Copy)]
pub(super) struct AnnounceRetry {
    /// Failed tries in a row.
    pub(super) attempts: u32,
    /// Not tried again before this.
    pub(super) not_before: tokio::time::Instant,
}

/// The outcome every waiter of one rotation receives.
pub(crate) type Outcome = Result<Arc<KeyPairRecord>, RotationError>;

struct Request {
    reason: Reason,
    reply: Option<oneshot::Sender<Outcome>>,
}

/// Asks the engine to rotate. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RotationHandle {
    tx: mpsc::Sender<Request>,
    reschedule: Arc<Notify>,
    refresh: Arc<Notify>,
}

impl RotationHandle {
    /// Fire and forget (signals). Returns false if a request is already
    /// queued and this one was folded into it, or the engine is gone.
    pub(crate) fn request(&self, reason: Reason) -> bool {
        self.tx
            .try_send(Request {
                reason,
                reply: None,
            })
            .is_ok()
    }

    /// Tells the engine the schedule changed (reload), so it re-reads the
    /// next due instant instead of sleeping until the old one.
    pub(crate) fn reschedule(&self) {
        self.reschedule.notify_one();
    }

    /// Fleet mode: the fleet's revision says this organization changed;
    /// the engine reads its head now.
    pub(crate) fn refresh(&self) {
        self.refresh.notify_one();
    }

    /// Rotates and waits for the outcome (the API's `POST /v1/rotate`).
    pub(crate) async fn rotate(&self, reason: Reason) -> Outcome {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                reason,
                reply: Some(reply),
            })
            .await
            .map_err(|_| RotationError::ShuttingDown)?;
        rx.await.unwrap_or(Err(RotationError::ShuttingDown))
    }
}

/// What the engine needs besides the rotation itself.
pub(crate) struct EngineParts {
    pub(crate) rotator: Rotator,
    pub(crate) pruner: Pruner,
    pub(crate) state: SharedState,
    pub(crate) current: SharedCurrent,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) audit: Option<Arc<Audit>>,
    /// How many organizations the daemon serves (with many, next key pairs
    /// are prepared ahead, spread over `prepare_window`).
    pub(crate) peers: crate::spread::Peers,
}

/// The background task that owns rotation.
pub(crate) struct Engine {
    pub(super) parts: EngineParts,
    rx: mpsc::Receiver<Request>,
    started_at: Timestamp,
    activated: watch::Sender<Option<String>>,
    reschedule: Arc<Notify>,
    refresh: Arc<Notify>,
    /// Who waits for the first rotation of an empty store.
    initial_waiters: Vec<oneshot::Sender<Outcome>>,
}

impl Engine {
    /// Creates the engine and the handle that feeds it.
    pub(crate) fn new(parts: EngineParts) -> (Engine, RotationHandle) {
        // Requests queue here while a rotation runs and are all answered by
        // the next one (or the running one). Signals use try_send: when the
        // queue is full, the signal is already covered by a queued request.
        let (tx, rx) = mpsc::channel(64);
        let active_id = parts
            .state
            .read(|s| s.active.as_ref().map(|a| a.id.clone()));
        let reschedule = Arc::new(Notify::new());
        let refresh = Arc::new(Notify::new());
        (
            Engine {
                parts,
                rx,
                started_at: time::now(),
                activated: watch::Sender::new(active_id),
                reschedule: reschedule.clone(),
                refresh: refresh.clone(),
                initial_waiters: Vec::new(),
            },
            RotationHandle {
                tx,
                reschedule,
                refresh,
            },
        )
    }

    /// The outcome of the first rotation the engine makes of an empty
    /// store (an organization just added waits for it).
    pub(crate) fn first_rotation(&mut self) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.initial_waiters.push(tx);
        rx
    }

    /// Follows the active key pair id (systemd readiness and status).
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.activated.subscribe()
    }

    /// Runs until `shutdown` is cancelled. A rotation in flight is finished
    /// first; shutdown is only looked at between rotations.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut retry: Option<Retry> = None;
        let mut announce_retry: Option<AnnounceRetry> = None;
        let has_active = self.parts.state.read(|s| s.active.is_some());
        let mut initial = (!has_active).then_some(Reason::Initial);
        // Fleet mode: the head is read at the start, then whenever the
        // fleet's revision says this organization changed, and on a timer
        // only while another member rotates it or the store fails.
        let mut refresh_at = self
            .parts
            .rotator
            .store
            .fleet()
            .map(|_| tokio::time::Instant::now());
        // Every step below is boxed: the task of each of 10,000 idle
        // organizations then holds only this loop's few words, not the
        // largest step's state (a rotation's is about 25 KiB).
        Box::pin(self.prune()).await;
        let mut said_waiting = false;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let (reason, mut waiters) = if let Some(r) = initial.take() {
                (r, std::mem::take(&mut self.initial_waiters))
            } else {
                Box::pin(self.retime_announced()).await;
                let (wake, wake_reason) = self.next_wake(&retry);
                self.say_waiting(&mut said_waiting, wake, &retry);
                let announce_at = self.next_announce(&retry, &announce_retry);
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => continue,
                    _ = self.reschedule.notified() => continue,
                    req = self.rx.recv() => match req {
                        None => break,
                        Some(req) => {
                            let mut reqs = vec![req];
                            while let Ok(r) = self.rx.try_recv() {
                                reqs.push(r);
                            }
                            let reason = reqs[0].reason;
                            (reason, reqs.into_iter().filter_map(|r| r.reply).collect())
                        }
                    },
                    _ = sleep_until_opt(wake) => (wake_reason, Vec::new()),
                    _ = sleep_until_opt(announce_at) => {
                        Box::pin(self.announce(&mut announce_retry)).await;
                        continue;
                    }
                    _ = sleep_until_opt(refresh_at) => {
                        refresh_at = Box::pin(self.refresh_fleet()).await;
                        continue;
                    }
                    _ = self.refresh.notified() => {
                        refresh_at = Box::pin(self.refresh_fleet()).await;
                        continue;
                    }
                }
            };

            self.parts.state.update(|s| s.health.rotating = true);
            tracing::info!(%reason, "rotation started");
            // A panic in a rotation is a failed rotation (degraded, retried),
            // never a dead engine behind an API that serves stale state.
            let outcome: Outcome = AssertUnwindSafe(Box::pin(with_priority(
                priority(reason),
                self.rotate(reason),
            )))
            .catch_unwind()
            .await
            .unwrap_or_else(|p| Err(RotationError::Panicked(crate::report::panic_message(&*p))))
            .map(Arc::new);
            if outcome.is_ok() {
                Box::pin(self.prune()).await;
            }
            // Coalesce: whoever asked while it ran gets this outcome.
            while let Ok(r) = self.rx.try_recv() {
                waiters.extend(r.reply);
            }
            Box::pin(self.record(reason, &outcome, &mut retry)).await;
            said_waiting = false;
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
        }
        tracing::info!("rotation engine stopped");
    }

    /// Reads the fleet's head; returns when to read it again on the
    /// engine's own timer (`None`: when the fleet's revision says so).
    async fn refresh_fleet(&self) -> Option<tokio::time::Instant> {
        let (delay, busy) = super::fleet::refresh(
            &self.parts.rotator.store,
            &self.parts.state,
            &self.activated,
        )
        .await;
        busy.then(|| tokio::time::Instant::now() + delay)
    }

    /// One rotation. A scheduled one activates the announced key pair if
    /// there is one (no KMS call); any other reason discards it first (it
    /// was never used to seal anything and stays, superseded, for audit).
    async fn rotate(&self, reason: Reason) -> Result<KeyPairRecord, RotationError> {
        let rotator = &self.parts.rotator;
        let announced = self.parts.state.update(|s| s.announced.take());
        match (announced, reason) {
            (Some(a), Reason::Scheduled | Reason::CatchUp) => {
                tracing::info!(key_pair_id = %a.id, "activating the announced key pair");
                let activated = rotator.activate_announced(&a.id).await;
                if let Err(e) = &activated {
                    // Still proven and stored: the retry activates it, with
                    // no KMS call.
                    tracing::warn!(key_pair_id = %a.id, error = %e, "cannot activate the announced key pair now; it stays announced for the retry");
                    self.parts.state.update(|s| s.announced = Some(a));
                }
                activated
            }
            (Some(a), _) => {
                tracing::info!(key_pair_id = %a.id, %reason, "discarding the announced key pair (superseded)");
                rotator.retire_unused(&a.id).await;
                rotator.rotate(reason).await
            }
            (None, _) => rotator.rotate(reason).await,
        }
    }

    /// Retention pruning; a panic in it is logged, never fatal.
    async fn prune(&self) {
        if let Err(p) = AssertUnwindSafe(self.parts.pruner.prune())
            .catch_unwind()
            .await
        {
            tracing::error!(panic = %crate::report::panic_message(&*p), "retention pruning panicked; nothing more was pruned");
        }
    }

    /// Logs (debug) once after each rotation (and at start) when the
    /// engine has nothing to do before the next due instant: no start-up
    /// catch-up, no retry, no queued request. Tests and operators can wait
    /// on it instead of guessing how long a rotation might take to come.
    fn say_waiting(
        &self,
        said: &mut bool,
        wake: Option<tokio::time::Instant>,
        retry: &Option<Retry>,
    ) {
        let immediate = wake.is_some_and(|w| w <= tokio::time::Instant::now());
        if *said || immediate || retry.is_some() || !self.rx.is_empty() {
            return;
        }
        let due = self.parts.state.read(|s| s.schedule.next_rotation_at);
        tracing::debug!(next_rotation_at = ?due.map(|t| time::format(&t)), "rotation engine waiting for the next rotation, a request or a signal");
        *said = true;
    }

    fn next_wake(&self, retry: &Option<Retry>) -> (Option<tokio::time::Instant>, Reason) {
        if let Some(r) = retry {
            // A failed rotation being retried covers anything due meanwhile:
            // the rotation due during an outage happens once.
            return (Some(r.at), r.reason);
        }
        match self.parts.state.read(|s| s.schedule.next_rotation_at) {
            None => (None, Reason::Scheduled),
            Some(due) => {
                let reason = if due < self.started_at {
                    Reason::CatchUp
                } else {
                    Reason::Scheduled
                };
                let wait = (due - time::now()).to_std().unwrap_or(Duration::ZERO);
                (Some(tokio::time::Instant::now() + wait), reason)
            }
        }
    }

    /// Puts a finished rotation into the state, the metrics, the log and the
    /// audit trail, and schedules the retry of a failed one.
    async fn record(&self, reason: Reason, outcome: &Outcome, retry: &mut Option<Retry>) {
        let result = if outcome.is_ok() {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        };
        self.parts
            .metrics
            .rotation(&reason.to_string(), &result.to_string());
        let cur = self.parts.current.get();
        let settings = cur.settings.clone();
        let configured = cur.provider.configured_key();
        let mut events = Vec::new();
        let marked = self.parts.state.update(|st| {
            st.health.rotating = false;
            events.push(AuditEvent::Rotation {
                reason,
                outcome: result,
                old_key_pair_id: st.active.as_ref().map(|a| a.id.clone()),
                new_key_pair_id: outcome.as_ref().ok().map(|r| r.id.clone()),
                error: outcome.as_ref().err().map(|e| e.to_string()),
            });
            match outcome {
                Ok(rec) => {
                    tracing::info!(%reason, key_pair_id = %rec.id, wrapping_key_arn = %rec.wrapping_key_arn, "rotation complete: new key pair active");
                    if let Some(c) = WrappingKeyChange::of(st.active.as_deref(), rec, reason, &configured) {
                        tracing::warn!(from = %c.from, to = %c.to, configured = %c.configured, "the KMS key that wraps new key pairs changed with no configuration change");
                        events.push(c.event(&rec.id));
                        st.health.wrapping_key_changed = Some(c);
                    }
                    st.schedule = Schedule {
                        last_rotation_at: rec.activated_at,
                        next_rotation_at: settings
                            .next_rotation_after(rec.activated_at.unwrap_or_else(time::now)),
                    };
                    st.active = Some(rec.clone());
                    self.activated.send_replace(Some(rec.id.clone()));
                    if let Some(since) = st.health.degraded_since.take() {
                        tracing::info!(since = %time::format(&since), "rotation recovered; state ok");
                        events.push(AuditEvent::OutageEnded {
                            since,
                            duration_ms: (time::now() - since).num_milliseconds(),
                            cause: st.health.last_error.as_ref().map(|e| e.kind),
                        });
                    }
                    st.health.attempts = 0;
                    st.health.next_retry_at = None;
                    st.health.kms_key_problem = None;
                    *retry = None;
                }
                Err(e) => {
                    st.health.attempts += 1;
                    let problem = match e {
                        RotationError::Provider(p) => p.kind.key_problem().map(|kind| {
                            KeyProblem::new(kind, p.to_string(), NoticedBy::Rotation)
                        }),
                        _ => None,
                    };
                    let mut delay = backoff(&settings.retry, st.health.attempts);
                    if problem.as_ref().is_some_and(|p| p.revoked) && st.active.is_some() {
                        // Only the customer can end a revocation of a key
                        // that worked: retry at the probe's pace, not the
                        // outage backoff. A key that never worked (nothing
                        // served yet) is being set up: the backoff.
                        delay = delay.max(settings.customer_keys.probe_every());
                    }
                    let last = LastError::new(reason, e);
                    if st.health.degraded_since.is_none() {
                        events.push(AuditEvent::OutageStarted {
                            cause: last.kind,
                            operation: last.operation.clone(),
                            code: last.code.clone(),
                            message: last.message.clone(),
                            request_id: last.request_id.clone(),
                        });
                    }
                    st.health.degraded_since.get_or_insert(last.at);
                    st.health.next_retry_at =
                        chrono::Duration::from_std(delay).ok().map(|d| last.at + d);
                    let serving = if st.active.is_some() {
                        "the active key pair stays active"
                    } else {
                        "no key pair is active yet: recorders cannot seal until one is"
                    };
                    tracing::warn!(
                        %reason,
                        error = %e,
                        attempt = st.health.attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "rotation failed; {serving}"
                    );
                    st.health.last_error = Some(last);
                    *retry = Some(Retry {
                        reason,
                        at: tokio::time::Instant::now() + delay,
                    });
                    // Evidence about the key itself, not an outage: status
                    // names the key until a check passes.
                    if let Some(p) = problem {
                        st.health.mark_key_problem(p);
                        return true;
                    }
                }
            }
            false
        });
        if marked {
            self.parts.state.key_problem_marked();
        }
        if let Some(audit) = &self.parts.audit {
            for e in events {
                if let Err(err) = audit.record_async(e).await {
                    tracing::error!(error = %err, "cannot write the audit record of a rotation");
                }
            }
        }
    }
}

/// Where a rotation's KMS requests queue in the daemon's budget: an
/// operator waiting goes ahead of the schedule.
fn priority(reason: Reason) -> Priority {
    match reason {
        Reason::Scheduled | Reason::CatchUp => Priority::Scheduled,
        Reason::Initial | Reason::ChangeKeyNow | Reason::KmsKeyChanged => Priority::ChangeKeyNow,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::decodable;
    use crate::testing::fixture;

    /// Regression: a transient store error at the activation threw the
    /// announced key pair away, so the retry was a full rotation that
    /// needed KMS — what announcing ahead exists to avoid.
    #[tokio::test]
    async fn an_announced_key_pair_survives_a_failed_activation() {
        use crate::store::KeyStore;
        use crate::testing::{FailingWrites, Unreachable};
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let (inner, current) = fixture(dir.path()).await;
        let store = Arc::new(FailingWrites {
            inner,
            failing: Default::default(),
        });
        let state = SharedState::default();
        let (engine, _handle) = Engine::new(EngineParts {
            rotator: Rotator::new(store.clone(), current.clone()),
            pruner: Pruner::new(store.clone(), current.clone(), None),
            state: state.clone(),
            current: current.clone(),
            metrics: Default::default(),
            audit: None,
            peers: Default::default(),
        });
        let first = engine.rotate(Reason::Initial).await.unwrap();
        let due = crate::time::now() + chrono::Duration::hours(1);
        let next = engine.parts.rotator.announce(due).await.unwrap();
        state.update(|s| s.announced = Some(Arc::new(next.clone())));
        // KMS is gone from here on: any call fails, and is counted.
        let kms = Arc::new(Unreachable::default());
        current.replace(current.settings(), kms.clone());

        store.failing.store(true, Ordering::SeqCst);
        assert!(engine.rotate(Reason::Scheduled).await.is_err());
        assert_eq!(
            state.read(|s| s.announced.as_ref().map(|a| a.id.clone())),
            Some(next.id.clone()),
            "still announced after the failed activation"
        );
        store.failing.store(false, Ordering::SeqCst);
        let active = engine.rotate(Reason::Scheduled).await.unwrap();
        assert_eq!(
            active.id, next.id,
            "the retry activated the announced key pair"
        );
        assert_ne!(active.id, first.id);
        assert_eq!(kms.calls(), 0, "no KMS call at the rotation instant");
        assert_eq!(store.active().await.unwrap().unwrap().id, next.id);
    }

    #[tokio::test]
    async fn engine_makes_the_initial_key_and_coalesces_requests() {
        let dir = tempfile::tempdir().unwrap();
        let (store, current) = fixture(dir.path()).await;
        let state = SharedState::default();
        let (engine, handle) = Engine::new(EngineParts {
            rotator: Rotator::new(store.clone(), current.clone()),
            pruner: Pruner::new(store.clone(), current.clone(), None),
            state: state.clone(),
            current,
            metrics: Default::default(),
            audit: None,
            peers: Default::default(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(engine.run(stop.clone()));
        // Many concurrent requests: far fewer rotations than requests.
        let waits: Vec<_> = (0..20)
            .map(|_| {
                let h = handle.clone();
                tokio::spawn(async move { h.rotate(Reason::ChangeKeyNow).await })
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        let n = decodable(store.list().await.unwrap()).len();
        assert!(
            n <= 3,
            "20 requests must coalesce into few rotations, got {n}"
        );
        assert_eq!(
            state.read(|s| s.active.as_ref().unwrap().id.clone()),
            store.active().await.unwrap().unwrap().id
        );
        stop.cancel();
        task.await.unwrap();
    }
}
