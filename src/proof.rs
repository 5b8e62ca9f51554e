//! The proof behind invariant I1: a stored envelope is decrypted back through
//! the provider and the private key it holds is matched to the record's
//! public key (for RSA the same SPKI and an RSA-OAEP round trip; for the
//! hybrid the same public key and a decapsulation of a fresh
//! encapsulation).
//!
//! Rotation runs it before activating a key pair, rewrap before replacing an
//! envelope, the canary periodically, and unwrap before caching a key.

use crate::domain::KeyPairRecord;
use crate::envelope::{self, EnvelopeError};
use crate::keypair;
use crate::provider::{KeyProvider, ProviderError};
use zeroize::Zeroizing;

/// Why a key pair failed its proof.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ProofError {
    /// The provider could not decrypt the data key.
    #[error(transparent)]
    Provider(ProviderError),
    /// The envelope is malformed or does not authenticate.
    #[error("key pair {id}: {problem}")]
    Envelope {
        /// The key pair.
        id: String,
        /// What is wrong with its envelope.
        problem: EnvelopeError,
    },
    /// The private key decrypted, but it is not the one of the public key.
    #[error("key pair {id}: the decrypted private key does not match the public key")]
    Mismatch {
        /// The key pair.
        id: String,
    },
}

/// Decrypts `record`'s private key through `provider` and proves it matches
/// the record's public key; returns the PKCS#8 DER private key (zeroized on
/// drop).
pub(crate) async fn open_private_key(
    provider: &dyn KeyProvider,
    record: &KeyPairRecord,
) -> Result<Zeroizing<Vec<u8>>, ProofError> {
    same_type(record)?;
    let private = envelope::open(provider, &record.envelope)
        .await
        .map_err(|e| envelope_failure(record, e))?;
    keypair::verify_matches(record.algorithm, &private, &record.public_key_der).map_err(|_| {
        ProofError::Mismatch {
            id: record.id.clone(),
        }
    })?;
    Ok(private)
}

/// The proof behind I1: the private key decrypts through **every**
/// wrapping of its data key — the primary and each backup, no fallback —
/// and matches the public key each time.
pub(crate) async fn prove(
    provider: &dyn KeyProvider,
    record: &KeyPairRecord,
) -> Result<(), ProofError> {
    same_type(record)?;
    for wrapping in envelope::wrappings(&record.envelope) {
        let private = envelope::open_with(provider, &record.envelope, &wrapping)
            .await
            .map_err(|e| envelope_failure(record, e))?;
        keypair::verify_matches(record.algorithm, &private, &record.public_key_der).map_err(
            |_| ProofError::Mismatch {
                id: record.id.clone(),
            },
        )?;
    }
    Ok(())
}

/// The envelope names the record's key type: one that says otherwise was
/// tampered with or mixed up, and is refused before KMS is asked.
fn same_type(record: &KeyPairRecord) -> Result<(), ProofError> {
    if record.envelope.algorithm == record.algorithm {
        Ok(())
    } else {
        Err(ProofError::Envelope {
            id: record.id.clone(),
            problem: EnvelopeError::Malformed("key_type"),
        })
    }
}

fn envelope_failure(record: &KeyPairRecord, e: EnvelopeError) -> ProofError {
    match e {
        EnvelopeError::Provider(p) => ProofError::Provider(p),
        other => ProofError::Envelope {
            id: record.id.clone(),
            problem: other,
        },
    }
}
