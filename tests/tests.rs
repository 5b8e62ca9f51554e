//! Integration tests, compiled as one binary (as in ripgrep): each module is
//! an area; `harness` owns moto, the daemon and the envelope decryptor.
//!
//! Every test that needs KMS starts its own moto server on a free loopback
//! port and fails — never skips — when moto is missing, saying how to
//! install it.

mod harness;

mod access;
mod api;
mod audit;
mod backup_keys;
mod canary;
mod cli;
mod crash;
mod customer_keys;
mod faults;
mod fleet;
mod fleet_scale;
mod fuzz_corpus;
mod invariants;
mod jwks;
mod kms_failures;
mod operations;
mod orgs;
mod post_quantum;
mod recordings;
mod rotation;
mod scale;
