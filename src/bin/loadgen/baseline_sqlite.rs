//! `baseline-sqlite`: the storage limit for log ingestion, to state our
//! rate as a ratio to it. The `logs` scenario's lines (--writers jobs ×
//! --lines, --line-bytes each, interleaved across jobs as concurrent
//! streams arrive) are inserted into a fresh database made by the same
//! `store::connect` (same migrations, same `job_logs` schema, same
//! pragmas: WAL, synchronous NORMAL), --batch rows per transaction,
//! twice: as multi-row INSERTs of 500 rows, and as single-row INSERTs
//! through one prepared statement — nothing else. The faster of the two
//! is the storage limit (`lines_per_sec`).
//!
//! For the diagnosis it also times the server's own store call on the
//! same lines and batches (`store::channel::insert_logs_for_hosts`:
//! ownership check, `ON CONFLICT DO NOTHING`, `last_log_seq` updates),
//! which isolates the SQL cost from the actors and the WebSocket.

use std::time::Instant;

use anyhow::{bail, Context};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use restic_manager::store::channel::{self, HostLogLine};
use restic_manager::store::models::{NewHost, NewJob, NewJobLog};
use restic_manager::store::{self, schema, DbConnection, JobKind, JobTrigger, LogStream};

use crate::agent::log_payload;
use crate::report::Report;
use crate::Options;

/// Rows per INSERT statement (the server's `INSERT_CHUNK_ROWS`).
const ROWS_PER_STATEMENT: usize = 500;

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// A fresh database with `writers` hosts and one job each; returns the
/// job ids and host ids.
fn fresh_db(
    dir: &std::path::Path,
    writers: usize,
) -> anyhow::Result<(store::Pool, Vec<(String, String)>)> {
    let pool = store::connect(&dir.join("baseline.db").display().to_string(), 1)?;
    let mut conn = pool.get()?;
    let now = store::now_ms();
    let mut jobs = Vec::with_capacity(writers);
    for i in 0..writers {
        let host_id = store::new_id();
        store::hosts::insert(
            &mut conn,
            &NewHost {
                id: host_id.clone().into(),
                hostname: format!("baseline-{i}"),
                display_name: None,
                labels: Default::default(),
                os: "linux".into(),
                arch: "amd64".into(),
                agent_version: None,
                restic_version: None,
                boot_time: None,
                capabilities: Vec::new(),
                agent_token_hash: format!("{i:064x}"),
                enrolled_at: now,
                updated_at: now,
            },
        )?;
        let job = store::jobs::insert(
            &mut conn,
            &NewJob::new(
                store::new_id(),
                host_id.clone(),
                JobKind::Check,
                JobTrigger::Manual,
                now,
            ),
        )?;
        jobs.push((job.id.into(), host_id));
    }
    drop(conn);
    Ok((pool, jobs))
}

/// The lines in arrival order: seq 1 of every job, then seq 2, …
fn lines(jobs: &[(String, String)], per_job: u64, bytes: usize) -> Vec<HostLogLine> {
    let ts = store::now_ms();
    let mut out = Vec::with_capacity(jobs.len() * per_job as usize);
    for seq in 1..=per_job {
        for (job_id, host_id) in jobs {
            out.push(HostLogLine {
                host_id: host_id.clone(),
                line: NewJobLog {
                    job_id: job_id.clone().into(),
                    seq: seq as i64,
                    ts,
                    stream: LogStream::Stdout,
                    payload: log_payload(seq, per_job, bytes),
                },
            });
        }
    }
    out
}

/// A `job_logs` row for raw inserts. `treat_none_as_default_value =
/// false` makes diesel send a slice as one multi-row `INSERT … VALUES
/// (…), (…)` on SQLite instead of one statement per row.
#[derive(Insertable)]
#[diesel(table_name = schema::job_logs, treat_none_as_default_value = false)]
struct RawRow {
    job_id: String,
    seq: i64,
    ts: i64,
    stream: LogStream,
    payload: String,
}

