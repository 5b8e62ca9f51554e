//! The invariants (docs/design.md) against the real binary and moto:
//! I1 (no public key before its private key is stored and verified),
//! I2 (kill -9 at any instant leaves a consistent, decryptable store),
//! I3 (no secret in logs, API answers or on disk),
//! I5 (bad input: corrupt records, unknown endpoints, bad queries).

use crate::harness::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kekd::api::views::{ExportView, KeyPairView, PublicKeyView, ServiceState, StatusView};
use kekd::domain::KeyState;
use kekd::store::{KeyStore, RedbStore};
use std::collections::HashSet;
use std::time::Duration;

async fn daemon(moto: &Moto, alias: &str, store: Backend) -> TestDaemon {
    let (_, alias_arn) = moto.create_key(alias).await;
    TestDaemon::start(moto, |dir| store.config(moto, dir, &alias_arn, "")).await
}

crate::on_both_stores! {
    /// I1: a poller sees every public key the daemon serves during a series of
    /// rotations; each one must already be stored as active (never pending,
    /// never missing) and its stored private key must decrypt and match.
    #[tokio::test(flavor = "multi_thread")]
    async fn i1_no_public_key_is_served_before_it_is_stored_and_verified(store: Backend) {
        let moto = Moto::start().await;
        let d = daemon(&moto, "kekd-i1", store).await;
        let client = d.client();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = HashSet::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let p: PublicKeyView = client.public_key().await.unwrap();
                    if seen.insert(p.id.clone()) {
                        let k: KeyPairView = client.keypair(&p.id).await.unwrap();
                        assert_ne!(
                            k.state,
                            KeyState::Pending,
                            "served key {} is still pending",
                            p.id
                        );
                        assert!(k.activated_at.is_some());
                    }
                }
                seen
            })
        };
        for _ in 0..4 {
            client.rotate().await.unwrap();
            d.signal(libc::SIGUSR1);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        d.wait_active().await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = poller.await.unwrap();
        assert!(seen.len() >= 4, "the poller saw {} keys", seen.len());
        let kms = moto.kms();
        for id in seen {
            let k: KeyPairView = client.keypair(&id).await.unwrap();
            d.assert_decrypts(&kms, &id, &k.public_key_pem).await;
        }
    }
}

/// I2: kill -9 at random instants while rotations run; after each crash the
/// store has exactly one active key pair and everything decrypts; the
/// daemon then starts from it.
#[tokio::test(flavor = "multi_thread")]
async fn i2_kill_9_at_any_instant_leaves_a_consistent_store() {
    let moto = Moto::start().await;
    let mut d = daemon(&moto, "kekd-i2", Backend::Redb).await;
    let kms = moto.kms();
    // Delays spread over a rotation's phases (generate, GenerateDataKey,
    // commit, Decrypt, activate): a few ms to a few hundred.
    let delays = [0u64, 7, 23, 41, 66, 90, 130, 180, 260, 400];
    for (round, ms) in delays.iter().enumerate() {
        d.signal(libc::SIGUSR1);
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        d.kill9();
        let n = assert_store_consistent(&d.store_path(), &kms).await.len();
        assert!(n >= 1, "round {round}");
        d.spawn();
        d.wait_active().await;
    }
    let h = d.history().await;
    assert_eq!(
        h.keypairs
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count(),
        1
    );
    assert!(
        h.keypairs.iter().all(|k| k.state != KeyState::Pending),
        "leftover pending key pairs are retired at start"
    );
    assert!(h.corrupt_records.is_empty());
}

/// I3: after rotations, no secret — private key or data key, in raw, hex,
/// base64 or PEM form — appears in the log, any API answer, or the store
/// file.
#[tokio::test(flavor = "multi_thread")]
async fn i3_no_secret_in_logs_api_answers_or_on_disk() {
    let moto = Moto::start().await;
    let d = daemon(&moto, "kekd-i3", Backend::Redb).await;
    d.client().rotate().await.unwrap();
    let mark = d.log_mark();
    d.signal(libc::SIGUSR1);
    d.wait_log(mark, "rotation started").await;
    d.wait_engine_idle(mark).await;

    let mut answers = String::new();
    for path in ["/v1/status", "/v1/keypairs?limit=1000", "/v1/public-key"] {
        let (_, body) = d.client().raw(hyper::Method::GET, path).await.unwrap();
        answers.push_str(&String::from_utf8_lossy(&body));
    }
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["history"],
        &["history", "--json"],
    ] {
        answers.push_str(&d.kekctl(args).1);
    }
    let kms = moto.kms();
    let h = d.history().await;
    let mut secrets = Vec::new();
    for k in &h.keypairs {
        let (_, body) = d
            .client()
            .raw(
                hyper::Method::GET,
                &format!("/v1/keypairs/{}/envelope", k.id),
            )
            .await
            .unwrap();
        answers.push_str(&String::from_utf8_lossy(&body));
        let export: ExportView = serde_json::from_slice(&body).unwrap();
        let s = recover(&kms, &export).await;
        secrets.push(s.data_key);
        secrets.push(s.private_pkcs8);
    }
    let log = d.log_text();
    let disk = std::fs::read(d.store_path()).unwrap();
    for secret in &secrets {
        // A distinctive slice of each secret, in every encoding we can think of.
        let mid = secret.len() / 2;
        let slice = &secret[mid - 12..mid + 12];
        for form in [
            hex::encode(slice),
            B64.encode(slice),
            B64.encode(&secret[..])[8..40].to_string(),
        ] {
            assert!(!log.contains(&form), "secret in the log");
            assert!(!answers.contains(&form), "secret in an API answer");
        }
        assert!(
            !disk.windows(slice.len()).any(|w| w == slice),
            "secret on disk unencrypted"
        );
    }
    assert!(!log.contains("PRIVATE KEY"));
    assert!(!answers.contains("PRIVATE KEY"));
}

