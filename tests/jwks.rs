//! The JWK Set recorders cache (`GET /v1/public-keys`): what it lists, its
//! ETag and max-age, that its `n` and `e` are the served public key (checked
//! by plain Python), sealing with a cached set, and the key announced ahead
//! of a scheduled rotation.

use crate::harness::*;
use kekd::api::views::StatusView;
use kekd::domain::KeyState;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_jwk_set_lists_the_active_and_retired_keys_with_a_strong_etag() {
    let (_moto, d) = daemon_with_key("kekd-jwks").await;
    let c = d.client();
    let first = c.public_keys(None).await.unwrap().unwrap();
    assert_eq!(first.set.keys.len(), 1);
    assert!(
        first.etag.starts_with('"') && first.etag.len() > 16,
        "{}",
        first.etag
    );
    assert_eq!(
        first.cache_control, "max-age=300",
        "cadence never: the longest"
    );
    // Unchanged: 304, however often a recorder polls.
    assert!(c.public_keys(Some(&first.etag)).await.unwrap().is_none());
    assert!(c.public_keys(Some("\"other\", *")).await.unwrap().is_none());

    c.rotate().await.unwrap();
    c.rotate().await.unwrap();
    let now = c
        .public_keys(Some(&first.etag))
        .await
        .unwrap()
        .expect("changed");
    assert_ne!(now.etag, first.etag);
    let history = d.history_ids().await;
    let kids: Vec<&str> = now.set.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, history.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(now.set.keys[0].kekd_state, KeyState::Active);
    assert!(now.set.keys[1..]
        .iter()
        .all(|k| k.kekd_state == KeyState::Retired && k.kekd_retired_at.is_some()));
    for k in &now.set.keys {
        assert_eq!(
            (k.kty.as_str(), k.use_.as_str(), k.alg.as_str()),
            ("RSA", "enc", "RSA-OAEP-256")
        );
    }

    // Plain Python (base64url of n and e, no JOSE library) rebuilds the
    // public key the daemon serves as PEM.
    let pem = c.public_key().await.unwrap().pem;
    let script = r#"
import base64, json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
jwks = json.load(open(sys.argv[1]))
b64 = lambda s: int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")
k = jwks["keys"][0]
key = RSAPublicNumbers(b64(k["e"]), b64(k["n"])).public_key()
print(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
"#;
    let file = d.dir.path().join("jwks.json");
    let (code, _, err) = d.kekctl(&["public-key", "--jwks", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(Command::new(moto_python()).arg("-c").arg(script).arg(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, pem);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorder_seals_with_its_cached_jwk_set_and_the_daemon_opens_it() {
    let (_moto, d) = daemon_with_key("kekd-jwks-seal").await;
    let dir = d.dir.path();
    let cached = dir.join("cached.json");
    let (code, _, err) = d.kekctl(&["public-key", "--jwks", "--out", cached.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let active = d.wait_active().await.active_key_id.unwrap();
    let (input, sealed, out) = (
        dir.join("in.raw"),
        dir.join("in.kekdrec"),
        dir.join("out.raw"),
    );
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let seal_with_cached_set = || {
        d.kekctl(&[
            "seal",
            "--jwks",
            cached.to_str().unwrap(),
            input.to_str().unwrap(),
            sealed.to_str().unwrap(),
        ])
    };
    // The daemon rotates after the recorder cached the set: the recording
    // sealed with the (now retired) cached key still opens.
    d.client().rotate().await.unwrap();
    let (code, _, err) = seal_with_cached_set();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&active),
        "sealed for the cached active key: {err}"
    );
    let (code, _, err) = d.kekctl(&["open", sealed.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), data);
    // Regression: a byte-order mark before the JSON (as some editors
    // write) gave a cryptic parse error; it is skipped.
    let set = std::fs::read_to_string(&cached).unwrap();
    std::fs::write(&cached, format!("\u{feff}{set}")).unwrap();
    let (code, _, err) = seal_with_cached_set();
    assert_eq!(code, 0, "a BOM is not an error of the set: {err}");
    // A set with no active key is refused, naming the file.
    std::fs::write(&cached, r#"{"keys":[]}"#).unwrap();
    let (code, _, err) = seal_with_cached_set();
    assert_eq!(code, 1);
    assert!(
        err.contains("cached.json") && err.contains("no key in the set is active"),
        "{err}"
    );
}

/// `announce_ahead`: the next key pair is published before it is used,
/// becomes active at its instant with KMS black-holed (no KMS call), opens
/// what was sealed with it, and Change Key Now discards an announced key.
#[tokio::test(flavor = "multi_thread")]
async fn an_announced_key_becomes_active_at_its_instant_with_kms_black_holed() {
    let moto = Moto::start().await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let (_, alias) = moto.create_key("kekd-announce").await;
    let d = TestDaemon::start_via(&proxy.endpoint, |dir| {
        kms_config(dir, &alias, "announce_ahead = \"12s\"")
            .replace("cadence = \"never\"", "cadence = \"*/20 * * * * *\"")
            + "\n[overrides]\nallow_frequent_rotation = true\n"
    })
    .await;
    let c = d.client();
    let s = wait_for(
        Duration::from_secs(40),
        "a key pair to be announced",
        || async {
            let s: StatusView = c.status().await.ok()?;
            s.announced_key_id.is_some().then_some(s)
        },
    )
    .await;
    let announced = s.announced_key_id.clone().unwrap();
    let at = s.announced_activates_at.unwrap();
    assert_eq!(
        Some(at),
        s.next_rotation_at,
        "announced for the next rotation"
    );
    assert_ne!(s.active_key_id.as_deref(), Some(announced.as_str()));

    // The set publishes it ahead, with its instant; caches expire by then.
    let j = c.public_keys(None).await.unwrap().unwrap();
    let k = j
        .set
        .keys
        .iter()
        .find(|k| k.kid == announced)
        .expect("announced key listed");
    assert_eq!(k.kekd_state, KeyState::Announced);
    assert_eq!(k.kekd_activates_at, Some(at));
    let max_age: i64 = j
        .cache_control
        .trim_start_matches("max-age=")
        .parse()
        .unwrap();
    assert!(
        max_age <= (at - chrono::Utc::now()).num_seconds() + 1,
        "{}",
        j.cache_control
    );

    // KMS goes dark: every KMS request now hangs until its timeout, so an
    // activation that needed KMS would fail and never happen.
    proxy.set(Fault::BlackHole).await;
    let s = wait_for(
        Duration::from_secs(40),
        "the announced key to become active",
        || async {
            let s: StatusView = c.status().await.ok()?;
            (s.active_key_id.as_deref() == Some(announced.as_str())).then_some(s)
        },
    )
    .await;
    assert!(
        s.active_since.unwrap() >= at,
        "activated at its instant, not before"
    );

    // A recording sealed with it opens once KMS is back.
    let dir = d.dir.path();
    let (input, sealed, out) = (dir.join("a.raw"), dir.join("a.kekdrec"), dir.join("a.out"));
    std::fs::write(&input, b"announced and then used").unwrap();
    let (code, _, err) = d.kekctl(&["seal", input.to_str().unwrap(), sealed.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&announced), "{err}");
    proxy.set(Fault::None).await;
    let (code, _, err) = d.kekctl(&["open", sealed.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"announced and then used");

    // The next one is announced; Change Key Now discards it.
    let next = wait_for(Duration::from_secs(40), "the next announcement", || async {
        let s: StatusView = c.status().await.ok()?;
        s.announced_key_id.filter(|id| *id != announced)
    })
    .await;
    let rotated = c.rotate().await.unwrap();
    assert_ne!(rotated.id, next);
    let discarded = c.keypair(&next).await.unwrap();
    assert_eq!(
        discarded.state,
        KeyState::Superseded,
        "never used, kept for audit"
    );
    assert!(discarded.activated_at.is_none());
}
