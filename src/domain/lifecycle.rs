//! The life cycle of a key pair, in one place: which state may become which,
//! and what each step sets. Every store applies these, so the rules cannot
//! drift apart between backends.
//!
//! `pending` → `active` → `retired`; with `announce_ahead`, `pending` →
//! `announced` → `active`; `pending` or `announced` → `superseded` when it
//! will never be activated. Only `retired` and `superseded` are pruned.

use super::{KeyPairRecord, KeyState};
use crate::time::Timestamp;

/// A step of the life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Becoming the active key pair.
    Activate,
    /// Being announced for the next scheduled rotation.
    Announce,
    /// Being deleted by retention pruning.
    Prune,
}

/// A step the key pair's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is {from}, {}", match .step {
    Step::Activate => "only a pending or announced key pair can be activated",
    Step::Announce => "only a pending key pair can be announced",
    Step::Prune => "only retired or superseded key pairs (never the active one) are pruned",
})]
pub struct IllegalTransition {
    /// The state it is in.
    pub from: KeyState,
    /// The step refused.
    pub step: Step,
}

impl KeyPairRecord {
    /// A pending or announced key pair, active from `at`.
    pub(crate) fn activated(&self, at: Timestamp) -> Result<KeyPairRecord, IllegalTransition> {
        if !matches!(self.state, KeyState::Pending | KeyState::Announced) {
            return Err(self.refused(Step::Activate));
        }
        let mut r = self.clone();
        r.state = KeyState::Active;
        r.activated_at = Some(at);
        r.activates_at = None;
        Ok(r)
    }

    /// When this key pair becomes active after `prev`: `now`, but never
    /// before this key pair was created or `prev` was created or
    /// activated. Fleet members' clocks differ; a member running fast must
    /// not leave the store's times contradicting its order (a key pair
    /// retired before it was activated, a successor activated before its
    /// predecessor).
    pub(crate) fn activation_instant(
        &self,
        now: Timestamp,
        prev: Option<&KeyPairRecord>,
    ) -> Timestamp {
        [
            Some(now),
            Some(self.created_at),
            prev.map(|p| p.created_at),
            prev.and_then(|p| p.activated_at),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now)
    }

    /// The previous active key pair, retired at `at`.
    pub(crate) fn retired(&self, at: Timestamp) -> KeyPairRecord {
        let mut r = self.clone();
        r.state = KeyState::Retired;
        r.retired_at = Some(at);
        r
    }

    /// A pending or announced key pair that will never be activated,
    /// superseded at `at`; `None` for any other state (left as it is).
    pub(crate) fn superseded(&self, at: Timestamp) -> Option<KeyPairRecord> {
        matches!(self.state, KeyState::Pending | KeyState::Announced).then(|| {
            let mut r = self.clone();
            r.state = KeyState::Superseded;
            r.retired_at = Some(at);
            r
        })
    }

    /// A proven pending key pair, announced to become active at
    /// `activates_at`.
    pub(crate) fn announced(
        &self,
        activates_at: Timestamp,
    ) -> Result<KeyPairRecord, IllegalTransition> {
        if self.state != KeyState::Pending {
            return Err(self.refused(Step::Announce));
        }
        let mut r = self.clone();
        r.state = KeyState::Announced;
        r.activates_at = Some(activates_at);
        Ok(r)
    }

    /// Whether retention pruning may delete it (`is_active`: the store's
    /// active pointer names it).
    pub(crate) fn prunable(&self, is_active: bool) -> Result<(), IllegalTransition> {
        if matches!(self.state, KeyState::Retired | KeyState::Superseded) && !is_active {
            Ok(())
        } else {
            Err(self.refused(Step::Prune))
        }
    }

    fn refused(&self, step: Step) -> IllegalTransition {
        IllegalTransition {
            from: self.state,
            step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_steps_are_allowed() {
        let t = crate::time::now();
        let pending = crate::testing::record_at("kek-p", 1);
        let announced = pending.announced(t).unwrap();
        assert_eq!(announced.activates_at, Some(t));
        let active = announced.activated(t).unwrap();
        assert_eq!(
            (active.state, active.activates_at),
            (KeyState::Active, None)
        );
        assert_eq!(
            active.activated(t).unwrap_err(),
            IllegalTransition {
                from: KeyState::Active,
                step: Step::Activate
            },
            "active twice"
        );
        assert!(active.announced(t).is_err());
        assert!(
            active.superseded(t).is_none(),
            "an active key is retired, not superseded"
        );
        assert!(active.prunable(false).is_err());
        let retired = active.retired(t);
        assert!(retired.prunable(false).is_ok());
        assert!(
            retired.prunable(true).is_err(),
            "never the active pointer's"
        );
        let superseded = announced.superseded(t).unwrap();
        assert_eq!(superseded.state, KeyState::Superseded);
        assert!(superseded.activated(t).is_err(), "never activated after");
    }
}
