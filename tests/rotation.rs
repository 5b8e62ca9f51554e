//! The daemon against moto's KMS: initial key pair, Change Key Now by signal
//! and by `kekctl rotate`, history, decryptability, restart.

use crate::harness::*;
use kekd::api::views::{ExportView, KeyPairView, PublicKeyView, ServiceState, StatusView};
use kekd::domain::{KeyState, Reason};
use std::time::Duration;

async fn daemon(moto: &Moto, alias: &str, store: Backend) -> (TestDaemon, String) {
    let (key_arn, alias_arn) = moto.create_key(alias).await;
    let d = TestDaemon::start(moto, |dir| store.config(moto, dir, &alias_arn, "")).await;
    (d, key_arn)
}

crate::on_both_stores! {
    #[tokio::test(flavor = "multi_thread")]
    async fn initial_key_pair_is_active_and_wrapped_by_the_key_arn_behind_the_alias(store: Backend) {
        let moto = Moto::start().await;
        let (d, key_arn) = daemon(&moto, "kekd-initial", store).await;
        let s: StatusView = d.client().status().await.unwrap();
        assert_eq!(s.state, ServiceState::Ok);
        assert!(s.last_error.is_none());
        let h = d.history().await;
        assert_eq!(h.keypairs.len(), 1);
        let k = &h.keypairs[0];
        assert_eq!(k.state, KeyState::Active);
        assert_eq!(k.reason, Reason::Initial);
        assert_eq!(
            k.wrapping_key_arn, key_arn,
            "the key ARN KMS reports, not the alias"
        );
        assert!(k.wrapping_key_arn.contains(":key/"));
        assert_eq!(s.active_key_id.as_deref(), Some(k.id.as_str()));
        let p: PublicKeyView = d.client().public_key().await.unwrap();
        assert_eq!(p.id, k.id);
        assert_eq!(
            kekd::keypair::key_pair_id(&pem_der(&p.pem)),
            p.id,
            "id derives from the public key"
        );
        // Timestamps are RFC 3339 UTC on the wire.
        let (_, body) = d
            .client()
            .raw(hyper::Method::GET, kekd::api::paths::KEYPAIRS)
            .await
            .unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let created = raw["keypairs"][0]["created_at"].as_str().unwrap();
        assert!(
            created.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
    }
}

crate::on_both_stores! {
    #[tokio::test(flavor = "multi_thread")]
    async fn sigusr1_and_kekctl_rotate_make_new_active_key_pairs_in_order(store: Backend) {
        let moto = Moto::start().await;
        let (d, _) = daemon(&moto, "kekd-rotate", store).await;
        let first = d.wait_active().await.active_key_id.unwrap();

        d.signal(libc::SIGUSR1);
        let second = wait_for(
            Duration::from_secs(30),
            "rotation after SIGUSR1",
            || async {
                let s: StatusView = d.client().status().await.ok()?;
                s.active_key_id.filter(|id| *id != first)
            },
        )
        .await;

        let (code, out, err) = d.kekctl(&["rotate", "--json"]);
        assert_eq!(code, 0, "{err}");
        let third: KeyPairView = serde_json::from_str(&out).unwrap();
        assert_ne!(third.id, second);
        assert_eq!(third.state, KeyState::Active);

        let h = d.history().await;
        let ids: Vec<&str> = h.keypairs.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(
            ids,
            [third.id.as_str(), second.as_str(), first.as_str()],
            "newest first"
        );
        let states: Vec<KeyState> = h.keypairs.iter().map(|k| k.state).collect();
        assert_eq!(
            states,
            [KeyState::Active, KeyState::Retired, KeyState::Retired]
        );
        let reasons: Vec<Reason> = h.keypairs.iter().map(|k| k.reason).collect();
        assert_eq!(
            reasons,
            [Reason::ChangeKeyNow, Reason::ChangeKeyNow, Reason::Initial]
        );
        for k in &h.keypairs[1..] {
            assert!(k.retired_at.is_some() && k.activated_at.is_some());
        }
        // --limit and the table.
        let (code, out, _) = d.kekctl(&["history", "--limit", "2"]);
        assert_eq!(code, 0);
        assert!(
            out.contains(&third.id) && out.contains(&second) && !out.contains(&first),
            "{out}"
        );
        assert!(
            out.contains("change-key-now") && out.contains("retired"),
            "{out}"
        );
    }
}

crate::on_both_stores! {
    /// kekd keeps its last answer for the newest history page while the
    /// store is unchanged: the page after a write must show it — the new
    /// key pair first, the one it replaced retired — and a page of another
    /// size is its own answer.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_newest_history_page_shows_a_rotation_at_once(store: Backend) {
        let moto = Moto::start().await;
        let (d, _) = daemon(&moto, "kekd-newest-page", store).await;
        let first = d.wait_active().await.active_key_id.unwrap();
        let c = d.client();
        let before = c.history(20, None).await.unwrap();
        assert_eq!(c.history(20, None).await.unwrap().keypairs, before.keypairs);
        assert_eq!(before.keypairs.len(), 1);
        assert_eq!(before.keypairs[0].state, KeyState::Active);

        let second = c.rotate().await.unwrap();
        let after = c.history(20, None).await.unwrap();
        let seen: Vec<(&str, KeyState)> = after
            .keypairs
            .iter()
            .map(|k| (k.id.as_str(), k.state))
            .collect();
        assert_eq!(
            seen,
            [
                (second.id.as_str(), KeyState::Active),
                (first.as_str(), KeyState::Retired)
            ]
        );
        let one = c.history(1, None).await.unwrap();
        assert_eq!(one.keypairs.len(), 1);
        assert_eq!(one.keypairs[0].id, second.id);
        assert_eq!(one.next_cursor.as_deref(), Some(second.id.as_str()));
    }
}

