//! The audit trail (issue 4): what is recorded, that it holds no secrets,
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

/// When the audit log cannot be written, state-changing operations fail
/// closed with a clear error, while the public key is still served.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_audit_log_fails_closed_but_the_public_key_is_served() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-audit-full").await;
    let mut d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias, "")).await;
    let active = d.wait_active().await.active_key_id.unwrap();
    assert!(d.stop().await.success());
    // /dev/full accepts the open and fails every write (ENOSPC).
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("audit_log = \"/dev/full\"\n{text}")).unwrap();
    d.spawn();
    let c = d.client();
    wait_for(Duration::from_secs(30), "the daemon", || async {
        c.status().await.ok()
    })
    .await;

    let p: PublicKeyView = c.public_key().await.unwrap();
    assert_eq!(p.id, active, "public-key serving goes on");
    let (status, body) = c.raw(hyper::Method::POST, "/v1/rotate").await.unwrap();
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "audit_unavailable");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/dev/full"));

    // A rotation by signal fails closed too, and says why.
    d.signal(libc::SIGUSR1);
    let s = wait_for(Duration::from_secs(30), "the refused rotation", || async {
        let s: StatusView = c.status().await.ok()?;
        s.last_error.is_some().then_some(s)
    })
    .await;
    assert_eq!(s.state, ServiceState::Degraded);
    assert_eq!(s.last_error.unwrap().kind.to_string(), "audit_unavailable");
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    assert_eq!(d.history().await.keypairs.len(), 1, "nothing was made");
}
