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
