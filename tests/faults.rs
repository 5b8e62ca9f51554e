//! Every KMS fault through the fault-injecting proxy in front of moto:
//! the rotation falls back (the active key stays served), status
//! stays responsive and names the cause, nothing is lost or duplicated, and
//! once the fault is cleared the rotation completes on its own.

use crate::harness::*;
use kekd::api::views::{PublicKeyView, ServiceState, StatusView};
use kekd::domain::{KeyState, Reason};
use std::time::Duration;

struct Want {
    kind: &'static str,
    code: Option<&'static str>,
    http: u16,
}

async fn scenario(fault: Fault, want: Want) {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (_, alias) = moto.create_key("kekd-fault").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &alias, SHORT_REVOCATION_BOUND)
    })
    .await;
    let before = d.wait_active().await.active_key_id.unwrap();

    proxy.set(fault.clone()).await;
    let (status, body) = d
        .client()
        .raw(hyper::Method::POST, "/v1/rotate")
        .await
        .unwrap();
    assert_eq!(
        status.as_u16(),
        want.http,
        "{fault:?}: {}",
        String::from_utf8_lossy(&body)
    );

    // Degraded, with the cause; the active key is still served, at once.
    for _ in 0..20 {
        let s: StatusView = d.client().status().await.unwrap();
        assert_eq!(s.active_key_id.as_deref(), Some(before.as_str()));
        let p: PublicKeyView = d.client().public_key().await.unwrap();
        assert_eq!(p.id, before);
    }
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded, "{fault:?}");
    assert!(s.degraded_since.is_some() && s.failed_attempts >= 1);
    let e = s.last_error.clone().unwrap();
    assert_eq!(e.kind.to_string(), want.kind, "{fault:?}: {e:?}");
    assert_eq!(e.code.as_deref(), want.code, "{fault:?}: {e:?}");
    assert_eq!(e.operation.as_deref(), Some("GenerateDataKey"));
    if let Fault::Kms(..) = fault {
        assert!(
            e.request_id
                .as_deref()
                .is_some_and(|r| r.starts_with("fault-proxy-")),
            "{e:?}"
        );
    }
    if fault != Fault::Refuse {
        assert!(proxy.faulted() >= 1, "the fault was exercised");
    }

    // Cleared: the rotation completes by itself, once.
    let mark = d.log_mark();
    proxy.set(Fault::None).await;
    let s = wait_for(
        Duration::from_secs(30),
        "recovery after the fault is cleared",
        || async {
            let s: StatusView = d.client().status().await.ok()?;
            (s.state == ServiceState::Ok && s.active_key_id.as_deref() != Some(before.as_str()))
                .then_some(s)
        },
    )
    .await;
    d.wait_engine_idle(mark).await; // no retry is left to come
    let h = d.history().await;
    assert_eq!(
        h.keypairs.len(),
        2,
        "one failed rotation, completed once: {:?}",
        h.keypairs
    );
    assert_eq!(h.keypairs[0].id, s.active_key_id.unwrap());
    assert_eq!(h.keypairs[0].reason, Reason::ChangeKeyNow);
    assert_eq!(h.keypairs[1].id, before);
    assert_eq!(
        h.keypairs
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_connection_refused() {
    scenario(
        Fault::Refuse,
        Want {
            kind: "unreachable",
            code: None,
            http: 503,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_black_hole() {
    scenario(
        Fault::BlackHole,
        Want {
            kind: "timeout",
            code: None,
            http: 503,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_slow_answers_beyond_the_attempt_timeout() {
    scenario(
        Fault::Slow(Duration::from_secs(3)),
        Want {
            kind: "timeout",
            code: None,
            http: 503,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_http_500() {
    scenario(
        Fault::Http(500),
        Want {
            kind: "service_unavailable",
            code: None,
            http: 503,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_http_503() {
    scenario(
        Fault::Http(503),
        Want {
            kind: "service_unavailable",
            code: None,
            http: 503,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_throttling() {
    scenario(
        Fault::throttling(),
        Want {
            kind: "throttled",
            code: Some("ThrottlingException"),
            http: 503,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_access_denied() {
    scenario(
        Fault::access_denied(),
        Want {
            kind: "access_denied",
            code: Some("AccessDeniedException"),
            http: 502,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_disabled_key() {
    scenario(
        Fault::disabled(),
        Want {
            kind: "key_disabled",
            code: Some("DisabledException"),
            http: 502,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_invalid_key_state() {
    scenario(
        Fault::invalid_state(),
        Want {
            kind: "invalid_key_state",
            code: Some("KMSInvalidStateException"),
            http: 502,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_key_unavailable() {
    scenario(
        Fault::key_unavailable(),
        Want {
            kind: "service_unavailable",
            code: Some("KeyUnavailableException"),
            http: 503,
        },
    )
    .await;
}

/// I1 through KMS: `GenerateDataKey` works but `Decrypt` is refused, so the
/// new key pair is stored as pending and cannot be verified — it is never
/// activated nor served, and is retired unused. After the fault, the retry
/// makes a fresh key pair that verifies.
#[tokio::test(flavor = "multi_thread")]
async fn i1_a_key_pair_that_cannot_be_decrypted_back_is_never_served() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (_, alias) = moto.create_key("kekd-fault-i1").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &alias, SHORT_REVOCATION_BOUND)
    })
    .await;
    let before = d.wait_active().await.active_key_id.unwrap();

    proxy.set_for(Fault::access_denied(), Some("Decrypt")).await;
    let (status, _) = d
        .client()
        .raw(hyper::Method::POST, "/v1/rotate")
        .await
        .unwrap();
    assert_eq!(status, 502);
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(
        s.last_error.as_ref().unwrap().operation.as_deref(),
        Some("Decrypt")
    );
    let p: PublicKeyView = d.client().public_key().await.unwrap();
    assert_eq!(p.id, before, "the unverified key pair is not served");
    let h = d.history().await;
    let unverified: Vec<_> = h.keypairs.iter().filter(|k| k.id != before).collect();
    assert!(!unverified.is_empty(), "the pending key pair was stored");
    for k in &unverified {
        assert_eq!(k.state, KeyState::Superseded, "superseded, never active");
        assert!(k.activated_at.is_none());
    }

    proxy.set(Fault::None).await;
    let s = wait_for(Duration::from_secs(30), "recovery", || async {
        let s: StatusView = d.client().status().await.ok()?;
        (s.state == ServiceState::Ok && s.active_key_id.as_deref() != Some(before.as_str()))
            .then_some(s)
    })
    .await;
    let new = s.active_key_id.unwrap();
    assert!(
        unverified.iter().all(|k| k.id != new),
        "a fresh key pair, not the unverified one"
    );
}