/// I5: a record that does not decode is reported by id, skipped and kept;
/// the daemon serves the rest.
#[tokio::test(flavor = "multi_thread")]
async fn i5_a_corrupt_store_record_is_reported_skipped_and_kept() {
    let moto = Moto::start().await;
    let mut d = daemon(&moto, "kekd-i5", Backend::Redb).await;
    let active = d.wait_active().await.active_key_id.unwrap();
    assert!(d.stop().await.success());
    {
        let db = redb::Database::create(d.store_path()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("keypairs");
            let mut t = txn.open_table(def).unwrap();
            t.insert("kek-00000000deadbeef", b"\x00garbage{".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    d.spawn();
    d.wait_active().await;
    // Found by the scan that runs beside the API after start.
    let s = wait_for(Duration::from_secs(30), "the corrupt record", || async {
        let s = d.client().status().await.ok()?;
        (!s.corrupt_records.is_empty()).then_some(s)
    })
    .await;
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    assert_eq!(s.corrupt_records.len(), 1);
    assert_eq!(s.corrupt_records[0].id, "kek-00000000deadbeef");
    let h = d.history().await;
    assert_eq!(h.keypairs.len(), 1, "the good record is still served");
    assert_eq!(h.corrupt_records[0].id, "kek-00000000deadbeef");
    let (status, body) = d
        .client()
        .raw(hyper::Method::GET, "/v1/keypairs/kek-00000000deadbeef")
        .await
        .unwrap();
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("\"corrupt_record\""));
    assert!(
        d.log_text().contains("kek-00000000deadbeef"),
        "the log names the record"
    );
    // Rotation still works, and the corrupt record is never deleted.
    d.client().rotate().await.unwrap();
    let (_, out, _) = d.kekctl(&["status"]);
    assert!(
        out.contains("CORRUPT RECORD") && out.contains("kek-00000000deadbeef"),
        "{out}"
    );
    assert!(d.stop().await.success());
    let store = RedbStore::open(&d.store_path()).await.unwrap();
    assert!(matches!(
        store.get("kek-00000000deadbeef").await,
        Err(kekd::store::StoreError::Corrupt { .. })
    ));
}

/// I5: unknown paths, wrong methods and bad queries get JSON errors, and the
/// daemon keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn i5_bad_requests_get_json_errors() {
    let moto = Moto::start().await;
    let d = daemon(&moto, "kekd-badreq", Backend::Redb).await;
    let c = d.client();
    let cases = [
        (hyper::Method::GET, "/v1/nope", 404, "not_found"),
        (hyper::Method::GET, "/", 404, "not_found"),
        (
            hyper::Method::DELETE,
            "/v1/status",
            405,
            "method_not_allowed",
        ),
        (hyper::Method::GET, "/v1/rotate", 405, "method_not_allowed"),
        (
            hyper::Method::GET,
            "/v1/keypairs?limit=0",
            400,
            "invalid_query",
        ),
        (
            hyper::Method::GET,
            "/v1/keypairs?limit=x",
            400,
            "invalid_query",
        ),
        (
            hyper::Method::GET,
            "/v1/keypairs?cursor=kek-unknown",
            400,
            "invalid_query",
        ),
        (
            hyper::Method::GET,
            "/v1/keypairs/kek-0000000000000000",
            404,
            "not_found",
        ),
    ];
    for (m, path, status, code) in cases {
        let (s, body) = c.raw(m.clone(), path).await.unwrap();
        assert_eq!(s.as_u16(), status, "{m} {path}");
        let v: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{m} {path}: not JSON"));
        assert_eq!(v["error"]["code"], code, "{m} {path}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let s: StatusView = c.status().await.unwrap();
    assert_eq!(s.state, ServiceState::Ok);
    // Pagination walks the whole history with a cursor.
    c.rotate().await.unwrap();
    c.rotate().await.unwrap();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = c.history(1, cursor.as_deref()).await.unwrap();
        ids.extend(page.keypairs.into_iter().map(|k| k.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let all: Vec<String> = d.history_ids().await;
    assert_eq!(ids, all);
}

/// Regression (the store never recovered after a write error): a rotation
/// that fails because the store cannot grow (a full disk, here a file size
/// limit on the daemon) leaves the active key pair active; once there is
/// room again the next rotation works without a restart, and no stale
/// `pending` key pair lingers in the history.
#[tokio::test(flavor = "multi_thread")]
async fn kekd_rotates_again_once_a_full_disk_has_room() {
    let moto = Moto::start().await;
    let d = daemon(&moto, "kekd-store-full", Backend::Redb).await;
    let c = d.client();
    let first = d.wait_active().await.active_key_id.unwrap();
    // Room for the audit trail and the log, not for the store's pages.
    let audit = std::fs::metadata(c.status().await.unwrap().audit.path).unwrap();
    d.limit_file_size(Some(audit.len().max(16 * 1024) + 4096));
    let e = c.rotate().await.unwrap_err();
    assert!(e.to_string().contains("I/O error"), "{e}");
    assert_eq!(c.public_key().await.unwrap().id, first, "still served");
    d.limit_file_size(None);
    let second = c.rotate().await.expect("the store works again");
    assert_ne!(second.id, first);
    let h = d.history().await;
    assert!(
        h.keypairs.iter().all(|k| k.state != KeyState::Pending),
        "{:?}",
        h.keypairs
    );
    assert_eq!(
        h.keypairs
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count(),
        1
    );
}
