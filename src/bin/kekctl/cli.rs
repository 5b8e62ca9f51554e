//! The command line: clap's types, every option's help, and the value
//! parsers that make a bad value a usage error (exit 2).

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

/// Shown by `--help` and in the man page.
pub(crate) const EXIT_CODES: &str =
    "Exit codes: 0 success; 1 the daemon answered with an error (or a local \
failure such as an unwritable --out file); 2 bad command line; 3 the daemon cannot be \
reached (not running, wrong socket) or did not answer within --timeout; 4 permission \
denied (socket or role); 5 `status` only: the daemon answered and is degraded. A closed \
stdout (kekctl history | head) is not an error.

Environment: KEKD_SOCKET (the socket, as --socket); KEKD_ORG (the organization, as --org); COLUMNS (table width).
Documentation: /usr/share/doc/kekd/ (README.md, docs/).";

/// `-o`: how answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Plain aligned columns.
    Text,
    /// Plain aligned columns, every one (full KMS ARNs too).
    Wide,
    /// The API's JSON.
    Json,
}

#[derive(Parser)]
#[command(
    name = "kekctl",
    version = kekd::fips::VERSION,
    about = "Talk to kekd over its local socket",
    after_long_help = EXIT_CODES
)]
pub(crate) struct Cli {
    /// The daemon's socket.
    #[arg(long, env = "KEKD_SOCKET", default_value = kekd::config::defaults::SOCKET, global = true)]
    pub(crate) socket: PathBuf,
    /// The organization a per-organization command is about (needed when
    /// kekd serves several; `policy` takes it repeatedly).
    #[arg(long = "org", env = "KEKD_ORG", value_name = "ORG", global = true)]
    pub(crate) org: Vec<String>,
    /// Print JSON instead of tables (as `-o json`).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// How to print answers: `text` (plain columns), `wide` (every column),
    /// or `json`.
    #[arg(short = 'o', long = "output", value_name = "FORMAT", global = true, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Tables without their header line (for scripts that cut columns).
    #[arg(long, global = true)]
    pub(crate) no_headers: bool,
    /// Print nothing on stdout; the exit code says how it went (errors
    /// still go to stderr).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Give up when the daemon has not answered within this long (e.g. 10s,
    /// 2m); for rewrap, between two progress lines.
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Commands that never talk to the daemon: their help does not offer
/// `--socket`.
const WITHOUT_DAEMON: &[&str] = &["policy", "completions", "manpages"];

/// The command line as parsed, shown and documented: [`Cli`], with
/// `--socket` hidden from commands that need no daemon. (A subcommand that
/// has an argument of a global's name does not get the global: it gets
/// this hidden one, which accepts the same spellings and is ignored.)
pub(crate) fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for name in WITHOUT_DAEMON {
        cmd = cmd.mut_subcommand(name, |sub| {
            sub.arg(
                clap::Arg::new("socket")
                    .long("socket")
                    .env("KEKD_SOCKET")
                    .value_parser(clap::value_parser!(PathBuf))
                    .hide(true),
            )
        });
    }
    cmd
}

/// Parses the process's arguments (exits 2 on a usage error, as clap does).
pub(crate) fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Show the audit records (a table; --json prints them as stored).
    /// With --org, that organization's records, through the daemon (role
    /// view for it; no access to the file needed); otherwise, or with
    /// --file, read from the file directly (the daemon's, from status, by
    /// default: kekd's user or root only), every record or, with --org,
    /// those about that organization.
    Show {
        /// The audit log to read instead of the daemon's.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Only records at or after this: an RFC 3339 time, or a duration
        /// back from now (`1h`, `7d`).
        #[arg(long, value_name = "WHEN", value_parser = since_value)]
        since: Option<kekd::time::Timestamp>,
        /// Keep printing records as they are appended (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
    },
    /// Check the hash chain: exit 0 if intact, 1 with the first broken
    /// record. Reads the files directly (by default the daemon's, from
    /// status). Give archived files too, oldest first, to check that each
    /// continues the one before.
    Verify {
        /// An audit file to check instead of the daemon's (repeatable,
        /// oldest first).
        #[arg(long, value_name = "FILE")]
        file: Vec<PathBuf>,
    },
    /// Start a new audit file, keeping the chain: the daemon renames the
    /// current file to FILE.<UTC time> and the new file's first record
    /// continues from it. Archive or compress the renamed file as you like.
    Rotate,
}

