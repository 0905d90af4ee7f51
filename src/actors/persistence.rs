//! `Persistence`: the one writer of the database, on a
//! `SyncArbiter` thread of its own (diesel is blocking; no actor's event
//! loop ever waits on the database).
//!
//! Three kinds of writes:
//!
//! - **High rate** (log lines, progress, heartbeats' last-seen, schedule
//!   pushes and acks): sent with `do_send`, buffered, and written as one
//!   transaction per [`Flush`] tick (every [`FLUSH_INTERVAL`]) or as soon
//!   as [`FLUSH_MAX_ROWS`] lines wait. Progress is coalesced to the latest
//!   per job, last-seen to one update per tick. Sessions send log lines
//!   in batches ([`AppendLogs`]) and count them into a shared backlog that
//!   this actor counts down as it writes; sessions stop reading while it
//!   is high, so the mailbox stays bounded.
//! - **Low rate** (hello, job state changes, snapshots, stats, new jobs):
//!   typed messages whose reply comes once the write is durable, so the
//!   session can `ack` only then. A job's end and the job that follows it
//!   (retry, retention `forget`) are one transaction ([`RecordJobFinished`]
//!   replies with both).
//! - **The REST API's writes** ([`RunWrite`], through `Actors::write`): a
//!   closure run in one write transaction, its result the reply, so that
//!   every write of the server goes through this one actor. One
//!   exception, on PostgreSQL only: heartbeat metric points, independent
//!   rows that nothing waits for, are written by a thread beside it
//!   (`health_writes`).
//!
//! Ordering: every low-rate message first writes what is buffered, and the
//! mailbox is FIFO, so a job's `job.finished` is written after the log
//! lines its session sent before it (the session hands over the lines it
//! collected before it sends the finish). A database error is logged with the
//! host and job ids and returned to the caller; the pool connection is
//! never unwrapped. Each log batch's size and flush lag go to `Metrics`.
//!
//! # Layout
//!
//! - this file: the actor, its state, start-up and the shared write path.
//! - `buffer`: the high-rate buffers (log lines and their backlog,
//!   progress, last-seen, schedule marks) and their flush.
//! - `jobs`: job rows: creation, the agent's job reports, finishing with
//!   the follow-up, cancelling.
//! - `host_writes`: host rows and the host's reports (offline, revoke,
//!   snapshots, repository stats, missed runs, Docker discovery).
//! - `hellos`: [`RecordHello`], group-committed: the hellos queued
//!   between two writer turns go as one transaction.
//! - `catalog_writes`: the snapshot catalog: buffered `catalog.chunk`s,
//!   a `catalog` job's completion, re-queueing one that yielded.
//! - `health_writes`: `health.report` results and heartbeat metric points
//!   (buffered; [`RecordHealth`], [`RecordHostMetrics`]).
//! - `run_write`: [`RunWrite`], the REST API's closures.
//! - `agent_jobs`: [`RecordAgentJob`], a backup the agent ran on its own
//!   while the server was away (`job.report`).
//!
//! A new message goes in the file of the table it writes, as one
//! `impl Handler` next to its struct, and is re-exported here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::ids::JobId;
use crate::metrics::Metrics;
use crate::protocol;
use crate::store::channel::HostLogLine;
use crate::store::checkpoint::{checkpoint_tail, Checkpointer, CHECKPOINT_INTERVAL};
use crate::store::{self, hosts, Pool};

mod agent_jobs;
mod buffer;
mod catalog_writes;
mod health_writes;
mod held_conn;
mod hellos;
mod host_writes;
mod job_writes;
mod run_write;
#[cfg(test)]
mod tests;

pub use agent_jobs::{AgentJobOutcome, RecordAgentJob};
pub use buffer::{
    AppendLogs, Flush, FlushAll, LogBacklog, MarkSchedulePushed, RecordConfigAck, RecordProgress,
    RecordScheduleAck, Touch,
};
pub use catalog_writes::{AppendCatalog, ConfigureCatalog, YieldCatalog};
pub use health_writes::{
    RecordHealth, RecordHostMetrics, METRICS_FLUSH_INTERVAL, METRICS_FLUSH_POINTS,
};
pub use hellos::{HelloReceipt, RecordHello, MAX_HELLO_BATCH};
pub use host_writes::{
    MarkOffline, RecordMissedRun, ReplaceSnapshots, RevokeHost, SnapshotsReplaced, StoreDiscovery,
    StoreRepoStats,
};
pub use job_writes::{
    finish_from_report, ArmFailpoint, CancelQueued, CommandOutcome, Failpoint, Finished,
    MarkDispatched, ReconcileRunning, RecordCommandResult, RecordJobFinished, RecordJobStarted,
    CANCELLED_BY_OPERATOR,
};
pub use run_write::RunWrite;

