//! Fleet mode: several real kekd processes sharing one DynamoDB table on
//! moto, faults through the proxy in front of DynamoDB.

use crate::harness::fleet::{self, create_table, kekctl_aws, member, start_member, table_store};
use crate::harness::*;
use kekd::api::views::{PublicKeyView, ServiceState, StatusView};
use kekd::domain::KeyState;
use kekd::store::KeyStore;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// States of every key pair in the table, by id.
async fn states(store: &dyn KeyStore) -> HashMap<String, KeyState> {
    kekd::store::decodable(store.list().await.unwrap())
        .into_iter()
        .map(|r| (r.id, r.state))
        .collect()
}

/// The first member on "kekd-fleet", with crash points `failpoints` (its
/// initial rotation should pass them: `1*off->…`); it made the initial key
/// pair when this returns.
async fn holder_that_fails(moto: &Moto, kms: &str, failpoints: &str) -> TestDaemon {
    holder_that_fails_with(moto, kms, failpoints, fleet::REFRESH).await
}

/// [`holder_that_fails`] re-reading the fleet's head every `refresh`.
async fn holder_that_fails_with(
    moto: &Moto,
    kms: &str,
    failpoints: &str,
    refresh: &str,
) -> TestDaemon {
    let mut a = fleet::member_with(moto, kms, "kekd-fleet", &moto.endpoint, refresh);
    a.env.push(("FAILPOINTS".into(), failpoints.into()));
    a.spawn();
    a.wait_active().await;
    a
}

