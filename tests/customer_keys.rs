//! The customer's control of their key: the Test's isolation probe, and
//! each kind of revocation noticed by the probe within the bound, for that
//! organization alone, with `withhold` and the dropped key cache — against
//! moto, with the key policies moto does not evaluate played by the fault
//! proxy's body rules.

use crate::harness::daemon::{kms_config, TestDaemon, SHORT_REVOCATION_BOUND};
use crate::harness::fault_proxy::{Fault, FaultProxy, Rule};
use crate::harness::moto::Moto;
use crate::harness::wait_for;
use kekd::api::client::{Client, ClientError};
use kekd::api::ErrorCode;
use kekd::domain::{KeyProblem, KeyProblemKind, NoticedBy, OnRevocation, OrgSpec};
use kekd::isolation::Isolation;
use std::time::Duration;

fn spec(id: &str, key: &str) -> OrgSpec {
    OrgSpec {
        id: id.into(),
        kms_key_arn: Some(key.into()),
        ..OrgSpec::default()
    }
}

fn code(e: ClientError) -> ErrorCode {
    match e {
        ClientError::Api { code, .. } => code,
        other => panic!("expected an API error, got {other}"),
    }
}

/// The key id at the end of an ARN: what the proxy finds in a request.
fn key_id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap().to_string()
}

/// A key policy with the encryption-context condition refuses a data key
/// for another organization's context: the Test's probe is refused and the
/// isolation is proven. Without the condition the probe is granted: a
/// warning by default, a refused add with `--require-isolation` (nothing
/// saved). The probe's reserved id cannot be an organization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_isolation_probe_proves_a_bound_key_and_flags_an_unbound_one() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_a, _) = moto.create_key("iso-a").await;
    let (key_b, _) = moto.create_key("iso-b").await;
    let (key_c, _) = moto.create_key("iso-c").await;
    let (key_d, _) = moto.create_key("iso-d").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| kms_config(dir, &key_a, "")).await;
    let c = d.client();

    // Not bound (moto grants any context): added, with the warning.
    let added = c.org_add(&spec("beta", &key_b)).await.unwrap();
    assert_eq!(added.isolation, Some(Isolation::NotBound));
    assert!(
        added.warnings.iter().any(|w| w.contains("does not bind")),
        "{:?}",
        added.warnings
    );
    // Required: refused, and nothing is kept.
    let e = c
        .org_add_with(&spec("gamma", &key_c), true)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(code(e), ErrorCode::KmsTestFailed);
    assert!(
        text.contains("isolation-probe") && text.contains("isolation is required"),
        "{text}"
    );
    assert_eq!(
        code(c.org("gamma").await.unwrap_err()),
        ErrorCode::OrganizationNotFound
    );
    let p = |s: &str| s.to_string();
    let (rc, _, err) = d.kekctl(&[
        "org",
        "add",
        "gamma",
        "--kms-key-arn",
        &p(&key_c),
        "--require-isolation",
    ]);
    assert_ne!(rc, 0);
    assert!(err.contains("isolation"), "{err}");

    // Bound: the customer's policy names the organization; the proxy
    // refuses, as KMS would, a data key under that key whose context does
    // not name "delta".
    proxy.add_rule(Rule {
        fault: Fault::access_denied(),
        operation: Some("GenerateDataKey"),
        contains: Some(key_id(&key_d)),
        lacks: Some("\"delta\"".into()),
    });
    let (rc, out, err) = d.kekctl(&[
        "org",
        "add",
        "delta",
        "--kms-key-arn",
        &p(&key_d),
        "--require-isolation",
    ]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("isolation: proven"), "{out}");
    assert!(!out.contains("warning"), "{out}");

    assert_eq!(
        code(
            c.org_add(&spec(kekd::isolation::PROBE_ORG, &key_d))
                .await
                .unwrap_err()
        ),
        ErrorCode::InvalidOrganization
    );
}

/// The key problem of `org`, once it is of `kind`.
async fn problem_of(c: &Client, org: &str, kind: KeyProblemKind) -> KeyProblem {
    let oc = c.clone().with_org(Some(org.into()));
    wait_for(
        Duration::from_secs(30),
        &format!("{org}'s key to show {kind}"),
        || async {
            oc.status()
                .await
                .ok()?
                .key_problem
                .filter(|p| p.kind == kind)
        },
    )
    .await
}

async fn cleared(c: &Client, org: &str) {
    let oc = c.clone().with_org(Some(org.into()));
    wait_for(
        Duration::from_secs(30),
        &format!("{org}'s key problem to clear"),
        || async {
            let s = oc.status().await.ok()?;
            (s.key_problem.is_none() && s.state == kekd::api::views::ServiceState::Ok).then_some(())
        },
    )
    .await;
}

