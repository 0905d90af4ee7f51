//! `GET /search?q=&host_id=&offset=`: the fleet-wide search of the
//! snapshot catalog (the store's [`search`], which the API's
//! `GET /catalog/search` also answers from), [`PAGE`] matches at a time.
//! Each match links to its host, its snapshot and the folder holding it.
//! Viewers may search: the API lets them read names, sizes and times.
//!
//! Bad input is a 400 page that still shows the form, with the API's
//! message (a text shorter than three characters cannot be searched by
//! the trigram index).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::snapshot::folder_url;
use super::{encode_query_value, format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::live_host;
use crate::http::AppState;
use crate::ids::HostId;
use crate::store::catalog::search::{self, Hit};
use crate::store::{self, Page};

/// Matches per page.
const PAGE: i64 = 50;
/// The longest text accepted (the API's limit on paths).
const MAX_QUERY_BYTES: usize = 4096;

#[derive(Debug, Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
    host_id: Option<String>,
    offset: Option<String>,
}

/// A checked request: the text (`None`: show the form only).
struct Request {
    q: Option<String>,
    host_id: Option<String>,
    offset: i64,
}

fn parse(query: SearchQuery) -> Result<Request, ApiError> {
    let host_id = query.host_id.filter(|h| !h.is_empty());
    let offset = match query.offset.as_deref().filter(|o| !o.is_empty()) {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| ApiError::validation("offset: expected a whole number, 0 or more"))?,
    };
    let q = query.q.unwrap_or_default();
    if q.trim().is_empty() {
        return Ok(Request {
            q: None,
            host_id,
            offset,
        });
    }
    if q.chars().count() < search::MIN_QUERY_CHARS {
        return Err(ApiError::validation(format!(
            "q: must be at least {} characters (the trigram index cannot search shorter text)",
            search::MIN_QUERY_CHARS
        )));
    }
    if q.len() > MAX_QUERY_BYTES || q.contains('\0') {
        return Err(ApiError::validation(format!(
            "q: must be at most {MAX_QUERY_BYTES} bytes without NUL"
        )));
    }
    Ok(Request {
        q: Some(q),
        host_id,
        offset,
    })
}

/// What the page shows: the matches and the names of their hosts.
struct Found {
    page: Page<Hit>,
    host_names: HashMap<String, String>,
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let raw = query.into_inner();
    let (shown_q, shown_host) = (raw.q.clone().unwrap_or_default(), raw.host_id.clone());
    let req = match parse(raw) {
        Ok(req) => req,
        Err(e) => {
            let body = form(&shown_q, shown_host.as_deref(), Some(&e));
            return Ok(html_response(
                e.status,
                layout::page(&ctx, Nav::None, "Search", body),
            ));
        }
    };
    let found = match &req.q {
        None => None,
        Some(q) => {
            let (q, host, offset) = (q.clone(), req.host_id.clone(), req.offset);
            Some(
                with_conn(&state.pool, move |conn| {
                    if let Some(host) = &host {
                        live_host(conn, host)?;
                    }
                    let page = search::search(conn, &q, host.as_deref(), PAGE, offset)?;
                    let mut host_names = HashMap::new();
                    for hit in &page.items {
                        if !host_names.contains_key(&hit.host_id) {
                            let name = store::hosts::get(conn, &hit.host_id)?
                                .map(|h| h.display_name.unwrap_or(h.hostname))
                                .unwrap_or_else(|| hit.host_id.clone());
                            host_names.insert(hit.host_id.clone(), name);
                        }
                    }
                    Ok(Found { page, host_names })
                })
                .await?,
            )
        }
    };
    let body = html! {
        (form(&shown_q, req.host_id.as_deref(), None))
        @if let (Some(q), Some(found)) = (&req.q, &found) { (results(&req, q, found)) }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::None, "Search", body),
    ))
}

