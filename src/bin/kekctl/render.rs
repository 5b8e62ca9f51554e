//! How `kekctl` shows answers to people: tables (plain columns fitted to
//! the terminal, [`crate::columns`]) and one-line summaries. (`-o json`
//! prints the API's own shapes instead.)

use crate::columns::{render, Fit};
use kekd::api::views::{CanaryReport, KeyPairList, StatusView, TestReport};
use kekd::time::{human as format, Timestamp};

/// A table's rows as they are gathered.
#[derive(Default)]
struct Rows(Vec<Vec<String>>);

impl Rows {
    fn add_row(&mut self, row: Vec<String>) {
        self.0.push(row);
    }
}

/// Rows under `header` as plain columns, cut to fit by `fit`.
pub(crate) fn columns(
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
    fit: &[Fit],
) -> String {
    render(header, rows.collect(), fit)
}

/// A KMS key ARN as a table shows it: region and key (or alias) id, the
/// key id cut to 8 characters; the full ARN is in `--json`.
fn short_arn(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "kms", region, _, resource] => {
            let (kind, id) = resource.split_once('/').unwrap_or(("key", resource));
            let id = if kind == "key" && id.len() > 12 {
                format!("{}…", &id[..id.floor_char_boundary(8)])
            } else {
                id.to_string()
            };
            format!("{region} {kind}/{id}")
        }
        _ => arn.to_string(),
    }
}

/// A timestamp to the minute, for tables (`--json` has milliseconds).
fn minute(t: &Option<Timestamp>) -> String {
    t.as_ref()
        .map(kekd::time::human_minute)
        .unwrap_or_else(|| "-".into())
}

fn opt(t: &Option<Timestamp>) -> String {
    t.as_ref().map(format).unwrap_or_else(|| "-".into())
}

/// `kekctl status`: one record, one row per field.
/// A failed AWS call in one line: operation, code (or kind), message,
/// request id.
fn aws_error(
    operation: Option<&str>,
    code: String,
    message: &str,
    request: Option<&str>,
) -> String {
    format!(
        "{} {code}: {message}{}",
        operation.unwrap_or("-"),
        request
            .map(|r| format!(" [request {r}]"))
            .unwrap_or_default()
    )
}

