//! `kekctl`: the operator's CLI over the daemon's socket. Tables for people,
//! `--json` for scripts.
//!
//! Exit codes: 0 success; 1 the daemon answered with an error (or a local
//! failure such as an unwritable --out file); 2 bad command line; 3 the
//! daemon cannot be reached or did not answer within --timeout; 4
//! permission denied (socket or role).

mod files;
mod render;

use anyhow::Context;
use clap::{Parser, Subcommand};
use files::{open_input, progress_bar, write_output, write_text, Content};
use kekd::api::client::{Client, ClientError};
use kekd::api::views::RewrapEvent;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `println!` that returns an error instead of panicking when stdout is
/// closed (`kekctl history | head`); see `main` for what happens then.
macro_rules! outln {
    ($($t:tt)*) => {
        writeln!(std::io::stdout().lock(), $($t)*)?
    };
}

/// Shown by `--help` and in the man page.
const EXIT_CODES: &str = "Exit codes: 0 success; 1 the daemon answered with an error (or a local \
failure such as an unwritable --out file); 2 bad command line; 3 the daemon cannot be \
reached (not running, wrong socket) or did not answer within --timeout; 4 permission \
denied (socket or role). A closed stdout (kekctl history | head) is not an error.

Environment: KEKD_SOCKET (the socket, as --socket); COLUMNS (table width).
Documentation: /usr/share/doc/kekd/ (README.md, docs/).";