async fn untouched(c: &Client, orgs: &[&str]) {
    for org in orgs {
        let s = c
            .clone()
            .with_org(Some((*org).into()))
            .status()
            .await
            .unwrap();
        assert!(s.key_problem.is_none(), "{org}: {s:?}");
    }
}

/// Each revocation — disabled, pending deletion (with its date from
/// DescribeKey), access denied, not found — is noticed by the probe alone
/// (nothing rotates or unwraps), shown as its own kind for that
/// organization only, and cleared when the customer restores access. A
/// revocation drops the organization's cached private keys (the next
/// unwrap asks KMS, which refuses); `withhold` stops its public keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_revocation_is_noticed_within_the_bound_for_its_organization_alone() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_a, _) = moto.create_key("rev-a").await;
    let (key_b, _) = moto.create_key("rev-b").await;
    let (key_c, _) = moto.create_key("rev-c").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &key_a, SHORT_REVOCATION_BOUND)
    })
    .await;
    let c = d.client();
    let declared = d.wait_active().await.organization_id;
    c.org_add(&spec("beta", &key_b)).await.unwrap();
    c.org_add(&OrgSpec {
        on_revocation: Some(OnRevocation::Withhold),
        ..spec("gamma", &key_c)
    })
    .await
    .unwrap();
    let beta = c.clone().with_org(Some("beta".into()));
    let gamma = c.clone().with_org(Some("gamma".into()));

    // A recording for beta, its private key cached by a first unwrap.
    let active = beta.status().await.unwrap().active_key_id.unwrap();
    let der = pem::parse(beta.public_key().await.unwrap().pem)
        .unwrap()
        .into_contents();
    let mut sealed = Vec::new();
    kekd::recording::seal(&mut &b"a call"[..], &mut sealed, &active, &der, |_| {}).unwrap();
    let header = kekd::recording::Header::read(&mut &sealed[..]).unwrap();
    beta.unwrap(&active, &header.wrapped_key).await.unwrap();

    let kid = key_id(&key_b);
    for (fault, kind) in [
        (Fault::disabled(), KeyProblemKind::Disabled),
        (Fault::access_denied(), KeyProblemKind::AccessDenied),
        (
            Fault::Kms("NotFoundException", 400),
            KeyProblemKind::NotFound,
        ),
    ] {
        proxy.add_rule(Rule::containing(fault, &kid));
        let p = problem_of(&c, "beta", kind).await;
        assert!(p.revoked, "{p:?}");
        assert_eq!(p.noticed_by, NoticedBy::Probe, "{p:?}");
        let s = beta.status().await.unwrap();
        assert!(
            s.degraded_causes
                .contains(&kekd::api::views::DegradedCause::KeyRevoked),
            "{s:?}"
        );
        untouched(&c, &[&declared, "gamma"]).await;
        let metrics = c.metrics().await.unwrap();
        let series = format!(
            "kekd_organization_key_problem{{organization=\"beta\",kind=\"{kind}\",revoked=\"true\"}} 1"
        );
        assert!(metrics.contains(&series), "{metrics}");
        if kind == KeyProblemKind::Disabled {
            // The cached private key was dropped: KMS is asked, and refuses.
            assert!(beta.unwrap(&active, &header.wrapped_key).await.is_err());
            // `serve`: the last public key stays served.
            assert_eq!(beta.public_key().await.unwrap().id, active);
        }
        proxy.clear_rules();
        cleared(&c, "beta").await;
    }

    // One operation taken away alone — new key pairs (GenerateDataKey) or
    // playback (Decrypt): the probe asks for both each time, notices
    // either, and a half that still works does not clear it.
    for op in ["GenerateDataKey", "Decrypt"] {
        proxy.add_rule(Rule {
            fault: Fault::access_denied(),
            operation: Some(op),
            contains: Some(kid.clone()),
            lacks: None,
        });
        let p = problem_of(&c, "beta", KeyProblemKind::AccessDenied).await;
        assert_eq!(p.noticed_by, NoticedBy::Probe, "{op}: {p:?}");
        let faulted = proxy.faulted();
        wait_for(
            Duration::from_secs(30),
            "two more refused probes",
            || async { (proxy.faulted() >= faulted + 2).then_some(()) },
        )
        .await;
        let still = beta.status().await.unwrap().key_problem;
        assert_eq!(still.map(|p| p.since), Some(p.since), "{op}: still marked");
        proxy.clear_rules();
        cleared(&c, "beta").await;
    }

    // Pending deletion: KMS refuses with KMSInvalidStateException, and
    // DescribeKey (moto's own answer) names the state and the date.
    moto.kms()
        .schedule_key_deletion()
        .key_id(&kid)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    for op in ["GenerateDataKey", "Decrypt"] {
        proxy.add_rule(Rule {
            fault: Fault::invalid_state(),
            operation: Some(op),
            contains: Some(kid.clone()),
            lacks: None,
        });
    }
    let p = problem_of(&c, "beta", KeyProblemKind::PendingDeletion).await;
    assert!(p.revoked);
    let date = p.deletion_date.expect("DescribeKey's deletion date");
    assert!(
        date > chrono::Utc::now() + chrono::Duration::days(6),
        "{date}"
    );
    let (rc, text, err) = d.kekctl(&["--org", "beta", "status"]);
    assert_eq!(rc, 5, "degraded: {err}");
    assert!(
        text.contains("KMS KEY REVOKED") && text.contains("pending_deletion"),
        "{text}"
    );
    untouched(&c, &[&declared, "gamma"]).await;
    // The customer cancels the deletion and enables the key again.
    moto.kms()
        .cancel_key_deletion()
        .key_id(&kid)
        .send()
        .await
        .unwrap();
    moto.set_key_enabled(&key_b, true).await;
    proxy.clear_rules();
    cleared(&c, "beta").await;

    // Withhold: gamma's public keys stop while its key is revoked.
    let served = gamma.public_key().await.unwrap().id;
    proxy.add_rule(Rule::containing(Fault::disabled(), &key_id(&key_c)));
    problem_of(&c, "gamma", KeyProblemKind::Disabled).await;
    assert_eq!(
        code(gamma.public_key().await.unwrap_err()),
        ErrorCode::KeyRevoked
    );
    assert_eq!(
        code(gamma.public_keys(None).await.unwrap_err()),
        ErrorCode::KeyRevoked
    );
    assert!(beta.public_key().await.is_ok(), "beta is not gamma");
    proxy.clear_rules();
    cleared(&c, "gamma").await;
    assert_eq!(gamma.public_key().await.unwrap().id, served);
}

