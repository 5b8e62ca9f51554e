//! The rotation lease and the head, as the fleet reads them.
//!
//! The lease item holds `holder`, `expires_ms` (wall clock; the instances'
//! clocks must agree to well within the lease, which NTP gives), `fence`
//! (incremented by every acquisition) and `pending` (the key pair the
//! holder stored and has not activated yet). Expiry only decides when
//! another instance may *take* the lease; what makes a stale holder harmless
//! is the fence, checked in the same transaction as every rotation write.

use super::items::{self, HEAD, LEASE};
use super::{DynamoStore, Inner};
use crate::store::{Fleet, Head, LeaseHolder, LeaseState, StoreError};
use crate::time::{self, Timestamp};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValue};
use std::time::Duration;

/// The clock skew between fleet members kekd tolerates. A lease expiring
/// further ahead than a lease's length plus this, by the reader's clock, is
/// taken over (fencing keeps a live holder with such a clock from
/// activating after that).
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);

fn millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Inner {
    fn expiry(&self) -> i64 {
        let lease = chrono::Duration::from_std(self.settings.lease_duration)
            .unwrap_or(chrono::Duration::seconds(30));
        millis(time::now() + lease)
    }

    fn lease_update(
        &self,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(self.table())
            .set_key(Some(items::key(&self.org, LEASE)))
            .expression_attribute_values(":me", items::s(&self.instance))
    }

    fn conditional_failure(
        e: &aws_sdk_dynamodb::error::SdkError<
            UpdateItemError,
            aws_sdk_dynamodb::config::http::HttpResponse,
        >,
    ) -> bool {
        e.as_service_error()
            .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
    }

    async fn holder(&self) -> Result<Option<LeaseHolder>, StoreError> {
        Ok(self
            .get_item(LEASE)
            .await?
            .as_ref()
            .and_then(Inner::unexpired_holder))
    }

    fn unexpired_holder(item: &items::Item) -> Option<LeaseHolder> {
        let holder = items::string(item, "holder")?.to_string();
        let expires_at = from_millis(items::number(item, "expires_ms")?);
        (expires_at > time::now()).then_some(LeaseHolder { holder, expires_at })
    }
}

#[async_trait]
impl Fleet for DynamoStore {
    fn instance(&self) -> &str {
        &self.inner.instance
    }

    fn lease_duration(&self) -> Duration {
        self.inner.settings.lease_duration
    }

    fn refresh_interval(&self) -> Duration {
        self.inner.settings.refresh_interval
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn head(&self) -> Result<Head, StoreError> {
        let head = self.inner.read_head().await?;
        self.inner.cache(&head);
        Ok(head)
    }

    async fn acquire_lease(&self) -> Result<LeaseState, StoreError> {
        let inner = &self.inner;
        let now = time::now();
        // A lease that runs out further ahead than a lease's length plus
        // the skew kekd tolerates was written by a clock running fast: a
        // crashed member with such a clock would otherwise freeze every
        // rotation for the length of its skew. It is not honoured.
        let too_far = now
            + chrono::Duration::from_std(inner.settings.lease_duration + MAX_CLOCK_SKEW)
                .unwrap_or(chrono::Duration::MAX);
        let result = inner
            .lease_update()
            .update_expression(
                "SET holder = :me, expires_ms = :exp, fence = if_not_exists(fence, :zero) + :one",
            )
            .condition_expression(
                "attribute_not_exists(holder) OR expires_ms < :now OR holder = :me OR expires_ms > :too_far",
            )
            .expression_attribute_values(":exp", items::n(inner.expiry()))
            .expression_attribute_values(":now", items::n(millis(now)))
            .expression_attribute_values(":too_far", items::n(millis(too_far)))
            .expression_attribute_values(":zero", items::n(0))
            .expression_attribute_values(":one", items::n(1))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                let fence = items::number(&old, "fence").unwrap_or(0) + 1;
                if let (Some(holder), Some(expires)) = (
                    items::string(&old, "holder"),
                    items::number(&old, "expires_ms"),
                ) {
                    let expires_at = from_millis(expires);
                    if expires_at > too_far && holder != inner.instance {
                        tracing::warn!(
                            %holder,
                            expires_at = %time::format(&expires_at),
                            tolerated_skew_s = MAX_CLOCK_SKEW.as_secs(),
                            "took over a rotation lease that runs out further ahead than any clock kekd tolerates: its holder's clock runs fast (check its NTP)"
                        );
                    }
                }
                *crate::sync::lock(&inner.fence) = Some(fence);
                Ok(LeaseState::Acquired {
                    orphan: items::string(&old, "pending").map(str::to_string),
                })
            }
            Err(e) if Inner::conditional_failure(&e) => match inner.holder().await? {
                Some(LeaseHolder { holder, expires_at }) => {
                    Ok(LeaseState::Held { holder, expires_at })
                }
                // It expired or was released between the two requests.
                None => Ok(LeaseState::Held {
                    holder: String::new(),
                    expires_at: time::now(),
                }),
            },
            Err(e) => Err(inner.remote("UpdateItem", e)),
        }
    }

    async fn renew_lease(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let fence = inner.fence()?;
        let result = inner
            .lease_update()
            .update_expression("SET expires_ms = :exp")
            .condition_expression("holder = :me AND fence = :fence")
            .expression_attribute_values(":exp", items::n(inner.expiry()))
            .expression_attribute_values(":fence", items::n(fence))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if Inner::conditional_failure(&e) => {
                *crate::sync::lock(&inner.fence) = None;
                Err(StoreError::LeaseLost {
                    store: inner.location(),
                })
            }
            Err(e) => Err(inner.remote("UpdateItem", e)),
        }
    }

    async fn release_lease(&self) {
        let inner = &self.inner;
        let Some(fence) = crate::sync::lock(&inner.fence).take() else {
            return;
        };
        let result = inner
            .lease_update()
            .update_expression("REMOVE holder, expires_ms")
            .condition_expression("holder = :me AND fence = :fence")
            .expression_attribute_values(":fence", items::n(fence))
            .send()
            .await;
        if let Err(e) = result {
            if !Inner::conditional_failure(&e) {
                tracing::warn!(error = %inner.remote("UpdateItem", e), "cannot release the rotation lease; it expires by itself");
            }
        }
    }

    async fn observe(&self) -> Result<(Head, Option<LeaseHolder>), StoreError> {
        let inner = &self.inner;
        let keys = KeysAndAttributes::builder()
            .keys(items::key(&inner.org, HEAD))
            .keys(items::key(&inner.org, LEASE))
            .consistent_read(true)
            .build()
            .expect("keys set");
        let out = inner
            .client
            .batch_get_item()
            .request_items(inner.table(), keys)
            .send()
            .await
            .map_err(|e| inner.remote("BatchGetItem", e))?;
        if out.unprocessed_keys.as_ref().is_some_and(|u| !u.is_empty()) {
            // Throttled part-way: ask for each item on its own.
            return Ok((self.head().await?, inner.holder().await?));
        }
        let found = out
            .responses
            .and_then(|mut r| r.remove(inner.table()))
            .unwrap_or_default();
        let by_sort = |sort: &str| {
            found
                .iter()
                .find(|i| items::string(i, items::SK) == Some(sort))
        };
        let head = match by_sort(HEAD) {
            Some(item) => items::head(item)?,
            None => Head::default(),
        };
        inner.cache(&head);
        Ok((head, by_sort(LEASE).and_then(Inner::unexpired_holder)))
    }
}
