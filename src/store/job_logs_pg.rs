//! Log ingest on PostgreSQL (issue 19 §2): a handful of round trips per
//! batch, however many lines and jobs it holds. Multi-row INSERTs (500
//! rows a statement, one `UPDATE` per job) took 38,700 lines/s here against
//! SQLite's 107,000 (BENCHMARKS.md "PostgreSQL side by side").
//!
//! - Usually no line of a batch is stored yet (repeats come only when an
//!   agent replays after a reconnect): the batch goes straight into
//!   `job_logs` with one binary `COPY … FROM STDIN` inside a savepoint,
//!   then one `UPDATE … FROM unnest(…)` raises each job's `last_log_seq`.
//! - If that COPY fails (a duplicate `(job_id, seq)`: COPY has no
//!   `ON CONFLICT`), the savepoint is rolled back and the batch is copied
//!   into a session-local staging table instead, moved with one
//!   `INSERT … SELECT … ON CONFLICT DO NOTHING` (duplicates skipped, as on
//!   SQLite) and `last_log_seq` raised from it.
//!
//! The staging table is `TEMPORARY … ON COMMIT DELETE ROWS`: private to
//! the connection, emptied by every commit, and gone with the connection;
//! it is created on first use in each session (`IF NOT EXISTS`). Callers
//! run inside the write transaction of [`super::job_logs::insert_known`],
//! so a failure leaves nothing behind.
//!
//! **The jobs are locked once per batch, not checked once per line.**
//! `job_logs.job_id` had a foreign key to `jobs`: PostgreSQL checked it
//! for every inserted line (`SELECT 1 FROM jobs … FOR KEY SHARE`), which
//! more than doubled the cost of a line (a million lines: 2.4 s without,
//! 5.4 s with, in one backend) and made the writer's backend the bound of
//! log ingest. Migration `2026-12-14-000002` drops that key on PostgreSQL
//! and deletes a job's lines with a trigger instead (as the cascade did);
//! here, the batch's jobs are locked with the same `FOR KEY SHARE` in one
//! statement before the COPY, and lines of a job that is gone by then are
//! not stored (counted as `unknown_job`). A job deleted afterwards waits
//! for this transaction, and its trigger then deletes these lines too: no
//! line outlives its job, as with the key.

use std::collections::HashSet;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Text};

use super::job_logs::{highest_seqs, LogBatchOutcome, Row};
use super::models::NewJobLog;
use super::prepared::{Affected, PrepareOnce};
use super::schema::job_logs;
use super::types::LogStream;

diesel::table! {
    /// The staging table of one batch (see the module doc).
    job_logs_incoming (job_id, seq) {
        job_id -> Text,
        seq -> BigInt,
        ts -> BigInt,
        stream -> Text,
        payload -> Text,
    }
}

/// Creates the staging table in this session if it is not there yet.
const CREATE_STAGING: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS job_logs_incoming (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    stream TEXT NOT NULL,
    payload TEXT NOT NULL
) ON COMMIT DELETE ROWS";

/// Moves the staged lines into `job_logs`; a stored `(job_id, seq)` (or a
/// repeat within the batch) is skipped.
const MOVE_STAGED: &str = "INSERT INTO job_logs (job_id, seq, ts, stream, payload)
SELECT job_id, seq, ts, stream, payload FROM job_logs_incoming
ON CONFLICT DO NOTHING";

/// Raises each job's `last_log_seq` to the seq paired with it (arrays of
/// job ids and of their highest seqs).
/// (Loaded for its count, so that it is prepared once: `store::prepared`.)
const RAISE_LAST_SEQ_FROM: &str = "WITH w AS (UPDATE jobs SET last_log_seq = given.seq
FROM unnest($1::text[], $2::bigint[]) AS given(job_id, seq)
WHERE jobs.id = given.job_id AND jobs.last_log_seq < given.seq RETURNING 1)
SELECT count(*) AS n FROM w";

/// Raises each staged job's `last_log_seq` to its highest staged seq.
const RAISE_LAST_SEQ: &str = "UPDATE jobs SET last_log_seq = staged.seq
FROM (SELECT job_id, max(seq) AS seq FROM job_logs_incoming GROUP BY job_id) AS staged
WHERE jobs.id = staged.job_id AND jobs.last_log_seq < staged.seq";

