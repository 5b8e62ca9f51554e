//! The KMS key and the daemon's configuration: the Test round trip, the
//! canary, rewrap, reload, and the key-policy statements kekd needs.

use crate::output::{outln, Output};
use crate::render;
use anyhow::Context;
use kekd::api::client::Client;
use kekd::api::views::RewrapEvent;
use std::io::Write;
use std::path::PathBuf;

/// `kekctl test [--config FILE]`: the daemon's key, or a candidate file's
/// (talking to KMS directly, writing nothing).
pub(crate) async fn test(
    client: &Client,
    out: Output,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let report = match config {
        None => client.test().await?,
        Some(file) => {
            let settings = kekd::config::Settings::load(&file).context("invalid configuration")?;
            kekd::kms_check::test_candidate(&settings, false).await
        }
    };
    out.show(&report, render::test_report)?;
    if let Some(f) = report.failure() {
        anyhow::bail!("Test round trip failed at {}: {}", f.step, f.detail);
    }
    out.say("passed")
}

/// `kekctl check`: the decryptability canary, now.
pub(crate) async fn check(client: &Client, out: Output) -> anyhow::Result<()> {
    let r = client.check().await?;
    out.show(&r, render::canary)?;
    if !r.ok {
        anyhow::bail!(
            "check failed: recordings under the failed key pairs may not be playable back"
        );
    }
    Ok(())
}

/// `kekctl reload`.
pub(crate) async fn reload(client: &Client, out: Output) -> anyhow::Result<()> {
    let r = client.reload().await?;
    out.show(&r, |r| format!("{}: {}", r.outcome, r.message))
}

/// `kekctl policy`: JSON by nature, needs no daemon.
pub(crate) fn policy(
    principal: &str,
    orgs: &[String],
    context_key: &str,
    table: Option<(String, String)>,
) -> anyhow::Result<()> {
    let v = kekd::policy::statements(principal, orgs, context_key)?;
    match table {
        Some((table, region)) => crate::output::json(&serde_json::json!({
            "kms_key_policy_statements": v,
            "iam_policy": kekd::policy::dynamodb_policy(principal, orgs, &table, &region)?,
        })),
        None => crate::output::json(&v),
    }
}

/// `kekctl rewrap`: follows the daemon's progress with a bar on a terminal
/// (`--json` prints each event as a JSON line).
pub(crate) async fn rewrap(client: &Client, out: Output) -> anyhow::Result<()> {
    let json = out.json;
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
