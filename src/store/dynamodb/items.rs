//! The table layout, in one place. One table may hold several
//! organizations: the partition key is the organization id, so every item of
//! one kekd fleet lives in one partition.
//!
//! | `org` (partition) | `item` (sort) | attributes |
//! |---|---|---|
//! | organization id | `schema` | `version` |
//! | organization id | `head` | `active` (key pair id), `schedule` (JSON), `rev`, and the counts `n.state.<state>`, `n.key.<arn>` |
//! | organization id | `lease` | `holder`, `expires_ms`, `fence`, `pending` |
//! | organization id | `kp#<id>` | `created` (`<ms, 13 digits>#<id>`), `state`, `record` (the key pair as JSON, exactly as redb stores it) |
//!
//! The local secondary index `history` sorts the key pairs by `created`, so
//! a history page is one query of its size.

use super::super::{Listed, StoreError, Summary};
use crate::domain::{KeyPairRecord, KeyState, Schedule};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// An item as the SDK sends and receives it.
pub(super) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "org";
pub(crate) const SK: &str = "item";
pub(crate) const CREATED: &str = "created";
pub(crate) const HISTORY_INDEX: &str = "history";

pub(super) const SCHEMA: &str = "schema";
pub(super) const HEAD: &str = "head";
pub(super) const LEASE: &str = "lease";
const KEY_PAIR_PREFIX: &str = "kp#";

/// The table layout this build reads and writes.
pub(crate) const SCHEMA_VERSION: u64 = 1;

const COUNT_STATE: &str = "n.state.";
const COUNT_KEY: &str = "n.key.";

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The primary key of item `sort` of organization `org`.
pub(super) fn key(org: &str, sort: &str) -> Item {
    HashMap::from([(PK.to_string(), s(org)), (SK.to_string(), s(sort))])
}

pub(super) fn key_pair_sort(id: &str) -> String {
    format!("{KEY_PAIR_PREFIX}{id}")
}

fn created(r: &KeyPairRecord) -> String {
    format!("{:013}#{}", r.created_at.timestamp_millis().max(0), r.id)
}

/// The item of a key pair.
pub(super) fn key_pair_item(org: &str, r: &KeyPairRecord) -> Item {
    let mut item = key(org, &key_pair_sort(&r.id));
    item.insert(CREATED.into(), s(created(r)));
    item.insert("state".into(), s(r.state.to_string()));
    item.insert(
        "record".into(),
        s(
            String::from_utf8(serde_json::to_vec(r).expect("records serialize"))
                .expect("JSON is UTF-8"),
        ),
    );
    item
}

pub(super) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(super) fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The id an item's sort key names, if it is a key pair.
pub(super) fn key_pair_id(item: &Item) -> Option<&str> {
    string(item, SK).and_then(|s| s.strip_prefix(KEY_PAIR_PREFIX))
}

/// Decodes a key pair item as `R` (the whole record, or only what a history
/// page shows); an item that does not decode is listed as corrupt, by id.
pub(super) fn listed<R>(item: &Item) -> Listed<R>
where
    R: serde::de::DeserializeOwned + super::super::HasId,
{
    let id = key_pair_id(item).unwrap_or("?").to_string();
    match decode::<R>(&id, item) {
        Ok(r) => Listed::Ok(Box::new(r)),
        Err(problem) => Listed::Corrupt { id, problem },
    }
}

fn decode<R>(id: &str, item: &Item) -> Result<R, String>
where
    R: serde::de::DeserializeOwned + super::super::HasId,
{
    let json = string(item, "record").ok_or("no record attribute")?;
    let r: R = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if r.id() != id {
        return Err(format!("record says its id is {}", r.id()));
    }
    Ok(r)
}

/// Decodes a key pair item, or names the problem.
pub(super) fn record(item: &Item) -> Result<KeyPairRecord, StoreError> {
    let id = key_pair_id(item).unwrap_or("?");
    decode(id, item).map_err(|problem| StoreError::Corrupt {
        id: id.to_string(),
        problem,
    })
}

