//! Operations: the Test round trip, reload (SIGHUP and API) with good and
//! bad configurations.

use crate::harness::*;
use kekd::api::views::ReloadResult;
use kekd::api::views::StatusView;
use kekd::domain::Reason;
use std::time::Duration;

fn write_config(d: &TestDaemon, text: String) {
    std::fs::write(&d.config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kekctl_test_checks_the_running_key_and_a_candidate_file_writing_nothing() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-test-a").await;
    let (_, other) = moto.create_key("kekd-test-b").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias, "")).await;

    let (code, out, err) = d.kekctl(&["test"]);
    assert_eq!(code, 0, "{err}");
    for step in [
        "describe-key",
        "generate-data-key",
        "encrypt-test-data",
        "decrypt-data-key",
        "decrypt-test-data",
        "compare",
    ] {
        assert!(out.contains(step), "{out}");
    }
    assert!(out.contains("passed"));

    // A candidate file, tested directly against KMS by kekctl.
    let candidate = d.dir.path().join("candidate.toml");
    let with_env = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kekctl"))
            .args(args)
            .envs(moto_env(&moto))
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cand_dir = tempfile::tempdir().unwrap();
    std::fs::write(&candidate, kms_config(cand_dir.path(), &other, "")).unwrap();
    let (code, out, err) = with_env(&["test", "--json", "--config", candidate.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let report: kekd::api::views::TestReport = serde_json::from_str(&out).unwrap();
    assert!(report.ok && report.kms_key.ends_with("alias/kekd-test-b"));
    assert_eq!(
        std::fs::read_dir(cand_dir.path()).unwrap().count(),
        0,
        "nothing written"
    );

    let missing = other.replace("kekd-test-b", "kekd-test-nope");
    std::fs::write(&candidate, kms_config(cand_dir.path(), &missing, "")).unwrap();
    let (code, out, err) = with_env(&["test", "--config", candidate.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("FAILED"), "{out}");
    assert!(
        err.contains("Test round trip failed at describe-key") && err.contains("not found"),
        "{err}"
    );

    // A local candidate whose root key does not exist is not created.
    let local = cand_dir.path().join("local.toml");
    let root = cand_dir.path().join("root.key");
    std::fs::write(
        &local,
        format!(
            "organization_id = \"x\"\n[provider]\ntype = \"local\"\nroot_key_path = \"{}\"\n",
            root.display()
        ),
    )
    .unwrap();
    let (code, _, err) = with_env(&["test", "--config", local.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!root.exists());
}

crate::on_both_stores! {
    #[tokio::test(flavor = "multi_thread")]
    async fn sighup_to_a_new_kms_key_proves_it_then_makes_a_key_pair_under_it(store: Backend) {
        let moto = Moto::start().await;
        let (key_a, alias_a) = moto.create_key("kekd-reload-a").await;
        let (key_b, alias_b) = moto.create_key("kekd-reload-b").await;
        let d = TestDaemon::start(&moto, |dir| store.config(&moto, dir, &alias_a, "")).await;
        let first = d.wait_active().await.active_key_id.unwrap();

        write_config(&d, store.config(&moto, d.dir.path(), &alias_b, ""));
        d.signal(libc::SIGHUP);
        let s = wait_for(Duration::from_secs(30), "the reload", || async {
            let s: StatusView = d.client().status().await.ok()?;
            s.last_reload.is_some().then_some(s)
        })
        .await;
        let r = s.last_reload.unwrap();
        assert_eq!(r.outcome, ReloadResult::Applied, "{}", r.message);
        assert!(s.kms_key.ends_with("alias/kekd-reload-b"));
        let h = d.history().await;
        assert_eq!(h.keypairs[0].reason, Reason::KmsKeyChanged);
        assert_eq!(h.keypairs[0].wrapping_key_arn, key_b);
        assert_eq!(Some(h.keypairs[0].id.clone()), r.new_key_pair_id);
        assert_eq!(h.keypairs[1].id, first);
        assert_eq!(
            h.keypairs[1].wrapping_key_arn, key_a,
            "old key pairs stay under the old key"
        );
        assert_eq!(s.key_pairs.by_wrapping_key.get(&key_a), Some(&1));
        assert_eq!(s.key_pairs.by_wrapping_key.get(&key_b), Some(&1));
        // Both still decrypt, each under its own KMS key.
        let kms = moto.kms();
        for k in &h.keypairs {
            d.assert_decrypts(&kms, &k.id, &k.public_key_pem).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reload_keeps_the_running_configuration_and_says_why() {
    let mut moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-reload-keep").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias, "")).await;
    let before: StatusView = d.client().status().await.unwrap();
    let good = kms_config(d.dir.path(), &alias, "");

    let reload = |want: &'static str| {
        let c = d.client();
        async move {
            let (status, body) = c.raw(hyper::Method::POST, "/v1/reload").await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(status, 422, "{v}");
            assert_eq!(v["error"]["code"], "reload_failed");
            let msg = v["error"]["message"].as_str().unwrap().to_string();
            assert!(msg.contains(want), "want {want:?} in {msg}");
            assert!(msg.contains("the running configuration stays in force"));
        }
    };
    // An invalid file.
    write_config(
        &d,
        good.replace("cadence = \"never\"", "cadence = \"sometimes\""),
    );
    reload("field `cadence`").await;
    // A field that cannot change while running.
    write_config(&d, good.replace("kekd.sock", "other.sock"));
    reload("socket_path cannot change while kekd runs").await;
    // A KMS key that does not exist.
    write_config(
        &d,
        kms_config(d.dir.path(), &alias.replace("keep", "gone"), ""),
    );
    reload("failed the Test round trip at describe-key").await;
    // Keys that exist but cannot be used: disabled, pending deletion.
    let (disabled, disabled_alias) = moto.create_key("kekd-reload-disabled").await;
    // moto accepts only the bare key id here, not the ARN.
    let key_id = |arn: &str| arn.rsplit('/').next().unwrap().to_string();
    moto.kms()
        .disable_key()
        .key_id(key_id(&disabled))
        .send()
        .await
        .unwrap();
    write_config(&d, kms_config(d.dir.path(), &disabled_alias, ""));
    reload("KMS key is disabled").await;
    let (doomed, doomed_alias) = moto.create_key("kekd-reload-doomed").await;
    moto.kms()
        .schedule_key_deletion()
        .key_id(key_id(&doomed))
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    write_config(&d, kms_config(d.dir.path(), &doomed_alias, ""));
    reload("KMS key is pending deletion").await;
    // A key ARN in another region than the configured one.
    write_config(
        &d,
        kms_config(d.dir.path(), &alias, "")
            .replace("region = \"us-east-1\"", "region = \"eu-west-1\""),
    );
    reload("is not the configured region eu-west-1").await;
    // A KMS that cannot be reached.
    moto.stop();
    write_config(
        &d,
        kms_config(d.dir.path(), &alias.replace("keep", "other"), ""),
    );
    reload("KMS unavailable").await;

    let after: StatusView = d.client().status().await.unwrap();
    assert_eq!(after.kms_key, before.kms_key);
    assert_eq!(after.active_key_id, before.active_key_id);
    assert_eq!(after.cadence, "never");
    assert_eq!(after.last_reload.unwrap().outcome, ReloadResult::Failed);
    assert_eq!(d.history().await.keypairs.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cadence_change_reschedules() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-reload-cadence").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &alias, "")).await;
    let s: StatusView = d.client().status().await.unwrap();
    assert!(s.next_rotation_at.is_none(), "never: nothing scheduled");
    write_config(
        &d,
        kms_config(d.dir.path(), &alias, "").replace(
            "cadence = \"never\"",
            "cadence = \"daily\"\ntimezone = \"America/New_York\"",
        ),
    );
    let out: kekd::api::views::ReloadOutcome = d.client().reload().await.unwrap();
    assert_eq!(out.outcome, ReloadResult::Applied);
    assert!(
        out.message
            .contains("cadence never (UTC) -> daily (America/New_York)"),
        "{}",
        out.message
    );
    let s: StatusView = d.client().status().await.unwrap();
    let next = s.next_rotation_at.expect("rescheduled");
    assert!(next > chrono::Utc::now());
    assert_eq!(
        next.with_timezone(&chrono_tz::America::New_York)
            .format("%H:%M:%S")
            .to_string(),
        "00:00:00"
    );
    // Unchanged file: nothing to do.
    let out: kekd::api::views::ReloadOutcome = d.client().reload().await.unwrap();
    assert_eq!(out.outcome, ReloadResult::Unchanged);
}

/// A cadence changed in the file while kekd was stopped takes effect at
/// the next start, as a reload would apply it: the stored schedule was
/// made for the old cadence.
#[tokio::test(flavor = "multi_thread")]
async fn a_cadence_changed_while_stopped_reschedules_at_the_start() {
    let mut d = TestDaemon::start_local(local_config).await;
    let s: StatusView = d.client().status().await.unwrap();
    assert!(s.next_rotation_at.is_none(), "never: nothing scheduled");
    // Written while it runs, never reloaded: only the restart reads it.
    write_config(
        &d,
        local_config(d.dir.path()).replace("cadence = \"never\"", "cadence = \"daily\""),
    );
    let s = d.restart().await;
    assert_eq!(s.cadence, "daily");
    let next = s.next_rotation_at.expect("rescheduled at the start");
    assert!(next > chrono::Utc::now());
    assert_eq!(next.format("%H:%M:%S").to_string(), "00:00:00");
    // And back: a start with `never` schedules nothing.
    write_config(&d, local_config(d.dir.path()));
    assert!(d.restart().await.next_rotation_at.is_none(), "never again");
}

crate::on_both_stores! {
    /// `/metrics` parses as Prometheus text, and its counters and gauges move
    /// when a rotation happens.
    #[tokio::test(flavor = "multi_thread")]
    async fn metrics_parse_and_move_with_a_rotation(store: Backend) {
        let moto = Moto::start().await;
        let (key_arn, alias) = moto.create_key("kekd-metrics").await;
        let d = TestDaemon::start(&moto, |dir| store.config(&moto, dir, &alias, "")).await;

        async fn scrape(d: &TestDaemon) -> prometheus_parse::Scrape {
            let text = d.client().metrics().await.unwrap();
            let lines = text.lines().map(|l| Ok(l.to_string()));
            prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
        }
        fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
            s.samples
                .iter()
                .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
                .map(|x| match x.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => 0.0,
                })
                .sum()
        }

        let before = scrape(&d).await;
        assert_eq!(
            value(
                &before,
                "kekd_rotations_total",
                &[("reason", "initial"), ("outcome", "success")]
            ),
            1.0
        );
        assert_eq!(
            value(&before, "kekd_key_pairs", &[("state", "active")]),
            1.0
        );
        assert_eq!(value(&before, "kekd_degraded", &[]), 0.0);
        let gdk = value(
            &before,
            "kekd_kms_calls_total",
            &[("operation", "GenerateDataKey"), ("outcome", "ok")],
        );
        assert!(gdk >= 1.0);
        assert!(before
            .samples
            .iter()
            .any(|x| x.metric == "kekd_kms_call_duration_seconds_count"
                || matches!(x.value, prometheus_parse::Value::Histogram(_))
                    && x.metric.starts_with("kekd_kms_call_duration_seconds")));

        d.client().rotate().await.unwrap();
        let after = scrape(&d).await;
        assert_eq!(
            value(
                &after,
                "kekd_rotations_total",
                &[("reason", "change-key-now"), ("outcome", "success")]
            ),
            1.0
        );
        assert_eq!(
            value(&after, "kekd_key_pairs", &[("state", "retired")]),
            1.0
        );
        assert_eq!(
            value(
                &after,
                "kekd_key_pairs_by_wrapping_key",
                &[("wrapping_key_arn", &key_arn)]
            ),
            2.0
        );
        assert_eq!(
            value(
                &after,
                "kekd_kms_calls_total",
                &[("operation", "GenerateDataKey"), ("outcome", "ok")]
            ),
            gdk + 1.0
        );
        assert!(
            value(&after, "kekd_active_key_age_seconds", &[])
                < value(&before, "kekd_active_key_age_seconds", &[]) + 1.0
        );
    }
}

/// The systemd protocol without systemd: READY=1 once a key pair is active,
/// STATUS naming it, WATCHDOG=1 pings at half of WATCHDOG_USEC, RELOADING=1
/// with MONOTONIC_USEC then READY=1 on SIGHUP, STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn systemd_notify_ready_watchdog_reloading_stopping() {
    let (_moto, mut d) = daemon_with_key("kekd-notify").await;
    let active = d.wait_active().await.active_key_id.unwrap();
    assert!(d.stop().await.success());

    let path = d.dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&path).unwrap();
    d.env = vec![
        ("NOTIFY_SOCKET".into(), path.display().to_string()),
        ("WATCHDOG_USEC".into(), "400000".into()),
    ];
    d.spawn();

    let mut seen: Vec<String> = Vec::new();
    let ready = recv_until(&sock, &mut seen, "READY=1").await;
    assert!(
        ready.contains(&format!("STATUS=active key pair {active}")),
        "{ready}"
    );
    recv_until(&sock, &mut seen, "WATCHDOG=1").await;
    recv_until(&sock, &mut seen, "WATCHDOG=1").await;

    d.signal(libc::SIGHUP);
    let reloading = recv_until(&sock, &mut seen, "RELOADING=1").await;
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let after = recv_until(&sock, &mut seen, "READY=1").await;
    assert!(after.contains("STATUS=reload unchanged"), "{after}");

    d.signal(libc::SIGTERM);
    recv_until(&sock, &mut seen, "STOPPING=1").await;
    assert!(d.stop_wait().await.success());
}

/// Reads notify datagrams until one has a line starting with `want`.
async fn recv_until(sock: &tokio::net::UnixDatagram, seen: &mut Vec<String>, want: &str) -> String {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(r) => r.unwrap(),
            Err(_) => panic!("no {want} from kekd; got {seen:?}"),
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        seen.push(msg.clone());
        if msg.lines().any(|l| l.starts_with(want)) {
            return msg;
        }
    }
}

/// Under journald: no timestamps (journald has its own) and `<N>` priority
/// prefixes; with `[log] format = "json"`: one JSON object per line.
#[tokio::test(flavor = "multi_thread")]
async fn logs_suit_journald_and_json() {
    let (_moto, mut d) = daemon_with_key("kekd-logs").await;
    assert!(d.stop().await.success());
    std::fs::write(&d.log, "").unwrap();
    d.env = vec![("JOURNAL_STREAM".into(), "8:1234".into())];
    d.spawn();
    d.wait_active().await;
    assert!(d.stop().await.success());
    let log = d.log_text();
    let kekd_lines: Vec<&str> = log.lines().filter(|l| l.contains("kekd::")).collect();
    assert!(!kekd_lines.is_empty(), "{log}");
    for l in &kekd_lines {
        assert!(
            l.starts_with("<6>")
                || l.starts_with("<4>")
                || l.starts_with("<7>")
                || l.starts_with("<3>"),
            "{l}"
        );
        assert!(
            !l.contains("2026-") && !l.contains('\u{1b}'),
            "no timestamp, no colour: {l}"
        );
    }
    assert!(kekd_lines
        .iter()
        .any(|l| l.starts_with("<6>") && l.contains("kekd is serving")));

    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        text.replace("[kms]", "[log]\nformat = \"json\"\n\n[kms]"),
    )
    .unwrap();
    std::fs::write(&d.log, "").unwrap();
    d.env.clear();
    d.spawn();
    d.wait_active().await;
    assert!(d.stop().await.success());
    let log = d.log_text();
    let json: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        json.iter()
            .any(|v| v["fields"]["message"] == "kekd is serving" && v["level"] == "INFO"),
        "{log}"
    );
}

