//! The chaos soak (`scripts/soak DURATION`, 2 minutes by default): three
//! fleet members on moto's DynamoDB serving three organizations, each with
//! its own KMS key, plus one daemon on its own redb store; KMS and DynamoDB
//! each behind a fault proxy, every daemon rotating every 20 s with its
//! next key pair prepared ahead, and one member's wall clock skewed through
//! libfaketime (a different skew, within the tolerated 30 s, at each of its
//! starts). At random, one thing at a time: kill -9 and restart a daemon,
//! SIGSTOP one past its lease and SIGCONT it, KMS black-holed, refusing
//! connections, throttling, answering `DisabledException`, failing with 500
//! or held to a request quota for a few seconds, DynamoDB black-holed or
//! refusing connections, Change Key Now for an
//! organization, a storm of SIGUSR1, a reload, a rewrap, an audit rotation,
//! a recording sealed. Pollers read every live daemon's public key and
//! status, for every organization it serves, all along.
//!
//! Checked at the end, once every fault is off, for every organization in
//! every store: exactly one active key pair, and every stored key pair
//! decrypts through KMS and matches its public key (I1, I2); the history is
//! in order (created before activated, activated before retired, no retired
//! key pair activated after the active one); every key pair a poller was
//! ever served is one the store holds as active or retired, never pending
//! or superseded. And: every recording sealed during the run opens; every
//! daemon's audit chain verifies; every organization on every daemon ends
//! `ok`; the public key and status answer within 50 ms at the 99th
//! percentile (the maximum is reported). One summary line of counts; exit 1
//! on any violation. `KEKD_SOAK_SEED` replays a run's choices.

#[path = "soak/checks.rs"]
mod checks;
#[path = "../tests/harness/mod.rs"]
mod harness;

use checks::{check_store, ends_ok, order_violations};
use harness::daemon::kms_config;
use harness::fleet::{create_table, member, table_store_of};
use harness::*;
use kekd::api::client::Client;
use kekd::domain::{KeyState, OrgSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fleet's organizations: the one each member's config declares, then
/// two added through the API, each with its own KMS key.
const FLEET_ORGS: [&str; 3] = ["acme-test", "beta", "gamma"];
/// The organization of the daemon on its own redb store.
const REDB_ORG: &str = "acme-test";
/// Every daemon rotates on a schedule too, each next key pair prepared
/// ahead (announced, published, activated at its instant): scheduled
/// rotations and preparations under the lease meet the faults as well.
const SCHEDULE: &str =
    "cadence = \"*/20 * * * * *\"\nannounce_ahead = \"8s\"\nprepare_window = \"8s\"";
/// And a revocation bound of 3 s: a `DisabledException` is evidence of a
/// revoked key, re-checked (and its rotation retried) at the probe's pace
/// — minutes at the default bound, longer than the soak waits for every
/// daemon to end `ok` once the faults stop.
const OVERRIDES: &str = "\n[customer_keys]\nnotice_revocation_within = \"3s\"\n\
     [overrides]\nallow_frequent_rotation = true\nallow_frequent_checks = true\n";

/// Puts [`SCHEDULE`] into the config file at `path`.
fn scheduled(path: &std::path::Path) {
    let config = std::fs::read_to_string(path).unwrap();
    assert!(config.contains("cadence = \"never\""), "{config}");
    let config = config.replace("cadence = \"never\"", SCHEDULE) + OVERRIDES;
    std::fs::write(path, config).unwrap();
}

/// The member run under libfaketime.
const SKEWED: usize = 2;
/// The skew kekd tolerates between members (docs/fleet.md).
const MAX_SKEW_S: u64 = 25;
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

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
    /// (store, organization, key pair id): the store is "fleet" or "redb".
    served: BTreeSet<(&'static str, &'static str, String)>,
    latencies: Vec<Duration>,
    polls: u64,
}

/// A daemon, which store it is on, the organizations it serves, and whether
/// pollers may ask it now (not stopped or killed).
pub struct Member {
    pub d: TestDaemon,
    pub store: &'static str,
    pub orgs: &'static [&'static str],
    /// Even while the daemon may be asked, odd while it is stopped or
    /// killed; every change adds one, so a poll that spanned a stop is told
    /// from one that did not.
    pub live: Arc<AtomicU64>,
}

impl Member {
    /// Runs `kekctl --org ORG ARGS` against this daemon.
    fn kekctl(&self, org: &str, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--org", org];
        all.extend_from_slice(args);
        self.d.kekctl(&all)
    }
}

