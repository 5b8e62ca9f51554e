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
//!   page at 1,000;
//! - `GET /metrics`, median of 30: a scrape walks every organization for
//!   its per-organization series, so this one grows with them.
//!
//! - player unwraps (cache off: each one a KMS Decrypt through moto) while
//!   20 organizations rotate as fast as they can under a 50 requests/s
//!   budget, p99 beside idle: the budget serves unwraps first.
//!
//! The organizations are written straight into the store (as the history
//! fixture writes key pairs): one active key pair each, sharing one public
//! key, with placeholder envelopes — so the canary is off in these runs.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::*;
use kekd::domain::OrgSpec;
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path) -> String {
    local_config(dir) + "[canary]\ninterval = \"off\"\n"
}

struct Figures {
    orgs: usize,
    start: Duration,
    rss_kib: u64,
    status: Duration,
    public_key: Duration,
    jwks: Duration,
    page: Duration,
    metrics: Duration,
}

async fn measure(n: usize) -> Figures {
    let mut d = TestDaemon::launch_local(config);
    write_orgs(&d.store_path(), n, |_| None).await;
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
    // A scrape walks every organization (its per-organization series).
    let mut scrapes = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        all.metrics().await.unwrap();
        scrapes.push(t.elapsed());
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
        metrics: median(scrapes),
    }
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 99 / 100]
}

/// `n` unwraps one after the other; their latencies.
async fn unwraps(
    c: &kekd::api::client::Client,
    id: &str,
    wrapped: &[u8],
    n: usize,
) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        c.unwrap(id, wrapped).await.unwrap();
        out.push(t.elapsed());
    }
    out
}

async fn storm() {
    let moto = Moto::start().await;
    let (key, _) = moto.create_key("storm-0").await;
    let d = TestDaemon::start(&moto, |dir| {
        kms_config(dir, &key, "[unwrap]\ncache_max = 0\n")
            .replace("[kms]\n", "[kms]\nmax_requests_per_second = 50\n")
    })
    .await;
    let c = d.client();
    let mut orgs = Vec::new();
    for i in 0..20 {
        let (k, _) = moto.create_key(&format!("storm-{}", i + 1)).await;
        let id = format!("storm-{i}");
        c.org_add(&OrgSpec {
            id: id.clone(),
            kms_key_arn: Some(k),
            key_bits: Some(2048),
            ..OrgSpec::default()
        })
        .await
        .unwrap();
        orgs.push(id);
    }
    let player = c.clone().with_org(Some(orgs[0].clone()));
    let p = player.public_key().await.unwrap();
    let mut sealed = Vec::new();
    kekd::recording::seal(
        &mut &b"x"[..],
        &mut sealed,
        &p.id,
        &decrypt::pem_der(&p.pem),
        |_| {},
    )
    .unwrap();
    let h = kekd::recording::Header::read(&mut &sealed[..]).unwrap();
    let idle = p99(unwraps(&player, &p.id, &h.wrapped_key, 200).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rotators: Vec<_> = orgs[1..]
        .iter()
        .map(|o| {
            let (oc, stop) = (c.clone().with_org(Some(o.clone())), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = oc.rotate().await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let during = p99(unwraps(&player, &p.id, &h.wrapped_key, 200).await);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rotations = 0;
    for r in rotators {
        rotations += r.await.unwrap();
    }
    println!(
        "unwrap p99: idle {}, while 19 organizations rotate under a 50/s budget {} ({rotations} rotations meanwhile)",
        ms(idle),
        ms(during)
    );
    summary_row(
        "scale: unwrap p99 during a rotation storm vs idle (budget 50/s)",
        &ms(during),
        &format!("idle {}", ms(idle)),
        &format!("{:.2}", during.as_secs_f64() / idle.as_secs_f64()),
    );
}

#[tokio::main]
async fn main() {
    storm().await;
    let sizes = bench_sizes("1,1000,10000");
    let mut all = Vec::new();
    for n in sizes {
        eprintln!("scale: {n} organizations");
        let f = measure(n).await;
        println!(
            "{:>6} organizations: start -> serving {}, RSS {} MiB, GET status {}, public-key {}, JWK Set {}, orgs page of 50 {}, /metrics {}",
            f.orgs,
            ms(f.start),
            f.rss_kib / 1024,
            ms(f.status),
            ms(f.public_key),
            ms(f.jwks),
            ms(f.page),
            ms(f.metrics)
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
        // Per organization: what each one beyond the first adds.
        let per_org = f.rss_kib.saturating_sub(one.rss_kib) / (n as u64 - 1).max(1);
        summary_row(
            &format!("scale: RSS idle, {n} organizations"),
            &format!("{} MiB", f.rss_kib / 1024),
            &format!("{per_org} KiB per organization beyond the first"),
            &format!("{:.1}", f.rss_kib as f64 / one.rss_kib as f64),
        );
        summary_row(
            &format!("scale: GET /metrics (walks every organization), {n} organizations"),
            &format!("median {}", ms(f.metrics)),
            &format!("1 organization {}", ms(one.metrics)),
            &format!("{:.1}", f.metrics.as_secs_f64() / one.metrics.as_secs_f64()),
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
