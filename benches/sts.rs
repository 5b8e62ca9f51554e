//! What access through a customer's role costs in STS calls (run with
//! `scripts/bench`), printed, never asserted: at 1 and 100 organizations
//! (`KEKD_BENCH_ORGS`), each reaching its key only through a role in the
//! customer's account (moto's per-account backends, as in the tests).
//!
//! An hour-long session cannot be watched in a bench, so time is
//! compressed: the fault proxy rewrites each AssumeRole answer so the
//! credentials expire `KEKD_BENCH_SESSION` (default 40 s) after they were
//! issued, and the revocation probe (the only KMS traffic) runs every 4 s.
//! The renewal rule is the same at every scale: renew when less than five
//! minutes, or half the session, is left, at the next request that needs
//! the credentials. Printed per organization, from its own audit trail:
//! the STS calls in the window and the median time between renewals
//! against the rule's expectation; and the calls per organization per
//! session at 100 against 1 (the cost must not grow with organizations).
//! From the measured interval, the figure at the default session (1 h,
//! renewed 5 min early, probe every 4 min) is derived, not measured.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::fault_proxy::Rule;
use harness::*;
use kekd::domain::OrgSpec;
use std::time::{Duration, Instant};

/// The probe's period in the compressed runs (four fifths of the bound).
const BOUND: Duration = Duration::from_secs(5);
const PROBE_EVERY: Duration = Duration::from_secs(4);

struct Cost {
    orgs: usize,
    calls: u64,
    window: Duration,
    interval: Duration,
}

async fn measure(n: usize, session: Duration, window: Duration) -> Cost {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (platform_key, _) = moto.create_key("sts-platform").await;
    let role = "arn:aws:iam::210987654321:role/kekd-bench";
    let customer = moto.kms_as(moto.assumed(role).await);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        keys.push(
            Moto::create_key_with(&customer, &format!("sts-{i:04}"))
                .await
                .0,
        );
    }
    let extra = format!(
        "[customer_keys]\nnotice_revocation_within = \"{}\"\nrole_session = \"15m\"\n\
         [overrides]\nallow_frequent_checks = true\n\
         [canary]\ninterval = \"off\"\n",
        humantime::format_duration(BOUND)
    );
    let mut d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &platform_key, &extra)
    })
    .await;
    proxy.add_rule(Rule {
        fault: Fault::Expiring(session),
        operation: None,
        contains: Some("Action=AssumeRole".into()),
        lacks: None,
    });
    let c = d.client();
    let ids: Vec<String> = (0..n).map(|i| format!("cust-{i:04}")).collect();
    for (id, key) in ids.iter().zip(&keys) {
        c.org_add(&OrgSpec {
            id: id.clone(),
            kms_key_arn: Some(key.clone()),
            assume_role_arn: Some(role.into()),
            key_bits: Some(2048),
            ..OrgSpec::default()
        })
        .await
        .unwrap();
    }
    // The window starts once every organization serves.
    let t0 = Instant::now();
    let started = chrono::Utc::now();
    tokio::time::sleep(window).await;
    let window = t0.elapsed();
    let mut calls = 0u64;
    let mut intervals = Vec::new();
    for id in &ids {
        let page = c
            .clone()
            .with_org(Some(id.clone()))
            .audit(1000, None, Some(&started))
            .await
            .unwrap();
        let at: Vec<chrono::DateTime<chrono::Utc>> = page
            .records
            .iter()
            .filter(|r| r["event"]["operation"] == "AssumeRole")
            .filter_map(|r| r["at"].as_str()?.parse().ok())
            .collect();
        calls += at.len() as u64;
        intervals.extend(at.windows(2).filter_map(|w| (w[1] - w[0]).to_std().ok()));
    }
    d.stop().await;
    Cost {
        orgs: n,
        calls,
        window,
        interval: if intervals.is_empty() {
            Duration::ZERO
        } else {
            median(intervals)
        },
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let orgs = bench_sizes("1,100");
    let session = bench_duration("KEKD_BENCH_SESSION", Duration::from_secs(40));
    let window = session * 4;
    // The rule: renew with min(5 min, half the session) left, at the next
    // probe after that.
    let renew_after = session - Duration::from_secs(300).min(session / 2);
    println!(
        "STS calls of role access: sessions of {} (compressed), probe every {}, window {}:",
        humantime::format_duration(session),
        humantime::format_duration(PROBE_EVERY),
        humantime::format_duration(window)
    );
    println!(
        "| organizations | STS calls | per organization per session | median renewal interval | expected |"
    );
    println!("|---|---|---|---|---|");
    let mut first: Option<f64> = None;
    for n in orgs {
        eprintln!("  {n} organizations…");
        let r = measure(n, session, window).await;
        let sessions = r.window.as_secs_f64() / session.as_secs_f64();
        let per = r.calls as f64 / r.orgs as f64 / sessions;
        println!(
            "| {} | {} | {:.2} | {:.1} s | {:.0}–{:.0} s |",
            r.orgs,
            r.calls,
            per,
            r.interval.as_secs_f64(),
            renew_after.as_secs_f64(),
            (renew_after + PROBE_EVERY).as_secs_f64()
        );
        let base = *first.get_or_insert(per);
        summary_row(
            &format!(
                "STS calls per organization per session, {} organizations",
                r.orgs
            ),
            &format!("{per:.2}"),
            &format!("{base:.2} at the first size"),
            &format!("{:.2}", per / base),
        );
        // The same rule at the default session: renewed 55 min in, at the
        // next probe (every 4 min), i.e. 55 to 59 min apart.
        if r.interval > Duration::ZERO {
            let late = (r.interval.as_secs_f64() - renew_after.as_secs_f64()).max(0.0)
                / PROBE_EVERY.as_secs_f64();
            let at_default = 3300.0 + late * 240.0;
            println!(
                "  derived for the default (1 h sessions, probe every 4 min): a renewal every {:.0} min, {:.2} STS calls per organization per hour",
                at_default / 60.0,
                3600.0 / at_default
            );
        }
    }
}
