//! The snapshot catalog's routes (issue 11 §1):
//!
//! - `GET /hosts/{id}/snapshots/{snapshot_id}/tree?path=&limit=&offset=`:
//!   one folder of a snapshot, directories first. A catalogued snapshot
//!   answers from the catalog; any other asks the agent for that folder
//!   now (`catalog.list`, [`ListDirectory`]), waits at most
//!   `live_list_timeout` (504 then), answers 409 `host_offline` when the
//!   agent is not connected, and caches what the agent listed.
//! - `GET /catalog/search?q=&host_id=&limit=&offset=`: catalogued entries
//!   whose path contains `q`, case-insensitively, across the fleet.
//!
//! Viewers may read both: they show names, sizes and times, never file
//! contents.

use actix_web::http::StatusCode;
use actix_web::web;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::table::Endpoint;
use super::{PageQuery, DEFAULT_LIMIT};
use crate::actors::host_session::{ask, AskError, ListDirectory, ListingError};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Time};
use crate::http::AppState;
use crate::ids::HostId;
use crate::protocol::{dir_key, CatalogEntry};
use crate::store::catalog::{self, browse, search, Entry};
use crate::store::{self, DbConnection, Page};

/// The longest `path` accepted.
const MAX_PATH_LEN: usize = 4096;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/snapshots/{snapshot_id}/tree", |r| r.to(tree))
            .summary("One folder of a snapshot, directories first")
            .describe(
                "From the catalog when the snapshot is catalogued (`catalogued: true`); \
                 otherwise the host's agent lists the folder now (answered within the \
                 request, cached for the next time), 409 `host_offline` when it is not \
                 connected, 504 when it does not answer within 60 s.",
            )
            .role(Role::Viewer)
            .query("path", "string", "The folder, absolute (default `/`).")
            .paged()
            .ok(200, "SnapshotTree")
            .error(404, "No such host, or no such snapshot of it.")
            .error(409, "`host_offline`: the snapshot is not catalogued and the agent is not connected; `agent_lacks_capability`: its agent did not declare `catalog`.")
            .error(504, "The agent did not list the folder within 60 s."),
        Endpoint::get("/catalog/search", |r| r.to(search_route))
            .summary("Catalogued entries whose path contains a text, across the fleet")
            .role(Role::Viewer)
            .query("q", "string", "The text (at least 3 characters), matched case-insensitively anywhere in the path.")
            .query("host_id", "string", "Only this host's snapshots.")
            .paged()
            .ok(200, "CatalogSearchResult"),
    ]
}

/// One entry of a folder.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TreeEntry)]
pub(super) struct TreeEntryDto {
    name: String,
    /// Absolute path inside the snapshot.
    path: String,
    /// `dir`, `file` or `symlink` (restic's other node types as restic
    /// names them: `dev`, `chardev`, `fifo`, `socket`, `irregular`).
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    /// Bytes (files only).
    size: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    mtime: Option<Time>,
}

impl TreeEntryDto {
    fn of(entry: Entry) -> Self {
        TreeEntryDto {
            path: entry.path(),
            name: entry.name,
            kind: entry.kind,
            size: entry.size,
            mtime: Time::opt(entry.mtime),
        }
    }
}

/// A page of one folder.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SnapshotTree)]
pub(super) struct TreeDto {
    items: Vec<TreeEntryDto>,
    /// Entries in the folder.
    total: i64,
    /// Whether the answer comes from a complete catalog (false: listed
    /// live by the agent, or from its cache).
    catalogued: bool,
}

/// One search match.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CatalogHit)]
pub(super) struct HitDto {
    host_id: String,
    snapshot_id: String,
    #[schema(value_type = String, format = DateTime)]
    snapshot_time: Time,
    path: String,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    size: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    mtime: Option<Time>,
}

