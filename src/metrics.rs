//! Prometheus metrics (`GET /metrics`), through prometheus-client.
//!
//! Counters and the KMS latency histogram are updated where things happen;
//! the gauges that describe state (active key age, next rotation, degraded,
//! key pairs by state and wrapping key) are set from a snapshot just before
//! each scrape, so they can never drift from what status shows.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// All of kekd's metrics and their registry.
pub(crate) struct Metrics {
    registry: Mutex<Registry>,
    rotations: Family<Labels, Counter>,
    kms_calls: Family<Labels, Counter>,
    kms_latency: Family<Labels, Histogram>,
    active_key_age: Gauge<f64, AtomicU64>,
    next_rotation: Gauge<f64, AtomicU64>,
    degraded: Gauge,
    key_pairs: Family<Labels, Gauge>,
    key_pairs_by_wrapping_key: Family<Labels, Gauge>,
    canary_runs: Family<Labels, Counter>,
    canary_ok: Gauge,
    key_too_old: Gauge,
    store_up: Gauge,
    kms_backup_served: Family<Labels, Counter>,
    build_info: Family<Labels, Gauge>,
    store_staleness: Gauge<f64, AtomicU64>,
    organizations: Family<Labels, Gauge>,
    organization_degraded: Family<Labels, Gauge>,
    organization_key_too_old: Family<Labels, Gauge>,
    organization_key_problem: Family<Labels, Gauge>,
    kms_budget_rate: Family<Labels, Gauge<f64, AtomicU64>>,
    kms_budget_waiting: Family<Labels, Gauge>,
    kms_budget_throttled: Family<Labels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A snapshot of state-describing values, taken at scrape time.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    /// Seconds since the active key pair was activated.
    pub(crate) active_key_age_seconds: Option<f64>,
    /// Unix time of the next scheduled rotation.
    pub(crate) next_rotation_unix: Option<f64>,
    /// Whether status says degraded.
    pub(crate) degraded: bool,
    /// Count per state name.
    pub(crate) by_state: Vec<(String, usize)>,
    /// Count per wrapping key ARN.
    pub(crate) by_wrapping_key: Vec<(String, usize)>,
    /// The last canary passed (`None`: none ran yet).
    pub(crate) canary_ok: Option<bool>,
    /// The active key pair is older than `max_key_age_warning`.
    pub(crate) key_too_old: bool,
    /// The store answered its last read (always, for redb).
    pub(crate) store_up: bool,
    /// Fleet mode: seconds since the fleet's head was last read.
    pub(crate) store_staleness_seconds: f64,
    /// Organizations by state.
    pub(crate) orgs_by_state: Vec<(String, usize)>,
    /// The degraded organizations (bounded by the caller).
    pub(crate) degraded_orgs: Vec<String>,
    /// The organizations whose active key pair is too old (bounded).
    pub(crate) key_too_old_orgs: Vec<String>,
    /// The organizations whose KMS key has a problem, and its kind
    /// (bounded).
    pub(crate) key_problem_orgs: Vec<(String, crate::domain::KeyProblemKind)>,
    /// The daemon's KMS request budget.
    pub(crate) kms_budget: Option<crate::domain::KmsBudgetView>,
}

