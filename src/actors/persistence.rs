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
//! - **Low rate** (hello, job state changes, snapshots, stats, version
//!   bumps, new jobs): typed messages whose reply comes once the write is
//!   durable, so the session can `ack` only then.
//! - **The REST API's writes** ([`RunWrite`], through `Actors::write`): a
//!   closure run in one write transaction, its result the reply, so that
//!   every write of the server goes through this one actor.
//!
//! Ordering: every low-rate message first writes what is buffered, and the
//! mailbox is FIFO, so a job's `job.finished` is written after the log
//! lines its session sent before it. A database error is logged with the
//! host and job ids and returned to the caller; the pool connection is
//! never unwrapped. Each log batch's size and flush lag go to `Metrics`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::metrics::Metrics;
use crate::protocol;
use crate::store::channel::{self, HostLogLine};
use crate::store::jobs::FinishOutcome;
use crate::store::models::{
    Host, HostHello, Job, JobFinish, NewJob, NewJobLog, NewMissedRun, NewRepoStats, NewSnapshot,
};
use crate::store::{self, hosts, jobs, missed_runs, repo_stats, schedule_versions, snapshots};
use crate::store::{JobStatus, Pool};

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

/// Log lines sent to the writer and not yet written or dropped, shared by
/// the sessions and the writer: a session counts lines in ([`add`]) before
/// sending [`AppendLogs`], the writer counts them out as it writes or
/// drops them, and a session pauses reading its socket while the count is
/// high, resuming when [`wait_down_to`] returns (back-pressure).
///
/// [`add`]: LogBacklog::add
/// [`wait_down_to`]: LogBacklog::wait_down_to
#[derive(Debug, Default)]
pub struct LogBacklog {
    lines: AtomicUsize,
    /// Woken each time the writer counts lines out.
    drained: tokio::sync::Notify,
}

impl LogBacklog {
    /// Lines waiting now.
    pub fn len(&self) -> usize {
        self.lines.load(Ordering::Relaxed)
    }

    /// True when no line waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `lines` more are on their way to the writer.
    pub fn add(&self, lines: usize) {
        self.lines.fetch_add(lines, Ordering::Relaxed);
    }

    /// `lines` left the backlog (written, or dropped); wakes the waiters.
    fn done(&self, lines: usize) {
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .lines
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(lines))
            });
        self.drained.notify_waiters();
    }

    /// Returns once at most `low` lines wait: woken by the writer, never
    /// polling.
    pub async fn wait_down_to(&self, low: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a wake-up between the two
            // is not lost.
            drained.as_mut().enable();
            if self.len() <= low {
                return;
            }
            drained.await;
        }
    }
}

/// The writer. Build it with [`Persistence::start`].
pub struct Persistence {
    pool: Pool,
    /// Log lines waiting for the next flush, in arrival order.
    logs: Vec<HostLogLine>,
    /// Latest progress per job: job id → (host id, JSON).
    progress: HashMap<String, (String, String)>,
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
    schedule_marks: Vec<ScheduleMark>,
    /// Log lines on their way here, shared with the sessions.
    log_backlog: Arc<LogBacklog>,
}

