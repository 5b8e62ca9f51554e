//! The audit trail: what is recorded, that it holds no secrets,
//! that tampering is detected, and that it fails closed.

use crate::harness::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kekd::api::views::{ExportView, KeyPairView, PublicKeyView, ServiceState, StatusView};
use std::time::Duration;

fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_records_kms_calls_rotations_config_and_api_calls_and_detects_tampering() {
    let moto = Moto::start().await;
    let (key_arn, alias) = moto.create_key("kekd-audit").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias, "")).await;
    let rotated: KeyPairView = d.client().rotate().await.unwrap();
    let _: ExportView = d.client().envelope(&rotated.id).await.unwrap();
    let _: kekd::api::views::ReloadOutcome = d.client().reload().await.unwrap();

    let s: StatusView = d.client().status().await.unwrap();
    let path = std::path::PathBuf::from(&s.audit.path);
    assert!(
        path.starts_with(d.dir.path()),
        "in the state dir by default"
    );
    let recs = records(&path);
    assert_eq!(s.audit.records as usize, recs.len());
    let events: Vec<&serde_json::Value> = recs.iter().map(|r| &r["event"]).collect();
    let gdk = events
        .iter()
        .find(|e| {
            e["type"] == "kms_call" && e["operation"] == "GenerateDataKey" && e["outcome"] == "ok"
        })
        .expect("a GenerateDataKey record");
    assert_eq!(gdk["key_arn"], key_arn.as_str());
    assert_eq!(gdk["encryption_context"]["organization-id"], "acme-test");
    assert!(
        gdk["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{gdk}"
    );
    assert!(gdk["duration_ms"].is_u64());
    let rot = events
        .iter()
        .find(|e| e["type"] == "rotation" && e["new_key_pair_id"] == rotated.id.as_str())
        .expect("the rotation record");
    assert_eq!(rot["reason"], "change-key-now");
    assert_eq!(rot["outcome"], "success");
    assert!(rot["old_key_pair_id"].is_string());
    let export = events
        .iter()
        .find(|e| e["type"] == "api" && e["path"].as_str().unwrap().ends_with("/envelope"))
        .expect("the envelope export record");
    assert_eq!(export["key_pair_id"], rotated.id.as_str());
    assert_eq!(export["uid"], 0);
    assert_eq!(export["role"], "edit");
    assert!(events
        .iter()
        .any(|e| e["type"] == "config_reload" && e["outcome"] == "unchanged"));

    // No secret in the audit log.
    let text = std::fs::read_to_string(&path).unwrap();
    let kms = moto.kms();
    for k in d.history().await.keypairs {
        let e: ExportView = d.client().envelope(&k.id).await.unwrap();
        let r = recover(&kms, &e).await;
        for secret in [&r.data_key, &r.private_pkcs8] {
            let mid = secret.len() / 2;
            let slice = &secret[mid - 12..mid + 12];
            assert!(!text.contains(&hex::encode(slice)) && !text.contains(&B64.encode(slice)));
        }
    }

    // Intact chain; then an edited record is found.
    let (code, out, err) = d.kekctl(&["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("chain intact"), "{out}");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].replacen("\"seq\":3", "\"seq\":3,\"x\":1", 1);
    let copy = d.dir.path().join("tampered.jsonl");
    std::fs::write(&copy, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = d.kekctl(&["audit", "verify", "--file", copy.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("broken at line 4"), "{err}");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.remove(1);
    std::fs::write(&copy, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = d.kekctl(&["audit", "verify", "--file", copy.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("broken at line 2") && err.contains("deleted or reordered"),
        "{err}"
    );
}

/// Regression (a full disk left kekd unable to start): when the audit log
/// cannot be written, state-changing operations fail closed with a clear
/// error while the public key is still served; status says degraded; no
/// half record is left behind; once space is back everything works again
/// and the chain verifies. The full disk is a file size limit (RLIMIT_FSIZE)
/// on the running daemon: a write past it fails part-way, as on a full disk.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_closed_leaves_no_torn_record_and_recovers() {
    let (_moto, mut d) = daemon_with_key("kekd-audit-full").await;
    let c = d.client();
    let active = d.wait_active().await.active_key_id.unwrap();
    let audit_path = std::path::PathBuf::from(c.status().await.unwrap().audit.path);
    let before = std::fs::read(&audit_path).unwrap();
    // Room for 60 more bytes: less than one record.
    d.limit_file_size(Some(before.len() as u64 + 60));

    let p: PublicKeyView = c.public_key().await.unwrap();
    assert_eq!(p.id, active, "public-key serving goes on");
    let (status, body) = c
        .raw(hyper::Method::POST, kekd::api::paths::ROTATE)
        .await
        .unwrap();
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "audit_unavailable");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(audit_path.to_str().unwrap()), "{message}");
    assert_eq!(
        std::fs::read(&audit_path).unwrap(),
        before,
        "the failed append left nothing behind"
    );
    let s = c.status().await.unwrap();
    assert_eq!(
        s.state,
        ServiceState::Degraded,
        "status shows the failing trail"
    );
    assert!(s.audit.problem.is_some());

    // A rotation by signal fails closed too, and says why.
    d.signal(libc::SIGUSR1);
    let s = wait_for(Duration::from_secs(30), "the refused rotation", || async {
        let s: StatusView = c.status().await.ok()?;
        if s.last_error.is_none() {
            eprintln!("{:?}\n{}", s, d.log_text());
        }
        s.last_error.is_some().then_some(s)
    })
    .await;
    assert_eq!(s.last_error.unwrap().kind.to_string(), "audit_unavailable");
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    assert_eq!(d.history().await.keypairs.len(), 1, "nothing was made");

    // Space is back: rotation works, the chain verifies, a restart works.
    d.limit_file_size(None);
    let rotated = c.rotate().await.unwrap();
    let s = d.wait_active().await;
    assert_eq!(s.active_key_id.as_deref(), Some(rotated.id.as_str()));
    assert_eq!(s.state, ServiceState::Ok);
    assert!(s.audit.problem.is_none());
    let (code, out, err) = d.kekctl(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    d.restart().await;
}

/// Regression (kekd refused to start on "last records do not parse"): a
/// torn last record — an append cut short by a crash — is cut back at start,
/// the repair is recorded, and kekd serves.
#[tokio::test(flavor = "multi_thread")]
async fn kekd_starts_and_serves_with_a_torn_audit_tail() {
    let (_moto, mut d) = daemon_with_key("kekd-audit-torn").await;
    let active = d.wait_active().await;
    assert!(d.stop().await.success());
    let path = std::path::PathBuf::from(&active.audit.path);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        br#"{"seq":99,"at":"2026-11-23T10:00:00.000Z","prev":"0f"#,
    )
    .unwrap();
    drop(f);
    d.spawn();
    let s = d.wait_active().await;
    assert_eq!(s.active_key_id, active.active_key_id);
    assert!(
        s.audit
            .repaired
            .as_deref()
            .unwrap_or_default()
            .contains("torn"),
        "{:?}",
        s.audit
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("torn")),
        "{:?}",
        s.warnings
    );
    let (code, out, err) = d.kekctl(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("audit_repaired"));
}

/// Regression: a log write that failed part-way (the daemon's stderr on a
/// full disk) made the logger panic, killing the rotation engine mid-update:
/// the failure was never recorded and later rotations never ran.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_that_cannot_be_written_never_stops_the_engine() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-log-full").await;
    let mut d = TestDaemon::launch_only(&moto, |dir| kms_config(dir, &alias, ""));
    d.log_direct = true;
    d.spawn();
    let c = d.client();
    let first = d.wait_active().await.active_key_id.unwrap();
    // Neither the audit trail nor the log can grow any more.
    let audit = std::fs::metadata(c.status().await.unwrap().audit.path).unwrap();
    let log = std::fs::metadata(&d.log).unwrap();
    d.limit_file_size(Some(audit.len().min(log.len())));
    d.signal(libc::SIGUSR1);
    let s = wait_for(Duration::from_secs(30), "the refused rotation", || async {
        let s: StatusView = c.status().await.ok()?;
        (s.last_error.is_some() && !s.rotation_in_progress).then_some(s)
    })
    .await;
    assert_eq!(s.active_key_id.as_deref(), Some(first.as_str()));
    d.limit_file_size(None);
    let rotated = c.rotate().await.expect("the engine still runs");
    assert_ne!(rotated.id, first);
}

