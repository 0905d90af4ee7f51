//! Queries on `snapshots`: each host's projection of its repository's
//! snapshots, replaced as a whole by every `snapshots.report`.

use diesel::prelude::*;

use super::json::Json;
use super::models::{NewSnapshot, Snapshot};
use super::schema::snapshots;
use super::{per_backend, write_transaction, DbConnection, INSERT_CHUNK_ROWS};

/// A snapshot row to insert. `None` writes NULL rather than DEFAULT, which
/// SQLite's multi-row VALUES needs.
#[derive(Insertable)]
#[diesel(table_name = snapshots, treat_none_as_default_value = false)]
struct Row<'a> {
    host_id: &'a str,
    snapshot_id: &'a str,
    short_id: &'a str,
    time: i64,
    hostname: &'a str,
    paths: Json<&'a [String]>,
    tags: Json<&'a [String]>,
    size_bytes: Option<i64>,
    file_count: Option<i64>,
    reported_at: i64,
}

/// Replaces the host's snapshots with this report's, in one transaction
/// (readers see the old list or the new one, never a mix); a snapshot id
/// listed twice is stored once. Returns how many are stored. Replaying the
/// same report gives the same rows.
pub fn replace_for_host(
    conn: &mut DbConnection,
    host_id: &str,
    report: &[NewSnapshot],
    reported_at: i64,
) -> QueryResult<usize> {
    write_transaction(conn, |conn| {
        diesel::delete(snapshots::table.filter(snapshots::host_id.eq(host_id))).execute(conn)?;
        let rows: Vec<Row<'_>> = report
            .iter()
            .map(|s| Row {
                host_id,
                snapshot_id: &s.snapshot_id,
                short_id: &s.short_id,
                time: s.time,
                hostname: &s.hostname,
                paths: Json(&s.paths),
                tags: Json(&s.tags),
                size_bytes: s.size_bytes,
                file_count: s.file_count,
                reported_at,
            })
            .collect();
        let mut stored = 0;
        for chunk in rows.chunks(INSERT_CHUNK_ROWS) {
            // Multi-row insert ignoring duplicates: per backend.
            stored += per_backend!(&mut *conn, |c| diesel::insert_into(snapshots::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(c))?;
        }
        Ok(stored)
    })
}

/// The host's snapshots whose full id or short id is `id` (at most three:
/// several rows mean a short id shared by several snapshots).
pub fn matching_for_host(
    conn: &mut DbConnection,
    host_id: &str,
    id: &str,
) -> QueryResult<Vec<Snapshot>> {
    snapshots::table
        .filter(snapshots::host_id.eq(host_id))
        .filter(snapshots::snapshot_id.eq(id).or(snapshots::short_id.eq(id)))
        .order(snapshots::snapshot_id.asc())
        .limit(3)
        .select(Snapshot::as_select())
        .load(conn)
}

/// The host's snapshots, newest first.
pub fn list_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<Snapshot>> {
    snapshots::table
        .filter(snapshots::host_id.eq(host_id))
        .order((snapshots::time.desc(), snapshots::snapshot_id.asc()))
        .select(Snapshot::as_select())
        .load(conn)
}

/// The host's snapshot `id`: restic's full id, or its short id when that
/// names exactly one of the host's snapshots.
pub fn find_for_host(
    conn: &mut DbConnection,
    host_id: &str,
    id: &str,
) -> QueryResult<Option<Snapshot>> {
    let mut found = matching_for_host(conn, host_id, id)?;
    if let Some(at) = found.iter().position(|s| s.snapshot_id == id) {
        return Ok(Some(found.swap_remove(at)));
    }
    Ok((found.len() == 1).then(|| found.swap_remove(0)))
}