impl Actor for Persistence {
    type Context = SyncContext<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        // No session survives a restart: whatever was online is not.
        match self
            .conn()
            .and_then(|mut c| Ok(hosts::set_offline_all(&mut c)?))
        {
            Ok(n) if n > 0 => tracing::info!(hosts = n, "marked hosts offline at start"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot mark hosts offline at start"),
        }
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.flush();
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
            logs: Vec::new(),
            progress: HashMap::new(),
            touched: HashMap::new(),
            last_touch_write: Instant::now(),
            failed_attempts: 0,
            batch_started: None,
            metrics: metrics.clone(),
            schedule_marks: Vec::new(),
            log_backlog: log_backlog.clone(),
        })
    }

    /// Lines left the backlog (written, or dropped).
    fn backlog_done(&self, lines: usize) {
        self.log_backlog.done(lines);
    }

    /// Buffers one line (seq checked); returns false if it was dropped.
    fn buffer_line(&mut self, host_id: String, line: protocol::LogStream) -> bool {
        let Ok(seq) = i64::try_from(line.seq) else {
            tracing::warn!(host_id = %host_id, job_id = %line.job_id, "log seq out of range; dropped");
            return false;
        };
        if self.logs.is_empty() {
            self.batch_started = Some(Instant::now());
        }
        self.logs.push(HostLogLine {
            host_id,
            line: NewJobLog {
                job_id: line.job_id,
                seq,
                ts: line.ts.timestamp_millis(),
                stream: line.stream.into(),
                payload: line.payload,
            },
        });
        true
    }

    fn conn(&self) -> PersistResult<store::PooledConn> {
        self.pool
            .get()
            .map_err(|e| PersistError::Unavailable(e.to_string()))
    }

    /// Writes buffered lines, progress and schedule bookkeeping (and
    /// last-seen when due).
    fn flush(&mut self) {
        self.flush_logs();
        self.flush_progress();
        self.flush_schedule_marks();
        if !self.touched.is_empty() && self.last_touch_write.elapsed() >= TOUCH_INTERVAL {
            self.flush_touched();
        }
    }

    fn flush_logs(&mut self) {
        if self.logs.is_empty() {
            return;
        }
        let result = self
            .conn()
            .and_then(|mut c| Ok(channel::insert_logs_for_hosts(&mut c, &self.logs)?));
        match result {
            Ok(outcome) => {
                if outcome.unknown_job > 0 {
                    tracing::warn!(
                        lines = outcome.unknown_job,
                        "dropped log lines of unknown jobs or of another host's jobs"
                    );
                }
                tracing::trace!(
                    inserted = outcome.inserted,
                    duplicates = outcome.duplicates,
                    "log lines written"
                );
                let lag = self.batch_started.take().map(|t| t.elapsed());
                self.metrics
                    .batch_written(self.logs.len(), lag.unwrap_or_default());
                self.backlog_done(self.logs.len());
                self.logs.clear();
                self.failed_attempts = 0;
            }
            Err(e) => {
                self.failed_attempts += 1;
                let jobs: Vec<&str> = self
                    .logs
                    .iter()
                    .map(|l| l.line.job_id.as_str())
                    .take(5)
                    .collect();
                if self.failed_attempts >= MAX_FLUSH_ATTEMPTS {
                    tracing::error!(error = %e, lines = self.logs.len(), ?jobs, "dropping log lines after repeated write failures");
                    self.backlog_done(self.logs.len());
                    self.logs.clear();
                    self.batch_started = None;
                    self.failed_attempts = 0;
                } else {
                    tracing::warn!(error = %e, lines = self.logs.len(), ?jobs, "writing log lines failed; will retry");
                }
            }
        }
    }

    fn flush_progress(&mut self) {
        if self.progress.is_empty() {
            return;
        }
        let updates: Vec<(String, String, String)> = self
            .progress
            .drain()
            .map(|(job, (host, json))| (host, job, json))
            .collect();
        let result = self
            .conn()
            .and_then(|mut c| Ok(channel::update_progress_batch(&mut c, &updates)?));
        if let Err(e) = result {
            // Progress is a live view; the next report replaces it anyway.
            tracing::warn!(error = %e, jobs = updates.len(), "writing job progress failed");
        }
    }

    fn flush_schedule_marks(&mut self) {
        if self.schedule_marks.is_empty() {
            return;
        }
        let marks = std::mem::take(&mut self.schedule_marks);
        let result = self.conn().and_then(|mut c| {
            Ok(store::write_transaction(&mut c, |c| {
                for mark in &marks {
                    match mark {
                        ScheduleMark::Pushed {
                            host_id,
                            version,
                            now,
                        } => schedule_versions::mark_pushed(c, host_id, *version, *now)?,
                        ScheduleMark::Acked {
                            host_id,
                            version,
                            now,
                        } => schedule_versions::ack(c, host_id, *version, *now)?,
                    };
                }
                Ok::<_, diesel::result::Error>(())
            })?)
        });
        if let Err(e) = result {
            // Bookkeeping only: a host whose ack is not recorded is sent
            // its schedules again at its next hello.
            tracing::warn!(error = %e, marks = marks.len(), "writing schedule pushes and acks failed");
        }
    }

    fn flush_touched(&mut self) {
        let Some(now) = self.touched.values().copied().max() else {
            return;
        };
        let ids: Vec<String> = self.touched.drain().map(|(id, _)| id).collect();
        self.last_touch_write = Instant::now();
        let result = self
            .conn()
            .and_then(|mut c| Ok(hosts::touch_last_seen(&mut c, &ids, now)?));
        if let Err(e) = result {
            tracing::warn!(error = %e, hosts = ids.len(), "writing last-seen times failed");
        }
    }

    /// Flushes, then runs one low-rate write with a pooled connection.
    fn write<T>(
        &mut self,
        what: &str,
        host_id: &str,
        job_id: Option<&str>,
        f: impl FnOnce(&mut store::DbConnection) -> diesel::QueryResult<T>,
    ) -> PersistResult<T> {
        self.flush();
        let result = self.conn().and_then(|mut c| Ok(f(&mut c)?));
        if let Err(e) = &result {
            tracing::error!(error = %e, host_id, job_id, "{what} failed");
        }
        result
    }
}

