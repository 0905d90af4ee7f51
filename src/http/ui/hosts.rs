//! `GET /hosts?status=<state>&label=<key>=<value>&q=<text>&offset=<n>`:
//! the host list in natural order of the host names, filtered by presence
//! (`online`, `offline`) or by the dashboard's backup states (`failed`,
//! `missed`, `never`, `stale`, `healthy`), by labels (`label` repeats:
//! every one must match), and searched by name (host name or display
//! name, case-insensitive), a page of [`PAGE`] hosts at a time: the
//! store counts and reads one page, never the whole fleet.
//!
//! Operators also get a checkbox per host and the bulk actions over the
//! checked ones: run a job (`POST /api/v1/jobs/bulk`) and cancel their
//! jobs (`POST /api/v1/jobs/bulk-cancel`), sent by `app.js` (the `bulk`
//! and `bulk-cancel` forms); the answer (created or cancelled, and each
//! host skipped with its reason) is shown in `#bulk-result`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::dashboard::{presence_badge, Severity};
use super::layout::{self, Nav};
use super::{encode_query_value, format, html_response, PageReader, UiError};
use crate::agent_release::AgentRelease;
use crate::auth::Role;
use crate::http::error::ApiError;
use crate::http::extract::host_list;
use crate::http::AppState;
use crate::protocol::JobKind;
use crate::store::{self, hosts::HostFilter};

/// Hosts per page.
const PAGE: i64 = 100;

/// The page's query; `label` may repeat (every one must match).
#[derive(Debug, Default)]
struct HostsQuery {
    status: Option<String>,
    labels: Vec<String>,
    q: Option<String>,
    offset: Option<String>,
}

impl HostsQuery {
    /// Reads the query string as pairs (serde's struct form refuses a
    /// repeated key); unknown parameters are ignored.
    fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| ApiError::bad_request(format!("query: {e}")))?
            .into_inner();
        let mut q = HostsQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "status" => q.status = Some(value),
                "label" => q.labels.push(value),
                "q" => q.q = Some(value),
                "offset" => q.offset = Some(value),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// Parses a `key=value` label filter.
pub(super) fn parse_label(text: &str) -> Result<(String, String), ApiError> {
    store::hosts::parse_label_filter(text)
        .ok_or_else(|| ApiError::validation(format!("label: expected key=value, got {text:?}")))
}

/// Parses an `offset` parameter (empty: 0).
pub(super) fn parse_offset(offset: Option<&str>) -> Result<i64, ApiError> {
    Ok(offset
        .filter(|o| !o.is_empty())
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ApiError::validation("offset: expected a whole number"))?
        .unwrap_or(0)
        .max(0))
}

/// "← Previous" and "Next →" links of a paged list; `link` makes the URL
/// of an offset.
pub(super) fn pager(offset: i64, shown: usize, total: i64, link: impl Fn(i64) -> String) -> Markup {
    let shown = i64::try_from(shown).unwrap_or(0);
    html! {
        nav.pager {
            @if offset > 0 { a href=(link((offset - PAGE).max(0))) rel="prev" { "← Previous" } }
            @if offset + shown < total {
                span.muted { (offset + 1) "–" (offset + shown) " of " (total) " " }
                a href=(link(offset + PAGE)) rel="next" { "Next →" }
            }
        }
    }
}

/// The job kinds a bulk run offers.
const BULK_KINDS: [JobKind; 4] = [
    JobKind::Backup,
    JobKind::Forget,
    JobKind::Prune,
    JobKind::Check,
];

/// The bulk-action forms over the checked hosts (operators only).
fn bulk_forms() -> Markup {
    html! {
        section #bulk-actions {
            form.filters #bulk-run data-change data-form="bulk" data-method="POST"
                data-path="/api/v1/jobs/bulk" data-then="bulk-result" {
                strong { "Checked hosts:" }
                span.field {
                    label for="bulk-kind" { "Job" }
                    select #bulk-kind name="kind" {
                        @for kind in BULK_KINDS { option value=(kind.as_str()) { (kind.as_str()) } }
                    }
                }
                span.field {
                    label for="bulk-group" { "Source group" }
                    input #bulk-group name="source_group" type="text" placeholder="backup, forget: the group's name";
                }
                button #bulk-run-submit type="submit" { "Run backup" }
            }
            form.filters #bulk-cancel data-change data-form="bulk-cancel" data-method="POST"
                data-path="/api/v1/jobs/bulk-cancel" data-then="bulk-result"
                data-confirm="Cancel the queued and running jobs of the checked hosts?" {
                button #bulk-cancel-submit type="submit" { "Cancel jobs" }
            }
            div #bulk-result role="status" aria-live="polite" {}
        }
    }
}

/// An agent's version, marked when a newer agent release is available
/// (host list and host page).
pub(super) fn agent_version(version: Option<&str>, release: &AgentRelease) -> Markup {
    html! {
        (version.unwrap_or("—"))
        @if release.update_available(version) {
            " " span.badge.badge-warning.update-available title={ "Agent " (release.latest) " is available" } {
                "update available"
            }
        }
    }
}

/// What the host list shows: the filters as asked for (for the form and
/// the page links) and the store's filter they make.
struct Listing {
    status: Option<String>,
    labels: Vec<String>,
    q: Option<String>,
    filter: HostFilter,
}

