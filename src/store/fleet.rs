//! What a store shared by several kekd instances adds to [`KeyStore`]:
//! the fleet's head (active pointer, schedule, counts) read fresh, and the
//! rotation lease that makes one rotation fleet-wide.
//!
//! The lease is a conditional write on one item (holder, expiry, a fencing
//! counter). The holder's activation commits only if the counter is still
//! its own, so an instance that was paused or partitioned past its lease
//! cannot activate anything: its pending key pair is superseded instead.
//!
//! [`KeyStore`]: super::KeyStore

use super::{StoreError, Summary};
use crate::domain::Schedule;
use crate::time::Timestamp;
use async_trait::async_trait;

/// The fleet-wide state every instance follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The active key pair's id.
    pub active: Option<String>,
    /// The announced key pair's id: proven, published, to be activated at
    /// its instant by whichever member takes the lease then.
    pub announced: Option<String>,
    /// The persisted schedule.
    pub schedule: Schedule,
    /// Counts per state and wrapping key.
    pub summary: Summary,
}

/// Another instance's unexpired lease, as a refresh read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The holder's instance id.
    pub holder: String,
    /// When the lease runs out unless renewed.
    pub expires_at: Timestamp,
}

/// Who holds the rotation lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// This instance holds it now. `orphan` is a key pair a previous holder
    /// left pending (it crashed or lost its lease between storing and
    /// activating it).
    Acquired {
        /// The key pair left pending, if any.
        orphan: Option<String>,
    },
    /// Another instance holds it until `expires_at`.
    Held {
        /// The holder's instance id.
        holder: String,
        /// When the lease runs out unless renewed.
        expires_at: Timestamp,
    },
}

/// Coordination among the instances that share a store.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// This instance's id in the fleet (host, process, start).
    fn instance(&self) -> &str;
    /// How long a lease lasts unless renewed.
    fn lease_duration(&self) -> std::time::Duration;
    /// How often the fleet's revision is read (and, while another
    /// instance holds the lease, the head).
    fn refresh_interval(&self) -> std::time::Duration;
    /// What the operator knows the store by (`dynamodb:TABLE`).
    fn location(&self) -> String;
    /// The head, read strongly consistent (one request).
    async fn head(&self) -> Result<Head, StoreError>;
    /// Takes the lease if it is free, expired, or already ours.
    async fn acquire_lease(&self) -> Result<LeaseState, StoreError>;
    /// Extends our lease; [`StoreError::LeaseLost`] if it is no longer ours.
    async fn renew_lease(&self) -> Result<(), StoreError>;
    /// Gives our lease up (best effort: it expires anyway).
    async fn release_lease(&self);
    /// The head and the lease holder (if the lease is held and unexpired),
    /// strongly consistent, in one request: what each refresh reads.
    async fn observe(&self) -> Result<(Head, Option<LeaseHolder>), StoreError>;
}
