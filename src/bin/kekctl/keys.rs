//! The key pairs: status, the history, the public key (PEM or JWK Set),
//! Change Key Now, and an envelope for backup or break-glass.

use crate::files::write_text;
use crate::output::Output;
use crate::render;
use anyhow::Context;
use kekd::api::client::{Client, StatusAnswer};
use kekd::api::views::KeyPairList;
use std::path::PathBuf;

/// The daemon answered, and says it is degraded: `kekctl status` exits 5,
/// so a script or a health check can tell without parsing.
#[derive(Debug, thiserror::Error)]
#[error("kekd is degraded ({})", causes.join(", "))]
pub(crate) struct Degraded {
    /// Every cause status names.
    pub(crate) causes: Vec<String>,
}

/// `kekctl status`: exit 0 when ok, 5 when degraded (3 when unreachable).
pub(crate) async fn status(client: &Client, out: Output) -> anyhow::Result<()> {
    let s = match client.status_any().await? {
        StatusAnswer::Org(s) => s,
        StatusAnswer::Daemon(d) => {
            out.show(&*d, render::daemon_status)?;
            if d.state == kekd::api::views::ServiceState::Degraded {
                return Err(Degraded {
                    causes: vec![format!("{} organizations degraded", d.daemon.degraded)],
                }
                .into());
            }
            return Ok(());
        }
    };
    out.show(&*s, render::status)?;
    if s.state == kekd::api::views::ServiceState::Degraded {
        return Err(Degraded {
            causes: s.degraded_causes.iter().map(|c| c.to_string()).collect(),
        }
        .into());
    }
    Ok(())
}

/// `kekctl history`: the newest `limit`, or `all` of them.
pub(crate) async fn history(
    client: &Client,
    out: Output,
    limit: usize,
    all: bool,
) -> anyhow::Result<()> {
    let l = if all {
        all_history(client).await?
    } else {
        client.history(limit, None).await?
    };
    out.show(&l, render::history)?;
    if !out.json {
        for c in &l.corrupt_records {
            eprintln!(
                "warning: stored record {} does not decode: {}",
                c.id, c.problem
            );
        }
    }
    Ok(())
}

/// The whole history, following the cursor one 1,000-key-pair page at a
/// time (each page costs the daemon the page, not the history).
async fn all_history(client: &Client) -> anyhow::Result<KeyPairList> {
    let mut all = client.history(1000, None).await?;
    while let Some(cursor) = all.next_cursor.take() {
        let next = client.history(1000, Some(&cursor)).await?;
        all.keypairs.extend(next.keypairs);
        all.next_cursor = next.next_cursor;
    }
    Ok(all)
}

/// `kekctl public-key [--jwks]`.
pub(crate) async fn public_key(
    client: &Client,
    out: Output,
    file: Option<PathBuf>,
    jwks: bool,
) -> anyhow::Result<()> {
    if jwks {
        let j = client
            .public_keys(None)
            .await?
            .context("the daemon answered 304 to a request without an ETag")?;
        write_text(&file, &(serde_json::to_string_pretty(&j.set)? + "\n"))?;
        if let Some(path) = &file {
            eprintln!(
                "wrote {} public keys to {} (ETag {}, {})",
                j.set.keys.len(),
                path.display(),
                j.etag,
                j.cache_control
            );
        }
        return Ok(());
    }
    let p = client.public_key().await?;
    if out.json {
        return crate::output::json(&p);
    }
    write_text(&file, &p.pem)?;
    if let Some(path) = &file {
        eprintln!("wrote public key of {} to {}", p.id, path.display());
    }
    Ok(())
}

/// `kekctl rotate`: Change Key Now.
pub(crate) async fn rotate(client: &Client, out: Output) -> anyhow::Result<()> {
    let k = client.rotate().await?;
    out.show(&k, |k| {
        format!(
            "new active key pair {} ({}) wrapped by {}",
            k.id,
            k.key_type.map_or("-".into(), |t| t.to_string()),
            k.wrapping_key_arn
        )
    })
}

/// `kekctl export ID|active`: the envelope JSON.
pub(crate) async fn export(
    client: &Client,
    id: String,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let id = if id == "active" {
        client.public_key().await?.id
    } else {
        id
    };
    let e = client.envelope(&id).await?;
    write_text(&file, &(serde_json::to_string_pretty(&e)? + "\n"))?;
    if let Some(path) = &file {
        eprintln!("wrote the envelope of {id} to {}", path.display());
    }
    Ok(())
}
