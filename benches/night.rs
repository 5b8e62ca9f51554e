//! A night of daily rotations (run with `scripts/bench`), printed, never
//! asserted: every organization's cadence is daily at one instant, as
//! 10,000 customers at midnight in one time zone would be, and the daemon
//! prepares their next key pairs over a compressed preparation window
//! (`KEKD_BENCH_NIGHT_WINDOW`, default 120 s; in production the default
//! window is 2 hours) so the instant only flips pointers. Two runs:
//!
//! - **10,000 organizations on the local key provider**
//!   (`KEKD_BENCH_NIGHT_ORGS`): when each activation happened against its
//!   instant, KMS (provider) calls and key generations at the instant, how
//!   the preparations spread over the window, and the daemon's CPU seconds
//!   in the window, at the instant and idle. X-Wing key pairs, so the run
//!   measures kekd and not 10,000 RSA generations; the RSA-3072 cost of a
//!   night is the measured cost of one generation times the organizations.
//! - **1,000 organizations with their own KMS keys in moto**
//!   (`KEKD_BENCH_NIGHT_KMS_ORGS`), behind the fault proxy's simulated
//!   account quota of 40 requests/s and a budget of 30/s (plus 5/s for
//!   DescribeKey): the most KMS requests the account saw in any second of
//!   the night, and the throttles.
//!
//! The organizations are written straight into the store (one active key
//! pair each, placeholder envelopes), so the canary is off.

#[path = "../tests/harness/mod.rs"]
mod harness;

use chrono::Timelike;
use harness::fixture::write_org_specs_into;
use harness::*;
use kekd::domain::{KeyState, OrgSpec};
use kekd::store::Registry;
use kekd::time::Timestamp;
use std::time::{Duration, Instant};

const KEY_TYPE: &str = "x25519-mlkem768";
const QUOTA: usize = 40;
const BUDGET: usize = 30;
const DESCRIBE_BUDGET: usize = 5;

/// The daemon's user and system CPU seconds so far.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime
    // are the 12th and 13th of them, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// What one night showed.
struct Night {
    orgs: usize,
    lags: Vec<Duration>,
    early: usize,
    calls_at_instant: usize,
    generated_at_instant: usize,
    twice: usize,
    created: Vec<Timestamp>,
    cpu_window: f64,
    cpu_instant: f64,
    instant_phase: Duration,
    cpu_idle_per_hour: f64,
    peak_per_second: usize,
    throttled: u64,
}

/// The daily cadence at `t`'s time of day (UTC).
fn daily_at(t: Timestamp) -> String {
    format!("{} {} {} * * *", t.second(), t.minute(), t.hour())
}

/// The organization ids of a daemon whose file declares `first`.
fn ids(first: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i == 0 {
                first.to_string()
            } else {
                format!("org-{i:05}")
            }
        })
        .collect()
}

