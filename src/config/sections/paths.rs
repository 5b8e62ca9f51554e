//! Where kekd keeps its files: the state directory and the audit log.

use crate::config::defaults;
use crate::config::validate::Validator;
use crate::config::ConfigError;
use std::path::{Path, PathBuf};

/// The state directory: kekd makes it 0700 and keeps the only copies of the
/// encrypted private keys in it, so it must be a directory of its own — not
/// `/`, a top-level directory, a kernel file system, or a shared
/// world-writable directory such as `/tmp`.
pub(crate) fn state_dir(raw: Option<&str>, v: &Validator) -> Result<PathBuf, ConfigError> {
    let dir = v.absolute_path("state_dir", raw, defaults::STATE_DIR)?;
    const ALLOWED: &str = "a directory of kekd's own, e.g. /var/lib/kekd";
    let shown = dir.display().to_string();
    if dir.components().count() < 3 {
        return Err(v.invalid(
            "state_dir",
            Some(&shown),
            "is / or a top-level directory; kekd would make it private (mode 0700) to itself",
            ALLOWED,
        ));
    }
    if is_kernel_fs(&dir) {
        return Err(v.invalid(
            "state_dir",
            Some(&shown),
            "is on a kernel file system",
            ALLOWED,
        ));
    }
    if let Ok(meta) = std::fs::metadata(&dir) {
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_dir() {
            return Err(v.invalid(
                "state_dir",
                Some(&shown),
                "exists and is not a directory",
                ALLOWED,
            ));
        }
        if meta.permissions().mode() & 0o002 != 0 {
            return Err(v.invalid(
                "state_dir",
                Some(&shown),
                "is world-writable (shared, like /tmp); kekd would make it private (mode 0700) to itself",
                ALLOWED,
            ));
        }
    }
    Ok(dir)
}

/// The audit log: a regular file (never a device such as `/dev/null`, which
/// would silently discard the trail).
pub(crate) fn audit_log(
    raw: Option<&str>,
    state_dir: &Path,
    v: &Validator,
) -> Result<PathBuf, ConfigError> {
    let Some(text) = raw else {
        return Ok(state_dir.join(defaults::AUDIT_FILE));
    };
    let path = v.absolute_path("audit_log", Some(text), "")?;
    const ALLOWED: &str = "an absolute path to a regular file (created if missing)";
    if is_kernel_fs(&path) {
        return Err(v.invalid(
            "audit_log",
            Some(text),
            "is a device or kernel file, not a file that keeps records",
            ALLOWED,
        ));
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        if !meta.is_file() {
            return Err(v.invalid(
                "audit_log",
                Some(text),
                "exists and is not a regular file",
                ALLOWED,
            ));
        }
    }
    Ok(path)
}

fn is_kernel_fs(path: &Path) -> bool {
    ["/dev", "/proc", "/sys"]
        .iter()
        .any(|root| path.starts_with(root))
}
