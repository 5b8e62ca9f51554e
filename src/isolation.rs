//! The isolation probe of the Test: does the customer's key policy bind the
//! key to this organization?
//!
//! A customer's key is shared with the platform's principal. If the policy
//! lets that principal use the key with *any* encryption context, another
//! customer who learned the ARN could register it as theirs and have kekd
//! wrap and unwrap under it. So after the round trip with the
//! organization's own context, the Test asks KMS for a data key with a
//! context naming a reserved organization id no customer can have. A
//! refusal is the pass. What a grant returns is dropped unused at once.

use crate::config::Settings;
use crate::domain::context_for;
use crate::provider::{FailureKind, KeyProvider};
use serde::{Deserialize, Serialize};

/// The organization id the probe names: reserved, `org add` refuses it.
pub const PROBE_ORG: &str = "kekd-isolation-probe";

/// What the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Isolation {
    /// KMS refused a data key for another organization's context: the key
    /// is bound to this organization.
    Proven,
    /// KMS granted it: the key policy does not bind the key to this
    /// organization.
    NotBound,
    /// KMS could not be asked (an outage, an unexpected answer).
    Unchecked,
    /// The local provider: one root key for every organization, by design
    /// (development only).
    NotApplicable,
}

crate::domain::display_as_serde!(Isolation);

/// The probe's verdict and what to say about it.
pub(crate) struct Probed {
    pub(crate) isolation: Isolation,
    /// The step's detail.
    pub(crate) detail: String,
}

/// Asks for a data key under the organization's key with the probe's
/// context (the organization's context key, the reserved id).
pub(crate) async fn probe(provider: &dyn KeyProvider, settings: &Settings) -> Probed {
    if !settings.uses_kms() {
        return Probed {
            isolation: Isolation::NotApplicable,
            detail: "the local provider has one root key for every organization (development only)"
                .into(),
        };
    }
    let context = context_for(&settings.context_key, PROBE_ORG, "kek-isolation-probe");
    match provider.generate_data_key(&context).await {
        Ok(granted) => {
            drop(granted); // zeroized; never stored nor used
            Probed {
                isolation: Isolation::NotBound,
                detail: format!(
                    "KMS granted a data key for {}={PROBE_ORG}: the key policy does not bind the key to this organization (add the condition kms:EncryptionContext:{} = \"{}\"; see kekctl policy)",
                    settings.context_key, settings.context_key, settings.organization_id
                ),
            }
        }
        Err(e) if e.kind == FailureKind::AccessDenied => Probed {
            isolation: Isolation::Proven,
            detail: format!(
                "KMS refused a data key for {}={PROBE_ORG}, as it should: the key is bound to this organization",
                settings.context_key
            ),
        },
        Err(e) => Probed {
            isolation: Isolation::Unchecked,
            detail: format!("isolation could not be checked: {e}"),
        },
    }
}