async fn night(n: usize, window: Duration, kms: Option<&Moto>) -> Night {
    let mut proxy = None;
    let mut keys = Vec::new();
    if let Some(moto) = kms {
        let p = proxy.insert(FaultProxy::start(&moto.endpoint).await);
        p.set_quota(Some(QUOTA));
        for i in 0..n {
            keys.push(moto.create_key(&format!("night-{i:05}")).await.0);
        }
    }
    // The instant: after the fixture, the start and the whole window.
    let instant = chrono::Utc::now()
        + chrono::Duration::from_std(
            Duration::from_millis(2 * n as u64) + Duration::from_secs(60) + window,
        )
        .unwrap();
    let instant = instant.with_nanosecond(0).unwrap();
    let cadence = daily_at(instant);
    let top = format!(
        "cadence = \"{cadence}\"\ntimezone = \"UTC\"\nprepare_window = \"{}\"\n",
        humantime::format_duration(window)
    );
    let (mut d, first) = match proxy.as_ref() {
        None => (
            TestDaemon::launch_local(|dir| {
                local_config(dir).replace("cadence = \"never\"\n", &top)
                    + "[canary]\ninterval = \"off\"\n"
            }),
            "acme",
        ),
        Some(p) => {
            let extra = "[canary]\ninterval = \"off\"\n";
            let d = TestDaemon::launch_via(&p.endpoint, |dir| {
                kms_config(dir, &keys[0], extra)
                    .replace("cadence = \"never\"\n", &top)
                    .replace("[kms]\n", &format!("[kms]\nmax_requests_per_second = {BUDGET}\nmax_describe_key_per_second = {DESCRIBE_BUDGET}\n"))
            });
            (d, "acme-test")
        }
    };
    {
        std::fs::create_dir_all(d.store_path().parent().unwrap()).unwrap();
        let registry = kekd::store::RedbRegistry::open(&d.store_path())
            .await
            .unwrap();
        let spec = |i| OrgSpec {
            kms_key_arn: keys.get(i).cloned(),
            cadence: Some(cadence.clone()),
            timezone: Some("UTC".into()),
            key_type: Some(KEY_TYPE.into()),
            ..OrgSpec::default()
        };
        // As a rotation under this cadence leaves it: the next one due at
        // the instant.
        let schedule = kekd::domain::Schedule {
            last_rotation_at: Some(chrono::Utc::now()),
            next_rotation_at: Some(instant),
        };
        write_org_specs_into(&registry, n, spec, &schedule).await;
    }
    // Every key pair made from here on is the daemon's.
    let spawned = chrono::Utc::now();
    d.spawn();
    let ids = ids(first, n);
    let last = d.client().with_org(Some(ids[n - 1].clone()));
    let audit = wait_for(
        Duration::from_secs(600),
        "every organization served",
        || {
            let c = last.clone();
            async move { c.status().await.ok() }
        },
    )
    .await
    .audit
    .path;
    let window_start = instant - chrono::Duration::from_std(window).unwrap();
    let wait_until = |t: Timestamp| async move {
        if let Ok(left) = (t - chrono::Utc::now()).to_std() {
            tokio::time::sleep(left).await;
        }
    };
    if chrono::Utc::now() > window_start {
        eprintln!(
            "night: the window began before every organization was served; the spread is off"
        );
    }
    // Idle (revocation probes, start-up checks spread over the first
    // minutes): the 20 s before the window.
    let idle = Duration::from_secs(20);
    wait_until(window_start - chrono::Duration::from_std(idle).unwrap()).await;
    let cpu_idle = cpu_seconds(d.pid());
    wait_until(window_start).await;
    let cpu0 = cpu_seconds(d.pid());
    eprintln!("night: {n} organizations preparing until {instant}");
    wait_until(instant).await;
    let cpu1 = cpu_seconds(d.pid());
    // Until every organization's scheduled rotation is counted.
    let client = d.client();
    let started = Instant::now();
    while scheduled_rotations(&client).await < n && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu2 = cpu_seconds(d.pid());
    let instant_phase = started.elapsed();
    d.stop().await;

    // The store, read after the stop: every organization's key pairs.
    let registry = kekd::store::RedbRegistry::open(&d.store_path())
        .await
        .unwrap();
    let (mut lags, mut early, mut generated_at_instant, mut twice) = (Vec::new(), 0, 0, 0);
    let mut created = Vec::new();
    let mut last_activation = instant;
    for id in &ids {
        let store = registry.keys(id).await.unwrap();
        // Not the declared organization's first key pair.
        let made: Vec<_> = kekd::store::decodable(store.list().await.unwrap())
            .into_iter()
            .filter(|r| r.created_at > spawned && r.reason != kekd::domain::Reason::Initial)
            .collect();
        twice += usize::from(made.len() > 1);
        generated_at_instant += made.iter().filter(|r| r.created_at >= instant).count();
        created.extend(made.iter().map(|r| r.created_at));
        if let Some(a) = made.iter().find(|r| r.state == KeyState::Active) {
            let at = a.activated_at.unwrap();
            last_activation = last_activation.max(at);
            match (at - instant).to_std() {
                Ok(lag) => lags.push(lag),
                Err(_) => early += 1,
            }
        }
    }
    // Provider calls between the instant and the last activation, and the
    // most in any one second of the night.
    let text = std::fs::read_to_string(&audit).unwrap_or_default();
    let mut calls_at_instant = 0;
    let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(at) = v["at"].as_str().and_then(|a| a.parse::<Timestamp>().ok()) else {
            continue;
        };
        if v["event"]["type"] == "kms_call" {
            *per_second.entry(at.timestamp()).or_default() += 1;
            // A key pair's calls, not the revocation probes and start-up
            // checks that go on all day whatever rotates.
            let for_key_pair = v["event"]["encryption_context"]["key-pair-id"]
                .as_str()
                .is_some_and(|k| k != "kek-revocation-probe");
            calls_at_instant += usize::from(for_key_pair && at >= instant && at <= last_activation);
        }
    }
    Night {
        orgs: n,
        lags,
        early,
        calls_at_instant,
        generated_at_instant,
        twice,
        created,
        cpu_window: cpu1 - cpu0,
        cpu_instant: cpu2 - cpu1,
        instant_phase,
        cpu_idle_per_hour: (cpu0 - cpu_idle) * 3600.0 / idle.as_secs_f64(),
        // At the proxy (every KMS request the account made, DescribeKey
        // too), else the trail's provider calls.
        peak_per_second: proxy.as_ref().map_or_else(
            || per_second.values().copied().max().unwrap_or(0),
            FaultProxy::peak_per_second,
        ),
        throttled: proxy.as_ref().map_or(0, FaultProxy::throttled),
    }
}

