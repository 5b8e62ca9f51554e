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
//! fail closed, while serving the public key goes on. An append is all or
//! nothing: a write that fails part-way (a full disk) is cut back to the
//! last complete record, so later records never land on half of one. A torn
//! tail left by a crash or power loss is cut back the same way at open, and
//! that repair is itself the first record written. While writes fail, status
//! says so (degraded).

mod event;
mod query;
mod tail;
mod verify;

pub use event::{AuditEvent, Outcome};
pub use query::{AuditPage, AuditQuery};
use tail::{looks_like_a_trail, read_tail};
pub use verify::{verify, verify_all, Broken, VerifyError};

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
    /// The organization the event is about (absent: the daemon's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization: Option<String>,
    prev: String,
    event: Value,
}

/// Where appends go: the file, or (in tests) a file that fails like a full
/// disk.
trait Sink: Write + Send {
    /// Cuts the file back to `len` bytes.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
    /// `fdatasync`.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Sink for std::fs::File {
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

struct Inner {
    sink: Box<dyn Sink>,
    /// Bytes of complete records in the file.
    len: u64,
    prev: String,
    seq: u64,
}

/// What status and `/metrics` read: a copy of the chain's head, updated
/// after each append under its own short lock. The writer's lock is held
/// across `fdatasync`, which a slow disk can stretch to seconds; nothing on
/// a read path may wait for it.
#[derive(Clone)]
struct Published {
    seq: u64,
    prev: String,
    /// Set while appends fail; cleared by the next successful one.
    failing: Option<String>,
}

impl Inner {
    /// The record that would follow the chain's head: the line (whose hash
    /// the next record carries) and its bytes with the newline.
    fn next_line(&self, event: &AuditEvent, org: Option<&str>) -> (String, Vec<u8>) {
        let line = serde_json::to_string(&Line {
            seq: self.seq + 1,
            at: time::format(&time::now()),
            organization: org.map(str::to_string),
            prev: self.prev.clone(),
            event: serde_json::to_value(event).expect("audit events serialize"),
        })
        .expect("audit lines serialize");
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        (line, bytes)
    }
}

/// The audit writer. Cheap to share (`Arc`); [`Audit::for_org`] gives a
/// writer of the same trail whose records name an organization.
pub(crate) struct Audit {
    path: PathBuf,
    /// The organization this writer's records are about.
    org: Option<Arc<str>>,
    /// The writer: held across the write and the sync.
    inner: Arc<Mutex<Inner>>,
    /// The head as of the last append; never held across I/O.
    published: Arc<Mutex<Published>>,
    /// A damaged record found at open that could not be repaired.
    damaged: Option<String>,
    /// What was repaired at open.
    repaired: Option<String>,
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
    /// Why the trail needs attention now: appends are failing, or a damaged
    /// record was found at start (`kekctl audit verify` tells where).
    /// `null` when it is healthy.
    #[serde(default)]
    pub problem: Option<String>,
    /// A torn tail that was cut back at start (recorded in the trail too).
    #[serde(default)]
    pub repaired: Option<String>,
    /// Set by [`verify`] for a file started by a rotation: the archived
    /// file it continues, and that file's head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<Continuation>,
}

/// Where a file started by [`Audit::rotate`] picks up the chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Continuation {
    /// The archived file's name.
    pub previous_file: String,
    /// Its record count (the last seq).
    pub previous_records: u64,
    /// The hash of its last record.
    pub previous_head: String,
}

/// What [`Audit::rotate`] did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rotated {
    /// Where the full file went (same directory).
    pub archived: String,
    /// Its record count (the last seq).
    pub records: u64,
    /// The hash of its last record, which the new file's first record
    /// carries as `prev`.
    pub head: String,
    /// The new file (the configured path).
    pub path: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

