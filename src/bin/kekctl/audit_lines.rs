//! `kekctl audit show`'s lines: one per record, in fixed columns, cut to
//! the width like every table, so following prints one line per record as
//! `journalctl -f` does.

use crate::columns::headers;
use kekd::time::human as format;

/// `kekctl audit show`: one line per record — seq, time, type, and the
/// event's other non-empty fields — in fixed columns, so that batches
/// printed while following line up under the one header (`header`: print
/// it, the first batch only).
pub(crate) fn audit(records: &[serde_json::Value], header: bool) -> String {
    let width = crate::columns::width();
    let line = |seq: &str, at: &str, kind: &str, details: &str| {
        let l = format!("{seq:>6}  {at:<24}  {kind:<20}  {details}");
        let l = l.trim_end();
        // The details are last: cut to the width (whole with -o wide, or
        // into a pipe).
        match width.filter(|_| !crate::columns::wide()) {
            Some(w) => crate::columns::cut(l, w),
            None => l.to_string(),
        }
    };
    let mut out = Vec::with_capacity(records.len() + 1);
    if header && headers() {
        out.push(line("SEQ", "AT", "TYPE", "DETAILS"));
    }
    for r in records {
        let event = &r["event"];
        let details: Vec<String> = event
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| k.as_str() != "type" && !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect();
        // The record's own RFC 3339 time, in the form people read.
        let at = r["at"]
            .as_str()
            .map(|s| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| format(&t.with_timezone(&chrono::Utc)))
                    .unwrap_or_else(|_| s.to_string())
            })
            .unwrap_or_else(|| "-".into());
        out.push(line(
            &r["seq"].to_string(),
            &at,
            event["type"].as_str().unwrap_or("-"),
            &details.join(" "),
        ));
    }
    out.join("\n")
}
