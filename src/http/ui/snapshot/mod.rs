//! `GET /hosts/{id}/snapshots/{snapshot_id}?path=&offset=&live=`: one
//! snapshot and a file browser over it (issue 11 §5).
//!
//! The page reads the catalog (`store::catalog`), never the repository:
//! a catalogued snapshot shows its folder, [`PAGE`] entries at a time
//! (a folder may hold 100,000 entries; nothing is listed unbounded). A
//! snapshot that is not catalogued says so, with the state of its
//! catalog job; while that job runs, `browse.js` follows its events and
//! reloads the page when it ends. Its folders can also be listed live by
//! the agent (`live=1`, the tree route's [`folder`]; cached by it, so the
//! next visit reads the cache).
//!
//! Operators also get checkboxes, "select all in folder", a selection
//! kept in the browser's session storage across folders and pages, the
//! Restore dialog (a `restore` job through the JSON API, then its job
//! page) and Download buttons (links to the download route; disabled,
//! with the reason, when the host is offline or its agent cannot stream).
//! Viewers browse only: the API gives them neither restores nor file
//! contents.
//!
//! # Layout
//!
//! - this file: the route, what is read, the snapshot's facts and its
//!   catalog state.
//! - [`listing`]: breadcrumb, the folder table, the pager.
//! - [`restore`]: the selection panel and the Restore dialog.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use maud::{html, Markup};
use serde::Deserialize;

use super::dashboard::presence_badge;
use super::layout::{self, badge, Nav};
use super::{encode_query_value, format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::api::catalog::{folder, parse_dir};
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::live_host;
use crate::http::AppState;
use crate::ids::HostId;
use crate::store::catalog::{self, browse, CatalogSnapshot, Entry};
use crate::store::models::{Host, Job, Snapshot};
use crate::store::schema::jobs;
use crate::store::{self, JobKind, Page};

mod listing;
mod restore;

/// Entries of a folder per page.
pub const PAGE: i64 = 200;
/// Hosts offered as restore targets in the dialog's list (any other is
/// entered by id).
const RESTORE_TARGETS: i64 = 500;

#[derive(Debug, Deserialize)]
pub(super) struct SnapshotQuery {
    path: Option<String>,
    offset: Option<String>,
    live: Option<String>,
}

/// Where the folder's entries come from.
#[derive(Debug)]
enum Listing {
    /// From the complete catalog.
    Catalog(Page<Entry>),
    /// Listed live by the agent (now, or cached from an earlier visit).
    Live(Page<Entry>),
    /// Not stored; not asked for (or the host cannot answer).
    None,
    /// The agent was asked and could not answer.
    Failed(ApiError),
}

/// Everything the page shows.
struct Data {
    host: Host,
    snapshot: Snapshot,
    catalog: Option<CatalogSnapshot>,
    /// The newest `catalog` job of this snapshot.
    catalog_job: Option<Job>,
    listing: Listing,
    /// Restore targets (operators only): the first hosts by name and
    /// how many there are.
    targets: Vec<Host>,
    target_total: i64,
}

/// A parsed request.
struct Request {
    host_id: HostId,
    snapshot: String,
    dir: String,
    offset: i64,
    live: bool,
}

fn parse(path: (String, String), query: SnapshotQuery) -> Result<Request, ApiError> {
    let dir = parse_dir(query.path.as_deref().filter(|p| !p.is_empty()))?;
    let offset = match query.offset.as_deref().filter(|o| !o.is_empty()) {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| ApiError::validation("offset: expected a whole number, 0 or more"))?,
    };
    let live = match query.live.as_deref() {
        None | Some("" | "0") => false,
        Some("1") => true,
        Some(_) => return Err(ApiError::validation("live: expected 1 or 0")),
    };
    Ok(Request {
        host_id: HostId::from(path.0),
        snapshot: path.1,
        dir,
        offset,
        live,
    })
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
    path: web::Path<(String, String)>,
    query: web::Query<SnapshotQuery>,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let req = parse(path.into_inner(), query.into_inner())?;
    let (host_id, wanted, dir, offset) = (
        req.host_id.clone(),
        req.snapshot.clone(),
        req.dir.clone(),
        req.offset,
    );
    let operator = ctx.can_operate();
    let mut data = with_conn(&state.pool, move |conn| {
        let host = live_host(conn, &host_id)?;
        let snapshot = store::snapshots::find_for_host(conn, &host_id, &wanted)?
            .ok_or_else(|| ApiError::not_found(&format!("snapshot {wanted} of host {host_id}")))?;
        let catalog = catalog::get(conn, &host_id, &snapshot.snapshot_id)?;
        let key = catalog::dir_key(&dir);
        let listing = match &catalog {
            Some(row) if row.is_complete() => {
                Listing::Catalog(browse::list_dir(conn, row.id, &key, PAGE, offset)?)
            }
            Some(row)
                if row.state == catalog::STATE_LIVE && browse::is_cached(conn, row.id, &key)? =>
            {
                Listing::Live(browse::list_dir(conn, row.id, &key, PAGE, offset)?)
            }
            _ => Listing::None,
        };
        let catalog_job = jobs::table
            .filter(jobs::host_id.eq(&host_id))
            .filter(jobs::kind.eq(JobKind::Catalog))
            .filter(jobs::snapshot_id.eq(&snapshot.snapshot_id))
            .order(jobs::created_at.desc())
            .select(Job::as_select())
            .first(conn)
            .optional()?;
        let (targets, target_total) = if operator {
            let filter = store::hosts::HostFilter {
                limit: RESTORE_TARGETS,
                ..Default::default()
            };
            (
                store::hosts::page(conn, &filter)?,
                store::hosts::count(conn, &filter)?,
            )
        } else {
            (Vec::new(), 0)
        };
        Ok(Data {
            host,
            snapshot,
            catalog,
            catalog_job,
            listing,
            targets,
            target_total,
        })
    })
    .await?;
    if matches!(data.listing, Listing::None) && req.live && data.host.online {
        data.listing = match folder(
            &state,
            &req.host_id,
            &data.snapshot.snapshot_id,
            &req.dir,
            PAGE,
            req.offset,
        )
        .await
        {
            Ok((page, true)) => Listing::Catalog(page),
            Ok((page, false)) => Listing::Live(page),
            Err(e) if e.status == StatusCode::NOT_FOUND => return Err(e.into()),
            Err(e) => Listing::Failed(e),
        };
    }
    let title = format!("Snapshot {}", data.snapshot.short_id);
    let body = render(&ctx, &data, &req);
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Hosts, &title, body),
    ))
}

