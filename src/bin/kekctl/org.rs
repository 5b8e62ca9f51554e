//! `kekctl org …`: the organizations kekd serves.

use crate::cli::{OrgCommand, SpecArgs};
use crate::output::Output;
use kekd::api::client::Client;
use kekd::api::org_views::{OrgList, OrgView};
use kekd::domain::OrgSpec;

/// Runs one `org` subcommand.
pub(crate) async fn run(client: &Client, command: OrgCommand, out: Output) -> anyhow::Result<()> {
    match command {
        OrgCommand::Add {
            id,
            spec,
            require_isolation,
        } => {
            let added = client
                .org_add_with(&spec_of(id, spec), require_isolation)
                .await?;
            out.show(&added, |a| {
                let mut text = format!(
                    "organization {} added; its first key pair {} is active\n",
                    a.organization.id,
                    a.key_pair.as_ref().map_or("-", |k| k.id.as_str()),
                );
                if let Some(i) = a.isolation {
                    text.push_str(&format!("isolation: {i}\n"));
                }
                for w in &a.warnings {
                    text.push_str(&format!("warning: {w}\n"));
                }
                text + &show(&a.organization)
            })
        }
        OrgCommand::Set { id, spec } => {
            let backups =
                (!spec.backup_kms_key_arns.is_empty()).then(|| spec.backup_kms_key_arns.clone());
            let patch = kekd::domain::OrgPatch {
                kms_key_arn: spec.kms_key_arn,
                backup_kms_key_arns: backups,
                assume_role_arn: spec.assume_role_arn,
                external_id: spec.external_id,
                region: spec.region,
                cadence: spec.cadence,
                timezone: spec.timezone,
                key_bits: spec.key_bits,
                key_type: spec.key_type,
                retention: spec.retention,
                announce_ahead: spec.announce_ahead,
                on_revocation: spec.on_revocation,
            };
            let o = client.org_set(&id, &patch).await?;
            out.show(&o, |o| {
                format!("organization {} changed\n{}", o.id, show(o))
            })
        }
        OrgCommand::Apply {
            file,
            prune,
            dry_run,
        } => crate::apply::run(client, &file, prune, dry_run, out).await,
        OrgCommand::List { limit, after } => {
            let page = client.orgs(usize::from(limit), after.as_deref()).await?;
            out.show(&page, list)
        }
        OrgCommand::Show { id } => out.show(&client.org(&id).await?, show),
        OrgCommand::Remove { id, restore_window } => {
            let o = client.org_remove(&id, restore_window.as_deref()).await?;
            out.show(&o, |o| {
                format!(
                    "organization {} removed: its public keys are no longer served and it does not rotate;\nits history is kept and unwrap works; kekctl org restore {} undoes this until {}\n",
                    o.id,
                    o.id,
                    o.purge_after.as_ref().map_or("-".into(), kekd::time::human)
                )
            })
        }
        OrgCommand::Restore { id } => {
            let o = client.org_restore(&id).await?;
            out.show(&o, |o| {
                format!("organization {} restored\n{}", o.id, show(o))
            })
        }
        OrgCommand::Purge { id, confirm } => {
            let p = client.org_purge(&id, &confirm).await?;
            out.show(&p, |p| {
                format!(
                    "organization {} purged: {} key pairs deleted; its recordings can no longer be opened\n",
                    p.organization, p.key_pairs_deleted
                )
            })
        }
    }
}

fn spec_of(id: String, a: SpecArgs) -> OrgSpec {
    OrgSpec {
        id,
        kms_key_arn: a.kms_key_arn,
        backup_kms_key_arns: a.backup_kms_key_arns,
        assume_role_arn: a.assume_role_arn,
        external_id: a.external_id,
        region: a.region,
        cadence: a.cadence,
        timezone: a.timezone,
        key_bits: a.key_bits,
        key_type: a.key_type,
        retention: a.retention,
        announce_ahead: a.announce_ahead,
        encryption_context_key: a.encryption_context_key,
        on_revocation: a.on_revocation,
    }
}

/// One organization, a field per line.
fn show(o: &OrgView) -> String {
    let t = |v: &Option<kekd::time::Timestamp>| v.as_ref().map_or("-".into(), kekd::time::human);
    let mut rows = vec![
        ("organization", o.id.clone()),
        ("state", o.state.to_string()),
        ("health", o.health.to_string()),
        (
            "kms key problem",
            o.key_problem.map_or("-".into(), |k| k.to_string()),
        ),
        ("source", o.source.to_string()),
        ("kms key", o.kms_key.clone()),
        ("cadence", format!("{} ({})", o.cadence, o.timezone)),
        ("key type", o.key_type.to_string()),
        (
            "active key pair",
            o.active_key_id.clone().unwrap_or_else(|| "-".into()),
        ),
        ("next rotation", t(&o.next_rotation_at)),
        ("added", kekd::time::human(&o.created_at)),
    ];
    if o.removed_at.is_some() {
        rows.push(("removed", t(&o.removed_at)));
        rows.push(("restorable until", t(&o.purge_after)));
    }
    let mut s = String::new();
    for (k, v) in rows {
        s.push_str(&format!("{k:<17} {v}\n"));
    }
    s
}

/// The list: one line per organization, fitting 80 columns.
fn list(l: &OrgList) -> String {
    let rows = l.organizations.iter().map(|o| {
        vec![
            o.id.clone(),
            o.state.to_string(),
            match o.key_problem {
                Some(k) if k.is_revocation() => "revoked".to_string(),
                _ => o.health.to_string(),
            },
            o.active_key_id.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    // Stored organizations kekd cannot serve: why, in the last column.
    let unusable = l
        .unavailable
        .iter()
        .map(|(id, why)| vec![id.clone(), "unusable".into(), "-".into(), why.clone()]);
    let mut s = crate::render::columns(
        &["organization", "state", "health", "active key pair"],
        rows.chain(unusable),
        &[crate::columns::Fit::Drop(1)],
    );
    if !s.is_empty() {
        s.push('\n');
    }
    if let Some(next) = &l.next_cursor {
        s.push_str(&format!("(more: kekctl org list --after {next})\n"));
    }
    s
}
