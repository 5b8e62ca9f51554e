//! Preparing ahead in a fleet: the next key pair of a scheduled rotation is
//! generated, stored, proven and announced once for the whole fleet, by
//! whichever member takes the organization's lease at its preparation
//! time; every member publishes it (it is in the fleet's head); at the
//! instant whichever member takes the lease activates it with one store
//! transaction and no KMS call ([`Rotator::activate_announced`]).

use super::fleet::WAIT_POLL;
use super::rotate::{RotationError, Rotator};
use crate::domain::{KeyPairRecord, KeyState};
use crate::store::{Fleet, LeaseState, StoreError};
use crate::time::{self, Timestamp};
use std::time::Duration;

impl Rotator {
    /// Announces the fleet's next key pair for `activates_at`, or adopts
    /// the one another member announced for it.
    pub(super) async fn announce_in_fleet(
        &self,
        fleet: &dyn Fleet,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, RotationError> {
        let result = self.announce_in_fleet_waiting(fleet, activates_at).await;
        self.waiting_for(None);
        result
    }

    async fn announce_in_fleet_waiting(
        &self,
        fleet: &dyn Fleet,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, RotationError> {
        let patience = (fleet.lease_duration() * 4).max(Duration::from_secs(120));
        let give_up = tokio::time::Instant::now() + patience;
        loop {
            match fleet.acquire_lease().await? {
                LeaseState::Acquired { orphan } => {
                    let result = self.announce_as_holder(fleet, activates_at, orphan).await;
                    fleet.release_lease().await;
                    return result;
                }
                LeaseState::Held { holder, expires_at } => {
                    self.waiting_for(Some((&holder, expires_at)));
                    tokio::time::sleep(WAIT_POLL).await;
                    if let (Some(r), _) = self.announced_for(fleet, activates_at).await? {
                        return Ok(r);
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

    async fn announce_as_holder(
        &self,
        fleet: &dyn Fleet,
        activates_at: Timestamp,
        orphan: Option<String>,
    ) -> Result<KeyPairRecord, RotationError> {
        self.retire_left_pending(orphan).await;
        match self.announced_for(fleet, activates_at).await? {
            (Some(r), _) => {
                tracing::info!(key_pair_id = %r.id, "another fleet member announced the next key pair");
                Ok(r)
            }
            (None, other) => {
                if let Some(id) = other {
                    // Announced for an instant the schedule no longer has.
                    tracing::info!(key_pair_id = %id, "the fleet's announced key pair is for another instant: discarding it (superseded)");
                    self.retire_unused(&id).await;
                }
                self.holding(fleet, self.announce_here(activates_at)).await
            }
        }
    }

    /// The fleet's announced key pair if it is for `activates_at`; else
    /// the id of the one announced for another instant, if any.
    async fn announced_for(
        &self,
        fleet: &dyn Fleet,
        activates_at: Timestamp,
    ) -> Result<(Option<KeyPairRecord>, Option<String>), RotationError> {
        let head = fleet.head().await?;
        self.read_head_at(time::now());
        let Some(id) = head.announced else {
            return Ok((None, None));
        };
        match self.store.get(&id).await? {
            Some(r) if r.state == KeyState::Announced && r.activates_at == Some(activates_at) => {
                Ok((Some(r), None))
            }
            Some(r) if r.state == KeyState::Announced => Ok((None, Some(id))),
            _ => Ok((None, None)),
        }
    }
}