fn form(q: &str, host_id: Option<&str>, error: Option<&ApiError>) -> Markup {
    html! {
        form.filters #search-form method="get" action="/search" {
            label for="search-q" { "Path contains" }
            input #search-q name="q" type="search" value=(q) minlength="3" placeholder="e.g. nginx.conf" required;
            @if let Some(h) = host_id {
                input type="hidden" name="host_id" value=(h);
                span.muted #search-host { "on host " code { (h) } " · " a href="/search" { "all hosts" } }
            }
        }
        p.muted { "Searches the catalogued snapshots (the newest of each source group), case-insensitively, at least 3 characters." }
        @if let Some(e) = error {
            p.error #search-error data-code=(e.code) { (e.message) }
        }
    }
}

/// The search page's own URL for another offset.
fn page_url(req: &Request, q: &str, offset: i64) -> String {
    let mut url = format!("/search?q={}", encode_query_value(q));
    if let Some(h) = &req.host_id {
        url.push_str(&format!("&host_id={}", encode_query_value(h)));
    }
    if offset > 0 {
        url.push_str(&format!("&offset={offset}"));
    }
    url
}

fn results(req: &Request, q: &str, found: &Found) -> Markup {
    let page = &found.page;
    let shown = i64::try_from(page.items.len()).unwrap_or(0);
    html! {
        p #search-total data-total=(page.total) { (format::plural(page.total, "match", "matches")) "." }
        @if !page.items.is_empty() {
            table #search-results {
                thead { tr { th { "Path" } th { "Type" } th { "Size" } th { "Modified" } th { "Host" } th { "Snapshot" } } }
                tbody {
                    @for hit in &page.items {
                        @let path = hit.path();
                        @let folder = if hit.kind == "dir" { path.clone() } else { folder_of(&hit.parent) };
                        tr data-hit=(path) data-host-id=(hit.host_id) {
                            td { a.hit-folder href=(folder_url(&HostId::from(hit.host_id.as_str()), &hit.snapshot_id, &folder, 0, false)) { code { (path) } } }
                            td { (hit.kind) }
                            td { (hit.size.map(format::bytes_i64).unwrap_or_default()) }
                            td { @if let Some(at) = hit.mtime { (format::time(at)) } }
                            td { a href={ "/hosts/" (encode_query_value(&hit.host_id)) } {
                                (found.host_names.get(&hit.host_id).map_or(hit.host_id.as_str(), String::as_str)) } }
                            td { a.hit-snapshot href=(folder_url(&HostId::from(hit.host_id.as_str()), &hit.snapshot_id, "/", 0, false)) {
                                code { (hit.snapshot_id.get(..8).unwrap_or(&hit.snapshot_id)) } }
                                " " span.muted { (format::time(hit.snapshot_time)) } }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if req.offset > 0 { a href=(page_url(req, q, (req.offset - PAGE).max(0))) { "← Previous" } }
            @if req.offset + shown < page.total { a href=(page_url(req, q, req.offset + PAGE)) { "Next →" } }
        }
    }
}

/// A folder key (`/etc/`) as a folder path (`/etc`; the root stays `/`).
fn folder_of(parent: &str) -> String {
    let trimmed = parent.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: Option<&str>, offset: Option<&str>) -> SearchQuery {
        SearchQuery {
            q: q.map(str::to_owned),
            host_id: None,
            offset: offset.map(str::to_owned),
        }
    }

    /// Empty text shows the form; short text and bad offsets are 400s naming the field.
    #[test]
    fn query_is_checked() {
        assert!(parse(query(None, None)).unwrap().q.is_none());
        assert!(parse(query(Some("  "), None)).unwrap().q.is_none());
        assert_eq!(
            parse(query(Some("ngi"), Some("50"))).unwrap().q.as_deref(),
            Some("ngi")
        );
        for (q, field) in [
            (query(Some("ng"), None), "q:"),
            (query(Some("a\0bc"), None), "q:"),
            (query(Some("nginx"), Some("-5")), "offset:"),
        ] {
            let err = parse(q).err().unwrap();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.starts_with(field), "{}", err.message);
        }
    }

    /// Folder keys become folder paths.
    #[test]
    fn folders() {
        assert_eq!(folder_of("/etc/"), "/etc");
        assert_eq!(folder_of("/"), "/");
    }
}