/// Successful scheduled rotations so far, as `/metrics` counts them.
async fn scheduled_rotations(c: &kekd::api::client::Client) -> usize {
    let Ok(text) = c.metrics().await else {
        return 0;
    };
    text.lines()
        .filter(|l| {
            l.starts_with("kekd_rotations")
                && l.contains("reason=\"scheduled\"")
                && l.contains("outcome=\"success\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

fn pct(v: &[Duration], p: usize) -> Duration {
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn report(what: &str, f: &Night, window: Duration) {
    let mut lags = f.lags.clone();
    lags.sort();
    let late = lags.iter().filter(|l| **l > Duration::from_secs(1)).count();
    let mut created = f.created.clone();
    created.sort();
    let spread = match (created.first(), created.last()) {
        (Some(a), Some(b)) => (*b - *a).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    // The busiest tenth of the window against an even spread.
    let mut tenths = [0usize; 10];
    if let Some(first) = created.first() {
        let w = window.as_secs_f64() * 0.9;
        for c in &created {
            let x = (*c - *first).to_std().unwrap_or_default().as_secs_f64() / w;
            tenths[((x * 10.0) as usize).min(9)] += 1;
        }
    }
    // Above what the idle daemon spends meanwhile (revocation probes).
    let idle_rate = f.cpu_idle_per_hour / 3600.0;
    let net_window = (f.cpu_window - idle_rate * window.as_secs_f64()).max(0.0);
    let net_instant = (f.cpu_instant - idle_rate * f.instant_phase.as_secs_f64()).max(0.0);
    let busiest = *tenths.iter().max().unwrap() as f64 / (created.len().max(1) as f64 / 10.0);
    println!(
        "{what}: {n} organizations, {a} activated ({e} before the instant, {late} later than 1 s); lag median {m}, p99 {p}, max {x}; \
         {c} provider calls for key pairs and {g} key generations between the instant and the last activation; {t} organizations rotated twice; \
         preparations spread over {s:.0} s of a {w:.0} s window (busiest tenth {b:.2}x even); CPU {cw:.1} s in the window ({nw:.1} s above idle), {ci:.2} s from the instant until every rotation was counted ({ni:.2} s above idle), {idle:.1} s per idle hour; \
         peak {pk} KMS requests in one second, {th} throttled",
        n = f.orgs,
        a = lags.len(),
        e = f.early,
        m = ms(pct(&lags, 50)),
        p = ms(pct(&lags, 99)),
        x = ms(lags.last().copied().unwrap_or_default()),
        c = f.calls_at_instant,
        g = f.generated_at_instant,
        t = f.twice,
        s = spread.as_secs_f64(),
        w = window.as_secs_f64(),
        b = busiest,
        cw = f.cpu_window,
        ci = f.cpu_instant,
        nw = net_window,
        ni = net_instant,
        idle = f.cpu_idle_per_hour,
        pk = f.peak_per_second,
        th = f.throttled,
    );
    let n = f.orgs;
    summary_row(
        &format!("{what}: slowest activation after its instant, {n} organizations"),
        &ms(lags.last().copied().unwrap_or_default()),
        &format!("aim 1 s; {late} late, {} not activated", n - lags.len()),
        &format!(
            "{:.2}",
            lags.last().copied().unwrap_or_default().as_secs_f64()
        ),
    );
    summary_row(
        &format!("{what}: provider calls / key generations at the instant"),
        &format!("{} / {}", f.calls_at_instant, f.generated_at_instant),
        "aim 0 / 0",
        "-",
    );
    summary_row(
        &format!("{what}: CPU above idle, in the window / at the instant"),
        &format!("{net_window:.1} s / {net_instant:.2} s"),
        &format!("{:.1} s per idle hour", f.cpu_idle_per_hour),
        "-",
    );
}

/// The CPU of one RSA-3072 generation: the median of 5 (one thread).
fn rsa3072_generation() -> Duration {
    let key = kekd::domain::KeyType::Rsa(kekd::domain::KeyBits::Rsa3072);
    median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                kekd::keypair::generate(key).unwrap();
                t.elapsed()
            })
            .collect(),
    )
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let window = std::env::var("KEKD_BENCH_NIGHT_WINDOW")
        .ok()
        .and_then(|w| humantime::parse_duration(&w).ok())
        .unwrap_or(Duration::from_secs(120));
    // First, on an idle machine.
    let rsa = rsa3072_generation();
    let local = env_usize("KEKD_BENCH_NIGHT_ORGS", 10_000);
    let f = night(local, window, None).await;
    report("night (local)", &f, window);
    let day = rsa.as_secs_f64() * local as f64;
    let prod = kekd::config::defaults::PREPARE_WINDOW;
    println!(
        "RSA-3072: {} per generation; {local} daily rotations cost {day:.0} CPU-s a day, spread over the default {} h window: {:.2} of a core during it, none at the instant",
        ms(rsa),
        prod.as_secs() / 3600,
        day / (prod.as_secs_f64() * 0.9)
    );
    summary_row(
        &format!("night: RSA-3072 CPU for {local} daily rotations"),
        &format!("{day:.0} CPU-s per day"),
        &format!(
            "{:.2} of a core over the {} h window",
            day / (prod.as_secs_f64() * 0.9),
            prod.as_secs() / 3600
        ),
        "-",
    );
    let with_kms = env_usize("KEKD_BENCH_NIGHT_KMS_ORGS", 1_000);
    if with_kms > 0 {
        let moto = Moto::start().await;
        let f = night(with_kms, window, Some(&moto)).await;
        report("night (KMS)", &f, window);
        summary_row(
            &format!("night (KMS): peak KMS requests per second, {with_kms} organizations"),
            &format!("{} /s, {} throttled", f.peak_per_second, f.throttled),
            &format!("budget {BUDGET}/s + {DESCRIBE_BUDGET}/s DescribeKey, quota {QUOTA}/s"),
            &format!(
                "{:.2}",
                f.peak_per_second as f64 / (BUDGET + DESCRIBE_BUDGET) as f64
            ),
        );
    }
}
