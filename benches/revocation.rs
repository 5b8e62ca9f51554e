//! How fast a customer's revocation is noticed (run with `scripts/bench`),
//! printed, never asserted: at 1 and 1,000 organizations
//! (`KEKD_BENCH_ORGS`), at the default bound of 5 minutes
//! (`KEKD_BENCH_BOUND=1m` for a shorter run), with the default KMS request
//! budget. Nothing rotates, nothing unwraps and the canary is off: only the
//! probe can notice.
//!
//! Each run: every organization with its own KMS key in moto, written
//! straight into the store (one active key pair each); the daemon started
//! through the fault proxy; then the keys of up to 20 organizations,
//! spread over the set, are refused (`DisabledException`) at one instant
//! and each one's status is watched until it says `disabled`. Printed:
//! median and slowest time to notice against the bound, and the probe's
//! KMS requests per second meanwhile (expected: two — a GenerateDataKey
//! and a Decrypt — per organization per four fifths of the bound).

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::fault_proxy::Rule;
use harness::*;
use kekd::domain::{KeyProblemKind, NoticedBy};
use std::time::{Duration, Instant};

struct Noticed {
    orgs: usize,
    revoked: usize,
    median: Duration,
    slowest: Duration,
    probes_per_second: f64,
}

async fn measure(n: usize, bound: Duration) -> Noticed {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        keys.push(moto.create_key(&format!("rev-{i:05}")).await.0);
    }
    let extra = format!(
        "[customer_keys]\nnotice_revocation_within = \"{}\"\n\
         [overrides]\nallow_frequent_checks = true\n\
         [canary]\ninterval = \"off\"\n",
        humantime::format_duration(bound)
    );
    let mut d = TestDaemon::launch_via(&proxy.endpoint, |dir| kms_config(dir, &keys[0], &extra));
    write_orgs(&d.store_path(), n, |i| Some(keys[i].clone())).await;
    d.spawn();
    let id = |i: usize| {
        if i == 0 {
            "acme-test".to_string()
        } else {
            format!("org-{i:05}")
        }
    };
    let last = d.client().with_org(Some(id(n - 1)));
    wait_for(
        Duration::from_secs(600),
        "every organization served",
        || {
            let c = last.clone();
            async move { c.status().await.ok().map(|_| ()) }
        },
    )
    .await;
    // The declared organization makes its first key pair at start: done
    // before anything is revoked, so only the probe can notice.
    d.wait_active().await;
    let revoked: Vec<usize> = if n == 1 {
        vec![0]
    } else {
        (0..20.min(n)).map(|k| k * (n - 1) / 20 + 1).collect()
    };
    let count = |p: &FaultProxy| {
        let r = p.requests();
        r.get("Decrypt").copied().unwrap_or(0) + r.get("GenerateDataKey").copied().unwrap_or(0)
    };
    let before = count(&proxy);
    let t0 = Instant::now();
    for &i in &revoked {
        let kid = keys[i].rsplit('/').next().unwrap().to_string();
        proxy.add_rule(Rule::containing(Fault::disabled(), &kid));
    }
    let mut pending: Vec<(usize, kekd::api::client::Client)> = revoked
        .iter()
        .map(|&i| (i, d.client().with_org(Some(id(i)))))
        .collect();
    let mut times = Vec::new();
    while !pending.is_empty() && t0.elapsed() < bound * 2 {
        let mut still = Vec::new();
        for (i, c) in pending {
            let seen = c
                .status()
                .await
                .ok()
                .and_then(|s| s.key_problem)
                .is_some_and(|p| {
                    // The probe, or a start-up preflight left for later:
                    // the paths that run when nothing rotates or unwraps.
                    p.kind == KeyProblemKind::Disabled
                        && matches!(p.noticed_by, NoticedBy::Probe | NoticedBy::Preflight)
                });
            if seen {
                times.push(t0.elapsed());
            } else {
                still.push((i, c));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window = t0.elapsed().as_secs_f64();
    let probes = (count(&proxy) - before) as f64 / window;
    assert!(
        pending.is_empty(),
        "not noticed within twice the bound: {}",
        pending.len()
    );
    d.stop().await;
    let slowest = *times.iter().max().unwrap();
    Noticed {
        orgs: n,
        revoked: revoked.len(),
        median: median(times),
        slowest,
        probes_per_second: probes,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let orgs = bench_sizes("1,1000");
    let bound = bench_duration("KEKD_BENCH_BOUND", Duration::from_secs(300));
    println!(
        "time to notice a revocation, bound {} (probe every {}):",
        humantime::format_duration(bound),
        humantime::format_duration(bound.mul_f64(0.8))
    );
    println!("| organizations | revoked | median | slowest | slowest / bound | probe requests/s |");
    println!("|---|---|---|---|---|---|");
    for n in orgs {
        eprintln!("  {n} organizations…");
        let r = measure(n, bound).await;
        let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.1} |",
            r.orgs,
            r.revoked,
            s(r.median),
            s(r.slowest),
            r.slowest.as_secs_f64() / bound.as_secs_f64(),
            r.probes_per_second
        );
        summary_row(
            &format!(
                "revocation noticed, {} organizations (median; bound {})",
                r.orgs,
                humantime::format_duration(bound)
            ),
            &s(r.median),
            &format!("bound {}", s(bound)),
            &format!("{:.2}", r.median.as_secs_f64() / bound.as_secs_f64()),
        );
    }
}
