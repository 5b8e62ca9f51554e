//! The audit trail: an append-only JSON-lines file, one record per KMS call,
//! rotation, outage, configuration change, and API call that changes state or
//! reveals key material.
//!
//! Each line is `{"seq", "at", "prev", "event"}` where `prev` is the SHA-256
//! (hex) of the previous line's bytes (64 zeros for the first). Deleting,
//! reordering or editing a record breaks the chain at the next record, which
//! [`verify`] reports; the head (last seq and hash) is shown in status so a
//! truncated tail can be noticed against a copy kept elsewhere. Records never
//! contain secrets: encryption contexts, ARNs, ids and request ids only.
//!
//! Writes are synced (`fdatasync`) before the operation they record is
//! reported done; if the file cannot be written, state-changing operations
//! fail closed, while serving the public key goes on.

mod event;

pub use event::{AuditEvent, Outcome};

use crate::time;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The audit log cannot be written (or read at open).
#[derive(Debug, Clone, thiserror::Error)]
#[error("audit log {path}: {problem}")]
pub struct AuditError {
    /// The file.
    pub path: String,
    /// What failed.
    pub problem: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    at: String,
    prev: String,
    event: Value,
}

struct Inner {
    file: std::fs::File,
    prev: String,
    seq: u64,
}

/// The audit writer. Cheap to share (`Arc`).
pub(crate) struct Audit {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").field("path", &self.path).finish()
    }
}

/// Where the chain stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    /// The audit file.
    pub path: String,
    /// Records written so far.
    pub records: u64,
    /// SHA-256 of the last record's line.
    pub head: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

impl Audit {
    /// Opens (or creates, mode 0600) the log and continues its chain.
    pub(crate) fn open(path: &Path) -> Result<Audit, AuditError> {
        let err = |problem: String| AuditError {
            path: path.display().to_string(),
            problem,
        };
        let (mut prev, mut seq) = (GENESIS.to_string(), 0);
        // Only a regular file has a chain to continue (e.g. /dev/full does not).
        let regular = std::fs::metadata(path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        if let Some(f) = regular
            .then(|| std::fs::File::open(path))
            .and_then(Result::ok)
        {
            for line in std::io::BufReader::new(f).lines() {
                let line = line.map_err(|e| err(format!("cannot read: {e}")))?;
                if line.is_empty() {
                    continue;
                }
                let l: Line = serde_json::from_str(&line).map_err(|e| {
                    err(format!(
                        "last records do not parse ({e}); run kekctl audit verify"
                    ))
                })?;
                seq = l.seq;
                prev = sha256_hex(line.as_bytes());
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(format!("cannot open for appending: {e}")))?;
        Ok(Audit {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner { file, prev, seq }),
        })
    }

    /// Appends `event` and syncs it. Blocking.
    pub(crate) fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let event = serde_json::to_value(event).expect("audit events serialize");
        let mut inner = self.inner.lock().expect("audit lock");
        let line = serde_json::to_string(&Line {
            seq: inner.seq + 1,
            at: time::format(&time::now()),
            prev: inner.prev.clone(),
            event,
        })
        .expect("audit lines serialize");
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        inner
            .file
            .write_all(&bytes)
            .and_then(|_| inner.file.sync_data())
            .map_err(|e| AuditError {
                path: self.path.display().to_string(),
                problem: format!("cannot append: {e}"),
            })?;
        inner.seq += 1;
        inner.prev = sha256_hex(line.as_bytes());
        Ok(())
    }

    /// [`Audit::open`] off the async runtime.
    pub(crate) async fn open_async(path: &Path) -> Result<Audit, AuditError> {
        let owned = path.to_path_buf();
        tokio::task::spawn_blocking(move || Audit::open(&owned))
            .await
            .unwrap_or_else(|e| {
                Err(AuditError {
                    path: path.display().to_string(),
                    problem: e.to_string(),
                })
            })
    }

    /// [`Audit::record`] off the async runtime.
    pub(crate) async fn record_async(
        self: &Arc<Self>,
        event: AuditEvent,
    ) -> Result<(), AuditError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.record(&event))
            .await
            .unwrap_or_else(|e| {
                Err(AuditError {
                    path: String::new(),
                    problem: e.to_string(),
                })
            })
    }

    /// Where the chain stands.
    pub(crate) fn head(&self) -> Head {
        let inner = self.inner.lock().expect("audit lock");
        Head {
            path: self.path.display().to_string(),
            records: inner.seq,
            head: inner.prev.clone(),
        }
    }
}

/// The first record that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log broken at line {line} (seq {seq}): {problem}")]
pub struct Broken {
    /// 1-based line number.
    pub line: u64,
    /// The record's seq, if it parsed.
    pub seq: String,
    /// What is wrong.
    pub problem: String,
}

/// Checks the whole chain of the file at `path`.
pub fn verify(path: &Path) -> Result<Head, Broken> {
    let broken = |line: u64, seq: String, problem: String| Broken { line, seq, problem };
    let f = std::fs::File::open(path).map_err(|e| {
        broken(
            0,
            "-".into(),
            format!("cannot open {}: {e}", path.display()),
        )
    })?;
    let (mut prev, mut expected_seq, mut n) = (GENESIS.to_string(), 1u64, 0u64);
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let no = i as u64 + 1;
        let line = line.map_err(|e| broken(no, "-".into(), e.to_string()))?;
        let l: Line = serde_json::from_str(&line)
            .map_err(|e| broken(no, "-".into(), format!("not a record: {e}")))?;
        if l.seq != expected_seq {
            return Err(broken(
                no,
                l.seq.to_string(),
                format!("expected seq {expected_seq}: a record was deleted or reordered"),
            ));
        }
        if l.prev != prev {
            return Err(broken(
                no,
                l.seq.to_string(),
                "prev does not match the hash of the record before it: that record was edited, or records were removed or reordered".into(),
            ));
        }
        prev = sha256_hex(line.as_bytes());
        expected_seq += 1;
        n += 1;
    }
    Ok(Head {
        path: path.display().to_string(),
        records: n,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::open(&path).unwrap();
        for i in 0..n {
            a.record(&AuditEvent::Prune {
                key_pair_id: format!("kek-{i:016x}"),
                retired_at: None,
            })
            .unwrap();
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn chain_verifies_and_continues_after_reopen() {
        let (_d, path) = log_with(3);
        let a = Audit::open(&path).unwrap();
        assert_eq!(a.head().records, 3);
        a.record(&AuditEvent::ConfigReloadStarted { file: None })
            .unwrap();
        let h = verify(&path).unwrap();
        assert_eq!(h.records, 4);
        assert_eq!(h, a.head());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn deleted_reordered_or_edited_records_are_found() {
        let (_d, path) = log_with(5);
        let orig = lines(&path);

        let mut deleted = orig.clone();
        deleted.remove(2);
        write(&path, &deleted);
        assert_eq!(verify(&path).unwrap_err().line, 3);

        let mut reordered = orig.clone();
        reordered.swap(1, 2);
        write(&path, &reordered);
        assert_eq!(verify(&path).unwrap_err().line, 2);

        let mut edited = orig.clone();
        edited[1] = edited[1].replace("kek-0000000000000001", "kek-0000000000000007");
        write(&path, &edited);
        let e = verify(&path).unwrap_err();
        assert_eq!(
            e.line, 3,
            "the record after the edited one no longer chains"
        );
        assert!(e.problem.contains("edited"));

        write(&path, &orig);
        assert_eq!(verify(&path).unwrap().records, 5);
    }

    use std::os::unix::fs::PermissionsExt;
}
