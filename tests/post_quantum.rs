//! Hybrid post-quantum key pairs (`x25519-mlkem768`): an organization
//! moves to them at a rotation without a gap, every path that seals or
//! opens takes both key types, and a recorder that only knows RSA is told
//! so instead of being handed a key it would misread.

use crate::harness::*;
use kekd::api::client::ClientError;
use kekd::api::ErrorCode;
use kekd::domain::{KeyBits, KeyState, KeyType, OrgPatch, OrgSpec};

fn run_py(moto: &Moto, args: &[&str]) -> std::process::Output {
    std::process::Command::new(moto_python())
        .args(args)
        .envs(moto_env(moto))
        .output()
        .unwrap()
}

/// An RSA organization is switched to the hybrid type: nothing changes
/// until the next rotation (status says what comes next); that rotation
/// makes a hybrid key pair, proven through KMS (I1) and recoverable
/// through KMS by the break-glass script; recordings sealed before (RSA,
/// format 1) and after (hybrid, format 2) both open, through kekd and
/// through the Python reference opener; the JWK Set lists the hybrid key
/// as an AKP key beside the retired RSA one; `/v1/public-key` refuses a
/// caller that did not say it can seal the hybrid type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_moves_to_hybrid_key_pairs_at_a_rotation() {
    let moto = Moto::start().await;
    let (key_a, _) = moto.create_key("pq-a").await;
    let (key_b, _) = moto.create_key("pq-b").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &key_a, "")).await;
    d.wait_active().await;
    let c = d.client();
    let spec = OrgSpec {
        id: "beta".into(),
        kms_key_arn: Some(key_b.clone()),
        key_bits: Some(2048),
        ..OrgSpec::default()
    };
    c.org_add(&spec).await.unwrap();
    let beta = c.clone().with_org(Some("beta".into()));
    let rsa_id = beta.status().await.unwrap().active_key_id.unwrap();
    let dir = d.dir.path();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(p("call.raw"), &data).unwrap();
    let (rc, _, err) = d.kekctl(&["--org", "beta", "seal", &p("call.raw"), &p("rsa.rec")]);
    assert_eq!(rc, 0, "{err}");

    // The switch: proven first like any change, effective at a rotation.
    let (rc, out, err) = d.kekctl(&["org", "set", "beta", "--key-type", "x25519-mlkem768"]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("x25519-mlkem768"), "{out}");
    let s = beta.status().await.unwrap();
    assert_eq!(s.active_key_id.as_deref(), Some(rsa_id.as_str()));
    assert_eq!(s.active_key_type, Some(KeyType::Rsa(KeyBits::Rsa2048)));
    assert_eq!(s.next_key_type, Some(KeyType::X25519MlKem768));
    let (_, text, _) = d.kekctl(&["--org", "beta", "status"]);
    assert!(
        text.contains("rsa-2048 (next key pair: x25519-mlkem768)"),
        "{text}"
    );
    // An unknown key type is refused, naming what is allowed.
    let bad = OrgPatch {
        key_type: Some("mlkem1024".into()),
        ..OrgPatch::default()
    };
    match c.org_set("beta", &bad).await.unwrap_err() {
        ClientError::Api { code, message, .. } => {
            assert_eq!(code, ErrorCode::InvalidOrganization, "{message}");
            assert!(
                message.contains("key_type") && message.contains("x25519-mlkem768"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }

    let hybrid = beta.rotate().await.unwrap();
    assert_eq!(hybrid.key_type, Some(KeyType::X25519MlKem768));
    assert_eq!(hybrid.key_bits, 0);
    assert!(hybrid
        .public_key_pem
        .starts_with("-----BEGIN X25519-MLKEM768 PUBLIC KEY-----\n"));
    let public = pem_der(&hybrid.public_key_pem);
    assert_eq!(public.len(), 1216);
    assert_eq!(kekd::keypair::key_pair_id(&public), hybrid.id);

    // I1 for the hybrid: the stored envelope decrypts through KMS under
    // beta's key and holds the private half of the published key.
    let export = beta.envelope(&hybrid.id).await.unwrap();
    let env = serde_json::to_value(&export).unwrap()["envelope"].clone();
    assert_eq!(env["key_type"], "x25519-mlkem768");
    assert_eq!(env["wrapping_key_arn"], key_b.as_str());
    let secrets = recover(&moto.kms(), &export).await;
    assert_eq!(public_der_of(&secrets.private_pkcs8), public);
    let retired = beta.keypair(&rsa_id).await.unwrap();
    assert_eq!(retired.state, KeyState::Retired);
    assert_eq!(retired.key_type, Some(KeyType::Rsa(KeyBits::Rsa2048)));

    // A recorder that only knows RSA is refused, by code and in words.
    let (status, body) = beta
        .raw(hyper::Method::GET, kekd::api::paths::PUBLIC_KEY)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 406);
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e["error"]["code"], "key_type_not_accepted");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&hybrid.id) && msg.contains("key_types=rsa,x25519-mlkem768"),
        "{msg}"
    );
    let (status, body) = beta
        .raw(hyper::Method::GET, "/v1/public-key?key_types=rsa,ec")
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(&body));
    // The RSA organization next door is served as before, without asking.
    let (status, _) = c
        .clone()
        .with_org(Some(declared(&d).await))
        .raw(hyper::Method::GET, kekd::api::paths::PUBLIC_KEY)
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 200);
    let p_key = beta.public_key().await.unwrap();
    assert_eq!(p_key.id, hybrid.id);
    assert_eq!(p_key.key_type, Some(KeyType::X25519MlKem768));

    // The JWK Set: the hybrid key as AKP first, the retired RSA key after.
    let set = beta.public_keys(None).await.unwrap().unwrap();
    let json = serde_json::to_value(&set.set).unwrap();
    assert_eq!(json["keys"][0]["kid"], hybrid.id.as_str());
    assert_eq!(json["keys"][0]["kty"], "AKP");
    assert_eq!(json["keys"][0]["alg"], "X-Wing");
    assert_eq!(json["keys"][1]["kid"], rsa_id.as_str());
    assert_eq!(json["keys"][1]["kty"], "RSA");
    std::fs::write(p("jwks.json"), serde_json::to_vec(&json).unwrap()).unwrap();
    std::fs::write(p("active.pem"), &p_key.pem).unwrap();

    // Sealing the hybrid type three ways: through the daemon, from the
    // cached JWK Set, from the cached PEM. Each is format 2 and opens.
    let ways: [&[&str]; 3] = [
        &[],
        &["--jwks", &p("jwks.json")],
        &["--public-key", &p("active.pem")],
    ];
    let input = p("call.raw");
    for (i, extra) in ways.iter().enumerate() {
        let out = p(&format!("hybrid{i}.rec"));
        let mut args = vec!["--org", "beta", "seal", input.as_str(), out.as_str()];
        args.extend_from_slice(extra);
        let (rc, _, err) = d.kekctl(&args);
        assert_eq!(rc, 0, "{extra:?}: {err}");
        let sealed = std::fs::read(&out).unwrap();
        assert_eq!(
            &sealed[..9],
            b"KEKDREC\x02\x01",
            "{extra:?}: format 2, key type 1"
        );
    }
    for rec in ["rsa.rec", "hybrid0.rec", "hybrid1.rec", "hybrid2.rec"] {
        let out = p(&format!("{rec}.out"));
        let (rc, _, err) = d.kekctl(&["--org", "beta", "open", &p(rec), &out]);
        assert_eq!(rc, 0, "{rec}: {err}");
        assert_eq!(std::fs::read(&out).unwrap(), data, "{rec}");
    }

    // History shows both types.
    let (rc, text, err) = d.kekctl(&["--org", "beta", "history"]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        text.contains("x25519-mlkem768") && text.contains("rsa-2048"),
        "{text}"
    );

    // Break-glass in Python alone: recover the hybrid key through KMS,
    // then open the format-2 recording with the reference opener.
    let (rc, _, err) = d.kekctl(&[
        "--org",
        "beta",
        "export",
        &hybrid.id,
        "--out",
        &p("env.json"),
    ]);
    assert_eq!(rc, 0, "{err}");
    let key = run_py(
        &moto,
        &[
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/decrypt-envelope.py"),
            &p("env.json"),
        ],
    );
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    std::fs::write(p("private.hex"), &key.stdout).unwrap();
    let opened = run_py(
        &moto,
        &[
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/open-recording.py"),
            &p("private.hex"),
            &p("hybrid0.rec"),
            &p("py.out"),
        ],
    );
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert_eq!(std::fs::read(p("py.out")).unwrap(), data);

    // Exactly one active key pair; the hybrid one.
    let page = beta.history(100, None).await.unwrap();
    let active: Vec<_> = page
        .keypairs
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, hybrid.id);
}

/// The file-declared organization: the first organization other than
/// `beta`.
async fn declared(d: &TestDaemon) -> String {
    d.client()
        .orgs(10, None)
        .await
        .unwrap()
        .organizations
        .into_iter()
        .map(|o| o.id)
        .find(|id| id != "beta")
        .unwrap()
}
