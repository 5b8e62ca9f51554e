//! Fleet-mode benchmark (run with `scripts/bench`): three kekd processes
//! sharing one DynamoDB table on moto. Printed, never asserted.
//!
//! - propagation: from `kekctl rotate` on instance A until B and C serve
//!   the new public key (median, min–max of 7 rotations at random phases
//!   of their refresh timers), at the default
//!   refresh interval (5 s) and at 1 s, and at 1 s with 300
//!   organizations in the table (`KEKD_BENCH_FLEET_ORGS`), one of them
//!   rotated — from the request and from A's activation;
//! - DynamoDB requests per instance per hour when idle, counted by a proxy
//!   in front of moto over 30 s and scaled, at 1 and at 300
//!   organizations (canaries off: theirs is a per-organization cost of
//!   its own interval). 300 by default because moto, one Python process
//!   whose index queries scan the table, takes minutes to serve the start
//!   of three members at 1,000; kekd's own cost per refresh does not
//!   depend on the number (`tests/fleet_scale.rs` counts the requests);
//! - `GET /v1/status` latency on an instance whose store is black-holed,
//!   beside the same instance healthy (medians of 200 requests).

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::fixture::write_orgs_into;
use harness::fleet::{create_table, dynamodb, member_with, without_canary};
use harness::*;
use kekd::api::views::{ServiceState, StatusView};
use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The organization rotated and watched: the declared one, or one in the
/// middle of the table's.
fn watched_org(orgs: usize) -> String {
    if orgs > 1 {
        format!("org-{:05}", orgs / 2)
    } else {
        "acme-test".into()
    }
}

async fn served(d: &TestDaemon, org: &str) -> Option<String> {
    d.client()
        .with_org(Some(org.into()))
        .public_key()
        .await
        .ok()
        .map(|p| p.id)
}

/// A table on moto with `orgs` organizations (the declared one and
/// `orgs - 1` written directly).
async fn table_with(orgs: usize) -> (Moto, String) {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet-bench").await;
    create_table(&moto, "kekd-bench");
    if orgs > 1 {
        let registry = kekd::store::DynamoRegistry::with_client(dynamodb(&moto), "kekd-bench")
            .await
            .unwrap();
        write_orgs_into(&registry, orgs, |_| Some(kms.clone())).await;
    }
    (moto, kms)
}

/// A member, started, once it serves every one of `orgs` organizations.
async fn start(moto: &Moto, kms: &str, endpoint: &str, refresh: &str, orgs: usize) -> TestDaemon {
    let mut m = member_with(moto, kms, "kekd-bench", endpoint, refresh);
    without_canary(&m);
    m.spawn();
    // A start reads every organization: at 1,000 on moto (one Python
    // process) that takes longer than the harness's usual minute.
    let declared = m.client().with_org(Some("acme-test".into()));
    wait_for(Duration::from_secs(600), "the member to serve", || async {
        declared.public_key().await.ok()
    })
    .await;
    if orgs > 1 {
        // Organizations are made in the order of their ids: the last one
        // served means every one is.
        let c = m.client().with_org(Some(format!("org-{:05}", orgs - 1)));
        wait_for(
            Duration::from_secs(600),
            "every organization served",
            || async { c.public_key().await.ok() },
        )
        .await;
    }
    m
}

