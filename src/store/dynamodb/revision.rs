//! The fleet's revision: one item that counts every committed change of
//! any organization's head or record, names the organization of the latest
//! and counts how many of the latest in a row were that organization's (a
//! rotation or an organization added is several changes). A member reads it
//! once per refresh interval and reads further only what changed, so an
//! idle fleet costs one request per member and interval whatever the number
//! of organizations.
//!
//! The count is bumped with an atomic `ADD` *after* the change commits, not
//! inside its transaction: one item in every transaction of the fleet would
//! make concurrent rotations of different organizations conflict with one
//! another. The price is a window: a member that dies between its commit
//! and the bump leaves that one change unannounced. A rotation is still
//! seen, because storing its pending key pair was announced and a member
//! that saw a rotation start reads that organization itself until the
//! lease is free again; what the window can hide is a record or schedule
//! change, which the next full read (any start, any interval with more
//! than one change) brings.

use super::items::{self, Item};
use super::Inner;
use crate::store::{Revision, StoreError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

/// The partition of the revision item: `#` is not in any organization id.
pub(crate) const REVISION_PARTITION: &str = "#fleet";
const REVISION: &str = "revision";
const CHANGES: &str = "changes";
const LAST: &str = "last";
const RUN: &str = "run";

impl Inner {
    fn revision_key(&self) -> Item {
        items::key(REVISION_PARTITION, REVISION)
    }

    /// Announces a committed change of organization `org` (best effort: a
    /// failure is logged, and the change is seen at the next full read).
    pub(super) async fn announce_change(&self, org: &str) {
        let bump = || {
            self.client
                .update_item()
                .table_name(self.table())
                .set_key(Some(self.revision_key()))
                .expression_attribute_names("#c", CHANGES)
                .expression_attribute_names("#l", LAST)
                .expression_attribute_names("#r", RUN)
                .expression_attribute_values(":one", items::n(1))
                .expression_attribute_values(":org", items::s(org))
        };
        // Another change of the same organization extends the run; the
        // first of another starts a new one. Two bumps racing may count a
        // run short (a reader then reads everything), never long.
        let mut bumped = bump()
            .update_expression("ADD #c :one, #r :one")
            .condition_expression("#l = :org")
            .send()
            .await
            .map(drop);
        if bumped.as_ref().is_err_and(|e| {
            e.as_service_error()
                .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
        }) {
            bumped = bump()
                .update_expression("ADD #c :one SET #l = :org, #r = :one")
                .send()
                .await
                .map(drop);
        }
        if let Err(e) = bumped {
            let e = self.remote("UpdateItem", e);
            tracing::warn!(organization = %org, error = %e, "a change was stored but not announced to the fleet; other members see it at their next full read");
        }
    }

    /// The revision, strongly consistent (one request). A table no change
    /// was announced in yet is at revision 0.
    pub(super) async fn revision(&self) -> Result<Revision, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(self.revision_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.remote("GetItem", e))?;
        Ok(match out.item {
            None => Revision::default(),
            Some(item) => Revision {
                changes: items::number(&item, CHANGES).unwrap_or(0).max(0) as u64,
                last: items::string(&item, LAST).map(str::to_string),
                run: items::number(&item, RUN).unwrap_or(0).max(0) as u64,
            },
        })
    }
}
