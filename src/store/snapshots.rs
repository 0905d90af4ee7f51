//! Queries on `snapshots`: each host's projection of its repository's
//! snapshots, replaced as a whole by every `snapshots.report`.
//!
//! restic before 0.17 reports no size or file count for a snapshot;
//! [`fill_from_backups`] takes them from the summary of the backup job
//! that made it (or from the previous report's row, already filled).

use diesel::prelude::*;

use serde_json::Value;

use super::json::Json;
use super::models::{NewSnapshot, Snapshot};
use super::paged::PagedDsl;
use super::schema::{jobs, snapshots};
use super::types::JobKind;
use super::{per_backend, write_transaction, DbConnection, INSERT_CHUNK_ROWS};
use crate::ids::HostId;

/// The most backup summaries read to fill one report's missing sizes.
const BACKUPS_SCANNED: i64 = 1000;
/// How much earlier than a snapshot's time its backup job may have
/// finished (the agent's clock against the server's).
const CLOCK_SLACK_MS: i64 = 86_400_000;

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

/// A backup summary's snapshot and figures: restic 0.14 writes the short
/// id, 0.17+ the full one.
fn summary_figures(stats: &Value) -> Option<(&str, i64, i64)> {
    let id = stats
        .get("snapshot_id")?
        .as_str()
        .filter(|id| id.len() >= 8)?;
    let bytes = i64::try_from(stats.get("total_bytes_processed")?.as_u64()?).ok()?;
    let files = i64::try_from(stats.get("total_files_processed")?.as_u64()?).ok()?;
    Some((id, bytes, files))
}

fn missing(s: &NewSnapshot) -> bool {
    s.size_bytes.is_none() || s.file_count.is_none()
}

/// Fills the size and file count of `report`'s snapshots that restic did
/// not give (before 0.17): from the host's stored row of the same
/// snapshot when that has them, else from the summary
/// (`total_bytes_processed`, `total_files_processed`) of the host's backup
/// job whose `snapshot_id` names it. Figures restic gave are kept.
pub fn fill_from_backups(
    conn: &mut DbConnection,
    host_id: &str,
    report: &mut [NewSnapshot],
) -> QueryResult<()> {
    let wanted: Vec<&str> = report
        .iter()
        .filter(|s| missing(s))
        .map(|s| s.snapshot_id.as_str())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut known = std::collections::HashMap::new();
    for chunk in wanted.chunks(INSERT_CHUNK_ROWS) {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = snapshots::table
            .filter(snapshots::host_id.eq(host_id))
            .filter(snapshots::snapshot_id.eq_any(chunk))
            .select((
                snapshots::snapshot_id,
                snapshots::size_bytes,
                snapshots::file_count,
            ))
            .load(conn)?;
        for (id, size, files) in rows {
            if let (Some(size), Some(files)) = (size, files) {
                known.insert(id, (size, files));
            }
        }
    }
    let mut oldest = None::<i64>;
    for s in report.iter_mut().filter(|s| missing(s)) {
        match known.get(&s.snapshot_id) {
            Some(&(size, files)) => {
                s.size_bytes.get_or_insert(size);
                s.file_count.get_or_insert(files);
            }
            None => oldest = Some(oldest.map_or(s.time, |t: i64| t.min(s.time))),
        }
    }
    let Some(oldest) = oldest else {
        return Ok(());
    };
    let summaries: Vec<Option<String>> = jobs::table
        .filter(jobs::host_id.eq(host_id))
        .filter(jobs::kind.eq(JobKind::Backup))
        .filter(jobs::stats.is_not_null())
        .filter(jobs::finished_at.ge(oldest - CLOCK_SLACK_MS))
        .order(jobs::finished_at.desc())
        .select(jobs::stats)
        .paged(BACKUPS_SCANNED, 0)
        .load(conn)?;
    let summaries: Vec<Value> = summaries
        .iter()
        .flatten()
        // A summary that is not JSON cannot name a snapshot: skipped.
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect();
    let figures: Vec<(&str, i64, i64)> = summaries.iter().filter_map(summary_figures).collect();
    for s in report.iter_mut().filter(|s| missing(s)) {
        if let Some(&(_, size, files)) = figures
            .iter()
            .find(|(id, _, _)| s.snapshot_id.starts_with(id))
        {
            s.size_bytes.get_or_insert(size);
            s.file_count.get_or_insert(files);
        }
    }
    Ok(())
}

/// The host's snapshots whose full id or short id is `id` (at most three:
/// several rows mean a short id shared by several snapshots).
pub fn matching_for_host(
    conn: &mut DbConnection,
    host_id: &HostId,
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
    host_id: &HostId,
    id: &str,
) -> QueryResult<Option<Snapshot>> {
    let mut found = matching_for_host(conn, host_id, id)?;
    if let Some(at) = found.iter().position(|s| s.snapshot_id == id) {
        return Ok(Some(found.swap_remove(at)));
    }
    Ok((found.len() == 1).then(|| found.swap_remove(0)))
}
