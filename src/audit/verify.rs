//! Checking a trail: every record chains to the one before it, across
//! the archived files a rotation left and the current one.

use super::{sha256_hex, AuditEvent, Continuation, Head, Line, GENESIS};
use std::io::BufRead;
use std::path::{Path, PathBuf};

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

/// Checks the chain across files, oldest first (archived files, then the
/// current one): each must verify, and each after the first must continue
/// the one before it. Returns the last file's head.
pub fn verify_all(paths: &[PathBuf]) -> Result<Head, Broken> {
    let mut before: Option<Head> = None;
    for path in paths {
        let head = verify(path)?;
        if let Some(b) = &before {
            let continues = head
                .continues
                .as_ref()
                .is_some_and(|c| c.previous_head == b.head && c.previous_records == b.records);
            if !continues {
                return Err(Broken {
                    line: 1,
                    seq: head
                        .continues
                        .as_ref()
                        .map_or("-".into(), |c| (c.previous_records + 1).to_string()),
                    problem: format!(
                        "{} does not continue {} (which ends at seq {}, head {}): a file between them is missing, or they are out of order",
                        path.display(),
                        b.path,
                        b.records,
                        b.head
                    ),
                });
            }
        }
        before = Some(head);
    }
    before.ok_or_else(|| Broken {
        line: 0,
        seq: "-".into(),
        problem: "no file to verify".into(),
    })
}

/// Checks the whole chain of the file at `path`. A file started by a
/// rotation begins where its first record (`audit_continued`) says.
pub fn verify(path: &Path) -> Result<Head, Broken> {
    let broken = |line: u64, seq: String, problem: String| Broken { line, seq, problem };
    let f = std::fs::File::open(path).map_err(|e| {
        broken(
            0,
            "-".into(),
            format!("cannot open {}: {e}", path.display()),
        )
    })?;
    let (mut prev, mut expected_seq) = (GENESIS.to_string(), 1u64);
    let mut continues = None;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let no = i as u64 + 1;
        let line = line.map_err(|e| broken(no, "-".into(), e.to_string()))?;
        let l: Line = serde_json::from_str(&line)
            .map_err(|e| broken(no, "-".into(), format!("not a record: {e}")))?;
        if no == 1 {
            if let Ok(AuditEvent::AuditContinued {
                previous_file,
                previous_records,
            }) = serde_json::from_value(l.event.clone())
            {
                expected_seq = previous_records + 1;
                prev = l.prev.clone();
                continues = Some(Continuation {
                    previous_file,
                    previous_records,
                    previous_head: l.prev.clone(),
                });
            }
        }
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
    }
    Ok(Head {
        path: path.display().to_string(),
        records: expected_seq - 1,
        head: prev,
        problem: None,
        repaired: None,
        continues,
    })
}
