//! Bulk actions (issue 12 §4): `POST /jobs/bulk` creates a job on every
//! selected host, `POST /jobs/bulk-cancel` cancels the selected hosts'
//! queued and running jobs. The selection is `{"selector": {"labels":
//! {…}}}` or `{"host_ids": […]}`. Each is one writer transaction with one
//! audit row naming the selection and the count (`Actors::create_jobs_bulk`,
//! `Actors::cancel_jobs_bulk`); operator role; 202.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::hosts::validate_labels;
use super::jobs::parse_kind;
use super::table::Endpoint;
use crate::actors::bulk::{Requester, Selection, MAX_BULK_HOSTS};
use crate::actors::needs_group;
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::extract::Body;
use crate::http::AppState;
use crate::protocol::JobKind;
use crate::store::policies::Selector;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::post("/jobs/bulk", |r| r.to(create))
            .summary("Create a job on every selected host (by labels or ids), in one write")
            .role(Role::Operator)
            .body("BulkJobRequest")
            .ok(202, "BulkCreated"),
        Endpoint::post("/jobs/bulk-cancel", |r| r.to(cancel))
            .summary("Cancel the queued and running jobs of every selected host")
            .role(Role::Operator)
            .body("BulkCancelRequest")
            .ok(202, "BulkCancelled"),
    ]
}

/// The selection as a request gives it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BulkSelector)]
pub(super) struct SelectorBody {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// `POST /jobs/bulk` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BulkJobRequest)]
pub(super) struct BulkRequest {
    /// Hosts whose labels all match (`{}`: every host); or `host_ids`.
    #[serde(default)]
    #[schema(value_type = Option<BulkSelector>)]
    selector: Option<SelectorBody>,
    #[serde(default)]
    host_ids: Option<Vec<String>>,
    #[schema(schema_with = super::openapi::job_kind)]
    kind: String,
    /// Required for backup and forget, refused for the others.
    #[serde(default)]
    source_group: Option<String>,
}

/// `POST /jobs/bulk-cancel` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BulkCancelRequest)]
pub(super) struct BulkCancelRequest {
    #[serde(default)]
    #[schema(value_type = Option<BulkSelector>)]
    selector: Option<SelectorBody>,
    #[serde(default)]
    host_ids: Option<Vec<String>>,
    /// Only jobs of this kind (default: every kind).
    #[serde(default)]
    kind: Option<String>,
}

/// Exactly one of `selector` and `host_ids`.
fn selection(
    selector: Option<SelectorBody>,
    host_ids: Option<Vec<String>>,
) -> Result<Selection, ApiError> {
    match (selector, host_ids) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "selector: give either selector or host_ids, not both",
        )),
        (None, None) => Err(ApiError::validation(
            "selector: give selector ({\"labels\": {…}}) or host_ids",
        )),
        (Some(s), None) => {
            validate_labels(&s.labels).map_err(|mut e| {
                e.message = format!("selector.{}", e.message);
                e
            })?;
            Ok(Selection::Selector(Selector { labels: s.labels }))
        }
        (None, Some(ids)) => {
            if ids.is_empty() {
                return Err(ApiError::validation("host_ids: name at least one host"));
            }
            if ids.len() > MAX_BULK_HOSTS {
                return Err(ApiError::validation(format!(
                    "host_ids: at most {MAX_BULK_HOSTS} hosts"
                )));
            }
            if let Some(i) = ids.iter().position(|id| id.trim().is_empty()) {
                return Err(ApiError::validation(format!(
                    "host_ids[{i}]: must not be empty"
                )));
            }
            Ok(Selection::HostIds(ids))
        }
    }
}

fn requester(who: &Principal) -> Requester {
    Requester {
        username: who.username.clone(),
        source_addr: who.source_addr.clone(),
    }
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<BulkRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let body = body.into_inner();
    let kind = parse_kind(body.kind.trim())?;
    if matches!(kind, JobKind::Restore | JobKind::Catalog) {
        return Err(ApiError::validation(format!(
            "kind: a {kind} job cannot be created in bulk"
        )));
    }
    let source_group = body
        .source_group
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty());
    match (&source_group, needs_group(kind)) {
        (None, true) => {
            return Err(ApiError::validation(format!(
                "source_group: required for a {kind} job"
            )))
        }
        (Some(_), false) if kind != JobKind::Drill => {
            return Err(ApiError::validation(format!(
                "source_group: a {kind} job acts on the whole repository; omit source_group"
            )))
        }
        _ => {}
    }
    let selection = selection(body.selector, body.host_ids)?;
    let done = state
        .actors
        .create_jobs_bulk(selection, kind, source_group, requester(&who))
        .await?;
    Ok(HttpResponse::Accepted().json(done))
}

async fn cancel(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<BulkCancelRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let body = body.into_inner();
    let kind = body
        .kind
        .filter(|k| !k.trim().is_empty())
        .map(|k| parse_kind(k.trim()))
        .transpose()?;
    let selection = selection(body.selector, body.host_ids)?;
    let done = state
        .actors
        .cancel_jobs_bulk(selection, kind, requester(&who))
        .await?;
    Ok(HttpResponse::Accepted().json(done))
}