/// The page's own URL for a folder, an offset and the live flag.
pub(super) fn folder_url(
    host_id: &HostId,
    snapshot_id: &str,
    dir: &str,
    offset: i64,
    live: bool,
) -> String {
    let mut url = format!(
        "/hosts/{}/snapshots/{}?path={}",
        encode_query_value(host_id),
        encode_query_value(snapshot_id),
        encode_query_value(dir)
    );
    if offset > 0 {
        url.push_str(&format!("&offset={offset}"));
    }
    if live {
        url.push_str("&live=1");
    }
    url
}

/// Why downloads cannot start now, if they cannot.
fn download_blocker(host: &Host) -> Option<&'static str> {
    if !host.online {
        Some("The host is offline: downloads stream from its agent, so they work once it reconnects.")
    } else if !host.has_capability(crate::protocol::CAPABILITY_DOWNLOAD) {
        Some("The host's agent is too old to stream downloads; update it.")
    } else {
        None
    }
}

fn render(ctx: &PageCtx, data: &Data, req: &Request) -> Markup {
    let host = &data.host;
    let snap = &data.snapshot;
    let host_label = host.display_name.as_deref().unwrap_or(&host.hostname);
    // A running catalog job the script follows, reloading when it ends.
    let following = data
        .catalog_job
        .as_ref()
        .filter(|j| !j.status.is_terminal() && !matches!(data.listing, Listing::Catalog(_)));
    let blocker = download_blocker(host);
    html! {
        div #snapshot-page data-host-id=(host.id) data-snapshot-id=(snap.snapshot_id)
            data-path=(req.dir)
            data-catalog-job=[following.map(|j| j.id.to_string())]
            data-catalog-events=[following.map(|j| format!("/api/v1/jobs/{}/events", j.id))] {
            section #snapshot-facts {
                dl.facts {
                    dt { "Host" } dd { a href={ "/hosts/" (host.id) } { (host_label) } " " (presence_badge(&host.id, host.online)) }
                    dt { "Snapshot" } dd { code title=(snap.snapshot_id) #snapshot-short-id { (snap.short_id) } }
                    dt { "Time" } dd { time datetime=(format::rfc3339(snap.time)) { (format::time(snap.time)) } }
                    dt { "Paths" } dd { @for p in &snap.paths { code { (p) } br; } }
                    @if !snap.tags.is_empty() { dt { "Tags" } dd.tags { @for t in &snap.tags { span.tag { (t) } " " } } }
                    dt { "Size" } dd { (snap.size_bytes.map(format::bytes_i64).unwrap_or_else(|| "—".to_owned())) }
                    dt { "Files" } dd { (snap.file_count.map(|n| n.to_string()).unwrap_or_else(|| "—".to_owned())) }
                    dt { "Catalog" } dd #catalog-state data-state=(catalog_state_key(data)) { (catalog_state(ctx, data)) }
                }
                form.filters #snapshot-search method="get" action="/search" {
                    input type="hidden" name="host_id" value=(host.id);
                    label for="snapshot-search-q" { "Find in this host's catalogued snapshots" }
                    input #snapshot-search-q name="q" type="search" minlength="3" placeholder="part of a path";
                }
            }
            (listing::breadcrumb(data, req))
            @match &data.listing {
                Listing::Catalog(page) => (listing::table(ctx, data, req, page, false, blocker)),
                Listing::Live(page) => (listing::table(ctx, data, req, page, true, blocker)),
                Listing::None => (not_catalogued(data, req, None)),
                Listing::Failed(e) => (not_catalogued(data, req, Some(e))),
            }
            @if ctx.can_operate() {
                (restore::panel(data))
            }
        }
        script src=(super::assets::browse_js_url()) defer {}
    }
}