/// A write of the REST API (or another caller outside the agent channel):
/// `f` runs on the writer's connection inside one write transaction, and
/// its result (or its error) is the reply. Build it with [`RunWrite::new`]
/// or use `Actors::write`. `what` names the write in the error log.
///
/// The closure must not block on anything but the database (hash passwords
/// before sending it): every other write waits behind it.
pub struct RunWrite<T, E> {
    pub what: &'static str,
    #[allow(clippy::type_complexity)] // the boxed closure is the message
    f: Box<dyn FnOnce(&mut store::DbConnection) -> Result<T, E> + Send>,
}

impl<T, E> RunWrite<T, E> {
    /// A write named `what` that runs `f` in one transaction.
    pub fn new(
        what: &'static str,
        f: impl FnOnce(&mut store::DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Self {
        RunWrite {
            what,
            f: Box::new(f),
        }
    }
}

impl<T: 'static, E: 'static> Message for RunWrite<T, E> {
    type Result = Result<T, E>;
}

impl<T, E> Handler<RunWrite<T, E>> for Persistence
where
    T: Send + 'static,
    E: From<PersistError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static,
{
    type Result = Result<T, E>;

    fn handle(&mut self, msg: RunWrite<T, E>, _ctx: &mut Self::Context) -> Self::Result {
        // No flush first: these writes do not depend on buffered log lines
        // or progress, and the next tick writes those anyway.
        let mut conn = self.conn().map_err(|e| {
            tracing::error!(error = %e, "{} failed", msg.what);
            E::from(e)
        })?;
        let result = store::write_transaction(&mut conn, msg.f);
        if let Err(e) = &result {
            tracing::debug!(error = %e, "{} was refused or failed", msg.what);
        }
        result
    }
}

/// Write what is buffered (sent every [`FLUSH_INTERVAL`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for Persistence {
    type Result = ();

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) {
        self.flush();
    }
}

/// Write everything buffered now, including last-seen times, and reply
/// when it is durable (tests, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushAll;

impl Handler<FlushAll> for Persistence {
    type Result = ();

    fn handle(&mut self, _msg: FlushAll, _ctx: &mut Self::Context) {
        self.flush_logs();
        self.flush_progress();
        self.flush_schedule_marks();
        self.flush_touched();
    }
}

/// `log.stream` lines a session collected (buffered). One message per
/// batch rather than per line: each message crosses two threads (the
/// `SyncArbiter`'s forwarder, then this one). The sender has already
/// counted `lines.len()` into the backlog.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendLogs {
    pub host_id: String,
    pub lines: Vec<protocol::LogStream>,
}

impl Handler<AppendLogs> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: AppendLogs, _ctx: &mut Self::Context) {
        let AppendLogs { host_id, lines } = msg;
        let mut dropped = 0;
        for line in lines {
            if !self.buffer_line(host_id.clone(), line) {
                dropped += 1;
            }
        }
        self.backlog_done(dropped);
        if self.logs.len() >= FLUSH_MAX_ROWS {
            self.flush_logs();
        }
    }
}

/// `job.progress` from a host's session (coalesced per job).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordProgress {
    pub host_id: String,
    pub payload: protocol::JobProgress,
}

impl Handler<RecordProgress> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordProgress, _ctx: &mut Self::Context) {
        match serde_json::to_string(&msg.payload) {
            Ok(json) => {
                self.progress
                    .insert(msg.payload.job_id, (msg.host_id, json));
            }
            Err(e) => {
                tracing::warn!(error = %e, job_id = %msg.payload.job_id, "cannot encode progress")
            }
        }
    }
}

/// A frame arrived from the host: its last-seen time is `now` (coalesced).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Touch {
    pub host_id: String,
    pub now: i64,
}

