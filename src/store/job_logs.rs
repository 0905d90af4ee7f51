//! Queries on `job_logs`: a job's log lines, stored once per
//! `(job_id, seq)`. A batch may span many jobs (the persistence actor
//! writes one tick's lines in one call); duplicates from at-least-once
//! delivery are skipped by the primary key, and each job's
//! `last_log_seq` follows the highest seq stored.

use std::collections::{BTreeMap, HashSet};

use diesel::prelude::*;

use super::models::{JobLog, NewJobLog};
use super::schema::{job_logs, jobs};
use super::types::LogStream;
use super::{clamp_limit, per_backend, write_transaction, DbConnection, INSERT_CHUNK_ROWS};

/// The largest page of log lines [`list_after`] returns.
pub const MAX_LOG_PAGE: i64 = 10_000;

/// A log row to insert, borrowed from the caller's lines
/// (`treat_none_as_default_value = false` lets SQLite take a multi-row
/// VALUES with ON CONFLICT).
#[derive(Insertable)]
#[diesel(table_name = job_logs, treat_none_as_default_value = false)]
struct Row<'a> {
    job_id: &'a str,
    seq: i64,
    ts: i64,
    stream: LogStream,
    payload: &'a str,
}

/// What [`insert_batch`] did with the lines it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogBatchOutcome {
    /// Lines stored now.
    pub inserted: usize,
    /// Lines whose `(job_id, seq)` was already stored (skipped).
    pub duplicates: usize,
    /// Lines naming a job that does not exist (skipped).
    pub unknown_job: usize,
}

/// Stores a batch of log lines in one transaction, skipping lines already
/// stored and lines of unknown jobs, and raises each job's `last_log_seq`.
pub fn insert_batch(conn: &mut DbConnection, lines: &[NewJobLog]) -> QueryResult<LogBatchOutcome> {
    if lines.is_empty() {
        return Ok(LogBatchOutcome::default());
    }
    write_transaction(conn, |conn| {
        let mut job_ids: Vec<&str> = lines.iter().map(|l| l.job_id.as_str()).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        let mut known: HashSet<String> = HashSet::with_capacity(job_ids.len());
        for chunk in job_ids.chunks(INSERT_CHUNK_ROWS) {
            let found: Vec<String> = jobs::table
                .filter(jobs::id.eq_any(chunk))
                .select(jobs::id)
                .load(conn)?;
            known.extend(found);
        }
        let (keep, unknown): (Vec<&NewJobLog>, Vec<&NewJobLog>) =
            lines.iter().partition(|l| known.contains(&l.job_id));
        let mut outcome = insert_known(conn, &keep)?;
        outcome.unknown_job = unknown.len();
        Ok(outcome)
    })
}

/// [`insert_batch`] for lines whose jobs the caller has checked exist
/// (no lookup); call inside a write transaction.
pub(crate) fn insert_known(
    conn: &mut DbConnection,
    keep: &[&NewJobLog],
) -> QueryResult<LogBatchOutcome> {
    let rows: Vec<Row<'_>> = keep
        .iter()
        .map(|l| Row {
            job_id: &l.job_id,
            seq: l.seq,
            ts: l.ts,
            stream: l.stream,
            payload: &l.payload,
        })
        .collect();
    let mut inserted = 0;
    for chunk in rows.chunks(INSERT_CHUNK_ROWS) {
        // ON CONFLICT DO NOTHING: not expressible on the multi-backend.
        inserted += per_backend!(&mut *conn, |c| diesel::insert_into(job_logs::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(c))?;
    }

    let mut max_seq: BTreeMap<&str, i64> = BTreeMap::new();
    for line in keep {
        let entry = max_seq.entry(line.job_id.as_str()).or_insert(line.seq);
        *entry = (*entry).max(line.seq);
    }
    for (job_id, seq) in max_seq {
        diesel::update(jobs::table.find(job_id).filter(jobs::last_log_seq.lt(seq)))
            .set(jobs::last_log_seq.eq(seq))
            .execute(conn)?;
    }
    Ok(LogBatchOutcome {
        inserted,
        duplicates: keep.len() - inserted,
        unknown_job: 0,
    })
}

/// The job's lines with `seq > after_seq`, in seq order, at most `limit`
/// (clamped to [`MAX_LOG_PAGE`]): a live view resumes from its last seq.
pub fn list_after(
    conn: &mut DbConnection,
    job_id: &str,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<JobLog>> {
    job_logs::table
        .filter(job_logs::job_id.eq(job_id))
        .filter(job_logs::seq.gt(after_seq))
        .order(job_logs::seq.asc())
        .limit(clamp_limit(limit, MAX_LOG_PAGE))
        .select(JobLog::as_select())
        .load(conn)
}

/// How many of the job's lines have `seq > after_seq` (the `total` of a
/// page of [`list_after`], whatever its limit).
pub fn count_after(conn: &mut DbConnection, job_id: &str, after_seq: i64) -> QueryResult<i64> {
    job_logs::table
        .filter(job_logs::job_id.eq(job_id))
        .filter(job_logs::seq.gt(after_seq))
        .count()
        .get_result(conn)
}
