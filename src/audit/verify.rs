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

/// Why a trail could not be verified: a record that breaks the chain
/// (tampering or damage), or a file that could not be read at all — which
/// says nothing about the chain and is never reported as a break.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The first record that breaks the chain.
    #[error(transparent)]
    Broken(#[from] Broken),
    /// The file cannot be read; nothing was checked.
    #[error("cannot read the audit log {path}: {source}; nothing was checked (this says nothing about the chain){}", hint(.source))]
    Unreadable {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No file was given.
    #[error("no audit file to verify")]
    NoFile,
}

/// What to do about an unreadable file.
fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "; the trail is readable by kekd's user only: run as root or as that user (sudo -u kekd kekctl audit verify)"
        }
        _ => "",
    }
}

impl VerifyError {
    /// The break, if the chain is what failed.
    pub fn broken(&self) -> Option<&Broken> {
        match self {
            VerifyError::Broken(b) => Some(b),
            _ => None,
        }
    }
}

/// Checks the chain across files, oldest first (archived files, then the
/// current one): each must verify, and each after the first must continue
/// the one before it. Returns the last file's head.
pub fn verify_all(paths: &[PathBuf]) -> Result<Head, VerifyError> {
    let mut before: Option<Head> = None;
    for path in paths {
        let head = verify(path)?;
        if let Some(b) = &before {
            let continues = head
                .continues
                .as_ref()
                .is_some_and(|c| c.previous_head == b.head && c.previous_records == b.records);
            if !continues {
                return Err(VerifyError::Broken(Broken {
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
                }));
            }
        }
        before = Some(head);
    }
    before.ok_or(VerifyError::NoFile)
}

/// Checks the whole chain of the file at `path`. A file started by a
/// rotation begins where its first record (`audit_continued`) says.
pub fn verify(path: &Path) -> Result<Head, VerifyError> {
    let broken = |line: u64, seq: String, problem: String| {
        VerifyError::Broken(Broken { line, seq, problem })
    };
    let unreadable = |source| VerifyError::Unreadable {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(unreadable)?;
    let (mut prev, mut expected_seq) = (GENESIS.to_string(), 1u64);
    let mut continues = None;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let no = i as u64 + 1;
        let line = line.map_err(unreadable)?;
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
