//! The key store itself, worked on directly (no daemon): create a fleet
//! table, copy a history between stores.

use crate::cli::StoreCommand;
use crate::files::progress_bar;
use crate::output::{outln, Output};
use anyhow::Context;
use std::io::Write;

/// `kekctl store …`: works on the stores directly, not through the daemon.
pub(crate) async fn run(command: StoreCommand, out: Output) -> anyhow::Result<()> {
    let json = out.json;
    match command {
        StoreCommand::Init { table, region } => {
            let created = kekd::store::create_table(&table, &region).await?;
            if json {
                return crate::output::json(
                    &serde_json::json!({ "table": table, "created": created }),
                );
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
            let tenant = match (organization.clone(), region) {
                (Some(organization_id), Some(region)) => Some(kekd::store::Tenant {
                    organization_id,
                    region,
                }),
                _ => None,
            };
            kekd::store::distinct(&from, &to)?;
            let source = kekd::store::read_source(&from, tenant.as_ref())
                .await
                .with_context(|| format!("reading the source {from}"))?;
            let target = kekd::store::open_target(&to, tenant.as_ref())
                .await
                .with_context(|| format!("opening the target {to}"))?;
            let bar = progress_bar(None);
            let report =
                kekd::store::copy(source, &*target, organization.as_deref(), |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .await
                .with_context(|| format!("copying {from} to {to}"))?;
            bar.finish_and_clear();
            if json {
                return crate::output::json(&report);
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