impl Handler<Touch> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: Touch, _ctx: &mut Self::Context) {
        let seen = self.touched.entry(msg.host_id).or_insert(msg.now);
        *seen = (*seen).max(msg.now);
    }
}

/// `hello`: the reported facts, online, last seen. `None` if the host is
/// gone or revoked.
#[derive(Message)]
#[rtype(result = "PersistResult<Option<Host>>")]
pub struct RecordHello {
    pub host_id: String,
    pub payload: protocol::Hello,
    pub now: i64,
}

impl Handler<RecordHello> for Persistence {
    type Result = PersistResult<Option<Host>>;

    fn handle(&mut self, msg: RecordHello, _ctx: &mut Self::Context) -> Self::Result {
        let hello = HostHello {
            hostname: msg.payload.hostname,
            os: msg.payload.os,
            arch: msg.payload.arch,
            agent_version: Some(msg.payload.agent_version),
            restic_version: Some(msg.payload.restic_version),
            boot_time: msg.payload.boot_time.map(|t| t.timestamp_millis()),
            // A list of strings always encodes; `None` would keep the old value.
            capabilities: serde_json::to_string(&msg.payload.capabilities).ok(),
        };
        self.write("recording hello", &msg.host_id, None, |c| {
            hosts::update_from_hello(c, &msg.host_id, &hello, msg.now)
        })
    }
}

/// The host's session ended (sent by the registry for the current session
/// only, so a superseded session never marks its host offline).
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct MarkOffline {
    pub host_id: String,
    pub now: i64,
}

impl Handler<MarkOffline> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: MarkOffline, _ctx: &mut Self::Context) -> Self::Result {
        self.touched.remove(&msg.host_id);
        self.write("marking offline", &msg.host_id, None, |c| {
            hosts::set_online(c, &msg.host_id, false, msg.now)
        })
    }
}

/// A job to create (`queued`).
#[derive(Message)]
#[rtype(result = "PersistResult<Job>")]
pub struct InsertJob {
    pub new: NewJob,
}

impl Handler<InsertJob> for Persistence {
    type Result = PersistResult<Job>;

    fn handle(&mut self, msg: InsertJob, _ctx: &mut Self::Context) -> Self::Result {
        let host_id = msg.new.host_id.clone();
        self.write("creating a job", &host_id, Some(&msg.new.id), |c| {
            jobs::insert(c, &msg.new)
        })
    }
}

/// The jobs of one `schedule.fire`, de-duplicated per (schedule, time,
/// group). Replies with the jobs created now.
#[derive(Message)]
#[rtype(result = "PersistResult<Vec<Job>>")]
pub struct InsertFireJobs {
    pub host_id: String,
    pub schedule_id: String,
    pub scheduled_at: i64,
    pub jobs: Vec<NewJob>,
}

impl Handler<InsertFireJobs> for Persistence {
    type Result = PersistResult<Vec<Job>>;

    fn handle(&mut self, msg: InsertFireJobs, _ctx: &mut Self::Context) -> Self::Result {
        self.write("creating scheduled jobs", &msg.host_id, None, |c| {
            channel::insert_fire_jobs(c, &msg.schedule_id, msg.scheduled_at, &msg.jobs)
        })
    }
}

/// `command.run` went out for a job.
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct MarkDispatched {
    pub host_id: String,
    pub job_id: String,
    pub now: i64,
}

impl Handler<MarkDispatched> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: MarkDispatched, _ctx: &mut Self::Context) -> Self::Result {
        self.write(
            "marking a job dispatched",
            &msg.host_id,
            Some(&msg.job_id),
            |c| jobs::mark_dispatched(c, &msg.job_id, msg.now),
        )
    }
}

/// `command.result`: accepted, or refused (the job fails with the error).
#[derive(Message)]
#[rtype(result = "PersistResult<CommandOutcome>")]
pub struct RecordCommandResult {
    pub host_id: String,
    pub payload: protocol::CommandResult,
    pub now: i64,
}

/// What a `command.result` did.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    /// Accepted (or a repeat of an acceptance).
    Accepted,
    /// Refused: the job is now failed.
    Refused(Box<FinishOutcome>),
}

impl Handler<RecordCommandResult> for Persistence {
    type Result = PersistResult<CommandOutcome>;

