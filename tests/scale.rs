//! Many organizations on one host: the KMS request budget every
//! organization shares (against the fault proxy's simulated account quota
//! in front of moto), and rotations prepared ahead so the instant they are
//! due costs neither KMS nor key generation.

use crate::harness::daemon::{kms_config, TestDaemon};
use crate::harness::fault_proxy::FaultProxy;
use crate::harness::moto::Moto;
use kekd::api::client::{Client, StatusAnswer};
use kekd::api::views::KmsBudgetView;
use kekd::domain::OrgSpec;
use std::time::Instant;

/// A daemon behind `proxy` whose `[kms]` section has `budget` lines (and
/// `timeouts` instead of the harness's short ones, when given); no unwrap
/// cache, so every unwrap is a KMS request.
fn budget_config(dir: &std::path::Path, key: &str, budget: &str) -> String {
    kms_config(dir, key, "[unwrap]\ncache_max = 0\n")
        .replace("[kms]\n", &format!("[kms]\n{budget}\n"))
        .replace("operation_timeout = \"5s\"", "operation_timeout = \"15s\"")
}

/// The budget as the daemon summary shows it.
async fn budget_of(c: &Client) -> KmsBudgetView {
    match c.status_any().await.unwrap() {
        StatusAnswer::Daemon(d) => d.daemon.kms_budget.expect("the summary shows the budget"),
        StatusAnswer::Org(s) => s
            .daemon
            .and_then(|d| d.kms_budget)
            .expect("the summary shows the budget"),
    }
}

/// Adds organizations `org-1..=n`, each with its own KMS key.
async fn add_orgs(moto: &Moto, c: &Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 1..=n {
        let id = format!("org-{i}");
        let (key, _) = moto.create_key(&format!("scale-{i}")).await;
        c.org_add(&OrgSpec {
            id: id.clone(),
            kms_key_arn: Some(key),
            ..OrgSpec::default()
        })
        .await
        .unwrap();
        ids.push(id);
    }
    ids
}

/// A content key wrapped for `org`'s active key pair, as a recorder makes
/// it.
async fn wrapped_for(c: &Client) -> (String, Vec<u8>) {
    let p = c.public_key().await.unwrap();
    let mut sealed = Vec::new();
    kekd::recording::seal(
        &mut &b"hello"[..],
        &mut sealed,
        &p.id,
        &crate::harness::decrypt::pem_der(&p.pem),
        |_| {},
    )
    .unwrap();
    let h = kekd::recording::Header::read(&mut &sealed[..]).unwrap();
    (p.id, h.wrapped_key)
}

/// Five organizations (the declared one and four added, each with its own
/// KMS key) behind a fault proxy whose account quota is 20 requests a
/// second, with `budget` lines in `[kms]`; a wrapped content key for each.
struct Burst {
    _moto: Moto,
    proxy: FaultProxy,
    d: TestDaemon,
    c: Client,
    orgs: Vec<String>,
    inputs: Vec<(Client, (String, Vec<u8>))>,
}

async fn burst(budget: &str) -> Burst {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key, _) = moto.create_key("scale-0").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| budget_config(dir, &key, budget)).await;
    let c = d.client();
    let mut orgs = add_orgs(&moto, &c, 4).await;
    orgs.push(d.wait_active().await.organization_id);
    let mut inputs = Vec::new();
    for org in &orgs {
        let oc = c.clone().with_org(Some(org.clone()));
        inputs.push((oc.clone(), wrapped_for(&oc).await));
    }
    proxy.set_quota(Some(20));
    Burst {
        _moto: moto,
        proxy,
        d,
        c,
        orgs,
        inputs,
    }
}