/// How often buffered log lines, progress and last-seen times are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Buffered log lines that trigger a write without waiting for the tick.
/// Each write also checks the jobs' owners and raises each job's
/// `last_log_seq`, so larger batches cost less per line (BENCHMARKS.md:
/// the store path took 105k lines/s in batches of 2,000, 150k in batches
/// of 10,000); at 100k lines/s a batch is 100 ms of lines.
pub const FLUSH_MAX_ROWS: usize = 10_000;

/// How often heartbeats' last-seen times are written (coalesced per host).
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(2);

/// Attempts to write a buffered batch before it is dropped (logged).
const MAX_FLUSH_ATTEMPTS: u32 = 3;

/// Why a write failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PersistError {
    /// No connection could be had from the pool.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the write.
    #[error("database error: {0}")]
    Database(String),
}

impl From<diesel::result::Error> for PersistError {
    fn from(e: diesel::result::Error) -> Self {
        PersistError::Database(e.to_string())
    }
}

/// Result of every low-rate write.
pub type PersistResult<T> = Result<T, PersistError>;

/// The writer. Build it with [`Persistence::start`].
pub struct Persistence {
    pool: Pool,
    /// The connection the writes go through, kept between them.
    db: held_conn::HeldConn,
    /// Log lines waiting for the next flush, in arrival order.
    logs: Vec<HostLogLine>,
    /// Latest progress per job: job id → (host id, report).
    progress: HashMap<String, (String, protocol::JobProgress)>,
    /// Hosts seen since the last last-seen write, with the latest time.
    touched: HashMap<String, i64>,
    /// When last-seen times were last written.
    last_touch_write: Instant,
    /// Failed attempts of the current log batch.
    failed_attempts: u32,
    /// When the oldest line of the current batch was buffered (flush lag).
    batch_started: Option<Instant>,
    /// Batch sizes and flush lag for `/metrics`.
    metrics: Arc<Metrics>,
    /// Schedule pushes and acks waiting for the next flush, in arrival
    /// order.
    schedule_marks: Vec<store::version_marks::Mark>,
    /// Log lines on their way here, shared with the sessions.
    log_backlog: Arc<LogBacklog>,
    /// A crash to simulate (crash tests arm it with [`ArmFailpoint`]).
    failpoint: Option<Failpoint>,
    /// `catalog.chunk`s waiting for the next flush, in arrival order.
    catalog: Vec<crate::store::catalog::ingest::Chunk>,
    /// Entries in `catalog` (counted in the shared backlog too).
    catalog_buffered: usize,
    /// Failed attempts of the current catalog batch.
    catalog_attempts: u32,
    /// `--catalog-keep`: catalogued snapshots per host and source group.
    catalog_keep: usize,
    /// The WAL checkpoint thread (SQLite), started with the actor and
    /// stopped (after a last checkpoint) when it is dropped.
    checkpointer: Option<Checkpointer>,
    /// Health results and host metric points waiting (`health_writes`).
    health: health_writes::HealthBuffers,
    /// Hellos waiting for their batch's transaction (`hellos`); written
    /// before anything else, so the mailbox order is the write order.
    hellos: Vec<hellos::PendingHello>,
}

impl Actor for Persistence {
    type Context = SyncContext<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        // Checkpoints off the writer's latency path (`store::checkpoint`).
        match Checkpointer::start(self.pool.clone(), CHECKPOINT_INTERVAL) {
            Ok(checkpointer) => self.checkpointer = Some(checkpointer),
            Err(e) => tracing::error!(error = %e, "cannot start the WAL checkpoint thread"),
        }
        // No session survives a restart: whatever was online is not.
        match self
            .db
            .run(|c| Ok::<_, PersistError>(hosts::set_offline_all(c)?))
        {
            Ok(n) if n > 0 => tracing::info!(hosts = n, "marked hosts offline at start"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot mark hosts offline at start"),
        }
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.flush();
        self.flush_health(true);
        // Stops the thread once it has written the last points.
        self.stop_point_writer();
        self.db.release();
        // Stops the thread after its last checkpoint.
        self.checkpointer = None;
        Running::Stop
    }
}

