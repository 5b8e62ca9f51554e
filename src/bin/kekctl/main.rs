//! `kekctl`: the operator's CLI over the daemon's socket. Tables for people,
//! `--json` for scripts.
//!
//! Exit codes: 0 success; 1 the daemon answered with an error (or a local
//! failure such as an unwritable --out file); 2 bad command line; 3 the
//! daemon cannot be reached or did not answer within --timeout; 4
//! permission denied (socket or role); 5 (`status`) the daemon answered
//! and is degraded.
//!
//! Layout, as rage's CLI: `cli.rs` (clap's types), one file per command
//! group — `keys.rs` (status, history, public key, rotate, export),
//! `kms.rs` (test, check, rewrap, reload, policy), `recordings.rs` (seal,
//! open), `audit.rs`, `store.rs` — `output.rs` (JSON or text, one way),
//! `render.rs` (the tables), `columns.rs` (plain columns fitted to the terminal), `files.rs` (inputs, outputs, progress).

mod apply;
mod audit;
mod audit_lines;
mod cli;
mod columns;
mod files;
mod keys;
mod kms;
mod org;
mod output;
mod recordings;
mod render;
mod store;

use anyhow::Context;

use cli::{AuditCommand, Cli, Command};
use kekd::api::client::{Client, ClientError};
use output::Output;
use recordings::SealingKey;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    let quiet = cli.quiet;
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
            if !(quiet && e.is::<keys::Degraded>()) {
                eprintln!("kekctl: {}", kekd::report::one_line(e.chain()));
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The documented exit code of a failure.
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<ClientError>() {
        Some(
            ClientError::NotRunning { .. }
            | ClientError::NotASocket { .. }
            | ClientError::Timeout { .. },
        ) => 3,
        Some(ClientError::PermissionDenied { .. }) => 4,
        Some(ClientError::Api {
            code: kekd::api::ErrorCode::Forbidden,
            ..
        }) => 4,
        _ if e.is::<kekd::policy::PolicyError>() || e.is::<Usage>() => 2,
        _ if e.is::<keys::Degraded>() => 5,
        _ if e
            .downcast_ref::<kekd::audit::VerifyError>()
            .is_some_and(|v| {
                matches!(v, kekd::audit::VerifyError::Unreadable { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied)
            }) =>
        {
            4
        }
        _ => 1,
    }
}

/// A command line that parses but does not make sense (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    kekd::fips::check()?;
    if cli.org.len() > 1 && !matches!(cli.command, Command::Policy { .. }) {
        return Err(
            Usage("--org names one organization here (only policy takes several)".into()).into(),
        );
    }
    let client = Client::new(&cli.socket)
        .with_timeout(cli.timeout)
        .with_org(cli.org.first().cloned());
    let out = Output {
        json: cli.json || cli.format == cli::Format::Json,
        quiet: cli.quiet,
    };
    columns::configure(cli.format == cli::Format::Wide, cli.no_headers);
    match cli.command {
        Command::Status => keys::status(&client, out).await,
        Command::History { limit, all } => {
            keys::history(&client, out, usize::from(limit), all).await
        }
        Command::PublicKey { out: file, jwks } => keys::public_key(&client, out, file, jwks).await,
        Command::Rotate => keys::rotate(&client, out).await,
        Command::Export { id, out: file } => keys::export(&client, id, file).await,
        Command::Test { config } => kms::test(&client, out, config).await,
        Command::Check => kms::check(&client, out).await,
        Command::Rewrap => kms::rewrap(&client, out).await,
        Command::Reload => kms::reload(&client, out).await,
        Command::Org { command } => org::run(&client, command, out).await,
        Command::Policy {
            principal,
            context_key,
            table,
            table_region,
            role_arn,
            external_id,
            key_arn,
        } => match (role_arn, external_id, key_arn) {
            (Some(role), Some(id), Some(key)) => {
                let [org] = cli.org.as_slice() else {
                    return Err(Usage(
                        "--role-arn: the role is one organization's: one --org".into(),
                    )
                    .into());
                };
                crate::output::json(&kekd::policy::assume_role_policies(
                    &principal,
                    org,
                    &role,
                    &id,
                    &key,
                    &context_key,
                )?)
            }
            _ => kms::policy(&principal, &cli.org, &context_key, table.zip(table_region)),
        },
        Command::Seal {
            input,
            output,
            public_key,
            key_id,
            jwks,
        } => {
            let key = match (public_key, jwks) {
                (Some(pem), _) => SealingKey::Pem(pem, key_id),
                (None, Some(set)) => SealingKey::Jwks(set),
                (None, None) => SealingKey::Daemon,
            };
            recordings::seal(&client, &input, &output, key).await
        }
        Command::Open { input, output } => recordings::open(&client, &input, &output).await,
        Command::Audit { command } => match command {
            AuditCommand::Show {
                file,
                since,
                follow,
            } => {
                let path = match (file, cli.org.first()) {
                    (Some(f), _) => f,
                    (None, Some(_)) => return audit::show_org(&client, since, follow, out).await,
                    (None, None) => audit::daemon_file(&client).await?,
                };
                audit::show(
                    &path,
                    since,
                    cli.org.first().map(String::as_str),
                    follow,
                    out,
                )
                .await
            }
            AuditCommand::Verify { file } => {
                let paths = match file {
                    f if !f.is_empty() => f,
                    _ => vec![audit::daemon_file(&client).await?],
                };
                audit::verify(&paths, out)
            }
            AuditCommand::Rotate => audit::rotate(&client, out).await,
        },
        Command::Store { command } => store::run(command, out).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli::command(), "kekctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpages { dir } => {
            let cmd = cli::command().disable_help_subcommand(true);
            clap_mangen::generate_to(cmd.clone(), &dir)
                .and_then(|()| {
                    // The main page again, with FILES, EXAMPLES, SEE ALSO.
                    let mut main = cmd;
                    main.build();
                    kekd::manpages::write(main, "1", &kekd::manpages::KEKCTL, &dir)
                })
                .with_context(|| format!("writing man pages into {}", dir.display()))
        }
    }
}