/// Regression (an export of a percent-encoded id was audited under the
/// encoded string): the audit record names the key pair the id resolves to.
#[tokio::test(flavor = "multi_thread")]
async fn percent_encoded_ids_are_audited_as_the_key_pair_they_name() {
    let (_moto, d) = daemon_with_key("kekd-audit-pct").await;
    let id = d.wait_active().await.active_key_id.unwrap();
    let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, _) = d
        .client()
        .raw(hyper::Method::GET, &kekd::api::paths::envelope(&encoded))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let s = d.client().status().await.unwrap();
    let line = std::fs::read_to_string(&s.audit.path)
        .unwrap()
        .lines()
        .rev()
        .find(|l| l.contains("/envelope"))
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"]["key_pair_id"], id.as_str(), "{line}");
}

/// `kekctl --json audit show --follow --since SINCE`, its lines as they come.
fn follow_audit(
    d: &TestDaemon,
    since: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "audit", "show", "--follow", "--since", since])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits until a follower started with a `--since` that covers the
/// start-up has printed the initial rotation: it has read the trail up to
/// there, so whatever is appended from now on reaches it.
fn wait_until_following(rx: &std::sync::mpsc::Receiver<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("\"initial\"") {
                return;
            }
        }
    }
    panic!("the follower never printed the initial rotation");
}

