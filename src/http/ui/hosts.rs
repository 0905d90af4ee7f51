//! `GET /hosts?status=<state>&label=<key>=<value>&q=<text>&offset=<n>`:
//! the host list in natural order of the host names, filtered by presence
//! (`online`, `offline`) or by the dashboard's backup states (`failed`,
//! `missed`, `never`, `stale`, `healthy`), by one label, and searched by
//! name (host name or display name, case-insensitive), a page of [`PAGE`]
//! hosts at a time.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::dashboard::{presence_badge, Severity};
use super::layout::{self, Nav};
use super::{encode_query_value, format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::store::{self, hosts::HostFilter};

/// Hosts per page.
const PAGE: i64 = 100;

#[derive(Debug, Deserialize)]
pub(super) struct HostsQuery {
    status: Option<String>,
    label: Option<String>,
    q: Option<String>,
    offset: Option<String>,
}

/// Parses a `key=value` label filter.
fn parse_label(text: &str) -> Result<(String, String), ApiError> {
    store::hosts::parse_label_filter(text)
        .ok_or_else(|| ApiError::validation(format!("label: expected key=value, got {text:?}")))
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
    query: web::Query<HostsQuery>,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let HostsQuery {
        status,
        label,
        q,
        offset,
    } = query.into_inner();
    let status = status.filter(|s| !s.is_empty());
    let base = match status.as_deref() {
        None => HostFilter::default(),
        Some("online") => HostFilter {
            online: Some(true),
            ..HostFilter::default()
        },
        Some(other) => match Severity::parse(other) {
            Some(severity) => severity.filter(ctx.now),
            None => {
                return Err(ApiError::validation(format!(
                    "status: expected online, offline, failed, missed, never, stale or healthy, got {other:?}"
                ))
                .into())
            }
        },
    };
    let label = label.filter(|l| !l.trim().is_empty());
    let label_filter = label.as_deref().map(parse_label).transpose()?;
    let offset = offset
        .as_deref()
        .filter(|o| !o.is_empty())
        .map(|o| o.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::validation("offset: expected a whole number"))?
        .unwrap_or(0)
        .max(0);
    let q = q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    let filter = HostFilter {
        query: q.clone(),
        labels: label_filter.into_iter().collect(),
        include_revoked: false,
        limit: PAGE,
        offset,
        ..base
    };
    let page = with_conn(&state.pool, move |conn| {
        Ok(store::hosts::list(conn, &filter)?)
    })
    .await?;

    let link = |offset: i64| {
        let mut url = format!("/hosts?offset={offset}");
        if let Some(s) = &status {
            url.push_str(&format!("&status={}", encode_query_value(s)));
        }
        if let Some(l) = &label {
            url.push_str(&format!("&label={}", encode_query_value(l)));
        }
        if let Some(q) = &q {
            url.push_str(&format!("&q={}", encode_query_value(q)));
        }
        url
    };
    let now = ctx.now;
    let shown = i64::try_from(page.items.len()).unwrap_or(0);
    let body = html! {
        form.filters #host-filter method="get" action="/hosts" {
            span.field {
                label for="filter-status" { "Status" }
                select #filter-status name="status" {
                    option value="" selected[status.is_none()] { "any" }
                    option value="online" selected[status.as_deref() == Some("online")] { "online" }
                    @for s in Severity::ALL {
                        option value=(s.as_str()) selected[status.as_deref() == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            span.field { label for="filter-label" { "Label" }
                input #filter-label name="label" type="text" value=(label.as_deref().unwrap_or("")) placeholder="key=value"; }
            span.field { label for="filter-q" { "Name" }
                input #filter-q name="q" type="search" value=(q.as_deref().unwrap_or("")) placeholder="host or display name"; }
            button type="submit" { "Filter" }
        }
        p.muted { (format::plural(page.total, "host matches", "hosts match")) "." }
        table #hosts {
            thead { tr { th { "Host" } th { "Status" } th { "OS" } th { "Agent" } th { "restic" } th { "Last seen" } th { "Schedules acked" } } }
            tbody {
                @for row in &page.items {
                    @let h = &row.host;
                    tr data-host-id=(h.id) {
                        td {
                            a href={ "/hosts/" (h.id) } { (h.display_name.as_deref().unwrap_or(&h.hostname)) }
                            @if h.display_name.is_some() { " " span.muted { (h.hostname) } }
                        }
                        td { (presence_badge(&h.id, h.online)) }
                        td { (h.os) "/" (h.arch) }
                        td { (h.agent_version.as_deref().unwrap_or("—")) }
                        td { (h.restic_version.as_deref().unwrap_or("—")) }
                        td { @match h.last_seen_at { Some(at) => time datetime=(format::rfc3339(at)) title=(format::time(at)) { (format::ago(at, now)) }, None => "never" } }
                        td {
                            @match &row.schedule {
                                Some(v) => { (v.acked_version) " / " (v.version) }
                                None => "—",
                            }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if offset > 0 { a href=(link((offset - PAGE).max(0))) { "← Previous" } }
            @if offset + shown < page.total { a href=(link(offset + PAGE)) { "Next →" } }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Hosts, "Hosts", body),
    ))
}