#[derive(Parser)]
#[command(
    name = "kekctl",
    version = kekd::fips::VERSION,
    about = "Talk to kekd over its local socket",
    after_long_help = EXIT_CODES
)]
struct Cli {
    /// The daemon's socket.
    #[arg(long, env = "KEKD_SOCKET", default_value = kekd::config::defaults::SOCKET, global = true)]
    socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Give up when the daemon has not answered within this long (e.g. 10s,
    /// 2m); for rewrap, between two progress lines.
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show the audit records (a table; --json prints them as stored),
    /// read from the file directly (by default the daemon's, from status).
    Show {
        /// The audit log to read instead of the daemon's.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Only records at or after this: an RFC 3339 time, or a duration
        /// back from now (`1h`, `7d`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
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
enum StoreCommand {
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
enum Command {
    /// Daemon state, active key pair, schedule, last error.
    Status,
    /// Key pair history, newest first.
    History {
        /// How many key pairs to show (the newest).
        #[arg(long, default_value_t = 20, conflicts_with = "all")]
        limit: usize,
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
        /// The IAM principal kekd runs as (role or user ARN).
        #[arg(long, value_name = "ARN")]
        principal: String,
        /// An organization id kekd serves (repeat for several).
        #[arg(long = "org", value_name = "ID", required = true)]
        orgs: Vec<String>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kekctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`, `| true`): not an error, as for
        // any Unix tool.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kekctl: {}", kekd::report::one_line(e.chain()));
            let code = match e.downcast_ref::<ClientError>() {
                Some(ClientError::NotRunning { .. } | ClientError::Timeout { .. }) => 3,
                Some(ClientError::PermissionDenied { .. }) => 4,
                Some(ClientError::Api {
                    code: kekd::api::ErrorCode::Forbidden,
                    ..
                }) => 4,
                _ if e.is::<kekd::policy::PolicyError>() => 2,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    kekd::fips::check()?;
    let client = Client::new(&cli.socket).with_timeout(cli.timeout);
    let json = cli.json;
    match cli.command {
        Command::Status => {
            let s = client.status().await?;
            if json {
                return print_json(&s);
            }
            outln!("{}", render::status(&s));
        }
        Command::History { limit, all } => {
            let l = if all {
                all_history(&client).await?
            } else {
                client.history(limit, None).await?
            };
            if json {
                return print_json(&l);
            }
            outln!("{}", render::history(&l));
            for c in &l.corrupt_records {
                eprintln!(
                    "warning: stored record {} does not decode: {}",
                    c.id, c.problem
                );
            }
        }
        Command::PublicKey { out, jwks: true } => {
            let j = client
                .public_keys(None)
                .await?
                .context("the daemon answered 304 to a request without an ETag")?;
            write_text(&out, &(serde_json::to_string_pretty(&j.set)? + "\n"))?;
            if let Some(path) = &out {
                eprintln!(
                    "wrote {} public keys to {} (ETag {}, {})",
                    j.set.keys.len(),
                    path.display(),
                    j.etag,
                    j.cache_control
                );
            }
        }
        Command::PublicKey { out, jwks: false } => {
            let p = client.public_key().await?;
            if json {
                return print_json(&p);
            }
            write_text(&out, &p.pem)?;
            if let Some(path) = &out {
                eprintln!("wrote public key of {} to {}", p.id, path.display());
            }
        }
        Command::Rotate => {
            let k = client.rotate().await?;
            if json {
                return print_json(&k);
            }
            outln!(
                "new active key pair {} ({} bits) wrapped by {}",
                k.id,
                k.key_bits,
                k.wrapping_key_arn
            );
        }
        Command::Test { config } => {
            let report = match config {
                None => client.test().await?,
                Some(file) => {
                    let settings =
                        kekd::config::Settings::load(&file).context("invalid configuration")?;
                    kekd::kms_check::test_candidate(&settings).await
                }
            };
            if json {
                print_json(&report)?;
            } else {
                outln!("{}", render::test_report(&report));
            }
            if let Some(f) = report.failure() {
                anyhow::bail!("Test round trip failed at {}: {}", f.step, f.detail);
            }
            if !json {
                outln!("passed");
            }
        }
        Command::Rewrap => rewrap(&client, json).await?,
        Command::Reload => {
            let r = client.reload().await?;
            if json {
                print_json(&r)?;
            } else {
                outln!("{}: {}", r.outcome, r.message);
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "kekctl", &mut std::io::stdout());
        }
        Command::Manpages { dir } => {
            use clap::CommandFactory;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
        Command::Store { command } => store(command, json).await?,
        Command::Audit {
            command:
                AuditCommand::Show {
                    file,
                    since,
                    follow,
                },
        } => {
            let path = match file {
                Some(f) => f,
                None => PathBuf::from(client.status().await?.audit.path),
            };
            let since = since.as_deref().map(parse_since).transpose()?;
            audit_show(&path, since, follow, json).await?;
        }
        Command::Audit {
            command: AuditCommand::Rotate,
        } => {
            let r = client.audit_rotate().await?;
            if json {
                print_json(&r)?;
            } else {
                outln!(
                    "archived {} ({} records, head {}); {} continues the chain",
                    r.archived,
                    r.records,
                    r.head,
                    r.path
                );
            }
        }
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => {
            let paths = match file {
                f if !f.is_empty() => f,
                _ => vec![PathBuf::from(client.status().await?.audit.path)],
            };
            let head = kekd::audit::verify_all(&paths)?;
            if json {
                print_json(&head)?;
            } else {
                let files = match paths.len() {
                    1 => head.path.clone(),
                    n => format!("{n} files up to {}", head.path),
                };
                outln!(
                    "{files}: {} records, chain intact, head {}",
                    head.records,
                    head.head
                );
                if let Some(c) = head.continues.as_ref().filter(|_| paths.len() == 1) {
                    outln!(
                        "  continues {} (records up to {}, head {}): check it too, oldest first, with --file",
                        c.previous_file,
                        c.previous_records,
                        c.previous_head
                    );
                }
            }
        }
        Command::Seal {
            input,
            output,
            public_key,
            key_id,
            jwks,
        } => {
            let (id, der) = match (public_key, key_id) {
                (None, _) if jwks.is_some() => {
                    let file = jwks.unwrap_or_default();
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let set: kekd::jwks::JwkSet = serde_json::from_str(&text)
                        .with_context(|| format!("{}: not a JWK Set", file.display()))?;
                    let key = set.sealing_key().with_context(|| {
                        format!("{}: no key in the set is active", file.display())
                    })?;
                    let der = key
                        .public_key_der()
                        .with_context(|| format!("{}: key {}", file.display(), key.kid))?;
                    let actual = kekd::keypair::key_pair_id(&der);
                    if actual != key.kid {
                        anyhow::bail!(
                            "{}: key {} is not the key its kid names (its id is {actual})",
                            file.display(),
                            key.kid
                        );
                    }
                    (actual, der)
                }
                (Some(file), expected) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let der = pem::parse(&text)
                        .with_context(|| format!("{}: not a PEM public key", file.display()))?
                        .into_contents();
                    let actual = kekd::keypair::key_pair_id(&der);
                    if let Some(id) = expected.filter(|id| *id != actual) {
                        anyhow::bail!(
                            "--key-id {id} does not belong to {} (its id is {actual})",
                            file.display()
                        );
                    }
                    (actual, der)
                }
                _ => {
                    let p = client.public_key().await?;
                    let der = pem::parse(&p.pem)
                        .context("daemon sent a bad PEM")?
                        .into_contents();
                    (p.id, der)
                }
            };
            let (mut reader, len) = open_input(&input)?;
            let bar = progress_bar(len);
            let n = write_output(&output, Content::Ciphertext, |w| {
                kekd::recording::seal(&mut reader, w, &id, &der, |done| bar.set_position(done))
                    .map_err(anyhow::Error::from)
            })?;
            bar.finish_and_clear();
            if output != "-" {
                eprintln!("sealed {n} bytes for key pair {id} into {output}");
            }
        }
        Command::Open { input, output } => {
            let (mut reader, len) = open_input(&input)?;
            let header = kekd::recording::Header::read(&mut reader)
                .context("reading the recording header")?;
            let answer = client
                .unwrap(&header.key_pair_id, &header.wrapped_key)
                .await?;
            let key = zeroize::Zeroizing::new(answer.content_key.clone());
            let bar = progress_bar(len);
            let n = write_output(&output, Content::Plaintext, |w| {
                kekd::recording::open_body(&header, key, &mut reader, w, |done| {
                    bar.set_position(done)
                })
                .map_err(anyhow::Error::from)
            })?;
            bar.finish_and_clear();
            if output != "-" {
                eprintln!(
                    "opened {n} bytes (key pair {}) into {output}",
                    header.key_pair_id
                );
            }
        }
        Command::Check => {
            let r = client.check().await?;
            if json {
                print_json(&r)?;
            } else {
                outln!("{}", render::canary(&r));
            }
            if !r.ok {
                anyhow::bail!(
                    "check failed: recordings under the failed key pairs may not be playable back"
                );
            }
        }
        Command::Policy {
            principal,
            orgs,
            context_key,
            table,
            table_region,
        } => {
            let v = kekd::policy::statements(&principal, &orgs, &context_key)?;
            match (table, table_region) {
                (Some(table), Some(region)) => print_json(&serde_json::json!({
                    "kms_key_policy_statements": v,
                    "iam_policy": kekd::policy::dynamodb_policy(&principal, &orgs, &table, &region)?,
                }))?,
                _ => print_json(&v)?,
            }
        }
        Command::Export { id, out } => {
            let id = if id == "active" {
                client.public_key().await?.id
            } else {
                id
            };
            let e = client.envelope(&id).await?;
            write_text(&out, &(serde_json::to_string_pretty(&e)? + "\n"))?;
        }
    }
    Ok(())
}

/// The whole history, following the cursor one 1,000-key-pair page at a
/// time (each page costs the daemon the page, not the history).
async fn all_history(client: &Client) -> anyhow::Result<kekd::api::views::KeyPairList> {
    let mut all = client.history(1000, None).await?;
    while let Some(cursor) = all.next_cursor.take() {
        let next = client.history(1000, Some(&cursor)).await?;
        all.keypairs.extend(next.keypairs);
        all.next_cursor = next.next_cursor;
    }
    Ok(all)
}

/// `kekctl rewrap`: follows the daemon's progress with a bar on a terminal
/// (`--json` prints each event as a JSON line).
async fn rewrap(client: &Client, json: bool) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::hidden();
    let mut last: Option<RewrapEvent> = None;
    let mut failures = Vec::new();
    // The rewrap goes on in the daemon whoever reads; stop printing once the
    // reader is gone.
    let mut pipe_closed = false;
    client
        .rewrap(|event| {
            if json && !pipe_closed {
                let line = serde_json::to_string(&event).unwrap_or_default();
                pipe_closed = writeln!(std::io::stdout().lock(), "{line}").is_err();
            }
            match &event {
                RewrapEvent::Start {
                    total,
                    target_key_arn,
                } => {
                    if !json {
                        eprintln!("re-wrapping {total} key pairs under {target_key_arn}");
                        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    }
                    bar.set_length(*total as u64);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                }
                RewrapEvent::Progress {
                    done,
                    id,
                    outcome,
                    problem,
                    ..
                } => {
                    bar.set_position(*done as u64);
                    bar.set_message(format!("{id} {outcome}"));
                    if let Some(p) = problem {
                        failures.push(format!("{id}: {p}"));
                    }
                }
                _ => {}
            }
            last = Some(event);
        })
        .await?;
    bar.finish_and_clear();
    for f in &failures {
        eprintln!("failed: {f}");
    }
    match last {
        Some(RewrapEvent::Done {
            rewrapped,
            skipped,
            failed,
        }) => {
            if !json {
                outln!("rewrap done: {rewrapped} re-wrapped, {skipped} already under the current key, {failed} failed");
            }
            if failed > 0 {
                anyhow::bail!("{failed} key pairs could not be re-wrapped; they stay under their old KMS key (run rewrap again)");
            }
            Ok(())
        }
        Some(RewrapEvent::Error { message }) => anyhow::bail!("rewrap failed: {message}"),
        _ => anyhow::bail!(
            "rewrap ended without a result (did the daemon stop?); run it again, it resumes"
        ),
    }
}

/// A DynamoDB table name, checked while parsing (a bad one exits 2).
fn table_name(s: &str) -> Result<String, String> {
    if kekd::config::is_table_name(s) {
        Ok(s.to_string())
    } else {
        Err("not a DynamoDB table name (3-255 characters of A-Z a-z 0-9 _ . -)".into())
    }
}

/// `kekctl store …`: works on the stores directly, not through the daemon.
async fn store(command: StoreCommand, json: bool) -> anyhow::Result<()> {
    match command {
        StoreCommand::Init { table, region } => {
            let created = kekd::store::create_table(&table, &region).await?;
            if json {
                return print_json(&serde_json::json!({ "table": table, "created": created }));
            }
            if created {
                outln!("created table {table} in {region} (on-demand billing); it is active");
            } else {
                outln!(
                    "table {table} in {region} already exists with kekd's layout; left as it is"
                );
            }
        }
        StoreCommand::Copy {
            from,
            to,
            organization,
            region,
            config,
        } => {
            let settings = match &config {
                Some(file) => {
                    Some(kekd::config::Settings::load(file).context("invalid configuration")?)
                }
                None => None,
            };
            let organization =
                organization.or_else(|| settings.as_ref().map(|s| s.organization_id().to_string()));
            let region = region.or_else(|| settings.as_ref().and_then(|s| s.store_region()));
            let tenant = match (organization, region) {
                (Some(organization_id), Some(region)) => Some(kekd::store::Tenant {
                    organization_id,
                    region,
                }),
                _ => None,
            };
            let source = kekd::store::open_location(&from, tenant.as_ref(), true)
                .await
                .with_context(|| format!("opening the source {from}"))?;
            let target = kekd::store::open_location(&to, tenant.as_ref(), false)
                .await
                .with_context(|| format!("opening the target {to}"))?;
            let bar = progress_bar(None);
            let report = kekd::store::copy(&*source, &*target, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .await
            .with_context(|| format!("copying {from} to {to}"))?;
            bar.finish_and_clear();
            if json {
                return print_json(&report);
            }
            outln!(
                "copied {} key pairs from {from} to {to}, verified item by item; active: {}",
                report.key_pairs,
                report.active.as_deref().unwrap_or("none")
            );
        }
    }
    Ok(())
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

/// `kekctl audit show`: the records from `since` on, as a table (or the
/// stored JSON lines); with `follow`, then every record appended.
async fn audit_show(
    path: &std::path::Path,
    since: Option<kekd::time::Timestamp>,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;
    let open = || -> anyhow::Result<(std::io::BufReader<std::fs::File>, u64)> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let ino = file.metadata()?.ino();
        Ok((std::io::BufReader::new(file), ino))
    };
    let (mut reader, mut ino) = open()?;
    // Set once the path names a new file (`kekctl audit rotate`): the old
    // one is read to its end, then following goes on in the new one.
    let mut rotated = false;
    let mut rows = Vec::new();
    let mut line = String::new();
    let flush = |rows: &mut Vec<serde_json::Value>| -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if json {
            for r in rows.iter() {
                outln!("{r}");
            }
        } else {
            outln!("{}", render::audit(rows));
        }
        rows.clear();
        Ok(())
    };
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 || !line.ends_with('\n') {
            flush(&mut rows)?;
            if !follow {
                return Ok(());
            }
            // A partial last line is read again once it is complete.
            if n > 0 {
                let back = i64::try_from(n).unwrap_or(0);
                std::io::Seek::seek(reader.get_mut(), std::io::SeekFrom::Current(-back))?;
                reader = std::io::BufReader::new(reader.into_inner());
            }
            if rotated {
                // The old file was read to its end after the rename, and
                // nothing is appended to it after that: switch.
                (reader, ino) = open()?;
                rotated = false;
                continue;
            }
            if std::fs::metadata(path).is_ok_and(|m| m.ino() != ino) {
                rotated = true;
                continue;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        let record: serde_json::Value =
            serde_json::from_str(line.trim_end()).with_context(|| {
                format!(
                    "{}: not an audit record: {}",
                    path.display(),
                    line.trim_end()
                )
            })?;
        let at = record["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        if since.is_none_or(|s| at.is_some_and(|at| at >= s)) {
            rows.push(record);
        }
    }
}