/// A staged row, borrowed from the caller's lines (COPY's binary format
/// needs every column: no defaults).
#[derive(Insertable)]
#[diesel(table_name = job_logs_incoming, treat_none_as_default_value = false)]
struct Staged<'a> {
    job_id: &'a str,
    seq: i64,
    ts: i64,
    stream: LogStream,
    payload: &'a str,
}

/// Locks the jobs named by `ids` against deletion until the transaction
/// ends (what the foreign key's check took per line); the ones still
/// there.
const LOCK_JOBS: &str = "SELECT id FROM jobs WHERE id = ANY($1) FOR KEY SHARE";

/// A locked job's id.
#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Stores lines whose jobs exist (checked by the caller; locked here, and
/// the lines of a job deleted meanwhile left out) and raises their jobs'
/// `last_log_seq`; call inside a write transaction.
pub(super) fn insert_known(
    conn: &mut PgConnection,
    keep: &[&NewJobLog],
) -> QueryResult<LogBatchOutcome> {
    if keep.is_empty() {
        return Ok(LogBatchOutcome::default());
    }
    let lines = keep.len();
    let mut ids: Vec<&str> = keep.iter().map(|l| l.job_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let locked: HashSet<String> = diesel::sql_query(LOCK_JOBS)
        .bind::<Array<Text>, _>(&ids)
        .prepared()
        .load::<Locked>(conn)?
        .into_iter()
        .map(|l| l.id)
        .collect();
    let keep: Vec<&NewJobLog> = keep
        .iter()
        .copied()
        .filter(|l| locked.contains(l.job_id.as_str()))
        .collect();
    let gone = lines - keep.len();
    if keep.is_empty() {
        return Ok(LogBatchOutcome {
            unknown_job: gone,
            ..LogBatchOutcome::default()
        });
    }
    let rows = Row::of(&keep);
    // A savepoint (the caller's transaction is open): a failed COPY is
    // undone alone.
    let direct = conn.transaction(|c| {
        diesel::copy_from(job_logs::table)
            .from_insertable(rows.as_slice())
            .execute(c)
    });
    let inserted = match direct {
        Ok(inserted) => {
            raise_last_seq(conn, &keep)?;
            inserted
        }
        // A duplicate (or any refusal of a row): the careful way.
        Err(DieselError::DatabaseError(..)) => insert_staged(conn, &keep)?,
        Err(e) => return Err(e),
    };
    Ok(LogBatchOutcome {
        inserted,
        duplicates: keep.len() - inserted,
        unknown_job: gone,
    })
}

/// Raises each job's `last_log_seq` to the highest seq among `lines`, in
/// one statement.
fn raise_last_seq(conn: &mut PgConnection, lines: &[&NewJobLog]) -> QueryResult<()> {
    let (ids, seqs): (Vec<&str>, Vec<i64>) = highest_seqs(lines).into_iter().unzip();
    diesel::sql_query(RAISE_LAST_SEQ_FROM)
        .bind::<Array<Text>, _>(ids)
        .bind::<Array<BigInt>, _>(seqs)
        .prepared()
        .get_result::<Affected>(conn)?;
    Ok(())
}

/// The batch through the staging table: duplicates skipped. Returns the
/// lines stored.
fn insert_staged(conn: &mut PgConnection, keep: &[&NewJobLog]) -> QueryResult<usize> {
    // One round trip (simple protocol): the table exists, and holds no
    // line an earlier batch of this same transaction staged (a caller that
    // stores two batches before it commits), which must not move twice.
    conn.batch_execute(&format!("{CREATE_STAGING}; DELETE FROM job_logs_incoming"))?;
    let rows: Vec<Staged<'_>> = keep
        .iter()
        .map(|l| Staged {
            job_id: &l.job_id,
            seq: l.seq,
            ts: l.ts,
            stream: l.stream,
            payload: &l.payload,
        })
        .collect();
    diesel::copy_from(job_logs_incoming::table)
        .from_insertable(rows.as_slice())
        .execute(conn)?;
    let inserted = diesel::sql_query(MOVE_STAGED).execute(conn)?;
    diesel::sql_query(RAISE_LAST_SEQ).execute(conn)?;
    Ok(inserted)
}
