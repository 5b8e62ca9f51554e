//! KMS failures moto can produce by itself (a missing key, a stopped
//! server): the active key pair stays served, status shows the classified
//! error, and rotation completes on its own once KMS is back. Faults moto
//! cannot produce (throttling, disabled keys, hangs) are in `faults.rs`,
//! through the fault proxy.

use crate::harness::*;
use kekd::api::views::{PublicKeyView, ServiceState, StatusView};
use kekd::domain::Reason;
use std::time::{Duration, Instant};

/// No key pair exists yet and the configured alias does not exist: there
/// is nothing to serve, so kekd refuses to start and names the problem.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_kms_key_at_first_start_stops_kekd_with_a_precise_error() {
    let moto = Moto::start().await;
    let alias = format!("arn:aws:kms:{REGION}:123456789012:alias/kekd-missing");
    let mut d = TestDaemon::start_serving_or_exit(&moto, |dir| kms_config(dir, &alias, "")).await;
    let st = d.stop_wait().await;
    assert_eq!(st.code(), Some(1));
    let log = d.log_text();
    assert!(
        log.contains("preflight of the KMS key failed: KMS key or alias not found"),
        "{log}"
    );
    assert!(log.contains("NotFoundException"), "{log}");
}

/// The alias disappears after start: Change Key Now fails with KMS's own
/// code and request id in status, the active key stays, and the next
/// rotation after the alias is back succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_kms_service_error_is_reported_with_code_and_request_id() {
    let moto = Moto::start().await;
    let (key_arn, alias) = moto.create_key("kekd-vanishing").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias, SHORT_REVOCATION_BOUND)).await;
    let active = d.wait_active().await.active_key_id.unwrap();
    moto.kms()
        .delete_alias()
        .alias_name("alias/kekd-vanishing")
        .send()
        .await
        .unwrap();

    let (status, body) = d
        .client()
        .raw(hyper::Method::POST, "/v1/rotate")
        .await
        .unwrap();
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"kms_error\""));
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded);
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    let e = s.last_error.unwrap();
    assert_eq!(e.reason, Reason::ChangeKeyNow);
    assert_eq!(e.operation.as_deref(), Some("GenerateDataKey"));
    assert_eq!(e.kind.to_string(), "not_found");
    assert_eq!(e.code.as_deref(), Some("NotFoundException"));
    assert!(
        e.request_id.as_deref().is_some_and(|r| !r.is_empty()),
        "the AWS request id is kept"
    );
    let (code, out, err) = d.kekctl(&["status"]);
    assert_eq!(code, 5, "degraded is exit 5: {err}");
    assert!(
        out.contains("degraded") && out.contains("NotFoundException"),
        "{out}"
    );
    assert!(err.contains("kekd is degraded (rotation_failing"), "{err}");
    assert!(
        out.contains("degraded (rotation_failing"),
        "the state row names its causes: {out}"
    );
    let (code, out, err) = d.kekctl(&["-q", "status"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (5, "", ""),
        "-q: the code alone"
    );

    moto.kms()
        .create_alias()
        .alias_name("alias/kekd-vanishing")
        .target_key_id(&key_arn)
        .send()
        .await
        .unwrap();
    let s = wait_for(Duration::from_secs(30), "recovery by retry", || async {
        let s: StatusView = d.client().status().await.ok()?;
        (s.state == ServiceState::Ok).then_some(s)
    })
    .await;
    assert_ne!(
        s.active_key_id.as_deref(),
        Some(active.as_str()),
        "the failed rotation was retried"
    );
    assert_eq!(d.history().await.keypairs[0].reason, Reason::ChangeKeyNow);
    let (code, out, _) = d.kekctl(&["-q", "status"]);
    assert_eq!((code, out.as_str()), (0, ""), "ok is exit 0");
    let (code, _, _) = kekctl(&d.dir.path().join("nobody-here.sock"), &["-q", "status"]);
    assert_eq!(code, 3, "unreachable is exit 3");
}

