//! A fleet's cost does not grow with its organizations: an idle member
//! reads the fleet's revision once per refresh interval and nothing else,
//! at 1 organization as at 100; a change of one organization is read by
//! every member as that organization alone. (Canaries are off here: each
//! reads its organization's recent key pairs once per canary interval.)

use crate::harness::fixture::write_orgs_into;
use crate::harness::fleet::{self, create_table, member, REFRESH};
use crate::harness::*;
use kekd::api::client::Client;
use kekd::domain::OrgSpec;
use std::collections::BTreeMap;
use std::time::Duration;

/// The refresh interval of the harness's fleet members.
fn interval() -> Duration {
    humantime::parse_duration(REFRESH).unwrap()
}

fn total(proxy: &FaultProxy) -> u64 {
    proxy.requests().values().sum()
}

/// Waits until the member behind `proxy` is idle: over one second, no more
/// requests than one per refresh interval.
async fn quiet(proxy: &FaultProxy) {
    let per_second = (Duration::from_secs(1).as_millis() / interval().as_millis()) as u64 + 1;
    wait_for(Duration::from_secs(90), "the member to go idle", || async {
        let before = total(proxy);
        tokio::time::sleep(Duration::from_secs(1)).await;
        (total(proxy) - before <= per_second).then_some(())
    })
    .await;
}