crate::on_both_stores! {
    /// Rewrap after a KMS key change: every key pair ends up under the new key
    /// (ReEncrypt), a second run changes nothing, the old key can be scheduled
    /// for deletion, and every private key still decrypts — under the new key.
    #[tokio::test(flavor = "multi_thread")]
    async fn rewrap_moves_every_key_pair_to_the_new_kms_key(store: Backend) {
        let moto = Moto::start().await;
        let (key_a, alias_a) = moto.create_key("kekd-rewrap-a").await;
        let (key_b, alias_b) = moto.create_key("kekd-rewrap-b").await;
        let d = TestDaemon::start(&moto, |dir| store.config(&moto, dir, &alias_a, "")).await;
        d.client().rotate().await.unwrap();
        d.client().rotate().await.unwrap();
        let before = d.history().await;
        write_config(&d, store.config(&moto, d.dir.path(), &alias_b, ""));
        let r: kekd::api::views::ReloadOutcome = d.client().reload().await.unwrap();
        assert_eq!(r.outcome, ReloadResult::Applied);
        let s: StatusView = d.client().status().await.unwrap();
        assert_eq!(s.key_pairs.by_wrapping_key.get(&key_a), Some(&3));
        assert_eq!(s.key_pairs.by_wrapping_key.get(&key_b), Some(&1));

        let (code, out, err) = d.kekctl(&["rewrap"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("rewrap done: 3 re-wrapped, 1 already under the current key, 0 failed"),
            "{out}"
        );
        let s: StatusView = d.client().status().await.unwrap();
        assert_eq!(
            s.key_pairs.by_wrapping_key.len(),
            1,
            "{:?}",
            s.key_pairs.by_wrapping_key
        );
        assert_eq!(s.key_pairs.by_wrapping_key.get(&key_b), Some(&4));

        // Idempotent, and streamed as JSON lines with --json.
        let (code, out, _) = d.kekctl(&["rewrap", "--json"]);
        assert_eq!(code, 0);
        let events: Vec<kekd::api::views::RewrapEvent> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            events.last(),
            Some(&kekd::api::views::RewrapEvent::Done {
                rewrapped: 0,
                skipped: 4,
                failed: 0
            })
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, kekd::api::views::RewrapEvent::Progress { .. }))
                .count(),
            4
        );

        // Retire the old key; everything still decrypts, under the new one.
        moto.kms()
            .schedule_key_deletion()
            .key_id(key_a.rsplit('/').next().unwrap())
            .pending_window_in_days(7)
            .send()
            .await
            .unwrap();
        let kms = moto.kms();
        let after = d.history().await;
        assert_eq!(after.keypairs.len(), 4);
        for k in &after.keypairs {
            let e = d.assert_decrypts(&kms, &k.id, &k.public_key_pem).await;
            assert_eq!(e.envelope.wrapping_key_arn, key_b);
        }
        // Same key pairs, same public keys (the reload added one, newest).
        for (b, a) in before.keypairs.iter().zip(after.keypairs.iter().skip(1)) {
            assert_eq!(
                (&b.id, &b.public_key_pem, b.created_at),
                (&a.id, &a.public_key_pem, a.created_at)
            );
        }
    }
}