impl Listing {
    /// Parses the page's query string; states are judged at `now`.
    fn parse(query: &str, now: i64) -> Result<Self, ApiError> {
        let HostsQuery {
            status,
            labels,
            q,
            offset,
        } = HostsQuery::parse(query)?;
        let status = status.filter(|s| !s.is_empty());
        let base = match status.as_deref() {
            None => HostFilter::default(),
            Some("online") => HostFilter {
                online: Some(true),
                ..HostFilter::default()
            },
            Some(other) => match Severity::parse(other) {
                Some(severity) => severity.filter(now),
                None => {
                    return Err(ApiError::validation(format!(
                        "status: expected online, offline, failed, missed, never, stale or healthy, got {other:?}"
                    )))
                }
            },
        };
        let labels: Vec<String> = labels
            .into_iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        let label_filter = labels
            .iter()
            .map(|l| parse_label(l))
            .collect::<Result<Vec<_>, _>>()?;
        let offset = parse_offset(offset.as_deref())?;
        let q = q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        let filter = HostFilter {
            query: q.clone(),
            labels: label_filter,
            include_revoked: false,
            limit: PAGE,
            offset,
            ..base
        };
        Ok(Listing {
            status,
            labels,
            q,
            filter,
        })
    }
}

pub(super) async fn page(
    state: web::Data<AppState>,
    page: PageReader,
    req: HttpRequest,
) -> Result<HttpResponse, UiError> {
    let listing = Listing::parse(req.query_string(), page.now);
    // Alongside the caller's check (`PageReader`), which is answered
    // first, before a bad query's error: viewers and up may see it.
    let pool = state.pool.clone();
    let (ctx, (listing, page)) = page
        .alongside(async move {
            let listing = listing?;
            let page = host_list(&pool, listing.filter.clone()).await?;
            Ok::<_, ApiError>((listing, page))
        })
        .await?;
    ctx.require(Role::Viewer)?;
    let Listing {
        status,
        labels,
        q,
        filter,
    } = listing;
    let offset = filter.offset;

    let link = |offset: i64| {
        let mut url = format!("/hosts?offset={offset}");
        if let Some(s) = &status {
            url.push_str(&format!("&status={}", encode_query_value(s)));
        }
        for l in &labels {
            url.push_str(&format!("&label={}", encode_query_value(l)));
        }
        if let Some(q) = &q {
            url.push_str(&format!("&q={}", encode_query_value(q)));
        }
        url
    };
    let now = ctx.now;
    let bulk = ctx.can_operate();
    let release = &state.actors.config.agent_release;
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
            // One field per label filtered on, and one more to add a label.
            @for (i, l) in labels.iter().map(String::as_str).chain([""]).enumerate() {
                span.field {
                    label for=(format!("filter-label-{i}")) { "Label" }
                    input.filter-label id=(format!("filter-label-{i}")) name="label" type="text" value=(l) placeholder="key=value";
                }
            }
            span.field { label for="filter-q" { "Name" }
                input #filter-q name="q" type="search" value=(q.as_deref().unwrap_or("")) placeholder="host or display name"; }
            button type="submit" { "Filter" }
        }
        p.muted #host-count { (format::plural(page.total, "host matches", "hosts match")) "." }
        @if bulk { (bulk_forms()) }
        table #hosts {
            thead { tr {
                @if bulk { th { input #bulk-all type="checkbox" data-bulk-all aria-label="Check every host on this page"; } }
                th { "Host" } th { "Status" } th { "Labels" } th { "OS" } th { "Agent" } th { "restic" } th { "Last seen" } th { "Schedules acked" }
            } }
            tbody {
                @for row in &page.items {
                    @let h = &row.host;
                    @let name = h.display_name.as_deref().unwrap_or(&h.hostname);
                    tr data-host-id=(h.id) data-host-name=(name) {
                        @if bulk {
                            td { input.bulk-host type="checkbox" data-bulk-host value=(h.id) aria-label={ "Check " (name) }; }
                        }
                        td {
                            a href={ "/hosts/" (h.id) } { (name) }
                            @if h.display_name.is_some() { " " span.muted { (h.hostname) } }
                        }
                        td { (presence_badge(&h.id, h.online)) }
                        td.labels { @for (k, v) in &h.labels { span.tag { (k) "=" (v) } " " } }
                        td { (h.os) "/" (h.arch) }
                        td { (agent_version(h.agent_version.as_deref(), release)) }
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
        (pager(offset, page.items.len(), page.total, link))
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Hosts, "Hosts", body),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `label` repeats; the other parameters are read once; unknown ones are ignored.
    #[test]
    fn query_keeps_every_label() {
        let q = HostsQuery::parse("label=env%3Dprod&label=role=db&status=online&x=1&offset=100")
            .unwrap();
        assert_eq!(q.labels, ["env=prod", "role=db"]);
        assert_eq!(q.status.as_deref(), Some("online"));
        assert_eq!(q.offset.as_deref(), Some("100"));
        assert_eq!(parse_offset(Some("")).unwrap(), 0);
        assert_eq!(parse_offset(Some("-5")).unwrap(), 0);
        assert!(parse_offset(Some("x"))
            .unwrap_err()
            .message
            .starts_with("offset:"));
        assert!(parse_label("nokey")
            .unwrap_err()
            .message
            .starts_with("label:"));
    }

    /// The pager links both ways only where there is more to see.
    #[test]
    fn pager_links() {
        let link = |o: i64| format!("/x?offset={o}");
        let first = pager(0, 100, 250, link).into_string();
        assert!(!first.contains("Previous") && first.contains("/x?offset=100"));
        let last = pager(200, 50, 250, link).into_string();
        assert!(last.contains("/x?offset=100") && !last.contains("Next"));
    }
}
