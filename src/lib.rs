//! kekd rotates the key-encryption key pairs (KEKs) of a call-recording
//! platform. Recorders seal recordings with the active public key; the private
//! keys are stored only envelope-encrypted under the customer's KMS key.
//!
//! `../shared/DESIGN.md` (mirrored in README.md) is the contract; this crate is
//! one library and two thin binaries, in the style of tokio's mini-redis.
//!
//! # Layout
//!
//! Data flows one way: config → provider → envelope → store → rotation → api.
//!
//! - [`config`]: the TOML file. `raw.rs` is the serde layer (every field
//!   optional, unknown fields refused); `mod.rs` validates it into typed
//!   [`config::Settings`]; every error names file, field, value and what is
//!   allowed.
//! - [`metrics`]: Prometheus metrics (prometheus-client), rendered by `/metrics`.
//! - [`policy`]: the key-policy statements kekd needs (`kekctl policy`).
//! - [`provider`]: the [`provider::KeyProvider`] trait that wraps data keys —
//!   `aws_kms.rs` (the customer's KMS key) and `local.rs` (a root key file, for
//!   development) — and the classified [`provider::ProviderError`].
//! - [`aead`]: AES-256-GCM with random nonces, shared by envelopes and the
//!   local provider.
//! - [`envelope`]: envelope encryption of a private key (one data key per key
//!   pair, AES-256-GCM, the encryption context as associated data).
//! - [`keypair`]: RSA key pair generation, ids, PEM, and the check that a
//!   decrypted private key matches its public key.
//! - [`kms_check`]: preflight (`DescribeKey` checks) and the Test round trip.
//! - [`store`]: the durable record of every key pair (redb), behind a small
//!   trait.
//! - [`schedule`]: cadences and the next rotation instant.
//! - [`rotation`]: the rotation state machine (invariant I1) and the engine
//!   task that runs it on schedule, on Change Key Now, and with retries.
//! - [`audit`]: the hash-chained JSON-lines audit trail (`kekctl audit verify`).
//! - [`canary`]: the periodic decryptability check (`kekctl check`).
//! - [`recording`]: the streaming recording format (seal with a public key,
//!   open with an unwrapped content key); `docs/recording-format.md`.
//! - [`reload`]: `SIGHUP` / `POST /v1/reload` — all or nothing, a new KMS
//!   key proven by the Test round trip first.
//! - [`rewrap`]: re-encrypting data keys under the current KMS key
//!   (`ReEncrypt`), one key pair per transaction.
//! - [`unwrap`]: content-key unwrap for players, with a bounded cache of
//!   decrypted private keys.
//! - [`api`]: the HTTP/JSON API on the Unix socket (`server.rs`, `routes.rs`)
//!   and the small client `kekctl` uses (`client.rs`).
//! - [`daemon`]: wiring — start-up, signals, graceful shutdown.
//! - [`time`]: RFC 3339 UTC timestamps, one way everywhere.
//! - `src/bin/kekd.rs`, `src/bin/kekctl.rs`: the thin binaries.
//!
//! Tests: unit tests sit next to the code; `tests/` is one integration binary
//! whose `harness` module owns moto's KMS server and a `TestDaemon`.
#![forbid(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod aead;
pub mod api;
pub mod audit;
pub mod canary;
pub mod config;
pub mod daemon;
pub mod envelope;
pub mod keypair;
pub mod kms_check;
pub mod metrics;
pub mod policy;
pub mod provider;
pub mod recording;
pub mod reload;
pub mod rewrap;
pub mod rotation;
pub mod schedule;
pub mod store;
pub mod time;
pub mod unwrap;
