//! Every default of the configuration, in one table. The sections in
//! `sections.rs`, `--dev` and `kekctl` all read them from here, so a default
//! is changed in one place and documented in one place (`config/kekd.toml`).

use std::time::Duration;

/// The API socket, under systemd's `RuntimeDirectory=kekd`.
pub const SOCKET: &str = "/run/kekd/kekd.sock";
/// The state directory (systemd `StateDirectory=kekd`).
pub const STATE_DIR: &str = "/var/lib/kekd";
/// The store file, inside the state directory.
pub const STORE_FILE: &str = "kekd.redb";
/// The audit trail, inside the state directory unless `audit_log` says.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// RSA modulus size of new key pairs.
pub const KEY_BITS: u32 = 3072;
/// Rotation cadence.
pub const CADENCE: &str = "monthly";
/// The time zone the cadence is evaluated in.
pub const TIMEZONE: &str = "UTC";
/// The encryption-context key that carries the organization id.
pub const CONTEXT_KEY: &str = "organization-id";
/// KMS TCP/TLS connect timeout.
pub const KMS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// KMS per-attempt timeout.
pub const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// KMS whole-operation timeout (retries included).
pub const KMS_OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// With several organizations, the window before a scheduled rotation over
/// which their next key pairs are prepared. 10,000 RSA-3072 generations
/// cost about 1,400 CPU-seconds; spread over 2 hours that is a fifth of
/// one core, and their 20,000-30,000 KMS requests are about 4 a second.
pub const PREPARE_WINDOW: Duration = Duration::from_secs(2 * 3600);
/// KMS requests per second, every organization together: a tenth of the
/// smallest regional quota for symmetric operations (5,500/s), so kekd
/// leaves the platform's account most of its quota.
pub const KMS_MAX_REQUESTS_PER_SECOND: usize = 500;
/// `DescribeKey` requests per second: its quota is far lower than the
/// cryptographic operations', and kekd needs it only for checks.
pub const KMS_MAX_DESCRIBE_KEY_PER_SECOND: usize = 20;
/// First backoff cap after a failed rotation.
pub const RETRY_INITIAL_DELAY: Duration = Duration::from_secs(5);
/// Longest backoff after failed rotations.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(300);
/// How long a decrypted private key stays cached for `unwrap`.
pub const UNWRAP_CACHE_TTL: Duration = Duration::from_secs(300);
/// How many decrypted private keys may be cached, every organization
/// together (an RSA-3072 key takes about 3 KiB).
pub const UNWRAP_CACHE_MAX: usize = 256;
/// The revocation bound: a customer's revocation of their key shows in
/// status within this.
pub const NOTICE_REVOCATION_WITHIN: Duration = Duration::from_secs(300);
/// How long the credentials of a customer's role last (STS
/// `DurationSeconds`): a role's default maximum session.
pub const ROLE_SESSION: Duration = Duration::from_secs(3600);
/// The shortest session STS grants.
pub const MIN_ROLE_SESSION: Duration = Duration::from_secs(900);
/// The longest session STS grants (and a role's maximum allows at most).
pub const MAX_ROLE_SESSION: Duration = Duration::from_secs(12 * 3600);
/// The shortest bound without `[overrides] allow_frequent_checks`.
pub const MIN_NOTICE_REVOCATION_WITHIN: Duration = Duration::from_secs(60);
/// The longest bound.
pub const MAX_NOTICE_REVOCATION_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// Time between decryptability canaries.
pub const CANARY_INTERVAL: Duration = Duration::from_secs(3600);
/// Retired key pairs the canary checks besides the active one.
pub const CANARY_RECENT: usize = 3;
/// The shortest canary interval without `[overrides] allow_frequent_checks`:
/// each run decrypts key pairs through KMS and writes audit records.
pub const MIN_CANARY_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest first retry delay: a tighter loop only hammers KMS.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Log level filter.
pub const LOG_LEVEL: &str = "info";

/// The shortest `retention` accepted without `[overrides]
/// allow_short_retention`: pruning deletes retired key pairs, and with them
/// the ability to play back the recordings they sealed.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// The shortest time between two scheduled rotations accepted without
/// `[overrides] allow_frequent_rotation`: every rotation is a key pair kept
/// for the retention period, a KMS call and an audit record.
pub const MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(3600);

/// How long a connection may take to send a request head, after connecting
/// or after its previous response.
pub const API_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the API holds at once (also kept below the descriptor
/// limit).
pub const API_MAX_CONNECTIONS: usize = 512;
/// Connections one peer uid may hold (root and kekd's own uid are exempt).
pub const API_MAX_CONNECTIONS_PER_UID: usize = 64;

/// `--dev`: the organization id.
pub const DEV_ORGANIZATION: &str = "dev";
/// `--dev`: a daily cadence, so a new user sees a schedule.
pub const DEV_CADENCE: &str = "daily";
/// `--dev`: the local root key file, inside the state directory.
pub const DEV_ROOT_KEY_FILE: &str = "root.key";
/// `--dev`: the socket file, inside the state directory.
pub const DEV_SOCKET_FILE: &str = "kekd.sock";

/// Fleet mode: how often each instance reads the fleet's revision to see
/// what changed (one strongly consistent `GetItem`: 720 requests an hour,
/// whatever the number of organizations).
pub const STORE_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Fleet mode: how long a rotation lease lasts unless renewed; a crashed
/// holder's lease is taken over after it.
pub const STORE_LEASE_DURATION: Duration = Duration::from_secs(30);
