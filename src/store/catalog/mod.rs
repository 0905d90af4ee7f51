//! The snapshot catalog (issue 11 §1): what each catalogued snapshot
//! holds, so that browsing a folder and searching paths never touch a
//! repository.
//!
//! Tables (migration `snapshot_catalog`):
//!
//! - `catalog_snapshots`: one row per (host, snapshot) with its state:
//!   [`STATE_INGESTING`] while a `catalog` job streams its entries,
//!   [`STATE_COMPLETE`] once that job succeeded with every entry stored,
//!   [`STATE_LIVE`] when it only holds directories an operator browsed
//!   before the catalog was made (listed live by the agent, cached).
//! - `catalog_entries`: one row per node, the path split into `parent`
//!   (ending with `/`) and `name`, so one folder is one range of the
//!   `(catalog_id, parent, rank, name)` index, directories (`rank` 0)
//!   first.
//! - `catalog_live_dirs`: which directories of a `live` row are cached.
//! - search: SQLite's contentless FTS5 `trigram` table `catalog_fts`
//!   (rowid = entry id), PostgreSQL's `pg_trgm` GIN index on
//!   `parent || name`.
//!
//! Ids of both tables are given here by the one writer (`MAX(id) + 1`),
//! so a batch of entries is one id range the FTS index is filled from in
//! one statement.
//!
//! # Layout
//!
//! - this file: the schema, the rows, path helpers.
//! - [`ingest`]: a job's chunks, its completion with `--catalog-keep`,
//!   dropping a catalog.
//! - [`lifecycle`]: what a `snapshots.report` changes (forgotten
//!   snapshots leave, new ones get a `catalog` job).
//! - [`browse`]: one folder of a snapshot, and the live-listing cache.
//! - [`search`]: the fleet-wide substring search.

use diesel::prelude::*;

use super::json::Json;
use super::DbConnection;
use crate::ids::{HostId, JobId};
pub use crate::protocol::dir_key;

pub mod browse;
pub mod ingest;
pub mod lifecycle;
pub mod search;

/// A job is streaming the snapshot's entries.
pub const STATE_INGESTING: &str = "ingesting";
/// Every entry of the snapshot is stored.
pub const STATE_COMPLETE: &str = "complete";
/// Only directories listed live (and cached) are stored.
pub const STATE_LIVE: &str = "live";

/// The `catalog_keep` default: snapshots catalogued per host and group.
pub const DEFAULT_KEEP: usize = 3;

diesel::table! {
    catalog_snapshots (id) {
        id -> BigInt,
        host_id -> Text,
        snapshot_id -> Text,
        source_group -> Text,
        snapshot_time -> BigInt,
        state -> Text,
        job_id -> Nullable<Text>,
        entries -> BigInt,
        created_at -> BigInt,
        completed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    catalog_entries (id) {
        id -> BigInt,
        catalog_id -> BigInt,
        parent -> Text,
        name -> Text,
        kind -> Text,
        rank -> Integer,
        size -> Nullable<BigInt>,
        mtime -> Nullable<BigInt>,
        mode -> Nullable<BigInt>,
    }
}

diesel::table! {
    catalog_live_dirs (catalog_id, dir) {
        catalog_id -> BigInt,
        dir -> Text,
    }
}

diesel::joinable!(catalog_entries -> catalog_snapshots (catalog_id));
diesel::allow_tables_to_appear_in_same_query!(catalog_snapshots, catalog_entries);

/// A `catalog_snapshots` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = catalog_snapshots)]
pub struct CatalogSnapshot {
    pub id: i64,
    pub host_id: String,
    pub snapshot_id: String,
    /// The snapshot's source group (its first tag; `""` without one).
    pub source_group: String,
    /// When the snapshot was taken (Unix ms).
    pub snapshot_time: i64,
    /// [`STATE_INGESTING`], [`STATE_COMPLETE`] or [`STATE_LIVE`].
    pub state: String,
    /// The `catalog` job whose entries these are.
    pub job_id: Option<String>,
    /// Entries stored.
    pub entries: i64,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

impl CatalogSnapshot {
    /// Whether every entry is stored.
    pub fn is_complete(&self) -> bool {
        self.state == STATE_COMPLETE
    }
}

/// One stored node.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = catalog_entries)]
pub struct Entry {
    /// The folder it is in, ending with `/`.
    pub parent: String,
    pub name: String,
    /// restic's node type (`dir`, `file`, `symlink`, …).
    pub kind: String,
    pub size: Option<i64>,
    /// Modification time (Unix ms).
    pub mtime: Option<i64>,
    pub mode: Option<i64>,
}

impl Entry {
    /// The entry's absolute path.
    pub fn path(&self) -> String {
        format!("{}{}", self.parent, self.name)
    }
}

/// An entry row to insert.
#[derive(Insertable)]
#[diesel(table_name = catalog_entries, treat_none_as_default_value = false)]
struct NewEntry<'a> {
    id: i64,
    catalog_id: i64,
    parent: &'a str,
    name: &'a str,
    kind: &'a str,
    rank: i32,
    size: Option<i64>,
    mtime: Option<i64>,
    mode: Option<i64>,
}

/// Rows per multi-row INSERT of entries on SQLite (9 values each: under
/// its 32,766 bind parameters).
const ENTRY_INSERT_ROWS: usize = 3000;

/// Inserts entry rows: multi-row INSERTs on SQLite; on PostgreSQL one
/// `COPY … FROM STDIN` (binary) for the lot, a round trip rather than one
/// per 3,000 rows and no statement to parse (issue 19).
fn insert_entries(conn: &mut DbConnection, rows: &[NewEntry<'_>]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match conn {
        DbConnection::Sqlite(c) => {
            for part in rows.chunks(ENTRY_INSERT_ROWS) {
                diesel::insert_into(catalog_entries::table)
                    .values(part)
                    .execute(c)?;
            }
        }
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => {
            diesel::copy_from(catalog_entries::table)
                .from_insertable(rows)
                .execute(c)?;
        }
    }
    Ok(())
}

/// Splits an entry's absolute path into its folder key (ending with `/`)
/// and its name: `/etc/nginx` → (`/etc/`, `nginx`), `/etc` → (`/`,
/// `etc`). `None` for the root, a relative path, or a path ending in `/`.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') {
        return None;
    }
    let cut = path.rfind('/')? + 1;
    let (parent, name) = path.split_at(cut);
    (!name.is_empty()).then_some((parent, name))
}

