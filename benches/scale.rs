//! Organizations at scale (run with `scripts/bench`), printed, never
//! asserted; side by side in one run at 1, 1,000 and 10,000 organizations
//! (`KEKD_BENCH_ORGS=1,1000` for a shorter run):
//!
//! - start → serving every organization (the socket answers only once
//!   every stored organization is served), with no KMS call at start for
//!   organizations whose key pairs are already proven;
//! - resident memory (VmRSS) once started, idle, and per organization;
//! - per-organization `GET status`, `GET public-key` and `GET
//!   public-keys` (JWK Set), median of 300 each, as a ratio to 1
//!   organization;
//! - `GET /v1/orgs` one page of 50, median of 100, as a ratio to the same
//!   page at 1,000.
//!
//! The organizations are written straight into the store (as the history
//! fixture writes key pairs): one active key pair each, sharing one public
//! key, with placeholder envelopes — so the canary is off in these runs.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::*;
use kekd::domain::{OrgRecord, OrgSource, OrgSpec};
use kekd::store::{Expect, RedbRegistry, Registry};
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path) -> String {
    local_config(dir) + "[canary]\ninterval = \"off\"\n"
}

/// Writes `n - 1` organizations besides the declared one, each with one
/// active key pair; reports progress every 1,000.
async fn fixture(path: &std::path::Path, n: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let registry = RedbRegistry::open(path).await.unwrap();
    let started = Instant::now();
    for i in 1..n {
        let id = format!("org-{i:05}");
        let spec = OrgSpec {
            id: id.clone(),
            key_bits: Some(2048),
            ..OrgSpec::default()
        };
        let record = OrgRecord::new(spec, OrgSource::Api, chrono::Utc::now());
        registry.save_org(&record, Expect::Absent).await.unwrap();
        let store = registry.keys(&id).await.unwrap();
        fixture::write_history(&*store, 1).await;
        if i % 1000 == 0 {
            eprintln!(
                "  fixture: {i}/{n} organizations written ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

struct Figures {
    orgs: usize,
    start: Duration,
    rss_kib: u64,
    status: Duration,
    public_key: Duration,
    jwks: Duration,
    page: Duration,
}

async fn measure(n: usize) -> Figures {
    let mut d = TestDaemon::launch_local(config);
    fixture(&d.store_path(), n).await;
    let started = Instant::now();
    d.spawn();
    let last = if n > 1 {
        format!("org-{:05}", n - 1)
    } else {
        "acme".to_string()
    };
    let c = d.client().with_org(Some(last));
    let start = wait_for(
        Duration::from_secs(600),
        "every organization served",
        || {
            let c = c.clone();
            async move { c.status().await.ok().map(|_| started.elapsed()) }
        },
    )
    .await;
    d.wait_active().await;
    // Idle: let start-up work settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kib = rss_kib(d.pid());
    let (mut status, mut key, mut jwks, mut page) = (vec![], vec![], vec![], vec![]);
    for _ in 0..300 {
        let t = Instant::now();
        c.status().await.unwrap();
        status.push(t.elapsed());
        let t = Instant::now();
        c.public_key().await.unwrap();
        key.push(t.elapsed());
        let t = Instant::now();
        c.public_keys(None).await.unwrap();
        jwks.push(t.elapsed());
    }
    let all = d.client();
    for _ in 0..100 {
        let t = Instant::now();
        all.orgs(50, None).await.unwrap();
        page.push(t.elapsed());
    }
    d.stop().await;
    Figures {
        orgs: n,
        start,
        rss_kib,
        status: median(status),
        public_key: median(key),
        jwks: median(jwks),
        page: median(page),
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("KEKD_BENCH_ORGS")
        .unwrap_or_else(|_| "1,1000,10000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("KEKD_BENCH_ORGS: numbers, comma-separated")
        })
        .collect();
    let mut all = Vec::new();
    for n in sizes {
        eprintln!("scale: {n} organizations");
        let f = measure(n).await;
        println!(
            "{:>6} organizations: start -> serving {}, RSS {} MiB ({} KiB per organization), GET status {}, public-key {}, JWK Set {}, orgs page of 50 {}",
            f.orgs,
            ms(f.start),
            f.rss_kib / 1024,
            f.rss_kib / f.orgs as u64,
            ms(f.status),
            ms(f.public_key),
            ms(f.jwks),
            ms(f.page)
        );
        all.push(f);
    }
    let one = &all[0];
    for f in &all[1..] {
        let n = f.orgs;
        let ratio = |a: Duration, b: Duration| format!("{:.2}", b.as_secs_f64() / a.as_secs_f64());
        summary_row(
            &format!("scale: start -> serving, {n} organizations"),
            &ms(f.start),
            &format!("1 organization {}", ms(one.start)),
            &format!("{:.1}", f.start.as_secs_f64() / one.start.as_secs_f64()),
        );
        summary_row(
            &format!("scale: RSS idle, {n} organizations"),
            &format!("{} MiB", f.rss_kib / 1024),
            &format!("{} KiB per organization", f.rss_kib / n as u64),
            &format!("{:.1}", f.rss_kib as f64 / one.rss_kib as f64),
        );
        for (what, a, b) in [
            ("GET status", one.status, f.status),
            ("GET public-key", one.public_key, f.public_key),
            ("GET public-keys (JWK Set)", one.jwks, f.jwks),
        ] {
            summary_row(
                &format!("scale: {what}, 1 vs {n} organizations (speed ratio)"),
                &format!("median {}", ms(b)),
                &ms(a),
                &ratio(b, a),
            );
        }
    }
    if let (Some(k), Some(t)) = (
        all.iter().find(|f| f.orgs == 1000),
        all.iter().find(|f| f.orgs == 10_000),
    ) {
        summary_row(
            "scale: GET /v1/orgs page of 50, 1,000 vs 10,000 (speed ratio)",
            &format!("median {}", ms(t.page)),
            &ms(k.page),
            &format!("{:.2}", k.page.as_secs_f64() / t.page.as_secs_f64()),
        );
    }
}
