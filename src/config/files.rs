//! The daemon's own files must stay apart: the store, the socket, the audit
//! log and the root key each hold something no other may overwrite.
//!
//! kekd removes a stale socket at start, repairs a torn audit tail by
//! truncating, and creates the root key; pointed at one another's file, each
//! of those would destroy the key history or the root key. So a
//! configuration in which two of them are the same file — the same path, a
//! link to the same inode, or one path inside the other — is refused here,
//! in `check-config` and at every start and reload, before anything is
//! opened.

use super::validate::Validator;
use super::ConfigError;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// One of the daemon's files: the field that names it and where it is.
pub(crate) struct OwnFile<'a> {
    /// The configuration field (or what it is derived from).
    pub(crate) field: &'static str,
    /// The path, absolute.
    pub(crate) path: &'a Path,
}

/// `path` with `.` and `..` resolved lexically (the paths are absolute).
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `path`'s device and inode, when it exists (following links).
fn inode(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Refuses two files that are one, or one inside the other.
pub(crate) fn distinct(files: &[OwnFile<'_>], v: &Validator) -> Result<(), ConfigError> {
    for (i, a) in files.iter().enumerate() {
        for b in &files[i + 1..] {
            let (na, nb) = (normalized(a.path), normalized(b.path));
            let same =
                na == nb || matches!((inode(a.path), inode(b.path)), (Some(x), Some(y)) if x == y);
            let problem = if same {
                format!(
                    "is the same file as `{}` ({}); kekd would overwrite one with the other",
                    b.field,
                    b.path.display()
                )
            } else if nb.starts_with(&na) {
                format!(
                    "is a directory that holds `{}` ({}); each must be a file of its own",
                    b.field,
                    b.path.display()
                )
            } else if na.starts_with(&nb) {
                format!(
                    "lies inside `{}` ({}), which is a file of its own",
                    b.field,
                    b.path.display()
                )
            } else {
                continue;
            };
            return Err(v.invalid(
                a.field,
                Some(&a.path.display().to_string()),
                &problem,
                "the store, the socket, the audit log and the root key at four different paths",
            ));
        }
    }
    Ok(())
}

/// The socket's place: what is at `path` now must be nothing or a socket
/// (kekd replaces only a stale socket, never a file), and its directory
/// must not be writable by everyone, where another user could bind the
/// path first and take kekd's callers.
pub(crate) fn socket_place(path: &Path, v: &Validator) -> Result<(), ConfigError> {
    const ALLOWED: &str =
        "an absolute path in a directory only kekd's user can write (such as /run/kekd/kekd.sock)";
    let shown = path.display().to_string();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(v.invalid(
                "socket_path",
                Some(&shown),
                "exists and is not a socket (kekd replaces only a stale socket, never another file); move it away or choose another path",
                ALLOWED,
            ));
        }
    }
    if let Some(dir) = path.parent() {
        if let Ok(meta) = std::fs::metadata(dir) {
            if meta.permissions().mode() & 0o002 != 0 {
                return Err(v.invalid(
                    "socket_path",
                    Some(&shown),
                    &format!(
                        "is in {}, which everyone may write: another user could bind it first and answer kekd's callers",
                        dir.display()
                    ),
                    ALLOWED,
                ));
            }
        }
    }
    Ok(())
}

