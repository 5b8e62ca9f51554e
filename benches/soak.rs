//! The chaos soak (`scripts/soak DURATION`, 2 minutes by default): three
//! fleet members on moto's DynamoDB, KMS and DynamoDB each behind a fault
//! proxy. At random, one thing at a time: kill -9 and restart a member,
//! SIGSTOP a member past its lease and SIGCONT it, KMS black-holed,
//! throttling, refusing (`DisabledException`) or failing with 500 for a few
//! seconds, DynamoDB black-holed, Change Key Now on a member, a storm of
//! SIGUSR1, a reload, an audit rotation, a recording sealed. Pollers read
//! every live member's public key and status all along.
//!
//! Checked at the end, once every fault is off: exactly one active key pair
//! in the store, and every stored key pair decrypts through KMS and matches
//! its public key (I1, I2); every key pair a poller was ever served is one
//! the store holds as active or retired — never pending or superseded;
//! every recording sealed during the run opens; every member's audit chain
//! verifies; every member ends `ok`; the public key and status answer
//! within 50 ms at the 99th percentile. One summary line of counts; exit 1
//! on any violation. `KEKD_SOAK_SEED` replays a run.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::fleet::{create_table, member, table_store};
use harness::*;
use kekd::api::client::Client;
use kekd::api::views::{ServiceState, StatusView};
use kekd::domain::KeyState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A small deterministic generator: the seed replays the run's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the pollers saw.
#[derive(Default)]
struct Seen {
    served: BTreeSet<String>,
    latencies: Vec<Duration>,
    polls: u64,
}

/// A member and whether pollers may ask it now (not stopped or killed).
struct Member {
    d: TestDaemon,
    live: Arc<AtomicBool>,
}