crate::on_both_stores! {
    #[tokio::test(flavor = "multi_thread")]
    async fn every_stored_private_key_decrypts_through_kms_and_matches_its_public_key(store: Backend) {
        let moto = Moto::start().await;
        let (d, _) = daemon(&moto, "kekd-decrypt", store).await;
        d.client().rotate().await.unwrap();
        d.client().rotate().await.unwrap();
        let kms = moto.kms();
        let h = d.history().await;
        assert_eq!(h.keypairs.len(), 3);
        for k in &h.keypairs {
            let (code, out, err) = d.kekctl(&["export", &k.id]);
            assert_eq!(code, 0, "{err}");
            let export: ExportView = serde_json::from_str(&out).unwrap();
            let secrets = recover(&kms, &export).await;
            assert_eq!(
                public_der_of(&secrets.private_pkcs8),
                pem_der(&k.public_key_pem),
                "{}",
                k.id
            );
            assert_eq!(
                export.envelope.encryption_context.as_map()["organization-id"],
                "acme-test"
            );
            assert_eq!(
                export.envelope.encryption_context.as_map()["key-pair-id"],
                k.id
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kms_refuses_a_wrong_encryption_context() {
    let moto = Moto::start().await;
    let (d, _) = daemon(&moto, "kekd-context", Backend::Redb).await;
    let id = d.wait_active().await.active_key_id.unwrap();
    let export: ExportView = d.client().envelope(&id).await.unwrap();
    let mut ctx: std::collections::HashMap<String, String> = export
        .envelope
        .encryption_context
        .as_map()
        .clone()
        .into_iter()
        .collect();
    ctx.insert("organization-id".into(), "someone-else".into());
    let err = moto
        .kms()
        .decrypt()
        .key_id(&export.envelope.wrapping_key_arn)
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(
            export.envelope.encrypted_data_key.clone(),
        ))
        .set_encryption_context(Some(ctx))
        .send()
        .await
        .expect_err("KMS must refuse another organization's context");
    let code = aws_sdk_kms::error::ProvideErrorMetadata::code(&err)
        .unwrap_or_default()
        .to_string();
    assert_eq!(code, "InvalidCiphertextException");
}

crate::on_both_stores! {
    #[tokio::test(flavor = "multi_thread")]
    async fn restart_keeps_every_key_pair_and_does_not_rotate(store: Backend) {
        let moto = Moto::start().await;
        let (mut d, _) = daemon(&moto, "kekd-restart", store).await;
        d.client().rotate().await.unwrap();
        let before = d.history().await.keypairs;
        let active = d.wait_active().await.active_key_id;
        let after_status = d.restart().await;
        assert_eq!(after_status.active_key_id, active);
        assert_eq!(d.history().await.keypairs, before);
        let kms = moto.kms();
        for k in &before {
            d.assert_decrypts(&kms, &k.id, &k.public_key_pem).await;
        }
    }
}

crate::on_both_stores! {
    #[tokio::test(flavor = "multi_thread")]
    async fn a_signal_burst_is_coalesced_and_the_daemon_stays_responsive(store: Backend) {
        let moto = Moto::start().await;
        let (d, _) = daemon(&moto, "kekd-burst", store).await;
        // 1,000 signals as fast as we can send them (well under a second).
        let mark = d.log_mark();
        for _ in 0..1000 {
            d.signal(libc::SIGUSR1);
        }
        // Status answers while the burst is being handled.
        let s: StatusView = d.client().status().await.unwrap();
        assert!(s.active_key_id.is_some());
        // Every queued request has been answered once the engine idles.
        wait_for(Duration::from_secs(60), "the burst to be handled", || async {
            let s: StatusView = d.client().status().await.ok()?;
            (!s.rotation_in_progress).then_some(())
        })
        .await;
        d.wait_engine_idle(mark).await;
        let s = d.wait_active().await;
        let n = s.key_pairs.total;
        assert!(
            (2..=4).contains(&n),
            "1,000 signals must coalesce into a few rotations, got {} key pairs",
            n
        );
        assert_eq!(s.key_pairs.by_state.get(&KeyState::Active), Some(&1));
    }
}

/// README "Break-glass": the shipped script recovers a private key from an
/// export with only boto3 and cryptography, so the documented format is
/// complete.
#[tokio::test(flavor = "multi_thread")]
async fn break_glass_script_recovers_a_private_key_with_only_an_aws_sdk() {
    let moto = Moto::start().await;
    let (d, _) = daemon(&moto, "kekd-breakglass", Backend::Redb).await;
    let id = d.wait_active().await.active_key_id.unwrap();
    let export = d.dir.path().join("env.json");
    let (code, _, err) = d.kekctl(&["export", &id, "--out", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = std::process::Command::new(moto_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/decrypt-envelope.py"
        ))
        .arg(&export)
        .envs(moto_env(&moto))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem_text = String::from_utf8(out.stdout).unwrap();
    let private = pem::parse(&pem_text).unwrap();
    assert_eq!(private.tag(), "PRIVATE KEY");
    let p: PublicKeyView = d.client().public_key().await.unwrap();
    assert_eq!(public_der_of(private.contents()), pem_der(&p.pem));
}

/// A rotation missed while the daemon was down runs once at start (reason
/// `catch-up`), however many periods were missed, and not again on the
/// next restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_missed_rotation_is_caught_up_exactly_once() {
    use kekd::domain::Schedule;
    use kekd::store::{KeyStore, RedbStore};
    let moto = Moto::start().await;
    let (_, alias_arn) = moto.create_key("kekd-catchup").await;
    let mut d = TestDaemon::start(&moto, |dir| {
        kms_config(dir, &alias_arn, "").replace("cadence = \"never\"", "cadence = \"daily\"")
    })
    .await;
    let s = d.wait_active().await;
    assert!(s.next_rotation_at.unwrap() > chrono::Utc::now());
    assert!(d.stop().await.success());
    {
        // Simulate five days of downtime: the next rotation was due 4 days ago.
        let store = RedbStore::open(&d.store_path()).await.unwrap();
        let now = chrono::Utc::now();
        store
            .set_schedule(&Schedule {
                last_rotation_at: Some(now - chrono::Duration::days(5)),
                next_rotation_at: Some(now - chrono::Duration::days(4)),
            })
            .await
            .unwrap();
    }
    let mark = d.log_mark();
    d.spawn();
    let s = wait_for(Duration::from_secs(30), "catch-up rotation", || async {
        let s: StatusView = d.client().status().await.ok()?;
        (s.key_pairs.total == 2 && !s.rotation_in_progress).then_some(s)
    })
    .await;
    // The engine has settled: any further catch-up would have come first.
    d.wait_engine_idle(mark).await;
    let h = d.history().await;
    assert_eq!(h.keypairs.len(), 2, "one catch-up, not one per missed day");
    assert_eq!(h.keypairs[0].reason, Reason::CatchUp);
    assert!(
        s.next_rotation_at.unwrap() > chrono::Utc::now(),
        "next rotation is in the future again"
    );
    let mark = d.log_mark();
    d.restart().await;
    d.wait_engine_idle(mark).await;
    assert_eq!(
        d.history().await.keypairs.len(),
        2,
        "no rotation on a restart"
    );
}

/// SIGTERM during a rotation: the rotation finishes (its caller gets the new
/// key pair), then the daemon exits 0, and the new key pair is the active
/// one after a restart.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_rotation_in_flight_then_exits_0() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-drain").await;
    // RSA-4096 generation takes long enough to be caught in flight.
    let mut d = TestDaemon::start(&moto, |dir| {
        kms_config(dir, &alias, "").replace("key_bits = 2048", "key_bits = 4096")
    })
    .await;
    let rotate = {
        let c = d.client();
        tokio::spawn(async move { c.rotate().await })
    };
    wait_for(
        Duration::from_secs(10),
        "the rotation to be in flight",
        || async {
            let s: StatusView = d.client().status().await.ok()?;
            s.rotation_in_progress.then_some(())
        },
    )
    .await;
    d.signal(libc::SIGTERM);
    let new = rotate
        .await
        .unwrap()
        .expect("the in-flight rotation completes and answers");
    let st = d.stop_wait().await;
    assert!(st.success(), "exit status {st}");
    assert!(d.log_text().contains("SIGTERM"));
    d.spawn();
    let s = d.wait_active().await;
    assert_eq!(s.active_key_id.as_deref(), Some(new.id.as_str()));
}

crate::on_both_stores! {
    /// `retention`: retired key pairs retired longer ago than the retention
    /// period are pruned (audited); the active one and recently retired
    /// ones are kept. Without `retention` nothing is pruned (every other
    /// test).
    #[tokio::test(flavor = "multi_thread")]
    async fn retention_prunes_only_key_pairs_retired_longer_ago(store: Backend) {
        let moto = Moto::start().await;
        let (_, alias) = moto.create_key("kekd-retention").await;
        let d = TestDaemon::start(&moto, |dir| {
            store.config(&moto, dir, &alias, "retention = \"2s\"")
                + "\n[overrides]\nallow_short_retention = true\n"
        })
        .await;
        let first = d.wait_active().await.active_key_id.unwrap();
        let second: KeyPairView = d.client().rotate().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let third: KeyPairView = d.client().rotate().await.unwrap();
        let ids: Vec<String> = d.history_ids().await;
        assert_eq!(
            ids,
            [third.id.clone(), second.id.clone()],
            "{first} (retired > 2 s ago) pruned; {} retired just now, kept",
            second.id
        );
        let s: StatusView = d.client().status().await.unwrap();
        let audit = std::fs::read_to_string(&s.audit.path).unwrap();
        assert!(audit
            .lines()
            .any(|l| l.contains("\"type\":\"prune\"") && l.contains(&first)));
    }
}

crate::on_both_stores! {
    /// `kekctl history --all` follows the cursor through the whole history,
    /// beyond one page's 1,000 key pairs, newest first and without repeats.
    #[tokio::test(flavor = "multi_thread")]
    async fn history_all_follows_the_cursor_through_the_whole_history(store: Backend) {
        let moto = Moto::start().await;
        let (_, alias) = moto.create_key("kekd-history-all").await;
        let mut d = TestDaemon::launch_only(&moto, |dir| store.config(&moto, dir, &alias, ""));
        let ids = match store {
            Backend::Redb => store_with_history(&d.store_path(), 2_500).await,
            Backend::DynamoDb => {
                let text = std::fs::read_to_string(&d.config).unwrap();
                let table = toml::from_str::<toml::Value>(&text).unwrap()["store"]["table"]
                    .as_str()
                    .unwrap()
                    .to_string();
                write_history(&*fleet::table_store(&moto, &table).await, 2_500).await
            }
        };
        d.spawn();
        let s = d.wait_active().await;
        assert_eq!(s.active_key_id.as_deref(), ids.last().map(String::as_str));
        assert_eq!(s.key_pairs.total, 2_500);
        let (code, out, err) = d.kekctl(&["history", "--all", "--json"]);
        assert_eq!(code, 0, "{err}");
        let all: kekd::api::views::KeyPairList = serde_json::from_str(&out).unwrap();
        let got: Vec<String> = all.keypairs.into_iter().map(|k| k.id).collect();
        let want: Vec<String> = ids.into_iter().rev().collect();
        assert_eq!(got, want);
        assert!(all.next_cursor.is_none());
    }
}
