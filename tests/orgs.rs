//! Organizations: one daemon serving several customers, each with its own
//! KMS key, onboarded and offboarded through the API.

use crate::harness::daemon::{kms_config, local_config, TestDaemon};
use crate::harness::decrypt::{pem_der, public_der_of, recover};
use crate::harness::moto::Moto;
use kekd::api::client::ClientError;
use kekd::api::ErrorCode;
use kekd::domain::OrgSpec;

fn spec(id: &str, kms_key_arn: Option<&str>) -> OrgSpec {
    OrgSpec {
        id: id.into(),
        kms_key_arn: kms_key_arn.map(str::to_string),
        ..OrgSpec::default()
    }
}

fn code(e: ClientError) -> ErrorCode {
    match e {
        ClientError::Api { code, .. } => code,
        other => panic!("expected an API error, got {other}"),
    }
}

/// Three organizations, three KMS keys: each key pair is wrapped under its
/// own organization's key with its own organization in the context
/// (decrypted independently through KMS); rotating one leaves the others'
/// active key pairs as they were; a recording sealed for one cannot be
/// opened through another's path; the unprefixed paths ask which one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_organizations_keep_to_their_own_keys() {
    let moto = Moto::start().await;
    let (key_a, _) = moto.create_key("org-a").await;
    let (key_b, _) = moto.create_key("org-b").await;
    let (key_c, _) = moto.create_key("org-c").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &key_a, "")).await;
    let declared = d.wait_active().await.organization_id;
    let c = d.client();
    for (id, key) in [("beta", &key_b), ("gamma", &key_c)] {
        let added = c.org_add(&spec(id, Some(key))).await.unwrap();
        let kp = added
            .key_pair
            .expect("the first key pair is active when add returns");
        assert_eq!(kp.state, kekd::domain::KeyState::Active);
        assert_eq!(added.organization.kms_key, *key);
    }
    // The unprefixed per-organization paths now ask which organization.
    assert_eq!(
        code(c.public_key().await.unwrap_err()),
        ErrorCode::OrganizationRequired
    );
    let kms = moto.kms();
    let mut actives = std::collections::BTreeMap::new();
    for (org, key) in [
        (declared.as_str(), &key_a),
        ("beta", &key_b),
        ("gamma", &key_c),
    ] {
        let oc = c.clone().with_org(Some(org.into()));
        let s = oc.status().await.unwrap();
        assert_eq!(s.organization_id, org);
        let id = s.active_key_id.unwrap();
        let export = oc.envelope(&id).await.unwrap();
        let env = serde_json::to_value(&export).unwrap()["envelope"].clone();
        assert_eq!(
            env["wrapping_key_arn"],
            key.as_str(),
            "{org} wrapped under its own key"
        );
        assert_eq!(env["encryption_context"]["organization-id"], org);
        let secrets = recover(&kms, &export).await;
        let pem = oc.public_key().await.unwrap().pem;
        assert_eq!(public_der_of(&secrets.private_pkcs8), pem_der(&pem));
        actives.insert(org.to_string(), id);
    }
    // Rotating one leaves the others alone.
    let beta = c.clone().with_org(Some("beta".into()));
    let new = beta.rotate().await.unwrap();
    assert_ne!(new.id, actives["beta"]);
    for org in [declared.as_str(), "gamma"] {
        let s = c.clone().with_org(Some(org.into())).status().await.unwrap();
        assert_eq!(
            s.active_key_id.as_deref(),
            Some(actives[org].as_str()),
            "{org}"
        );
    }
    // Sealed for beta, opened through gamma's path: refused, and the same
    // answer as for a key pair that exists nowhere.
    let dir = tempfile::tempdir().unwrap();
    let (plain, sealed, out) = (
        dir.path().join("a"),
        dir.path().join("s"),
        dir.path().join("o"),
    );
    std::fs::write(&plain, b"hello beta").unwrap();
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (rc, _, err) = d.kekctl(&["--org", "beta", "seal", &p(&plain), &p(&sealed)]);
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = d.kekctl(&["--org", "gamma", "open", &p(&sealed), &p(&out)]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("not_found"), "{err}");
    assert!(!out.exists());
    let (rc, _, err) = d.kekctl(&["--org", "beta", "open", &p(&sealed), &p(&out)]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"hello beta");
    // The daemon summary counts them; a bare status is still an answer.
    let (rc, text, err) = d.kekctl(&["status"]);
    assert_eq!(rc, 0, "{err}");
    assert!(text.contains("organizations   3 (3 active)"), "{text}");
}

