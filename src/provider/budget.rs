//! The daemon's KMS request budget: one paced token bucket per kind of
//! request (cryptographic operations, `DescribeKey`), shared by every
//! organization, in front of every KMS request kekd sends.
//!
//! AWS throttles the *calling* account, so every customer's key draws on
//! the platform's one regional quota. The budget keeps kekd under a
//! configured rate, orders waiting work by [`Priority`] (a player waiting
//! for an unwrap goes before a Change Key Now, which goes before scheduled
//! preparation, which goes before checks), and within a priority serves
//! organizations in turn, so one organization's burst cannot starve the
//! rest. Requests are paced `1/rate` apart (a bucket of one token), so no
//! one-second window ever holds more than `rate` of them.
//!
//! A `ThrottlingException` means the account's quota is lower than the
//! budget (or the platform's other users took it): the rate halves, at
//! most once a second, and grows back by a twentieth of the configured rate
//! per second without throttling (AIMD, as TCP does with congestion).

use crate::config::KmsBudget;
use crate::domain::{BucketView, KmsBudgetView};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

/// Who is waiting for a KMS request, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Priority {
    /// A player waiting for a content key.
    Unwrap,
    /// An operator waiting: Change Key Now, an organization's Test and
    /// first key pair, a first rotation — and anything not labelled.
    ChangeKeyNow,
    /// Scheduled rotations and their preparation ahead of time, rewraps.
    Scheduled,
    /// Canaries, preflights and key checks.
    Background,
}

impl Priority {
    const ALL: [Priority; 4] = [
        Priority::Unwrap,
        Priority::ChangeKeyNow,
        Priority::Scheduled,
        Priority::Background,
    ];
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `f` with its KMS requests at `priority`.
pub(crate) async fn with_priority<F: std::future::Future>(priority: Priority, f: F) -> F::Output {
    PRIORITY.scope(priority, f).await
}

/// The priority of the running task's KMS requests.
fn current() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::ChangeKeyNow)
}

/// The waiters of one priority, served organization by organization.
#[derive(Default)]
struct Fair {
    /// Organizations with waiters, in the order they are served.
    turn: VecDeque<Arc<str>>,
    waiting: HashMap<Arc<str>, VecDeque<oneshot::Sender<()>>>,
}

impl Fair {
    fn push(&mut self, org: &Arc<str>, tx: oneshot::Sender<()>) {
        let q = self.waiting.entry(org.clone()).or_default();
        if q.is_empty() {
            self.turn.push_back(org.clone());
        }
        q.push_back(tx);
    }

    /// The next waiter: the first of the organization whose turn it is.
    fn pop(&mut self) -> Option<oneshot::Sender<()>> {
        let org = self.turn.pop_front()?;
        let q = self.waiting.get_mut(&org)?;
        let tx = q.pop_front();
        if q.is_empty() {
            self.waiting.remove(&org);
        } else {
            self.turn.push_back(org);
        }
        tx
    }

    fn len(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }
}

struct Inner {
    configured: f64,
    rate: f64,
    tokens: f64,
    refilled: Instant,
    last_cut: Option<Instant>,
    queues: [Fair; 4],
    granted: u64,
    throttled: u64,
}

impl Inner {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        // Additive increase, once a second has passed without a throttle.
        if self.rate < self.configured
            && self
                .last_cut
                .is_none_or(|c| now.saturating_duration_since(c) > Duration::from_secs(1))
        {
            self.rate = (self.rate + self.configured / 20.0 * dt).min(self.configured);
        }
        self.tokens = (self.tokens + self.rate * dt).min(1.0);
    }

    fn waiting(&self) -> usize {
        self.queues.iter().map(Fair::len).sum()
    }
}

/// One paced bucket with its queues (see the module doc).
pub(crate) struct Bucket {
    inner: Mutex<Inner>,
    wake: Arc<Notify>,
}

impl Bucket {
    fn new(rate: usize) -> Arc<Bucket> {
        let rate = rate as f64;
        let b = Arc::new(Bucket {
            inner: Mutex::new(Inner {
                configured: rate,
                rate,
                tokens: 1.0,
                refilled: Instant::now(),
                last_cut: None,
                queues: Default::default(),
                granted: 0,
                throttled: 0,
            }),
            wake: Arc::new(Notify::new()),
        });
        tokio::spawn(dispatch(Arc::downgrade(&b)));
        b
    }