impl Audit {
    /// Opens (or creates, mode 0600) the log and continues its chain. A torn
    /// tail (bytes after the last newline) is cut back and the repair is
    /// recorded; a complete last record that does not parse is kept as
    /// evidence and reported (degraded), and the chain continues from it.
    pub(crate) fn open(path: &Path) -> Result<Audit, AuditError> {
        let err = |problem: String| AuditError {
            path: path.display().to_string(),
            problem,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(format!("cannot open for appending: {e}")))?;
        let size = file
            .metadata()
            .map_err(|e| err(format!("cannot read: {e}")))?
            .len();
        if !looks_like_a_trail(&mut file, size).map_err(|e| err(format!("cannot read: {e}")))? {
            return Err(err(
                "is not a kekd audit log (its first bytes are not a record); kekd never truncates or appends to another file; point audit_log at a new file".into(),
            ));
        }
        let tail = read_tail(&mut file, size).map_err(|e| err(format!("cannot read: {e}")))?;
        let mut repaired = None;
        if tail.complete_len < size {
            let torn = size - tail.complete_len;
            file.set_len(tail.complete_len)
                .and_then(|_| file.sync_data())
                .map_err(|e| err(format!("cannot cut back a torn last record: {e}")))?;
            tracing::warn!(audit_log = %path.display(), bytes = torn, "cut back a torn last audit record (an append interrupted by a crash or a full disk)");
            repaired = Some(format!(
                "a torn last record ({torn} bytes, an append interrupted by a crash or a full disk) was cut back at start"
            ));
        }
        let (mut seq, mut prev, mut damaged) = (0, GENESIS.to_string(), None);
        if let Some(line) = &tail.last_line {
            prev = sha256_hex(line);
            match serde_json::from_slice::<Line>(line) {
                Ok(l) => seq = l.seq,
                Err(e) => {
                    // Evidence of tampering or corruption: keep it, count
                    // the lines for a sequence number, and say so.
                    let lines = std::io::BufReader::new(
                        std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?,
                    )
                    .split(b'\n')
                    .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
                    .count() as u64;
                    seq = lines;
                    damaged = Some(format!(
                        "the last record (line {lines}) does not parse ({e}); new records chain on from it; run kekctl audit verify"
                    ));
                    tracing::error!(audit_log = %path.display(), problem = damaged.as_deref().unwrap_or_default(), "damaged audit trail");
                }
            }
        }
        let audit = Audit {
            path: path.to_path_buf(),
            org: None,
            published: Arc::new(Mutex::new(Published {
                seq,
                prev: prev.clone(),
                failing: None,
            })),
            inner: Arc::new(Mutex::new(Inner {
                sink: Box::new(file),
                len: tail.complete_len,
                prev,
                seq,
            })),
            damaged,
            repaired: repaired.clone(),
        };
        if let Some(what) = repaired {
            audit.record(&AuditEvent::AuditRepaired { what })?;
        }
        Ok(audit)
    }

    /// A writer of the same trail (one chain, one lock) whose records name
    /// organization `org`.
    pub(crate) fn for_org(&self, org: &str) -> Arc<Audit> {
        Arc::new(Audit {
            path: self.path.clone(),
            org: Some(org.into()),
            inner: self.inner.clone(),
            published: self.published.clone(),
            damaged: self.damaged.clone(),
            repaired: self.repaired.clone(),
        })
    }