/// An organization whose KMS key fails the Test is not saved: the answer
/// names the failing step, the organization is not listed, and a restart
/// does not find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_whose_key_fails_the_test_is_not_saved() {
    let moto = Moto::start().await;
    let (key_a, _) = moto.create_key("good").await;
    let (key_b, _) = moto.create_key("disabled").await;
    moto.set_key_enabled(&key_b, false).await;
    let mut d = TestDaemon::start(&moto, |dir| kms_config(dir, &key_a, "")).await;
    d.wait_active().await;
    let c = d.client();
    let e = c.org_add(&spec("beta", Some(&key_b))).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(code(e), ErrorCode::KmsTestFailed);
    assert!(
        text.contains("describe-key") && text.contains("nothing was saved"),
        "{text}"
    );
    assert_eq!(c.orgs(100, None).await.unwrap().organizations.len(), 1);
    d.restart().await;
    let c = d.client();
    assert_eq!(c.orgs(100, None).await.unwrap().organizations.len(), 1);
    assert_eq!(
        code(c.org("beta").await.unwrap_err()),
        ErrorCode::OrganizationNotFound
    );
    // A bad id or a bad field is a 400 naming it; nothing saved either.
    let e = c.org_add(&spec("no/slash", None)).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidOrganization);
    let mut bad = spec("beta", Some(&key_a));
    bad.cadence = Some("fortnightly".into());
    let e = c.org_add(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("organization beta") && e.contains("cadence"),
        "{e}"
    );
    assert_eq!(c.orgs(100, None).await.unwrap().organizations.len(), 1);
}

/// Organizations survive a restart; remove stops serving public keys (410
/// `organization_removed`) but keeps history and export; restore undoes
/// it; purge is refused inside the window and deletes every key pair
/// after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_restore_remove_purge_across_a_restart() {
    let mut d = TestDaemon::start_local(local_config).await;
    let c = d.client();
    let added = c.org_add(&spec("tenant2", None)).await.unwrap();
    let first = added.key_pair.unwrap().id;
    let t2 = c.clone().with_org(Some("tenant2".into()));
    t2.rotate().await.unwrap();
    d.restart().await;
    let c = d.client();
    let t2 = c.clone().with_org(Some("tenant2".into()));
    assert_eq!(
        t2.history(50, None).await.unwrap().keypairs.len(),
        2,
        "kept across the restart"
    );
    // Remove: no public key, no rotation; history and envelopes stay.
    let removed = c.org_remove("tenant2", Some("1h")).await.unwrap();
    assert_eq!(removed.state, kekd::domain::OrgState::Removed);
    assert_eq!(
        code(t2.public_key().await.unwrap_err()),
        ErrorCode::OrganizationRemoved
    );
    assert_eq!(
        code(t2.rotate().await.unwrap_err()),
        ErrorCode::OrganizationRemoved
    );
    assert!(t2.envelope(&first).await.is_ok());
    assert_eq!(
        code(c.org_purge("tenant2", "tenant2").await.unwrap_err()),
        ErrorCode::OrganizationConflict,
        "purge inside the window"
    );
    // Removed stays removed across a restart; restore serves it again.
    d.restart().await;
    let c = d.client();
    let t2 = c.clone().with_org(Some("tenant2".into()));
    assert_eq!(
        code(t2.public_key().await.unwrap_err()),
        ErrorCode::OrganizationRemoved
    );
    c.org_restore("tenant2").await.unwrap();
    assert!(t2.public_key().await.is_ok());
    // Remove with a short window, then purge: every key pair is gone.
    c.org_remove("tenant2", Some("1ms")).await.unwrap();
    assert_eq!(
        code(c.org_purge("tenant2", "other").await.unwrap_err()),
        ErrorCode::InvalidOrganization,
        "purge wants the id as confirmation"
    );
    let purged = c.org_purge("tenant2", "tenant2").await.unwrap();
    assert_eq!(purged.key_pairs_deleted, 2);
    assert_eq!(
        code(c.org("tenant2").await.unwrap_err()),
        ErrorCode::OrganizationNotFound
    );
    d.restart().await;
    assert_eq!(
        d.client()
            .orgs(100, None)
            .await
            .unwrap()
            .organizations
            .len(),
        1
    );
    // Each step is in the audit trail, naming the organization.
    let trail = std::fs::read_to_string(d.dir.path().join("state/audit.jsonl")).unwrap();
    for kind in [
        "org_added",
        "org_removed",
        "org_restored",
        "org_purge_started",
        "org_purged",
    ] {
        assert!(
            trail
                .lines()
                .any(|l| l.contains(kind) && l.contains("\"organization\":\"tenant2\"")),
            "{kind} audited"
        );
    }
    // `kekctl --org ORG audit show` shows that organization's records only.
    let (rc, out, err) = d.kekctl(&["--org", "tenant2", "--json", "audit", "show"]);
    assert_eq!(rc, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 5, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("\"organization\":\"tenant2\"")),
        "{out}"
    );
    // tenant2 is purged: its records outlive it; an id that never was has
    // neither an organization nor records.
    assert!(out.contains("org_purged"), "{out}");
    let (rc, _, err) = d.kekctl(&["--org", "never-was", "audit", "show"]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("organization_not_found"), "{err}");
}