    /// Waits for this request's turn.
    async fn acquire(&self, org: &Arc<str>, priority: Priority) {
        let rx = {
            let mut st = crate::sync::lock(&self.inner);
            st.refill(Instant::now());
            if st.tokens >= 1.0 && st.waiting() == 0 {
                st.tokens -= 1.0;
                st.granted += 1;
                return;
            }
            let (tx, rx) = oneshot::channel();
            st.queues[priority as usize].push(org, tx);
            rx
        };
        self.wake.notify_one();
        // The dispatcher lives as long as the bucket, which outlives us.
        let _ = rx.await;
    }

    /// KMS throttled a request: the rate halves (at most once a second).
    fn throttled(&self) {
        let mut st = crate::sync::lock(&self.inner);
        st.throttled += 1;
        let now = Instant::now();
        if st
            .last_cut
            .is_none_or(|c| now.saturating_duration_since(c) >= Duration::from_secs(1))
        {
            st.rate = (st.rate / 2.0).max(1.0);
            st.last_cut = Some(now);
            tracing::warn!(
                requests_per_second = st.rate,
                configured = st.configured,
                "KMS is throttling this account: kekd's request budget is halved until the throttling stops"
            );
        }
    }

    fn configure(&self, rate: usize) {
        let mut st = crate::sync::lock(&self.inner);
        st.configured = rate as f64;
        st.rate = st.rate.min(st.configured);
        if st.last_cut.is_none() {
            st.rate = st.configured;
        }
    }

    fn view(&self) -> BucketView {
        let mut st = crate::sync::lock(&self.inner);
        st.refill(Instant::now());
        BucketView {
            max_per_second: st.configured,
            current_per_second: (st.rate * 10.0).round() / 10.0,
            granted: st.granted,
            throttled: st.throttled,
            waiting: st.waiting(),
        }
    }
}

/// Hands out tokens to waiters, most urgent first, as they come.
async fn dispatch(bucket: std::sync::Weak<Bucket>) {
    loop {
        let Some(b) = bucket.upgrade() else { return };
        let pause = {
            let mut st = crate::sync::lock(&b.inner);
            st.refill(Instant::now());
            while st.tokens >= 1.0 {
                let Some(tx) = Priority::ALL
                    .iter()
                    .find_map(|p| st.queues[*p as usize].pop())
                else {
                    break;
                };
                // A waiter that gave up (its caller was cancelled) costs no
                // token.
                if tx.send(()).is_ok() {
                    st.tokens -= 1.0;
                    st.granted += 1;
                }
            }
            (st.waiting() > 0).then(|| Duration::from_secs_f64((1.0 - st.tokens) / st.rate))
        };
        let wake = b.wake.clone();
        drop(b);
        match pause {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                // Woken by the next waiter; re-checked now and then so a
                // dropped bucket ends this task.
                let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            }
        }
    }
}

/// The daemon's budget: one bucket for the cryptographic operations, one
/// for `DescribeKey`.
pub(crate) struct Budget {
    ops: Arc<Bucket>,
    describe: Arc<Bucket>,
}

impl Budget {
    /// A budget of `limits` (needs a tokio runtime: each bucket has its
    /// dispatcher task).
    pub(crate) fn new(limits: KmsBudget) -> Arc<Budget> {
        Arc::new(Budget {
            ops: Bucket::new(limits.requests_per_second),
            describe: Bucket::new(limits.describe_key_per_second),
        })
    }

    /// New limits (a reload); a rate cut by throttling stays cut.
    pub(crate) fn configure(&self, limits: KmsBudget) {
        self.ops.configure(limits.requests_per_second);
        self.describe.configure(limits.describe_key_per_second);
    }

    /// For status and `/metrics`.
    pub(crate) fn view(&self) -> KmsBudgetView {
        KmsBudgetView {
            requests: self.ops.view(),
            describe_key: self.describe.view(),
        }
    }

    pub(super) fn bucket(&self, describe: bool) -> &Bucket {
        if describe {
            &self.describe
        } else {
            &self.ops
        }
    }
}

