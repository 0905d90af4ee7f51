//! One folder of a snapshot ([`list_dir`]: one range of the folder
//! index, directories first, paged), and the cache of folders an agent
//! listed live for a snapshot that is not catalogued ([`is_cached`],
//! [`cache_dir`]).

use diesel::prelude::*;

use super::{
    catalog_entries, catalog_live_dirs, get, insert_entries, insert_row, rank, split_path, Entry,
    NewEntry, STATE_LIVE,
};
use crate::ids::HostId;
use crate::protocol::CatalogEntry;
use crate::store::{write_transaction, DbConnection, Page};

/// One page of the folder `dir_key` (ending with `/`) of a catalog,
/// directories first, then by name; with the folder's entry count.
pub fn list_dir(
    conn: &mut DbConnection,
    catalog_id: i64,
    dir_key: &str,
    limit: i64,
    offset: i64,
) -> QueryResult<Page<Entry>> {
    let folder = || {
        catalog_entries::table
            .filter(catalog_entries::catalog_id.eq(catalog_id))
            .filter(catalog_entries::parent.eq(dir_key))
    };
    let total = folder().count().get_result(conn)?;
    let items = folder()
        .order((catalog_entries::rank.asc(), catalog_entries::name.asc()))
        .limit(limit)
        .offset(offset)
        .select(Entry::as_select())
        .load(conn)?;
    Ok(Page { items, total })
}

/// Whether a folder of a `live` catalog row was listed and cached.
pub fn is_cached(conn: &mut DbConnection, catalog_id: i64, dir_key: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        catalog_live_dirs::table
            .filter(catalog_live_dirs::catalog_id.eq(catalog_id))
            .filter(catalog_live_dirs::dir.eq(dir_key)),
    ))
    .get_result(conn)
}

/// Caches a folder the agent listed live: the snapshot's row is made
/// `live` if it has none; a row being catalogued or catalogued already is
/// left alone (returns false). Entries outside the folder are skipped.
pub fn cache_dir(
    conn: &mut DbConnection,
    host_id: &HostId,
    snapshot_id: &str,
    dir_key: &str,
    entries: &[CatalogEntry],
    now: i64,
) -> QueryResult<bool> {
    write_transaction(conn, |conn| {
        let row = match get(conn, host_id, snapshot_id)? {
            Some(row) if row.state == STATE_LIVE => row,
            Some(_) => return Ok(false),
            None => insert_row(conn, host_id, snapshot_id, STATE_LIVE, None, now)?,
        };
        if is_cached(conn, row.id, dir_key)? {
            return Ok(true);
        }
        let mut next_id = catalog_entries::table
            .select(diesel::dsl::max(catalog_entries::id))
            .get_result::<Option<i64>>(conn)?
            .unwrap_or(0)
            + 1;
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            match split_path(&entry.path) {
                Some((parent, name)) if parent == dir_key => {
                    rows.push(NewEntry {
                        id: next_id,
                        catalog_id: row.id,
                        parent,
                        name,
                        kind: &entry.kind,
                        rank: rank(&entry.kind),
                        size: entry.size.and_then(|s| i64::try_from(s).ok()),
                        mtime: entry.mtime.map(|t| t.timestamp_millis()),
                        mode: entry.mode.map(i64::from),
                    });
                    next_id += 1;
                }
                _ => {}
            }
        }
        insert_entries(conn, &rows)?;
        diesel::insert_into(catalog_live_dirs::table)
            .values((
                catalog_live_dirs::catalog_id.eq(row.id),
                catalog_live_dirs::dir.eq(dir_key),
            ))
            .execute(conn)?;
        Ok(true)
    })
}