fn poll(
    socket: std::path::PathBuf,
    live: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        let client = Client::new(&socket);
        while !stop.load(Ordering::Relaxed) {
            if live.load(Ordering::Relaxed) {
                let t = Instant::now();
                let key = client.public_key().await;
                let key_took = t.elapsed();
                let t = Instant::now();
                let status = client.status().await;
                let status_took = t.elapsed();
                // A poll that raced a stop or a kill says nothing of latency.
                if live.load(Ordering::Relaxed) {
                    let mut s = seen.lock().unwrap();
                    s.polls += 1;
                    if let Ok(k) = key {
                        s.served.insert(k.id);
                        s.latencies.push(key_took);
                    }
                    if status.is_ok() {
                        s.latencies.push(status_took);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let duration = std::env::var("KEKD_SOAK")
        .ok()
        .map(|d| humantime::parse_duration(&d).expect("KEKD_SOAK is a duration, e.g. 2m"))
        .unwrap_or(Duration::from_secs(120));
    let seed = std::env::var("KEKD_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!(
        "soak: {} with seed {seed}",
        humantime::format_duration(duration)
    );
    let mut rng = Rng(seed);
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("soak").await;
    create_table(&moto, "kekd-soak");
    let kms_proxy = FaultProxy::start(&moto.endpoint).await;
    let ddb_proxy = FaultProxy::start(&moto.endpoint).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    for _ in 0..3 {
        let mut d = member(&moto, &kms, "kekd-soak", &ddb_proxy.endpoint);
        d.set_kms_endpoint(&kms_proxy.endpoint);
        d.spawn();
        d.wait_active().await;
        let live = Arc::new(AtomicBool::new(true));
        poll(d.socket.clone(), live.clone(), seen.clone(), stop.clone());
        members.push(Member { d, live });
    }
    let dir = tempfile::tempdir().unwrap();
    let mut recordings: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        let m = rng.below(3) as usize;
        let action = rng.below(10);
        let name = match action {
            0 => {
                let member = &mut members[m];
                member.live.store(false, Ordering::Relaxed);
                member.d.kill9();
                member.d.spawn();
                member.d.wait_active().await;
                member.live.store(true, Ordering::Relaxed);
                "kill -9"
            }
            1 => {
                let member = &members[m];
                member.live.store(false, Ordering::Relaxed);
                member.d.signal(libc::SIGSTOP);
                tokio::time::sleep(Duration::from_millis(2500 + rng.below(1500))).await;
                member.d.signal(libc::SIGCONT);
                member.live.store(true, Ordering::Relaxed);
                "sigstop past the lease"
            }
            2 => {
                let fault = match rng.below(4) {
                    0 => Fault::BlackHole,
                    1 => Fault::throttling(),
                    2 => Fault::disabled(),
                    _ => Fault::Http(500),
                };
                kms_proxy.set(fault).await;
                tokio::time::sleep(Duration::from_millis(1500 + rng.below(2500))).await;
                kms_proxy.set(Fault::None).await;
                "kms fault"
            }
            3 => {
                ddb_proxy.set(Fault::BlackHole).await;
                tokio::time::sleep(Duration::from_millis(1500 + rng.below(1500))).await;
                ddb_proxy.set(Fault::None).await;
                "dynamodb black hole"
            }
            4 | 5 => {
                let _ = members[m].d.kekctl(&["--timeout", "30s", "rotate"]);
                "change key now"
            }
            6 => {
                for _ in 0..20 {
                    members[m].d.signal(libc::SIGUSR1);
                }
                "sigusr1 storm"
            }
            7 => {
                let _ = members[m].d.kekctl(&["reload"]);
                "reload"
            }
            8 => {
                let _ = members[m].d.kekctl(&["audit", "rotate"]);
                "audit rotation"
            }
            _ => {
                let n = recordings.len();
                let data: Vec<u8> = (0..70_000u32 + rng.below(70_000) as u32)
                    .map(|i| (i as u64 ^ seed) as u8)
                    .collect();
                let (plain, sealed) = (
                    dir.path().join(format!("{n}.raw")),
                    dir.path().join(format!("{n}.rec")),
                );
                std::fs::write(&plain, &data).unwrap();
                let (code, _, _) = members[m].d.kekctl(&[
                    "seal",
                    plain.to_str().unwrap(),
                    sealed.to_str().unwrap(),
                ]);
                if code == 0 {
                    recordings.push((sealed, data));
                }
                "seal"
            }
        };
        *counts.entry(name).or_default() += 1;
    }

    // Faults off; every member running and serving.
    kms_proxy.set(Fault::None).await;
    ddb_proxy.set(Fault::None).await;
    let mut violations: Vec<String> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let ok = tokio::time::timeout(Duration::from_secs(90), async {
            loop {
                if let Ok(s) = m.d.client().status().await {
                    let s: StatusView = s;
                    if s.state == ServiceState::Ok {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if ok.is_err() {
            let s = m.d.client().status().await.ok();
            violations.push(format!(
                "member {i} still degraded 90 s after the faults stopped: {:?}",
                s.map(|s| s.degraded)
            ));
        }
    }
    stop.store(true, Ordering::Relaxed);

    // The store: one active key pair, every key pair decrypts and matches.
    let store = table_store(&moto, "kekd-soak").await;
    let kms_client = moto.kms();
    let checked = tokio::spawn(async move { assert_consistent(&*store, &kms_client).await }).await;
    let records = match checked {
        Ok(r) => r,
        Err(e) => {
            violations.push(format!("the store is not consistent: {e}"));
            Vec::new()
        }
    };
    let state: BTreeMap<String, KeyState> =
        records.iter().map(|r| (r.id.clone(), r.state)).collect();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    for id in &seen.served {
        match state.get(id) {
            Some(KeyState::Active | KeyState::Retired) => {}
            other if !records.is_empty() => violations.push(format!(
                "a member served {id}, which the store holds as {other:?}"
            )),
            _ => {}
        }
    }
    // Every recording opens, through any member.
    for (i, (sealed, data)) in recordings.iter().enumerate() {
        let out = dir.path().join(format!("{i}.out"));
        let (code, _, err) =
            members[i % 3]
                .d
                .kekctl(&["open", sealed.to_str().unwrap(), out.to_str().unwrap()]);
        if code != 0 || std::fs::read(&out).ok().as_ref() != Some(data) {
            violations.push(format!(
                "recording {} does not open: {err}",
                sealed.display()
            ));
        }
    }
    // Every audit chain verifies.
    for (i, m) in members.iter().enumerate() {
        let (code, out, err) = m.d.kekctl(&["audit", "verify"]);
        if code != 0 {
            violations.push(format!("member {i}'s audit chain: {out}{err}"));
        }
    }
    let mut lat = seen.latencies.clone();
    lat.sort();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let p99 = at(0.99);
    if p99 > Duration::from_millis(50) {
        violations.push(format!("status and public key p99 {p99:?}, above 50 ms"));
    }
    for v in &violations {
        eprintln!("soak: VIOLATION: {v}");
    }
    let ops: u64 = counts.values().sum();
    let faults = [
        "kill -9",
        "sigstop past the lease",
        "kms fault",
        "dynamodb black hole",
    ]
    .iter()
    .map(|k| counts.get(k).copied().unwrap_or(0))
    .sum::<u64>();
    println!(
        "soak: {} seed {seed}: {ops} operations ({}), {faults} faults injected, {} key pairs, {} served ids, {} polls (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms), {} recordings opened, invariant violations: {}",
        humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
        counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        records.len(),
        seen.served.len(),
        seen.polls,
        at(0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        recordings.len(),
        violations.len()
    );
    for m in &mut members {
        let _ = m.d.stop().await;
    }
    if !violations.is_empty() {
        std::process::exit(1);
    }
}
