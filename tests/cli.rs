//! The binaries' command lines without a running daemon: config checking
//! and the messages and exit codes an operator sees.

use crate::harness::{daemon_with_key, kekctl, kekd, local_config, run, TestDaemon};
use kekd::store::KeyStore;

const GOOD: &str = r#"
organization_id = "acme"
region = "eu-west-1"
[provider]
type = "aws-kms-symmetric"
kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:alias/kekd"
"#;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kekd.toml");
    std::fs::write(&f, text).unwrap();
    let (code, out, err) = kekd(&["check-config", f.to_str().unwrap()]);
    // Name the file as the operator typed it, so messages are comparable.
    (code, out, err.replace(f.to_str().unwrap(), "FILE"))
}

#[test]
fn check_config_accepts_a_valid_file() {
    let (code, out, _) = check(GOOD);
    assert_eq!(code, 0);
    assert!(out.contains("valid"), "{out}");
    // What an operator can misread, resolved: the next three rotations in
    // the configured time zone, and the retention in days.
    let (code, out, _) = check(&format!(
        "cadence = \"0 3 * * MON\"\ntimezone = \"Europe/Berlin\"\nretention = \"400d\"\n{GOOD}"
    ));
    assert_eq!(code, 0, "{out}");
    let next = out.lines().find(|l| l.contains("next rotations")).unwrap();
    assert_eq!(next.matches(" 03:00:00 CE").count(), 3, "{next}");
    assert!(out.contains("400 days"), "{out}");
}

#[test]
fn check_config_names_file_field_value_and_allowed() {
    let cases = [
        (GOOD.replace("alias/kekd", "alias"), "field `provider.kms_key_arn`: malformed ARN"),
        (GOOD.replace("region = \"eu-west-1\"", "region = \"us-east-1\""), "is not the configured region us-east-1"),
        (format!("cadence = \"hourly\"\n{GOOD}"), "field `cadence`: not a known cadence (value: \"hourly\")"),
        (format!("key_bits = 1024\n{GOOD}"), "field `key_bits`: unsupported RSA key size (value: \"1024\"); allowed: 2048, 3072, 4096"),
        (format!("key_type = \"rsa-1024\"\n{GOOD}"), "field `key_type`: unknown key type (value: \"rsa-1024\"); allowed: rsa-2048, rsa-3072, rsa-4096, x25519-mlkem768"),
        (format!("key_type = \"x25519-mlkem768\"\nkey_bits = 3072\n{GOOD}"), "field `key_bits`: conflicts with key_type = \"x25519-mlkem768\" (value: \"3072\")"),
        (format!("colour = \"blue\"\n{GOOD}"), "unknown field `colour`"),
    ];
    for (text, want) in cases {
        let (code, _, err) = check(&text);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.starts_with("kekd: invalid configuration: FILE:"),
            "{err}"
        );
        assert!(err.contains(want), "want {want:?} in {err}");
    }
}

#[test]
fn daemon_with_a_missing_config_exits_non_zero_and_says_why() {
    let (code, _, err) = kekd(&["--config", "/nonexistent/kekd.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/kekd.toml: cannot read"), "{err}");
}

#[test]
fn kekctl_without_a_daemon_exits_3_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = kekctl(&dir.path().join("none.sock"), &["status"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cannot reach kekd at") && err.contains("is the daemon running?"),
        "{err}"
    );
}

/// Regression: `--socket` naming a directory or a regular file said
/// "Connection refused", as if the daemon were down.
#[test]
fn kekctl_says_when_the_socket_path_is_not_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kekd.toml");
    std::fs::write(&file, "x").unwrap();
    for (path, what) in [
        (dir.path().to_path_buf(), "a directory"),
        (file, "a regular file"),
    ] {
        let (code, _, err) = kekctl(&path, &["status"]);
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains(&format!("is {what}, not a socket")) && err.contains("--socket"),
            "{err}"
        );
    }
}

/// Regression: `history --limit 0` and a bad `audit show --since` were
/// refused only by the daemon or later, with exit 1; usage errors are 2.
#[test]
fn out_of_range_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    for args in [
        &["history", "--limit", "0"][..],
        &["history", "--limit", "1001"],
        &["audit", "show", "--since", "yesterday"],
    ] {
        let (code, _, err) = kekctl(&sock, args);
        assert_eq!(code, 2, "kekctl {args:?}: {err}");
        assert!(err.contains("invalid value"), "{err}");
    }
}