/// KMS is unreachable at the very first start: kekd serves its API
/// (degraded, no public key yet) and makes the initial key pair by itself
/// once KMS answers.
#[tokio::test(flavor = "multi_thread")]
async fn kms_unreachable_at_first_start_is_served_degraded_and_recovers() {
    let mut moto = Moto::start().await;
    let port = moto.port();
    moto.stop();
    let alias = format!("arn:aws:kms:{REGION}:123456789012:alias/kekd-late");
    let d = TestDaemon::start_serving(&moto, |dir| kms_config(dir, &alias, "")).await;
    let s = wait_for(
        Duration::from_secs(30),
        "a failed initial rotation",
        || async {
            let s: StatusView = d.client().status().await.ok()?;
            s.last_error.is_some().then_some(s)
        },
    )
    .await;
    assert_eq!(s.state, ServiceState::Degraded);
    assert!(s.active_key_id.is_none() && s.next_retry_at.is_some());
    let e = s.last_error.unwrap();
    assert_eq!(
        (e.reason, e.kind.to_string().as_str()),
        (Reason::Initial, "unreachable")
    );
    let (status, body) = d
        .client()
        .raw(hyper::Method::GET, "/v1/public-key")
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("no_active_key"));

    let moto = Moto::start_on(port).await;
    moto.create_key("kekd-late").await;
    let s = d.wait_active().await;
    assert_eq!(s.state, ServiceState::Ok);
    assert_eq!(d.history().await.keypairs[0].reason, Reason::Initial);
}

/// KMS goes away after start: the active public key is still served and
/// status answers at once, Change Key Now fails fast with `kms_unavailable`
/// and leaves the active key active, and status is `degraded` with the
/// cause.
#[tokio::test(flavor = "multi_thread")]
async fn with_kms_unreachable_the_active_key_stays_served() {
    let mut moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-outage").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias, "")).await;
    let active = d.wait_active().await.active_key_id.unwrap();
    moto.stop();

    let t = Instant::now();
    let (status, body) = d
        .client()
        .raw(hyper::Method::POST, "/v1/rotate")
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "kms_unavailable");
    // Bounded by the configured operation timeout (5 s), not hanging.
    assert!(took < Duration::from_secs(30), "rotate took {took:?}");

    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded);
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    let e = s.last_error.unwrap();
    assert_eq!(e.kind.to_string(), "unreachable");
    assert_eq!(e.operation.as_deref(), Some("GenerateDataKey"));
    let p: PublicKeyView = d.client().public_key().await.unwrap();
    assert_eq!(p.id, active, "the last known public key is still served");
    let (code, _, err) = d.kekctl(&["rotate"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("kms_unavailable") && err.contains("stays active"),
        "{err}"
    );
    assert_eq!(
        d.history().await.keypairs.len(),
        1,
        "nothing half-made is kept"
    );
}

/// Access to the socket is refused to a user without permission: kekctl
/// says so and exits 4.
#[tokio::test(flavor = "multi_thread")]
async fn kekctl_without_permission_on_the_socket_exits_4() {
    use std::os::unix::process::CommandExt;
    let (_moto, d) = daemon_with_key("kekd-perm").await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"));
    cmd.arg("--socket").arg(&d.socket).arg("status");
    // As root, run kekctl as nobody; as another user, take away our own
    // permission on the socket instead (root would bypass that).
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("permission denied"), "{err}");
}

/// I4: while a KMS call hangs, the API does not: status (which reports the
/// rotation as in progress — so it answered *during* the hung call), the
/// public key and the history are served; the hung call is cut off by the
/// configured timeouts and classified as a timeout.
#[tokio::test(flavor = "multi_thread")]
async fn i4_a_hung_kms_never_blocks_the_api() {
    let (moto, mut d) = daemon_with_key("kekd-hang").await;
    let active = d.wait_active().await.active_key_id.unwrap();
    assert!(d.stop().await.success());
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.set(Fault::BlackHole).await;
    d.set_kms_endpoint(&proxy.endpoint);
    d.spawn();
    d.wait_active().await;

    let rotate = {
        let c = d.client();
        tokio::spawn(async move { c.raw(hyper::Method::POST, "/v1/rotate").await })
    };
    let s = wait_for(
        Duration::from_secs(10),
        "the rotation to be in progress",
        || async {
            let s: StatusView = d.client().status().await.ok()?;
            s.rotation_in_progress.then_some(s)
        },
    )
    .await;
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    // Many more answers while the KMS call still hangs.
    for _ in 0..20 {
        let s: StatusView = d.client().status().await.unwrap();
        let p: PublicKeyView = d.client().public_key().await.unwrap();
        assert_eq!(p.id, active);
        d.history().await;
        if !s.rotation_in_progress {
            panic!("the hung call ended before the API was exercised; raise the timeouts in kms_config");
        }
    }
    let (status, body) = rotate.await.unwrap().unwrap();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded);
    assert_eq!(s.last_error.unwrap().kind.to_string(), "timeout");
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
}