pub(crate) fn status(s: &StatusView) -> String {
    let mut t = Rows::default();
    let state = if s.degraded_causes.is_empty() {
        s.state.to_string()
    } else {
        let causes: Vec<String> = s.degraded_causes.iter().map(|c| c.to_string()).collect();
        format!("{} ({})", s.state, causes.join(", "))
    };
    let rows: Vec<(&str, String)> = vec![
        ("state", state),
        (
            "version",
            format!("{}{}", s.version, if s.fips { " (FIPS)" } else { "" }),
        ),
        ("organization", s.organization_id.clone()),
        ("kms key", s.kms_key.clone()),
        (
            "active key pair",
            s.active_key_id.clone().unwrap_or_else(|| "-".into()),
        ),
        ("active since", opt(&s.active_since)),
        (
            "key type",
            match (s.active_key_type, s.next_key_type) {
                (Some(a), Some(n)) if a != n => format!("{a} (next key pair: {n})"),
                (Some(a), _) => a.to_string(),
                (None, Some(n)) => format!("- (next key pair: {n})"),
                (None, None) => "-".into(),
            },
        ),
        (
            "announced",
            match (&s.announced_key_id, &s.announced_activates_at) {
                (Some(id), Some(at)) => format!("{id}, active at {}", format(at)),
                _ => "-".into(),
            },
        ),
        ("cadence", format!("{} ({})", s.cadence, s.timezone)),
        ("last rotation", opt(&s.last_rotation_at)),
        ("next rotation", opt(&s.next_rotation_at)),
        ("rotating now", s.rotation_in_progress.to_string()),
        ("degraded since", opt(&s.degraded_since)),
        ("next retry", opt(&s.next_retry_at)),
        (
            "last error",
            s.last_error
                .as_ref()
                .map(|e| {
                    format!(
                        "{} {}",
                        format(&e.at),
                        aws_error(
                            e.operation.as_deref(),
                            e.code.clone().unwrap_or_else(|| e.kind.to_string()),
                            &e.message,
                            e.request_id.as_deref()
                        )
                    )
                })
                // Degraded by something other than a rotation: its
                // evidence, so a degraded state never reads "last error -".
                .or_else(|| {
                    s.degraded
                        .first()
                        .map(|d| format!("{} {}: {}", opt(&d.since), d.cause, d.message))
                })
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "key pairs",
            s.key_pairs
                .by_state
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
        if k == "degraded since" {
            // One row per cause, under the time they add up to.
            for d in &s.degraded {
                t.add_row(vec![
                    format!("  {}", d.cause),
                    format!("since {}: {}", opt(&d.since), d.message),
                ]);
            }
        }
    }
    for (arn, n) in &s.key_pairs.by_wrapping_key {
        t.add_row(vec!["wrapped by".to_string(), format!("{n} under {arn}")]);
    }
    let st = &s.store;
    t.add_row(vec!["store".to_string(), st.location.clone()]);
    if let Some(at) = &st.last_refresh_at {
        t.add_row(vec![
            "last refresh".to_string(),
            format!(
                "{} ({} ms ago)",
                format(at),
                st.staleness_ms.unwrap_or_default()
            ),
        ]);
        t.add_row(vec![
            "rotation lease".to_string(),
            match (&st.lease_holder, &st.lease_expires_at) {
                (Some(h), Some(until)) => format!("{h} until {}", format(until)),
                _ => "free".into(),
            },
        ]);
        if let Some(w) = &st.waiting_for_lease {
            t.add_row(vec![
                "waiting".to_string(),
                format!(
                    "for a lease held by {} since {} (it runs out {})",
                    w.holder,
                    format(&w.since),
                    format(&w.expires_at)
                ),
            ]);
        }
    }
    if let Some(since) = &st.unavailable_since {
        let cause = st
            .last_error
            .as_ref()
            .map(|e| {
                aws_error(
                    e.operation.as_deref(),
                    e.code.clone().unwrap_or_else(|| e.kind.to_string()),
                    &e.message,
                    e.request_id.as_deref(),
                )
            })
            .unwrap_or_default();
        t.add_row(vec![
            "STORE UNAVAILABLE".to_string(),
            format!("since {}: {cause}", format(since)),
        ]);
    }
    for c in &s.corrupt_records {
        t.add_row(vec![
            "CORRUPT RECORD".to_string(),
            format!("{}: {}", c.id, c.problem),
        ]);
    }
    if let Some(c) = &s.last_canary {
        let failed: Vec<&str> = c
            .key_pairs
            .iter()
            .filter(|k| !k.ok)
            .map(|k| k.id.as_str())
            .collect();
        let text = if c.ok {
            format!("{} ok ({} key pairs)", format(&c.at), c.key_pairs.len())
        } else {
            format!(
                "{} FAILED: {} {}",
                format(&c.at),
                c.kms_key_problem.as_deref().unwrap_or(""),
                failed.join(", ")
            )
        };
        t.add_row(vec!["last canary".to_string(), text]);
    }
    if let Some(r) = &s.last_reload {
        t.add_row(vec![
            "last reload".to_string(),
            format!("{} {}: {}", format(&r.at), r.outcome, r.message),
        ]);
    }
    for b in &s.backup_kms_keys {
        t.add_row(vec!["backup KMS key".to_string(), b.clone()]);
    }
    if let Some(f) = &s.kms_fallback {
        t.add_row(vec![
            "PRIMARY KMS DOWN".to_string(),
            format!(
                "since {}: {}; backup {} decrypted at {}",
                format(&f.primary_unavailable_since),
                f.primary_error,
                f.served_by,
                format(&f.served_at)
            ),
        ]);
    }
    match (&s.key_problem, &s.kms_key_problem) {
        (Some(p), _) => {
            let label = if p.revoked {
                "KMS KEY REVOKED"
            } else {
                "KMS KEY PROBLEM"
            };
            let deletion = p
                .deletion_date
                .map(|d| format!("; deleted on {}", format(&d)))
                .unwrap_or_default();
            t.add_row(vec![
                label.to_string(),
                format!(
                    "{} since {} (noticed by {}){deletion}: {}",
                    p.kind,
                    format(&p.since),
                    p.noticed_by,
                    p.message
                ),
            ]);
        }
        (None, Some(p)) => {
            t.add_row(vec!["KMS KEY PROBLEM".to_string(), p.clone()]);
        }
        (None, None) => {}
    }
    for w in &s.warnings {
        t.add_row(vec!["WARNING".to_string(), w.clone()]);
    }
    // The label stays; a long value is cut (whole with -o wide or --json).
    render(&[], t.0, &[Fit::Cut(1, 20)])
}

/// `kekctl history`: one row per key pair.
/// One budget: its rate (and the cut one, after throttling), what it let
/// through, what KMS throttled, what waits.
fn budget_line(b: &kekd::api::views::BucketView) -> String {
    let rate = if b.current_per_second < b.max_per_second {
        format!(
            "{}/s, cut to {}/s by throttling",
            b.max_per_second, b.current_per_second
        )
    } else {
        format!("{}/s", b.max_per_second)
    };
    format!(
        "{rate}; {} sent, {} throttled, {} waiting",
        b.granted, b.throttled, b.waiting
    )
}

/// The daemon summary (several organizations, none named).
pub(crate) fn daemon_status(d: &kekd::api::org_views::DaemonStatus) -> String {
    let s = &d.daemon;
    let by_state: Vec<String> = s.by_state.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let mut out = format!(
        "{:<15} {}\n{:<15} {} ({})\n{:<15} {}\n",
        "state",
        d.state,
        "organizations",
        s.organizations,
        by_state.join(", "),
        "degraded",
        s.degraded
    );
    if !s.degraded_orgs.is_empty() {
        let more = s.degraded.saturating_sub(s.degraded_orgs.len());
        out.push_str(&format!(
            "{:<15} {}{}\n",
            "",
            s.degraded_orgs.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    for (id, why) in &s.unavailable {
        out.push_str(&format!("{:<15} {id}: {why}\n", "unusable"));
    }
    if let Some(b) = &s.kms_budget {
        out.push_str(&format!(
            "{:<15} {}\n",
            "kms budget",
            budget_line(&b.requests)
        ));
        out.push_str(&format!(
            "{:<15} {}\n",
            "describe budget",
            budget_line(&b.describe_key)
        ));
    }
    out.push_str(
        "kekd serves several organizations: kekctl --org ORG status for one; kekctl org list\n",
    );
    out
}

pub(crate) fn history(l: &KeyPairList) -> String {
    // By default the columns that tell key pairs apart; `-o wide` adds
    // bits, created and retired (`--json` has every field).
    let wide = crate::columns::wide();
    let mut t = Rows::default();
    for k in &l.keypairs {
        let key_type = k.key_type.map_or("-".into(), |t| t.to_string());
        let mut row = vec![
            k.id.clone(),
            k.state.to_string(),
            key_type,
            k.reason.to_string(),
        ];
        if wide {
            row.push(minute(&Some(k.created_at)));
        }
        row.push(minute(&k.activated_at));
        if wide {
            row.push(minute(&k.retired_at));
        }
        row.push(if wide {
            k.wrapping_key_arn.clone()
        } else {
            short_arn(&k.wrapping_key_arn)
        });
        t.add_row(row);
    }
    if wide {
        let header = [
            "id", "state", "type", "reason", "created", "active", "retired", "KMS key",
        ];
        render(&header, t.0, &[])
    } else {
        // Too narrow: the key's id is cut first, then the reason, the
        // time and the type go; the id and state always stay.
        let header = ["id", "state", "type", "reason", "active since", "KMS key"];
        let fit = [Fit::Cut(5, 14), Fit::Drop(3), Fit::Drop(4), Fit::Drop(2)];
        render(&header, t.0, &fit)
    }
}

/// `kekctl test`: one row per step.
pub(crate) fn test_report(r: &TestReport) -> String {
    let mut t = Rows::default();
    t.add_row(vec![
        "KMS key".to_string(),
        String::new(),
        r.kms_key.clone(),
    ]);
    for s in &r.steps {
        t.add_row(vec![
            s.step.clone(),
            if !s.ok {
                "FAILED".into()
            } else if s.step == "isolation-probe" && !r.warnings.is_empty() {
                "WARNING".into()
            } else {
                "ok".into()
            },
            s.detail.clone(),
        ]);
    }
    let table = render(&["step", "result", "detail"], t.0, &[Fit::Cut(2, 20)]);
    format!("Test round trip\n{table}")
}

/// `kekctl check`: the KMS key, then one row per key pair.
pub(crate) fn canary(r: &CanaryReport) -> String {
    let mut t = Rows::default();
    t.add_row(vec![
        "KMS key".to_string(),
        if r.kms_key_problem.is_none() {
            "ok"
        } else {
            "FAILED"
        }
        .to_string(),
        r.kms_key_problem
            .clone()
            .unwrap_or_else(|| "enabled, usable".into()),
    ]);
    for k in &r.key_pairs {
        t.add_row(vec![
            k.id.clone(),
            if k.ok { "ok" } else { "FAILED" }.to_string(),
            k.problem
                .clone()
                .unwrap_or_else(|| "decrypts through KMS and matches".into()),
        ]);
    }
    render(&["check", "result", "detail"], t.0, &[Fit::Cut(2, 20)])
}
