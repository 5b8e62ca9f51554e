//! kekd rotates the key-encryption key pairs (KEKs) of a call-recording
//! platform. Recorders seal recordings with the active public key; the private
//! keys are stored only envelope-encrypted under the customer's KMS key, so
//! the customer decides who can ever play a recording back.
//!
//! This crate is one library and two thin binaries (`kekd`, `kekctl`), in
//! the style of tokio's mini-redis. `docs/design.md` explains the design and
//! its invariants.
//!
//! # Layout
//!
//! Data flows one way, top to bottom: a module imports only modules of its
//! own line or of the lines above it.
//!
//! ```text
//! domain, time, aead, sync, tasks   vocabulary and primitives (leaves)
//!   → config, schedule          the TOML file → typed Settings; cadences
//!   → metrics, audit            what is counted and what is recorded
//!   → provider, fips            who wraps data keys (KMS, local)
//!   → keypair, jwks, envelope, proof   RSA, envelope encryption, I1
//!   → store                     the durable record (async KeyStore seam)
//!   → current, rotation         configuration in force; rotating
//!   → key_watch, reload, rewrap, canary, unwrap, kms_check, isolation,
//!     recording, policy
//!   → orgs                      one tenant per organization; their changes
//!   → api                       HTTP/JSON on the Unix socket
//!   → daemon                    wiring, signals, systemd, shutdown
//! ```
//!
//! Vocabulary and primitives
//! - [`domain`]: `record.rs` (key states, reasons, RSA sizes, the key-pair
//!   record and its envelope), `context.rs` (the KMS encryption context),
//!   `lifecycle.rs` (which state may become which — every store applies
//!   it), `key_access.rs` (key problems, revocations, `on_revocation`),
//!   `outcome.rs` (failure kinds and causes, reload results, access
//!   decisions). Imports nothing else of the crate but `time`.
//! - [`time`]: RFC 3339 UTC timestamps, one way everywhere.
//! - `aead.rs`: AES-256-GCM with random nonces.
//! - `sync.rs`: the one rule for poisoned locks.
//! - `tasks.rs`: background tasks under one failure rule, and their
//!   bounded drain.
//!
//! Configuration
//! - [`config`]: `read.rs` (only a regular file, bounded; toml's errors in
//!   one line) → `raw.rs` (serde, every field optional, unknown fields
//!   refused) → `sections/` (one validator per group of sections, each
//!   owning its defaults from `defaults.rs`) → [`config::Settings`];
//!   `validate.rs` words every error (file, field, value, allowed);
//!   `files.rs` keeps the daemon's own files apart; `orgs.rs` an
//!   organization's settings from the file as template; `access.rs` resolves
//!   `[access]` names; `arn.rs` parses KMS ARNs.
//! - `schedule.rs`: cadences and the next rotation instant (croner).
//!
//! Observing
//! - `metrics.rs`: Prometheus metrics for `/metrics`.
//! - [`audit`]: the hash-chained JSON-lines audit trail — `mod.rs` (the
//!   writer), `event.rs` (the typed [`audit::AuditEvent`]), `tail.rs` (the
//!   end of an existing trail), `verify.rs` (checking the chain), `query.rs`
//!   (one organization's records, read back for the API).
//!
//! Keys
//! - [`provider`]: the `KeyProvider` trait that wraps data keys —
//!   `aws_kms.rs` (the customer's KMS key), `assume_role.rs` (reaching it
//!   through a role in the customer's account: STS, kept credentials),
//!   `aws_sdk.rs` (the SDK config
//!   and error classification every AWS client shares), `local.rs` (a root
//!   key file, for `--dev`), `instrumented.rs` (metrics and audit around
//!   either), `budget.rs` (the daemon's KMS request budget: pacing,
//!   priorities, fairness across organizations, AIMD on throttling) with
//!   `budgeted.rs` (each organization's KMS provider behind it) — and the classified [`provider::ProviderError`] with the one
//!   availability rule ([`provider::FailureKind::is_unavailable`]).
//! - [`fips`]: whether the build is FIPS, and the check a FIPS build makes.
//! - [`keypair`]: key pairs of every key type (RSA and the hybrid) —
//!   generation, ids, PEM, the private key unwrap holds, the
//!   private/public match;
//!   [`jwks`]: the public keys as a JSON Web Key Set.
//! - [`hybrid`]: the post-quantum hybrid KEM (X-Wing: ML-KEM-768 and
//!   X25519) — key generation, the expanded private-key encoding,
//!   encapsulation and decapsulation.
//! - `envelope.rs`: envelope encryption of a private key.
//! - `proof.rs`: decrypt back and match — the proof behind I1, used by
//!   rotation, rewrap, the canary and unwrap.
//! - [`store`]: the async [`store::KeyStore`] trait; `redb/` the embedded
//!   backend, doing its own blocking (`tables.rs`, `schema.rs`, `txn.rs`,
//!   `ops.rs`); `dynamodb/` the fleet's shared table (`items.rs` layout,
//!   `requests.rs`, `ops.rs`, `lease.rs` lease and head, `table.rs`
//!   creation and checks, `revision.rs` the fleet-wide count of changes a
//!   member reads each refresh); `fleet.rs` what a shared store adds (head,
//!   lease); `orgs.rs` the [`store::Registry`] of organizations (redb:
//!   `redb/orgs.rs`, one set of tables each; DynamoDB:
//!   `dynamodb/registry.rs`, one item each); `summary.rs` the counts;
//!   `copy.rs` moving a history between
//!   stores.
//!
//! Operations on key pairs
//! - `current.rs`: the configuration and provider in force, swapped whole
//!   on reload.
//! - `rotation/`: `rotate.rs` (one rotation, I1), `fleet.rs` (one rotation
//!   for a fleet, and following the fleet between rotations), `engine.rs`
//!   (when: schedule, Change Key Now, coalescing, retries), `health.rs`
//!   (what status shows, and the one health rule), `prune.rs` (retention),
//!   `reschedule.rs` (a new cadence taking effect),
//!   `announce.rs` (preparing the next key pair ahead of its rotation),
//!   `fleet_announce.rs` (the same once for a fleet, under the lease);
//!   `backoff.rs` (the retry delay of rotations, key checks and KMS
//!   requests).
//! - `key_watch.rs` (the configured KMS key's health from every path's
//!   latest evidence, the revocation probe within the bound, re-checked
//!   until a problem clears),
//!   `reload.rs` (SIGHUP, all or nothing), `rewrap.rs` (KMS ReEncrypt),
//!   `canary.rs` (periodic decryptability check), `unwrap.rs` (content keys
//!   for players) with `key_cache.rs` (the daemon's one bounded cache of
//!   decrypted private keys, single-flight on misses), [`kms_check`] (preflight and
//!   the Test round trip), [`isolation`] (the Test's probe of whether the
//!   customer's key is bound to the organization), [`recording`] (the sealed recording format, v1 for RSA and v2 for hybrid key pairs; `pipeline.rs` streams the chunks through three overlapping stages),
//!   [`policy`] (the key-policy statements kekd needs), `spread.rs`
//!   (where in a window an organization's periodic work falls).
//! - `orgs/`: the organizations at run time — `mod.rs` (the set),
//!   `change.rs` (add, set, remove, restore, purge), `follow.rs`
//!   (following the store and the reloaded file), `tenant.rs` (one
//!   organization's store, settings, provider, engine, canary and key
//!   watch).
//!
//! Serving
//! - [`api`]: `paths.rs` (every route), `views.rs` (every JSON shape),
//!   `org_views.rs` (the organizations' JSON shapes), `error.rs` (the
//!   typed error codes and their statuses), `client/` (the typed client;
//!   `orgs.rs` its organization calls), `state.rs`, `auth.rs` (roles),
//!   `refusals.rs` (bounded refusal records), `scope.rs` (which
//!   organization a path names), `extract.rs` (path extractors, and the
//!   organization a request is about), `routes.rs`
//!   (the router) with `status.rs`, `keys.rs`, `actions.rs`, `orgs.rs`
//!   (the handlers), `server.rs` (socket, accept
//!   loop, drain), `connections.rs` (connection caps), `peer.rs` (the
//!   caller's credentials).
//! - [`daemon`]: `mod.rs` (start, run, shutdown), `signals.rs`,
//!   `systemd.rs`.
//! - `failpoint.rs`: the crash and delay points the tests drive (compiled
//!   to nothing without the `failpoints` feature).
//! - `fuzzing.rs`: the outside inputs as functions of bytes, for the fuzz
//!   targets in `fuzz/` and the corpus replay in `tests/`.
//! - [`report`]: an error and its causes on one line, panic texts.
//! - [`manpages`]: FILES, EXAMPLES and SEE ALSO for the binaries' pages,
//!   and `kekd.toml(5)` made from the commented example configuration.
//! - `testing/` (tests only): shared fixtures and the store's power-loss
//!   tests.
//! - `src/bin/kekd.rs`, `src/bin/kekctl/`: the thin binaries (`kekctl`:
//!   `cli.rs`, one file per command group, `output.rs`, `render.rs`
//!   (tables), `columns.rs` (fitting them), `audit_lines.rs` (one line per
//!   audit record), `files.rs`).
//!
//! Tests: unit tests sit next to the code; `tests/` is one integration binary
//! whose `harness/` owns moto, the fault proxy, the `TestDaemon` and an
//! independent envelope decryptor.
// One reviewed exception: `api::peer::peer_groups` (SO_PEERGROUPS has no
// safe wrapper in rustix or nix). Nothing else may opt out.
#![deny(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

mod aead;
pub mod api;
pub mod audit;
mod backoff;
mod canary;
pub mod config;
mod current;
pub mod daemon;
pub mod domain;
mod envelope;
mod failpoint;
pub mod fips;
#[doc(hidden)]
pub mod fuzzing;
pub mod hybrid;
pub mod isolation;
pub mod jwks;
mod key_cache;
mod key_watch;
pub mod keypair;
pub mod kms_check;
pub mod manpages;
mod metrics;
mod orgs;
pub mod policy;
mod proof;
pub mod provider;
pub mod recording;
mod reload;
pub mod report;
mod rewrap;
mod rotation;
mod schedule;
mod spread;
pub mod store;
mod sync;
mod tasks;
#[cfg(test)]
mod testing;
pub mod time;
mod unwrap;