/// A second kekd on the same socket refuses to start and says why; a stale
/// socket file left by a crash is replaced.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_kekd_on_the_socket_is_refused_and_a_stale_socket_is_replaced() {
    let (moto, mut d) = daemon_with_key("kekd-socket").await;
    // Same config, other state dir: only the socket is shared.
    let second = d.dir.path().join("second.toml");
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&second, text.replace("/state\"", "/state2\"")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekd"))
        .arg("--config")
        .arg(&second)
        .envs(moto_env(&moto))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another kekd is already listening there"),
        "{err}"
    );
    // The first one is unharmed.
    d.wait_active().await;
    // The same config again (same state directory): said plainly, once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekd"))
        .arg("--config")
        .arg(&d.config)
        .envs(moto_env(&moto))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("kekd is already running with this state directory")
            .count(),
        1,
        "{err}"
    );
    d.wait_active().await;

    d.kill9();
    assert!(d.socket.exists(), "a crash leaves the socket file behind");
    d.spawn();
    d.wait_active().await;
}

/// Regression (missing credentials were reported as "access denied by KMS"
/// with ~2 KB of SDK debug text, twice): kekd says it found no AWS
/// credentials and where they come from, once, in a few lines.
#[tokio::test(flavor = "multi_thread")]
async fn missing_aws_credentials_are_said_plainly_and_once() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-no-credentials").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kekd.toml");
    std::fs::write(&config, kms_config(dir.path(), &alias, "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekd"))
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_ENDPOINT_URL_KMS", &moto.endpoint)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("no AWS credentials found").count(), 1, "{err}");
    assert!(
        err.contains("AWS_PROFILE") && err.contains("instance role"),
        "{err}"
    );
    assert!(!err.contains("access denied"), "{err}");
    assert!(err.len() < 600, "{} bytes: {err}", err.len());
}