#[derive(Debug, Deserialize)]
struct TreeQuery {
    path: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `path`: absolute, no NUL, no `.` or `..` segment; a trailing `/` is
/// dropped. Absent: `/`.
pub(crate) fn parse_dir(path: Option<&str>) -> Result<String, ApiError> {
    let Some(path) = path else {
        return Ok("/".to_owned());
    };
    if path.is_empty() || !path.starts_with('/') {
        return Err(ApiError::validation(
            "path: must be an absolute path such as /etc",
        ));
    }
    if path.len() > MAX_PATH_LEN || path.contains('\0') {
        return Err(ApiError::validation(format!(
            "path: must be at most {MAX_PATH_LEN} bytes without NUL"
        )));
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(ApiError::validation(
            "path: must not contain . or .. segments",
        ));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

/// What the database holds for a folder.
enum Stored {
    /// The snapshot's full id, and the page when the folder is stored.
    Page { page: Page<Entry>, catalogued: bool },
    /// Not stored: list it live (the snapshot's full id).
    Live(String),
}

/// The host's snapshot with this full or short id (its full id), 404
/// otherwise.
fn snapshot_of(conn: &mut DbConnection, host_id: &HostId, id: &str) -> Result<String, ApiError> {
    use crate::store::schema::snapshots;
    snapshots::table
        .filter(snapshots::host_id.eq(host_id))
        .filter(snapshots::snapshot_id.eq(id).or(snapshots::short_id.eq(id)))
        .select(snapshots::snapshot_id)
        .first::<String>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found(&format!("snapshot {id} of host {host_id}")))
}

async fn tree(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
    query: web::Query<TreeQuery>,
) -> Result<web::Json<TreeDto>, ApiError> {
    who.require(Role::Viewer)?;
    let (host_id, snapshot) = path.into_inner();
    let host_id = HostId::from(host_id);
    let TreeQuery {
        path,
        limit,
        offset,
    } = query.into_inner();
    let dir = parse_dir(path.as_deref())?;
    let (limit, offset) = PageQuery { limit, offset }.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let (page, catalogued) = folder(&state, &host_id, &snapshot, &dir, limit, offset).await?;
    Ok(web::Json(TreeDto {
        items: page.items.into_iter().map(TreeEntryDto::of).collect(),
        total: page.total,
        catalogued,
    }))
}

/// One page of the folder `dir` (checked by [`parse_dir`]) of a host's
/// snapshot (full or short id), and whether it comes from a complete
/// catalog: from the database when catalogued or cached, else listed
/// live by the agent (and cached). The tree route and the UI's snapshot
/// page share it.
pub(crate) async fn folder(
    state: &AppState,
    host_id: &HostId,
    snapshot: &str,
    dir: &str,
    limit: i64,
    offset: i64,
) -> Result<(Page<Entry>, bool), ApiError> {
    let key = dir_key(dir);
    let (host, key_read, snapshot) = (host_id.clone(), key.clone(), snapshot.to_owned());
    let stored = with_conn(&state.pool, move |conn| {
        live_host(conn, &host)?;
        let full_id = snapshot_of(conn, &host, &snapshot)?;
        let row = catalog::get(conn, &host, &full_id)?;
        let cached = match &row {
            Some(row) if row.is_complete() => Some((row.id, true)),
            Some(row) if row.state == catalog::STATE_LIVE => {
                browse::is_cached(conn, row.id, &key_read)?.then_some((row.id, false))
            }
            _ => None,
        };
        Ok(match cached {
            Some((id, catalogued)) => Stored::Page {
                page: browse::list_dir(conn, id, &key_read, limit, offset)?,
                catalogued,
            },
            None => Stored::Live(full_id),
        })
    })
    .await?;
    Ok(match stored {
        Stored::Page { page, catalogued } => (page, catalogued),
        Stored::Live(full_id) => {
            let entries = list_live(state, host_id, &full_id, dir).await?;
            cache(state, host_id, &full_id, &key, &entries).await;
            (live_page(entries, limit, offset), false)
        }
    })
}

/// Asks the host's agent for one folder, within the configured time.
async fn list_live(
    state: &AppState,
    host_id: &HostId,
    snapshot_id: &str,
    dir: &str,
) -> Result<Vec<CatalogEntry>, ApiError> {
    let offline =
        || ApiError::host_offline(host_id, "listing a snapshot that is not catalogued yet");
    let session = state.actors.sessions.get(host_id).ok_or_else(offline)?;
    let timeout = state.config.live_list_timeout;
    let answer = ask(&session, timeout, |reply| ListDirectory {
        snapshot_id: snapshot_id.to_owned(),
        path: dir.to_owned(),
        reply,
    })
    .await;
    match answer {
        Err(AskError::Timeout) => Err(ApiError::agent_timeout(format!(
            "the agent of host {host_id} did not list {dir} within {} s; try again, or wait for the snapshot to be catalogued",
            timeout.as_secs()
        ))),
        Err(AskError::Offline) | Ok(Err(ListingError::Offline)) => Err(offline()),
        Ok(Err(ListingError::LacksCapability(e))) => Err(ApiError::lacks_capability(&e)),
        Ok(Err(ListingError::Busy)) => Err(ApiError::unavailable(ListingError::Busy.to_string())),
        Ok(Err(error @ ListingError::TooLarge)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "folder_too_large",
            error.to_string(),
        )),
        Ok(Err(ListingError::Agent(message))) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_error",
            format!("the agent could not list {dir}: {message}"),
        )),
        Ok(Ok(entries)) => Ok(entries),
    }
}

