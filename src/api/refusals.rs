//! Refusals are recorded one by one only up to a few per uid and minute;
//! the rest are counted and summed up in one record when the minute is
//! over, so a peer without a role cannot fill the disk by asking.

use crate::audit::{Audit, AuditEvent};
use crate::time::{self, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Refusals recorded per uid and minute; beyond it they are counted and
/// summed up once the minute is over.
const REFUSALS_PER_MINUTE: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

struct Window {
    started: Instant,
    started_at: Timestamp,
    recorded: u32,
    suppressed: u64,
}

/// The per-uid refusal limiter.
#[derive(Default)]
pub(crate) struct Refusals {
    windows: Mutex<HashMap<u32, Window>>,
}

/// Refusals of one uid that were counted but not recorded one by one.
pub(crate) struct Suppressed {
    pub(crate) uid: u32,
    pub(crate) count: u64,
    pub(crate) since: Timestamp,
}

impl Refusals {
    /// Whether this refusal of `uid` is recorded (audit and log) one by one.
    pub(crate) fn note(&self, uid: u32) -> bool {
        let mut w = crate::sync::lock(&self.windows);
        let window = w.entry(uid).or_insert_with(|| Window {
            started: Instant::now(),
            started_at: time::now(),
            recorded: 0,
            suppressed: 0,
        });
        if window.recorded < REFUSALS_PER_MINUTE {
            window.recorded += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }

    /// Ends the windows older than a minute; returns what they suppressed.
    pub(crate) fn take_summaries(&self) -> Vec<Suppressed> {
        let mut w = crate::sync::lock(&self.windows);
        let mut out = Vec::new();
        w.retain(|uid, window| {
            if window.started.elapsed() < WINDOW {
                return true;
            }
            if window.suppressed > 0 {
                out.push(Suppressed {
                    uid: *uid,
                    count: window.suppressed,
                    since: window.started_at,
                });
            }
            false
        });
        out
    }
}

/// Writes the summaries of suppressed refusals every few seconds until
/// `stop` (and once more then).
pub(crate) async fn summarize_refusals(
    refusals: Arc<Refusals>,
    audit: Arc<Audit>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        for s in refusals.take_summaries() {
            tracing::warn!(
                uid = s.uid,
                refused = s.count,
                "more refused requests from this uid (not recorded one by one)"
            );
            let event = AuditEvent::ApiRefusalsSuppressed {
                uid: s.uid,
                refused: s.count,
                since: s.since,
            };
            if let Err(e) = audit.record_async(event).await {
                tracing::error!(error = %e, "cannot audit a refusal summary");
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_limited_per_uid_and_summed_up() {
        let r = Refusals::default();
        let recorded = (0..1000).filter(|_| r.note(1000)).count();
        assert_eq!(recorded, REFUSALS_PER_MINUTE as usize);
        assert!(r.note(1001), "another uid has its own allowance");
        assert!(r.take_summaries().is_empty(), "the minute is not over");
        for w in r.windows.lock().unwrap().values_mut() {
            w.started -= WINDOW;
        }
        let s = r.take_summaries();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].uid, s[0].count), (1000, 990));
        assert!(r.note(1000), "a new minute, a new allowance");
    }
}
