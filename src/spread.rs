//! Where in a window one organization's periodic work falls: a stable,
//! evenly distributed offset from the organization id, so 10,000
//! organizations' canaries, start-up checks and preparations do not all
//! fall on the same instant, and one organization's work falls at the same
//! place every time (and on every fleet member).

use std::time::Duration;

/// A fraction in `[0, 1)` for `org` and the kind of work `what` (so an
/// organization's canary and its preparation do not coincide either).
pub(crate) fn fraction(org: &str, what: &str) -> f64 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(what.as_bytes());
    ctx.update(b"\0");
    ctx.update(org.as_bytes());
    let d = ctx.finish();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    // 53 bits: exactly representable, uniformly spread in [0, 1).
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// `org`'s offset for `what` within `window`.
pub(crate) fn offset(org: &str, what: &str, window: Duration) -> Duration {
    window.mul_f64(fraction(org, what))
}

/// How many organizations the daemon serves, for the rules that differ
/// with one and with many. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Peers(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Peers {
    pub(crate) fn set(&self, n: usize) {
        self.0.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// More than one organization.
    pub(crate) fn many(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) > 1
    }
}

/// How long before its scheduled rotation `org` prepares (generates,
/// seals, stores, proves) and announces its next key pair, so the instant
/// itself only flips a pointer:
///
/// - `announce_ahead` alone (one organization): exactly that long before;
/// - with many organizations and a `window`: at the organization's own
///   place in the window's first nine tenths, never later than
///   `announce_ahead` before, nor than a tenth of the window (time left
///   for a failed preparation's retries);
/// - neither: not prepared ahead (the rotation happens at its instant).
pub(crate) fn lead(
    org: &str,
    announce_ahead: Option<Duration>,
    window: Option<Duration>,
    many: bool,
) -> Option<Duration> {
    match (announce_ahead, window.filter(|_| many)) {
        (a, Some(w)) => {
            let last = (w / 10).max(a.unwrap_or_default());
            Some(last + offset(org, "prepare", w - w / 10))
        }
        (Some(a), None) => Some(a),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_organizations_prepare_within_the_window_one_alone_as_configured() {
        let (h, w) = (Duration::from_secs(3600), Duration::from_secs(7200));
        assert_eq!(lead("a", None, Some(w), false), None, "one: as today");
        assert_eq!(lead("a", Some(h), Some(w), false), Some(h));
        assert_eq!(lead("a", Some(h), None, true), Some(h), "window off");
        for i in 0..1000 {
            let org = format!("org-{i}");
            let l = lead(&org, None, Some(w), true).unwrap();
            assert!(l >= w / 10 && l <= w, "{l:?}");
            let l = lead(&org, Some(h), Some(w), true).unwrap();
            assert!(l >= h, "never later than announce_ahead: {l:?}");
        }
    }

    #[test]
    fn offsets_are_stable_and_spread_evenly() {
        let w = Duration::from_secs(1000);
        assert_eq!(offset("org-1", "canary", w), offset("org-1", "canary", w));
        assert_ne!(offset("org-1", "canary", w), offset("org-1", "prepare", w));
        // 10,000 organizations over 10 buckets: each within 20% of 1,000.
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let f = fraction(&format!("org-{i}"), "prepare");
            assert!((0.0..1.0).contains(&f));
            buckets[(f * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
    }
}
