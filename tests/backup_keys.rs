//! Backup KMS keys: every data key also wrapped under a key in another
//! region, so playback survives an outage of the primary's region. moto
//! serves both regions at one endpoint; the fault proxy in front of it
//! faults only requests signed for the primary's region.

use crate::harness::*;
use kekd::api::views::{ExportView, ServiceState, StatusView};
use kekd::domain::{ENVELOPE_V1, ENVELOPE_V2};
use std::time::Duration;

const BACKUP_REGION: &str = "eu-west-1";

/// A daemon (through `proxy`) whose primary key is in REGION and whose
/// backup key is in BACKUP_REGION; returns it and the backup key's ARN.
async fn daemon_with_backup(moto: &Moto, proxy: &FaultProxy) -> (TestDaemon, String) {
    let (_, primary) = moto.create_key("kekd-primary").await;
    let (backup, _) = moto.create_key_in(BACKUP_REGION, "kekd-backup").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| with_backup(dir, &primary, &backup)).await;
    (d, backup)
}

fn with_backup(dir: &std::path::Path, primary: &str, backup: &str) -> String {
    kms_config(dir, primary, "").replace(
        &format!("kms_key_arn = \"{primary}\""),
        &format!("kms_key_arn = \"{primary}\"\nbackup_kms_key_arns = [\"{backup}\"]"),
    )
}