fn poll(m: &Member, org: &'static str, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let (store, live) = (m.store, m.live.clone());
    let client = Client::new(&m.d.socket).with_org(Some(org.into()));
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let epoch = live.load(Ordering::SeqCst);
            if epoch % 2 == 0 {
                let t = Instant::now();
                let key = client.public_key().await;
                let key_took = t.elapsed();
                let t = Instant::now();
                let status = client.status().await;
                let status_took = t.elapsed();
                // A poll that raced a stop or a kill says nothing of latency.
                if live.load(Ordering::SeqCst) == epoch {
                    let mut s = seen.lock().unwrap();
                    s.polls += 1;
                    if let Ok(k) = key {
                        s.served.insert((store, org, k.id));
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

/// Points the skewed member's next start at a fresh skew of up to
/// ±[`MAX_SKEW_S`] seconds; returns it.
fn skew(d: &mut TestDaemon, rng: &mut Rng) -> i64 {
    let s = rng.below(2 * MAX_SKEW_S + 1) as i64 - MAX_SKEW_S as i64;
    d.env
        .retain(|(k, _)| !k.contains("FAKE") && k != "LD_PRELOAD");
    d.env.extend([
        ("LD_PRELOAD".to_string(), LIBFAKETIME.to_string()),
        ("FAKETIME".to_string(), format!("{s:+}s")),
        // Timers and timeouts keep the real monotonic clock.
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
        ("DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
    ]);
    s
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
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "the soak skews a member's clock with libfaketime: install the faketime package ({LIBFAKETIME})"
    );
    eprintln!(
        "soak: {} with seed {seed}",
        humantime::format_duration(duration)
    );
    let mut rng = Rng(seed);
    let moto = Moto::start().await;
    let mut keys = BTreeMap::new();
    for org in FLEET_ORGS {
        keys.insert(org, moto.create_key(&format!("soak-{org}")).await.1);
    }
    let (_, redb_key) = moto.create_key("soak-redb").await;
    create_table(&moto, "kekd-soak");
    let kms_proxy = FaultProxy::start(&moto.endpoint).await;
    let ddb_proxy = FaultProxy::start(&moto.endpoint).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    let mut skews = Vec::new();
    for i in 0..3 {
        let mut d = member(
            &moto,
            &keys[FLEET_ORGS[0]],
            "kekd-soak",
            &ddb_proxy.endpoint,
        );
        d.set_kms_endpoint(&kms_proxy.endpoint);
        scheduled(&d.config);
        if i == SKEWED {
            skews.push(skew(&mut d, &mut rng));
        }
        d.spawn();
        d.wait_active().await;
        if i == 0 {
            for org in &FLEET_ORGS[1..] {
                let spec = OrgSpec {
                    id: org.to_string(),
                    kms_key_arn: Some(keys[org].clone()),
                    ..OrgSpec::default()
                };
                d.client()
                    .org_add(&spec)
                    .await
                    .expect("an organization is added");
            }
        }
        members.push(Member {
            d,
            store: "fleet",
            orgs: &FLEET_ORGS,
            live: Arc::new(AtomicU64::new(0)),
        });
    }
    let redb = TestDaemon::start_via(&kms_proxy.endpoint, |dir| {
        kms_config(dir, &redb_key, "").replace("cadence = \"never\"", SCHEDULE) + OVERRIDES
    })
    .await;
    members.push(Member {
        d: redb,
        store: "redb",
        orgs: &[REDB_ORG],
        live: Arc::new(AtomicU64::new(0)),
    });
    // Every member serves every fleet organization before the faults begin.
    for m in &members {
        for org in m.orgs {
            let c = m.d.client().with_org(Some(org.to_string()));
            wait_for(
                Duration::from_secs(30),
                "every organization served",
                || async { c.public_key().await.ok() },
            )
            .await;
            poll(m, org, seen.clone(), stop.clone());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // (daemon, organization, sealed file, plaintext)
    let mut recordings: Vec<(usize, &'static str, PathBuf, Vec<u8>)> = Vec::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        let m = rng.below(members.len() as u64) as usize;
        let org = members[m].orgs[rng.below(members[m].orgs.len() as u64) as usize];
        let name = match rng.below(12) {
            0 => {
                let member = &mut members[m];
                member.live.fetch_add(1, Ordering::SeqCst);
                member.d.kill9();
                if m == SKEWED {
                    skews.push(skew(&mut member.d, &mut rng));
                }
                member.d.spawn();
                member.d.wait_active().await;
                member.live.fetch_add(1, Ordering::SeqCst);
                "kill -9"
            }
            1 => {
                let member = &members[m];
                member.live.fetch_add(1, Ordering::SeqCst);
                member.d.signal(libc::SIGSTOP);
                tokio::time::sleep(Duration::from_millis(2500 + rng.below(1500))).await;
                member.d.signal(libc::SIGCONT);
                member.live.fetch_add(1, Ordering::SeqCst);
                "sigstop past the lease"
            }
            2 => {
                let quota = rng.below(5) == 0;
                if quota {
                    kms_proxy.set_quota(Some(3 + rng.below(5) as usize));
                } else {
                    kms_proxy
                        .set(match rng.below(5) {
                            0 => Fault::BlackHole,
                            1 => Fault::throttling(),
                            2 => Fault::disabled(),
                            3 => Fault::Refuse,
                            _ => Fault::Http(500),
                        })
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(1500 + rng.below(2500))).await;
                kms_proxy.set(Fault::None).await;
                kms_proxy.set_quota(None);
                "kms fault"
            }
            3 => {
                ddb_proxy
                    .set(if rng.below(2) == 0 {
                        Fault::BlackHole
                    } else {
                        Fault::Refuse
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(1500 + rng.below(1500))).await;
                ddb_proxy.set(Fault::None).await;
                "dynamodb black hole or refusal"
            }
            4 | 5 => {
                let _ = members[m].kekctl(org, &["--timeout", "30s", "rotate"]);
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
                let _ = members[m].kekctl(org, &["--timeout", "30s", "rewrap"]);
                "rewrap"
            }
            9 => {
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
                let (code, _, _) = members[m].kekctl(
                    org,
                    &["seal", plain.to_str().unwrap(), sealed.to_str().unwrap()],
                );
                if code == 0 {
                    recordings.push((m, org, sealed, data));
                }
                "seal"
            }
        };
        *counts.entry(name).or_default() += 1;
    }

    // Faults off; every daemon running and serving.
    kms_proxy.set(Fault::None).await;
    kms_proxy.set_quota(None);
    ddb_proxy.set(Fault::None).await;
    let mut violations: Vec<String> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        violations.extend(ends_ok(i, m).await);
    }
    stop.store(true, Ordering::Relaxed);

    // Every store: one active key pair, every key pair decrypts and
    // matches, the history in order.
    let mut state: BTreeMap<(&str, &str, String), KeyState> = BTreeMap::new();
    let mut key_pairs = 0;
    let redb = members.len() - 1;
    members[redb].live.fetch_add(1, Ordering::SeqCst);
    let _ = members[redb].d.stop().await;
    let mut stores: Vec<(&'static str, &'static str, Arc<dyn kekd::store::KeyStore>)> = Vec::new();
    for org in FLEET_ORGS {
        stores.push(("fleet", org, table_store_of(&moto, "kekd-soak", org).await));
    }
    let redb_store = kekd::store::RedbStore::open(&members[redb].d.store_path())
        .await
        .expect("the redb store opens");
    stores.push(("redb", REDB_ORG, Arc::new(redb_store)));
    for (store, org, s) in stores {
        match check_store(s, moto.kms()).await {
            Ok(records) => {
                key_pairs += records.len();
                violations.extend(order_violations(&format!("{store} {org}"), &records));
                for r in records {
                    state.insert((store, org, r.id), r.state);
                }
            }
            Err(e) => violations.push(format!("{store} {org}: {e}")),
        }
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    for (store, org, id) in &seen.served {
        match state.get(&(*store, *org, id.clone())) {
            Some(KeyState::Active | KeyState::Retired) => {}
            other => violations.push(format!(
                "{store} {org}: a daemon served {id}, which the store holds as {other:?}"
            )),
        }
    }
    members[redb].d.spawn();
    members[redb].d.wait_active().await;
    // Every recording opens: a fleet one through any member.
    for (i, (m, org, sealed, data)) in recordings.iter().enumerate() {
        let by = if *m == redb { redb } else { i % 3 };
        let out = dir.path().join(format!("{i}.out"));
        let (code, _, err) = members[by].kekctl(
            org,
            &["open", sealed.to_str().unwrap(), out.to_str().unwrap()],
        );
        if code != 0 || std::fs::read(&out).ok().as_ref() != Some(data) {
            violations.push(format!(
                "recording {} ({org}) does not open: {err}",
                sealed.display()
            ));
        }
    }
    // Every audit chain verifies.
    for (i, m) in members.iter().enumerate() {
        let (code, out, err) = m.d.kekctl(&["audit", "verify"]);
        if code != 0 {
            violations.push(format!("daemon {i}'s audit chain: {out}{err}"));
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
    let slow = lat
        .iter()
        .filter(|l| **l > Duration::from_millis(50))
        .count();
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
        "dynamodb black hole or refusal",
    ]
    .iter()
    .map(|k| counts.get(k).copied().unwrap_or(0))
    .sum::<u64>();
    println!(
        "soak: {} seed {seed}: {ops} operations ({}), {faults} faults injected, skews {}, {} organizations, {key_pairs} key pairs, {} served ids, {} polls (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {slow} over 50 ms), {} recordings opened, invariant violations: {}",
        humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
        counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        skews.iter().map(|s| format!("{s:+}s")).collect::<Vec<_>>().join(" "),
        FLEET_ORGS.len() + 1,
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
