//! One rotation for a whole fleet of instances that share a store.
//!
//! Whichever instance sees a rotation due (or is asked) takes the store's
//! lease. The holder first supersedes a key pair a previous holder left
//! pending, then checks whether what it was asked for already happened
//! (another instance rotated since the request, the schedule moved on, the
//! active key pair already uses the configured KMS key); if not, it rotates
//! exactly as a single instance does — I1 unchanged — renewing the lease
//! meanwhile, and activates under the lease's fencing counter. An instance
//! that finds the lease held waits for the holder's result and answers with
//! it (coalescing, fleet-wide); if the holder dies, its lease expires and the
//! waiter takes over. So a due rotation is done once, and a paused holder
//! can never activate after another took over.
//!
//! Between rotations each instance follows the fleet ([`refresh`]): it
//! reads the head when the fleet's revision says the organization changed
//! (and on its own every refresh interval while another instance holds the
//! lease or the store fails), and serves a key pair another instance
//! activated once it has read it as active. [`watched`] records each read
//! of the revision as a read of every head it covers.

use super::health::{LeaseWait, SharedState, StoreFailure};
use super::rotate::{RotationError, Rotator};
use crate::domain::{KeyPairRecord, KeyState, Reason};
use crate::store::{Fleet, Head, KeyStore, LeaseState, StoreError};
use crate::time;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often a waiting instance looks for the holder's result.
pub(super) const WAIT_POLL: Duration = Duration::from_millis(200);

impl Rotator {
    pub(super) async fn rotate_in_fleet(
        &self,
        fleet: &dyn Fleet,
        reason: Reason,
    ) -> Result<KeyPairRecord, RotationError> {
        let result = self.rotate_in_fleet_waiting(fleet, reason).await;
        self.waiting_for(None);
        result
    }

    /// Marks (or, with `None`, clears) the wait for `holder`'s lease,
    /// keeping when it began.
    pub(super) fn waiting_for(&self, holder: Option<(&str, time::Timestamp)>) {
        let Some(state) = &self.state else { return };
        state.update(|s| {
            let f = s.fleet.get_or_insert_with(Default::default);
            f.waiting = holder.map(|(h, expires_at)| LeaseWait {
                holder: h.to_string(),
                since: f
                    .waiting
                    .as_ref()
                    .filter(|w| w.holder == h)
                    .map_or_else(time::now, |w| w.since),
                expires_at,
            });
            if let Some(w) = &f.waiting {
                f.lease = Some(crate::store::LeaseHolder {
                    holder: w.holder.clone(),
                    expires_at: w.expires_at,
                });
            }
        });
    }

    /// A successful read of the fleet's head at `at`.
    pub(super) fn read_head_at(&self, at: time::Timestamp) {
        if let Some(state) = &self.state {
            state.update(|s| {
                let f = s.fleet.get_or_insert_with(Default::default);
                f.last_refresh_at = Some(at);
                f.unavailable_since = None;
                f.failures = 0;
            });
        }
    }

    async fn rotate_in_fleet_waiting(
        &self,
        fleet: &dyn Fleet,
        reason: Reason,
    ) -> Result<KeyPairRecord, RotationError> {
        // What was active when the rotation was asked for: any rotation
        // that completes after this instant answers the request.
        let observed = fleet.head().await?;
        let patience = (fleet.lease_duration() * 4).max(Duration::from_secs(120));
        let give_up = tokio::time::Instant::now() + patience;
        let mut announced = false;
        loop {
            match fleet.acquire_lease().await? {
                LeaseState::Acquired { orphan } => {
                    let result = self.as_holder(fleet, reason, &observed, orphan).await;
                    fleet.release_lease().await;
                    return result;
                }
                LeaseState::Held { holder, expires_at } => {
                    if !announced {
                        tracing::info!(%reason, %holder, expires_at = %time::format(&expires_at), "another instance holds the rotation lease; waiting for its result");
                        announced = true;
                    }
                    self.waiting_for(Some((&holder, expires_at)));
                    tokio::time::sleep(WAIT_POLL).await;
                    let head = fleet.head().await?;
                    // Each poll is a read of the fleet's head: the member
                    // stays fresh while it waits (no staleness alarm).
                    self.read_head_at(time::now());
                    if head.active.is_some() && head.active != observed.active {
                        return self.adopt(&head).await;
                    }
                    if tokio::time::Instant::now() > give_up {
                        return Err(StoreError::LeaseHeld {
                            store: fleet.location(),
                            holder,
                        }
                        .into());
                    }
                }
            }
        }
    }

