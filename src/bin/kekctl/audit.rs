//! The audit trail: `show` (and `--follow`) of one organization's records
//! through the daemon, or of a file read directly; `verify` of files; and
//! `rotate`, which the daemon does.
//!
//! Who may read what: the file is kekd's alone (0600), since it names every
//! customer; an organization's part of it is served to anyone with `view`
//! for that organization, so an operator needs no access to the file, and a
//! grant limited to one customer shows that customer nothing of another.

use crate::output::{outln, Output};
use anyhow::Context;
use kekd::api::client::Client;
use std::io::Write;
use std::path::PathBuf;

/// The daemon's audit file, from status, unless one is given.
pub(crate) async fn daemon_file(client: &Client) -> anyhow::Result<PathBuf> {
    // The trail is the daemon's, whichever organization --org names.
    let client = client.clone().with_org(None);
    Ok(PathBuf::from(match client.status_any().await? {
        kekd::api::client::StatusAnswer::Org(s) => s.audit.path,
        kekd::api::client::StatusAnswer::Daemon(d) => d.audit.path,
    }))
}

/// `kekctl audit rotate`.
pub(crate) async fn rotate(client: &Client, out: Output) -> anyhow::Result<()> {
    let r = client.audit_rotate().await?;
    out.show(&r, |r| {
        format!(
            "archived {} ({} records, head {}); {} continues the chain",
            r.archived, r.records, r.head, r.path
        )
    })
}

/// How often `--follow` asks the daemon for new records.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// `kekctl --org ORG audit show`: the organization's records from `since`
/// on, through the daemon (role `view` for it), page by page; with
/// `follow`, then every record appended (asked for once a second).
pub(crate) async fn show_org(
    client: &Client,
    since: Option<kekd::time::Timestamp>,
    follow: bool,
    out: Output,
) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    let mut header = true;
    loop {
        let page = client
            .audit(1000, cursor.as_deref(), since.as_ref())
            .await?;
        print_records(&page.records, out, &mut header)?;
        if let Some(last) = page.records.last() {
            cursor = Some(last["seq"].to_string());
        }
        if page.next_cursor.is_none() {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }
}

/// Records as stored (`--json`, a line each) or a line each in columns,
/// under one header (`header`: not printed yet).
fn print_records(
    records: &[serde_json::Value],
    out: Output,
    header: &mut bool,
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    if out.json {
        for r in records {
            outln!("{r}");
        }
    } else {
        outln!("{}", crate::audit_lines::audit(records, *header));
        *header = false;
    }
    Ok(())
}

/// `kekctl audit verify [--file F]…`: exit 1 at the first broken record.
pub(crate) fn verify(paths: &[PathBuf], out: Output) -> anyhow::Result<()> {
    let head = kekd::audit::verify_all(paths)?;
    out.show(&head, |head| {
        let files = match paths.len() {
            1 => head.path.clone(),
            n => format!("{n} files up to {}", head.path),
        };
        let mut text = format!(
            "{files}: {} records, chain intact, head {}",
            head.records, head.head
        );
        if let Some(c) = head.continues.as_ref().filter(|_| paths.len() == 1) {
            text.push_str(&format!(
                "\n  continues {} (records up to {}, head {}): check it too, oldest first, with --file",
                c.previous_file, c.previous_records, c.previous_head
            ));
        }
        text
    })
}

/// `kekctl audit show`: the records from `since` on (about organization
/// `org` only, with `--org`), as a table (or the stored JSON lines); with
/// `follow`, then every record appended.
pub(crate) async fn show(
    path: &std::path::Path,
    since: Option<kekd::time::Timestamp>,
    org: Option<&str>,
    follow: bool,
    out: Output,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;
    let open = || -> anyhow::Result<(std::io::BufReader<std::fs::File>, u64)> {
        let file = std::fs::File::open(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "; the file is kekd's alone: read an organization's records \
                 through the daemon with `kekctl --org ORG audit show`"
            } else {
                ""
            };
            anyhow::anyhow!("opening {}: {e}{hint}", path.display())
        })?;
        let ino = file.metadata()?.ino();
        Ok((std::io::BufReader::new(file), ino))
    };
    let (mut reader, mut ino) = open()?;
    // Set once the path names a new file (`kekctl audit rotate`): the old
    // one is read to its end, then following goes on in the new one.
    let mut rotated = false;
    let mut rows = Vec::new();
    let mut line = String::new();
    let mut header = true;
    let mut flush = |rows: &mut Vec<serde_json::Value>| -> anyhow::Result<()> {
        print_records(rows, out, &mut header)?;
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
        let about = |o: &str| record["organization"].as_str() == Some(o);
        if since.is_none_or(|s| at.is_some_and(|at| at >= s)) && org.is_none_or(about) {
            rows.push(record);
        }
    }
}
