//! `baseline-sqlite`: the storage limit for log ingestion, to state our
//! rate as a ratio to it. The `logs` scenario's lines (--writers jobs ×
//! --lines, --line-bytes each, interleaved across jobs as concurrent
//! streams arrive) are inserted into a fresh database made by the same
//! `store::connect` (same migrations, same `job_logs` schema, same
//! pragmas: WAL, synchronous NORMAL), --batch rows per transaction, as
//! raw multi-row INSERTs of 500 rows — nothing else.
//!
//! For the diagnosis it also times the server's own store call on the
//! same lines and batches (`store::channel::insert_logs_for_hosts`:
//! ownership check, `ON CONFLICT DO NOTHING`, `last_log_seq` updates),
//! which isolates the SQL cost from the actors and the WebSocket.

use std::time::Instant;

use anyhow::{bail, Context};
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
                id: host_id.clone(),
                hostname: format!("baseline-{i}"),
                display_name: None,
                labels: "{}".into(),
                os: "linux".into(),
                arch: "amd64".into(),
                agent_version: None,
                restic_version: None,
                boot_time: None,
                capabilities: "[]".into(),
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
        jobs.push((job.id, host_id));
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
                    job_id: job_id.clone(),
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

fn raw_insert(conn: &mut DbConnection, batch: &[NewJobLog]) -> anyhow::Result<()> {
    let DbConnection::Sqlite(sqlite) = conn else {
        bail!("the baseline runs on SQLite");
    };
    sqlite.transaction(|c| -> QueryResult<()> {
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            diesel::insert_into(schema::job_logs::table)
                .values(chunk)
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
        let raw = measure(
            &opts,
            "raw inserts",
            |lines| lines.into_iter().map(|l| l.line).collect(),
            raw_insert,
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
            .float("lines_per_sec", raw, 0)
            .float("store_path_lines_per_sec", server_path, 0);
        Ok(report)
    })
    .await
    .context("the baseline panicked")?
}
