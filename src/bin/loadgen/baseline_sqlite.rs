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
//!
//! With `--database-url postgres://…` (a server whose user may create
//! databases, e.g. `--backend postgres`) each measure gets a fresh
//! database there instead (issue 19): multi-row INSERTs of 500 rows and of
//! 10,000 rows (sized for PostgreSQL's 65,535 parameters), a binary
//! `COPY … FROM STDIN`, and the server's store call (which uses COPY on
//! PostgreSQL). Single-row inserts are skipped there: a round trip each.

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

/// Rows per INSERT statement sized for PostgreSQL (5 parameters a row,
/// at most 65,535 per statement).
const PG_ROWS_PER_STATEMENT: usize = 10_000;

/// Where one measure's database lives; removed when dropped.
enum Scratch {
    /// A temporary directory with the SQLite file.
    Sqlite(std::path::PathBuf),
    /// A database created on the `--database-url` server.
    Postgres { admin_url: String, name: String },
}

impl Scratch {
    fn new(database_url: Option<&str>) -> anyhow::Result<Scratch> {
        match database_url {
            None => {
                let dir = std::env::temp_dir()
                    .join(format!("restic-manager-baseline-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                Ok(Scratch::Sqlite(dir))
            }
            Some(url) => {
                let name = format!("rm_baseline_{}", uuid::Uuid::new_v4().simple());
                admin(url, &format!("CREATE DATABASE \"{name}\""))?;
                Ok(Scratch::Postgres {
                    admin_url: url.to_owned(),
                    name,
                })
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Scratch::Sqlite(dir) => dir.join("baseline.db").display().to_string(),
            Scratch::Postgres { admin_url, name } => with_database(admin_url, name),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match self {
            Scratch::Sqlite(dir) => {
                if let Err(e) = std::fs::remove_dir_all(&*dir) {
                    eprintln!("cannot remove {}: {e}", dir.display());
                }
            }
            Scratch::Postgres { admin_url, name } => {
                if let Err(e) = admin(admin_url, &format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                {
                    eprintln!("cannot drop database {name}: {e:#}");
                }
            }
        }
    }
}

/// Runs one statement on the `--database-url` server.
#[cfg(not(feature = "postgres"))]
fn admin(_url: &str, _sql: &str) -> anyhow::Result<()> {
    bail!("built without PostgreSQL")
}

/// Runs one statement on the `--database-url` server.
#[cfg(feature = "postgres")]
fn admin(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = diesel::PgConnection::establish(url)
        .with_context(|| format!("cannot connect to {}", restic_manager::redact::url(url)))?;
    conn.batch_execute(sql).with_context(|| sql.to_owned())?;
    Ok(())
}

/// `url` with its database name replaced by `name` (query kept).
fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    match url[authority_start..]
        .find(['/', '?'])
        .map(|i| authority_start + i)
    {
        None => format!("{url}/{name}"),
        Some(start) => {
            let query = url[start..].find('?').map_or("", |q| &url[start + q..]);
            format!("{}/{name}{query}", &url[..start])
        }
    }
}

/// A fresh database with `writers` hosts and one job each; returns the
/// job ids and host ids.
fn fresh_db(url: &str, writers: usize) -> anyhow::Result<(store::Pool, Vec<(String, String)>)> {
    let pool = store::connect(url, 1)?;
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
        _ => bail!("single-row inserts are measured on SQLite only"),
    }
}

/// One transaction of multi-row INSERTs of `rows` rows.
fn multirow_insert(conn: &mut DbConnection, batch: &[RawRow], rows: usize) -> anyhow::Result<()> {
    // The same statements, compiled once per backend (diesel's
    // multi-backend connection cannot send a multi-row VALUES).
    macro_rules! insert_chunks {
        ($c:expr) => {
            $c.transaction(|c| -> QueryResult<()> {
                for chunk in batch.chunks(rows) {
                    diesel::insert_into(schema::job_logs::table)
                        .values(chunk)
                        .execute(c)?;
                }
                Ok(())
            })?
        };
    }
    match conn {
        DbConnection::Sqlite(c) => insert_chunks!(c),
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => insert_chunks!(c),
    }
    Ok(())
}

/// One transaction of one binary `COPY … FROM STDIN` (PostgreSQL).
#[cfg(feature = "postgres")]
fn copy_insert(conn: &mut DbConnection, batch: &[RawRow]) -> anyhow::Result<()> {
    let DbConnection::Pg(c) = conn else {
        bail!("COPY is PostgreSQL's");
    };
    c.transaction(|c| -> QueryResult<usize> {
        diesel::copy_from(schema::job_logs::table)
            .from_insertable(batch)
            .execute(c)
    })?;
    Ok(())
}

#[cfg(not(feature = "postgres"))]
fn copy_insert(_conn: &mut DbConnection, _batch: &[RawRow]) -> anyhow::Result<()> {
    bail!("built without PostgreSQL")
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
    let scratch = Scratch::new(opts.database_url.as_deref())?;
    let writers = opts.writers as usize;
    let (pool, jobs) = fresh_db(&scratch.url(), writers)?;
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
    let stored: i64 = schema::job_logs::table.count().get_result(&mut **conn)?;
    if stored != all.len() as i64 {
        bail!("{label}: {stored} of {} lines stored", all.len());
    }
    eprintln!("{label}: {} lines in {took:.2}s", all.len());
    Ok(all.len() as f64 / took)
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || {
        let multirow = measure(&opts, "multi-row inserts", raw_rows, |c, b| {
            multirow_insert(c, b, ROWS_PER_STATEMENT)
        })?;
        let on_postgres = opts.database_url.is_some();
        let (prepared, pg_sized, copy) = if on_postgres {
            let sized = measure(&opts, "multi-row inserts of 10,000", raw_rows, |c, b| {
                multirow_insert(c, b, PG_ROWS_PER_STATEMENT)
            })?;
            let copy = measure(&opts, "COPY FROM STDIN", raw_rows, copy_insert)?;
            (None, Some(sized), Some(copy))
        } else {
            let prepared = measure(
                &opts,
                "prepared single-row inserts",
                raw_rows,
                prepared_insert,
            )?;
            (Some(prepared), None, None)
        };
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
            .text(
                "backend",
                crate::scenarios::backend_name(opts.database_url.as_deref()),
            )
            .float(
                "lines_per_sec",
                [prepared, pg_sized, copy]
                    .into_iter()
                    .flatten()
                    .fold(multirow, f64::max),
                0,
            )
            .float("multirow_lines_per_sec", multirow, 0);
        if let Some(prepared) = prepared {
            report.float("prepared_lines_per_sec", prepared, 0);
        }
        if let Some(sized) = pg_sized {
            report.float("multirow_10000_lines_per_sec", sized, 0);
        }
        if let Some(copy) = copy {
            report.float("copy_lines_per_sec", copy, 0);
        }
        report.float("store_path_lines_per_sec", server_path, 0);
        Ok(report)
    })
    .await
    .context("the baseline panicked")?
}
