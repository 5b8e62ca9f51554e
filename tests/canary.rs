//! The decryptability canary and the key-age warning.

use crate::harness::*;
use kekd::api::views::{PublicKeyView, ServiceState, StatusView};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn canary_passes_then_catches_a_kms_that_no_longer_decrypts_and_a_disabled_key() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_arn, alias) = moto.create_key("kekd-canary").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &alias, "").replace(
            "[kms]",
            "[canary]\ninterval = \"300ms\"\nrecent = 2\n\n[overrides]\nallow_frequent_checks = true\n\n[kms]",
        )
    })
    .await;
    for _ in 0..3 {
        d.client().rotate().await.unwrap();
    }
    let (code, out, err) = d.kekctl(&["check"]);
    assert_eq!(code, 0, "{err}");
    let h = d.history().await;
    assert!(
        out.contains(&h.keypairs[0].id) && out.contains(&h.keypairs[2].id),
        "active + 2 recent: {out}"
    );
    assert!(
        !out.contains(&h.keypairs[3].id),
        "only `recent` retired ones: {out}"
    );

    // The periodic canary runs by itself.
    wait_for(Duration::from_secs(10), "a periodic canary", || async {
        let s: StatusView = d.client().status().await.ok()?;
        s.last_canary.filter(|c| c.ok).map(|_| ())
    })
    .await;

    // KMS stops decrypting: the canary fails, status and metrics say so.
    proxy.set_for(Fault::access_denied(), Some("Decrypt")).await;
    let (code, out, err) = d.kekctl(&["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED") && out.contains("AccessDeniedException"),
        "{out}"
    );
    assert!(err.contains("check failed"), "{err}");
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded);
    assert!(!s.last_canary.unwrap().ok);
    let body = d.client().metrics().await.unwrap();
    assert!(body.contains("kekd_canary_ok 0"));
    assert!(d.log_text().contains("canary FAILED"));
    let p: PublicKeyView = d.client().public_key().await.unwrap();
    assert_eq!(p.id, h.keypairs[0].id, "the public key is still served");

    proxy.set(Fault::None).await;
    let (code, _, err) = d.kekctl(&["check"]);
    assert_eq!(code, 0, "{err}");
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.state, ServiceState::Ok);

    // The KMS key is disabled (moto reports it in DescribeKey).
    moto.set_key_enabled(&key_arn, false).await;
    let (code, out, _) = d.kekctl(&["check", "--json"]);
    assert_eq!(code, 1);
    let r: kekd::api::views::CanaryReport = serde_json::from_str(&out).unwrap();
    assert!(r.kms_key_problem.unwrap().contains("disabled"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_active_key_raises_a_warning_but_is_still_served() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-age").await;
    let d = TestDaemon::start(&moto, |dir| {
        kms_config(dir, &alias, "max_key_age_warning = \"5s\"")
    })
    .await;
    let s: StatusView = d.client().status().await.unwrap();
    let age = chrono::Utc::now() - s.active_since.unwrap();
    assert!(
        s.warnings.is_empty() || age > chrono::Duration::seconds(5),
        "a key younger than the limit raises no warning: {:?}",
        s.warnings
    );
    let s = wait_for(Duration::from_secs(60), "the key-age warning", || async {
        let s: StatusView = d.client().status().await.ok()?;
        (!s.warnings.is_empty()).then_some(s)
    })
    .await;
    assert!(chrono::Utc::now() - s.active_since.unwrap() > chrono::Duration::seconds(5));
    assert_eq!(s.state, ServiceState::Ok, "a warning is not a failure");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("older than max_key_age_warning")),
        "{:?}",
        s.warnings
    );
    let body = d.client().metrics().await.unwrap();
    assert!(body.contains("kekd_active_key_too_old 1"));
    let p: PublicKeyView = d.client().public_key().await.unwrap();
    assert_eq!(Some(p.id), s.active_key_id);
    let (_, out, _) = d.kekctl(&["status"]);
    assert!(out.contains("WARNING"), "{out}");
}
