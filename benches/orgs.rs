//! Organizations benchmark (run with `scripts/bench`), printed, never
//! asserted; side by side in one run:
//!
//! - `org add` to the first key pair served (median of 9), with the local
//!   provider and with moto's KMS, beside what a customer cost before
//!   organizations: starting one more kekd process until it serves;
//! - per-organization `GET status` and `GET public-key` (median of 500
//!   each) with 1 organization and with 100 — the ratio should be ≈ 1;
//! - resident memory (VmRSS) of one kekd serving 1 and 100 organizations,
//!   beside 100 separate kekd processes serving one each.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::*;
use kekd::domain::OrgSpec;
use std::time::{Duration, Instant};

const ORGS: usize = 100;

fn spec(id: &str, kms: Option<&str>) -> OrgSpec {
    OrgSpec {
        id: id.into(),
        kms_key_arn: kms.map(str::to_string),
        key_bits: Some(2048),
        ..OrgSpec::default()
    }
}

/// Adds `n` organizations (`prefix-i`) and returns the time from each
/// add until its public key is served.
async fn adds(d: &TestDaemon, prefix: &str, n: usize, kms: Option<&str>) -> Vec<Duration> {
    let c = d.client();
    let mut times = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let started = Instant::now();
        c.org_add(&spec(&id, kms)).await.unwrap();
        c.clone().with_org(Some(id)).public_key().await.unwrap();
        times.push(started.elapsed());
    }
    times
}

async fn onboarding() {
    let mut local = TestDaemon::launch_local(local_config);
    local.spawn();
    local.wait_active().await;
    let local_add = median(adds(&local, "local", 9, None).await);
    let moto = Moto::start().await;
    let (key, _) = moto.create_key("orgs-bench").await;
    let kms = TestDaemon::start(&moto, |dir| kms_config(dir, &key, "")).await;
    let kms_add = median(adds(&kms, "kms", 9, Some(&key)).await);
    // Before organizations: one more process per customer.
    let mut starts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut d = TestDaemon::launch_local(local_config);
        d.spawn();
        d.wait_active().await;
        starts.push(started.elapsed());
        d.stop().await;
    }
    let start = median(starts);
    println!("org add -> first key pair served: local {}, moto KMS {}; a new kekd process -> first key served: {}", ms(local_add), ms(kms_add), ms(start));
    summary_row(
        "orgs: org add → first key pair served (local)",
        &format!("median {}", ms(local_add)),
        &format!("new process {}", ms(start)),
        &format!("{:.2}", local_add.as_secs_f64() / start.as_secs_f64()),
    );
    summary_row(
        "orgs: org add → first key pair served (moto KMS)",
        &format!("median {}", ms(kms_add)),
        &format!("new process {}", ms(start)),
        &format!("{:.2}", kms_add.as_secs_f64() / start.as_secs_f64()),
    );
}

/// Median latency of `GET status` and `GET public-key` for one
/// organization.
async fn latencies(c: &kekd::api::client::Client) -> (Duration, Duration) {
    let (mut status, mut key) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        let t = Instant::now();
        c.status().await.unwrap();
        status.push(t.elapsed());
        let t = Instant::now();
        c.public_key().await.unwrap();
        key.push(t.elapsed());
    }
    (median(status), median(key))
}

async fn scale() {
    let mut d = TestDaemon::launch_local(local_config);
    d.spawn();
    d.wait_active().await;
    let c = d.client().with_org(Some("acme".into()));
    let (s1, k1) = latencies(&c).await;
    let rss1 = rss_kib(d.pid());
    adds(&d, "org", ORGS - 1, None).await;
    let (s100, k100) = latencies(&c).await;
    let rss100 = rss_kib(d.pid());
    println!(
        "per-organization GET status: {} at 1 organization, {} at {ORGS}",
        ms(s1),
        ms(s100)
    );
    println!(
        "per-organization GET public-key: {} at 1 organization, {} at {ORGS}",
        ms(k1),
        ms(k100)
    );
    summary_row(
        &format!("orgs: GET status, {ORGS} organizations vs 1"),
        &format!("median {}", ms(s100)),
        &ms(s1),
        &format!("{:.2}", s100.as_secs_f64() / s1.as_secs_f64()),
    );
    summary_row(
        &format!("orgs: GET public-key, {ORGS} organizations vs 1"),
        &format!("median {}", ms(k100)),
        &ms(k1),
        &format!("{:.2}", k100.as_secs_f64() / k1.as_secs_f64()),
    );
    d.stop().await;
    // Before organizations: a process per customer.
    let mut procs = Vec::new();
    for _ in 0..ORGS {
        let mut p = TestDaemon::launch_local(local_config);
        p.spawn();
        procs.push(p);
    }
    for p in &procs {
        p.wait_active().await;
    }
    let rss_procs: u64 = procs.iter().map(|p| rss_kib(p.pid())).sum();
    for p in &mut procs {
        p.stop().await;
    }
    println!("RSS: one kekd with 1 organization {} MiB, with {ORGS} {} MiB; {ORGS} kekd processes {} MiB", rss1 / 1024, rss100 / 1024, rss_procs / 1024);
    summary_row(
        &format!("orgs: RSS, one kekd with {ORGS} organizations vs {ORGS} processes"),
        &format!("{} MiB", rss100 / 1024),
        &format!("{} MiB", rss_procs / 1024),
        &format!("{:.3}", rss100 as f64 / rss_procs as f64),
    );
    summary_row(
        &format!("orgs: RSS, one kekd with {ORGS} organizations vs 1"),
        &format!("{} MiB", rss100 / 1024),
        &format!("{} MiB", rss1 / 1024),
        &format!("{:.2}", rss100 as f64 / rss1 as f64),
    );
}

#[tokio::main]
async fn main() {
    onboarding().await;
    scale().await;
}
