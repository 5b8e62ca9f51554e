//! API benchmarks (run with `scripts/bench`): the real (release) kekd on
//! its Unix socket, next to a bare tokio + hyper server on a Unix socket in
//! the same run that answers every request with the very bytes kekd
//! returned — so the ratio is kekd's own cost. kekd runs with the local
//! provider, RSA-2048, `cadence = "never"` and the canary off, on a store
//! made by the long-history fixture (records written directly in one
//! transaction; they list and count like real ones), with 1, 20 and 10,000
//! key pairs (a history page of 20 compares like with like at 20 and at
//! 10,000). History is measured twice: the newest page (kept between
//! requests while the store is unchanged) and the page after a cursor (read
//! from the store every time).
//!
//! For each request and number of connections: requests per second over
//! 3 s and the latency p50/p99, three runs, medians (and min–max of the
//! rate). Also: start to serving (spawn → first status answer) and idle
//! resident memory. Printed, never asserted. `KEKD_BENCH_HISTORY=10000`
//! (comma-separated sizes) measures only those history sizes.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNS: usize = 3;
const SECONDS: u64 = 3;

fn config(dir: &Path) -> String {
    format!(
        "organization_id = \"acme-test\"\nkey_bits = 2048\ncadence = \"never\"\n\
         state_dir = \"{s}\"\nsocket_path = \"{k}\"\n\
         [provider]\ntype = \"local\"\nroot_key_path = \"{s}/root.key\"\n\
         [canary]\ninterval = \"off\"\n",
        s = dir.join("state").display(),
        k = dir.join("kekd.sock").display()
    )
}

/// One keep-alive connection sending `path` until `until`; latencies.
async fn hammer(socket: PathBuf, path: &'static str, until: Instant) -> Vec<Duration> {
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut lat = Vec::new();
    while Instant::now() < until {
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, "kekd")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let t = Instant::now();
        let resp = send.send_request(req).await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.into_body().collect().await.unwrap();
        lat.push(t.elapsed());
    }
    lat
}

struct Load {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(socket: &Path, path: &'static str, conns: usize) -> Load {
    let until = Instant::now() + Duration::from_secs(SECONDS);
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(hammer(socket.to_path_buf(), path, until)))
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort();
    Load {
        rate: lat.len() as f64 / SECONDS as f64,
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

/// Runs `RUNS` loads; (median rate, min, max, median p50, median p99).
async fn measure(
    socket: &Path,
    path: &'static str,
    conns: usize,
) -> (f64, f64, f64, Duration, Duration) {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(load(socket, path, conns).await);
    }
    let mut rates: Vec<f64> = runs.iter().map(|l| l.rate).collect();
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut p50: Vec<Duration> = runs.iter().map(|l| l.p50).collect();
    let mut p99: Vec<Duration> = runs.iter().map(|l| l.p99).collect();
    p50.sort();
    p99.sort();
    (
        rates[RUNS / 2],
        rates[0],
        rates[RUNS - 1],
        p50[RUNS / 2],
        p99[RUNS / 2],
    )
}

/// A bare hyper server on `socket` answering every request with `body`.
fn bare_server(socket: PathBuf, body: Bytes) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let _ = std::fs::remove_file(&socket);
            let listener = tokio::net::UnixListener::bind(&socket).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let body = body.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header(hyper::header::CONTENT_TYPE, "application/json")
                                    .body(Full::new(body))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // KEKD_BENCH_HISTORY=10000 (or 1,20) measures only those sizes.
    let sizes: Vec<usize> = std::env::var("KEKD_BENCH_HISTORY")
        .unwrap_or_else(|_| "1,20,10000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("KEKD_BENCH_HISTORY: numbers, comma-separated")
        })
        .collect();
    for history in sizes {
        let mut d = TestDaemon::launch_local(config);
        store_with_history(&d.store_path(), history).await;
        // Start to serving, median of RUNS starts.
        let mut starts = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            d.spawn();
            let c = d.client();
            while c.status().await.is_err() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            starts.push(t.elapsed());
            if starts.len() < RUNS {
                d.stop().await;
            }
        }
        starts.sort();
        let c = d.client();
        for _ in 0..100 {
            c.status().await.unwrap();
        }
        // Idle: after the start-up scan of every record has run (it
        // reports corrupt records through status once done).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_rss = rss_kib(d.pid()) / 1024;
        // The newest page is kept between requests while the store is
        // unchanged; a page after a cursor always reads the store, so it
        // shows what a page costs there (at 1 key pair it is empty).
        let newest: kekd::api::views::KeyPairList = serde_json::from_slice(
            &c.raw(hyper::Method::GET, "/v1/keypairs?limit=1")
                .await
                .unwrap()
                .1,
        )
        .unwrap();
        let after_newest: &'static str = Box::leak(
            format!("/v1/keypairs?limit=20&cursor={}", newest.keypairs[0].id).into_boxed_str(),
        );
        for (path, label) in [
            ("/v1/status", "GET /v1/status"),
            ("/v1/public-key", "GET /v1/public-key"),
            ("/v1/keypairs?limit=20", "GET /v1/keypairs?limit=20"),
            (after_newest, "GET /v1/keypairs?limit=20&cursor=(newest)"),
        ] {
            let (_, bytes) = c.raw(hyper::Method::GET, path).await.unwrap();
            let bare = d.dir.path().join(format!("bare-{}.sock", rows.len()));
            bare_server(bare.clone(), bytes);
            tokio::time::sleep(Duration::from_millis(100)).await;
            for conns in [1usize, 32] {
                eprint!("\r{label} with {history} key pairs, {conns} connections…        ");
                let k = measure(&d.socket, path, conns).await;
                let b = measure(&bare, path, conns).await;
                summary_row(
                    &format!("{label}, {history} key pairs, {conns} conn."),
                    &format!("{:.0} req/s, p99 {}", k.0, us(k.4)),
                    &format!("bare hyper {:.0} req/s", b.0),
                    &format!("{:.2}×", k.0 / b.0),
                );
                rows.push(format!(
                    "| {label} | {history} | {conns} | {:.0} req/s ({:.0}–{:.0}), p50 {}, p99 {} | {:.0} req/s, p50 {}, p99 {} | {:.2}× |",
                    k.0, k.1, k.2, us(k.3), us(k.4), b.0, us(b.3), us(b.4), k.0 / b.0
                ));
            }
        }
        notes.push(format!(
            "{history:>6} key pairs: start to serving {} (median of {RUNS}), idle RSS {idle_rss} MiB, after the load {} MiB",
            us(starts[RUNS / 2]),
            rss_kib(d.pid()) / 1024
        ));
        d.stop().await;
    }
    eprintln!();
    println!("API, kekd next to bare hyper answering the same bytes (medians of {RUNS} runs of {SECONDS} s; rate min–max):\n");
    println!("| request | key pairs | connections | kekd | bare hyper | ratio |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!();
    for n in notes {
        println!("{n}");
    }
}
