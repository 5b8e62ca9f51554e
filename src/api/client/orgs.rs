//! The client's calls on organizations (`/v1/orgs`…).

use super::{Client, ClientError};
use crate::api::org_views::*;
use crate::api::paths;
use crate::api::views::StatusView;
use crate::domain::OrgSpec;
use hyper::Method;

/// What `GET /v1/status` answers: one organization's status, or — with
/// several organizations and none named — the daemon summary alone.
#[derive(Debug, Clone)]
pub enum StatusAnswer {
    /// The status of one organization (with the daemon summary in it).
    Org(Box<StatusView>),
    /// The daemon summary.
    Daemon(Box<DaemonStatus>),
}

impl Client {
    /// `GET /v1/status`, whichever answer it is.
    pub async fn status_any(&self) -> Result<StatusAnswer, ClientError> {
        let v: serde_json::Value = self.call(Method::GET, paths::STATUS, None).await?;
        let bad = |e: serde_json::Error| ClientError::Protocol(format!("unexpected status: {e}"));
        if v.get("organization_id").is_some() {
            Ok(StatusAnswer::Org(Box::new(
                serde_json::from_value(v).map_err(bad)?,
            )))
        } else {
            Ok(StatusAnswer::Daemon(
                serde_json::from_value(v).map_err(bad)?,
            ))
        }
    }

    /// `GET /v1/orgs`: one page, by id.
    pub async fn orgs(&self, limit: usize, cursor: Option<&str>) -> Result<OrgList, ClientError> {
        let path = match cursor {
            Some(c) => format!("{}?limit={limit}&cursor={c}", paths::ORGS),
            None => format!("{}?limit={limit}", paths::ORGS),
        };
        self.call(Method::GET, &path, None).await
    }

    /// `POST /v1/orgs`: adds an organization (Test, save, first key pair).
    pub async fn org_add(&self, spec: &OrgSpec) -> Result<OrgAdded, ClientError> {
        self.org_add_with(spec, false).await
    }

    /// `POST /v1/orgs`, refusing a key not bound to the organization when
    /// `require_isolation`.
    pub async fn org_add_with(
        &self,
        spec: &OrgSpec,
        require_isolation: bool,
    ) -> Result<OrgAdded, ClientError> {
        let body = serde_json::to_vec(spec).expect("specs serialize");
        let path = if require_isolation {
            format!("{}?require_isolation=true", paths::ORGS)
        } else {
            paths::ORGS.to_string()
        };
        self.call(Method::POST, &path, Some(body)).await
    }

    /// `GET /v1/orgs/{org}`.
    pub async fn org(&self, id: &str) -> Result<OrgView, ClientError> {
        self.call(Method::GET, &paths::org(id), None).await
    }

    /// `DELETE /v1/orgs/{org}`: removes it, restorable for `window`
    /// (default 30 days).
    pub async fn org_remove(&self, id: &str, window: Option<&str>) -> Result<OrgView, ClientError> {
        let body = serde_json::to_vec(&RemoveRequest {
            restore_window: window.map(str::to_string),
        })
        .expect("requests serialize");
        self.call(Method::DELETE, &paths::org(id), Some(body)).await
    }

    /// `PATCH /v1/orgs/{org}`: changes its settings.
    pub async fn org_set(
        &self,
        id: &str,
        patch: &crate::domain::OrgPatch,
    ) -> Result<OrgView, ClientError> {
        let body = serde_json::to_vec(patch).expect("patches serialize");
        self.call(Method::PATCH, &paths::org(id), Some(body)).await
    }

    /// `POST /v1/orgs/{org}/restore`.
    pub async fn org_restore(&self, id: &str) -> Result<OrgView, ClientError> {
        let path = paths::for_org(Some(id), paths::RESTORE);
        self.call(Method::POST, &path, None).await
    }

    /// `POST /v1/orgs/{org}/purge`, confirmed with `confirm`.
    pub async fn org_purge(&self, id: &str, confirm: &str) -> Result<OrgPurged, ClientError> {
        let path = paths::for_org(Some(id), paths::PURGE);
        let body = serde_json::to_vec(&PurgeRequest {
            confirm: confirm.to_string(),
        })
        .expect("requests serialize");
        self.call(Method::POST, &path, Some(body)).await
    }
}
