//! Access control by peer credentials: `kekctl` run as another user (the
//! tests run as root in CI; they need root to switch users and say so).

use crate::harness::*;
use kekd::api::views::ReloadResult;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

const NOBODY: u32 = 65534;

fn require_root() {
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "access-control tests switch users and need root (CI runs as root): run scripts/test as root");
}

/// `kekctl --socket SOCK ARGS` as uid/gid 65534 (nobody/nogroup).
fn kekctl_as_nobody(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config whose socket sits in a directory other users can reach.
fn config(dir: &Path, alias: &str, access: &str) -> String {
    let public = dir.join("public");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}\n{access}\n",
        kms_config(dir, alias, "").replace(
            &format!("socket_path = \"{}\"", dir.join("kekd.sock").display()),
            &format!("socket_path = \"{}\"", public.join("kekd.sock").display())
        )
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_are_enforced_by_peer_credentials_and_reloadable() {
    require_root();
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-access").await;
    let view_only = "[access]\nsocket_group = \"nogroup\"\n[access.view]\nusers = [\"nobody\"]\n";
    let d = TestDaemon::start(&moto, |dir| config(dir, &alias, view_only)).await;
    assert!(d.socket.ends_with("public/kekd.sock"));

    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "socket mode");
    assert_eq!(
        meta.gid(),
        NOBODY,
        "socket group is the configured socket_group"
    );

    let (code, out, err) = kekctl_as_nobody(&d.socket, &["status"]);
    assert_eq!(code, 0, "view is granted: {err}");
    assert!(out.contains("active key pair"));
    let (code, _, err) = kekctl_as_nobody(&d.socket, &["rotate"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("lacks the `edit` role needed for POST /v1/rotate"),
        "{err}"
    );
    assert!(err.contains("forbidden") && err.contains("403"), "{err}");
    let id = d.wait_active().await.active_key_id.unwrap();
    let (code, _, err) = kekctl_as_nobody(&d.socket, &["export", &id]);
    assert_eq!(code, 4, "envelope export needs edit: {err}");
    assert!(d.log_text().contains("request refused: missing role"));

    // Grant edit to nobody's group and reload.
    let with_edit = format!("{view_only}[access.edit]\ngroups = [\"nogroup\"]\n");
    std::fs::write(&d.config, config(d.dir.path(), &alias, &with_edit)).unwrap();
    d.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(10), "the reload", || async {
        let s: kekd::api::views::StatusView = d.client().status().await.ok()?;
        s.last_reload
            .filter(|r| r.outcome == ReloadResult::Applied)
            .map(|_| ())
    })
    .await;
    let (code, out, err) = kekctl_as_nobody(&d.socket, &["rotate"]);
    assert_eq!(code, 0, "edit is granted now: {err}");
    assert!(out.contains("new active key pair"));
}

#[test]
fn unknown_user_or_group_in_access_is_a_validation_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kekd.toml");
    let base = kms_config(dir.path(), "arn:aws:kms:us-east-1:123456789012:alias/x", "");
    std::fs::write(
        &f,
        format!("{base}\n[access.edit]\nusers = [\"kekd-no-such-user\"]\n"),
    )
    .unwrap();
    let (code, _, err) = kekd(&["check-config", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "field `access.edit.users`: no such user on this system (value: \"kekd-no-such-user\")"
        ),
        "{err}"
    );
    std::fs::write(&f, format!("{base}\n[access.owner]\nusers = [\"root\"]\n")).unwrap();
    let (code, _, err) = kekd(&["check-config", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown field `owner`, expected one of"),
        "{err}"
    );
}