/// A store written before organizations (schema 2, one organization, no
/// `orgs` table) upgrades with the same config: every key pair kept, the
/// same one active, the organization listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_organization_store_upgrades_with_every_key_pair() {
    let mut d = TestDaemon::start_local(local_config).await;
    d.client().rotate().await.unwrap();
    let active = d.client().rotate().await.unwrap().id;
    let before = d.history_ids().await;
    d.stop().await;
    kekd::store::RedbStore::downgrade_to_schema_2(&d.store_path()).unwrap();
    d.spawn();
    let s = d.wait_active().await;
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    assert_eq!(d.history_ids().await, before);
    let orgs = d.client().orgs(100, None).await.unwrap();
    assert_eq!(orgs.organizations.len(), 1);
    assert_eq!(orgs.organizations[0].id, s.organization_id);
}

/// In a fleet, an organization added on member A is served by member B
/// within the refresh interval plus 2 s; so are its removal and its purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_added_on_one_member_is_served_by_another() {
    use crate::harness::fleet;
    use std::time::{Duration, Instant};
    let moto = Moto::start().await;
    let (key_a, _) = moto.create_key("fleet-a").await;
    let (key_b, _) = moto.create_key("fleet-b").await;
    fleet::create_table(&moto, "kekd-fleet");
    let a = fleet::start_member(&moto, &key_a, "kekd-fleet", &moto.endpoint).await;
    let b = fleet::start_member(&moto, &key_a, "kekd-fleet", &moto.endpoint).await;
    let bound = Duration::from_millis(300) + Duration::from_secs(2);
    let on_b = b.client().with_org(Some("beta".into()));
    let added = a
        .client()
        .org_add(&spec("beta", Some(&key_b)))
        .await
        .unwrap();
    let first = added.key_pair.unwrap().id;
    let since = Instant::now();
    loop {
        if let Ok(p) = on_b.public_key().await {
            assert_eq!(p.id, first, "B serves the key pair A made");
            break;
        }
        assert!(
            since.elapsed() < bound,
            "B did not serve beta within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.client().org_remove("beta", Some("1ms")).await.unwrap();
    let since = Instant::now();
    while !matches!(
        on_b.public_key().await,
        Err(ClientError::Api {
            code: ErrorCode::OrganizationRemoved,
            ..
        })
    ) {
        assert!(
            since.elapsed() < bound,
            "B still served beta after its removal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        a.client()
            .org_purge("beta", "beta")
            .await
            .unwrap()
            .key_pairs_deleted,
        1
    );
    let since = Instant::now();
    while b.client().org("beta").await.is_ok() {
        assert!(
            since.elapsed() < bound,
            "B still listed beta after its purge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `org set` with a new KMS key proves it first (a disabled one is
/// refused, nothing changes), then makes a key pair under it at once;
/// a new cadence reschedules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_set_proves_a_new_key_and_makes_a_key_pair_under_it() {
    let moto = Moto::start().await;
    let (key_a, _) = moto.create_key("set-a").await;
    let (key_b, _) = moto.create_key("set-b").await;
    let (key_c, _) = moto.create_key("set-c").await;
    moto.set_key_enabled(&key_c, false).await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &key_a, "")).await;
    let c = d.client();
    let first = c
        .org_add(&spec("beta", Some(&key_a)))
        .await
        .unwrap()
        .key_pair
        .unwrap()
        .id;
    let beta = c.clone().with_org(Some("beta".into()));
    let refused = c
        .org_set(
            "beta",
            &kekd::domain::OrgPatch {
                kms_key_arn: Some(key_c.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(refused), ErrorCode::KmsTestFailed);
    assert_eq!(
        beta.status().await.unwrap().active_key_id.as_deref(),
        Some(first.as_str())
    );
    let changed = c
        .org_set(
            "beta",
            &kekd::domain::OrgPatch {
                kms_key_arn: Some(key_b.clone()),
                cadence: Some("weekly".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.kms_key, key_b);
    assert_eq!(changed.cadence, "weekly");
    assert!(
        changed.next_rotation_at.is_some(),
        "rescheduled on the new cadence"
    );
    let s = beta.status().await.unwrap();
    let now = s.active_key_id.unwrap();
    assert_ne!(now, first);
    let kp = beta.keypair(&now).await.unwrap();
    assert_eq!(kp.reason, kekd::domain::Reason::KmsKeyChanged);
    assert_eq!(kp.wrapping_key_arn, key_b);
    // The file's organization is changed by its file, not through the API.
    let declared = d.wait_active().await.organization_id;
    let e = c
        .org_set(
            &declared,
            &kekd::domain::OrgPatch {
                cadence: Some("daily".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::OrganizationConflict);
}

/// Bulkheads: one organization's KMS region refusing it (access denied,
/// through the fault proxy) fails its rotations and degrades it alone; the
/// others rotate, answer ok, and keep serving; the metrics name the
/// degraded one only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_organizations_broken_key_degrades_it_alone() {
    use crate::harness::fault_proxy::{Fault, FaultProxy};
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_a, _) = moto.create_key("bulk-a").await;
    let (key_b, _) = moto.create_key_in("eu-west-1", "bulk-b").await;
    let (key_c, _) = moto.create_key("bulk-c").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| kms_config(dir, &key_a, "")).await;
    let c = d.client();
    c.org_add(&spec("beta", Some(&key_b))).await.unwrap();
    c.org_add(&spec("gamma", Some(&key_c))).await.unwrap();
    proxy
        .set_for_region(Fault::access_denied(), "eu-west-1")
        .await;
    let (beta, gamma) = (
        c.clone().with_org(Some("beta".into())),
        c.clone().with_org(Some("gamma".into())),
    );
    let served = beta.public_key().await.unwrap().id;
    assert!(beta.rotate().await.is_err(), "beta's KMS region refuses it");
    let before = gamma.status().await.unwrap().active_key_id.unwrap();
    let rotated = gamma.rotate().await.unwrap();
    assert_ne!(rotated.id, before);
    let s = gamma.status().await.unwrap();
    assert_eq!(s.state, kekd::api::views::ServiceState::Ok);
    let s = beta.status().await.unwrap();
    assert_eq!(s.state, kekd::api::views::ServiceState::Degraded);
    assert_eq!(
        beta.public_key().await.unwrap().id,
        served,
        "beta still serves its key pair"
    );
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("kekd_organizations{state=\"active\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kekd_organization_degraded{organization=\"beta\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("kekd_organization_degraded{organization=\"gamma\"}"),
        "{metrics}"
    );
    let summary = match c.status_any().await.unwrap() {
        kekd::api::client::StatusAnswer::Daemon(d) => d.daemon,
        other => panic!("expected the daemon summary, got {other:?}"),
    };
    assert_eq!(summary.degraded_orgs, ["beta"]);
}

/// A reload's daemon-wide sections reach every organization, not only
/// the one the file declares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reaches_every_organization() {
    let d = TestDaemon::start_local(local_config).await;
    let c = d.client();
    c.org_add(&spec("beta", None)).await.unwrap();
    let beta = c.clone().with_org(Some("beta".into()));
    assert!(beta.status().await.unwrap().warnings.is_empty());
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("max_key_age_warning = \"1s\"\n{text}")).unwrap();
    let out = c.reload().await.unwrap();
    assert_eq!(
        out.outcome,
        kekd::api::views::ReloadResult::Applied,
        "{}",
        out.message
    );
    // Once beta's key pair is older than a second, beta's status says so.
    let mut warned = false;
    for _ in 0..100 {
        let s = beta.status().await.unwrap();
        if s.warnings.iter().any(|w| w.contains("max_key_age_warning")) {
            warned = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(warned, "beta follows the reloaded max_key_age_warning");
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("kekd_organization_key_too_old{organization=\"beta\"} 1"),
        "{metrics}"
    );
}

/// `kekctl org apply FILE`: adds and updates what the file lists, says
/// what it changed, changes nothing the second time, removes only with
/// --prune, and a dry run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_apply_is_declarative_and_idempotent() {
    let d = TestDaemon::start_local(local_config).await;
    let file = d.dir.path().join("orgs.toml");
    let f = file.to_str().unwrap();
    std::fs::write(
        &file,
        "[[organization]]\nid = \"one\"\n\n[[organization]]\nid = \"two\"\ncadence = \"weekly\"\n",
    )
    .unwrap();
    let (rc, out, err) = d.kekctl(&["org", "apply", f]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("added         one") && out.contains("added         two"),
        "{out}"
    );
    let (rc, out, _) = d.kekctl(&["org", "apply", f]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("unchanged     one") && out.contains("unchanged     two"),
        "{out}"
    );
    std::fs::write(
        &file,
        "[[organization]]\nid = \"two\"\ncadence = \"daily\"\n",
    )
    .unwrap();
    let (rc, out, _) = d.kekctl(&["org", "apply", "--dry-run", "--prune", f]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("would change  two (cadence)") && out.contains("would remove  one"),
        "{out}"
    );
    assert_eq!(
        d.client().org("two").await.unwrap().cadence,
        "weekly",
        "a dry run changes nothing"
    );
    let (rc, out, _) = d.kekctl(&["org", "apply", f]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("changed       two (cadence)") && !out.contains("one"),
        "{out}"
    );
    assert_eq!(
        d.client().org("one").await.unwrap().state,
        kekd::domain::OrgState::Active,
        "no --prune, no removal"
    );
    let (rc, out, _) = d.kekctl(&["org", "apply", "--prune", f]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("removed       one") && out.contains("unchanged     two"),
        "{out}"
    );
    assert_eq!(
        d.client().org("one").await.unwrap().state,
        kekd::domain::OrgState::Removed
    );
    // A field the file may not have is named, with the file.
    std::fs::write(&file, "[[organization]]\nid = \"x\"\ncadense = \"daily\"\n").unwrap();
    let (rc, _, err) = d.kekctl(&["org", "apply", f]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("orgs.toml") && err.contains("cadense"),
        "{err}"
    );
}

/// A fleet table from before organizations (key pairs in the
/// organization's partition, no `#orgs` item) upgrades with the same
/// config: every key pair kept, the same one active, the organization
/// listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_organization_fleet_table_upgrades_with_every_key_pair() {
    use crate::harness::fleet;
    let moto = Moto::start().await;
    let (key, _) = moto.create_key("fleet-upgrade").await;
    fleet::create_table(&moto, "kekd-up");
    let mut d = fleet::start_member(&moto, &key, "kekd-up", &moto.endpoint).await;
    let active = d.client().rotate().await.unwrap().id;
    let before = d.history_ids().await;
    let org = d.wait_active().await.organization_id;
    d.stop().await;
    // What a build from before organizations wrote: no organization item.
    let ddb = fleet::dynamodb(&moto);
    let gone = ddb
        .delete_item()
        .table_name("kekd-up")
        .key(
            "org",
            aws_sdk_dynamodb::types::AttributeValue::S("#orgs".into()),
        )
        .key(
            "item",
            aws_sdk_dynamodb::types::AttributeValue::S(org.clone()),
        )
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert!(gone.attributes.is_some(), "the organization item existed");
    d.spawn();
    let s = d.wait_active().await;
    assert_eq!(s.active_key_id.as_deref(), Some(active.as_str()));
    assert_eq!(d.history_ids().await, before);
    let orgs = d.client().orgs(100, None).await.unwrap();
    assert_eq!(orgs.organizations.len(), 1);
    assert_eq!(orgs.organizations[0].id, org);
}