/// A FIPS build says so everywhere an auditor looks (`--version`, status,
/// `/metrics`), and a default build never claims it.
#[tokio::test(flavor = "multi_thread")]
async fn the_build_says_whether_it_is_fips() {
    let fips = cfg!(feature = "fips");
    let (_moto, d) = daemon_with_key("kekd-fips").await;
    let (code, out, _) = kekd(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim_end().ends_with("(FIPS)"), fips, "{out}");
    let s: StatusView = d.client().status().await.unwrap();
    assert_eq!(s.fips, fips);
    let metrics = d.client().metrics().await.unwrap();
    let info = format!(
        "kekd_build_info{{version=\"{}\",fips=\"{fips}\"}} 1",
        s.version
    );
    assert!(metrics.lines().any(|l| l == info), "{info} in\n{metrics}");
    assert!(d.log_text().contains(if fips {
        "FIPS 140-3 (AWS-LC FIPS module)"
    } else {
        "not FIPS (AWS-LC)"
    }));
}

/// `[metrics] listen`: Prometheus scrapes `/metrics` over TCP; nothing else
/// is served there, and a non-loopback address needs explicit consent.
#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_listener_serves_only_metrics() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-metrics-tcp").await;
    let port = free_port();
    let d = TestDaemon::start(&moto, |dir| {
        kms_config(dir, &alias, "") + &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
    })
    .await;
    let get = |path: &str| {
        run(std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}{path}")))
    };
    let (code, out, err) = get("/metrics");
    assert_eq!(code, 0, "curl: {err}");
    assert!(out.ends_with("\n200"), "{out}");
    assert!(out.contains("kekd_key_pairs{state=\"active\"} 1"), "{out}");
    for path in ["/v1/status", "/v1/public-key", "/v1/keypairs", "/"] {
        let (_, out, _) = get(path);
        assert!(out.ends_with("\n404"), "{path}: {out}");
    }
    drop(d);
}

/// The shipped alert rules and Grafana dashboard name only metrics kekd
/// exports (promtool checks the rules' syntax in CI; this checks they would
/// ever fire, and that the panels would ever show data).
#[tokio::test(flavor = "multi_thread")]
async fn the_alert_rules_use_only_metrics_kekd_exports() {
    let (_moto, d) = daemon_with_key("kekd-alerts").await;
    let text = d.client().metrics().await.unwrap();
    let exported: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    // The alert rules and the Grafana dashboard (which must also parse).
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/kekd.json"
    ))
    .unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/prometheus/alerts.yml"
    ))
    .unwrap()
        + &dashboard;
    let registry =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics.rs")).unwrap();
    let mut used = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(name) = word.strip_prefix("kekd_") {
            let base = name.trim_end_matches("_bucket").trim_end_matches("_total");
            // A labelled counter appears at its first event; it must at
            // least be registered.
            assert!(
                exported.contains(&format!("kekd_{base}"))
                    || registry.contains(&format!("\"{base}\"")),
                "alerts.yml uses {word}, which kekd does not export"
            );
            used += 1;
        }
    }
    assert!(used >= 7, "the rules reference kekd's metrics");
}
