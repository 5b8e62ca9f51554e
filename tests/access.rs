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
    as_nobody(
        std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
            .arg("--socket")
            .arg(socket)
            .args(args),
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
        err.contains("lacks the `edit` role for organization acme-test needed for POST /v1/rotate"),
        "{err}"
    );
    assert!(err.contains("forbidden") && err.contains("403"), "{err}");
    let id = d.wait_active().await.active_key_id.unwrap();
    let (code, _, err) = kekctl_as_nobody(&d.socket, &["export", &id]);
    assert_eq!(code, 4, "envelope export needs edit: {err}");
    assert!(d.log_text().contains("request refused: missing role"));
    // Regression: an operator who may not read the audit file was told
    // the chain was "broken at line 0": a permission problem as tampering.
    let (code, _, err) = kekctl_as_nobody(&d.socket, &["audit", "verify"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("cannot read the audit log")
            && err.contains("nothing was checked")
            && !err.contains("broken"),
        "{err}"
    );
    // The file is kekd's alone, and says how to read through the daemon,
    // where `view` shows the organization's records.
    let (code, _, err) = kekctl_as_nobody(&d.socket, &["audit", "show"]);
    assert_ne!(code, 0);
    assert!(err.contains("kekctl --org ORG audit show"), "{err}");
    let org = d.wait_active().await.organization_id;
    let (code, out, err) = kekctl_as_nobody(&d.socket, &["--org", &org, "--json", "audit", "show"]);
    assert_eq!(code, 0, "view reads the organization's records: {err}");
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().any(|r| r["event"]["type"] == "rotation"),
        "{out}"
    );
    assert!(
        records.iter().all(|r| r["organization"] == org.as_str()),
        "{out}"
    );

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
        err.contains(
            "unknown field `owner`; allowed here: `socket_group`, `view`, `edit`, `decrypt`"
        ),
        "{err}"
    );
}

/// Runs `cmd` (a program and its arguments) as uid/gid 65534 with no
/// supplementary groups; returns (exit code, stdout, stderr).
fn as_nobody(cmd: &mut std::process::Command) -> (i32, String, String) {
    run(cmd.uid(NOBODY).gid(NOBODY))
}

/// moto, a key, and a daemon whose socket uid 65534 can open but which
/// grants it no role.
async fn daemon_nobody_can_reach(alias: &str) -> (Moto, TestDaemon) {
    let moto = Moto::start().await;
    let (_, alias_arn) = moto.create_key(alias).await;
    let d = TestDaemon::start(&moto, |dir| {
        config(dir, &alias_arn, "[access]\nsocket_group = \"nogroup\"\n")
    })
    .await;
    (moto, d)
}

/// Regression (a peer with no role wrote 127 MB of audit log and 62 MB of
/// log in 2.7 s): what a refused request records is bounded — the path cut
/// short, no attacker-sized id — and refusals are rate-limited per uid, so
/// hundreds of requests with 65,000-byte ids add a few kilobytes.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_by_a_peer_without_a_role_are_bounded() {
    require_root();
    let (_moto, d) = daemon_nobody_can_reach("kekd-access-flood").await;
    let audit = std::path::PathBuf::from(d.client().status().await.unwrap().audit.path);
    let (audit_before, log_before) = (
        std::fs::metadata(&audit).unwrap().len(),
        std::fs::metadata(&d.log).unwrap().len(),
    );
    let huge_id = "a".repeat(65_000);
    let (code, _, err) = as_nobody(
        std::process::Command::new("sh").arg("-c").arg(format!(
            "for i in $(seq 150); do {} --socket {} export {huge_id} 2>/dev/null; done; {} --socket {} export {huge_id}",
            env!("CARGO_BIN_EXE_kekctl"),
            d.socket.display(),
            env!("CARGO_BIN_EXE_kekctl"),
            d.socket.display()
        )),
    );
    assert_eq!(code, 4, "refused: {err}");
    assert!(
        err.len() < 1_000,
        "the refusal message is bounded too: {} bytes",
        err.len()
    );
    let audit_growth = std::fs::metadata(&audit).unwrap().len() - audit_before;
    let log_growth = std::fs::metadata(&d.log).unwrap().len() - log_before;
    assert!(
        audit_growth < 16 * 1024,
        "audit trail grew {audit_growth} bytes"
    );
    assert!(log_growth < 16 * 1024, "log grew {log_growth} bytes");
    let text = std::fs::read_to_string(&audit).unwrap();
    let refusals = text
        .lines()
        .filter(|l| l.contains("\"outcome\":\"refused\""))
        .count();
    assert_eq!(
        refusals, 10,
        "ten refusals a minute are recorded one by one"
    );
    assert!(!text.contains(&"a".repeat(1_000)));
}