    /// Appends `event` and syncs it — all or nothing. Blocking.
    pub(crate) fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut inner = crate::sync::lock(&self.inner);
        let (line, bytes) = inner.next_line(event, self.org.as_deref());
        let len = inner.len;
        let written = inner.sink.write_all(&bytes).and_then(|_| {
            crate::failpoint::delay_point!("audit-before-sync");
            inner.sink.sync()
        });
        if let Err(e) = written {
            // Cut back whatever part of the record reached the file, so the
            // next append starts on a record boundary.
            let cut = inner.sink.truncate(len).and_then(|_| inner.sink.sync());
            let problem = match cut {
                Ok(()) => format!("cannot append: {e}"),
                Err(c) => format!("cannot append: {e}; and cannot cut back the partial record: {c} (it is cut back at the next start)"),
            };
            crate::sync::lock(&self.published).failing = Some(problem.clone());
            return Err(AuditError {
                path: self.path.display().to_string(),
                problem,
            });
        }
        inner.len += bytes.len() as u64;
        inner.seq += 1;
        inner.prev = sha256_hex(line.as_bytes());
        if self.publish(&inner).is_some() {
            tracing::info!(audit_log = %self.path.display(), "audit appends work again");
        }
        Ok(())
    }

    /// Copies the writer's head to what readers see, clearing a failure;
    /// returns the failure it cleared.
    fn publish(&self, inner: &Inner) -> Option<String> {
        let mut p = crate::sync::lock(&self.published);
        p.seq = inner.seq;
        p.prev.clone_from(&inner.prev);
        p.failing.take()
    }

    /// Starts a new file at the configured path, keeping the chain: the
    /// current file is renamed to `<name>.<UTC time>` beside it, and the new
    /// file's first record (`audit_continued`) names it and carries its last
    /// record's hash as `prev`. Appends wait meanwhile, so no record falls
    /// between the two files; if any step fails, the old file is put back.
    /// (Renaming the file under a running kekd, as logrotate does, would
    /// leave kekd appending to the renamed file.)
    pub(crate) fn rotate(&self) -> Result<Rotated, AuditError> {
        let err = |problem: String| AuditError {
            path: self.path.display().to_string(),
            problem,
        };
        let mut inner = crate::sync::lock(&self.inner);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        // Two rotations in one millisecond get `.1`, `.2`, …: the rename
        // never replaces an archive (RENAME_NOREPLACE).
        let mut archived = self.path.with_file_name(format!("{name}.{stamp}"));
        let mut n = 0;
        loop {
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &self.path,
                rustix::fs::CWD,
                &archived,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => break,
                Err(rustix::io::Errno::EXIST) if n < 1000 => {
                    n += 1;
                    archived = self.path.with_file_name(format!("{name}.{stamp}.{n}"));
                }
                Err(e) => {
                    return Err(err(format!(
                        "cannot rename to {}: {}",
                        archived.display(),
                        std::io::Error::from(e)
                    )))
                }
            }
        }
        let archived_name = archived
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let put_back = |why: String| {
            let _ = std::fs::remove_file(&self.path);
            match std::fs::rename(&archived, &self.path) {
                Ok(()) => err(format!("{why}; the old file is back in place")),
                Err(e) => err(format!(
                    "{why}; and cannot put the old file back from {}: {e}",
                    archived.display()
                )),
            }
        };
        let mut file = match std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) => return Err(put_back(format!("cannot create the new file: {e}"))),
        };
        let (line, bytes) = inner.next_line(
            &AuditEvent::AuditContinued {
                previous_file: archived_name,
                previous_records: inner.seq,
            },
            None,
        );
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let written = file
            .write_all(&bytes)
            .and_then(|_| file.sync_data())
            .and_then(|_| std::fs::File::open(dir)?.sync_all());
        if let Err(e) = written {
            return Err(put_back(format!("cannot write the new file: {e}")));
        }
        let rotated = Rotated {
            archived: archived.display().to_string(),
            records: inner.seq,
            head: inner.prev.clone(),
            path: self.path.display().to_string(),
        };
        inner.sink = Box::new(file);
        inner.len = bytes.len() as u64;
        inner.seq += 1;
        inner.prev = sha256_hex(line.as_bytes());
        self.publish(&inner);
        tracing::info!(audit_log = %self.path.display(), archived = %rotated.archived, records = rotated.records, "audit trail rotated; the new file continues the chain");
        Ok(rotated)
    }

    /// [`Audit::rotate`] off the async runtime.
    pub(crate) async fn rotate_async(self: &Arc<Self>) -> Result<Rotated, AuditError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.rotate())
            .await
            .unwrap_or_else(|e| Err(self.worker_error(e)))
    }

    /// A blocking task that did not finish, as an error that names the
    /// file like every other audit error.
    fn worker_error(&self, e: tokio::task::JoinError) -> AuditError {
        AuditError {
            path: self.path.display().to_string(),
            problem: crate::report::join_error(e),
        }
    }

    /// [`Audit::open`] off the async runtime.
    pub(crate) async fn open_async(path: &Path) -> Result<Audit, AuditError> {
        let owned = path.to_path_buf();
        tokio::task::spawn_blocking(move || Audit::open(&owned))
            .await
            .unwrap_or_else(|e| {
                Err(AuditError {
                    path: path.display().to_string(),
                    problem: crate::report::join_error(e),
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
            .unwrap_or_else(|e| Err(self.worker_error(e)))
    }

    /// [`Audit::head`] without the problem and repair notes (what
    /// [`verify`] reports).
    #[cfg(test)]
    fn head_without_notes(&self) -> Head {
        Head {
            problem: None,
            repaired: None,
            ..self.head()
        }
    }

    /// Where the chain stands.
    /// Never waits for an append in progress.
    pub(crate) fn head(&self) -> Head {
        let p = crate::sync::lock(&self.published).clone();
        Head {
            path: self.path.display().to_string(),
            records: p.seq,
            head: p.prev,
            problem: p.failing.or_else(|| self.damaged.clone()),
            repaired: self.repaired.clone(),
            continues: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn event(i: usize) -> AuditEvent {
        AuditEvent::Prune {
            key_pair_id: format!("kek-{i:016x}"),
            retired_at: None,
        }
    }

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::open(&path).unwrap();
        for i in 0..n {
            a.record(&event(i)).unwrap();
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

    /// A rotation keeps the chain: the new file continues the archived one,
    /// appends and a reopen go on from it, and verify_all catches a missing
    /// or misordered file and an edit in the archived one.
    /// Regression: two rotations in the same millisecond collided on the
    /// archive's name ("exists already; try again").
    #[test]
    fn rotations_in_one_millisecond_each_get_their_own_archive() {
        let (_d, path) = log_with(2);
        let a = Audit::open(&path).unwrap();
        let archives: Vec<String> = (0..20).map(|_| a.rotate().unwrap().archived).collect();
        let distinct: std::collections::BTreeSet<&String> = archives.iter().collect();
        assert_eq!(distinct.len(), archives.len(), "{archives:?}");
        let mut files: Vec<PathBuf> = archives.iter().map(PathBuf::from).collect();
        files.push(path.clone());
        assert_eq!(
            verify_all(&files).unwrap().records,
            22,
            "one chain across all"
        );
    }

    #[test]
    fn a_rotated_trail_continues_the_chain_across_files() {
        let (_d, path) = log_with(3);
        let a = Audit::open(&path).unwrap();
        let r = a.rotate().unwrap();
        let archived = PathBuf::from(&r.archived);
        assert_eq!((r.records, r.path.as_str()), (3, path.to_str().unwrap()));
        assert_eq!(
            lines(&archived).len(),
            3,
            "the archived file is the old one"
        );
        a.record(&event(4)).unwrap();
        drop(a);
        let a = Audit::open(&path).unwrap();
        a.record(&event(5)).unwrap();
        assert_eq!(a.head().records, 6, "seq goes on: 3 + continuation + 2");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let current = verify(&path).unwrap();
        let c = current.continues.clone().unwrap();
        assert_eq!(c.previous_records, 3);
        assert_eq!(c.previous_head, verify(&archived).unwrap().head);
        assert_eq!(
            c.previous_file,
            archived.file_name().unwrap().to_str().unwrap()
        );
        let all = verify_all(&[archived.clone(), path.clone()]).unwrap();
        assert_eq!((all.records, &all.head), (6, &a.head().head));

        let e = broken(verify_all(&[path.clone(), archived.clone()]));
        assert!(e.problem.contains("does not continue"), "{e}");
        // A second rotation: skipping the middle file is caught.
        let r2 = a.rotate().unwrap();
        let middle = PathBuf::from(&r2.archived);
        verify_all(&[archived.clone(), middle.clone(), path.clone()]).unwrap();
        let e = broken(verify_all(&[archived.clone(), path.clone()]));
        assert!(e.problem.contains("does not continue"), "{e}");
        // An edited record in the archived file.
        let mut old = lines(&archived);
        assert!(old[1].contains("kek-0000000000000001"), "{}", old[1]);
        old[1] = old[1].replace("kek-0000000000000001", "kek-00000000000000ff");
        write(&archived, &old);
        assert!(verify_all(&[archived, middle, path]).is_err());
    }

    /// The break a verification found (panics on any other outcome).
    fn broken(r: Result<Head, VerifyError>) -> Broken {
        match r {
            Err(VerifyError::Broken(b)) => b,
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    /// Regression: a file the caller may not read was reported as a
    /// broken chain ("broken at line 0"): a permission problem as
    /// tampering.
    #[test]
    fn an_unreadable_file_is_not_a_broken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let e = verify(&dir.path().join("missing.jsonl")).unwrap_err();
        assert!(matches!(e, VerifyError::Unreadable { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("cannot read the audit log") && text.contains("nothing was checked"),
            "{text}"
        );
        assert!(!text.contains("broken"), "{text}");
        let denied = VerifyError::Unreadable {
            path: "/var/lib/kekd/audit.jsonl".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(denied.to_string().contains("sudo -u kekd"), "{denied}");
    }

    #[test]
    fn deleted_reordered_or_edited_records_are_found() {
        let (_d, path) = log_with(5);
        let orig = lines(&path);

        let mut deleted = orig.clone();
        deleted.remove(2);
        write(&path, &deleted);
        assert_eq!(broken(verify(&path)).line, 3);

        let mut reordered = orig.clone();
        reordered.swap(1, 2);
        write(&path, &reordered);
        assert_eq!(broken(verify(&path)).line, 2);

        let mut edited = orig.clone();
        edited[1] = edited[1].replace("kek-0000000000000001", "kek-0000000000000007");
        write(&path, &edited);
        let e = broken(verify(&path));
        assert_eq!(
            e.line, 3,
            "the record after the edited one no longer chains"
        );
        assert!(e.problem.contains("edited"));

        write(&path, &orig);
        assert_eq!(verify(&path).unwrap().records, 5);
    }

    /// A file that takes `room` more bytes and then fails like a full disk
    /// (a short write, then ENOSPC) until `room` is raised again.
    struct FullDisk {
        file: std::fs::File,
        room: Arc<Mutex<u64>>,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = buf.len().min(*room as usize);
            let n = self.file.write(&buf[..n])?;
            *room -= n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }

    impl Sink for FullDisk {
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.file.set_len(len)
        }
        fn sync(&mut self) -> std::io::Result<()> {
            self.file.sync_data()
        }
    }

    /// Regression: a failed append on a full disk left half a record that
    /// later records were appended onto, breaking the chain for good.
    #[test]
    fn a_full_disk_never_leaves_half_a_record() {
        let (_d, path) = log_with(3);
        let a = Audit::open(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let room = Arc::new(Mutex::new(40u64)); // less than one record
        {
            let file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            crate::sync::lock(&a.inner).sink = Box::new(FullDisk {
                file,
                room: room.clone(),
            });
        }
        let e = a.record(&event(3)).unwrap_err();
        assert!(e.to_string().contains("cannot append"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "nothing torn left");
        assert!(a.head().problem.is_some(), "status shows the failure");
        // Space comes back: the next record lands on a record boundary and
        // the chain is intact.
        *room.lock().unwrap() = u64::MAX;
        a.record(&event(4)).unwrap();
        assert!(a.head().problem.is_none());
        assert_eq!(verify(&path).unwrap().records, 4);
    }

    /// A file whose `fdatasync` blocks until the test lets it go, as a
    /// slow disk's does for seconds.
    struct SlowDisk {
        file: std::fs::File,
        in_sync: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    }

    impl Write for SlowDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.file.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }

    impl Sink for SlowDisk {
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.file.set_len(len)
        }
        fn sync(&mut self) -> std::io::Result<()> {
            let _ = self.in_sync.send(());
            let _ = self.release.recv();
            self.file.sync_data()
        }
    }

    /// Regression: `head` took the writer's lock, which an append holds
    /// across `fdatasync`, so status and `/metrics` waited for a slow disk
    /// and, two at a time, stalled every runtime worker.
    #[test]
    fn the_head_is_read_while_an_append_waits_for_the_disk() {
        let (_d, path) = log_with(2);
        let a = Arc::new(Audit::open(&path).unwrap());
        let (in_sync_tx, in_sync) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        crate::sync::lock(&a.inner).sink = Box::new(SlowDisk {
            file,
            in_sync: in_sync_tx,
            release: release_rx,
        });
        let writer = {
            let a = a.clone();
            std::thread::spawn(move || a.record(&event(2)))
        };
        in_sync.recv().unwrap();
        // The append is inside fdatasync now, holding the writer's lock.
        let (head_tx, head_rx) = std::sync::mpsc::channel();
        let reader = {
            let a = a.clone();
            std::thread::spawn(move || head_tx.send(a.head()).unwrap())
        };
        let head = head_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("head() waited for the append's fdatasync");
        assert_eq!(head.records, 2, "the head before the append completes");
        release.send(()).unwrap();
        writer.join().unwrap().unwrap();
        reader.join().unwrap();
        assert_eq!(a.head().records, 3, "published once the append is synced");
        assert_eq!(verify(&path).unwrap().head, a.head().head);
    }

    /// Regression: `audit_log` naming the store or the root key made the
    /// torn-tail repair truncate that file and append JSON to it.
    #[test]
    fn a_file_that_is_not_a_trail_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kekd.redb");
        let bytes: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let e = Audit::open(&path).unwrap_err();
        assert!(e.to_string().contains("not a kekd audit log"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "untouched");
        // A trail torn inside its very first record still opens.
        std::fs::write(&path, b"{\"seq\":1,\"at\":\"2026").unwrap();
        let a = Audit::open(&path).unwrap();
        assert_eq!(a.head().records, 1, "the repair is the first record");
    }

    /// Regression: an append or rotation whose blocking task died said
    /// "audit log : …", without the file.
    #[tokio::test]
    async fn an_error_from_the_blocking_pool_names_the_file() {
        let (_d, path) = log_with(1);
        let a = Audit::open(&path).unwrap();
        let died = tokio::task::spawn_blocking(|| panic!("worker died"))
            .await
            .unwrap_err();
        let e = a.worker_error(died).to_string();
        assert!(
            e.starts_with(&format!("audit log {}: ", path.display())),
            "{e}"
        );
        assert!(e.contains("worker died"), "{e}");
    }

    /// Regression: a torn last record made kekd refuse to start.
    #[test]
    fn a_torn_tail_is_cut_back_at_open_and_the_repair_recorded() {
        let (_d, path) = log_with(3);
        let whole = std::fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(br#"{"seq":4,"at":"2026-11-23T00:00:00.000Z","prev":"ab"#);
        std::fs::write(&path, &torn).unwrap();
        let a = Audit::open(&path).unwrap();
        let h = a.head();
        assert_eq!(h.records, 4, "three records and the repair");
        assert!(h.repaired.as_deref().unwrap().contains("torn"));
        assert!(h.problem.is_none());
        assert!(std::fs::read(&path).unwrap().starts_with(&whole));
        assert_eq!(verify(&path).unwrap().records, 4);
        assert!(lines(&path)[3].contains("audit_repaired"));
    }

    /// Power lost at every byte of an append: whatever prefix of the record
    /// reached the disk, the next open cuts it back, records the repair, and
    /// the chain verifies.
    #[test]
    fn power_loss_at_every_byte_of_an_append_leaves_a_valid_chain() {
        let (_d, path) = log_with(2);
        let durable = std::fs::read(&path).unwrap();
        // The record the next append would write.
        let next = {
            let a = Audit::open(&path).unwrap();
            a.record(&event(2)).unwrap();
            std::fs::read(&path).unwrap()[durable.len()..].to_vec()
        };
        for cut in 0..next.len() {
            let mut image = durable.clone();
            image.extend_from_slice(&next[..cut]);
            std::fs::write(&path, &image).unwrap();
            let a = Audit::open(&path).unwrap();
            let expected = if cut == 0 { 2 } else { 3 }; // the repair is a record
            assert_eq!(a.head().records, expected, "cut at byte {cut}");
            assert_eq!(
                verify(&path).unwrap(),
                a.head_without_notes(),
                "cut at byte {cut}"
            );
        }
    }

    #[test]
    fn a_damaged_last_record_is_kept_and_reported() {
        let (_d, path) = log_with(2);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("not a record\n");
        std::fs::write(&path, &text).unwrap();
        let a = Audit::open(&path).unwrap();
        let p = a.head().problem.unwrap();
        assert!(p.contains("(line 3) does not parse"), "{p}");
        a.record(&event(9)).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(&text));
        assert!(verify(&path).is_err(), "the evidence stays visible");
    }

    #[test]
    fn the_tail_is_found_across_read_chunks() {
        let (_d, path) = log_with(0);
        let a = Audit::open(&path).unwrap();
        // Long records so the last one spans more than one 64 KiB chunk.
        for i in 0..3 {
            a.record(&AuditEvent::ConfigReload {
                outcome: crate::domain::ReloadResult::Applied,
                message: "x".repeat(70_000 + i),
                new_key_pair_id: None,
            })
            .unwrap();
        }
        drop(a);
        let again = Audit::open(&path).unwrap();
        assert_eq!(again.head(), verify(&path).unwrap());
    }
}