/// Caches a live answer (best effort: a failure is logged, the answer
/// still goes out).
async fn cache(
    state: &AppState,
    host_id: &HostId,
    snapshot_id: &str,
    key: &str,
    entries: &[CatalogEntry],
) {
    let (host, snapshot, key, entries) = (
        host_id.clone(),
        snapshot_id.to_owned(),
        key.to_owned(),
        entries.to_vec(),
    );
    let written = state
        .actors
        .write("caching a live folder listing", move |conn| {
            Ok::<_, ApiError>(browse::cache_dir(
                conn,
                &host,
                &snapshot,
                &key,
                &entries,
                store::now_ms(),
            )?)
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(host_id = %host_id, snapshot_id, error = %e, "cannot cache a live listing");
    }
}

/// A page of a live answer, ordered as the catalog orders a folder.
fn live_page(entries: Vec<CatalogEntry>, limit: i64, offset: i64) -> Page<Entry> {
    let mut items: Vec<Entry> = entries
        .into_iter()
        .filter_map(|e| {
            let (parent, name) = catalog::split_path(&e.path)?;
            Some(Entry {
                parent: parent.to_owned(),
                name: name.to_owned(),
                size: e.size.and_then(|s| i64::try_from(s).ok()),
                mtime: e.mtime.map(|t| t.timestamp_millis()),
                mode: e.mode.map(i64::from),
                kind: e.kind,
            })
        })
        .collect();
    items.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(0);
    Page {
        items: items.into_iter().skip(skip).take(take).collect(),
        total,
    }
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    host_id: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

async fn search_route(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<SearchQuery>,
) -> Result<web::Json<super::List<HitDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let SearchQuery {
        q,
        host_id,
        limit,
        offset,
    } = query.into_inner();
    let q = q.unwrap_or_default();
    if q.trim().is_empty() {
        return Err(ApiError::validation(
            "q: required, the text to find in paths",
        ));
    }
    if q.chars().count() < search::MIN_QUERY_CHARS {
        return Err(ApiError::validation(format!(
            "q: must be at least {} characters (the trigram index cannot search shorter text)",
            search::MIN_QUERY_CHARS
        )));
    }
    if q.len() > MAX_PATH_LEN || q.contains('\0') {
        return Err(ApiError::validation(format!(
            "q: must be at most {MAX_PATH_LEN} bytes without NUL"
        )));
    }
    let host_id = host_id.filter(|h| !h.is_empty());
    let (limit, offset) = PageQuery { limit, offset }.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let page = with_conn(&state.pool, move |conn| {
        if let Some(host) = &host_id {
            live_host(conn, host)?;
        }
        Ok(search::search(conn, &q, host_id.as_deref(), limit, offset)?)
    })
    .await?;
    let items = page
        .items
        .into_iter()
        .map(|hit| HitDto {
            path: hit.path(),
            host_id: hit.host_id,
            snapshot_id: hit.snapshot_id,
            snapshot_time: Time(hit.snapshot_time),
            kind: hit.kind,
            size: hit.size,
            mtime: Time::opt(hit.mtime),
        })
        .collect();
    Ok(web::Json(super::List {
        items,
        total: page.total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `path` must be absolute, without NUL or dot segments; trailing
    /// slashes are dropped; absent is the root.
    #[test]
    fn dir_parameter() {
        assert_eq!(parse_dir(None).unwrap(), "/");
        assert_eq!(parse_dir(Some("/")).unwrap(), "/");
        assert_eq!(parse_dir(Some("/etc/")).unwrap(), "/etc");
        assert_eq!(parse_dir(Some("/a b/c")).unwrap(), "/a b/c");
        for bad in ["", "etc", "/etc/../root", "/./x", "/a\0b"] {
            let err = parse_dir(Some(bad)).unwrap_err();
            assert!(err.message.starts_with("path:"), "{bad:?}: {}", err.message);
        }
    }

    /// A live answer is ordered directories first, then by name, and paged.
    #[test]
    fn live_answers_are_ordered_and_paged() {
        let entry = |path: &str, kind: &str| CatalogEntry {
            path: path.to_owned(),
            kind: kind.to_owned(),
            size: None,
            mtime: None,
            mode: None,
        };
        let entries = vec![
            entry("/d/b.txt", "file"),
            entry("/d/z", "dir"),
            entry("/d/a", "symlink"),
            entry("/d/c", "dir"),
        ];
        let page = live_page(entries, 3, 0);
        let names: Vec<&str> = page.items.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["c", "z", "a"]);
        assert_eq!(page.total, 4);
    }
}