impl Metrics {
    /// Registers every metric.
    pub(crate) fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("kekd")),
            rotations: Family::default(),
            kms_calls: Family::default(),
            kms_latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
            }),
            active_key_age: Gauge::default(),
            next_rotation: Gauge::default(),
            degraded: Gauge::default(),
            key_pairs: Family::default(),
            key_pairs_by_wrapping_key: Family::default(),
            canary_runs: Family::default(),
            canary_ok: Gauge::default(),
            key_too_old: Gauge::default(),
            store_up: Gauge::default(),
            kms_backup_served: Family::default(),
            build_info: Family::default(),
            store_staleness: Gauge::default(),
            organizations: Family::default(),
            kms_budget_rate: Family::default(),
            kms_budget_waiting: Family::default(),
            kms_budget_throttled: Family::default(),
            organization_degraded: Family::default(),
            organization_key_too_old: Family::default(),
            organization_key_problem: Family::default(),
        };
        {
            let mut r = crate::sync::lock(&m.registry);
            r.register(
                "rotations",
                "Rotations by reason and outcome",
                m.rotations.clone(),
            );
            r.register(
                "kms_calls",
                "KMS (key provider) calls by operation and outcome",
                m.kms_calls.clone(),
            );
            r.register(
                "kms_call_duration_seconds",
                "KMS (key provider) call latency by operation",
                m.kms_latency.clone(),
            );
            r.register(
                "active_key_age_seconds",
                "Seconds since the active key pair became active",
                m.active_key_age.clone(),
            );
            r.register(
                "next_rotation_timestamp_seconds",
                "Unix time of the next scheduled rotation (absent: none scheduled)",
                m.next_rotation.clone(),
            );
            r.register(
                "degraded",
                "1 while rotations fail or the KMS key failed a check",
                m.degraded.clone(),
            );
            r.register(
                "organizations",
                "Organizations served, by state",
                m.organizations.clone(),
            );
            r.register(
                "kms_budget_rate",
                "KMS requests per second the budget allows now, by kind (requests, describe_key) and limit (configured, current)",
                m.kms_budget_rate.clone(),
            );
            r.register(
                "kms_budget_waiting",
                "KMS requests waiting for their turn in the budget, by kind",
                m.kms_budget_waiting.clone(),
            );
            r.register(
                "kms_throttled",
                "KMS requests answered with ThrottlingException since start, by kind",
                m.kms_budget_throttled.clone(),
            );
            r.register(
                "organization_degraded",
                "1 for each degraded organization; only degraded ones are listed",
                m.organization_degraded.clone(),
            );
            r.register(
                "organization_key_too_old",
                "1 for each organization whose active key pair is past max_key_age_warning; only those are listed",
                m.organization_key_too_old.clone(),
            );
            r.register(
                "organization_key_problem",
                "1 for each organization whose KMS key has a problem, by kind (disabled, pending_deletion, access_denied, not_found: revoked by the customer; invalid_state, misconfigured: the operator's); only those are listed",
                m.organization_key_problem.clone(),
            );
            r.register(
                "key_pairs",
                "Stored key pairs by state",
                m.key_pairs.clone(),
            );
            r.register(
                "key_pairs_by_wrapping_key",
                "Stored key pairs by the KMS key that wraps them",
                m.key_pairs_by_wrapping_key.clone(),
            );
            r.register(
                "canary_runs",
                "Decryptability canary runs by outcome",
                m.canary_runs.clone(),
            );
            r.register(
                "canary_ok",
                "1 if the last canary passed (or none ran yet), 0 if it failed",
                m.canary_ok.clone(),
            );
            r.register(
                "kms_backup_decrypts",
                "Data keys decrypted by a backup KMS key because the primary was unavailable",
                m.kms_backup_served.clone(),
            );
            r.register(
                "build_info",
                "Always 1; the labels say the version and whether the build is FIPS",
                m.build_info.clone(),
            );
            m.build_info
                .get_or_create(&labels(&[
                    ("version", env!("CARGO_PKG_VERSION")),
                    (
                        "fips",
                        if crate::fips::FIPS_BUILD {
                            "true"
                        } else {
                            "false"
                        },
                    ),
                ]))
                .set(1);
            r.register(
                "store_up",
                "1 if the store answered its last read (fleet mode: the last refresh), 0 if not",
                m.store_up.clone(),
            );
            r.register(
                "store_staleness_seconds",
                "Fleet mode: seconds since this instance last read the fleet's active key pair (0 for redb)",
                m.store_staleness.clone(),
            );
            r.register(
                "active_key_too_old",
                "1 if the active key pair is older than max_key_age_warning",
                m.key_too_old.clone(),
            );
        }
        m
    }

    /// Counts a finished rotation.
    pub(crate) fn rotation(&self, reason: &str, outcome: &str) {
        self.rotations
            .get_or_create(&labels(&[("reason", reason), ("outcome", outcome)]))
            .inc();
    }

    /// Counts a decryption a backup key served for an unavailable primary.
    pub(crate) fn kms_backup_served(&self, key: &str) {
        self.kms_backup_served
            .get_or_create(&labels(&[("key_arn", key)]))
            .inc();
    }

    /// Counts a canary run.
    pub(crate) fn canary(&self, outcome: &str) {
        self.canary_runs
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc();
    }

    /// Counts and times one provider call.
    pub(crate) fn kms_call(&self, operation: &str, outcome: &str, seconds: f64) {
        self.kms_calls
            .get_or_create(&labels(&[("operation", operation), ("outcome", outcome)]))
            .inc();
        self.kms_latency
            .get_or_create(&labels(&[("operation", operation)]))
            .observe(seconds);
    }

    /// Sets the state gauges from `s` and renders everything as Prometheus
    /// text (OpenMetrics-compatible).
    ///
    /// The whole of it holds the registry's lock: the state families are
    /// cleared and refilled here, and a scrape encoding between another's
    /// clear and refill would miss a family.
    pub(crate) fn render(&self, s: &Snapshot) -> String {
        let registry = crate::sync::lock(&self.registry);
        self.active_key_age
            .set(s.active_key_age_seconds.unwrap_or(0.0));
        self.next_rotation.set(s.next_rotation_unix.unwrap_or(0.0));
        self.degraded.set(i64::from(s.degraded));
        self.canary_ok.set(i64::from(s.canary_ok.unwrap_or(true)));
        self.key_too_old.set(i64::from(s.key_too_old));
        self.store_up.set(i64::from(s.store_up));
        self.store_staleness.set(s.store_staleness_seconds);
        self.key_pairs.clear();
        for (state, n) in &s.by_state {
            self.key_pairs
                .get_or_create(&labels(&[("state", state)]))
                .set(*n as i64);
        }
        self.key_pairs_by_wrapping_key.clear();
        for (arn, n) in &s.by_wrapping_key {
            self.key_pairs_by_wrapping_key
                .get_or_create(&labels(&[("wrapping_key_arn", arn)]))
                .set(*n as i64);
        }
        self.organizations.clear();
        for (state, n) in &s.orgs_by_state {
            self.organizations
                .get_or_create(&labels(&[("state", state)]))
                .set(*n as i64);
        }
        for (family, orgs) in [
            (&self.organization_degraded, &s.degraded_orgs),
            (&self.organization_key_too_old, &s.key_too_old_orgs),
        ] {
            family.clear();
            for org in orgs {
                family
                    .get_or_create(&labels(&[("organization", org)]))
                    .set(1);
            }
        }
        self.organization_key_problem.clear();
        for (org, kind) in &s.key_problem_orgs {
            let revoked = if kind.is_revocation() {
                "true"
            } else {
                "false"
            };
            self.organization_key_problem
                .get_or_create(&labels(&[
                    ("organization", org),
                    ("kind", &kind.to_string()),
                    ("revoked", revoked),
                ]))
                .set(1);
        }
        if let Some(b) = &s.kms_budget {
            for (kind, v) in [("requests", &b.requests), ("describe_key", &b.describe_key)] {
                for (limit, rate) in [
                    ("configured", v.max_per_second),
                    ("current", v.current_per_second),
                ] {
                    self.kms_budget_rate
                        .get_or_create(&labels(&[("kind", kind), ("limit", limit)]))
                        .set(rate);
                }
                let kind = labels(&[("kind", kind)]);
                self.kms_budget_waiting
                    .get_or_create(&kind)
                    .set(v.waiting as i64);
                self.kms_budget_throttled
                    .get_or_create(&kind)
                    .set(i64::try_from(v.throttled).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: two scrapes at once could return a body without the
    /// key-pair counts (one cleared the family while the other encoded).
    #[test]
    fn concurrent_scrapes_each_see_every_family() {
        let m = std::sync::Arc::new(Metrics::new());
        let snapshot = Snapshot {
            active_key_age_seconds: Some(1.0),
            next_rotation_unix: None,
            degraded: false,
            by_state: vec![("active".into(), 1), ("retired".into(), 3)],
            by_wrapping_key: vec![("arn:aws:kms:eu-west-1:1:key/k".into(), 4)],
            canary_ok: None,
            key_too_old: false,
            store_up: true,
            store_staleness_seconds: 0.0,
            ..Snapshot::default()
        };
        let scrapers: Vec<_> = (0..4)
            .map(|_| {
                let (m, s) = (m.clone(), snapshot.clone());
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        let body = m.render(&s);
                        assert!(
                            body.contains("kekd_key_pairs{state=\"active\"} 1"),
                            "{body}"
                        );
                        assert!(body.contains("kekd_key_pairs_by_wrapping_key{"), "{body}");
                    }
                })
            })
            .collect();
        for s in scrapers {
            s.join().unwrap();
        }
    }
}