/// Budget below the account's quota (15/s against 20/s): a burst of Change
/// Key Now on every organization with unwraps in the middle of it finishes
/// with no request throttled, never more than the budget in any second,
/// and the unwraps done before the rotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_under_the_budget_is_never_throttled_and_unwraps_go_first() {
    // Every part bound: what is not would be dropped (moto, the daemon).
    let Burst {
        _moto,
        proxy,
        d: _d,
        c,
        orgs,
        inputs,
    } = burst("max_requests_per_second = 15\nmax_describe_key_per_second = 2").await;

    let started = Instant::now();
    let rotations: Vec<_> = orgs
        .iter()
        .map(|org| {
            let oc = c.clone().with_org(Some(org.clone()));
            tokio::spawn(async move {
                for _ in 0..5 {
                    oc.rotate().await.unwrap();
                }
                Instant::now()
            })
        })
        .collect();
    // The unwraps come once rotations wait for their turn.
    crate::harness::wait_for(
        std::time::Duration::from_secs(30),
        "a queue of rotations",
        || {
            let c = c.clone();
            async move { (budget_of(&c).await.requests.waiting > 0).then_some(()) }
        },
    )
    .await;
    let unwraps: Vec<_> = (0..20)
        .map(|i| {
            let (oc, (id, wrapped)) = inputs[i % inputs.len()].clone();
            tokio::spawn(async move {
                let k = oc.unwrap(&id, &wrapped).await.unwrap();
                assert_eq!(k.content_key.len(), 32);
                Instant::now()
            })
        })
        .collect();
    let mut unwraps_done = started;
    for u in unwraps {
        unwraps_done = unwraps_done.max(u.await.unwrap());
    }
    let mut rotations_done = started;
    for r in rotations {
        rotations_done = rotations_done.max(r.await.unwrap());
    }
    assert_eq!(proxy.throttled(), 0, "the budget kept below the quota");
    assert!(
        proxy.peak_per_second() <= 15 + 2,
        "at most the two budgets in any second, saw {}",
        proxy.peak_per_second()
    );
    assert!(
        unwraps_done < rotations_done,
        "the unwraps went ahead of the queued rotations"
    );
    let b = budget_of(&c).await;
    assert_eq!((b.requests.throttled, b.requests.waiting), (0, 0));
    assert_eq!(b.requests.max_per_second, 15.0);
    assert!(b.requests.granted >= 25 * 2 + 20, "{b:?}");
}

/// Budget above the quota (100/s against 20/s): KMS throttles, the budget
/// is cut (and says so), and every rotation and unwrap still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_cuts_the_budget_and_every_request_completes() {
    let Burst {
        _moto,
        proxy,
        d,
        c,
        orgs,
        inputs,
    } = burst("max_requests_per_second = 100").await;
    let mut work: Vec<_> = orgs
        .iter()
        .map(|org| {
            let oc = c.clone().with_org(Some(org.clone()));
            tokio::spawn(async move {
                for _ in 0..3 {
                    oc.rotate().await.unwrap();
                }
            })
        })
        .collect();
    // Players too: far more than the quota at once.
    work.extend((0..40).map(|i| {
        let (oc, (id, wrapped)) = inputs[i % inputs.len()].clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                oc.unwrap(&id, &wrapped).await.unwrap();
            }
        })
    }));
    for w in work {
        w.await.unwrap();
    }
    assert!(proxy.throttled() > 0, "the quota throttled");
    let b = budget_of(&c).await;
    assert!(b.requests.throttled > 0, "{b:?}");
    assert!(
        b.requests.current_per_second < 100.0,
        "the budget was cut: {b:?}"
    );
    let (rc, text, err) = d.kekctl(&["status"]);
    assert_eq!(rc, 0, "{err}");
    assert!(text.contains("cut to"), "{text}");
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("kekd_kms_throttled{kind=\"requests\"}"),
        "{metrics}"
    );
}