async fn served(d: &TestDaemon) -> Option<String> {
    d.client()
        .public_key()
        .await
        .ok()
        .map(|p: PublicKeyView| p.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_rotate_once_when_all_are_asked_at_the_same_instant() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    create_table(&moto, "kekd-fleet");
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(member(&moto, &kms, "kekd-fleet", &moto.endpoint));
    }
    // All three start on the empty table at once: one initial key pair.
    for m in &mut members {
        m.spawn();
    }
    for m in &members {
        m.wait_active().await;
    }
    let store = table_store(&moto, "kekd-fleet").await;
    assert_eq!(states(&*store).await.len(), 1, "one initial key pair");
    let first = served(&members[0]).await.unwrap();

    // A poller on all three sockets, while SIGUSR1 reaches all three.
    let sockets: Vec<_> = members.iter().map(|m| m.socket.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let clients: Vec<_> = sockets.iter().map(kekd::api::client::Client::new).collect();
            let mut seen = std::collections::HashSet::new();
            let (mut split_since, mut longest_split) = (None::<Instant>, Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut ids = Vec::new();
                for c in &clients {
                    ids.push(c.public_key().await.unwrap().id);
                }
                seen.extend(ids.iter().cloned());
                if ids.iter().all(|i| *i == ids[0]) {
                    if let Some(t) = split_since.take() {
                        longest_split = longest_split.max(t.elapsed());
                    }
                } else {
                    split_since.get_or_insert_with(Instant::now);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (seen, longest_split)
        })
    };
    for m in &members {
        m.signal(libc::SIGUSR1);
    }
    let new = wait_for(
        Duration::from_secs(30),
        "all three to serve a new key",
        || async {
            let mut ids = Vec::new();
            for m in &members {
                ids.push(served(m).await?);
            }
            (ids.iter().all(|i| *i == ids[0]) && ids[0] != first).then(|| ids[0].clone())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, longest_split) = poller.await.unwrap();

    let states = states(&*store).await;
    assert_eq!(
        states.len(),
        2,
        "three simultaneous requests made exactly one new key pair: {states:?}"
    );
    assert_eq!(states[&new], KeyState::Active);
    assert_eq!(states[&first], KeyState::Retired);
    for id in &seen {
        assert!(
            matches!(states.get(id), Some(KeyState::Active | KeyState::Retired)),
            "{id} was served but was never active in the table ({:?})",
            states.get(id)
        );
    }
    // The refresh interval bounds how long members may disagree; the
    // slack covers the poller's own round trips on a loaded machine.
    let bound = humantime::parse_duration(fleet::REFRESH).unwrap() + Duration::from_secs(2);
    assert!(
        longest_split <= bound,
        "members served different keys for {longest_split:?} (bound {bound:?})"
    );
    let (code, out, err) = members[2].kekctl(&["test"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("check-store") && out.contains("dynamodb:kekd-fleet"),
        "{out}"
    );
    let s: StatusView = members[1].client().status().await.unwrap();
    assert_eq!(s.store.kind, "dynamodb");
    assert_eq!(s.store.location, "dynamodb:kekd-fleet");
    assert!(s.store.last_refresh_at.is_some());
    assert!(s.store.instance.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_killed_between_pending_and_activation_is_finished_by_another() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    create_table(&moto, "kekd-fleet");
    // A makes the initial key pair (the first pass of the crash point is
    // let through), then halts in its second rotation right after the
    // pending commit: lease held, nothing renewed, as a paused host.
    let mut a = holder_that_fails(&moto, &kms, "rotation-after-pending-commit=1*off->return").await;
    let b = start_member(&moto, &kms, "kekd-fleet", &moto.endpoint).await;
    let c = start_member(&moto, &kms, "kekd-fleet", &moto.endpoint).await;
    let first = served(&b).await.unwrap();

    a.signal(libc::SIGUSR1);
    wait_for(
        Duration::from_secs(30),
        "A to halt after its pending commit",
        || async { a.log_text().contains("failpoint reached").then_some(()) },
    )
    .await;
    a.kill9();
    let store = table_store(&moto, "kekd-fleet").await;
    let orphan = states(&*store)
        .await
        .into_iter()
        .find(|(_, s)| *s == KeyState::Pending)
        .map(|(id, _)| id)
        .expect("A's pending key pair is in the table");

    // B is asked while A's lease still runs: it waits, takes the lease
    // once it expired, supersedes the orphan and rotates.
    let (code, out, err) = b.kekctl(&["rotate"]);
    assert_eq!(code, 0, "kekctl rotate on B: {out}{err}");
    let new = wait_for(
        Duration::from_secs(30),
        "B and C to serve the new key",
        || async {
            let (kb, kc) = (served(&b).await?, served(&c).await?);
            (kb == kc && kb != first).then_some(kb)
        },
    )
    .await;
    let states = states(&*store).await;
    assert_eq!(states[&orphan], KeyState::Superseded, "{states:?}");
    assert_eq!(states[&new], KeyState::Active);
    assert_eq!(states[&first], KeyState::Retired);
    assert_eq!(states.len(), 3, "nothing lost, nothing extra: {states:?}");
    let orphan_record = store.get(&orphan).await.unwrap().unwrap();
    assert!(orphan_record.activated_at.is_none(), "never served");
    assert_consistent_but_superseded(&*store, &moto).await;
}

/// Every key pair decrypts through KMS and matches; exactly one active.
async fn assert_consistent_but_superseded(store: &dyn KeyStore, moto: &Moto) {
    assert_consistent(store, &moto.kms()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_cut_off_from_the_store_keeps_serving_and_recovers_by_itself() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    create_table(&moto, "kekd-fleet");
    let a = start_member(&moto, &kms, "kekd-fleet", &moto.endpoint).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let b = start_member(&moto, &kms, "kekd-fleet", &proxy.endpoint).await;
    let first = served(&b).await.unwrap();

    proxy.set(Fault::BlackHole).await;
    let (code, out, err) = a.kekctl(&["rotate"]);
    assert_eq!(code, 0, "rotate on A: {out}{err}");
    let new = served(&a).await.unwrap();
    assert_ne!(new, first);
    let s = wait_for(
        Duration::from_secs(30),
        "B to notice the outage",
        || async {
            let s: StatusView = b.client().status().await.ok()?;
            (s.state == ServiceState::Degraded).then_some(s)
        },
    )
    .await;
    assert!(s.store.unavailable_since.is_some());
    let metrics = b.client().metrics().await.unwrap();
    assert!(metrics.lines().any(|l| l == "kekd_store_up 0"), "{metrics}");
    let (_, table, _) = b.kekctl(&["status"]);
    assert!(table.contains("STORE UNAVAILABLE"), "{table}");
    let e = s.store.last_error.expect("the failure is shown");
    assert_eq!(e.kind.to_string(), "timeout", "{e:?}");
    // Meanwhile B answers at once with the last key it read as active.
    let started = Instant::now();
    assert_eq!(served(&b).await.unwrap(), first);
    let p = b.client().public_key().await.unwrap();
    assert_eq!(p.id, first);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "B answers from memory while its store is black-holed"
    );

    proxy.set(Fault::None).await;
    let s = wait_for(
        Duration::from_secs(60),
        "B to recover by itself",
        || async {
            let s: StatusView = b.client().status().await.ok()?;
            (s.state == ServiceState::Ok && s.active_key_id.as_deref() == Some(new.as_str()))
                .then_some(s)
        },
    )
    .await;
    assert!(s.store.unavailable_since.is_none());
    assert_eq!(served(&b).await.unwrap(), new);
    let metrics = b.client().metrics().await.unwrap();
    assert!(metrics.lines().any(|l| l == "kekd_store_up 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_copy_redb_to_dynamodb_and_back_is_identical_and_decrypts() {
    let (moto, mut d) = daemon_with_key("copy").await;
    d.kekctl(&["rotate"]);
    d.kekctl(&["rotate"]);
    d.stop().await;
    let redb = d.store_path();
    create_table(&moto, "kekd-copy");
    let from = format!("redb:{}", redb.display());
    let args = |from: &str, to: &str| {
        vec![
            "store".to_string(),
            "copy".into(),
            "--from".into(),
            from.to_string(),
            "--to".into(),
            to.to_string(),
            "--organization".into(),
            "acme-test".into(),
        ]
    };
    let run_copy = |from: &str, to: &str| {
        let a = args(from, to);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        kekctl_aws(&moto, &a)
    };
    let (code, out, err) = run_copy(&from, "dynamodb:kekd-copy");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("copied 3 key pairs"), "{out}");
    // A second copy into the now full table is refused, naming why.
    let (code, _, err) = run_copy(&from, "dynamodb:kekd-copy");
    assert_eq!(code, 1);
    assert!(err.contains("already holds 3 key pairs"), "{err}");

    let back = d.dir.path().join("back.redb");
    let (code, out, err) = run_copy("dynamodb:kekd-copy", &format!("redb:{}", back.display()));
    assert_eq!(code, 0, "{out}{err}");
    let original = kekd::store::RedbStore::open(&redb).await.unwrap();
    let copied = kekd::store::RedbStore::open(&back).await.unwrap();
    assert_eq!(
        kekd::store::decodable(original.list().await.unwrap()),
        kekd::store::decodable(copied.list().await.unwrap()),
        "identical after the round trip"
    );
    assert_eq!(
        original.schedule().await.unwrap(),
        copied.schedule().await.unwrap()
    );
    assert_eq!(
        original.summary().await.unwrap(),
        copied.summary().await.unwrap()
    );
    let table = table_store(&moto, "kekd-copy").await;
    assert_eq!(
        table.summary().await.unwrap(),
        original.summary().await.unwrap()
    );
    assert_consistent(&*table, &moto.kms()).await;
    assert_consistent(&copied, &moto.kms()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_member_refuses_to_start_on_a_missing_table_and_names_it() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    let mut d = member(&moto, &kms, "no-such-table", &moto.endpoint);
    // The Test round trip of the file says it first, writing nothing.
    let config = d.config.display().to_string();
    let (code, out, err) = kekctl_aws(&moto, &["test", "--config", &config]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("failed at check-store") && err.contains("table not found"),
        "{err}"
    );
    d.spawn();
    let st = d.stop_wait().await;
    assert!(!st.success());
    let log = d.log_text();
    assert!(
        log.contains("dynamodb:no-such-table") && log.contains("table not found"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_paused_past_its_lease_cannot_activate() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    create_table(&moto, "kekd-fleet");
    // A stalls for 6 s between proving its new key pair and activating it
    // (a paused VM, a long GC): its lease (2 s) runs out meanwhile. It
    // re-reads the head only every minute, so it learns of B's rotation
    // from its own rotation's end, not from a refresh. (Regression: A's
    // failed rotation was retried as a new Change Key Now and rotated a
    // second time, though B had answered the request.)
    let a = holder_that_fails_with(
        &moto,
        &kms,
        "rotation-after-verify=1*off->1*sleep(6000)",
        "60s",
    )
    .await;
    let b = start_member(&moto, &kms, "kekd-fleet", &moto.endpoint).await;
    let first = served(&b).await.unwrap();
    let store = table_store(&moto, "kekd-fleet").await;

    a.signal(libc::SIGUSR1);
    let stalled = wait_for(Duration::from_secs(30), "A's pending key pair", || async {
        states(&*store)
            .await
            .into_iter()
            .find(|(_, s)| *s == KeyState::Pending)
            .map(|(id, _)| id)
    })
    .await;
    // B takes the lease over once it expired and rotates.
    let (code, out, err) = b.kekctl(&["--json", "rotate"]);
    assert_eq!(code, 0, "rotate on B: {out}{err}");
    let new: kekd::api::views::KeyPairView = serde_json::from_str(&out).unwrap();
    assert_ne!(new.id, stalled);
    // A wakes up and must not activate its key pair.
    wait_for(
        Duration::from_secs(30),
        "A to give up its stale rotation",
        || async {
            let s: StatusView = a.client().status().await.ok()?;
            (!s.rotation_in_progress && s.active_key_id.as_deref() == Some(new.id.as_str()))
                .then_some(())
        },
    )
    .await;
    let states = states(&*store).await;
    assert_eq!(states[&stalled], KeyState::Superseded, "{states:?}");
    assert_eq!(states[&new.id], KeyState::Active);
    assert_eq!(states[&first], KeyState::Retired);
    assert_eq!(states.len(), 3, "{states:?}");
    assert_eq!(served(&a).await.unwrap(), new.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_to_a_new_kms_key_on_every_member_makes_one_key_pair_under_it() {
    let moto = Moto::start().await;
    let (_, alias_a) = moto.create_key("fleet-a").await;
    let (key_b, alias_b) = moto.create_key("fleet-b").await;
    create_table(&moto, "kekd-fleet");
    let a = start_member(&moto, &alias_a, "kekd-fleet", &moto.endpoint).await;
    let b = start_member(&moto, &alias_a, "kekd-fleet", &moto.endpoint).await;
    // Both members get the new key (an alias, as operators write it) and
    // reload one after the other, as a config rollout does.
    for m in [&a, &b] {
        let text = fleet::member_config(m.dir.path(), &alias_b, "kekd-fleet");
        std::fs::write(&m.config, text).unwrap();
        m.signal(libc::SIGHUP);
        wait_for(
            Duration::from_secs(30),
            "the reload and its key pair",
            || async {
                let s: StatusView = m.client().status().await.ok()?;
                let p = m.client().public_key().await.ok()?;
                let k = m.client().keypair(&p.id).await.ok()?;
                (s.last_reload.is_some() && !s.rotation_in_progress && k.wrapping_key_arn == key_b)
                    .then_some(())
            },
        )
        .await;
    }
    let store = table_store(&moto, "kekd-fleet").await;
    let all = kekd::store::decodable(store.list().await.unwrap());
    let under_b: Vec<_> = all.iter().filter(|r| r.wrapping_key_arn == key_b).collect();
    assert_eq!(
        under_b.len(),
        1,
        "one key pair under the new key for the fleet, not one per member: {:?}",
        all.iter()
            .map(|r| (&r.id, r.state, &r.wrapping_key_arn))
            .collect::<Vec<_>>()
    );
    assert_eq!(under_b[0].state, KeyState::Active);
    assert_eq!(served(&a).await, served(&b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_another_key_schema_is_refused_naming_the_schema() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    fleet::dynamodb(&moto)
        .create_table()
        .table_name("someone-elses")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // kekctl store init leaves it alone and says why.
    let (code, _, err) = kekctl_aws(&moto, &["store", "init", "--table", "someone-elses"]);
    assert_eq!(code, 1);
    assert!(err.contains("wrong key schema"), "{err}");
    let mut d = member(&moto, &kms, "someone-elses", &moto.endpoint);
    d.spawn();
    assert!(!d.stop_wait().await.success());
    let log = d.log_text();
    assert!(
        log.contains("dynamodb:someone-elses") && log.contains("wrong key schema"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_denied_by_dynamodb_says_so_and_keeps_serving() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    create_table(&moto, "kekd-fleet");
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let d = start_member(&moto, &kms, "kekd-fleet", &proxy.endpoint).await;
    let served_before = served(&d).await.unwrap();
    proxy.set(Fault::access_denied()).await;
    let s = wait_for(Duration::from_secs(30), "the refusal to show", || async {
        let s: StatusView = d.client().status().await.ok()?;
        s.store.last_error.is_some().then_some(s)
    })
    .await;
    assert_eq!(s.state, ServiceState::Degraded);
    let e = s.store.last_error.unwrap();
    assert_eq!(e.kind.to_string(), "access_denied", "{e:?}");
    assert_eq!(e.code.as_deref(), Some("AccessDeniedException"));
    assert!(e.request_id.is_some(), "the request id is kept: {e:?}");
    assert_eq!(served(&d).await.unwrap(), served_before);
    proxy.set(Fault::None).await;
    wait_for(Duration::from_secs(60), "recovery", || async {
        let s: StatusView = d.client().status().await.ok()?;
        (s.state == ServiceState::Ok).then_some(())
    })
    .await;
}

/// Regression: a member that crashed with its clock 10 minutes fast left a
/// lease whose expiry lay 10 minutes ahead; every other member honoured it,
/// and `kekctl rotate` anywhere waited and failed while status said `ok`.
/// A lease further ahead than a lease's length plus the tolerated skew is
/// taken over, with a warning that names the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_from_a_fast_clock_does_not_freeze_the_fleet() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    create_table(&moto, "kekd-fleet");
    let b = start_member(&moto, &kms, "kekd-fleet", &moto.endpoint).await;
    let first = served(&b).await.unwrap();
    // What the crashed member left: its lease, by its fast clock.
    let ahead = chrono::Utc::now() + chrono::Duration::minutes(10);
    write_lease(&moto, "crashed-fast-clock", ahead).await;
    let (code, out, err) = b.kekctl(&["--json", "--timeout", "60s", "rotate"]);
    assert_eq!(code, 0, "rotate despite the stale lease: {out}{err}");
    let new: kekd::api::views::KeyPairView = serde_json::from_str(&out).unwrap();
    assert_ne!(new.id, first);
    assert!(
        b.log_text()
            .contains("took over a rotation lease that runs out further ahead")
            && b.log_text().contains("crashed-fast-clock"),
        "the takeover is said"
    );
}

/// A member whose rotation waits for a lease another member holds (within
/// the tolerated skew, so it is honoured) says so in status — whose lease,
/// since when — and keeps reading the fleet's head meanwhile. (Regression:
/// the engine stopped refreshing while it waited, so the member's staleness
/// grew and staleness alerts fired although the table answered, and status
/// said nothing of the wait.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_waiting_for_a_lease_says_whose_and_stays_fresh() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet").await;
    create_table(&moto, "kekd-fleet");
    let b = start_member(&moto, &kms, "kekd-fleet", &moto.endpoint).await;
    let first = served(&b).await.unwrap();
    // A live-looking lease of a slow member: it runs out in 8 s.
    write_lease(
        &moto,
        "slow-member",
        chrono::Utc::now() + chrono::Duration::seconds(8),
    )
    .await;
    let socket = b.socket.clone();
    let rotate = tokio::task::spawn_blocking(move || {
        kekctl(&socket, &["--json", "--timeout", "60s", "rotate"])
    });
    let waited = wait_for(
        Duration::from_secs(20),
        "the wait to show in status",
        || async {
            let s: StatusView = b.client().status().await.ok()?;
            s.store.waiting_for_lease.clone()
        },
    )
    .await;
    assert_eq!(waited.holder, "slow-member");
    assert!(waited.since <= chrono::Utc::now());
    // Well past several refresh intervals into the wait, the member is
    // still fresh: every poll for the holder's result is a read.
    let s = wait_for(
        Duration::from_secs(20),
        "two seconds of waiting",
        || async {
            let s: StatusView = b.client().status().await.ok()?;
            let w = s.store.waiting_for_lease.as_ref()?;
            (chrono::Utc::now() - w.since > chrono::Duration::seconds(2)).then_some(s)
        },
    )
    .await;
    assert!(
        s.store.staleness_ms.is_some_and(|ms| ms < 1500),
        "fresh while waiting: {:?}",
        s.store
    );
    let (_, table, _) = b.kekctl(&["status"]);
    assert!(
        table.contains("for a lease held by slow-member since"),
        "{table}"
    );
    // The lease runs out; the member rotates, and the wait is over.
    let (code, out, err) = rotate.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let new: kekd::api::views::KeyPairView = serde_json::from_str(&out).unwrap();
    assert_ne!(new.id, first);
    let s: StatusView = b.client().status().await.unwrap();
    assert!(s.store.waiting_for_lease.is_none(), "{:?}", s.store);
}

/// Writes the fleet's lease as a member `holder` would, running out at
/// `until` by its clock.
async fn write_lease(moto: &Moto, holder: &str, until: chrono::DateTime<chrono::Utc>) {
    use aws_sdk_dynamodb::types::AttributeValue;
    fleet::dynamodb(moto)
        .update_item()
        .table_name("kekd-fleet")
        .key("org", AttributeValue::S("acme-test".into()))
        .key("item", AttributeValue::S("lease".into()))
        .update_expression("SET holder = :h, expires_ms = :e")
        .expression_attribute_values(":h", AttributeValue::S(holder.into()))
        .expression_attribute_values(
            ":e",
            AttributeValue::N(until.timestamp_millis().to_string()),
        )
        .send()
        .await
        .unwrap();
}
