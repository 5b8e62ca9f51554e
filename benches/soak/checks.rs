//! The soak's checks at the end of a run: each returns the violations it
//! found, as lines for the summary, rather than panicking, so that one
//! run reports every violation at once.

use crate::harness::assert_consistent;
use crate::Member;
use kekd::api::views::{ServiceState, StatusView};
use kekd::domain::{KeyPairRecord, KeyState};
use std::sync::Arc;
use std::time::Duration;

/// The order the history must keep whatever the members' clocks say.
pub fn order_violations(org: &str, records: &[KeyPairRecord]) -> Vec<String> {
    let mut out = Vec::new();
    let active = records.iter().find(|r| r.state == KeyState::Active);
    for r in records {
        if let Some(a) = r.activated_at {
            if a < r.created_at {
                out.push(format!("{org}: {} activated before it was created", r.id));
            }
            if let (Some(t), KeyState::Retired) = (r.retired_at, r.state) {
                if t < a {
                    out.push(format!("{org}: {} retired before it was activated", r.id));
                }
            }
            if let Some(now) = active.and_then(|x| x.activated_at) {
                if r.state == KeyState::Retired && a > now {
                    out.push(format!(
                        "{org}: retired {} was activated after the active {}",
                        r.id,
                        active.map(|x| x.id.as_str()).unwrap_or_default()
                    ));
                }
            }
        }
    }
    out
}

/// Checks one organization's store; its records, or the violation.
pub async fn check_store(
    store: Arc<dyn kekd::store::KeyStore>,
    kms: aws_sdk_kms::Client,
) -> Result<Vec<KeyPairRecord>, String> {
    tokio::spawn(async move { assert_consistent(&*store, &kms).await })
        .await
        .map_err(|e| format!("the store is not consistent: {e}"))
}

/// Waits until every organization of `m` is `ok`; a violation otherwise.
pub async fn ends_ok(i: usize, m: &Member) -> Vec<String> {
    let mut out = Vec::new();
    for org in m.orgs {
        let c = m.d.client().with_org(Some(org.to_string()));
        let ok = tokio::time::timeout(Duration::from_secs(90), async {
            loop {
                if let Ok(s) = c.status().await {
                    let s: StatusView = s;
                    if s.state == ServiceState::Ok {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if ok.is_err() {
            let s = c.status().await.ok();
            out.push(format!(
                "daemon {i} ({}), {org}: still degraded 90 s after the faults stopped: {:?}",
                m.store,
                s.map(|s| s.degraded)
            ));
        }
    }
    out
}
