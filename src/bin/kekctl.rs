//! `kekctl`: the operator's CLI over the daemon's socket. Tables for people,
//! `--json` for scripts.
//!
//! Exit codes: 0 success; 1 the daemon answered with an error (or a local
//! failure such as an unwritable --out file); 2 bad command line; 3 the
//! daemon cannot be reached; 4 permission denied (socket or role).

use anyhow::Context;
use clap::{Parser, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use kekd::api::client::{Client, ClientError};
use kekd::api::views::{ExportView, KeyPairList, KeyPairView, PublicKeyView, StatusView};
use kekd::kms_check::TestReport;
use kekd::time::format;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kekctl", version, about = "Talk to kekd over its local socket")]
struct Cli {
    /// The daemon's socket.
    #[arg(long, env = "KEKD_SOCKET", default_value = kekd::config::DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: exit 0 if intact, 1 with the first broken
    /// record. Reads the file directly (by default the daemon's, from status).
    Verify {
        /// The audit log to check instead of the daemon's.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Daemon state, active key pair, schedule, last error.
    Status,
    /// Key pair history, newest first.
    History {
        /// How many key pairs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The active public key (PEM).
    PublicKey {
        /// Write the PEM to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
        /// A cached public key (PEM) instead of asking the daemon.
        #[arg(long, value_name = "FILE", requires = "key_id")]
        public_key: Option<PathBuf>,
        /// The key-pair id of --public-key.
        #[arg(long, value_name = "ID", requires = "public_key")]
        key_id: Option<String>,
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
    },
    /// A key pair's encrypted private key (envelope JSON) for backup or break-glass.
    Export {
        /// Key pair id (kek-…).
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
        Err(e) => {
            eprintln!("kekctl: {e:#}");
            let code = match e.downcast_ref::<ClientError>() {
                Some(ClientError::NotRunning { .. }) => 3,
                Some(ClientError::PermissionDenied { .. }) => 4,
                Some(ClientError::Api { status: 403, .. }) => 4,
                _ if e.is::<kekd::policy::PolicyError>() => 2,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn opt(t: &Option<kekd::time::Timestamp>) -> String {
    t.as_ref().map(format).unwrap_or_else(|| "-".into())
}

fn write_out(out: &Option<PathBuf>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.socket);
    match cli.command {
        Command::Status => {
            let s: StatusView = client.get("/v1/status").await?;
            if cli.json {
                return print_json(&s);
            }
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY);
            let rows: Vec<(&str, String)> = vec![
                ("state", s.state.clone()),
                ("organization", s.organization_id.clone()),
                ("kms key", s.kms_key.clone()),
                (
                    "active key pair",
                    s.active_key_id.clone().unwrap_or_else(|| "-".into()),
                ),
                ("active since", opt(&s.active_since)),
                ("cadence", format!("{} ({})", s.cadence, s.timezone)),
                ("last rotation", opt(&s.last_rotation_at)),
                ("next rotation", opt(&s.next_rotation_at)),
                ("rotating now", s.rotation_in_progress.to_string()),
                ("degraded since", opt(&s.degraded_since)),
                ("next retry", opt(&s.next_retry_at)),
                (
                    "last error",
                    s.last_error
                        .as_ref()
                        .map(|e| {
                            format!(
                                "{} {} {}: {}{}",
                                format(&e.at),
                                e.operation.as_deref().unwrap_or("-"),
                                e.code.as_deref().unwrap_or(&e.kind),
                                e.message,
                                e.request_id
                                    .as_ref()
                                    .map(|r| format!(" [request {r}]"))
                                    .unwrap_or_default()
                            )
                        })
                        .unwrap_or_else(|| "-".into()),
                ),
                (
                    "key pairs",
                    s.key_pairs
                        .by_state
                        .iter()
                        .map(|(k, v)| format!("{v} {k}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ];
            for (k, v) in rows {
                t.add_row(vec![k.to_string(), v]);
            }
            for (arn, n) in &s.key_pairs.by_wrapping_key {
                t.add_row(vec!["wrapped by".to_string(), format!("{n} under {arn}")]);
            }
            for c in &s.corrupt_records {
                t.add_row(vec![
                    "CORRUPT RECORD".to_string(),
                    format!("{}: {}", c.id, c.problem),
                ]);
            }
            if let Some(c) = &s.last_canary {
                let failed: Vec<&str> = c
                    .key_pairs
                    .iter()
                    .filter(|k| !k.ok)
                    .map(|k| k.id.as_str())
                    .collect();
                let text = if c.ok {
                    format!("{} ok ({} key pairs)", format(&c.at), c.key_pairs.len())
                } else {
                    format!(
                        "{} FAILED: {} {}",
                        format(&c.at),
                        c.kms_key_problem.as_deref().unwrap_or(""),
                        failed.join(", ")
                    )
                };
                t.add_row(vec!["last canary".to_string(), text]);
            }
            if let Some(r) = &s.last_reload {
                t.add_row(vec![
                    "last reload".to_string(),
                    format!("{} {}: {}", format(&r.at), r.outcome, r.message),
                ]);
            }
            if let Some(p) = &s.kms_key_problem {
                t.add_row(vec!["KMS KEY PROBLEM".to_string(), p.clone()]);
            }
            for w in &s.warnings {
                t.add_row(vec!["WARNING".to_string(), w.clone()]);
            }
            println!("{t}");
        }
        Command::History { limit } => {
            let l: KeyPairList = client.get(&format!("/v1/keypairs?limit={limit}")).await?;
            if cli.json {
                return print_json(&l);
            }
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY);
            t.set_header(vec![
                "id",
                "state",
                "reason",
                "bits",
                "created",
                "activated",
                "retired",
                "wrapping key",
            ]);
            for k in &l.keypairs {
                t.add_row(vec![
                    k.id.clone(),
                    format!("{:?}", k.state).to_lowercase(),
                    k.reason.to_string(),
                    k.key_bits.to_string(),
                    format(&k.created_at),
                    opt(&k.activated_at),
                    opt(&k.retired_at),
                    k.wrapping_key_arn.clone(),
                ]);
            }
            println!("{t}");
            for c in &l.corrupt_records {
                eprintln!(
                    "warning: stored record {} does not decode: {}",
                    c.id, c.problem
                );
            }
        }
        Command::PublicKey { out } => {
            let p: PublicKeyView = client.get("/v1/public-key").await?;
            if cli.json {
                return print_json(&p);
            }
            write_out(&out, &p.pem)?;
            if out.is_some() {
                eprintln!(
                    "wrote public key of {} to {}",
                    p.id,
                    out.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
            }
        }
        Command::Rotate => {
            let k: KeyPairView = client.post("/v1/rotate").await?;
            if cli.json {
                return print_json(&k);
            }
            println!(
                "new active key pair {} ({} bits) wrapped by {}",
                k.id, k.key_bits, k.wrapping_key_arn
            );
        }
        Command::Test { config } => {
            let report: TestReport = match config {
                None => client.post("/v1/test").await?,
                Some(file) => {
                    let settings =
                        kekd::config::Settings::load(&file).context("invalid configuration")?;
                    let provider = kekd::provider::from_settings(&settings, false)
                        .await
                        .context("cannot use the key provider")?;
                    kekd::kms_check::round_trip(&*provider, &settings).await
                }
            };
            if cli.json {
                print_json(&report)?;
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY);
                t.set_header(vec!["step", "result", "detail"]);
                for s in &report.steps {
                    t.add_row(vec![
                        s.step.clone(),
                        if s.ok { "ok".into() } else { "FAILED".into() },
                        s.detail.clone(),
                    ]);
                }
                println!("Test round trip with {}\n{t}", report.kms_key);
            }
            if let Some(f) = report.failure() {
                anyhow::bail!("Test round trip failed at {}: {}", f.step, f.detail);
            }
            if !cli.json {
                println!("passed");
            }
        }
        Command::Rewrap => rewrap(&client, cli.json).await?,
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => {
            let path = match file {
                Some(f) => f,
                None => {
                    let s: StatusView = client.get("/v1/status").await?;
                    PathBuf::from(s.audit.path)
                }
            };
            let head = kekd::audit::verify(&path)?;
            if cli.json {
                print_json(&head)?;
            } else {
                println!(
                    "{}: {} records, chain intact, head {}",
                    head.path, head.records, head.head
                );
            }
        }
        Command::Seal {
            input,
            output,
            public_key,
            key_id,
        } => {
            let (id, der) = match (public_key, key_id) {
                (Some(file), Some(id)) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let der = pem::parse(&text)
                        .with_context(|| format!("{}: not a PEM public key", file.display()))?
                        .into_contents();
                    let actual = kekd::keypair::key_pair_id(&der);
                    if actual != id {
                        anyhow::bail!(
                            "--key-id {id} does not belong to {} (its id is {actual})",
                            file.display()
                        );
                    }
                    (id, der)
                }
                _ => {
                    let p: PublicKeyView = client.get("/v1/public-key").await?;
                    (
                        p.id.clone(),
                        pem::parse(&p.pem)
                            .context("daemon sent a bad PEM")?
                            .into_contents(),
                    )
                }
            };
            let (mut reader, len) = open_input(&input)?;
            let bar = progress_bar(len);
            let n = write_output(&output, |w| {
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
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let answer: serde_json::Value = client
                .post_json(
                    &format!("/v1/keypairs/{}/unwrap", header.key_pair_id),
                    &serde_json::json!({ "wrapped_key": b64.encode(&header.wrapped_key) }),
                )
                .await?;
            let key = zeroize::Zeroizing::new(
                b64.decode(answer["content_key"].as_str().unwrap_or_default())
                    .context("daemon sent a bad content key")?,
            );
            let bar = progress_bar(len);
            let n = write_output(&output, |w| {
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
            let r: kekd::canary::CanaryReport = client.post("/v1/check").await?;
            if cli.json {
                print_json(&r)?;
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_BORDERS_ONLY);
                t.set_header(vec!["check", "result", "detail"]);
                t.add_row(vec![
                    "KMS key".to_string(),
                    if r.kms_key_problem.is_none() {
                        "ok"
                    } else {
                        "FAILED"
                    }
                    .to_string(),
                    r.kms_key_problem
                        .clone()
                        .unwrap_or_else(|| "enabled, usable".into()),
                ]);
                for k in &r.key_pairs {
                    t.add_row(vec![
                        k.id.clone(),
                        if k.ok { "ok" } else { "FAILED" }.to_string(),
                        k.problem
                            .clone()
                            .unwrap_or_else(|| "decrypts through KMS and matches".into()),
                    ]);
                }
                println!("{t}");
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
        } => {
            let v = kekd::policy::statements(&principal, &orgs, &context_key)?;
            print_json(&v)?;
        }
        Command::Export { id, out } => {
            let e: ExportView = client.get(&format!("/v1/keypairs/{id}/envelope")).await?;
            write_out(&out, &(serde_json::to_string_pretty(&e)? + "\n"))?;
        }
    }
    Ok(())
}

/// `kekctl rewrap`: follows the daemon's JSON-lines progress with a bar on a
/// terminal (`--json` passes the lines through).
async fn rewrap(client: &Client, json: bool) -> anyhow::Result<()> {
    use kekd::rewrap::RewrapEvent;
    let bar = indicatif::ProgressBar::hidden();
    let mut last: Option<RewrapEvent> = None;
    let mut failures = Vec::new();
    client
        .stream_lines(hyper::Method::POST, "/v1/rewrap", |line| {
            if json {
                println!("{line}");
            }
            let Ok(event) = serde_json::from_str::<RewrapEvent>(line) else {
                return;
            };
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
                println!("rewrap done: {rewrapped} re-wrapped, {skipped} already under the current key, {failed} failed");
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

/// `-` is stdin; a file also reports its length for the progress bar.
fn open_input(input: &str) -> anyhow::Result<(Box<dyn std::io::Read>, Option<u64>)> {
    if input == "-" {
        return Ok((
            Box::new(std::io::BufReader::new(std::io::stdin().lock())),
            None,
        ));
    }
    let f = std::fs::File::open(input).with_context(|| format!("opening {input}"))?;
    let len = f.metadata().ok().map(|m| m.len());
    Ok((Box::new(std::io::BufReader::with_capacity(1 << 20, f)), len))
}

/// `-` is stdout; a file is written to a temporary file beside it and
/// renamed only when `write` succeeded, so a failure leaves no partial file.
fn write_output(
    output: &str,
    write: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
    if output == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        return write(&mut out);
    }
    let path = std::path::Path::new(output);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let n = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
        let n = write(&mut w)?;
        std::io::Write::flush(&mut w)?;
        n
    };
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {output}"))?;
    Ok(n)
}

/// A byte progress bar on a terminal for inputs of 16 MiB or more.
fn progress_bar(len: Option<u64>) -> indicatif::ProgressBar {
    match len {
        Some(n) if n >= 16 << 20 && std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            let bar = indicatif::ProgressBar::new(n);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        }
        _ => indicatif::ProgressBar::hidden(),
    }
}
