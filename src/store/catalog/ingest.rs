//! Filling and emptying the catalog: a batch of `catalog.chunk`s in one
//! transaction ([`append_chunks`]), a `catalog` job's completion with the
//! `--catalog-keep` bound ([`complete`]), and dropping a snapshot's
//! catalog ([`drop_catalog`]).
//!
//! A chunk of another job than the one a row is being filled by (a job
//! that yielded and was queued again, a live row) starts the row over; a
//! chunk for a complete row is ignored. Completion checks the count the
//! agent reported against the rows stored, so a chunk lost on the way
//! (a reconnect in the middle) never leaves a catalog that looks whole.

use std::collections::HashMap;

use diesel::prelude::*;

use super::{
    catalog_entries, catalog_live_dirs, catalog_snapshots, get, insert_entries, insert_row, rank,
    split_path, CatalogSnapshot, NewEntry, STATE_COMPLETE, STATE_INGESTING,
};
use crate::ids::{HostId, JobId};
use crate::protocol::CatalogEntry;
use crate::store::schema::jobs;
use crate::store::{write_transaction, DbConnection, JobKind, JobStatus};

/// The error of a queued `catalog` job made pointless by another job of
/// the same snapshot completing.
pub const ALREADY_CATALOGUED: &str = "the snapshot is catalogued already";

/// One `catalog.chunk` as the writer buffers it.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub host_id: HostId,
    pub job_id: JobId,
    pub snapshot_id: String,
    pub entries: Vec<CatalogEntry>,
}

/// What a batch of chunks did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Entries stored.
    pub stored: usize,
    /// Entries ignored: of a complete catalog, or without a usable path.
    pub ignored: usize,
}

