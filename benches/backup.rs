//! Backup KMS keys (run with `scripts/bench`): unwrap latency and success
//! rate with the primary key's region black-holed (a backup serving) next
//! to the primary healthy, and KMS calls per rotation with one backup key.
//! moto serves both regions; the fault proxy faults only the primary's.
//! Printed, never asserted. Test timeouts: attempt 2 s, operation 5 s.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::*;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Unwraps one recording per key pair in `ids` (none cached): latencies of
/// the successful ones, and how many succeeded.
async fn unwrap_each(d: &TestDaemon, wrapped: &[(String, Vec<u8>)]) -> (Vec<Duration>, usize) {
    let c = d.client();
    let mut lat = Vec::new();
    let mut ok = 0;
    for (id, w) in wrapped {
        let t = Instant::now();
        if c.unwrap(id, w).await.is_ok() {
            ok += 1;
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    (lat, ok)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (_, primary) = moto.create_key("bench-primary").await;
    let (backup, _) = moto.create_key_in("eu-west-1", "bench-backup").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &primary, "").replace(
            &format!("kms_key_arn = \"{primary}\""),
            &format!("kms_key_arn = \"{primary}\"\nbackup_kms_key_arns = [\"{backup}\"]"),
        )
    })
    .await;
    let c = d.client();

    // KMS calls per rotation, by operation.
    let before = proxy.requests();
    c.rotate().await.unwrap();
    let after = proxy.requests();
    let calls: Vec<String> = after
        .iter()
        .map(|(op, n)| (op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    println!(
        "KMS calls per rotation with one backup key: {} ({})",
        after.values().sum::<u64>() - before.values().sum::<u64>(),
        calls.join(", ")
    );

    // 40 key pairs, a content key wrapped for each (what a recording holds).
    let mut wrapped = Vec::new();
    for _ in 0..40 {
        let k = c.rotate().await.unwrap();
        let der = pem_der(&c.public_key().await.unwrap().pem);
        let content_key = [9u8; 32];
        let public = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(
            aws_lc_rs::rsa::PublicEncryptingKey::from_der(&der).unwrap(),
        )
        .unwrap();
        let mut out = vec![0u8; public.ciphertext_size()];
        let w = public
            .encrypt(
                &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
                &content_key,
                &mut out,
                None,
            )
            .unwrap()
            .to_vec();
        wrapped.push((k.id, w));
    }
    let (healthy, ok_h) = unwrap_each(&d, &wrapped[..20]).await;
    proxy.set_for_region(Fault::BlackHole, REGION).await;
    let (dark, ok_d) = unwrap_each(&d, &wrapped[20..]).await;
    let med = |v: &Vec<Duration>| v.get(v.len() / 2).copied().unwrap_or_default();
    summary_row(
        "unwrap, not cached, primary KMS region black-holed",
        &format!("median {}, {ok_d}/20 ok", ms(med(&dark))),
        &format!("primary healthy {}, {ok_h}/20 ok", ms(med(&healthy))),
        &format!(
            "{:.2}×",
            med(&dark).as_secs_f64() / med(&healthy).as_secs_f64().max(1e-9)
        ),
    );
    println!(
        "unwrap, not cached, primary healthy:     median {:>9}  max {:>9}  success {ok_h}/20",
        ms(med(&healthy)),
        ms(healthy.last().copied().unwrap_or_default())
    );
    println!(
        "unwrap, not cached, primary black-holed: median {:>9}  max {:>9}  success {ok_d}/20 (the first waits for the primary's timeout; the rest go to the backup first)",
        ms(med(&dark)),
        ms(dark.last().copied().unwrap_or_default())
    );
}