fn raw_rows(lines: Vec<HostLogLine>) -> Vec<RawRow> {
    lines
        .into_iter()
        .map(|l| RawRow {
            job_id: l.line.job_id.into(),
            seq: l.line.seq,
            ts: l.line.ts,
            stream: l.line.stream,
            payload: l.line.payload,
        })
        .collect()
}

fn sqlite(conn: &mut DbConnection) -> anyhow::Result<&mut diesel::SqliteConnection> {
    match conn {
        DbConnection::Sqlite(sqlite) => Ok(sqlite),
        #[allow(unreachable_patterns)]
        _ => bail!("the baseline runs on SQLite"),
    }
}

/// One transaction of multi-row INSERTs of 500 rows.
fn multirow_insert(conn: &mut DbConnection, batch: &[RawRow]) -> anyhow::Result<()> {
    sqlite(conn)?.transaction(|c| -> QueryResult<()> {
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            diesel::insert_into(schema::job_logs::table)
                .values(chunk)
                .execute(c)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// One transaction of single-row INSERTs through one cached prepared
/// statement (SQLite's classic fastest bulk load).
fn prepared_insert(conn: &mut DbConnection, batch: &[RawRow]) -> anyhow::Result<()> {
    sqlite(conn)?.transaction(|c| -> QueryResult<()> {
        for row in batch {
            diesel::insert_into(schema::job_logs::table)
                .values(row)
                .execute(c)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Inserts the lines (prepared by `prepare`, untimed) in batches with
/// `insert`; returns lines per second.
fn measure<T>(
    opts: &Options,
    label: &str,
    prepare: impl Fn(Vec<HostLogLine>) -> Vec<T>,
    insert: impl Fn(&mut DbConnection, &[T]) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let dir = TempDir(
        std::env::temp_dir().join(format!("restic-manager-baseline-{}", uuid::Uuid::new_v4())),
    );
    std::fs::create_dir_all(&dir.0)
        .with_context(|| format!("cannot create {}", dir.0.display()))?;
    let writers = opts.writers as usize;
    let (pool, jobs) = fresh_db(&dir.0, writers)?;
    let all = prepare(lines(&jobs, opts.lines, opts.line_bytes as usize));
    let mut conn = pool.get()?;
    for pragma in &opts.pragma {
        sqlite(&mut conn)?
            .batch_execute(&format!("PRAGMA {pragma};"))
            .with_context(|| format!("PRAGMA {pragma}"))?;
    }
    let start = Instant::now();
    for batch in all.chunks(opts.batch as usize) {
        insert(&mut conn, batch)?;
    }
    let took = start.elapsed().as_secs_f64().max(1e-9);
    let stored: i64 = schema::job_logs::table.count().get_result(&mut *conn)?;
    if stored != all.len() as i64 {
        bail!("{label}: {stored} of {} lines stored", all.len());
    }
    eprintln!("{label}: {} lines in {took:.2}s", all.len());
    Ok(all.len() as f64 / took)
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || {
        let multirow = measure(&opts, "multi-row inserts", raw_rows, multirow_insert)?;
        let prepared = measure(
            &opts,
            "prepared single-row inserts",
            raw_rows,
            prepared_insert,
        )?;
        let server_path = measure(
            &opts,
            "server store path",
            |lines| lines,
            |conn, batch| {
                channel::insert_logs_for_hosts(conn, batch)?;
                Ok(())
            },
        )?;
        let mut report = Report::new("baseline-sqlite", opts.agents as usize);
        report
            .int("writers", u64::from(opts.writers))
            .int("lines", u64::from(opts.writers) * opts.lines)
            .int("line_bytes", u64::from(opts.line_bytes))
            .int("batch", u64::from(opts.batch))
            .float("lines_per_sec", multirow.max(prepared), 0)
            .float("multirow_lines_per_sec", multirow, 0)
            .float("prepared_lines_per_sec", prepared, 0)
            .float("store_path_lines_per_sec", server_path, 0);
        Ok(report)
    })
    .await
    .context("the baseline panicked")?
}