impl Persistence {
    /// Starts the writer on its own thread (one: SQLite has one writer, and
    /// one thread keeps per-job ordering trivially).
    pub fn start(pool: Pool, metrics: Arc<Metrics>) -> Addr<Persistence> {
        Self::start_with_backlog(pool, Arc::default(), metrics)
    }

    /// [`Persistence::start`] with the log-line backlog counter the
    /// sessions share (see [`AppendLogs`]).
    pub fn start_with_backlog(
        pool: Pool,
        log_backlog: Arc<LogBacklog>,
        metrics: Arc<Metrics>,
    ) -> Addr<Persistence> {
        SyncArbiter::start(1, move || Persistence {
            pool: pool.clone(),
            db: held_conn::HeldConn::new(pool.clone()),
            logs: Vec::new(),
            progress: HashMap::new(),
            touched: HashMap::new(),
            last_touch_write: Instant::now(),
            failed_attempts: 0,
            batch_started: None,
            metrics: metrics.clone(),
            schedule_marks: Vec::new(),
            log_backlog: log_backlog.clone(),
            failpoint: None,
            catalog: Vec::new(),
            catalog_buffered: 0,
            catalog_attempts: 0,
            catalog_keep: crate::store::catalog::DEFAULT_KEEP,
            checkpointer: None,
            health: Default::default(),
            hellos: Vec::new(),
        })
    }

    /// Writes buffered lines, progress and schedule bookkeeping (and
    /// last-seen when due).
    fn flush(&mut self) {
        self.flush_hellos();
        let t = Instant::now();
        self.flush_logs();
        turn_took("flush logs", t);
        let t = Instant::now();
        self.flush_catalog();
        turn_took("flush catalog", t);
        let t = Instant::now();
        self.flush_progress();
        turn_took("flush progress", t);
        let t = Instant::now();
        self.flush_schedule_marks();
        turn_took("flush schedule marks", t);
        let t = Instant::now();
        self.flush_health(false);
        turn_took("flush health and host metrics", t);
        if !self.touched.is_empty() && self.last_touch_write.elapsed() >= TOUCH_INTERVAL {
            let t = Instant::now();
            let n = self.touched.len();
            self.flush_touched();
            tracing::debug!(
                hosts = n,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "touch flush"
            );
            turn_took("flush touched", t);
        }
    }

    /// Copies the WAL's last frames when the checkpoint thread asks
    /// (`store::checkpoint`); on the [`Flush`] tick only, so that no
    /// agent's or operator's write waits for it.
    fn checkpoint_tail_if_wanted(&mut self) {
        let Some(checkpointer) = &self.checkpointer else {
            return;
        };
        if !checkpointer
            .tail_wanted()
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        let t = Instant::now();
        let tail_wanted = checkpointer.tail_wanted();
        let result = self.db.run(|c| {
            checkpoint_tail(c, tail_wanted);
            Ok::<_, PersistError>(())
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot checkpoint the WAL's tail");
        }
        turn_took("WAL tail checkpoint", t);
    }

    /// Flushes, then runs one low-rate write with a pooled connection.
    fn write<T>(
        &mut self,
        what: &str,
        host_id: &str,
        job_id: Option<&JobId>,
        f: impl FnOnce(&mut store::DbConnection) -> diesel::QueryResult<T>,
    ) -> PersistResult<T> {
        self.flush();
        let t = Instant::now();
        let result = self.db.run(|c| Ok::<_, PersistError>(f(c)?));
        turn_took(what, t);
        if let Err(e) = &result {
            tracing::error!(
                error = %e,
                host_id,
                job_id = job_id.map(JobId::as_str),
                "{what} failed"
            );
        }
        result
    }
}

/// Logs (debug) a writer turn that took longer than [`SLOW_TURN`].
pub(crate) fn turn_took(what: &str, started: Instant) {
    let took = started.elapsed();
    if took >= SLOW_TURN {
        tracing::debug!(what, ms = took.as_secs_f64() * 1e3, "slow writer turn");
    }
}

/// A writer turn longer than this is logged (debug).
const SLOW_TURN: Duration = Duration::from_millis(10);
