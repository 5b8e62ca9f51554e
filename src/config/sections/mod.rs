//! Validation, section by section. Each section turns its raw serde struct
//! into typed settings and owns its defaults (read from `defaults.rs`), as
//! zincati's `with_config` does; `config/mod.rs` only puts the sections
//! together. One file per group of sections:
//!
//! - `identity.rs`: organization, region, context key, key size, time zone;
//! - `provider.rs`: `[provider]`, the KMS key and its backups;
//! - `rotation.rs`: cadence, retention, `[overrides]`;
//! - `paths.rs`: the state directory and the audit log;
//! - `tuning.rs`: `[kms]` timeouts, `[retry]`, `[unwrap]`, `[canary]`;
//! - `customer.rs`: `[customer_keys]` and `on_revocation`;
//! - `service.rs`: `[log]`, `[api]`, `[access]`, `[metrics]`;
//! - `store.rs`: `[store]`.

mod customer;
mod identity;
mod paths;
mod provider;
mod rotation;
mod service;
mod store;
mod tuning;

pub(crate) use customer::*;
pub(crate) use identity::*;
pub(crate) use paths::*;
pub(crate) use provider::*;
pub(crate) use rotation::*;
pub(crate) use service::*;
pub use service::{ApiSettings, LogFormat, LogSettings};
pub use store::is_table_name;
pub(crate) use store::*;
pub(crate) use tuning::*;