    /// The rotation, by the lease holder.
    async fn as_holder(
        &self,
        fleet: &dyn Fleet,
        reason: Reason,
        observed: &Head,
        orphan: Option<String>,
    ) -> Result<KeyPairRecord, RotationError> {
        self.retire_left_pending(orphan).await;
        let head = fleet.head().await?;
        if self.already_done(reason, observed, &head).await {
            tracing::info!(%reason, "the fleet already did this rotation; answering with its result");
            return self.adopt(&head).await;
        }
        // The fleet's announced key pair: activated at its instant (no KMS
        // call), discarded by any other rotation.
        let announced = head.announced.clone();
        let scheduled = matches!(reason, Reason::Scheduled | Reason::CatchUp);
        if let (Some(id), false) = (&announced, scheduled) {
            self.retire_unused(id).await;
        }
        let result = self
            .holding(fleet, async {
                match announced.as_deref().filter(|_| scheduled) {
                    Some(id) => {
                        tracing::info!(key_pair_id = %id, "activating the fleet's announced key pair");
                        self.activate_kept(id).await
                    }
                    None => self.rotate_here(reason).await,
                }
            })
            .await;
        if result.is_err() {
            // Paused past the lease, this rotation could not activate; but
            // whoever took the lease over may have answered the request
            // meanwhile. Then that is the answer: a retry must not rotate
            // again for a request the fleet already served.
            if let Ok(head) = fleet.head().await {
                if self.already_done(reason, observed, &head).await {
                    tracing::info!(%reason, "this rotation could not activate, but the fleet rotated for the request meanwhile; answering with its result");
                    return self.adopt(&head).await;
                }
            }
        }
        result
    }

    /// A key pair a previous lease holder left pending is superseded.
    pub(super) async fn retire_left_pending(&self, orphan: Option<String>) {
        if let Some(id) = orphan {
            if let Ok(Some(r)) = self.store.get(&id).await {
                if r.state == KeyState::Pending {
                    tracing::warn!(key_pair_id = %id, "a previous lease holder left this key pair pending; marking it superseded");
                    self.retire_unused(&id).await;
                }
            }
        }
    }

    /// Runs `work` while renewing the lease. Lost meanwhile, the work
    /// runs on but cannot commit anything fenced.
    pub(super) async fn holding<T>(
        &self,
        fleet: &dyn Fleet,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        let keep_lease = async {
            loop {
                tokio::time::sleep(fleet.lease_duration() / 3).await;
                match fleet.renew_lease().await {
                    Ok(()) => {}
                    Err(StoreError::LeaseLost { .. }) => {
                        tracing::warn!("the rotation lease was taken over; this rotation cannot activate its key pair");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the rotation lease; retrying")
                    }
                }
            }
        };
        tokio::select! {
            r = &mut work => r,
            _ = keep_lease => work.await,
        }
    }

    /// Whether the request is already answered by the fleet's state.
    async fn already_done(&self, reason: Reason, observed: &Head, head: &Head) -> bool {
        let Some(active) = &head.active else {
            return false;
        };
        if head.active != observed.active {
            return true; // another instance rotated after the request
        }
        match reason {
            Reason::Initial => true,
            Reason::Scheduled | Reason::CatchUp => head
                .schedule
                .next_rotation_at
                .is_none_or(|due| due > time::now()),
            Reason::KmsKeyChanged => {
                // The configured key may be an alias: compare the key ARN
                // KMS reports, as stored in the key pair.
                let provider = self.current.get().provider.clone();
                match (provider.describe_key().await, self.store.get(active).await) {
                    (Ok(key), Ok(Some(r))) => r.wrapping_key_arn == key.arn,
                    _ => false,
                }
            }
            Reason::ChangeKeyNow => false,
        }
    }

    /// The fleet's active key pair, read as active.
    async fn adopt(&self, head: &Head) -> Result<KeyPairRecord, RotationError> {
        let id = head.active.as_deref().unwrap_or_default();
        match self.store.get(id).await? {
            Some(r) if r.state == KeyState::Active => Ok(r),
            _ => Err(StoreError::Conflict {
                id: id.to_string(),
                problem: "named active by the fleet but not stored as active".into(),
            }
            .into()),
        }
    }
}