async fn propagation(refresh: &str, orgs: usize) {
    let (moto, kms) = table_with(orgs).await;
    let org = watched_org(orgs);
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(start(&moto, &kms, &moto.endpoint, refresh, orgs).await);
    }
    let period = humantime::parse_duration(refresh).unwrap();
    let (mut times, mut after) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        // A pause of a random fraction of the refresh interval, so each
        // rotation lands at another phase of B's and C's refresh timers
        // (back to back, the last member to refresh would always be a
        // whole interval away).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        tokio::time::sleep(period.mul_f64(f64::from(nanos % 1000) / 1000.0)).await;
        let started = Instant::now();
        let new = members[0]
            .client()
            .with_org(Some(org.clone()))
            .rotate()
            .await
            .unwrap()
            .id;
        let activated = Instant::now();
        wait_for(Duration::from_secs(60), "B and C to serve it", || async {
            (served(&members[1], &org).await? == new && served(&members[2], &org).await? == new)
                .then_some(())
        })
        .await;
        times.push(started.elapsed());
        after.push(activated.elapsed());
    }
    let (med, min, max) = median(times);
    let (after_med, _, after_max) = median(after);
    summary_row(
        &format!("fleet: rotate on A → B and C serve it (refresh {refresh}, {orgs} org.)"),
        &format!("median {}", ms(med)),
        &format!(
            "after A's activation: median {}, max {}",
            ms(after_med),
            ms(after_max)
        ),
        &format!("{}–{}", ms(min), ms(max)),
    );
    println!(
        "rotate on A -> B and C serve it, refresh {refresh:>3}, {orgs} organizations: median {:>10}  (min {}, max {}; after A's activation: median {}, max {}; 7 rotations)",
        ms(med),
        ms(min),
        ms(max),
        ms(after_med),
        ms(after_max)
    );
}

async fn idle_requests_and_outage_latency(orgs: usize) {
    let (moto, kms) = table_with(orgs).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let mut d = start(&moto, &kms, &proxy.endpoint, "5s", orgs).await;
    // Past the first read of the revision (a full one) and the start's
    // reads of every head.
    wait_for(
        Duration::from_secs(120),
        "the start's reads to end",
        || async {
            let before = proxy.requests().values().sum::<u64>();
            tokio::time::sleep(Duration::from_secs(6)).await;
            (proxy.requests().values().sum::<u64>() - before <= 2).then_some(())
        },
    )
    .await;
    let before: u64 = proxy.requests().values().sum();
    let window = Duration::from_secs(30);
    tokio::time::sleep(window).await;
    let by_op = proxy.requests();
    let n = by_op.values().sum::<u64>() - before;
    println!(
        "DynamoDB requests per idle instance, refresh 5s, {orgs} organizations: {} per hour ({n} in {}s; by operation since start: {by_op:?})",
        n * 3600 / window.as_secs(),
        window.as_secs()
    );
    if orgs > 1 {
        // The outage latency is measured at one organization.
        summary_row(
            &format!("fleet: DynamoDB requests per idle instance, {orgs} org."),
            &format!("{} per hour", n * 3600 / window.as_secs()),
            "-",
            "-",
        );
        d.stop().await;
        return;
    }

    let c = d.client();
    let status_latency = || async {
        let mut lat = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            let _: StatusView = c.status().await.unwrap();
            lat.push(t.elapsed());
        }
        median(lat)
    };
    let (healthy, _, healthy_max) = status_latency().await;
    proxy.set(Fault::BlackHole).await;
    wait_for(Duration::from_secs(60), "the outage to show", || async {
        let s: StatusView = c.status().await.ok()?;
        (s.state == ServiceState::Degraded).then_some(())
    })
    .await;
    let (dark, _, dark_max) = status_latency().await;
    summary_row(
        "fleet: GET /v1/status, DynamoDB black-holed",
        &format!("median {}", ms(dark)),
        &format!("healthy {}", ms(healthy)),
        &format!("{:.2}×", dark.as_secs_f64() / healthy.as_secs_f64()),
    );
    summary_row(
        &format!("fleet: DynamoDB requests per idle instance, {orgs} org."),
        &format!("{} per hour", n * 3600 / window.as_secs()),
        "-",
        "-",
    );

    println!(
        "GET /v1/status, store black-holed: median {} (max {}); healthy: median {} (max {}); ratio {:.2}",
        ms(dark),
        ms(dark_max),
        ms(healthy),
        ms(healthy_max),
        dark.as_secs_f64() / healthy.as_secs_f64()
    );
    d.stop().await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let orgs = std::env::var("KEKD_BENCH_FLEET_ORGS")
        .ok()
        .map(|n| n.parse().expect("KEKD_BENCH_FLEET_ORGS is a number"))
        .unwrap_or(300);
    propagation("5s", 1).await;
    propagation("1s", 1).await;
    propagation("1s", orgs).await;
    idle_requests_and_outage_latency(1).await;
    idle_requests_and_outage_latency(orgs).await;
}