/// The customer's key lives in the customer's account and only their role
/// reaches it: with the platform's own credentials the Test does not find
/// the key; with the role (and its external id) kekd assumes it — the STS
/// request carries the external id and a session name naming kekd and the
/// organization — and the first key pair is wrapped under the customer's
/// key. A refused AssumeRole (a wrong external id, as STS answers it) is
/// `assume_role_denied`, and nothing is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_reaches_its_key_only_through_the_customers_role() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_a, _) = moto.create_key("role-a").await;
    let role = "arn:aws:iam::210987654321:role/kekd-access";
    let customer = moto.kms_as(moto.assumed(role).await);
    let (customer_key, _) = Moto::create_key_with(&customer, "recordings").await;
    assert!(
        customer_key.contains(":210987654321:key/"),
        "{customer_key}"
    );
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| kms_config(dir, &key_a, "")).await;
    let c = d.client();

    // The platform's own credentials: another account, no such key.
    let e = c.org_add(&spec("cust", &customer_key)).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(code(e), ErrorCode::KmsTestFailed);
    assert!(
        text.contains("not found") || text.contains("NotFound"),
        "{text}"
    );

    // STS refuses a wrong external id (moto does not check it: the proxy
    // answers as STS does).
    proxy.add_rule(Rule {
        fault: Fault::Sts("AccessDenied", 403),
        operation: None,
        contains: Some("Action=AssumeRole".into()),
        lacks: Some("ExternalId=ext-123".into()),
    });
    let with_role = |external_id: &str| OrgSpec {
        assume_role_arn: Some(role.into()),
        external_id: Some(external_id.into()),
        ..spec("cust", &customer_key)
    };
    let e = c.org_add(&with_role("wrong-id")).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(code(e), ErrorCode::KmsTestFailed);
    assert!(text.contains("assume_role_denied"), "{text}");
    assert_eq!(
        code(c.org("cust").await.unwrap_err()),
        ErrorCode::OrganizationNotFound
    );

    // The right one: the role is assumed and the key is the customer's.
    let before = proxy.requests().get("").copied().unwrap_or(0);
    let added = c.org_add(&with_role("ext-123")).await.unwrap();
    assert!(added.key_pair.is_some());
    let sts_calls = proxy.requests().get("").copied().unwrap_or(0) - before;
    assert!(sts_calls >= 1, "kekd called STS");
    let oc = c.clone().with_org(Some("cust".into()));
    let id = oc.status().await.unwrap().active_key_id.unwrap();
    let export = oc.envelope(&id).await.unwrap();
    let env = serde_json::to_value(&export).unwrap()["envelope"].clone();
    assert_eq!(env["wrapping_key_arn"], customer_key.as_str());
    let secrets = crate::harness::decrypt::recover(&customer, &export).await;
    let pem = oc.public_key().await.unwrap().pem;
    assert_eq!(
        crate::harness::decrypt::public_der_of(&secrets.private_pkcs8),
        crate::harness::decrypt::pem_der(&pem)
    );
    // The credentials are kept: a rotation and an unwrap ask STS no more.
    let before = proxy.requests().get("").copied().unwrap_or(0);
    oc.rotate().await.unwrap();
    assert_eq!(proxy.requests().get("").copied().unwrap_or(0), before);
    // The session name names kekd and the organization.
    assert!(proxy.saw("RoleSessionName=kekd-cust"), "session name");
    // The STS call is in the organization's audit trail, as KMS calls are.
    let (rc, out, err) = d.kekctl(&["--json", "audit", "show", "--org", "cust"]);
    assert_eq!(rc, 0, "{err}");
    let assumed = out
        .lines()
        .filter(|l| l.contains("\"operation\":\"AssumeRole\""))
        .count();
    assert!(assumed >= 1, "{out}");
    assert!(out.contains(role), "{out}");

    // The API gives the customer the same trail: their calls only, the
    // refused AssumeRole included, one page at a time.
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = oc.audit(2, cursor.as_deref(), None).await.unwrap();
        assert_eq!(page.organization.as_deref(), Some("cust"));
        assert!(page.records.len() <= 2);
        records.extend(page.records);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert!(records.iter().all(|r| r["organization"] == "cust"));
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let assume_outcomes: Vec<&str> = records
        .iter()
        .filter(|r| r["event"]["operation"] == "AssumeRole")
        .map(|r| r["event"]["outcome"].as_str().unwrap())
        .collect();
    assert!(
        assume_outcomes.contains(&"assume_role_denied"),
        "{assume_outcomes:?}"
    );
    assert!(assume_outcomes.contains(&"ok"), "{assume_outcomes:?}");
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains(&key_a),
        "another organization's key in the trail"
    );
    assert!(text.contains(&customer_key), "the customer's key calls");
    // A bad cursor names the problem.
    let e = oc.audit(2, Some("x"), None).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidQuery);
}