/// Decrypts an export through one of its wrappings only, with a KMS client
/// of that key's region, and checks the private key against the public key.
async fn assert_decrypts_under(moto: &Moto, export: &ExportView, key_arn: &str) {
    let env = &export.envelope;
    let edk = if env.wrapping_key_arn == key_arn {
        env.encrypted_data_key.clone()
    } else {
        env.backups
            .iter()
            .find(|w| w.wrapping_key_arn == key_arn)
            .unwrap_or_else(|| panic!("{} has no wrapping under {key_arn}", env.key_pair_id))
            .encrypted_data_key
            .clone()
    };
    let mut one = export.clone();
    one.envelope.wrapping_key_arn = key_arn.to_string();
    one.envelope.encrypted_data_key = edk;
    one.envelope.backups.clear();
    one.envelope.format = ENVELOPE_V1.into();
    let region = key_arn.split(':').nth(3).unwrap();
    let secrets = recover(&moto.kms_in(region), &one).await;
    assert_eq!(
        public_der_of(&secrets.private_pkcs8),
        pem_der(&export.public_key_pem),
        "{} decrypts under {key_arn}",
        env.key_pair_id
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn playback_survives_a_primary_outage_through_the_backup_key() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (d, backup) = daemon_with_backup(&moto, &proxy).await;
    let c = d.client();
    let s: StatusView = c.status().await.unwrap();
    assert_eq!(s.backup_kms_keys, std::slice::from_ref(&backup));
    let id = s.active_key_id.unwrap();
    let export = c.envelope(&id).await.unwrap();
    assert_eq!(export.envelope.format, ENVELOPE_V2);
    assert_eq!(export.envelope.backups[0].wrapping_key_arn, backup);
    let primary = export.envelope.wrapping_key_arn.clone();
    assert_decrypts_under(&moto, &export, &primary).await;
    assert_decrypts_under(&moto, &export, &backup).await;
    // The Test round trip covers the backup key too.
    let (code, out, err) = d.kekctl(&["test"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("backup-key"), "{out}");

    let dir = d.dir.path();
    // An older key pair, for a second recording below.
    let older_pem = dir.join("older.pem");
    std::fs::write(&older_pem, c.public_key().await.unwrap().pem).unwrap();
    c.rotate().await.unwrap();
    let (input, sealed, out) = (
        dir.join("call.raw"),
        dir.join("call.rec"),
        dir.join("call.out"),
    );
    std::fs::write(&input, b"a call recorded before the outage").unwrap();
    let (code, _, err) = d.kekctl(&["seal", input.to_str().unwrap(), sealed.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    // The primary's region goes dark; nothing of this key pair is cached.
    proxy.set_for_region(Fault::BlackHole, REGION).await;
    let (code, _, err) = d.kekctl(&["open", sealed.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0, "open through the backup: {err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"a call recorded before the outage"
    );
    let s: StatusView = c.status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded);
    let f = s.kms_fallback.expect("status says a backup served");
    assert_eq!(f.served_by, backup);
    assert!(f.primary_error.contains("Decrypt"), "{}", f.primary_error);
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kekd_kms_backup_decrypts_total{")
                && l.contains(&backup)
                && l.ends_with(" 1")),
        "{metrics}"
    );
    let faulted = proxy.faulted();
    assert!(faulted > 0, "the primary was really asked and black-holed");

    // Right after, another key pair's recording goes to the backup first:
    // no second wait for the primary's timeout.
    let (input2, sealed2, out2) = (dir.join("b.raw"), dir.join("b.rec"), dir.join("b.out"));
    std::fs::write(&input2, b"a second call").unwrap();
    let (code, _, err) = d.kekctl(&[
        "seal",
        "--public-key",
        older_pem.to_str().unwrap(),
        input2.to_str().unwrap(),
        sealed2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = d.kekctl(&["open", sealed2.to_str().unwrap(), out2.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out2).unwrap(), b"a second call");
    assert_eq!(proxy.faulted(), faulted, "the primary was not asked again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_denies_access_is_reported_never_masked_by_a_backup() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (d, _) = daemon_with_backup(&moto, &proxy).await;
    let dir = d.dir.path();
    let (input, sealed, out) = (dir.join("c.raw"), dir.join("c.rec"), dir.join("c.out"));
    std::fs::write(&input, b"denied").unwrap();
    let (code, _, err) = d.kekctl(&["seal", input.to_str().unwrap(), sealed.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    proxy.set_for_region(Fault::access_denied(), REGION).await;
    let (code, _, err) = d.kekctl(&["open", sealed.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("AccessDenied") || err.contains("access"),
        "{err}"
    );
    assert!(!out.exists());
    let s: StatusView = d.client().status().await.unwrap();
    assert!(s.kms_fallback.is_none(), "no silent fallback on a refusal");
}

#[tokio::test(flavor = "multi_thread")]
async fn rewrap_upgrades_a_v1_history_and_every_key_pair_decrypts_under_each_key() {
    let moto = Moto::start().await;
    let (_, primary) = moto.create_key("kekd-v1").await;
    let (backup, _) = moto.create_key_in(BACKUP_REGION, "kekd-v1-backup").await;
    let mut d = TestDaemon::start(&moto, |dir| kms_config(dir, &primary, "")).await;
    d.client().rotate().await.unwrap();
    let ids = d.history_ids().await;
    for id in &ids {
        assert_eq!(
            d.client().envelope(id).await.unwrap().envelope.format,
            ENVELOPE_V1
        );
    }
    // Restart with a backup key: new key pairs get it; rewrap adds it to
    // the existing ones, proving each before it is stored.
    d.stop().await;
    std::fs::write(&d.config, with_backup(d.dir.path(), &primary, &backup)).unwrap();
    d.spawn();
    d.wait_active().await;
    let (code, out, err) = d.kekctl(&["rewrap"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = d.kekctl(&["rewrap", "--json"]);
    assert_eq!(code, 0, "{err}");
    let done: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(
        done["rewrapped"], 0,
        "a second rewrap changes nothing: {out}"
    );
    assert_eq!(done["skipped"], ids.len(), "{out}");
    for id in &ids {
        let export = d.client().envelope(id).await.unwrap();
        assert_eq!(export.envelope.format, ENVELOPE_V2, "{id}");
        let primary_arn = export.envelope.wrapping_key_arn.clone();
        assert_decrypts_under(&moto, &export, &primary_arn).await;
        assert_decrypts_under(&moto, &export, &backup).await;
    }
    // Break-glass with the backup key alone.
    let file = d.dir.path().join("export.json");
    let (code, _, err) = d.kekctl(&["export", &ids[0], "--out", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("wrote the envelope of {} to", ids[0])),
        "--out says what it wrote, as public-key --out does: {err}"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/decrypt-envelope.py");
    let (code, pem, err) = run(std::process::Command::new(moto_python())
        .arg(script)
        .arg(&file)
        .arg("--key")
        .arg(&backup)
        .envs(moto_env(&moto)));
    assert_eq!(code, 0, "{err}");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_changes_the_backup_keys_adds_and_drops_wrappings() {
    let moto = Moto::start().await;
    let (_, primary) = moto.create_key("kekd-reload").await;
    let (backup, _) = moto
        .create_key_in(BACKUP_REGION, "kekd-reload-backup")
        .await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &primary, "")).await;
    d.client().rotate().await.unwrap();
    let formats = || async {
        let mut out = Vec::new();
        for id in d.history_ids().await {
            let e = d.client().envelope(&id).await.unwrap().envelope;
            out.push((e.format, e.backups.len()));
        }
        out
    };
    // Add the backup: proven by the reload's round trip, then every key
    // pair re-wrapped in the background.
    std::fs::write(&d.config, with_backup(d.dir.path(), &primary, &backup)).unwrap();
    d.signal(libc::SIGHUP);
    wait_for(
        Duration::from_secs(60),
        "every key pair wrapped under the backup too",
        || async {
            let f = formats().await;
            f.iter()
                .all(|(format, n)| format == ENVELOPE_V2 && *n == 1)
                .then_some(())
        },
    )
    .await;
    for id in d.history_ids().await {
        let export = d.client().envelope(&id).await.unwrap();
        assert_decrypts_under(&moto, &export, &backup).await;
    }
    // Drop it again: the wrappings go, v1 again.
    std::fs::write(&d.config, kms_config(d.dir.path(), &primary, "")).unwrap();
    d.signal(libc::SIGHUP);
    wait_for(
        Duration::from_secs(60),
        "the backup wrappings dropped",
        || async {
            let f = formats().await;
            f.iter()
                .all(|(format, n)| format == ENVELOPE_V1 && *n == 0)
                .then_some(())
        },
    )
    .await;
}
