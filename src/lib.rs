//! kekd rotates the key-encryption key pairs (KEKs) of a call-recording
//! platform. Recorders seal recordings with the active public key; the private
//! keys are stored only envelope-encrypted under the customer's KMS key.
//!
//! `../shared/DESIGN.md` (mirrored in README.md) is the contract; this crate is
//! one library and two thin binaries, in the style of tokio's mini-redis.
//!
//! # Layout
//!
//! Data flows one way: config → provider → envelope → store → rotation →
//! (reload, rewrap, canary, unwrap) → api → daemon.
//!
//! Foundations
//! - [`config`]: the TOML file. `raw.rs` is the serde layer (every field
//!   optional, unknown fields refused), `access.rs` resolves `[access]` names,
//!   `arn.rs` parses KMS ARNs; `mod.rs` validates all of it into typed
//!   [`config::Settings`], every error naming file, field, value and what is
//!   allowed.
//! - [`time`]: RFC 3339 UTC timestamps, one way everywhere.
//! - [`aead`]: AES-256-GCM with random nonces (envelopes, local provider).
//! - [`metrics`]: Prometheus metrics (prometheus-client) for `/metrics`.
//! - [`audit`]: the hash-chained JSON-lines audit trail (`kekctl audit verify`).
//!
//! Keys
//! - [`provider`]: the [`provider::KeyProvider`] trait that wraps data keys —
//!   `aws_kms.rs` (the customer's KMS key), `local.rs` (a root key file, for
//!   `--dev`), `instrumented.rs` (metrics + audit around either) — and the
//!   classified [`provider::ProviderError`].
//! - [`kms_check`]: preflight (`DescribeKey` checks) and the Test round trip.
//! - [`keypair`]: RSA generation, ids, PEM, and the proof that a private key
//!   matches its public key.
//! - [`envelope`]: envelope encryption of a private key (one data key per key
//!   pair, AES-256-GCM, the encryption context as associated data).
//! - [`store`]: the durable record of every key pair (redb), behind a trait.
//! - [`schedule`]: cadences and the next rotation instant.
//! - [`rotation`]: the rotation state machine (invariant I1), the engine
//!   task (schedule, Change Key Now, retries, outages) and retention pruning.
//!
//! Operations on key pairs
//! - [`reload`]: `SIGHUP` / `POST /v1/reload`, all or nothing.
//! - [`rewrap`]: re-encrypting data keys under the current KMS key.
//! - [`canary`]: the periodic decryptability check (`kekctl check`).
//! - [`recording`]: the streaming recording format
//!   (`docs/recording-format.md`).
//! - [`unwrap`]: content-key unwrap for players, with a bounded key cache.
//! - [`policy`]: the key-policy statements kekd needs (`kekctl policy`).
//!
//! Serving
//! - [`api`]: HTTP/JSON on the Unix socket — `server.rs` (socket, peer
//!   credentials), `auth.rs` (roles), `routes.rs` (handlers), `views.rs`
//!   (JSON shapes), `client.rs` (what `kekctl` uses).
//! - [`daemon`]: wiring — start-up, signals, systemd notify and watchdog,
//!   graceful shutdown.
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