/// The DynamoDB requests, by operation, each member sent over `window`
/// once idle.
async fn idle_requests(proxies: &[FaultProxy], window: Duration) -> Vec<BTreeMap<String, u64>> {
    for p in proxies {
        quiet(p).await;
    }
    let before: Vec<_> = proxies.iter().map(FaultProxy::requests).collect();
    tokio::time::sleep(window).await;
    proxies
        .iter()
        .zip(before)
        .map(|(p, before)| {
            p.requests()
                .into_iter()
                .map(|(op, n)| {
                    let was = before.get(&op).copied().unwrap_or(0);
                    (op, n - was)
                })
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .collect()
}

/// Three members, each behind its own proxy to DynamoDB. Idle, each sends
/// at most one request per refresh interval, at 1 organization and at 100
/// alike; then one organization added on the first member is served by
/// the other two, each reading that organization alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_fleet_costs_the_same_at_one_and_at_a_hundred_organizations() {
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet-scale").await;
    create_table(&moto, "kekd-scale");
    let mut proxies = Vec::new();
    let mut members = Vec::new();
    for _ in 0..3 {
        let proxy = FaultProxy::start(&moto.endpoint).await;
        let mut d = member(&moto, &kms, "kekd-scale", &proxy.endpoint);
        // The canary reads each organization's recent key pairs from the
        // store by design (it proves what is stored decrypts): its cost is
        // per organization and canary interval, apart from this one.
        fleet::without_canary(&d);
        d.spawn();
        d.wait_active().await;
        members.push(d);
        proxies.push(proxy);
    }
    let window = interval() * 20;
    // At most one read per interval, and one more for where the window
    // falls between two reads.
    let bound = 21;
    let at_one = idle_requests(&proxies, window).await;

    let registry = kekd::store::DynamoRegistry::with_client(fleet::dynamodb(&moto), "kekd-scale")
        .await
        .unwrap();
    write_orgs_into(&registry, 100, |_| Some(kms.clone())).await;
    for m in &members {
        let c = m.client();
        wait_for(
            Duration::from_secs(120),
            "every member to serve the 100 organizations",
            || async { (c.orgs(200, None).await.ok()?.organizations.len() == 100).then_some(()) },
        )
        .await;
    }
    let at_hundred = idle_requests(&proxies, window).await;
    for (i, (one, hundred)) in at_one.iter().zip(&at_hundred).enumerate() {
        eprintln!("member {i}, {window:?} idle: {one:?} at 1 organization, {hundred:?} at 100");
    }
    for (i, (one, hundred)) in at_one.iter().zip(&at_hundred).enumerate() {
        let (n1, n100): (u64, u64) = (one.values().sum(), hundred.values().sum());
        assert!(
            (1..=bound).contains(&n1) && (1..=bound).contains(&n100),
            "member {i}, {window:?} idle: {one:?} at 1 organization, {hundred:?} at 100; at most {bound}"
        );
        assert_eq!(
            one.keys().collect::<Vec<_>>(),
            hundred.keys().collect::<Vec<_>>(),
            "member {i}: the same reads at 1 and at 100 organizations"
        );
    }

    // One change: the others read its organization, not every one.
    for p in &proxies {
        quiet(p).await;
    }
    let before: Vec<u64> = proxies.iter().map(total).collect();
    let spec = OrgSpec {
        id: "late".into(),
        kms_key_arn: Some(kms.clone()),
        ..OrgSpec::default()
    };
    members[0].client().org_add(&spec).await.unwrap();
    for (i, m) in members.iter().enumerate().skip(1) {
        let c = Client::new(&m.socket).with_org(Some("late".into()));
        wait_for(
            Duration::from_secs(30),
            "the new organization served",
            || async { c.public_key().await.ok() },
        )
        .await;
        let sent = total(&proxies[i]) - before[i];
        eprintln!("member {i}: {sent} requests to follow one new organization");
        assert!(
            sent < 50,
            "member {i} sent {sent} requests to follow one new organization among 101"
        );
    }
}

/// Prepared ahead in a fleet: the next key pair is announced once for the
/// fleet (by whichever member took the lease), published by every member,
/// and at its instant activated as it is — no key pair made and no KMS
/// call at the instant, none superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_prepares_the_next_key_pair_once_and_only_activates_it_at_its_instant() {
    const CADENCE: &str = "*/30 * * * * *";
    let moto = Moto::start().await;
    let (_, kms) = moto.create_key("fleet-ahead").await;
    create_table(&moto, "kekd-ahead");
    let kms_proxy = FaultProxy::start(&moto.endpoint).await;
    let mut members = Vec::new();
    for _ in 0..2 {
        let mut d = member(&moto, &kms, "kekd-ahead", &moto.endpoint);
        d.set_kms_endpoint(&kms_proxy.endpoint);
        let config = std::fs::read_to_string(&d.config).unwrap().replace(
            "cadence = \"never\"",
            &format!("cadence = \"{CADENCE}\"\nannounce_ahead = \"20s\""),
        ) + "\n[overrides]\nallow_frequent_rotation = true\n";
        std::fs::write(&d.config, config).unwrap();
        d.spawn();
        d.wait_active().await;
        members.push(d);
    }
    // Both publish the same announced key pair for the same instant.
    let (id, instant) = wait_for(
        Duration::from_secs(90),
        "both members to publish one announced key pair",
        || async {
            let a = members[0].client().status().await.ok()?;
            let b = members[1].client().status().await.ok()?;
            let id = a
                .announced_key_id
                .filter(|id| Some(id) == b.announced_key_id.as_ref())?;
            let at = a
                .announced_activates_at
                .filter(|t| Some(*t) == b.announced_activates_at)?;
            // Far enough from the instant to watch it come.
            (at - chrono::Utc::now() > chrono::Duration::seconds(2)).then_some((id, at))
        },
    )
    .await;
    let made = kms_proxy
        .requests()
        .get("GenerateDataKey")
        .copied()
        .unwrap_or(0);
    for m in &members {
        let c = m.client();
        let served = tokio::time::timeout(Duration::from_secs(60), async {
            while c.public_key().await.ok().map(|p| p.id) != Some(id.clone()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            served.is_ok(),
            "the announced key pair {id} not active 60 s after its instant; logs:\n{}\n---\n{}",
            members[0].log_text(),
            members[1].log_text()
        );
    }
    assert!(
        chrono::Utc::now() >= instant,
        "not served before its instant"
    );
    assert_eq!(
        kms_proxy
            .requests()
            .get("GenerateDataKey")
            .copied()
            .unwrap_or(0),
        made,
        "no data key made at the instant: the announced key pair was activated as it was"
    );
    let store = fleet::table_store_of(&moto, "kekd-ahead", "acme-test").await;
    let records = kekd::store::decodable(store.list().await.unwrap());
    let activated = records.iter().find(|r| r.id == id).unwrap();
    assert_eq!(activated.state, kekd::domain::KeyState::Active);
    assert!(activated.created_at < instant && activated.activated_at.unwrap() >= instant);
    assert!(
        records
            .iter()
            .all(|r| r.state != kekd::domain::KeyState::Superseded),
        "prepared once for the fleet, none thrown away: {:?}",
        records.iter().map(|r| (&r.id, r.state)).collect::<Vec<_>>()
    );
}

/// The fleet's announced key pair stays announced through a rewrap (a new
/// envelope, the same state), and is announced no more once superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrapped_announced_key_pair_stays_the_fleets_announced_one() {
    use kekd::domain::KeyState;
    let moto = Moto::start().await;
    create_table(&moto, "kekd-announced");
    let store = fleet::table_store_of(&moto, "kekd-announced", "acme-test").await;
    let ids = crate::harness::write_history(&*store, 1).await;
    let mut next = store.get(&ids[0]).await.unwrap().unwrap();
    next.id = "kek-00000000000000ff".into();
    next.envelope.key_pair_id = next.id.clone();
    next.state = KeyState::Pending;
    (next.activated_at, next.retired_at) = (None, None);
    let fleet = store.fleet().unwrap();
    assert!(matches!(
        fleet.acquire_lease().await.unwrap(),
        kekd::store::LeaseState::Acquired { .. }
    ));
    store.insert_pending(&next).await.unwrap();
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    store.announce(&next.id, at).await.unwrap();
    let announced = || async { fleet.head().await.unwrap().announced };
    assert_eq!(announced().await.as_deref(), Some(next.id.as_str()));

    let mut envelope = next.envelope.clone();
    envelope.wrapping_key_arn = "arn:aws:kms:us-east-1:123456789012:key/other".into();
    store.replace_envelope(&next.id, &envelope).await.unwrap();
    assert_eq!(
        announced().await.as_deref(),
        Some(next.id.as_str()),
        "a rewrap leaves the announced key pair announced"
    );
    assert_eq!(
        store.get(&next.id).await.unwrap().unwrap().state,
        KeyState::Announced
    );

    store.abandon(&next.id, chrono::Utc::now()).await.unwrap();
    assert_eq!(
        announced().await,
        None,
        "superseded, it is announced no more"
    );
}
