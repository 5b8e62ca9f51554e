//! The customer's hold on their key, as kekd sees it: why the KMS key of
//! an organization cannot be used (the customer revoked it, or it was
//! never set up right), who noticed, and what the organization does then.
//!
//! A revocation is the customer's decision — disable the key, schedule its
//! deletion, take the grant or the policy statement away — and is told
//! apart from an outage everywhere: an outage heals without anyone acting,
//! a revocation waits for the customer.

use crate::time::{self, Timestamp};
use serde::{Deserialize, Serialize};

/// Why an organization's KMS key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyProblemKind {
    /// The owner disabled the key.
    Disabled,
    /// The owner scheduled the key's deletion.
    PendingDeletion,
    /// A policy, grant or role no longer lets kekd use the key.
    AccessDenied,
    /// The key (or its alias) does not exist.
    NotFound,
    /// The customer's role can no longer be assumed.
    AssumeRoleDenied,
    /// Another state that is not `Enabled` (e.g. pending import).
    InvalidState,
    /// The key exists and is usable by kekd but is not a key kekd can use
    /// (wrong spec or usage, another region): set up wrong, not revoked.
    Misconfigured,
}

impl KeyProblemKind {
    /// The customer took access away: status says `revoked`, retries wait
    /// for the customer, and an organization set to withhold stops serving
    /// its public key.
    pub fn is_revocation(self) -> bool {
        matches!(
            self,
            KeyProblemKind::Disabled
                | KeyProblemKind::PendingDeletion
                | KeyProblemKind::AccessDenied
                | KeyProblemKind::NotFound
                | KeyProblemKind::AssumeRoleDenied
        )
    }

    /// Every kind, in the order status and metrics list them.
    pub const ALL: [KeyProblemKind; 7] = [
        KeyProblemKind::Disabled,
        KeyProblemKind::PendingDeletion,
        KeyProblemKind::AccessDenied,
        KeyProblemKind::NotFound,
        KeyProblemKind::AssumeRoleDenied,
        KeyProblemKind::InvalidState,
        KeyProblemKind::Misconfigured,
    ];
}

crate::domain::display_as_serde!(KeyProblemKind);

/// Which path saw a key problem first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticedBy {
    /// The checks at start (or after an organization was made).
    Preflight,
    /// The periodic revocation probe.
    Probe,
    /// The decryptability canary.
    Canary,
    /// A player's unwrap.
    Unwrap,
    /// A rotation.
    Rotation,
}

crate::domain::display_as_serde!(NoticedBy);

/// A problem with an organization's KMS key, as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyProblem {
    /// What kind of problem.
    pub kind: KeyProblemKind,
    /// `revoked` kinds need the customer; others need the operator.
    pub revoked: bool,
    /// What KMS said (code and request id included).
    pub message: String,
    /// Which path saw it first.
    pub noticed_by: NoticedBy,
    /// Since when it has been seen.
    #[serde(with = "time::rfc3339")]
    pub since: Timestamp,
    /// For a key pending deletion: when KMS deletes it (from
    /// `DescribeKey`). Until then the customer can cancel the deletion.
    #[serde(default, with = "time::rfc3339::option")]
    pub deletion_date: Option<Timestamp>,
}

impl KeyProblem {
    /// A problem of `kind` seen now by `noticed_by`.
    pub fn new(kind: KeyProblemKind, message: String, noticed_by: NoticedBy) -> KeyProblem {
        KeyProblem {
            kind,
            revoked: kind.is_revocation(),
            message,
            noticed_by,
            since: time::now(),
            deletion_date: None,
        }
    }

    /// With KMS's deletion date.
    pub fn deleted_at(mut self, date: Option<Timestamp>) -> KeyProblem {
        self.deletion_date = date;
        self
    }
}

/// What an organization does while its key is revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnRevocation {
    /// Keep serving the last public key: new recordings stay sealed to a
    /// key pair whose private half only the customer's key can open, so
    /// nothing is exposed and the customer can restore access.
    #[default]
    Serve,
    /// Stop serving public keys (`key_revoked`): recorders stop sealing,
    /// for customers who want recording to stop with their consent.
    Withhold,
}

crate::domain::display_as_serde!(OnRevocation);

impl std::str::FromStr for OnRevocation {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "serve" => Ok(OnRevocation::Serve),
            "withhold" => Ok(OnRevocation::Withhold),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_customers_decisions_are_revocations() {
        let revoked: Vec<_> = KeyProblemKind::ALL
            .into_iter()
            .filter(|k| k.is_revocation())
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            revoked,
            [
                "disabled",
                "pending_deletion",
                "access_denied",
                "not_found",
                "assume_role_denied"
            ]
        );
        assert!(KeyProblem::new(KeyProblemKind::Disabled, "x".into(), NoticedBy::Probe).revoked);
        assert!(
            !KeyProblem::new(KeyProblemKind::Misconfigured, "x".into(), NoticedBy::Probe).revoked
        );
        assert_eq!("withhold".parse(), Ok(OnRevocation::Withhold));
        assert!("stop".parse::<OnRevocation>().is_err());
    }
}
