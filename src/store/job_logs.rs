//! Queries on `job_logs`: a job's log lines, stored once per
//! `(job_id, seq)`. A batch may span many jobs (the persistence actor
//! writes one tick's lines in one call); duplicates from at-least-once
//! delivery are skipped by the primary key, and each job's
//! `last_log_seq` follows the highest seq stored.
//!
//! Retention: [`prune_batch`] deletes a bounded number of lines of jobs
//! that finished before a cutoff, walking finished jobs in finish order
//! from a cursor row (`log_prune_cursor`), so each call is small and the
//! next one goes on where it stopped.

use std::collections::{BTreeMap, HashSet};

use diesel::prelude::*;

use super::models::{JobLog, NewJobLog};
use super::paged::PagedDsl;
use super::schema::{job_logs, jobs, log_prune_cursor};
use super::types::LogStream;
use super::{clamp_limit, per_backend, write_transaction, DbConnection, INSERT_CHUNK_ROWS};

/// The largest page of log lines [`list_after`] returns.
pub const MAX_LOG_PAGE: i64 = 10_000;

/// A log row to insert, borrowed from the caller's lines
/// (`treat_none_as_default_value = false` lets SQLite take a multi-row
/// VALUES with ON CONFLICT).
#[derive(Insertable)]
#[diesel(table_name = job_logs, treat_none_as_default_value = false)]
pub(super) struct Row<'a> {
    job_id: &'a str,
    seq: i64,
    ts: i64,
    stream: LogStream,
    payload: &'a str,
}