#[test]
fn bad_command_line_exits_2() {
    let (code, _, err) = kekd(&["--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn kekctl_policy_prints_paste_ready_statements_and_rejects_bad_input() {
    let nowhere = std::path::Path::new("/nonexistent.sock");
    let (code, out, err) = kekctl(
        nowhere,
        &[
            "policy",
            "--principal",
            "arn:aws:iam::111122223333:role/kekd",
            "--org",
            "acme",
        ],
    );
    assert_eq!(code, 0, "needs no daemon: {err}");
    // Regression: its help offered --socket, which it never uses; commands
    // that talk to the daemon still offer it.
    let (_, help, _) = kekctl(nowhere, &["policy", "--help"]);
    assert!(
        help.contains("--principal") && !help.contains("--socket"),
        "{help}"
    );
    let (_, help, _) = kekctl(nowhere, &["status", "--help"]);
    assert!(help.contains("--socket"), "{help}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(
        v[1]["Condition"]["StringEquals"]["kms:EncryptionContext:organization-id"][0],
        "acme"
    );
    let (code, _, err) = kekctl(nowhere, &["policy", "--principal", "kekd", "--org", "acme"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not an IAM principal ARN"), "{err}");
}

/// Regression: values that were accepted but dangerous — a state_dir kekd
/// would chmod 0700 (/, /tmp), a cadence that never fires or fires every
/// second, a retention of an hour or of 300,000 years (which panicked the
/// engine), an audit log on /dev/null, a relative root key path, a log
/// level that silences everything — are each refused with file, field,
/// value and what is allowed.
#[test]
fn check_config_refuses_dangerous_values() {
    let local = |extra: &str, provider: &str| {
        format!("organization_id = \"acme\"\n{extra}\n[provider]\ntype = \"local\"\n{provider}\n")
    };
    let root = "root_key_path = \"/var/lib/kekd/root.key\"";
    let cases = [
        (
            local("state_dir = \"/tmp\"", root),
            "field `state_dir`: is / or a top-level directory",
        ),
        (
            local("state_dir = \"/\"", root),
            "field `state_dir`: is / or a top-level directory",
        ),
        (
            local("state_dir = \"/var/tmp\"", root),
            "field `state_dir`: is world-writable",
        ),
        (
            local("cadence = \"0 0 30 2 *\"", root),
            "field `cadence`: never fires",
        ),
        (
            local("cadence = \"* * * * * *\"", root),
            "field `cadence`: fires every 1s",
        ),
        (
            local("retention = \"1h\"", root),
            "field `retention`: shorter than 1day",
        ),
        (
            local("retention = \"300000y\"", root),
            "field `retention`: longer than 100 years",
        ),
        (
            local("max_key_age_warning = \"300000y\"", root),
            "field `max_key_age_warning`: longer than 100 years",
        ),
        (
            local("audit_log = \"/dev/null\"", root),
            "field `audit_log`: is a device or kernel file",
        ),
        (
            local("", "root_key_path = \"keys/root.key\""),
            "field `provider.root_key_path`: not an absolute path",
        ),
        (
            local("[log]\nlevel = \"verbose\"", root),
            "field `log.level`: not a log filter (value: \"verbose\")",
        ),
    ];
    for (text, want) in cases {
        let (code, out, err) = check(&text);
        assert_eq!(code, 1, "{text}: {out}");
        assert!(
            err.starts_with("kekd: invalid configuration: FILE:"),
            "{err}"
        );
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(err.contains("; allowed: "), "{err}");
    }
}

/// The explicit overrides make short retentions and frequent rotations
/// acceptable — with a warning check-config prints.
#[test]
fn overrides_accept_short_retention_and_frequent_rotation_with_warnings() {
    let text = "organization_id = \"acme\"\nretention = \"1h\"\ncadence = \"*/10 * * * *\"\n\
        [provider]\ntype = \"local\"\nroot_key_path = \"/var/lib/kekd/root.key\"\n\
        [overrides]\nallow_short_retention = true\nallow_frequent_rotation = true\n";
    let (code, out, err) = check(text);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning: retention 1h is shorter than 1day"),
        "{out}"
    );
    assert!(
        out.contains("warning: cadence \"*/10 * * * *\" rotates every 10m"),
        "{out}"
    );
    let (_, _, err) = check(&text.replace("allow_short_retention = true\n", ""));
    assert!(err.contains("field `retention`"), "{err}");
}

/// Regression (kekctl had no client timeout and could hang for ever): a
/// socket that accepts but never answers makes kekctl give up after
/// --timeout with exit 3 and a message saying so.
#[test]
fn kekctl_never_hangs_on_a_daemon_that_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let held = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(5));
        drop(conn);
    });
    let start = std::time::Instant::now();
    let (code, _, err) = kekctl(&sock, &["--timeout", "1s", "status"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("did not answer within 1s"), "{err}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "it gave up"
    );
    held.join().unwrap();
}