/// One KMS request through the budget: waits for its turn, sends it, and
/// retries what asking again can fix — a 5xx, an unreachable or silent
/// endpoint up to three attempts, throttling as long as the operation
/// timeout allows (the budget has just been cut, so the next attempt is
/// paced slower) — each attempt taking its own turn, so retries count
/// against the budget too (the SDK's own retries are off behind a budget).
pub(super) async fn send<T, F, Fut>(
    budget: &Budget,
    org: &Arc<str>,
    describe: bool,
    operation_timeout: Duration,
    mut attempt: F,
) -> Result<T, super::ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, super::ProviderError>>,
{
    use super::FailureKind;
    const ATTEMPTS: u32 = 3;
    let bucket = budget.bucket(describe);
    let priority = current();
    let started = Instant::now();
    let mut tries = 0;
    loop {
        bucket.acquire(org, priority).await;
        tries += 1;
        let r = attempt().await;
        let Err(e) = &r else { return r };
        if e.kind == FailureKind::Throttled {
            bucket.throttled();
        }
        let again = matches!(
            e.kind,
            FailureKind::Throttled
                | FailureKind::ServiceUnavailable
                | FailureKind::Unreachable
                | FailureKind::Timeout
        );
        let throttled = e.kind == FailureKind::Throttled;
        if !again || (tries >= ATTEMPTS && !throttled) || started.elapsed() >= operation_timeout {
            return r;
        }
        let pace = crate::config::RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        tokio::time::sleep(crate::backoff::backoff(&pace, tries)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: usize) -> KmsBudget {
        KmsBudget {
            requests_per_second: n,
            describe_key_per_second: n,
        }
    }

    /// Waiters queued together are served most urgent first, and within a
    /// priority organization by organization. (Real time, 2 a second: all
    /// are queued long before the next token.)
    #[tokio::test]
    async fn urgent_work_first_and_organizations_in_turn() {
        let budget = Budget::new(limits(2));
        let order = Arc::new(Mutex::new(Vec::new()));
        // Takes the one token: everything below queues.
        budget
            .ops
            .acquire(&"first".into(), Priority::Background)
            .await;
        let mut tasks = Vec::new();
        let jobs = [
            ("a", Priority::Scheduled),
            ("a", Priority::Scheduled),
            ("a", Priority::Scheduled),
            ("b", Priority::Scheduled),
            ("c", Priority::Background),
            ("d", Priority::Unwrap),
        ];
        for (i, (org, p)) in jobs.into_iter().enumerate() {
            let budget = budget.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                budget.ops.acquire(&org.into(), p).await;
                order.lock().unwrap().push(format!("{org}{i}"));
            }));
            // Each queued before the next.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["d5", "a0", "b3", "a1", "a2", "c4"],
            "the unwrap first, then a and b in turn, the check last"
        );
    }

    /// No one-second window holds more than the rate; throttling halves
    /// it, and it grows back.
    #[tokio::test]
    async fn requests_are_paced_and_throttling_cuts_the_rate() {
        let budget = Budget::new(limits(20));
        let org: Arc<str> = "o".into();
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..45 {
            budget.ops.acquire(&org, Priority::Scheduled).await;
            at.push(start.elapsed());
        }
        for (i, t) in at.iter().enumerate() {
            let in_window = at[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(in_window <= 20, "{in_window} requests within 1 s of {t:?}");
        }
        budget.ops.throttled();
        budget.ops.throttled();
        assert_eq!(
            budget.view().requests.current_per_second,
            10.0,
            "halved once"
        );
        assert_eq!(budget.view().requests.throttled, 2);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let grown = budget.view().requests.current_per_second;
        assert!(grown > 10.0 && grown <= 20.0, "growing back: {grown}");
    }

    /// A waiter that gives up costs no token and leaves the queue.
    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let budget = Budget::new(limits(1));
        let org: Arc<str> = "o".into();
        budget.ops.acquire(&org, Priority::Scheduled).await;
        let gave_up = tokio::time::timeout(
            Duration::from_millis(10),
            budget.ops.acquire(&org, Priority::Scheduled),
        )
        .await;
        assert!(gave_up.is_err());
        budget.ops.acquire(&org, Priority::Scheduled).await;
        let v = budget.view().requests;
        assert_eq!((v.granted, v.waiting), (2, 0));
    }
}