/// Fleet mode: reads the fleet's head (and lease holder) and serves the
/// key pair it names once it has read it as active (I1 fleet-wide: a
/// pending key pair is never served). A failing store leaves the last
/// known active key pair served; refreshes back off until it answers.
/// Returns when to refresh next, and whether the engine must (another
/// instance holds the lease: its activation is to be seen even if its
/// announcement is lost; or the store failed).
pub(super) async fn refresh(
    store: &Arc<dyn KeyStore>,
    state: &SharedState,
    activated: &watch::Sender<Option<String>>,
) -> (Duration, bool) {
    let Some(fleet) = store.fleet() else {
        return (Duration::MAX, false);
    };
    let interval = fleet.refresh_interval();
    let observed = match fleet.observe().await {
        Ok((head, lease)) => {
            let (served, published) = state.read(|s| {
                (
                    s.active.as_ref().map(|a| a.id.clone()),
                    s.announced.as_ref().map(|a| a.id.clone()),
                )
            });
            // The fleet's announced key pair, published here too (`None`:
            // as it is).
            let announced = match &head.announced {
                Some(id) if published.as_ref() != Some(id) => match store.get(id).await {
                    Ok(Some(r)) if r.state == KeyState::Announced => Some(Some(Arc::new(r))),
                    _ => None,
                },
                None if published.is_some() => Some(None),
                _ => None,
            };
            let record = match &head.active {
                Some(id) if head.active != served => match store.get(id).await {
                    Ok(Some(r)) if r.state == crate::domain::KeyState::Active => {
                        Ok(Some(Arc::new(r)))
                    }
                    Ok(_) => {
                        tracing::error!(key_pair_id = %id, "the fleet names a key pair active that is not stored as active; still serving the previous one");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                },
                _ => Ok(None),
            };
            record.map(|r| (head, lease, r, announced))
        }
        Err(e) => Err(e),
    };
    state.update(|st| {
        let fleet_health = st.fleet.get_or_insert_with(Default::default);
        match observed {
            Ok((head, lease, record, announced)) => {
                if let Some(since) = fleet_health.unavailable_since.take() {
                    tracing::info!(since = %time::format(&since), "the store answers again");
                }
                fleet_health.failures = 0;
                fleet_health.last_refresh_at = Some(time::now());
                let busy = lease.is_some();
                fleet_health.lease = lease;
                st.schedule = head.schedule;
                if let Some(a) = announced {
                    if let Some(a) = &a {
                        tracing::info!(key_pair_id = %a.id, "the fleet announced its next key pair: publishing it");
                    }
                    st.announced = a;
                }
                if let Some(rec) = record {
                    tracing::info!(key_pair_id = %rec.id, "the fleet rotated: serving its new active key pair");
                    activated.send_replace(Some(rec.id.clone()));
                    st.active = Some(rec);
                }
                (interval, busy)
            }
            Err(e) => {
                fleet_health.failures += 1;
                if fleet_health.unavailable_since.is_none() {
                    tracing::warn!(error = %e, "cannot read the fleet's store; serving the last known active key pair");
                }
                let failure = StoreFailure::new(&e);
                fleet_health.unavailable_since.get_or_insert(failure.at);
                fleet_health.last_error = Some(failure);
                let n = fleet_health.failures.min(8);
                let delay = interval
                    .saturating_mul(2u32.saturating_pow(n))
                    .min(interval.max(Duration::from_secs(30)));
                (delay, true)
            }
        }
    })
}

/// The fleet's revision was read at `at` (`Ok`) or could not be (`Err`):
/// for an organization whose change it did not announce, that is a read of
/// its head, as fresh as the revision. A failure marks the store
/// unavailable as a failed head read does.
pub(crate) fn watched(state: &SharedState, read: Result<time::Timestamp, &StoreError>) {
    state.update(|st| {
        let Some(fleet_health) = st.fleet.as_mut() else {
            return;
        };
        match read {
            Ok(at) => {
                // An engine that reads on its own (failing, or another
                // member rotates) keeps its own account.
                if fleet_health.failures == 0 {
                    fleet_health.last_refresh_at = Some(at);
                    fleet_health.unavailable_since = None;
                }
            }
            Err(e) => {
                if fleet_health.unavailable_since.is_none() {
                    let failure = StoreFailure::new(e);
                    fleet_health.unavailable_since = Some(failure.at);
                    fleet_health.last_error = Some(failure);
                }
            }
        }
    })
}
