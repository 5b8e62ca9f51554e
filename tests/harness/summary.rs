//! The benches' one side-by-side table: each bench appends its headline
//! rows (what was measured, kekd's figure, the baseline's, the ratio) to the
//! file `KEKD_BENCH_SUMMARY` names; `scripts/bench` prints them together
//! after all benches ran. Without the variable, nothing is written.

use std::io::Write;

/// Appends one row: `measure`, kekd's figure, the baseline (what it is
/// compared with, and its figure), and the ratio as text.
pub fn summary_row(measure: &str, kekd: &str, baseline: &str, ratio: &str) {
    let Some(path) = std::env::var_os("KEKD_BENCH_SUMMARY") else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the bench summary file opens");
    writeln!(f, "| {measure} | {kekd} | {baseline} | {ratio} |").expect("the summary is written");
}

/// The sizes a bench runs at: `KEKD_BENCH_ORGS` (comma-separated), else
/// `default`.
pub fn bench_sizes(default: &str) -> Vec<usize> {
    std::env::var("KEKD_BENCH_ORGS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("KEKD_BENCH_ORGS: numbers, comma-separated")
        })
        .collect()
}

/// A duration a bench takes from `var` (`1m`, `40s`), else `default`.
pub fn bench_duration(var: &str, default: std::time::Duration) -> std::time::Duration {
    std::env::var(var)
        .ok()
        .map(|s| humantime::parse_duration(&s).unwrap_or_else(|e| panic!("{var}: {e}")))
        .unwrap_or(default)
}

/// A duration in milliseconds, for the benches' lines.
pub fn ms(d: std::time::Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

/// The resident memory of process `pid`, in KiB (0 if unreadable).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