    fn handle(&mut self, msg: RecordCommandResult, _ctx: &mut Self::Context) -> Self::Result {
        let job_id = msg.payload.job_id.clone();
        if msg.payload.accepted {
            self.write(
                "recording an accepted job",
                &msg.host_id,
                Some(&job_id),
                |c| channel::mark_accepted_for_host(c, &msg.host_id, &job_id, msg.now),
            )
            .map(|_| CommandOutcome::Accepted)
        } else {
            let reason = msg
                .payload
                .error
                .unwrap_or_else(|| "no reason given".to_owned());
            let finish = JobFinish {
                status: JobStatus::Failed,
                finished_at: msg.now,
                exit_code: None,
                error: Some(format!("the agent refused the job: {reason}")),
                warning: None,
                stats: None,
            };
            self.write(
                "recording a refused job",
                &msg.host_id,
                Some(&job_id),
                |c| channel::finish_for_host(c, &msg.host_id, &job_id, &finish),
            )
            .map(|outcome| CommandOutcome::Refused(Box::new(outcome)))
        }
    }
}

/// `job.started`: queued → running. Replies whether it changed.
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct RecordJobStarted {
    pub host_id: String,
    pub payload: protocol::JobStarted,
}

impl Handler<RecordJobStarted> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: RecordJobStarted, _ctx: &mut Self::Context) -> Self::Result {
        let started_at = msg.payload.started_at.timestamp_millis();
        self.write(
            "recording a started job",
            &msg.host_id,
            Some(&msg.payload.job_id),
            |c| channel::mark_started_for_host(c, &msg.host_id, &msg.payload.job_id, started_at),
        )
    }
}

/// `job.finished`: the job becomes terminal, once. Replies after the write
/// (and the job's earlier log lines) are durable.
#[derive(Message)]
#[rtype(result = "PersistResult<FinishOutcome>")]
pub struct RecordJobFinished {
    pub host_id: String,
    pub payload: protocol::JobFinished,
}

/// The row change a `job.finished` makes. A `succeeded` report with an
/// `error` (restic exit 3) keeps it as a warning.
pub fn finish_from_report(report: &protocol::JobFinished) -> JobFinish {
    let status: JobStatus = protocol::JobStatus::from(report.status).into();
    let (error, warning) = match report.status {
        protocol::FinishStatus::Succeeded => (None, report.error.clone()),
        _ => (report.error.clone(), None),
    };
    JobFinish {
        status,
        finished_at: report.finished_at.timestamp_millis(),
        exit_code: Some(report.exit_code),
        error,
        warning,
        // A JSON map always encodes; were it ever to fail, the job still
        // finishes, without its summary.
        stats: report
            .stats
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok()),
    }
}

impl Handler<RecordJobFinished> for Persistence {
    type Result = PersistResult<FinishOutcome>;

    fn handle(&mut self, msg: RecordJobFinished, _ctx: &mut Self::Context) -> Self::Result {
        let finish = finish_from_report(&msg.payload);
        self.write(
            "recording a finished job",
            &msg.host_id,
            Some(&msg.payload.job_id),
            |c| channel::finish_for_host(c, &msg.host_id, &msg.payload.job_id, &finish),
        )
    }
}

/// A heartbeat's `active_job_ids`: running jobs it does not list fail
/// ("agent lost the job"). Replies with the jobs failed.
#[derive(Message)]
#[rtype(result = "PersistResult<Vec<Job>>")]
pub struct ReconcileRunning {
    pub host_id: String,
    pub active_job_ids: Vec<String>,
    pub now: i64,
}

impl Handler<ReconcileRunning> for Persistence {
    type Result = PersistResult<Vec<Job>>;

    fn handle(&mut self, msg: ReconcileRunning, _ctx: &mut Self::Context) -> Self::Result {
        self.write("reconciling running jobs", &msg.host_id, None, |c| {
            channel::fail_lost_jobs(c, &msg.host_id, &msg.active_job_ids, msg.now)
        })
    }
}

/// An operator cancels a job that has not started. `None` if it is no
/// longer queued.
#[derive(Message)]
#[rtype(result = "PersistResult<Option<Job>>")]
pub struct CancelQueued {
    pub job_id: String,
    pub now: i64,
}

/// The error a job cancelled by an operator carries.
pub const CANCELLED_BY_OPERATOR: &str = "cancelled by an operator";

impl Handler<CancelQueued> for Persistence {
    type Result = PersistResult<Option<Job>>;