/// Regression (404/405 answered before authorization let a peer with no
/// role enumerate the routes): such a peer gets 403 for any path and
/// method; a peer with a role still gets 404 and 405.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_without_a_role_cannot_enumerate_routes() {
    require_root();
    let (_moto, d) = daemon_nobody_can_reach("kekd-access-enum").await;
    let ask = |method: &str, path: &str| {
        let (code, out, err) = as_nobody(
            std::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-X",
                    method,
                    "--unix-socket",
                ])
                .arg(&d.socket)
                .arg(format!("http://kekd{path}")),
        );
        assert_eq!(code, 0, "curl (installed by .ci/run) failed: {err}");
        out.trim().to_string()
    };
    assert_eq!(ask("GET", "/v1/nope"), "403");
    assert_eq!(ask("DELETE", "/v1/status"), "403");
    assert_eq!(ask("GET", "/v1/status"), "403");
    // Root holds every role: routing answers.
    let (s, _) = d
        .client()
        .raw(hyper::Method::GET, "/v1/nope")
        .await
        .unwrap();
    assert_eq!(s, 404);
    let (s, _) = d
        .client()
        .raw(hyper::Method::DELETE, "/v1/status")
        .await
        .unwrap();
    assert_eq!(s, 405);
}

/// Regression (roles came from the group database, not the caller's
/// groups): a process that dropped a granted group is refused, and one given
/// the group at run time (as `SupplementaryGroups=` does) is allowed. The
/// groups are the ones the kernel reports for the connection.
#[tokio::test(flavor = "multi_thread")]
async fn roles_come_from_the_callers_groups_not_the_group_database() {
    require_root();
    // A user listed as a member of a group in the group database.
    let run = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap()
    };
    run(&["groupadd", "--system", "-f", "kekd-test-granted"]);
    if !run(&["id", "kekd-test-member"]).status.success() {
        let out = run(&[
            "useradd",
            "--system",
            "--no-create-home",
            "--gid",
            "nogroup",
            "--groups",
            "kekd-test-granted",
            "--shell",
            "/usr/sbin/nologin",
            "kekd-test-member",
        ]);
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let member_uid: u32 = String::from_utf8(run(&["id", "-u", "kekd-test-member"]).stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-access-groups").await;
    let access =
        "[access]\nsocket_group = \"nogroup\"\n[access.edit]\ngroups = [\"kekd-test-granted\"]\n";
    let d = TestDaemon::start(&moto, |dir| config(dir, &alias, access)).await;

    // The member, whose process dropped the group: refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("rotate")
        .uid(member_uid)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // nobody, given the group at run time: allowed.
    let (code, out, err) =
        kekd_setpriv_nobody_with_group(&d.socket, "kekd-test-granted", &["rotate"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("new active key pair"), "{out}");
}

/// `kekctl ARGS` as nobody with one supplementary group, through setpriv
/// (util-linux).
fn kekd_setpriv_nobody_with_group(
    socket: &Path,
    group: &str,
    args: &[&str],
) -> (i32, String, String) {
    run(std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534"])
        .arg(format!("--groups={group}"))
        .arg(env!("CARGO_BIN_EXE_kekctl"))
        .arg("--socket")
        .arg(socket)
        .args(args))
}

/// Regression (a `socket_group` other than kekd's own failed with a bare
/// "Operation not permitted"): when kekd's user is not a member of the
/// group, start-up fails naming the group and how to grant it.
#[test]
fn a_socket_group_kekd_is_not_a_member_of_is_named_at_start() {
    require_root();
    let out = std::process::Command::new("groupadd")
        .args(["--system", "-f", "kekd-test-granted"])
        .output()
        .unwrap();
    assert!(out.status.success(), "groupadd: {out:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let config = dir.path().join("kekd.toml");
    std::fs::write(
        &config,
        format!(
            "organization_id = \"acme\"\ncadence = \"never\"\nstate_dir = \"{s}\"\n\
             socket_path = \"{s}/kekd.sock\"\n[provider]\ntype = \"local\"\n\
             root_key_path = \"{s}/root.key\"\n[access]\nsocket_group = \"kekd-test-granted\"\n",
            s = state.display()
        ),
    )
    .unwrap();
    let (code, _, err) = as_nobody(
        std::process::Command::new(env!("CARGO_BIN_EXE_kekd"))
            .arg("--config")
            .arg(&config),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("socket_group") && err.contains("not a member of that group"),
        "{err}"
    );
    assert!(err.contains("SupplementaryGroups="), "{err}");
}

/// Regression: a state directory kekd's user cannot make private passed
/// `check-config` as that user, and kekd then failed with a bare
/// "Operation not permitted (os error 1)".
#[test]
fn a_state_dir_the_user_cannot_own_is_named_by_check_config_and_at_start() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("kekd.toml");
    std::fs::write(
        &file,
        format!(
            "organization_id = \"acme\"\nstate_dir = \"{s}\"\nsocket_path = \"{d}/run/kekd.sock\"\n\
             [provider]\ntype = \"local\"\nroot_key_path = \"{s}/root.key\"\n",
            s = state.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = as_nobody(
        std::process::Command::new(env!("CARGO_BIN_EXE_kekd"))
            .args(["check-config"])
            .arg(&file),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("is owned by uid 0, but kekd runs as uid 65534")
            && err.contains("chown it to kekd's user"),
        "{err}"
    );
    let (code, _, err) = as_nobody(
        std::process::Command::new(env!("CARGO_BIN_EXE_kekd"))
            .arg("--config")
            .arg(&file),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("state directory") && err.contains("is owned by uid 0"),
        "{err}"
    );
    // As root (kekd's user here) the same file is fine.
    let (code, out, err) = kekd(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

/// A grant limited to one organization: nobody may unwrap (and read) for
/// that organization only — refused for another, naming it and the role,
/// and refused on the daemon-wide list.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_limited_to_one_organization_holds_for_it_only() {
    require_root();
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-access-orgs").await;
    let limited = "[access]\nsocket_group = \"nogroup\"\n\
        [[access.grant]]\nrole = \"decrypt\"\nusers = [\"nobody\"]\norganizations = [\"beta\"]\n\
        [[access.grant]]\nrole = \"view\"\nusers = [\"nobody\"]\norganizations = [\"beta\"]\n";
    let d = TestDaemon::start(&moto, |dir| config(dir, &alias, limited)).await;
    let c = d.client();
    let spec = |id: &str| kekd::domain::OrgSpec {
        id: id.into(),
        kms_key_arn: Some(alias.clone()),
        ..Default::default()
    };
    c.org_add(&spec("beta")).await.unwrap();
    c.org_add(&spec("gamma")).await.unwrap();
    let socket = d.socket.to_str().unwrap();
    let (code, out, err) = kekctl_as_nobody(&d.socket, &["--org", "beta", "public-key"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("BEGIN PUBLIC KEY"));
    let (code, _, err) = kekctl_as_nobody(&d.socket, &["--org", "gamma", "public-key"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("organization gamma") && err.contains("`view`"),
        "{err}"
    );
    let (code, _, err) = kekctl_as_nobody(&d.socket, &["org", "list"]);
    assert_eq!(code, 4, "the daemon-wide list is not covered: {err}");
    // Unwrap: a recording sealed for beta opens as nobody; one for gamma
    // is refused before any key is touched.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(f("plain"), b"for beta").unwrap();
    for org in ["beta", "gamma"] {
        let (code, _, err) = kekctl(&d.socket, &["--org", org, "seal", &f("plain"), &f(org)]);
        assert_eq!(code, 0, "{err}");
        std::fs::set_permissions(f(org), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (code, _, err) = kekctl_as_nobody(
        &d.socket,
        &["--org", "beta", "open", &f("beta"), &f("out-beta")],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kekctl_as_nobody(
        &d.socket,
        &["--org", "gamma", "open", &f("gamma"), &f("out-gamma")],
    );
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("organization gamma") && err.contains("`decrypt`"),
        "{err}"
    );
    let _ = socket;
}
