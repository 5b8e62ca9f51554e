//! Crashes at exact steps (invariants I1 and I2), made deterministic with
//! crash points (`--features failpoints`): kekd is stopped with kill -9 at
//! every step of a rotation, of a rewrap and of pruning; after a restart the
//! store has exactly one active key pair, nothing that was ever served is
//! lost, nothing is left pending, and every private key decrypts through
//! KMS and matches its public key. (`invariants.rs` keeps one storm of
//! kills at random instants.)

use crate::harness::*;
use kekd::api::views::{RewrapEvent, ServiceState};
use kekd::domain::KeyState;
use std::time::Duration;

/// What makes kekd reach a crash point.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Rotation,
    Rewrap,
    Prune,
}

/// Every crash point, what reaches it, and whether the interrupted
/// operation's change is durable at that instant.
const POINTS: [(&str, Step, bool); 10] = [
    ("rotation-after-generate", Step::Rotation, false),
    ("rotation-after-seal", Step::Rotation, false),
    ("rotation-after-pending-commit", Step::Rotation, false),
    ("rotation-after-verify", Step::Rotation, false),
    ("store-activate-before-commit", Step::Rotation, false),
    ("rotation-after-activate", Step::Rotation, true),
    ("rewrap-between-key-pairs", Step::Rewrap, true),
    ("store-replace-envelope-before-commit", Step::Rewrap, false),
    ("prune-after-audit-before-delete", Step::Prune, false),
    ("store-delete-before-commit", Step::Prune, false),
];

/// Waits for kekd to halt at `point`; fails loudly if it never does (kekd
/// built without the feature).
async fn halted_at(d: &TestDaemon, point: &str) {
    let start = std::time::Instant::now();
    let reached = |log: &str| {
        log.lines()
            .any(|l| l.contains("failpoint reached") && l.contains(point))
    };
    while !reached(&d.log_text()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "kekd never reached crash point {point}: build the tests with --features failpoints (scripts/test does); log:\n{}",
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Crashes kekd at `point` and checks the store and the restarted daemon.
/// Returns a line of the outcome matrix.
async fn crash_at(moto: &Moto, point: &'static str, step: Step, durable: bool) -> String {
    let (_, first_key) = moto.create_key(&format!("kekd-crash-{point}")).await;
    let (second_arn, second_key) = moto.create_key(&format!("kekd-crash2-{point}")).await;
    let extra = if step == Step::Prune {
        "retention = \"1s\""
    } else {
        ""
    };
    let mut d = TestDaemon::start(moto, |dir| {
        kms_config(dir, &first_key, extra) + "\n[overrides]\nallow_short_retention = true\n"
    })
    .await;
    let c = d.client();
    c.rotate().await.unwrap();
    c.rotate().await.unwrap();
    let served_before: Vec<String> = d.history_ids().await;
    let active_before = d.wait_active().await.active_key_id.unwrap();
    assert!(d.stop().await.success());
    if step == Step::Rewrap {
        let text = std::fs::read_to_string(&d.config).unwrap();
        std::fs::write(&d.config, text.replace(&first_key, &second_key)).unwrap();
    }
    if step == Step::Prune {
        tokio::time::sleep(Duration::from_millis(1200)).await; // past retention
    }

    d.env = vec![("FAILPOINTS".into(), format!("{point}=return"))];
    d.spawn();
    match step {
        Step::Rotation => {
            d.wait_active().await;
            d.signal(libc::SIGUSR1);
        }
        Step::Rewrap => {
            d.wait_active().await;
            let c = d.client();
            tokio::spawn(async move { c.rewrap(|_| {}).await });
        }
        Step::Prune => {} // pruning runs at start
    }
    halted_at(&d, point).await;
    d.kill9();
    let kms = moto.kms();
    let after_crash = assert_store_consistent(&d.store_path(), &kms).await;
    for id in &served_before {
        assert!(
            after_crash.iter().any(|r| &r.id == id) || step == Step::Prune,
            "{point}: key pair {id} was lost"
        );
    }

    d.env.clear();
    d.spawn();
    let s = d.wait_active().await;
    let history = d.history().await;
    assert!(
        history
            .keypairs
            .iter()
            .all(|k| k.state != KeyState::Pending),
        "{point}: a pending key pair lingers"
    );
    let outcome = match step {
        Step::Rotation => {
            let moved = s.active_key_id.as_deref() != Some(active_before.as_str());
            assert_eq!(
                moved, durable,
                "{point}: the new key pair is active iff its activation committed"
            );
            if moved {
                "new key pair active"
            } else {
                "previous key pair still active, the new one never served"
            }
        }
        Step::Rewrap => {
            let mut last = None;
            d.client().rewrap(|e| last = Some(e)).await.unwrap();
            let Some(RewrapEvent::Done {
                rewrapped,
                skipped,
                failed,
            }) = last
            else {
                panic!("{point}: rewrap did not finish: {last:?}")
            };
            assert_eq!(failed, 0, "{point}");
            assert_eq!(rewrapped + skipped, 3, "{point}");
            assert_eq!(
                skipped > 0,
                durable,
                "{point}: the first re-wrap committed iff durable"
            );
            for k in &d.history().await.keypairs {
                assert_eq!(k.wrapping_key_arn, second_arn, "{point}: {} moved", k.id);
            }
            if durable {
                "first key pair re-wrapped; a second rewrap finished the rest"
            } else {
                "nothing re-wrapped; a second rewrap moved all"
            }
        }
        Step::Prune => {
            // Pruning runs when the engine starts, beside the API.
            wait_for(
                Duration::from_secs(30),
                "pruning after the restart",
                || async { (d.history().await.keypairs.len() == 1).then_some(()) },
            )
            .await;
            "nothing deleted at the crash; pruning completed after restart"
        }
    };
    assert_eq!(s.state, ServiceState::Ok, "{point}");
    assert!(d.stop().await.success());
    assert_store_consistent(&d.store_path(), &kms).await;
    format!("{point:<38} {outcome}")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_every_crash_point_leaves_a_consistent_store() {
    let moto = Moto::start().await;
    let mut matrix = Vec::new();
    for (point, step, durable) in POINTS {
        matrix.push(crash_at(&moto, point, step, durable).await);
    }
    eprintln!("crash point matrix:\n{}", matrix.join("\n"));
}

/// Regression (a huge retention panicked the engine, leaving
/// rotation_in_progress true and a retired key served as active): a panic
/// inside a rotation is a failed rotation — status degraded with an
/// internal error, the active key pair unchanged — and the next rotation
/// works.
#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_a_rotation_is_a_failed_rotation_not_a_dead_engine() {
    let moto = Moto::start().await;
    let (_, key) = moto.create_key("kekd-crash-panic").await;
    let mut d = TestDaemon::start(&moto, |dir| kms_config(dir, &key, "")).await;
    let before = d.wait_active().await.active_key_id.unwrap();
    assert!(d.stop().await.success());
    d.env = vec![(
        "FAILPOINTS".into(),
        "rotation-after-seal=1*panic(boom)".into(),
    )];
    d.spawn();
    d.wait_active().await;
    let c = d.client();
    let e = c.rotate().await.unwrap_err();
    assert!(e.to_string().contains("panicked"), "{e}");
    let s = c.status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded);
    assert!(!s.rotation_in_progress);
    assert_eq!(s.last_error.unwrap().kind.to_string(), "internal");
    assert_eq!(s.active_key_id.as_deref(), Some(before.as_str()));
    let after = c.rotate().await.expect("the engine still runs");
    assert_ne!(after.id, before);
    assert_eq!(c.status().await.unwrap().state, ServiceState::Ok);
}
