//! KMS fault benchmark (run with `scripts/bench`): for each fault the
//! fault-injecting proxy can produce, with a rotation failing in the
//! background:
//!
//! - how long `GET /v1/status` takes to answer during the fault (median and
//!   max over 100 requests), and
//! - how long after the fault is cleared the rotation completes by itself
//!   (status back to `ok` with a new active key pair).
//!
//! Printed, never asserted. Test config: retries from 200 ms up to 1 s,
//! attempt timeout 2 s, operation timeout 5 s.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::*;
use kekd::api::views::{ServiceState, StatusView};
use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn one(name: &str, fault: Fault) {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (_, alias) = moto.create_key("kekd-bench-fault").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| kms_config(dir, &alias, "")).await;
    let before = d.wait_active().await.active_key_id.unwrap();
    proxy.set(fault).await;
    d.signal(libc::SIGUSR1); // a rotation that will fail and be retried
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = d.client();
    let mut lat = Vec::with_capacity(100);
    for _ in 0..100 {
        let t = Instant::now();
        let _: StatusView = c.status().await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    // Make sure the fault was really in force before clearing it.
    wait_for(Duration::from_secs(30), "the rotation to fail", || async {
        let s: StatusView = c.status().await.ok()?;
        (s.state == ServiceState::Degraded).then_some(())
    })
    .await;
    proxy.set(Fault::None).await;
    let cleared = Instant::now();
    wait_for(Duration::from_secs(60), "recovery", || async {
        let s: StatusView = c.status().await.ok()?;
        (s.state == ServiceState::Ok && s.active_key_id.as_deref() != Some(before.as_str()))
            .then_some(())
    })
    .await;
    let recovered = cleared.elapsed();
    summary_row(
        &format!("GET /v1/status during KMS fault: {name}"),
        &format!(
            "median {}, max {}",
            ms(lat[lat.len() / 2]),
            ms(*lat.last().unwrap())
        ),
        "-",
        &format!("recovered {} after clearing", ms(recovered)),
    );
    println!(
        "{name:<28} status median {:>9}  max {:>9}   rotation done {:>10} after clearing",
        ms(lat[lat.len() / 2]),
        ms(*lat.last().unwrap()),
        ms(recovered)
    );
}

#[tokio::main]
async fn main() {
    println!("KMS faults through the proxy (100 status requests during each fault; recovery after clearing):");
    let faults: Vec<(&str, Fault)> = vec![
        ("connection refused", Fault::Refuse),
        ("black hole (hang)", Fault::BlackHole),
        ("slow (3 s per answer)", Fault::Slow(Duration::from_secs(3))),
        ("HTTP 500", Fault::Http(500)),
        ("HTTP 503", Fault::Http(503)),
        ("ThrottlingException", Fault::throttling()),
        ("AccessDeniedException", Fault::access_denied()),
        ("DisabledException", Fault::disabled()),
        ("KMSInvalidStateException", Fault::invalid_state()),
        ("KeyUnavailableException", Fault::key_unavailable()),
    ];
    for (name, fault) in faults {
        one(name, fault).await;
    }
}