/// The role's credentials are renewed before they expire, halfway through
/// a short life (the proxy shortens moto's hour to eight seconds), with
/// the session length asked of STS; the key keeps working throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roles_credentials_are_renewed_before_they_expire() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_a, _) = moto.create_key("renew-a").await;
    let role = "arn:aws:iam::210987654321:role/kekd-renew";
    let customer = moto.kms_as(moto.assumed(role).await);
    let (customer_key, _) = Moto::create_key_with(&customer, "renew").await;
    // In [customer_keys], which the short bound's fragment opens.
    let extra =
        SHORT_REVOCATION_BOUND.replacen("[overrides]", "role_session = \"15m\"\n[overrides]", 1);
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| kms_config(dir, &key_a, &extra)).await;
    proxy.add_rule(Rule {
        fault: Fault::Expiring(Duration::from_secs(8)),
        operation: None,
        contains: Some("Action=AssumeRole".into()),
        lacks: None,
    });
    let c = d.client();
    c.org_add(&OrgSpec {
        assume_role_arn: Some(role.into()),
        ..spec("cust", &customer_key)
    })
    .await
    .unwrap();
    assert!(
        proxy.saw("DurationSeconds=900"),
        "the session length is asked"
    );
    let sts = || proxy.requests().get("").copied().unwrap_or(0);
    let first = sts();
    // The probe (every 2.4 s) asks for credentials; past half their life
    // they are renewed — three more sessions within about half a minute.
    wait_for(Duration::from_secs(90), "three renewals", || async {
        (sts() >= first + 3).then_some(())
    })
    .await;
    let oc = c.clone().with_org(Some("cust".into()));
    assert!(oc.status().await.unwrap().key_problem.is_none());
    oc.rotate().await.unwrap();
    let page = oc.audit(1000, None, None).await.unwrap();
    let renewals = page
        .records
        .iter()
        .filter(|r| r["event"]["operation"] == "AssumeRole" && r["event"]["outcome"] == "ok")
        .count();
    assert!(renewals >= 4, "each session is in the trail: {renewals}");
}

/// Regression: after a restart, an organization that already serves leaves
/// its start-up preflight to the key watch, up to ten minutes later — and
/// the revocation probe waited behind it, so the bound did not hold for
/// the first minutes. The probe now runs from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_bound_holds_from_the_start() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (key_a, _) = moto.create_key("restart-a").await;
    let (key_b, _) = moto.create_key("restart-b").await;
    let mut d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &key_a, SHORT_REVOCATION_BOUND)
    })
    .await;
    d.client().org_add(&spec("beta", &key_b)).await.unwrap();
    assert!(d.stop().await.success());
    d.spawn();
    d.wait_active().await;
    proxy.add_rule(Rule::containing(Fault::disabled(), &key_id(&key_b)));
    let p = problem_of(&d.client(), "beta", KeyProblemKind::Disabled).await;
    assert_eq!(p.noticed_by, NoticedBy::Probe, "{p:?}");
}