    fn handle(&mut self, msg: CancelQueued, _ctx: &mut Self::Context) -> Self::Result {
        self.write("cancelling a queued job", "", Some(&msg.job_id), |c| {
            channel::cancel_if_queued(c, &msg.job_id, CANCELLED_BY_OPERATOR, msg.now)
        })
    }
}

/// `snapshots.report`: replaces the host's snapshot projection.
#[derive(Message)]
#[rtype(result = "PersistResult<usize>")]
pub struct ReplaceSnapshots {
    pub host_id: String,
    pub payload: protocol::SnapshotsReport,
    pub now: i64,
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// A counter for a BIGINT column; a value past `i64::MAX` is stored as
/// unknown rather than wrapped.
fn to_i64(value: Option<u64>) -> Option<i64> {
    value.and_then(|v| i64::try_from(v).ok())
}

impl Handler<ReplaceSnapshots> for Persistence {
    type Result = PersistResult<usize>;

    fn handle(&mut self, msg: ReplaceSnapshots, _ctx: &mut Self::Context) -> Self::Result {
        let rows: Vec<NewSnapshot> = msg
            .payload
            .snapshots
            .iter()
            .map(|s| NewSnapshot {
                snapshot_id: s.id.clone(),
                short_id: s.short_id.clone(),
                time: s.time.timestamp_millis(),
                hostname: s.hostname.clone(),
                paths: json_list(&s.paths),
                tags: json_list(&s.tags),
                size_bytes: to_i64(s.size_bytes),
                file_count: to_i64(s.file_count),
            })
            .collect();
        self.write("replacing snapshots", &msg.host_id, None, |c| {
            snapshots::replace_for_host(c, &msg.host_id, &rows, msg.now)
        })
    }
}

/// `repo.stats`: one sample of the time series.
#[derive(Message)]
#[rtype(result = "PersistResult<()>")]
pub struct StoreRepoStats {
    pub host_id: String,
    pub payload: protocol::RepoStats,
    pub now: i64,
}

impl Handler<StoreRepoStats> for Persistence {
    type Result = PersistResult<()>;

    fn handle(&mut self, msg: StoreRepoStats, _ctx: &mut Self::Context) -> Self::Result {
        let p = &msg.payload;
        let row = NewRepoStats {
            id: store::new_id(),
            host_id: msg.host_id.clone(),
            recorded_at: msg.now,
            size_bytes: to_i64(Some(p.size_bytes)),
            snapshot_count: to_i64(Some(p.snapshot_count)),
            dedup_ratio: Some(p.dedup_ratio),
            last_check_at: p.last_check_at.map(|t| t.timestamp_millis()),
            last_check_status: p.last_check_status.clone(),
            lock_state: Some(p.lock_state.as_str().to_owned()),
        };
        self.write("storing repository stats", &msg.host_id, None, |c| {
            repo_stats::insert(c, &row).map(|_| ())
        })
    }
}

/// A schedule push or ack, buffered until the next flush: every hello
/// and every schedule change makes one of each per host, and one
/// transaction per tick for all of them replaces two per host.
enum ScheduleMark {
    Pushed {
        host_id: String,
        version: i64,
        now: i64,
    },
    Acked {
        host_id: String,
        version: i64,
        now: i64,
    },
}

/// `schedule.set` with `version` went out to the host (buffered; written
/// with the next flush, before any later low-rate write).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkSchedulePushed {
    pub host_id: String,
    pub version: i64,
    pub now: i64,
}

impl Handler<MarkSchedulePushed> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: MarkSchedulePushed, _ctx: &mut Self::Context) {
        self.schedule_marks.push(ScheduleMark::Pushed {
            host_id: msg.host_id,
            version: msg.version,
            now: msg.now,
        });
    }
}

/// `schedule.ack`: the host applied `version` (buffered like
/// [`MarkSchedulePushed`]). Recorded only if it is still the host's
/// current version when written; the buffer keeps arrival order and is
/// written before any later version bump.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordScheduleAck {
    pub host_id: String,
    pub version: i64,
    pub now: i64,
}

impl Handler<RecordScheduleAck> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordScheduleAck, _ctx: &mut Self::Context) {
        self.schedule_marks.push(ScheduleMark::Acked {
            host_id: msg.host_id,
            version: msg.version,
            now: msg.now,
        });
    }
}

/// A host's schedules, groups or repository changed: bump its version.
/// Replies with the new version.
#[derive(Message)]
#[rtype(result = "PersistResult<i64>")]
pub struct BumpScheduleVersion {
    pub host_id: String,
}