/// Whether this process can use `dir` as its state directory: kekd creates
/// it if missing and makes it private (mode 0700), so it must own it (or
/// be root) and be able to write it. Checked by `check-config` (as the
/// user it runs as) and at start, so the answer names the operation, the
/// owner and the fix instead of a bare "Operation not permitted".
pub fn state_dir_usable(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let euid = rustix::process::geteuid().as_raw();
    match std::fs::metadata(dir) {
        Ok(meta) => {
            if euid != 0 && meta.uid() != euid {
                return Err(format!(
                    "{} is owned by uid {}, but kekd runs as uid {euid}: kekd makes its state directory private (chmod 0700) and must own it; chown it to kekd's user (systemd's StateDirectory= does this)",
                    dir.display(),
                    meta.uid()
                ));
            }
            if rustix::fs::access(
                dir,
                rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
            )
            .is_err()
            {
                return Err(format!(
                    "{} is not writable by uid {euid}; kekd keeps its store and audit trail there",
                    dir.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = dir
                .ancestors()
                .skip(1)
                .find(|p| p.exists())
                .unwrap_or(Path::new("/"));
            if rustix::fs::access(parent, rustix::fs::Access::WRITE_OK).is_err() {
                return Err(format!(
                    "{} does not exist, and uid {euid} cannot create it in {}; create it owned by kekd's user (systemd's StateDirectory= does this)",
                    dir.display(),
                    parent.display()
                ));
            }
            Ok(())
        }
        Err(e) => Err(format!("{}: cannot inspect it: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    /// A local-provider file with its paths under `dir`, and `extra` lines.
    fn config(dir: &std::path::Path, extra: &str) -> String {
        let d = dir.display();
        let mut text = format!("organization_id = \"acme\"\nstate_dir = \"{d}/state\"\n");
        if !extra.contains("socket_path") {
            text.push_str(&format!("socket_path = \"{d}/kekd.sock\"\n"));
        }
        text.push_str(extra);
        if !extra.contains("[provider]") {
            text.push_str(&format!(
                "[provider]\ntype = \"local\"\nroot_key_path = \"{d}/root.key\"\n"
            ));
        }
        text
    }

    fn refused(text: &str) -> String {
        Settings::parse(text, "kekd.toml").unwrap_err().to_string()
    }

    /// Regression: `socket_path`, `audit_log` or `root_key_path` naming the
    /// store (or the root key) passed the check, and kekd then unlinked or
    /// truncated the file — the whole key history, or every private key.
    #[test]
    fn no_two_of_the_daemons_files_may_be_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        assert!(Settings::parse(&config(dir.path(), ""), "kekd.toml").is_ok());

        let e = refused(&config(
            dir.path(),
            &format!("socket_path = \"{d}/state/kekd.redb\"\n"),
        ));
        assert!(
            e.contains("field `socket_path`") && e.contains("same file"),
            "{e}"
        );
        assert!(e.contains("kekd.redb"), "{e}");

        let e = refused(&config(
            dir.path(),
            &format!("audit_log = \"{d}/root.key\"\n"),
        ));
        assert!(
            e.contains("field `audit_log`") && e.contains("provider.root_key_path"),
            "{e}"
        );

        let e = refused(&config(
            dir.path(),
            &format!("[provider]\ntype = \"local\"\nroot_key_path = \"{d}/state/./kekd.redb\"\n"),
        ));
        assert!(
            e.contains("root_key_path") && e.contains("same file"),
            "{e}"
        );

        // One inside the other: a socket path that is the state directory.
        let e = refused(&config(
            dir.path(),
            &format!("socket_path = \"{d}/state\"\n"),
        ));
        assert!(e.contains("holds"), "{e}");
    }

    /// Two paths that are one file through a hard link are one file.
    #[test]
    fn a_link_to_the_same_file_is_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("root.key"), [7u8; 32]).unwrap();
        std::fs::hard_link(dir.path().join("root.key"), dir.path().join("trail")).unwrap();
        let e = refused(&config(dir.path(), &format!("audit_log = \"{d}/trail\"\n")));
        assert!(e.contains("same file"), "{e}");
    }

    /// Regression: any regular file at `socket_path` was deleted at start
    /// as a "stale socket".
    #[test]
    fn a_file_at_the_socket_path_is_refused_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("notes"), b"keep me").unwrap();
        let e = refused(&config(
            dir.path(),
            &format!("socket_path = \"{d}/notes\"\n"),
        ));
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("notes")).unwrap(), b"keep me");
    }

    /// A state directory this process does not own is named with its owner
    /// and the fix (root owns everything, so the test drops to nobody).
    #[test]
    fn a_state_dir_kekd_cannot_make_private_is_named_with_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(super::state_dir_usable(dir.path()), Ok(()));
        assert_eq!(
            super::state_dir_usable(&dir.path().join("new/state")),
            Ok(())
        );
        if rustix::process::geteuid().is_root() {
            // Checked as root: a directory of another owner is still usable.
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
            assert_eq!(super::state_dir_usable(dir.path()), Ok(()));
        }
    }

    /// A socket in a directory everyone may write (`/tmp`) can be bound
    /// first by another user; refused as such a state directory is.
    #[test]
    fn a_socket_in_a_world_writable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(
            &shared,
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        let e = refused(&config(
            dir.path(),
            &format!("socket_path = \"{}/kekd.sock\"\n", shared.display()),
        ));
        assert!(
            e.contains("field `socket_path`") && e.contains("everyone may write"),
            "{e}"
        );
    }
}