/// 50 organizations due at one instant, a short preparation window: each
/// prepared its next key pair before the instant, at its own place in the
/// window (not all at once), and at the instant only activated it — no
/// key generation and no KMS call at the instant, none activated twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_organizations_due_at_one_instant_only_flip_pointers() {
    const CADENCE: &str = "*/30 * * * * *";
    let d = TestDaemon::start_local(|dir| {
        crate::harness::daemon::local_config(dir).replace(
            "cadence = \"never\"",
            &format!("cadence = \"{CADENCE}\"\nprepare_window = \"25s\""),
        ) + "[overrides]\nallow_frequent_rotation = true\n"
    })
    .await;
    let c = d.client();
    let mut orgs = vec![d.wait_active().await.organization_id];
    for i in 1..50 {
        let id = format!("org-{i}");
        c.org_add(&OrgSpec {
            id: id.clone(),
            cadence: Some(CADENCE.into()),
            key_bits: Some(2048),
            ..OrgSpec::default()
        })
        .await
        .unwrap();
        orgs.push(id);
    }
    let clients: Vec<Client> = orgs
        .iter()
        .map(|o| c.clone().with_org(Some(o.clone())))
        .collect();
    // Every organization has announced its next key pair for one instant
    // whose whole window came after the last add (an organization added
    // after its place in the window prepares at once).
    let added = chrono::Utc::now();
    let (instant, announced) = crate::harness::wait_for(
        std::time::Duration::from_secs(120),
        "every organization prepared for the same instant",
        || {
            let clients = clients.clone();
            async move {
                let mut at = None;
                let mut ids = Vec::new();
                for oc in &clients {
                    let s = oc.status().await.unwrap();
                    let (Some(id), Some(t)) = (s.announced_key_id, s.announced_activates_at) else {
                        return None;
                    };
                    if *at.get_or_insert(t) != t || t - chrono::Duration::seconds(25) < added {
                        return None;
                    }
                    ids.push(id);
                }
                at.map(|t| (t, ids))
            }
        },
    )
    .await;
    // Until every organization has made its rotation at that instant.
    let actives: Vec<kekd::api::views::KeyPairView> = crate::harness::wait_for(
        std::time::Duration::from_secs(120),
        "every announced key pair active",
        || {
            let (clients, announced) = (clients.clone(), announced.clone());
            async move {
                let mut out = Vec::new();
                for (oc, id) in clients.iter().zip(&announced) {
                    let kp = oc.keypair(id).await.unwrap();
                    kp.activated_at?;
                    out.push(kp);
                }
                Some(out)
            }
        },
    )
    .await;
    let mut created: Vec<_> = actives.iter().map(|k| k.created_at).collect();
    for kp in &actives {
        assert!(kp.created_at < instant, "prepared before the instant");
        assert!(kp.activated_at.unwrap() >= instant, "activated at it");
    }
    created.sort();
    let spread = *created.last().unwrap() - created[0];
    assert!(
        spread > chrono::Duration::seconds(8),
        "prepared over the window, not at once: {spread}"
    );
    // The audit trail of the instant: no KMS call from the instant to the
    // last activation, and one rotation record each (written just after
    // its activation; the next preparations start 10 s later at the
    // earliest).
    let audit_path = clients[0].status().await.unwrap().audit.path;
    let last = actives.iter().filter_map(|k| k.activated_at).max().unwrap();
    let read = move || {
        let audit = std::fs::read_to_string(&audit_path).unwrap();
        let (mut calls, mut rotations) = (0, std::collections::BTreeMap::<String, u32>::new());
        for line in audit.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let at: kekd::time::Timestamp = v["at"].as_str().unwrap().parse().unwrap();
            if at < instant || at > instant + chrono::Duration::seconds(10) {
                continue;
            }
            match v["event"]["type"].as_str() {
                Some("kms_call") if at <= last => calls += 1,
                Some("rotation") => {
                    *rotations
                        .entry(v["organization"].as_str().unwrap_or_default().to_string())
                        .or_default() += 1
                }
                _ => {}
            }
        }
        (calls, rotations)
    };
    let (calls, rotations) = crate::harness::wait_for(
        std::time::Duration::from_secs(30),
        "a rotation record of every organization",
        || {
            let read = read.clone();
            async move {
                let (calls, rotations) = read();
                (rotations.len() == 50).then_some((calls, rotations))
            }
        },
    )
    .await;
    assert_eq!(calls, 0, "no KMS call at the instant");
    assert_eq!(rotations.len(), 50, "{rotations:?}");
    assert!(
        rotations.values().all(|n| *n == 1),
        "none twice: {rotations:?}"
    );
}

/// A cold cache and 20 players asking for the same key pair at once: one
/// KMS Decrypt, not twenty (single flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unwraps_of_a_cold_key_pair_make_one_kms_request() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key, _) = moto.create_key("cold").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| kms_config(dir, &key, "")).await;
    let c = d.client();
    d.wait_active().await;
    let (id, wrapped) = wrapped_for(&c).await;
    let before = proxy.requests().get("Decrypt").copied().unwrap_or(0);
    let players: Vec<_> = (0..20)
        .map(|_| {
            let (c, id, wrapped) = (c.clone(), id.clone(), wrapped.clone());
            tokio::spawn(async move { c.unwrap(&id, &wrapped).await.unwrap().content_key.clone() })
        })
        .collect();
    let mut keys = std::collections::BTreeSet::new();
    for p in players {
        keys.insert(p.await.unwrap());
    }
    assert_eq!(keys.len(), 1, "every player got the same content key");
    let after = proxy.requests().get("Decrypt").copied().unwrap_or(0);
    assert_eq!(after - before, 1, "one KMS Decrypt for twenty players");
}
