//! One organization's records, read back from the trail: what a customer
//! can be shown (`GET /v1/orgs/{org}/audit`) — every KMS and STS call made
//! for them with its request id, context and outcome, the refused ones
//! included, which their own CloudTrail does not show for calls from
//! another account. Records about another organization, or about the
//! daemon itself, are never in the answer.
//!
//! The current file is read (a rotated one stays readable with
//! `kekctl audit show --file`), from the start, one page at a time; the
//! cursor is the last sequence number of the page before.

use super::{Audit, AuditError, Line};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::BufRead;

/// One page of an organization's records, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    /// The organization the records are about.
    pub organization: Option<String>,
    /// The records as stored (`seq`, `at`, `organization`, `prev`,
    /// `event`), so a customer can check each against the chain.
    pub records: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// What a page asks for.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records after this sequence number.
    pub after: u64,
    /// Only records from this time on.
    pub since: Option<Timestamp>,
    /// At most this many records.
    pub limit: usize,
}

impl Audit {
    /// The records about this writer's organization that `q` asks for.
    /// Blocking: it reads the file. A last line still being appended is
    /// left for the next page.
    pub(crate) fn page(&self, q: &AuditQuery) -> Result<AuditPage, AuditError> {
        let err = |problem: String| AuditError {
            path: self.path.display().to_string(),
            problem,
        };
        let file = std::fs::File::open(&self.path).map_err(|e| err(format!("cannot read: {e}")))?;
        let mut reader = std::io::BufReader::new(file);
        let org = self.org.as_deref();
        let mut records = Vec::new();
        let mut more = false;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| err(format!("cannot read: {e}")))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            // A damaged line is not this reader's to judge (`kekctl audit
            // verify` is): it names no organization, so it is skipped.
            let Ok(l) = serde_json::from_slice::<Line>(&line) else {
                continue;
            };
            if l.seq <= q.after || l.organization.as_deref() != org {
                continue;
            }
            let at = chrono::DateTime::parse_from_rfc3339(&l.at).map(|t| t.to_utc());
            if q.since.is_some_and(|s| at.is_ok_and(|at| at < s)) {
                continue;
            }
            if records.len() == q.limit {
                more = true;
                break;
            }
            records.push(serde_json::to_value(&l).expect("audit lines serialize"));
        }
        let next_cursor = more
            .then(|| records.last().and_then(|r| r["seq"].as_u64()))
            .flatten()
            .map(|s| s.to_string());
        Ok(AuditPage {
            organization: org.map(str::to_string),
            records,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;

    fn event(what: &str) -> AuditEvent {
        AuditEvent::AuditRepaired { what: what.into() }
    }

    #[test]
    fn a_page_holds_one_organizations_records_only_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(&dir.path().join("audit.log")).unwrap();
        let (a, b) = (audit.for_org("acme"), audit.for_org("beta"));
        audit.record(&event("daemon")).unwrap();
        for i in 0..5 {
            a.record(&event(&format!("acme {i}"))).unwrap();
            b.record(&event(&format!("beta {i}"))).unwrap();
        }
        let q = |after, limit| AuditQuery {
            after,
            since: None,
            limit,
        };
        let first = a.page(&q(0, 3)).unwrap();
        assert_eq!(first.organization.as_deref(), Some("acme"));
        let whats: Vec<_> = first
            .records
            .iter()
            .map(|r| r["event"]["what"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(whats, ["acme 0", "acme 1", "acme 2"]);
        let cursor: u64 = first.next_cursor.unwrap().parse().unwrap();
        let rest = a.page(&q(cursor, 3)).unwrap();
        assert_eq!(rest.records.len(), 2);
        assert!(rest.next_cursor.is_none());
        assert!(rest.records.iter().all(|r| r["organization"] == "acme"));
        // Records from a time on: none from the future.
        let later = AuditQuery {
            since: Some(crate::time::now() + chrono::Duration::hours(1)),
            ..q(0, 10)
        };
        assert!(a.page(&later).unwrap().records.is_empty());
        // The daemon's own records are its own.
        let own = audit.page(&q(0, 10)).unwrap();
        assert_eq!(own.records.len(), 1);
    }
}
