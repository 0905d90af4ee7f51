//! `GET /audit` (`?actor=&action=&target=&since=&until=&limit=&offset=`):
//! the audit log, newest first — every change, login and failed login,
//! with actor, action, target, time, source address and a detail object.
//!
//! Admins only (issue 15 B.3), here, on the UI's audit page, in the
//! OpenAPI text and in API.md: the log holds no secret — tokens and
//! passwords never enter it — but it shows client addresses and the names
//! typed in failed logins, which are often mistyped passwords.

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::table::Endpoint;
use super::{List, PageQuery, DEFAULT_LIMIT};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{parse_time, Time};
use crate::http::AppState;
use crate::store::{self, models};

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::get("/audit", |r| r.to(list))
        .summary("The audit log, newest first")
        .describe(
            "Every change, login and failed login, newest first. Admins only: it holds \
             client addresses and the names typed in failed logins.",
        )
        .role(Role::Admin)
        .query(
            "actor",
            "string",
            "Only entries by this actor (a username, `cli` or `agent:<host id>`).",
        )
        .query(
            "action",
            "string",
            "Only this action, e.g. `user.create` or `login.failed`.",
        )
        .query("target", "string", "Only entries about this target id.")
        .query_time("since", "Only entries at or after this time.")
        .query_time("until", "Only entries before this time.")
        .paged()
        .ok(200, "AuditList")]
}

/// One audit entry as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub(super) struct AuditEntryDto {
    id: String,
    #[schema(value_type = String, format = DateTime)]
    at: Time,
    actor: String,
    action: String,
    target: Option<String>,
    /// What changed (never a secret).
    #[schema(value_type = Option<Object>)]
    detail: Option<Value>,
    source_addr: Option<String>,
}

impl AuditEntryDto {
    fn from_row(e: models::AuditEntry) -> Self {
        AuditEntryDto {
            detail: e.detail,
            id: e.id,
            at: Time(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            source_addr: e.source_addr,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl ListQuery {
    fn into_filter(self) -> Result<store::audit::AuditFilter, ApiError> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let time = |name: &str, v: Option<String>| {
            nonempty(v).map(|s| parse_time(name, s.trim())).transpose()
        };
        let (limit, offset) = PageQuery {
            limit: self.limit,
            offset: self.offset,
        }
        .resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
        Ok(store::audit::AuditFilter {
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            actor: nonempty(self.actor),
            action: nonempty(self.action),
            target: nonempty(self.target),
            limit,
            offset,
        })
    }
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<web::Json<List<AuditEntryDto>>, ApiError> {
    who.require(Role::Admin)?;
    let filter = query.into_inner().into_filter()?;
    let page = with_conn(&state.pool, move |conn| {
        Ok(store::audit::list(conn, &filter)?)
    })
    .await?;
    let items = page
        .items
        .into_iter()
        .map(AuditEntryDto::from_row)
        .collect();
    Ok(web::Json(List {
        items,
        total: page.total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty filters are ignored; a bad since or until is 400 naming it.
    #[test]
    fn filters() {
        let q = |since: &str, until: &str| ListQuery {
            actor: Some(" ".into()),
            action: Some("login".into()),
            target: None,
            since: Some(since.into()),
            until: Some(until.into()),
            limit: None,
            offset: None,
        };
        let f = q("", "2026-01-01T00:00:00Z").into_filter().unwrap();
        assert_eq!(f.actor, None);
        assert_eq!(f.action.as_deref(), Some("login"));
        assert!(f.since.is_none() && f.until.is_some());
        for (query, name) in [(q("x", ""), "since:"), (q("", "y"), "until:")] {
            let err = query.into_filter().unwrap_err();
            assert!(err.message.starts_with(name), "{}", err.message);
        }
    }
}