impl Handler<BumpScheduleVersion> for Persistence {
    type Result = PersistResult<i64>;

    fn handle(&mut self, msg: BumpScheduleVersion, _ctx: &mut Self::Context) -> Self::Result {
        self.write("bumping the schedule version", &msg.host_id, None, |c| {
            schedule_versions::bump(c, &msg.host_id)
        })
    }
}

/// Revoke a host's token. Replies false if it did not exist or was
/// already revoked.
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct RevokeHost {
    pub host_id: String,
    pub now: i64,
}

impl Handler<RevokeHost> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: RevokeHost, _ctx: &mut Self::Context) -> Self::Result {
        self.write("revoking a host", &msg.host_id, None, |c| {
            hosts::revoke(c, &msg.host_id, msg.now)
        })
    }
}

/// A schedule time passed without a fire. Replies true if this call
/// recorded it (false: already known).
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct RecordMissedRun {
    pub missed: NewMissedRun,
}

impl Handler<RecordMissedRun> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: RecordMissedRun, _ctx: &mut Self::Context) -> Self::Result {
        let host_id = msg.missed.host_id.clone();
        self.write("recording a missed run", &host_id, None, |c| {
            missed_runs::insert_ignore(c, &msg.missed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::models::NewHost;
    use crate::store::JobTrigger;

    fn host(id: &str, now: i64) -> NewHost {
        NewHost {
            id: id.to_owned(),
            hostname: id.to_owned(),
            display_name: None,
            labels: "{}".into(),
            os: "linux".into(),
            arch: "amd64".into(),
            agent_version: None,
            restic_version: None,
            boot_time: None,
            capabilities: "[]".into(),
            agent_token_hash: format!("hash-{id}"),
            enrolled_at: now,
            updated_at: now,
        }
    }

    fn line(job_id: &str, seq: u64) -> protocol::LogStream {
        protocol::LogStream {
            job_id: job_id.to_owned(),
            seq,
            ts: chrono::Utc::now(),
            stream: protocol::LogStreamKind::Stdout,
            payload: format!("line {seq}"),
        }
    }

    /// A `RunWrite` commits what its closure wrote when it returns Ok and
    /// rolls all of it back when it returns Err; the reply is the closure's.
    #[actix_web::test]
    async fn run_write_is_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let pool = store::connect(&url, 4).unwrap();
        let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
        let now = store::now_ms();
        let failed: Result<(), PersistError> = writer
            .send(RunWrite::new("a failing write", move |c| {
                hosts::insert(c, &host("h1", now))?;
                Err(PersistError::Database("refused after the insert".into()))
            }))
            .await
            .unwrap();
        assert!(failed.is_err());
        let mut c = pool.get().unwrap();
        assert!(hosts::get(&mut c, "h1").unwrap().is_none(), "rolled back");
        let written: Result<String, PersistError> = writer
            .send(RunWrite::new("a write", move |c| {
                let h = hosts::insert(c, &host("h2", now))?;
                Ok(h.id)
            }))
            .await
            .unwrap();
        assert_eq!(written.unwrap(), "h2");
        assert!(hosts::get(&mut c, "h2").unwrap().is_some(), "committed");
    }

    /// A paused session's wait ends when the writer counts lines out to
    /// the low mark (woken, not polled), and at once if already there.
    #[tokio::test]
    async fn backlog_wait_is_woken_by_the_writer() {
        let backlog = Arc::new(LogBacklog::default());
        backlog.add(10);
        let waiter = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.wait_down_to(4).await }
        });
        tokio::task::yield_now().await;
        backlog.done(3);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "7 lines still wait");
        backlog.done(3);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        backlog.wait_down_to(4).await;
        backlog.done(100);
        assert!(backlog.is_empty(), "never below zero");
    }

    /// Batched lines are counted out of the shared backlog once written,
    /// and so are lines dropped for a bad seq.
    #[actix_web::test]
    async fn backlog_counts_down_as_lines_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let pool = store::connect(&url, 4).unwrap();
        let now = store::now_ms();
        let job = {
            let mut c = pool.get().unwrap();
            hosts::insert(&mut c, &host("h1", now)).unwrap();
            let new = NewJob::new(
                store::new_id(),
                "h1".into(),
                crate::store::JobKind::Check,
                JobTrigger::Manual,
                now,
            );
            jobs::insert(&mut c, &new).unwrap()
        };
        let backlog = Arc::new(LogBacklog::default());
        let writer = Persistence::start_with_backlog(
            pool.clone(),
            backlog.clone(),
            Arc::new(Metrics::new()),
        );
        let mut lines: Vec<_> = (1..=3).map(|seq| line(&job.id, seq)).collect();
        lines.push(line(&job.id, u64::MAX));
        backlog.add(lines.len());
        writer.do_send(AppendLogs {
            host_id: "h1".into(),
            lines,
        });
        backlog.add(1);
        writer.do_send(AppendLogs {
            host_id: "h1".into(),
            lines: vec![line(&job.id, 4)],
        });
        writer.send(FlushAll).await.unwrap();
        assert_eq!(backlog.len(), 0);
        let mut c = pool.get().unwrap();
        let stored = crate::store::job_logs::list_after(&mut c, &job.id, 0, 100).unwrap();
        assert_eq!(
            stored.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }

    /// Buffered schedule pushes and acks land with the next flush, in
    /// order with version bumps: a late ack of an older version is not
    /// recorded.
    #[actix_web::test]
    async fn schedule_marks_are_buffered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let pool = store::connect(&url, 4).unwrap();
        let now = store::now_ms();
        hosts::insert(&mut pool.get().unwrap(), &host("h1", now)).unwrap();
        let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
        let mark = |version| MarkSchedulePushed {
            host_id: "h1".into(),
            version,
            now,
        };
        let ack = |version| RecordScheduleAck {
            host_id: "h1".into(),
            version,
            now,
        };
        writer.do_send(mark(1));
        writer.do_send(ack(1));
        let bumped = writer
            .send(BumpScheduleVersion {
                host_id: "h1".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bumped, 2);
        writer.do_send(ack(1));
        writer.send(FlushAll).await.unwrap();
        let versions = |pool: &Pool| {
            schedule_versions::get(&mut pool.get().unwrap(), "h1")
                .unwrap()
                .unwrap()
        };
        let v = versions(&pool);
        assert_eq!((v.version, v.pushed_version, v.acked_version), (2, 1, 1));
        writer.do_send(mark(2));
        writer.do_send(ack(2));
        writer.send(FlushAll).await.unwrap();
        let v = versions(&pool);
        assert_eq!((v.version, v.pushed_version, v.acked_version), (2, 2, 2));
    }

    /// A job's buffered log lines are durable when its `job.finished` is
    /// acknowledged; lines a host sends for another host's job are dropped,
    /// and another host cannot finish the job.
    #[actix_web::test]
    async fn finish_is_written_after_buffered_lines_and_hosts_are_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t.db").display().to_string();
        let pool = store::connect(&url, 4).unwrap();
        let now = store::now_ms();
        let job = {
            let mut c = pool.get().unwrap();
            hosts::insert(&mut c, &host("h1", now)).unwrap();
            hosts::insert(&mut c, &host("h2", now)).unwrap();
            let new = NewJob::new(
                store::new_id(),
                "h1".into(),
                crate::store::JobKind::Check,
                JobTrigger::Manual,
                now,
            );
            jobs::insert(&mut c, &new).unwrap()
        };
        let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
        writer.do_send(AppendLogs {
            host_id: "h1".into(),
            lines: (1..=3).map(|seq| line(&job.id, seq)).collect(),
        });
        writer.do_send(AppendLogs {
            host_id: "h2".into(),
            lines: vec![line(&job.id, 4)],
        });
        let report = protocol::JobFinished {
            job_id: job.id.clone(),
            status: protocol::FinishStatus::Succeeded,
            exit_code: 3,
            finished_at: chrono::Utc::now(),
            stats: None,
            error: Some("some files could not be read".into()),
        };
        let foreign = writer
            .send(RecordJobFinished {
                host_id: "h2".into(),
                payload: report.clone(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(foreign, FinishOutcome::NotFound);
        let outcome = writer
            .send(RecordJobFinished {
                host_id: "h1".into(),
                payload: report,
            })
            .await
            .unwrap()
            .unwrap();
        let FinishOutcome::Applied(done) = outcome else {
            panic!("expected the finish to apply, got {outcome:?}");
        };
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(
            done.warning.as_deref(),
            Some("some files could not be read")
        );
        assert_eq!(done.error, None);
        let mut c = pool.get().unwrap();
        let lines = crate::store::job_logs::list_after(&mut c, &job.id, 0, 100).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}
