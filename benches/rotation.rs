//! Rotation benchmarks (run with `scripts/bench`), medians of 10:
//!
//! 1. RSA-3072 key generation with aws-lc-rs (what kekd uses) next to
//!    `openssl genpkey` in the same run, interleaved so both see the same
//!    machine load. openssl's time includes its process start; the start of
//!    `openssl version` is measured too and reported, so it can be discounted.
//! 2. Change Key Now latency: from `SIGUSR1` to the new public key being
//!    served by `GET /v1/public-key`, with the real (release) kekd against
//!    moto's KMS. This covers generation, GenerateDataKey, the durable
//!    pending commit, Decrypt-back verification and the activation commit.
//!
//! Numbers are printed, never asserted: machines here are shared and noisy.

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::*;
use kekd::api::views::PublicKeyView;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn time_cmd(args: &[&str]) -> Duration {
    let t = Instant::now();
    let st = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let d = t.elapsed();
    assert!(
        st.map(|s| s.success()).unwrap_or(false),
        "openssl {args:?} failed (is openssl installed?)"
    );
    d
}

fn keygen() {
    let (mut ours, mut theirs, mut start) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        eprint!("\rRSA-3072 generation: run {}/{RUNS}", i + 1);
        let t = Instant::now();
        let k = kekd::keypair::generate(kekd::domain::KeyType::Rsa(kekd::domain::KeyBits::Rsa3072))
            .unwrap();
        ours.push(t.elapsed());
        drop(k);
        theirs.push(time_cmd(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
            "/dev/null",
        ]));
        start.push(time_cmd(&["version"]));
    }
    eprintln!();
    let (o, t, s) = (median(ours), median(theirs), median(start));
    println!("RSA-3072 key generation, median of {RUNS} (interleaved, same run):");
    println!("  kekd (aws-lc-rs, in process)          {}", ms(o));
    println!("  openssl genpkey (whole process)       {}", ms(t));
    println!("  openssl version (process start only)  {}", ms(s));
    println!(
        "  ratio openssl/kekd: {:.2} (with openssl's process start discounted: {:.2})",
        t.as_secs_f64() / o.as_secs_f64(),
        t.saturating_sub(s).as_secs_f64() / o.as_secs_f64()
    );
    summary_row(
        "RSA-3072 generation",
        &ms(o),
        &format!("openssl genpkey {}", ms(t)),
        &format!("{:.2}× faster", t.as_secs_f64() / o.as_secs_f64()),
    );
    println!("  note: RSA key generation time varies widely from key to key (prime search); medians of 10 are rough.");
}

async fn change_key_now() {
    let moto = Moto::start().await;
    let (_, alias) = moto.create_key("kekd-bench").await;
    let d = TestDaemon::start(&moto, |dir| {
        kms_config(dir, &alias, "").replace("key_bits = 2048", "key_bits = 3072")
    })
    .await;
    let c = d.client();
    let mut samples = Vec::new();
    for i in 0..RUNS {
        eprint!("\rChange Key Now latency: run {}/{RUNS}", i + 1);
        let before: PublicKeyView = c.public_key().await.unwrap();
        let t = Instant::now();
        d.signal(libc::SIGUSR1);
        loop {
            let now: PublicKeyView = c.public_key().await.unwrap();
            if now.id != before.id {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(t.elapsed());
    }
    eprintln!();
    let (min, max) = (
        *samples.iter().min().unwrap(),
        *samples.iter().max().unwrap(),
    );
    println!(
        "Change Key Now (SIGUSR1 -> new public key served), RSA-3072, moto KMS, median of {RUNS}:"
    );
    println!(
        "  median {}  (min {}, max {})",
        ms(median(samples)),
        ms(min),
        ms(max)
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; anything else is ignored.
    keygen();
    change_key_now().await;
}