#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Create the DynamoDB table for fleet mode (on-demand billing, the
    /// layout's keys and index) and wait until it is active; an existing
    /// table with the right keys is left as it is. Needs no daemon.
    Init {
        /// The table name.
        #[arg(long, value_parser = table_name)]
        table: String,
        /// The table's region.
        #[arg(long, env = "AWS_REGION")]
        region: String,
    },
    /// Copy a key history into an empty store, unchanged (no KMS call), and
    /// verify it item by item. Needs no daemon; stop the kekd that owns a
    /// redb file first.
    Copy {
        /// Source: redb:PATH or dynamodb:TABLE.
        #[arg(long, value_name = "LOCATION")]
        from: kekd::store::Location,
        /// Target (must be empty): redb:PATH or dynamodb:TABLE.
        #[arg(long, value_name = "LOCATION")]
        to: kekd::store::Location,
        /// The organization whose history is copied (default: --config's).
        #[arg(long, value_name = "ID")]
        organization: Option<String>,
        /// The DynamoDB table's region (default: --config's store region).
        #[arg(long, env = "AWS_REGION")]
        region: Option<String>,
        /// A kekd configuration to take the organization and region from.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Daemon state, active key pair, schedule, last error.
    Status,
    /// Key pair history, newest first.
    History {
        /// How many key pairs to show (the newest), 1 to 1000.
        #[arg(long, default_value_t = 20, conflicts_with = "all", value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Every key pair, page after page (1,000 at a time).
        #[arg(long)]
        all: bool,
    },
    /// The active public key (PEM), or with --jwks the JWK Set of the
    /// active and recently retired keys (what recorders cache).
    PublicKey {
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The JWK Set (RFC 7517) instead of one PEM.
        #[arg(long)]
        jwks: bool,
    },
    /// Change Key Now: rotate and wait for the new key pair.
    Rotate,
    /// Test round trip with the KMS key: the daemon's (default), or a
    /// candidate config file's, talking to KMS directly and writing nothing.
    Test {
        /// A candidate configuration to test instead of the running one.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Re-encrypt every key pair's data key under the current KMS key (KMS
    /// ReEncrypt; resumable, idempotent), with a progress bar.
    Rewrap,
    /// Seal a recording with the active public key (or --public-key with
    /// --key-id, for recorders that cache it). IN/OUT may be `-`.
    Seal {
        /// Plaintext audio (`-`: stdin).
        input: String,
        /// Sealed recording (`-`: stdout); written to a temporary file and
        /// renamed on success.
        output: String,
        /// A cached public key (PEM) instead of asking the daemon; its
        /// key-pair id is computed from it.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// Check that --public-key is this key pair's (optional).
        #[arg(long, value_name = "ID", requires = "public_key")]
        key_id: Option<String>,
        /// A cached JWK Set (`kekctl public-key --jwks`): seal with the key
        /// that is active in it.
        #[arg(long, value_name = "FILE", conflicts_with = "public_key")]
        jwks: Option<PathBuf>,
    },
    /// Open a sealed recording; the daemon unwraps the content key (role
    /// `decrypt`). IN/OUT may be `-`; a file OUT appears only if the whole
    /// recording authenticated.
    Open {
        /// Sealed recording (`-`: stdin).
        input: String,
        /// Plaintext audio (`-`: stdout).
        output: String,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the decryptability canary now: the active and recent key pairs
    /// must decrypt through KMS and match, and the KMS key must be usable.
    Check,
    /// Print the KMS key-policy statements kekd needs (JSON, ready to paste
    /// into the key policy's Statement array). Needs no daemon.
    Policy {
        /// The IAM principal kekd runs as (role or user ARN). The
        /// organizations are the global --org, repeated for several.
        #[arg(long, value_name = "ARN")]
        principal: String,
        /// The encryption-context key that carries the organization id.
        #[arg(long, default_value = "organization-id")]
        context_key: String,
        /// Fleet mode: also print the IAM policy for this DynamoDB table
        /// (output becomes {"kms_key_policy_statements": …, "iam_policy": …}).
        #[arg(long, value_name = "TABLE", requires = "table_region")]
        table: Option<String>,
        /// The table's region.
        #[arg(long, value_name = "REGION", requires = "table")]
        table_region: Option<String>,
        /// Access through a role in the customer's account instead: print
        /// the role's trust policy, its permissions policy on the key and
        /// the platform's IAM policy (needs one --org, --external-id and
        /// --key-arn).
        #[arg(long, value_name = "ARN", requires_all = ["external_id", "key_arn"])]
        role_arn: Option<String>,
        /// The external id the role's trust policy requires.
        #[arg(long, value_name = "ID", requires = "role_arn")]
        external_id: Option<String>,
        /// The customer's KMS key (for the role's permissions policy).
        #[arg(long, value_name = "ARN", requires = "role_arn")]
        key_arn: Option<String>,
    },
    /// The organizations kekd serves: add (Test first, then the first key
    /// pair), list, show, remove, restore, purge.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// The key store itself: create a fleet table, copy a history.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Reload the daemon's configuration file (as SIGHUP does; all or
    /// nothing, a new KMS key proven first). Exit 1 if it failed.
    Reload,
    /// Shell completions for kekctl (bash, zsh, fish, elvish, powershell),
    /// to stdout. Needs no daemon.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Man pages (kekctl.1 and one per subcommand) into DIR, for packaging.
    #[command(hide = true)]
    Manpages {
        /// Where to write them.
        dir: PathBuf,
    },
    /// A key pair's encrypted private key (envelope JSON) for backup or break-glass.
    Export {
        /// Key pair id (kek-…), or `active` for the active one.
        id: String,
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum OrgCommand {
    /// Add an organization: its KMS key passes preflight and the Test round
    /// trip with its own encryption context, then it is saved and its first
    /// key pair made, proven and active before this returns. On failure
    /// nothing is saved. Without --kms-key-arn (kekd --dev) the local key.
    Add {
        /// The organization id (1-64 of A-Z a-z 0-9 . _ -).
        id: String,
        #[command(flatten)]
        spec: SpecArgs,
        /// Refuse a KMS key whose policy does not bind it to this
        /// organization (the Test's isolation probe was granted a data key
        /// for another organization's context).
        #[arg(long)]
        require_isolation: bool,
    },
    /// Change an organization's settings: a new KMS key passes the Test
    /// first and a key pair is made under it at once; a new cadence
    /// reschedules; new backup keys re-wrap the existing key pairs.
    Set {
        /// The organization id.
        id: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Declarative: add and update the organizations a TOML file lists
    /// (`[[organization]]` tables with `id` and the fields of `org add`),
    /// printing what changed; running it again changes nothing. Removes
    /// nothing unless --prune (then every organization added through the
    /// API that the file does not list is removed, restorable as usual).
    Apply {
        /// The TOML file.
        file: PathBuf,
        /// Also remove the organizations the file does not list.
        #[arg(long)]
        prune: bool,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The organizations, a page at a time (by id).
    List {
        /// How many to show, 1 to 1000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Continue after this id (the previous page's last).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
    },
    /// One organization: state, health, key, cadence, active key pair.
    Show {
        /// The organization id.
        id: String,
    },
    /// Offboard an organization: rotation stops and its public keys are no
    /// longer served; its history stays and unwrap keeps working; restorable
    /// within the window.
    Remove {
        /// The organization id.
        id: String,
        /// How long it can be restored (default 30d).
        #[arg(long, value_name = "DURATION", value_parser = duration_text)]
        restore_window: Option<String>,
    },
    /// Undo a remove, within the restore window.
    Restore {
        /// The organization id.
        id: String,
    },
    /// After the restore window: delete every key pair of a removed
    /// organization. Its recordings can then never be opened again, even if
    /// its KMS key survives.
    Purge {
        /// The organization id.
        id: String,
        /// The organization id again.
        #[arg(long, value_name = "ORG", required = true)]
        confirm: String,
    },
}

/// An organization's own settings; absent ones take kekd's defaults.
#[derive(clap::Args)]
pub(crate) struct SpecArgs {
    /// The customer's KMS key (ARN).
    #[arg(long, value_name = "ARN")]
    pub(crate) kms_key_arn: Option<String>,
    /// A backup KMS key every key pair is also wrapped under (repeatable).
    #[arg(long = "backup-kms-key-arn", value_name = "ARN")]
    pub(crate) backup_kms_key_arns: Vec<String>,
    /// A role in the customer's account to assume for their key (STS
    /// AssumeRole); absent: the platform's own credentials.
    #[arg(long, value_name = "ARN")]
    pub(crate) assume_role_arn: Option<String>,
    /// The external id the role's trust policy requires.
    #[arg(long, value_name = "ID")]
    pub(crate) external_id: Option<String>,
    /// The KMS key's region, when not the one its ARN names.
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// daily, weekly, monthly, or a cron expression.
    #[arg(long)]
    pub(crate) cadence: Option<String>,
    /// The time zone the cadence is read in (IANA name).
    #[arg(long)]
    pub(crate) timezone: Option<String>,
    /// RSA size of new key pairs (2048, 3072, 4096); --key-type says more.
    #[arg(long, conflicts_with = "key_type")]
    pub(crate) key_bits: Option<i64>,
    /// What the next key pairs are: rsa-2048, rsa-3072, rsa-4096, or
    /// x25519-mlkem768 (hybrid post-quantum; recorders must read recording
    /// format 2 first). Takes effect at the next rotation.
    #[arg(long)]
    pub(crate) key_type: Option<String>,
    /// Keep retired key pairs at least this long (e.g. 400d).
    #[arg(long, value_parser = duration_text)]
    pub(crate) retention: Option<String>,
    /// Publish the next key pair this long before a scheduled rotation.
    #[arg(long, value_parser = duration_text)]
    pub(crate) announce_ahead: Option<String>,
    /// The encryption-context key that carries the organization id.
    #[arg(long)]
    pub(crate) encryption_context_key: Option<String>,
    /// While the customer's key is revoked: serve (keep serving the last
    /// public key) or withhold (stop serving public keys).
    #[arg(long, value_name = "serve|withhold", value_parser = on_revocation)]
    pub(crate) on_revocation: Option<kekd::domain::OnRevocation>,
}

/// `--on-revocation`, checked while parsing.
fn on_revocation(s: &str) -> Result<kekd::domain::OnRevocation, String> {
    s.parse()
        .map_err(|()| "allowed: serve (keep serving the last public key) or withhold (stop serving public keys)".into())
}

/// A duration as written (`30d`, `12h`), checked while parsing.
fn duration_text(s: &str) -> Result<String, String> {
    humantime::parse_duration(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a duration ({e}); e.g. 30d, 12h"))
}

/// A DynamoDB table name, checked while parsing (a bad one exits 2).
fn table_name(s: &str) -> Result<String, String> {
    if kekd::config::is_table_name(s) {
        Ok(s.to_string())
    } else {
        Err("not a DynamoDB table name (3-255 characters of A-Z a-z 0-9 _ . -)".into())
    }
}

/// `--since` as clap parses it: a bad value is a usage error (exit 2).
fn since_value(text: &str) -> Result<kekd::time::Timestamp, String> {
    parse_since(text).map_err(|e| e.to_string())
}

/// `--since`: an RFC 3339 time, or a duration back from now.
fn parse_since(text: &str) -> anyhow::Result<kekd::time::Timestamp> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!(
            "--since {text:?} is neither an RFC 3339 time (2026-11-23T08:00:00Z) nor a duration (1h, 7d)"
        )
    })?;
    Ok(kekd::time::now() - chrono::Duration::from_std(d)?)
}