/// Regression: tables broke values across lines at 80 columns (a
/// timestamp split as `…16.94` / `4Z`), dropped columns by terminal width
/// only in `history`, and kept box drawing in a pipe. Now every table is
/// plain aligned columns fitted to the width — into a pipe (`COLUMNS`) and
/// on a terminal (a pty of that size): no line longer than the width, no
/// value broken (each is whole or cut with `…`), ids always whole, no box
/// characters; `--no-headers` drops the header, `-o wide` shows every
/// column whole, and a pipe without `COLUMNS` cuts nothing.
#[tokio::test(flavor = "multi_thread")]
async fn tables_fit_the_width_without_breaking_a_value() {
    let (_moto, d) = daemon_with_key("kekd-a-rather-long-alias-name-for-width").await;
    d.client().rotate().await.unwrap();
    d.client().rotate().await.unwrap();
    let kekctl = env!("CARGO_BIN_EXE_kekctl");
    let pipe = |columns: usize, args: &[&str]| {
        let (code, out, err) = run(std::process::Command::new(kekctl)
            .env("COLUMNS", columns.to_string())
            .arg("--socket")
            .arg(&d.socket)
            .args(args));
        assert_eq!(code, 0, "kekctl {args:?}: {err}");
        out
    };
    // A terminal of `columns`: util-linux's script(1) gives kekctl a pty.
    let pty = |columns: usize, args: &[&str]| {
        let line = format!(
            "stty cols {columns} rows 50; exec {kekctl} --socket {} {}",
            d.socket.display(),
            args.join(" ")
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("COLUMNS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "script {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
    };
    let keypairs = d.client().history(100, None).await.unwrap().keypairs;
    let ids: Vec<String> = keypairs.iter().map(|k| k.id.clone()).collect();
    let tables = [
        &["status"][..],
        &["history"],
        &["test"],
        &["check"],
        &["audit", "show"],
    ];
    for columns in [60, 80, 200] {
        for args in tables {
            for (how, out) in [("pipe", pipe(columns, args)), ("pty", pty(columns, args))] {
                for line in out.lines() {
                    assert!(
                        line.chars().count() <= columns,
                        "kekctl {args:?} at {columns} ({how}): a line of {}:\n{out}",
                        line.chars().count()
                    );
                }
                assert!(
                    !out.contains(['│', '─', '┌', '└', '\u{1b}']),
                    "no borders or colour codes ({how}): {out}"
                );
                if args == ["history"] {
                    for id in &ids {
                        assert!(
                            out.lines().any(|l| l.starts_with(id.as_str())),
                            "{id} whole at {columns} ({how}): {out}"
                        );
                    }
                }
            }
        }
    }
    // At 80 the history's time column is whole: a timestamp is never split.
    let history = pipe(80, &["history"]);
    for k in &keypairs {
        let minute = k.activated_at.unwrap().format("%Y-%m-%d %H:%M").to_string();
        assert!(
            history
                .lines()
                .any(|l| l.starts_with(&k.id) && l.contains(&minute)),
            "{} and {minute} whole on one line: {history}",
            k.id
        );
    }
    assert!(
        history.lines().next().unwrap().starts_with("ID  "),
        "{history}"
    );
    // The key type stays at 80 (the reason goes first).
    assert!(
        history.lines().skip(1).all(|l| l.contains(" rsa-2048 ")),
        "{history}"
    );
    let bare = pipe(80, &["--no-headers", "history"]);
    assert_eq!(bare.lines().count(), ids.len(), "{bare}");
    assert!(bare.lines().all(|l| l.starts_with("kek-")), "{bare}");
    // -o wide: every column and value whole, however long the line.
    let wide = pipe(60, &["history", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("TYPE") && wide.contains("RETIRED"),
        "{wide}"
    );
    assert!(
        wide.contains("arn:aws:kms:us-east-1:") && !wide.contains('…'),
        "{wide}"
    );
    let status = pipe(200, &["status"]);
    assert!(
        status.lines().any(|l| l.starts_with("kms key")
            && l.contains("alias/kekd-a-rather-long-alias-name-for-width")),
        "the key whole at 200: {status}"
    );
    // Into a pipe without COLUMNS nothing is cut: grep sees every value.
    let (_, whole, _) = d.kekctl(&["check"]);
    assert!(
        !whole.contains('…') && whole.contains("decrypts through KMS and matches"),
        "{whole}"
    );
    for json in [
        pipe(60, &["history", "--json"]),
        pipe(60, &["-o", "json", "history"]),
    ] {
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["keypairs"].as_array().unwrap().len(), ids.len());
    }
}

/// `kekctl reload`, `kekctl export active` and `kekctl completions`.
#[tokio::test(flavor = "multi_thread")]
async fn kekctl_reloads_exports_the_active_key_pair_and_completes() {
    let (_moto, d) = daemon_with_key("kekd-cli-more").await;
    let (code, out, err) = d.kekctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("unchanged"), "{out}");
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        text.replace("cadence = \"never\"", "cadence = \"daily\""),
    )
    .unwrap();
    let (code, out, err) = d.kekctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("applied") && out.contains("cadence"),
        "{out}"
    );
    std::fs::write(&d.config, "this is not toml").unwrap();
    let (code, _, err) = d.kekctl(&["reload"]);
    assert_eq!(code, 1, "a failed reload exits 1");
    assert!(err.contains("kekd.toml"), "names the file: {err}");

    let active = d.wait_active().await.active_key_id.unwrap();
    let (code, out, err) = d.kekctl(&["export", "active"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("\"key_pair_id\": \"{active}\"")),
        "{out}"
    );

    let (code, out, _) = kekctl(
        std::path::Path::new("/nonexistent"),
        &["completions", "bash"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("kekctl") && out.contains("rotate"), "{out}");
}

#[test]
fn a_metrics_listener_beyond_loopback_needs_consent() {
    let (code, _, err) = check(&format!("{GOOD}[metrics]\nlisten = \"0.0.0.0:9464\"\n"));
    assert_eq!(code, 1);
    assert!(
        err.contains("metrics.listen")
            && err.contains("not a loopback address")
            && err.contains("allow_remote"),
        "{err}"
    );
    let (code, out, _) = check(&format!(
        "{GOOD}[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n"
    ));
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = check(&format!("{GOOD}[metrics]\nlisten = \"localhost\"\n"));
    assert_eq!(code, 1);
    assert!(err.contains("not an IP address and port"), "{err}");
}

/// Regression: `kekd check-config FILE | head -1` panicked ("failed
/// printing to stdout") once the reader had gone; a closed stdout is not an
/// error.
#[test]
fn check_config_into_a_closed_pipe_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kekd.toml");
    std::fs::write(&f, GOOD).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kekd"))
        .arg("check-config")
        .arg(&f)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before kekd (still starting) writes a byte.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Regression: `kekctl store copy` opened its source read-write (its
/// header bytes changed, a read-only backup could not be copied), turned a
/// 0-byte source into an empty store with exit 0, copied a file onto
/// itself, and copied a history as another organization's.
#[tokio::test(flavor = "multi_thread")]
async fn store_copy_only_reads_its_source_and_refuses_what_is_not_a_store() {
    let mut d = TestDaemon::launch_local(local_config);
    d.spawn();
    d.wait_active().await;
    d.client().rotate().await.unwrap();
    assert!(d.stop().await.success());
    let source = d.store_path();
    let before = std::fs::read(&source).unwrap();
    std::fs::set_permissions(&source, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let dir = d.dir.path().to_path_buf();
    let copy = |from: &std::path::Path, to: &std::path::Path, org: &str| {
        kekd_ctl(&[
            "store",
            "copy",
            "--from",
            &format!("redb:{}", from.display()),
            "--to",
            &format!("redb:{}", to.display()),
            "--organization",
            org,
        ])
    };
    let (code, out, err) = copy(&source, &dir.join("copy.redb"), "acme");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("copied 2 key pairs"), "{out}");
    assert_eq!(
        std::fs::read(&source).unwrap(),
        before,
        "the source is not written"
    );

    let (code, _, err) = copy(&source, &source, "acme");
    assert_eq!(code, 1);
    assert!(err.contains("both the source and the target"), "{err}");

    let (code, _, err) = copy(&source, &dir.join("other.redb"), "globex");
    assert_eq!(code, 1);
    assert!(
        err.contains("bound to organization \"acme\", not \"globex\""),
        "{err}"
    );
    assert!(
        kekd::store::RedbStore::open(&dir.join("other.redb"))
            .await
            .unwrap()
            .list()
            .await
            .unwrap()
            .is_empty(),
        "nothing was copied"
    );

    let empty = dir.join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let (code, out, err) = copy(&empty, &dir.join("from-empty.redb"), "acme");
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("is not a kekd store: the file is empty"),
        "{err}"
    );
    assert!(!dir.join("from-empty.redb").exists(), "no target was made");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "still empty");

    let text = dir.join("notes.txt");
    std::fs::write(&text, b"not a database at all").unwrap();
    let (code, _, err) = copy(&text, &dir.join("from-text.redb"), "acme");
    assert_eq!(code, 1);
    assert!(err.contains("is not a kekd store"), "{err}");
}

/// `kekctl` with no socket involved.
fn kekd_ctl(args: &[&str]) -> (i32, String, String) {
    run(std::process::Command::new(env!("CARGO_BIN_EXE_kekctl")).args(args))
}
