//! `GET /audit?actor=&action=&target=&since=YYYY-MM-DD&offset=` (admin, as
//! `GET /api/v1/audit`): the audit log, newest first — who did what, when, from where — filtered by
//! actor, action, target and start day, [`PAGE`] entries at a time.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use std::collections::HashMap;

use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{encode_query_value, format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::store::ui_queries::TargetName;
use crate::store::{self, audit::AuditFilter};

/// Entries per page.
const PAGE: i64 = 100;

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    offset: Option<String>,
}

/// A filter value: trimmed, `None` when empty.
fn value(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The start of a `YYYY-MM-DD` day (UTC) in Unix ms.
fn day_start(text: &str) -> Result<i64, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| {
            ApiError::validation(format!(
                "since: expected a day such as 2026-01-31, got {text:?}"
            ))
        })
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Admin)?;
    let q = query.into_inner();
    let (actor, action, target, since) = (
        value(q.actor),
        value(q.action),
        value(q.target),
        value(q.since),
    );
    let since_ms = since.as_deref().map(day_start).transpose()?;
    let offset = value(q.offset)
        .map(|o| o.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::validation("offset: expected a whole number"))?
        .unwrap_or(0)
        .max(0);
    let filter = AuditFilter {
        actor: actor.clone(),
        action: action.clone(),
        target: target.clone(),
        since: since_ms,
        until: None,
        limit: PAGE,
        offset,
    };
    let (page, names) = with_conn(&state.pool, move |conn| {
        let page = store::audit::list(conn, &filter)?;
        let mut ids: Vec<String> = page.items.iter().filter_map(|e| e.target.clone()).collect();
        ids.sort();
        ids.dedup();
        let names = store::ui_queries::target_names(conn, &ids)?;
        Ok((page, names))
    })
    .await?;
    let link = |offset: i64| {
        let mut url = format!("/audit?offset={offset}");
        for (name, v) in [
            ("actor", &actor),
            ("action", &action),
            ("target", &target),
            ("since", &since),
        ] {
            if let Some(v) = v {
                url.push_str(&format!("&{name}={}", encode_query_value(v)));
            }
        }
        url
    };
    let shown = i64::try_from(page.items.len()).unwrap_or(0);
    let body = html! {
        form.filters #audit-filter method="get" action="/audit" {
            span.field { label for="f-actor" { "Actor" }
                input #f-actor name="actor" type="text" value=(actor.as_deref().unwrap_or("")) placeholder="alice"; }
            span.field { label for="f-action" { "Action" }
                input #f-action name="action" type="text" value=(action.as_deref().unwrap_or("")) placeholder="login.failed"; }
            span.field { label for="f-target" { "Target" }
                input #f-target name="target" type="text" value=(target.as_deref().unwrap_or("")) placeholder="id"; }
            span.field { label for="f-since" { "Since" }
                input #f-since name="since" type="date" value=(since.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        p.muted { (format::plural(page.total, "entry matches", "entries match")) "." }
        table #audit-list {
            thead { tr { th { "Time" } th { "Actor" } th { "Action" } th { "Target" } th { "From" } th { "Detail" } } }
            tbody {
                @for e in &page.items {
                    tr data-action=(e.action) {
                        td { (format::time(e.at)) }
                        td { (e.actor) }
                        td { code { (e.action) } }
                        td.target { (target_cell(&e.action, e.target.as_deref(), &names)) }
                        td { (e.source_addr.as_deref().unwrap_or("—")) }
                        td.detail { @if let Some(d) = &e.detail { code { (d) } } }
                    }
                }
            }
        }
        nav.pager {
            @if offset > 0 { a href=(link((offset - PAGE).max(0))) { "← Newer" } }
            @if offset + shown < page.total { a href=(link(offset + PAGE)) { "Older →" } }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Audit, "Audit log", body),
    ))
}

/// An audit target for people: a host or user by name (the id in the
/// title), a job as a link to its page, anything else as its id.
fn target_cell(action: &str, target: Option<&str>, names: &HashMap<String, TargetName>) -> Markup {
    let Some(id) = target else {
        return html! { "—" };
    };
    html! {
        @match names.get(id) {
            Some(TargetName::Host(name)) => a href={ "/hosts/" (encode_query_value(id)) } title=(id) { "host " (name) },
            Some(TargetName::User(name)) => span title=(id) { "user " (name) },
            None if action.starts_with("job.") => a href={ "/jobs/" (encode_query_value(id)) } { "job " code { (id) } },
            None => code { (id) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The since filter takes a calendar day (UTC) and names itself when wrong.
    #[test]
    fn since_days() {
        assert_eq!(day_start("2026-01-02").unwrap(), 1_767_312_000_000);
        let err = day_start("yesterday").unwrap_err();
        assert!(err.message.starts_with("since:"));
    }

    /// Targets read as the host or user they name; jobs link to their page; other ids stay ids.
    #[test]
    fn target_names() {
        let names = HashMap::from([
            ("h1".to_owned(), TargetName::Host("web <01>".to_owned())),
            ("u1".to_owned(), TargetName::User("alice".to_owned())),
        ]);
        let cell = |action, id| target_cell(action, id, &names).into_string();
        let host = cell("host.update", Some("h1"));
        assert!(
            host.contains(r#"href="/hosts/h1""#) && host.contains("host web &lt;01&gt;"),
            "{host}"
        );
        assert!(cell("user.create", Some("u1")).contains("user alice"));
        assert!(cell("job.create", Some("j9")).contains(r#"href="/jobs/j9""#));
        assert_eq!(cell("schedule.create", Some("s1")), "<code>s1</code>");
        assert_eq!(cell("login", None), "—");
    }
}