/// Stores a batch of chunks (any hosts, any jobs) in one transaction:
/// multi-row inserts of the entries, then the search index of the new id
/// range in one statement.
pub fn append_chunks(conn: &mut DbConnection, chunks: &[Chunk], now: i64) -> QueryResult<Appended> {
    write_transaction(conn, |conn| {
        let first_id = catalog_entries::table
            .select(diesel::dsl::max(catalog_entries::id))
            .get_result::<Option<i64>>(conn)?
            .unwrap_or(0)
            + 1;
        let mut next_id = first_id;
        let mut outcome = Appended::default();
        // (host, snapshot) → the row being filled, or None to ignore.
        let mut rows: HashMap<(&str, &str), Option<i64>> = HashMap::new();
        let mut counts: HashMap<i64, i64> = HashMap::new();
        for chunk in chunks {
            let key = (chunk.host_id.as_str(), chunk.snapshot_id.as_str());
            let catalog_id = match rows.get(&key) {
                Some(id) => *id,
                None => {
                    let id = row_for_job(conn, chunk, now)?;
                    rows.insert(key, id);
                    id
                }
            };
            let Some(catalog_id) = catalog_id else {
                outcome.ignored += chunk.entries.len();
                continue;
            };
            let mut batch = Vec::with_capacity(chunk.entries.len());
            for entry in &chunk.entries {
                let Some((parent, name)) = split_path(&entry.path) else {
                    outcome.ignored += 1;
                    continue;
                };
                batch.push(NewEntry {
                    id: next_id,
                    catalog_id,
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
            insert_entries(conn, &batch)?;
            *counts.entry(catalog_id).or_default() += i64::try_from(batch.len()).unwrap_or(0);
            outcome.stored += batch.len();
        }
        for (catalog_id, added) in counts {
            diesel::update(catalog_snapshots::table.find(catalog_id))
                .set(catalog_snapshots::entries.eq(catalog_snapshots::entries + added))
                .execute(conn)?;
        }
        if next_id > first_id {
            index_range(conn, first_id, next_id - 1)?;
        }
        Ok(outcome)
    })
}

/// The row a chunk's entries go to: created for a first chunk, started
/// over for a chunk of another job, `None` for a complete catalog.
fn row_for_job(conn: &mut DbConnection, chunk: &Chunk, now: i64) -> QueryResult<Option<i64>> {
    let row = get(conn, &chunk.host_id, &chunk.snapshot_id)?;
    match row {
        None => Ok(Some(
            insert_row(
                conn,
                &chunk.host_id,
                &chunk.snapshot_id,
                STATE_INGESTING,
                Some(&chunk.job_id),
                now,
            )?
            .id,
        )),
        Some(row) if row.is_complete() => Ok(None),
        Some(row) if row.job_id.as_deref() == Some(chunk.job_id.as_str()) => Ok(Some(row.id)),
        Some(row) => {
            clear_entries(conn, row.id)?;
            diesel::update(catalog_snapshots::table.find(row.id))
                .set((
                    catalog_snapshots::state.eq(STATE_INGESTING),
                    catalog_snapshots::job_id.eq(&chunk.job_id),
                    catalog_snapshots::entries.eq(0),
                ))
                .execute(conn)?;
            Ok(Some(row.id))
        }
    }
}

/// Adds entries `first..=last` to the search index (SQLite's FTS5 table;
/// PostgreSQL's trigram index follows the table by itself).
fn index_range(conn: &mut DbConnection, first: i64, last: i64) -> QueryResult<()> {
    use diesel::sql_types::BigInt;
    match conn {
        DbConnection::Sqlite(c) => {
            diesel::sql_query(
                "INSERT INTO catalog_fts (rowid, path) \
                 SELECT id, parent || name FROM catalog_entries WHERE id BETWEEN ? AND ?",
            )
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(last)
            .execute(c)?;
        }
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => {}
    }
    Ok(())
}

/// Removes a row's entries (and their search index and cached folders),
/// keeping the row.
fn clear_entries(conn: &mut DbConnection, catalog_id: i64) -> QueryResult<()> {
    use diesel::sql_types::BigInt;
    match conn {
        DbConnection::Sqlite(c) => {
            diesel::sql_query(
                "DELETE FROM catalog_fts WHERE rowid IN \
                 (SELECT id FROM catalog_entries WHERE catalog_id = ?)",
            )
            .bind::<BigInt, _>(catalog_id)
            .execute(c)?;
        }
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => {}
    }
    diesel::delete(catalog_entries::table.filter(catalog_entries::catalog_id.eq(catalog_id)))
        .execute(conn)?;
    diesel::delete(catalog_live_dirs::table.filter(catalog_live_dirs::catalog_id.eq(catalog_id)))
        .execute(conn)?;
    Ok(())
}

/// Drops a snapshot's catalog: its entries, their index, the row.
pub fn drop_catalog(conn: &mut DbConnection, catalog_id: i64) -> QueryResult<()> {
    clear_entries(conn, catalog_id)?;
    diesel::delete(catalog_snapshots::table.find(catalog_id)).execute(conn)?;
    Ok(())
}

/// What completing a `catalog` job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The snapshot is catalogued; older catalogs of its group beyond
    /// `keep` were dropped (their snapshot ids).
    Complete { dropped: Vec<String> },
    /// The stored entries do not match the agent's count (a chunk was
    /// lost): the partial catalog was dropped.
    Incomplete { stored: i64, reported: u64 },
    /// Nothing was stored for this job (another job took the row over,
    /// or the catalog was complete already).
    NotFilled,
}

/// A `catalog` job succeeded having listed `reported` entries (its
/// `job.finished` stats): its row becomes complete, the catalogs of the
/// same host and group past the newest `keep` are dropped, and queued
/// `catalog` jobs of the same snapshot are cancelled. Call inside the
/// transaction that finishes the job.
pub fn complete(
    conn: &mut DbConnection,
    host_id: &HostId,
    snapshot_id: &str,
    job_id: &JobId,
    reported: Option<u64>,
    keep: usize,
    now: i64,
) -> QueryResult<Completion> {
    let row = match get(conn, host_id, snapshot_id)? {
        Some(row) if row.job_id.as_deref() == Some(job_id) && !row.is_complete() => row,
        None if reported == Some(0) => insert_row(
            conn,
            host_id,
            snapshot_id,
            STATE_INGESTING,
            Some(job_id),
            now,
        )?,
        _ => return Ok(Completion::NotFilled),
    };
    if let Some(reported) = reported {
        if u64::try_from(row.entries).ok() != Some(reported) {
            drop_catalog(conn, row.id)?;
            return Ok(Completion::Incomplete {
                stored: row.entries,
                reported,
            });
        }
    }
    diesel::update(catalog_snapshots::table.find(row.id))
        .set((
            catalog_snapshots::state.eq(STATE_COMPLETE),
            catalog_snapshots::completed_at.eq(now),
        ))
        .execute(conn)?;
    diesel::update(
        jobs::table
            .filter(jobs::host_id.eq(host_id))
            .filter(jobs::kind.eq(JobKind::Catalog))
            .filter(jobs::snapshot_id.eq(snapshot_id))
            .filter(jobs::status.eq(JobStatus::Queued))
            .filter(jobs::id.ne(job_id)),
    )
    .set((
        jobs::status.eq(JobStatus::Cancelled),
        jobs::finished_at.eq(now),
        jobs::error.eq(ALREADY_CATALOGUED),
    ))
    .execute(conn)?;
    let dropped = enforce_keep(conn, &row, keep)?;
    Ok(Completion::Complete { dropped })
}

/// Drops the complete catalogs of `row`'s host and group past the newest
/// `keep`; returns their snapshot ids.
fn enforce_keep(
    conn: &mut DbConnection,
    row: &CatalogSnapshot,
    keep: usize,
) -> QueryResult<Vec<String>> {
    let old: Vec<(i64, String)> = catalog_snapshots::table
        .filter(catalog_snapshots::host_id.eq(&row.host_id))
        .filter(catalog_snapshots::source_group.eq(&row.source_group))
        .filter(catalog_snapshots::state.eq(STATE_COMPLETE))
        .order((
            catalog_snapshots::snapshot_time.desc(),
            catalog_snapshots::id.desc(),
        ))
        .offset(i64::try_from(keep).unwrap_or(i64::MAX))
        .limit(i64::MAX)
        .select((catalog_snapshots::id, catalog_snapshots::snapshot_id))
        .load(conn)?;
    for (id, _) in &old {
        drop_catalog(conn, *id)?;
    }
    Ok(old.into_iter().map(|(_, snapshot)| snapshot).collect())
}
