//! Rotation: making a new key pair active without ever serving a key whose
//! private half is not stored and proven (invariant I1), on schedule, on
//! Change Key Now, and again after a failure.
//!
//! - `rotate.rs`: one rotation — generate, seal, store as `pending`, prove,
//!   activate ([`Rotator`]).
//! - `backoff.rs`: the retry delay.
//! - `engine.rs`: the task that decides *when*: sleeps until the next due
//!   instant or a request, coalesces requests, retries with backoff, records
//!   outages ([`Engine`], [`RotationHandle`]).
//! - `health.rs`: what status shows about it ([`EngineState`], [`Health`]).
//! - `fleet.rs`: one rotation for a fleet sharing a store (the lease).
//! - `announce.rs`, `fleet_announce.rs`: preparing the next key pair ahead
//!   of its scheduled rotation, on one host and once for a fleet.
//! - `prune.rs`: retention pruning after a rotation.
//! - `reschedule.rs`: a new cadence taking effect (reload, or a start
//!   after the file's cadence changed).

mod announce;
mod engine;
mod fleet;
mod fleet_announce;
mod health;
mod prune;
mod reschedule;
mod rotate;

pub(crate) use engine::{Engine, EngineParts, RotationHandle};
pub(crate) use fleet::watched as fleet_watched;
pub use health::StoreFailure;
pub(crate) use health::{
    changed, generation, Assessment, EngineState, Evidence, FleetHealth, SharedState,
};
pub use health::{DegradedCause, FailureCause, LastError, LeaseWait, RotationStep};
pub(crate) use prune::Pruner;
pub(crate) use reschedule::reschedule;
pub(crate) use rotate::{RotationError, Rotator};
