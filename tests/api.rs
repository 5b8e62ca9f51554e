//! The API under pressure and bad input: held connections, oversized and
//! malformed requests. The daemon keeps answering and every error is JSON.

use crate::harness::*;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Raises this process's open-file limit to its hard limit (the test holds
/// thousands of connections).
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    setrlimit(Resource::Nofile, l).expect("raise RLIMIT_NOFILE");
}

/// Regression (2,000 partial requests exhausted the 1,024 descriptors and
/// status timed out for 40 s; idle connections stayed open for ever): with
/// kekd at systemd's default descriptor limit, thousands of half-sent
/// requests neither stop a new status request nor stay open past the
/// header timeout.
#[tokio::test(flavor = "multi_thread")]
async fn held_connections_do_not_stop_the_api() {
    raise_open_file_limit();
    let moto = Moto::start().await;
    let (_, key) = moto.create_key("kekd-api-held").await;
    let d = TestDaemon::start(&moto, |dir| {
        kms_config(dir, &key, "") + "\n[api]\nheader_timeout = \"2s\"\n"
    })
    .await;
    d.limit_open_files(1024);
    let mut held = Vec::new();
    for _ in 0..2_000 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: k").unwrap();
        held.push(s);
    }
    let c = d.client().with_timeout(Duration::from_secs(10));
    let status = c
        .status()
        .await
        .expect("status answers beside 2,000 held connections");
    assert!(status.active_key_id.is_some());

    // Past the header timeout every held connection has been closed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still_open = held
        .iter_mut()
        .filter(|s| {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 512];
            match std::io::Read::read(&mut &**s, &mut buf) {
                Ok(0) => false, // closed
                Ok(_) => false, // answered (408) and closed
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
                Err(_) => true, // nothing: still held open
            }
        })
        .count();
    assert_eq!(
        still_open, 0,
        "held connections are closed after the header timeout"
    );
    c.status().await.expect("still serving");
}

/// Regression (bodies over the limit got 400, a path that is not UTF-8 got
/// a plain-text error): 413 and 400, both as JSON errors.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_and_malformed_paths_get_json_errors() {
    let moto = Moto::start().await;
    let (_, key) = moto.create_key("kekd-api-bad").await;
    let d = TestDaemon::start(&moto, |dir| kms_config(dir, &key, "")).await;
    let c = d.client();
    let id = d.wait_active().await.active_key_id.unwrap();
    let big = format!("{{\"wrapped_key\": \"{}\"}}", "A".repeat(200_000)).into_bytes();
    let (status, body) = c
        .raw_with_body(hyper::Method::POST, &kekd::api::paths::unwrap(&id), big)
        .await
        .unwrap();
    assert_eq!(status, 413);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(v["error"]["code"], "payload_too_large");

    for (path, want_status, want_code) in [
        ("/v1/keypairs/%FF%FE", 400, "invalid_path"),
        ("/v1/keypairs/%FF%FE/envelope", 400, "invalid_path"),
        ("/v1/keypairs/not-an-id", 404, "not_found"),
    ] {
        let (status, body) = c.raw(hyper::Method::GET, path).await.unwrap();
        assert_eq!(status, want_status, "{path}");
        let v: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{path}: not JSON"));
        assert_eq!(v["error"]["code"], want_code, "{path}");
    }
    c.status().await.expect("still serving");
}