/// Whether `follow` prints the Change Key Now rotation to `new` within
/// 20 s; stops it either way.
fn follow_prints_rotation(
    follow: &mut std::process::Child,
    rx: &std::sync::mpsc::Receiver<String>,
    new: &str,
) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while std::time::Instant::now() < deadline && !seen {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = line.contains(new) && line.contains("change-key-now");
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    seen
}

/// `kekctl audit show`: the records as a table, `--since`, `--json`, and
/// `--follow` printing a record appended after it started.
#[tokio::test(flavor = "multi_thread")]
async fn kekctl_audit_show_lists_filters_and_follows() {
    let (_moto, d) = daemon_with_key("kekd-audit-show").await;
    let (code, out, err) = d.kekctl(&["audit", "show"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("rotation") && out.contains("reason=initial"),
        "{out}"
    );
    let (code, out, _) = d.kekctl(&["audit", "show", "--since", "2099-01-01T00:00:00Z"]);
    assert_eq!(code, 0);
    assert!(out.trim().is_empty(), "nothing after 2099: {out}");
    let (code, out, _) = d.kekctl(&["audit", "show", "--since", "1h", "--json"]);
    assert_eq!(code, 0);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["seq"].is_u64() && v["event"]["type"].is_string(),
            "{line}"
        );
    }
    let (code, _, err) = d.kekctl(&["audit", "show", "--since", "yesterday"]);
    assert_eq!(code, 2, "a bad --since is a usage error");
    assert!(err.contains("--since \"yesterday\""), "{err}");

    // The follower that must print nothing starts first; the other one
    // printing the new record shows both have read past it.
    let (mut quiet, quiet_rx) = follow_audit(&d, "2099-01-01T00:00:00Z");
    let (mut follow, rx) = follow_audit(&d, "1h");
    wait_until_following(&rx);
    let new = d.client().rotate().await.unwrap().id;
    let seen = follow_prints_rotation(&mut follow, &rx, &new);
    assert!(
        seen,
        "--follow printed the rotation appended after it started"
    );
    let _ = quiet.kill();
    let _ = quiet.wait();
    assert!(
        quiet_rx.try_recv().is_err(),
        "nothing before 2099 is printed"
    );
}