/// Regression: a key problem was set only by the start-up preflight and
/// cleared only by a successful rotation. An unwrap that met a disabled key
/// left status `ok` (with the default canary, for up to an hour while
/// playback failed), and a key re-enabled after a restart left status
/// `degraded` until the next rotation (up to a month). Health now follows
/// the latest evidence of any path, and clears when a check passes again.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_problem_shows_at_the_first_evidence_and_clears_when_fixed() {
    use kekd::api::views::DegradedCause;
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_arn, alias) = moto.create_key("kekd-evidence").await;
    // A revocation is re-checked at the probe's pace: a short bound.
    let mut d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &alias, SHORT_REVOCATION_BOUND)
    })
    .await;
    let active = d.wait_active().await.active_key_id.unwrap();
    let public = d.client().public_key().await.unwrap();
    let der = pem::parse(&public.pem).unwrap().into_contents();
    let mut sealed = Vec::new();
    kekd::recording::seal(&mut &b"a call"[..], &mut sealed, &active, &der, |_| {}).unwrap();
    let header = kekd::recording::Header::read(&mut &sealed[..]).unwrap();

    // Disabled while running: the first unwrap that needs KMS says so.
    proxy.set(Fault::disabled()).await;
    assert!(d
        .client()
        .unwrap(&active, &header.wrapped_key)
        .await
        .is_err());
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.state, ServiceState::Degraded, "{s:?}");
    assert!(
        s.degraded_causes.contains(&DegradedCause::KeyRevoked),
        "{s:?}"
    );
    assert!(
        s.kms_key_problem
            .as_deref()
            .is_some_and(|p| p.contains("DisabledException")),
        "{s:?}"
    );
    // Regression: a degraded state that was not a failing rotation read
    // "degraded since -" and "last error -". Every cause has its since
    // and its evidence, in the JSON and in the table.
    let revoked = s
        .degraded
        .iter()
        .find(|g| g.cause == DegradedCause::KeyRevoked)
        .unwrap_or_else(|| panic!("{s:?}"));
    assert!(revoked.message.contains("DisabledException"), "{revoked:?}");
    assert_eq!(s.degraded_since, revoked.since, "{s:?}");
    assert!(
        s.degraded_since.is_some() && s.last_error.is_none(),
        "{s:?}"
    );
    let (code, text, _) = d.kekctl(&["status"]);
    assert_eq!(code, 5, "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {text}"))
            .to_string()
    };
    assert!(!row("degraded since").ends_with(" -"), "{text}");
    assert!(row("last error").contains("DisabledException"), "{text}");
    assert!(row("key_revoked").contains("since 20"), "{text}");
    // Re-enabled: cleared by the re-check, no rotation needed.
    proxy.set(Fault::None).await;
    let s = wait_for(Duration::from_secs(30), "the problem to clear", || async {
        let s: StatusView = d.client().status().await.ok()?;
        (s.state == ServiceState::Ok && s.kms_key_problem.is_none()).then_some(s)
    })
    .await;
    assert!(s.degraded.is_empty() && s.degraded_since.is_none(), "{s:?}");

    // Disabled across a restart (moto's DescribeKey says so), then
    // re-enabled: status clears without a rotation.
    assert!(d.stop().await.success());
    moto.set_key_enabled(&key_arn, false).await;
    d.spawn();
    let s = d.wait_active().await;
    assert!(
        s.kms_key_problem
            .as_deref()
            .is_some_and(|p| p.contains("disabled")),
        "{s:?}"
    );
    moto.set_key_enabled(&key_arn, true).await;
    let s = wait_for(Duration::from_secs(30), "the problem to clear", || async {
        let s: StatusView = d.client().status().await.ok()?;
        (s.state == ServiceState::Ok).then_some(s)
    })
    .await;
    assert_eq!(
        s.active_key_id.as_deref(),
        Some(active.as_str()),
        "no rotation needed"
    );
}

/// Regression: re-pointing the configured alias to another KMS key went
/// unnoticed (no audit record, no warning) while a configured change of
/// key is proven and audited. Now the first key pair under the new key is
/// proven as always, the change is audited with both keys, and status
/// warns until a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_re_pointed_to_another_key_is_audited_and_shown() {
    let moto = crate::harness::moto::Moto::start().await;
    let (first_key, alias) = moto.create_key("repointed").await;
    let (other_key, _) = moto.create_key("repointed-other").await;
    let d = crate::harness::daemon::TestDaemon::start(&moto, |dir| {
        crate::harness::daemon::kms_config(dir, &alias, "")
    })
    .await;
    let c = d.client();
    let before = c.rotate().await.unwrap();
    assert_eq!(before.wrapping_key_arn, first_key);
    assert!(c.status().await.unwrap().warnings.is_empty());
    moto.kms()
        .update_alias()
        .alias_name("alias/repointed")
        .target_key_id(&other_key)
        .send()
        .await
        .expect("moto UpdateAlias");
    let after = c.rotate().await.unwrap();
    assert_eq!(
        after.wrapping_key_arn, other_key,
        "GenerateDataKey answered with the new key"
    );
    let s = c.status().await.unwrap();
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains(&first_key) && w.contains(&other_key) && w.contains("alias")),
        "{:?}",
        s.warnings
    );
    let trail = std::fs::read_to_string(d.dir.path().join("state/audit.jsonl")).unwrap();
    let record = trail
        .lines()
        .find(|l| l.contains("wrapping_key_changed"))
        .expect("the change is audited");
    assert!(
        record.contains(&first_key) && record.contains(&other_key) && record.contains(&after.id),
        "{record}"
    );
    // A reload (the operator looked) clears the notice.
    c.reload().await.unwrap();
    assert!(c.status().await.unwrap().warnings.is_empty());
}