/// The head as stored.
pub(super) fn head(item: &Item) -> Result<crate::store::Head, StoreError> {
    let schedule = match string(item, "schedule") {
        None => Schedule::default(),
        Some(json) => serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            id: HEAD.into(),
            problem: e.to_string(),
        })?,
    };
    let mut summary = Summary::default();
    for (name, value) in item {
        let count = value
            .as_n()
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if count <= 0 {
            continue;
        }
        if let Some(state) = name.strip_prefix(COUNT_STATE) {
            if let Ok(state) = serde_json::from_value::<KeyState>(serde_json::json!(state)) {
                summary.by_state.insert(state, count as u64);
            }
        } else if let Some(arn) = name.strip_prefix(COUNT_KEY) {
            summary
                .by_wrapping_key
                .insert(arn.to_string(), count as u64);
        }
    }
    Ok(crate::store::Head {
        active: string(item, "active").map(str::to_string),
        announced: string(item, "announced").map(str::to_string),
        schedule,
        summary,
    })
}

pub(super) fn schedule_json(schedule: &Schedule) -> AttributeValue {
    s(serde_json::to_string(schedule).expect("schedules serialize"))
}

/// An `UpdateItem` expression for the head, built up by one write: the
/// count changes of the records it replaces, plus whatever else it sets.
#[derive(Default)]
pub(super) struct HeadUpdate {
    sets: Vec<String>,
    removes: Vec<String>,
    deltas: std::collections::BTreeMap<String, i64>,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl HeadUpdate {
    /// Counts `old` out and `new` in.
    pub(super) fn replace(&mut self, old: Option<&KeyPairRecord>, new: Option<&KeyPairRecord>) {
        for (r, sign) in [(old, -1), (new, 1)] {
            if let Some(r) = r {
                *self
                    .deltas
                    .entry(format!("{COUNT_STATE}{}", r.state))
                    .or_default() += sign;
                *self
                    .deltas
                    .entry(format!("{COUNT_KEY}{}", r.wrapping_key_arn))
                    .or_default() += sign;
            }
        }
    }

    /// Sets attribute `name` to `value`.
    pub(super) fn set(&mut self, name: &str, value: AttributeValue) {
        let i = self.sets.len();
        self.names.insert(format!("#s{i}"), name.to_string());
        self.values.insert(format!(":s{i}"), value);
        self.sets.push(format!("#s{i} = :s{i}"));
    }

    /// Removes attribute `name`.
    pub(super) fn remove(&mut self, name: &str) {
        let i = self.removes.len();
        self.names.insert(format!("#r{i}"), name.to_string());
        self.removes.push(format!("#r{i}"));
    }

    /// The expression; every write also bumps `rev`, so a follower can tell
    /// that something changed.
    pub(super) fn expression(&mut self) -> String {
        let mut adds = vec!["#rev :one".to_string()];
        self.names.insert("#rev".into(), "rev".into());
        self.values.insert(":one".into(), n(1));
        for (i, (name, delta)) in self.deltas.iter().enumerate() {
            if *delta == 0 {
                continue;
            }
            self.names.insert(format!("#c{i}"), name.clone());
            self.values.insert(format!(":c{i}"), n(delta));
            adds.push(format!("#c{i} :c{i}"));
        }
        let mut e = String::new();
        if !self.sets.is_empty() {
            e.push_str("SET ");
            e.push_str(&self.sets.join(", "));
            e.push(' ');
        }
        e.push_str("ADD ");
        e.push_str(&adds.join(", "));
        if !self.removes.is_empty() {
            e.push_str(" REMOVE ");
            e.push_str(&self.removes.join(", "));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_through_the_head_item() {
        let mut u = HeadUpdate::default();
        let mut r = crate::testing::record_at("a", 1);
        (r.state, r.wrapping_key_arn) = (KeyState::Active, "arn:k1".into());
        u.replace(None, Some(&r));
        let e = u.expression();
        assert!(e.starts_with("ADD #rev :one"), "{e}");
        let mut item = key("org", HEAD);
        for (placeholder, name) in &u.names {
            let value = placeholder.replacen('#', ":", 1);
            if let Some(v) = u.values.get(&value) {
                item.insert(name.clone(), v.clone());
            }
        }
        let h = head(&item).unwrap();
        assert_eq!(h.summary.by_state.get(&KeyState::Active), Some(&1));
        assert_eq!(h.summary.by_wrapping_key.get("arn:k1"), Some(&1));
        assert_eq!(h.summary.total(), 1);
    }

    #[test]
    fn a_key_pair_item_decodes_to_the_same_record() {
        let r = crate::testing::record_at("b", 2);
        let item = key_pair_item("org", &r);
        assert_eq!(key_pair_id(&item), Some("b"));
        assert_eq!(record(&item).unwrap(), r);
        let mut other = item.clone();
        other.insert(SK.into(), s(key_pair_sort("c")));
        assert!(matches!(record(&other), Err(StoreError::Corrupt { id, .. }) if id == "c"));
    }
}