/// `kekctl audit rotate`: the full file is archived beside the new one,
/// the new file continues the chain (also across a restart), `audit verify`
/// checks the files in order and refuses them out of order, and `audit
/// show --follow` moves on to the new file.
#[tokio::test(flavor = "multi_thread")]
async fn audit_rotate_starts_a_new_file_that_continues_the_chain() {
    let (_moto, mut d) = daemon_with_key("kekd-audit-rotate").await;
    let before: StatusView = d.client().status().await.unwrap();
    let current = before.audit.path.clone();
    let (mut follow, rx) = follow_audit(&d, "1h");
    wait_until_following(&rx);

    let (code, out, err) = d.kekctl(&["--json", "audit", "rotate"]);
    assert_eq!(code, 0, "{err}");
    let r: kekd::audit::Rotated = serde_json::from_str(&out).unwrap();
    assert_eq!(r.path, current);
    assert!(r.archived.starts_with(&format!("{current}.")), "{r:?}");
    // The archived file holds the records up to the rotation request itself.
    let archived = records(std::path::Path::new(&r.archived));
    assert_eq!(archived.last().unwrap()["seq"].as_u64(), Some(r.records));
    assert!(
        r.records > before.audit.records,
        "the rotate call is audited"
    );
    let first = &records(std::path::Path::new(&current))[0];
    assert_eq!(first["event"]["type"], "audit_continued");
    assert_eq!(first["prev"], r.head.as_str());

    // Records go on in the new file, and --follow sees them.
    let new = d.client().rotate().await.unwrap().id;
    let seen = follow_prints_rotation(&mut follow, &rx, &new);
    assert!(
        seen,
        "audit show --follow printed the rotation after audit rotate"
    );

    // Across a restart the chain continues in the new file.
    d.restart().await;
    d.client().rotate().await.unwrap();
    let s: StatusView = d.client().status().await.unwrap();
    let (code, out, err) =
        d.kekctl(&["audit", "verify", "--file", &r.archived, "--file", &current]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 files") && out.contains("chain intact"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{} records", s.audit.records)),
        "{out}"
    );
    let (code, out, _) = d.kekctl(&["audit", "verify"]);
    assert_eq!(code, 0);
    assert!(out.contains("continues"), "{out}");
    let (code, _, err) = d.kekctl(&["audit", "verify", "--file", &current, "--file", &r.archived]);
    assert_eq!(code, 1);
    assert!(err.contains("does not continue"), "{err}");
}

/// Regression: status and `/metrics` read the audit head under the lock an
/// append holds across `fdatasync`; on a slow disk they stalled for the
/// whole sync and, two at a time, took every runtime worker, so even
/// `/v1/public-key` — what recorders call — waited seconds. Here every
/// audit sync takes 2.5 s while a rotation writes its records; nothing a
/// recorder or a monitor reads may wait for that.
#[tokio::test(flavor = "multi_thread")]
async fn status_and_public_key_answer_while_the_audit_disk_is_slow() {
    let mut d = TestDaemon::launch_local(local_config);
    d.env
        .push(("FAILPOINTS".into(), "audit-before-sync=sleep(2500)".into()));
    d.spawn();
    d.wait_active().await;
    let c = d.client();
    let mark = d.log_mark();
    let rotation = tokio::spawn(async move { c.rotate().await });
    d.wait_log(mark, "rotation started").await;
    let mut slowest = Duration::ZERO;
    let mut asked = 0;
    while !rotation.is_finished() {
        let c = d.client();
        let t = std::time::Instant::now();
        // Two monitors and two recorders at once: more than the runtime
        // has workers on a 2-core machine.
        let (s1, s2, m, p) = tokio::join!(c.status(), c.status(), c.metrics(), c.public_key());
        slowest = slowest.max(t.elapsed());
        s1.unwrap();
        s2.unwrap();
        m.unwrap();
        p.unwrap();
        asked += 1;
    }
    let rotated = rotation.await.unwrap().unwrap();
    assert!(
        asked >= 3,
        "asked during the rotation's slow syncs: {asked}"
    );
    assert!(
        slowest < Duration::from_millis(1000),
        "a read waited for the audit disk: {slowest:?} with 2.5 s syncs"
    );
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.active_key_id.as_deref(), Some(rotated.id.as_str()));
}