/// A short key of the catalog state (`complete`, `ingesting`, `queued`,
/// `failed`, `live`, `none`), for tests and styles.
fn catalog_state_key(data: &Data) -> &'static str {
    match (&data.catalog, &data.catalog_job) {
        (Some(row), _) if row.is_complete() => "complete",
        (_, Some(job)) if !job.status.is_terminal() => {
            if job.status == store::JobStatus::Queued {
                "queued"
            } else {
                "ingesting"
            }
        }
        (_, Some(job)) if job.status == store::JobStatus::Failed => "failed",
        (Some(row), _) if row.state == catalog::STATE_LIVE => "live",
        _ => "none",
    }
}

/// The catalog state in words, with the catalog job's link.
fn catalog_state(ctx: &PageCtx, data: &Data) -> Markup {
    let job_link = |job: &Job| html! { a href={ "/jobs/" (job.id) } { "catalog job" } };
    html! {
        @match catalog_state_key(data) {
            "complete" => {
                (badge("succeeded", "catalogued"))
                @if let Some(row) = &data.catalog {
                    " " (format::plural(row.entries, "entry", "entries"))
                    @if let Some(at) = row.completed_at { ", " (format::ago(at, ctx.now)) }
                }
            }
            "queued" => {
                (badge("queued", "waiting"))
                " Not catalogued yet: the "
                @if let Some(job) = &data.catalog_job { (job_link(job)) }
                " runs when the host has nothing else to do."
            }
            "ingesting" => {
                (badge("running", "cataloguing"))
                " Being catalogued: "
                (format::plural(data.catalog.as_ref().map_or(0, |r| r.entries), "entry", "entries")) " stored so far ("
                @if let Some(job) = &data.catalog_job { (job_link(job)) }
                ")."
            }
            "failed" => {
                (badge("failed", "catalog failed"))
                " The "
                @if let Some(job) = &data.catalog_job { (job_link(job)) }
                " failed"
                @if let Some(error) = data.catalog_job.as_ref().and_then(|j| j.error.as_deref()) { ": " (error) }
                "."
            }
            _ => {
                (badge("not-set", "not catalogued"))
                " Only the newest snapshots of each source group are catalogued."
            }
        }
    }
}

/// The place of the listing when the folder is not stored.
fn not_catalogued(data: &Data, req: &Request, failed: Option<&ApiError>) -> Markup {
    let host = &data.host;
    html! {
        section #not-catalogued {
            p { "This folder is not in the catalog, so the server cannot show it without asking the host's agent." }
            @if let Some(e) = failed {
                p.error #listing-error data-code=(e.code) { "The agent could not list it: " (e.message) }
            }
            @if host.online {
                p { a #list-live href=(folder_url(&host.id, &data.snapshot.snapshot_id, &req.dir, 0, true)) {
                    "List this folder now (the agent reads the repository)" } }
            } @else {
                p.muted #live-unavailable { "The host is offline: its agent can list the folder once it reconnects." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(path: Option<&str>, offset: Option<&str>, live: Option<&str>) -> SnapshotQuery {
        SnapshotQuery {
            path: path.map(str::to_owned),
            offset: offset.map(str::to_owned),
            live: live.map(str::to_owned),
        }
    }

    /// The query is checked field by field; the error names the field.
    #[test]
    fn query_is_checked() {
        let ids = || ("h".to_owned(), "s".to_owned());
        let ok = parse(ids(), query(Some("/etc/"), Some("200"), Some("1"))).unwrap();
        assert_eq!((ok.dir.as_str(), ok.offset, ok.live), ("/etc", 200, true));
        let root = parse(ids(), query(Some(""), None, None)).unwrap();
        assert_eq!((root.dir.as_str(), root.offset, root.live), ("/", 0, false));
        for (q, field) in [
            (query(Some("etc"), None, None), "path:"),
            (query(Some("/a/../b"), None, None), "path:"),
            (query(None, Some("-1"), None), "offset:"),
            (query(None, Some("x"), None), "offset:"),
            (query(None, None, Some("yes")), "live:"),
        ] {
            let err = parse(ids(), q).err().unwrap();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.starts_with(field), "{}", err.message);
        }
    }

    /// Folder URLs encode every part and carry offset and live only when set.
    #[test]
    fn folder_urls() {
        assert_eq!(
            folder_url(&HostId::from("h1"), "abc", "/a b/c&d", 0, false),
            "/hosts/h1/snapshots/abc?path=/a%20b/c%26d"
        );
        assert_eq!(
            folder_url(&HostId::from("h1"), "abc", "/", 400, true),
            "/hosts/h1/snapshots/abc?path=/&offset=400&live=1"
        );
    }
}