/// Sort rank: directories (0) before everything else (1).
fn rank(kind: &str) -> i32 {
    i32::from(kind != "dir")
}

/// The catalog row of a host's snapshot, if any.
pub fn get(
    conn: &mut DbConnection,
    host_id: &HostId,
    snapshot_id: &str,
) -> QueryResult<Option<CatalogSnapshot>> {
    catalog_snapshots::table
        .filter(catalog_snapshots::host_id.eq(host_id))
        .filter(catalog_snapshots::snapshot_id.eq(snapshot_id))
        .select(CatalogSnapshot::as_select())
        .first(conn)
        .optional()
}

/// A new catalog row (no entries yet).
fn insert_row(
    conn: &mut DbConnection,
    host_id: &HostId,
    snapshot_id: &str,
    state: &str,
    job_id: Option<&JobId>,
    now: i64,
) -> QueryResult<CatalogSnapshot> {
    use super::schema::snapshots;
    let id = catalog_snapshots::table
        .select(diesel::dsl::max(catalog_snapshots::id))
        .get_result::<Option<i64>>(conn)?
        .unwrap_or(0)
        + 1;
    // The snapshot's time and group, from the host's last report (a
    // snapshot not listed there is still catalogued, timeless).
    let listed: Option<(i64, Json<Vec<String>>)> = snapshots::table
        .filter(snapshots::host_id.eq(host_id))
        .filter(snapshots::snapshot_id.eq(snapshot_id))
        .select((snapshots::time, snapshots::tags))
        .first(conn)
        .optional()?;
    let (snapshot_time, Json(tags)) = listed.unwrap_or_default();
    let source_group = lifecycle::group_of(&tags);
    diesel::insert_into(catalog_snapshots::table)
        .values((
            catalog_snapshots::id.eq(id),
            catalog_snapshots::host_id.eq(host_id),
            catalog_snapshots::snapshot_id.eq(snapshot_id),
            catalog_snapshots::source_group.eq(&source_group),
            catalog_snapshots::snapshot_time.eq(snapshot_time),
            catalog_snapshots::state.eq(state),
            catalog_snapshots::job_id.eq(job_id),
            catalog_snapshots::entries.eq(0),
            catalog_snapshots::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(CatalogSnapshot {
        id,
        host_id: host_id.as_str().to_owned(),
        snapshot_id: snapshot_id.to_owned(),
        source_group,
        snapshot_time,
        state: state.to_owned(),
        job_id: job_id.map(|j| j.as_str().to_owned()),
        entries: 0,
        created_at: now,
        completed_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths split into folder key and name; the root and relative paths
    /// have no entry.
    #[test]
    fn paths_split() {
        assert_eq!(split_path("/etc/nginx"), Some(("/etc/", "nginx")));
        assert_eq!(split_path("/etc"), Some(("/", "etc")));
        assert_eq!(split_path("/a b/c d.txt"), Some(("/a b/", "c d.txt")));
        assert_eq!(split_path("/"), None);
        assert_eq!(split_path("etc/x"), None);
        assert_eq!(split_path("/etc/"), None);
        assert_eq!(dir_key("/"), "/");
        assert_eq!(dir_key("/etc"), "/etc/");
        assert_eq!(rank("dir"), 0);
        assert_eq!(rank("file"), 1);
        assert_eq!(rank("symlink"), 1);
    }
}
