//! The delay before a failed operation is tried again (rotations, the
//! KMS key watch, a KMS request behind the budget).

use crate::config::RetryPolicy;
use std::time::Duration;

/// Capped exponential backoff with full jitter: a uniformly random delay in
/// `[0, min(max, initial·2^(attempt-1))]`, floored at 100 ms so a retry
/// storm cannot form.
pub(crate) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let cap = policy
        .initial_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)))
        .min(policy.max_delay);
    let r = u64::from_le_bytes(crate::aead::random::<8>());
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(if millis == 0 { 0 } else { r % (millis + 1) })
        .max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        };
        for attempt in 1..40 {
            let d = backoff(&p, attempt);
            assert!(d <= Duration::from_secs(8).max(Duration::from_millis(100)));
            assert!(d >= Duration::from_millis(100));
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(&p, 5)).collect();
        assert!(samples.len() > 1, "delays are jittered");
    }
}
