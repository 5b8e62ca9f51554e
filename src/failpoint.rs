//! Crash points: named steps where the crash tests stop kekd, through
//! fail-rs and the `failpoints` feature (without it every point compiles to
//! nothing). With `FAILPOINTS="<point>=return"` the step halts: it logs
//! "failpoint reached" and its thread sleeps until the test kills the
//! process (`kill -9`), a crash at exactly that instant. `<point>=1*panic`
//! panics there once instead.

/// Marks a crash point named `$name`.
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |_| {
            tracing::error!(failpoint = $name, "failpoint reached; halting until killed");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        })
    };
}
pub(crate) use crash_point;

/// Marks a point where a test may slow kekd down without stopping it:
/// `FAILPOINTS="<point>=sleep(MS)"` makes every pass through it sleep, as a
/// slow disk or a slow network would (fail-rs's plain actions: `sleep`,
/// `delay`, `panic`, `print`).
macro_rules! delay_point {
    ($name:literal) => {
        fail::fail_point!($name)
    };
}
pub(crate) use delay_point;
