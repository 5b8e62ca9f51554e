//! The integration-test harness: moto's KMS server (`moto.rs`), the real
//! `kekd` binary as a `TestDaemon` (`daemon.rs`), a fault-injecting proxy in
//! front of moto (`fault_proxy.rs`), and an independent decryptor of
//! exported envelopes (`decrypt.rs`), a store with a long history made
//! fast (`fixture.rs`), and fleet members sharing a DynamoDB table on moto
//! (`fleet.rs`).

#![allow(dead_code)] // each test module uses its own part of the harness

pub mod daemon;
pub mod decrypt;
pub mod fault_proxy;
pub mod fixture;
pub mod fleet;
pub mod moto;
pub mod summary;

#[allow(unused_imports)] // each includer uses its own part
pub use daemon::*;
#[allow(unused_imports)]
pub use decrypt::*;
#[allow(unused_imports)] // benches/rotation.rs includes the harness but injects no faults
pub use fault_proxy::{Fault, FaultProxy};
#[allow(unused_imports)]
pub use fixture::{store_with_history, write_history, write_orgs};
#[allow(unused_imports)]
pub use moto::*;
#[allow(unused_imports)] // the benches write it, the tests do not
pub use summary::{bench_duration, bench_sizes, median, ms, rss_kib, summary_row};

use std::future::Future;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout`
/// with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a command to completion; returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