impl<'a> Row<'a> {
    /// The rows of `lines`, borrowed.
    pub(super) fn of(lines: &[&'a NewJobLog]) -> Vec<Row<'a>> {
        lines
            .iter()
            .map(|l| Row {
                job_id: &l.job_id,
                seq: l.seq,
                ts: l.ts,
                stream: l.stream,
                payload: &l.payload,
            })
            .collect()
    }
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
        let (keep, unknown): (Vec<&NewJobLog>, Vec<&NewJobLog>) = lines
            .iter()
            .partition(|l| known.contains(l.job_id.as_str()));
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
    match conn {
        DbConnection::Sqlite(_) => insert_known_rows(conn, keep),
        #[cfg(feature = "postgres")]
        DbConnection::Pg(pg) => super::job_logs_pg::insert_known(pg, keep),
    }
}

/// [`insert_known`] with multi-row INSERTs and one `UPDATE` per job:
/// SQLite's way (in-process, a statement costs no round trip).
fn insert_known_rows(conn: &mut DbConnection, keep: &[&NewJobLog]) -> QueryResult<LogBatchOutcome> {
    let rows = Row::of(keep);
    let mut inserted = 0;
    for chunk in rows.chunks(INSERT_CHUNK_ROWS) {
        // ON CONFLICT DO NOTHING: not expressible on the multi-backend.
        inserted += per_backend!(&mut *conn, |c| diesel::insert_into(job_logs::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(c))?;
    }

    for (job_id, seq) in highest_seqs(keep) {
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

/// Each job's highest seq among `lines`.
pub(super) fn highest_seqs<'a>(lines: &[&'a NewJobLog]) -> BTreeMap<&'a str, i64> {
    let mut max_seq: BTreeMap<&str, i64> = BTreeMap::new();
    for line in lines {
        let entry = max_seq.entry(line.job_id.as_str()).or_insert(line.seq);
        *entry = (*entry).max(line.seq);
    }
    max_seq
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
        .select(JobLog::as_select())
        .paged(clamp_limit(limit, MAX_LOG_PAGE), 0)
        .load(conn)
}

/// The job's newest `limit` lines, in order: a job page's tail, read
/// without its job row (so beside it).
pub fn tail(conn: &mut DbConnection, job_id: &str, limit: i64) -> QueryResult<Vec<JobLog>> {
    let mut lines: Vec<JobLog> = job_logs::table
        .filter(job_logs::job_id.eq(job_id))
        .order(job_logs::seq.desc())
        .select(JobLog::as_select())
        .paged(clamp_limit(limit, MAX_LOG_PAGE), 0)
        .load(conn)?;
    lines.reverse();
    Ok(lines)
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

/// The `total` of a page of [`list_after`] without counting the rows
/// (a count walks every line after `after_seq`: 270 ms for a 1M-line log
/// on PostgreSQL). A page shorter than `limit` reached the end, so its
/// length is the total; otherwise the lines from the page's first seq
/// up to the job's `last_log_seq` are counted by their seqs, which an
/// agent numbers one by one from 1 (lines it lost would be counted).
pub fn page_total(page: &[JobLog], limit: i64, last_log_seq: i64) -> i64 {
    let len = page.len() as i64;
    match page.first() {
        Some(first) if len >= limit => (last_log_seq - first.seq + 1).max(len),
        _ => len,
    }
}

/// What one [`prune_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneOutcome {
    /// Log lines deleted.
    pub lines: usize,
    /// Jobs whose logs are now gone entirely.
    pub jobs: usize,
    /// True when nothing older than the cutoff is left to prune.
    pub done: bool,
}

/// Finished jobs looked at per query of [`prune_batch`].
const PRUNE_JOBS_PER_QUERY: i64 = 500;

/// Deletes at most `budget` log lines (and looks at most `budget` jobs)
/// of jobs that finished before `cutoff` (Unix ms), oldest first, in one
/// write transaction, going on from where the previous call stopped.
/// Call it again while the outcome is not `done`.
pub fn prune_batch(conn: &mut DbConnection, cutoff: i64, budget: i64) -> QueryResult<PruneOutcome> {
    let budget = budget.max(1);
    write_transaction(conn, |conn| {
        let (mut at, mut after): (i64, String) = log_prune_cursor::table
            .find(1)
            .select((log_prune_cursor::finished_at, log_prune_cursor::job_id))
            .first(conn)?;
        let mut outcome = PruneOutcome::default();
        let mut left = budget;
        let mut looked = 0;
        'walk: loop {
            let next: Vec<(String, Option<i64>)> = jobs::table
                .filter(jobs::finished_at.lt(cutoff))
                .filter(
                    jobs::finished_at
                        .gt(at)
                        .or(jobs::finished_at.eq(at).and(jobs::id.gt(&after))),
                )
                .order((jobs::finished_at.asc(), jobs::id.asc()))
                .select((jobs::id, jobs::finished_at))
                .limit(PRUNE_JOBS_PER_QUERY.min(budget))
                .load(conn)?;
            if next.is_empty() {
                outcome.done = true;
                break;
            }
            for (id, finished_at) in next {
                let seqs: Vec<i64> = job_logs::table
                    .filter(job_logs::job_id.eq(&id))
                    .order(job_logs::seq.asc())
                    .select(job_logs::seq)
                    .limit(left)
                    .load(conn)?;
                if let Some(last) = seqs.last() {
                    let deleted = diesel::delete(
                        job_logs::table
                            .filter(job_logs::job_id.eq(&id))
                            .filter(job_logs::seq.le(last)),
                    )
                    .execute(conn)?;
                    outcome.lines += deleted;
                    left -= i64::try_from(deleted).unwrap_or(left);
                }
                if left <= 0 {
                    // The budget is spent; this job may have more lines,
                    // so the cursor stays before it.
                    break 'walk;
                }
                at = finished_at.unwrap_or(at);
                after = id;
                outcome.jobs += 1;
                looked += 1;
                if looked >= budget {
                    break 'walk;
                }
            }
        }
        diesel::update(log_prune_cursor::table.find(1))
            .set((
                log_prune_cursor::finished_at.eq(at),
                log_prune_cursor::job_id.eq(&after),
            ))
            .execute(conn)?;
        Ok(outcome)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::models::{JobFinish, NewHost, NewJob};
    use crate::store::{connect, hosts, jobs as job_store, JobKind, JobStatus, JobTrigger};

    const DAY: i64 = 86_400_000;

    fn lines(seqs: std::ops::RangeInclusive<i64>) -> Vec<JobLog> {
        seqs.map(|seq| JobLog {
            job_id: "j".to_owned().into(),
            seq,
            ts: 0,
            stream: LogStream::Stdout,
            payload: String::new(),
        })
        .collect()
    }

    /// A short page is its own total; a full one counts up to the job's
    /// last seq from its first line (a pruned start is not counted).
    #[test]
    fn page_total_without_counting() {
        assert_eq!(page_total(&[], 10, 0), 0);
        assert_eq!(page_total(&[], 10, 500), 0, "every line pruned");
        assert_eq!(page_total(&lines(21..=25), 10, 25), 5);
        assert_eq!(page_total(&lines(1..=5), 5, 12), 12);
        assert_eq!(page_total(&lines(11..=11), 1, 12), 2);
        assert_eq!(page_total(&lines(401..=410), 10, 1000), 600);
    }

    /// A job on `host` finished at `at` with `lines` log lines.
    fn job_with_log(conn: &mut DbConnection, host: &str, at: i64, lines: i64) -> String {
        let id = crate::store::new_id();
        job_store::insert(
            conn,
            &NewJob::new(
                id.clone(),
                host,
                JobKind::Check,
                JobTrigger::Manual,
                at - 10,
            ),
        )
        .unwrap();
        let log: Vec<NewJobLog> = (1..=lines)
            .map(|seq| NewJobLog {
                job_id: id.clone().into(),
                seq,
                ts: at - 5,
                stream: LogStream::Stdout,
                payload: format!("line {seq}"),
            })
            .collect();
        insert_batch(conn, &log).unwrap();
        let finish = JobFinish {
            status: JobStatus::Succeeded,
            finished_at: at,
            exit_code: Some(0),
            error: None,
            warning: None,
            stats: None,
        };
        job_store::finish(conn, &id, &finish).unwrap();
        id
    }

    /// Retention deletes the logs of jobs finished before the cutoff (a
    /// fake "now": the cutoff is passed in), at most the budget per call,
    /// goes on where it stopped, and leaves newer jobs' logs alone.
    #[test]
    fn prune_batch_respects_cutoff_and_budget() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(dir.path().join("t.db").to_str().unwrap(), 1).unwrap();
        let conn = &mut pool.get().unwrap();
        let host = crate::store::new_id();
        hosts::insert(
            conn,
            &NewHost {
                arch: "x86_64".into(),
                ..NewHost::new(host.clone(), "h", "hash", 0)
            },
        )
        .unwrap();
        let now = 200 * DAY;
        let old_a = job_with_log(conn, &host, now - 100 * DAY, 7);
        let old_b = job_with_log(conn, &host, now - 95 * DAY, 5);
        let fresh = job_with_log(conn, &host, now - DAY, 4);
        let cutoff = now - 90 * DAY;

        let first = prune_batch(conn, cutoff, 4).unwrap();
        assert_eq!((first.lines, first.jobs, first.done), (4, 0, false));
        assert_eq!(
            count_after(conn, &old_a, 0).unwrap(),
            3,
            "the oldest lines go first"
        );
        let second = prune_batch(conn, cutoff, 4).unwrap();
        assert_eq!((second.lines, second.done), (4, false));
        let mut rounds = 0;
        loop {
            rounds += 1;
            if prune_batch(conn, cutoff, 4).unwrap().done {
                break;
            }
            assert!(rounds < 10, "pruning never finished");
        }
        assert_eq!(count_after(conn, &old_a, 0).unwrap(), 0);
        assert_eq!(count_after(conn, &old_b, 0).unwrap(), 0);
        assert_eq!(count_after(conn, &fresh, 0).unwrap(), 4, "newer logs stay");
        let again = prune_batch(conn, cutoff, 4).unwrap();
        assert_eq!((again.lines, again.done), (0, true));
        // The jobs themselves stay, with their last seq.
        assert_eq!(
            job_store::get(conn, &old_a).unwrap().unwrap().last_log_seq,
            7
        );
        // Later, the fresh job ages past the cutoff too.
        let later = prune_batch(conn, now + 90 * DAY, 100).unwrap();
        assert_eq!((later.lines, later.done), (4, true));
    }
}
