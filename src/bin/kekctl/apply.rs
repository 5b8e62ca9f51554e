//! `kekctl org apply FILE`: the organizations as a file in git says.

use crate::output::Output;
use anyhow::Context;
use kekd::api::client::Client;
use kekd::api::org_views::OrgView;
use kekd::domain::{OrgPatch, OrgSource, OrgSpec, OrgState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The file: `[[organization]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyFile {
    #[serde(default)]
    organization: Vec<OrgSpec>,
}

/// What apply did (or, dry, would do) to one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Added,
    Changed,
    Unchanged,
    Removed,
}

#[derive(Debug, Serialize)]
struct Step {
    organization: String,
    action: Action,
    /// The fields that changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<&'static str>,
}

/// Reads and checks the file: every id valid and listed once.
fn read(path: &Path) -> anyhow::Result<Vec<OrgSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: ApplyFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e))?;
    let mut seen = std::collections::BTreeSet::new();
    for o in &file.organization {
        if !kekd::domain::is_org_id(&o.id) {
            anyhow::bail!(
                "{}: organization id {:?} is not valid; allowed: 1-64 characters of A-Z a-z 0-9 . _ -",
                path.display(),
                o.id
            );
        }
        if !seen.insert(o.id.clone()) {
            anyhow::bail!("{}: organization {} is listed twice", path.display(), o.id);
        }
    }
    Ok(file.organization)
}

/// The patch that makes `have` what `want` says, and the fields it
/// changes (fields `want` leaves out are left as they are).
fn patch(have: &OrgSpec, want: &OrgSpec) -> (OrgPatch, Vec<&'static str>) {
    let mut p = OrgPatch::default();
    let mut fields = Vec::new();
    macro_rules! field {
        ($($f:ident),*) => {$(
            if want.$f.is_some() && want.$f != have.$f {
                p.$f = want.$f.clone();
                fields.push(stringify!($f));
            }
        )*};
    }
    field!(
        kms_key_arn,
        region,
        cadence,
        timezone,
        key_bits,
        key_type,
        retention,
        announce_ahead
    );
    if !want.backup_kms_key_arns.is_empty() && want.backup_kms_key_arns != have.backup_kms_key_arns
    {
        p.backup_kms_key_arns = Some(want.backup_kms_key_arns.clone());
        fields.push("backup_kms_key_arns");
    }
    (p, fields)
}

/// Every organization the daemon serves, page after page.
async fn served(client: &Client) -> anyhow::Result<BTreeMap<String, OrgView>> {
    let mut all = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.orgs(1000, cursor.as_deref()).await?;
        for o in page.organizations {
            all.insert(o.id.clone(), o);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// `kekctl org apply`.
pub(crate) async fn run(
    client: &Client,
    path: &Path,
    prune: bool,
    dry_run: bool,
    out: Output,
) -> anyhow::Result<()> {
    let want = read(path)?;
    let have = served(client).await?;
    let mut steps = Vec::new();
    let result = apply(client, &want, &have, prune, dry_run, &mut steps).await;
    out.show(&steps, |steps| {
        let mut s = String::new();
        for st in steps.iter() {
            let verb = match (st.action, dry_run) {
                (Action::Added, false) => "added",
                (Action::Added, true) => "would add",
                (Action::Changed, false) => "changed",
                (Action::Changed, true) => "would change",
                (Action::Removed, false) => "removed",
                (Action::Removed, true) => "would remove",
                (Action::Unchanged, _) => "unchanged",
            };
            s.push_str(&format!("{verb:<13} {}", st.organization));
            if !st.fields.is_empty() {
                s.push_str(&format!(" ({})", st.fields.join(", ")));
            }
            s.push('\n');
        }
        s
    })?;
    result
}

async fn apply(
    client: &Client,
    want: &[OrgSpec],
    have: &BTreeMap<String, OrgView>,
    prune: bool,
    dry_run: bool,
    steps: &mut Vec<Step>,
) -> anyhow::Result<()> {
    for spec in want {
        let id = spec.id.clone();
        match have.get(&id) {
            None => {
                if !dry_run {
                    client
                        .org_add(spec)
                        .await
                        .with_context(|| format!("adding {id}"))?;
                }
                steps.push(Step {
                    organization: id,
                    action: Action::Added,
                    fields: Vec::new(),
                });
            }
            Some(o) => {
                let (p, fields) = patch(&o.spec, spec);
                if fields.is_empty() {
                    steps.push(Step {
                        organization: id,
                        action: Action::Unchanged,
                        fields,
                    });
                    continue;
                }
                if !dry_run {
                    client
                        .org_set(&id, &p)
                        .await
                        .with_context(|| format!("changing {id}"))?;
                }
                steps.push(Step {
                    organization: id,
                    action: Action::Changed,
                    fields,
                });
            }
        }
    }
    if prune {
        for (id, o) in have {
            let listed = want.iter().any(|w| w.id == *id);
            if listed || o.source != OrgSource::Api || o.state != OrgState::Active {
                continue;
            }
            if !dry_run {
                client
                    .org_remove(id, None)
                    .await
                    .with_context(|| format!("removing {id}"))?;
            }
            steps.push(Step {
                organization: id.clone(),
                action: Action::Removed,
                fields: Vec::new(),
            });
        }
    }
    Ok(())
}
