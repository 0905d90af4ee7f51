//! The file browser of the snapshot page: the breadcrumb of the folder,
//! one page of its entries (directories first, with size, time and, for
//! operators, a checkbox and a Download button), and the pager.

use maud::{html, Markup};

use super::{folder_url, Data, Request, PAGE};
use crate::http::ui::{encode_query_value, format, PageCtx};
use crate::store::catalog::Entry;
use crate::store::Page;

/// `/` → `[("/", "/")]`; `/a/b` → `[("/", "/"), ("a", "/a"), ("b", "/a/b")]`.
fn crumbs(dir: &str) -> Vec<(&str, String)> {
    let mut out = vec![("/", "/".to_owned())];
    let mut at = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        out.push((part, at.clone()));
    }
    out
}

pub(super) fn breadcrumb(data: &Data, req: &Request) -> Markup {
    let crumbs = crumbs(&req.dir);
    let last = crumbs.len() - 1;
    let live = req.live;
    html! {
        nav #breadcrumb aria-label="Folder" {
            @for (i, (name, path)) in crumbs.iter().enumerate() {
                @if i > 1 { span.sep { "/" } }
                @if i == last {
                    strong aria-current="page" data-crumb=(path) { (name) }
                } @else {
                    a href=(folder_url(&data.host.id, &data.snapshot.snapshot_id, path, 0, live)) data-crumb=(path) { (name) }
                }
            }
        }
    }
}

/// The download route of a path in the snapshot.
pub(super) fn download_url(data: &Data, path: &str) -> String {
    format!(
        "/api/v1/hosts/{}/snapshots/{}/download?path={}",
        encode_query_value(&data.host.id),
        encode_query_value(&data.snapshot.snapshot_id),
        encode_query_value(path)
    )
}

/// A Download control for `path`: a link to the route, or a disabled
/// button saying why not.
pub(super) fn download_control(
    data: &Data,
    path: &str,
    label: &str,
    blocker: Option<&str>,
    id: Option<&str>,
) -> Markup {
    html! {
        @match blocker {
            None => a.button id=[id] href=(download_url(data, path)) download="" data-download=(path) { (label) },
            Some(why) => button id=[id] type="button" disabled title=(why) data-download-blocked=(path) { (label) },
        }
    }
}

/// Whether an entry can be downloaded (a folder as a tar, a file as
/// itself; the route refuses links and devices).
fn downloadable(kind: &str) -> bool {
    matches!(kind, "dir" | "file")
}

pub(super) fn table(
    ctx: &PageCtx,
    data: &Data,
    req: &Request,
    page: &Page<Entry>,
    live: bool,
    blocker: Option<&str>,
) -> Markup {
    let operator = ctx.can_operate();
    let shown = i64::try_from(page.items.len()).unwrap_or(0);
    let first = if shown == 0 { 0 } else { req.offset + 1 };
    let last = req.offset + shown;
    let snapshot_id = &data.snapshot.snapshot_id;
    html! {
        section #folder data-total=(page.total) data-offset=(req.offset) data-shown=(shown)
            data-source=(if live { "live" } else { "catalog" }) {
            @if live {
                p.muted #live-note { "Listed live by the host's agent: this snapshot is not catalogued." }
            }
            @if operator {
                div.actions #folder-actions {
                    (download_control(data, &req.dir, "Download this folder", blocker, Some("download-folder")))
                    @if page.total > shown {
                        button #select-folder type="button" data-select-path=(req.dir) {
                            "Select the whole folder (" (format::plural(page.total, "entry", "entries")) ")" }
                    }
                }
                @if let Some(why) = blocker { p.muted #download-unavailable { (why) } }
            }
            @if page.items.is_empty() {
                p.muted #empty-folder { @if page.total > 0 { "No entries at this offset." } @else { "This folder is empty." } }
            } @else {
                table #file-browser {
                    thead { tr {
                        @if operator {
                            th.select { input #select-all type="checkbox" title="Select all in this folder"
                                aria-label="Select all in this folder"; }
                        }
                        th { "Name" } th { "Type" } th.num { "Size" } th { "Modified" }
                        @if operator { th { "" } }
                    } }
                    tbody {
                        @for e in &page.items {
                            @let path = e.path();
                            tr data-entry=(path) data-type=(e.kind) {
                                @if operator {
                                    td.select { input.select-entry type="checkbox" value=(path) aria-label={ "Select " (e.name) }; }
                                }
                                td.name {
                                    @if e.kind == "dir" {
                                        a.dir href=(folder_url(&data.host.id, snapshot_id, &path, 0, live)) { (e.name) "/" }
                                    } @else {
                                        span.file { (e.name) }
                                    }
                                }
                                td { (e.kind) }
                                td.num { (e.size.map(format::bytes_i64).unwrap_or_default()) }
                                td { @if let Some(at) = e.mtime { time datetime=(format::rfc3339(at)) { (format::time(at)) } } }
                                @if operator {
                                    td.actions { @if downloadable(&e.kind) { (download_control(data, &path, "Download", blocker, None)) } }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager #folder-pager {
                span.muted { "Entries " (first) "–" (last) " of " (page.total) }
                @if req.offset > 0 {
                    a #page-prev href=(folder_url(&data.host.id, snapshot_id, &req.dir, (req.offset - PAGE).max(0), live)) { "← Previous" }
                }
                @if last < page.total {
                    a #page-next href=(folder_url(&data.host.id, snapshot_id, &req.dir, req.offset + PAGE, live)) { "Next →" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The breadcrumb has the root and one link per folder level.
    #[test]
    fn breadcrumb_levels() {
        assert_eq!(crumbs("/"), vec![("/", "/".to_owned())]);
        assert_eq!(
            crumbs("/a b/c"),
            vec![
                ("/", "/".to_owned()),
                ("a b", "/a b".to_owned()),
                ("c", "/a b/c".to_owned())
            ]
        );
    }
}
