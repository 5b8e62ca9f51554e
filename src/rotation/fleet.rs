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

use super::rotate::{RotationError, Rotator};
use crate::domain::{KeyPairRecord, KeyState, Reason};
use crate::store::{Fleet, Head, LeaseState, StoreError};
use crate::time;
use std::time::Duration;

/// How often a waiting instance looks for the holder's result.
const WAIT_POLL: Duration = Duration::from_millis(200);

impl Rotator {
    pub(super) async fn rotate_in_fleet(
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
                    tokio::time::sleep(WAIT_POLL).await;
                    let head = fleet.head().await?;
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
        if let Some(id) = orphan {
            if let Ok(Some(r)) = self.store.get(&id).await {
                if r.state == KeyState::Pending {
                    tracing::warn!(key_pair_id = %id, "a previous lease holder left this key pair pending; marking it superseded");
                    self.retire_unused(&id).await;
                }
            }
        }
        let head = fleet.head().await?;
        if self.already_done(reason, observed, &head).await {
            tracing::info!(%reason, "the fleet already did this rotation; answering with its result");
            return self.adopt(&head).await;
        }
        let rotation = self.rotate_here(reason);
        tokio::pin!(rotation);
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
            r = &mut rotation => r,
            _ = keep_lease => rotation.await,
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
