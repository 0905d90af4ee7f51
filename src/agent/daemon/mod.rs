//! The running agent: one task that owns all of the agent's state and
//! reacts to everything that can happen — a frame from the server, a job
//! ending, a cron time, a heartbeat tick, a reconnect timer, shutdown.
//!
//! State and who owns it (all here, nothing shared):
//!
//! - the [`Journal`] (jobs and outbox on disk) and the [`CronTable`];
//! - the repository settings from `config.update` (also sealed on disk,
//!   [`SealedSettings`], for backups while the server is away), and those
//!   of other hosts' repositories that accepted restores read (memory
//!   only);
//! - the [`LogSpool`]: log lines that could not be sent, kept on disk
//!   until the server acked their job's end;
//! - Docker discovery ([`Discovery`]: a watcher beside the loop hands
//!   its reports in through the `select!`; the latest is sent after
//!   every `hello`);
//! - the service health checks ([`HealthChecks`]: each probe runs beside
//!   the loop, its result comes back through the `select!`);
//! - the snapshot downloads streaming beside it ([`Downloads`]: each its
//!   own `restic dump`, read only as fast as the server grants credits);
//! - the job queue and the one piece of restic work in flight
//!   ([`Busy`]: a job, or the snapshot/stats reports after one) — jobs run
//!   one at a time, in acceptance order, because restic locks the
//!   repository;
//! - the connection: the socket when up, else the pending attempt or the
//!   back-off timer.
//!
//! Work in flight is a future polled by the same `select!` loop (not a
//! spawned task), so dropping [`run`] drops restic with it (`kill_on_drop`),
//! which is what an in-process "kill" in tests relies on.
//!
//! After a real crash (`kill -9`, power loss) the restic of the running job
//! may outlive the agent, or die holding its repository lock. The job's
//! journal record names restic's process, so the restarted agent first
//! stops that restic if it still runs (SIGINT, SIGKILL after the grace
//! period), then, once the repository settings arrive and before any other
//! job, runs `restic unlock` to remove the stale lock.
//!
//! Ordering rules from PROTOCOL.md that this file implements:
//! `command.run` is journaled before `command.result {accepted: true}`;
//! after `hello` the outbox is replayed, then pending schedule fires are
//! sent, then heartbeats every 30 s carry `active_job_ids` (running and
//! queued jobs).
//!
//! While the server is away (issue 14 §6), log lines go to the spool and
//! are sent after the next `hello` (before their job's `job.finished`);
//! a backup schedule's fire still unsent `offline_grace_seconds` after it
//! was due is run here, reported with `job.report` (outbox) and never
//! sent as a fire.
//!
//! Files: this one holds the state and the `select!` loop; `link` the
//! connection and the server's messages; `work` the restic work, the local
//! schedule's fires and shutdown; `offline` the spool and the backups run
//! while the server is away.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use super::config::{AgentConfig, Secret};
use super::connection::{Backoff, ConnectError, WsStream};
use super::cron::{Clock, CronTable, SystemClock};
use super::discovery::Discovery;
use super::download::Downloads;
use super::health::HealthChecks;
use super::journal::{JobRecord, JobState, Journal, JournalError};
use super::offline::sealed::SealedSettings;
use super::offline::spool::LogSpool;
use super::platform::{ProcessIdentity, StateLock};
use super::process::StopReason;
use super::reports::{Reports, RestoreSize};
// Re-exported: its home was this file.
mod link;
mod offline;
mod work;

pub use super::reports::REPORT_TIMEOUT;
use super::restic::{RepoSettings, ResticHost, ResticVersion};
use super::restore::SourceRepos;
use super::runner::{self, sleep_until_opt};
use crate::protocol::{AgentToServer, JobFinished};

/// Time between two heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// Longest `restic version` may take.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(15);

/// Time a restic left running by a crashed agent gets to exit after SIGINT
/// before its process group is killed.
pub const ORPHAN_GRACE: Duration = runner::CANCEL_GRACE;

/// Longest wait for a stopped leftover restic to be reaped by init (until
/// then restic counts its lock as held, so `restic unlock` would keep it).
pub const ORPHAN_REAP_WAIT: Duration = Duration::from_secs(30);

/// Longest the stale-lock cleanup (`restic unlock`) may run.
pub const UNLOCK_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Finished, acknowledged jobs older than this are dropped from the journal.
pub const JOURNAL_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(14);

/// Live messages (log lines, progress) buffered between the job and the
/// socket; when full, the job waits (and so restic), memory does not grow.
pub const LIVE_BUFFER: usize = 1024;

/// `hello.restic_version` when restic cannot be run.
pub const UNKNOWN_RESTIC_VERSION: &str = "unknown";

/// Optional features this agent has, sent in `hello.capabilities` (the
/// server sends nothing that needs one missing here:
/// `protocol::message_capabilities`).
pub const CAPABILITIES: &[&str] = &[
    crate::protocol::CAPABILITY_ACTIVE_JOB_IDS,
    crate::protocol::CAPABILITY_CANCEL,
    crate::protocol::CAPABILITY_CATALOG,
    crate::protocol::CAPABILITY_DOWNLOAD,
    crate::protocol::CAPABILITY_DRILL,
    crate::protocol::CAPABILITY_DURABLE_OUTBOX,
    crate::protocol::CAPABILITY_HEALTH,
    crate::protocol::CAPABILITY_HOOKS,
    crate::protocol::CAPABILITY_LOCAL_CRON,
    crate::protocol::CAPABILITY_OFFLINE_BACKUP,
    crate::protocol::CAPABILITY_RESTORE,
];

/// Why the agent could not start (after start-up it never gives up).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state directory could not be created or locked.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The journal could not be opened or recovered.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Runs the agent until `shutdown` resolves: connects (and reconnects),
/// runs jobs, fires schedules. On shutdown a running restic is stopped and
/// its result kept in the outbox; queued jobs stay journaled and run after
/// the next start.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    run_with_clock(config, Arc::new(SystemClock), shutdown).await
}

/// [`run`] with the local schedule reading the time from `clock` (tests
/// shift it to make a cron time come within seconds).
pub async fn run_with_clock(
    config: AgentConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let span = tracing::info_span!("agent", host_id = %config.host_id);
    async move {
        let mut daemon = Daemon::open(config, clock)?;
        daemon.dump_capabilities = crate::agent::dump::detect::capabilities().await;
        if !daemon.dump_capabilities.is_empty() {
            tracing::info!(capabilities = ?daemon.dump_capabilities, "database dump tools found");
        }
        if let Some(docker) =
            crate::agent::discovery::connect(daemon.config.docker_host.as_deref()).await
        {
            tracing::info!("Docker Engine found: its containers are discovered");
            daemon.discovery = Discovery::start(docker);
        }
        daemon.reports_next = Instant::now() + daemon.report_interval();
        daemon.main_loop(shutdown).await;
        Ok(())
    }
    .instrument(span)
    .await
}

/// The output of the restic work in flight.
enum Done {
    Job(JobFinished),
    Reports(Reports),
    /// Leftover restic processes of a crashed run were dealt with.
    OrphansStopped,
    /// `restic unlock` ran; whether it succeeded.
    Unlocked(bool),
}

/// The restic work in flight.
enum Busy {
    /// A job; `stop` asks it to end.
    Job {
        record: Box<JobRecord>,
        stop: watch::Sender<Option<StopReason>>,
        work: BoxFuture<'static, JobFinished>,
    },
    /// The reports after a job.
    Reports { work: BoxFuture<'static, Reports> },
    /// Stopping the restic processes a crashed run left behind.
    StopOrphans { work: BoxFuture<'static, ()> },
    /// The stale-lock cleanup after a crash.
    Unlock { work: BoxFuture<'static, bool> },
}

/// The live connection.
struct Link {
    ws: WsStream,
    since: Instant,
    heartbeat: Interval,
}

type Connecting = BoxFuture<'static, (Result<WsStream, ConnectError>, Option<ResticVersion>)>;

struct Daemon {
    config: AgentConfig,
    journal: Journal,
    cron: CronTable,
    /// The local schedule's time source.
    clock: Arc<dyn Clock>,
    /// Restic processes of jobs interrupted by a crash (job id, process),
    /// to stop before anything else runs.
    orphans: Vec<(String, ProcessIdentity)>,
    /// Whether `restic unlock` is due before the next job (a crash may
    /// have left a stale lock); tried once per start.
    unlock_due: bool,
    /// Repository settings from `config.update` (or, until one arrives,
    /// from the sealed file).
    repo: RepoSettings,
    /// Where `repo` is kept sealed across restarts.
    sealed: SealedSettings,
    /// The config version of `repo` (the last applied `config.update`'s,
    /// or the sealed file's): `hello.last_known_config_version` and
    /// `heartbeat.config_version`. `None` while no versioned settings are
    /// held, so that the server sends them.
    config_version: Option<u64>,
    /// Fires (schedule id, time) whose backups run here while the server
    /// is away but which stay pending for a group only the server can
    /// run (memory only: after a restart the journal says they ran).
    ran_offline: HashSet<(String, chrono::DateTime<Utc>)>,
    /// Log lines that could not be sent, on disk until acked.
    spool: LogSpool,
    /// Other hosts' repositories that accepted restores read; memory only.
    source_repos: SourceRepos,
    /// Dump passwords of accepted jobs, by job id; memory only (the
    /// journal holds the command without them).
    dump_passwords: HashMap<String, Secret>,
    /// `dump:<driver>` and `docker`, found at start, sent in `hello`.
    dump_capabilities: Vec<String>,
    /// Docker discovery (on when the Engine answered at start; sends
    /// `discovery` in `hello` then).
    discovery: Discovery,
    /// Whether repository settings are known: a `config.update` arrived
    /// since start, or the sealed settings of an earlier run opened.
    /// Recovered jobs wait for them.
    config_received: bool,
    restic: ResticHost,
    queue: VecDeque<JobRecord>,
    busy: Option<Busy>,
    /// Whether `snapshots.report` and `repo.stats` are to be collected
    /// once no job waits (after a backup or forget, on the interval, or
    /// after a job stopped them).
    reports_due: bool,
    /// When the reports are due again at the latest (`report_interval_seconds`).
    reports_next: Instant,
    /// The last restore size measured (at most daily; memory only: a
    /// restart measures it again).
    restore_size: Option<RestoreSize>,
    /// Snapshot downloads streaming to the server (beside the job).
    downloads: Downloads,
    live_tx: mpsc::Sender<AgentToServer>,
    live_rx: mpsc::Receiver<AgentToServer>,
    link: Option<Link>,
    connecting: Option<Connecting>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// Service health checks and their probes in flight (`health.set`).
    health: HealthChecks,
    /// Live directory listings (`catalog.list`) running beside the job;
    /// dropping the set (the daemon) stops their restic.
    listings: tokio::task::JoinSet<()>,
    /// Held for the daemon's lifetime: one agent per state directory.
    _lock: StateLock,
}

impl Daemon {
    /// Locks the state directory, opens and repairs the journal, loads the
    /// schedule, and queues the jobs accepted but not started before.
    fn open(config: AgentConfig, clock: Arc<dyn Clock>) -> Result<Self, AgentError> {
        let state_dir = config.state_dir.clone();
        let dir_error = |source| AgentError::StateDir {
            path: state_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&state_dir).map_err(dir_error)?;
        let lock = StateLock::acquire(&state_dir.join("agent.lock")).map_err(dir_error)?;
        let journal = Journal::open(&state_dir)?;
        let now = Utc::now();
        let recovery = journal.recover(now)?;
        let queue: VecDeque<JobRecord> = recovery.queued.into();
        let orphans: Vec<(String, ProcessIdentity)> = recovery
            .interrupted
            .into_iter()
            .filter_map(|job| Some((job.job_id, job.restic?)))
            .collect();
        let unlock_due = journal.unlock_needed();
        match journal.prune(now - JOURNAL_RETENTION) {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "old finished jobs pruned from the journal"),
            Err(err) => tracing::warn!("cannot prune the journal: {err}"),
        }
        let mut spool = LogSpool::open(&state_dir).map_err(dir_error)?;
        for job_id in spool.job_ids() {
            // Spools whose job's end the server acked before a crash.
            let done = match journal.job(&job_id) {
                Ok(Some(record)) => matches!(record.state, JobState::Finished { acked: true, .. }),
                Ok(None) => true,
                Err(_) => false,
            };
            if done {
                if let Err(err) = spool.remove(&job_id) {
                    tracing::warn!(job_id = %job_id, "cannot remove a delivered log spool: {err}");
                }
            }
        }
        let sealed = SealedSettings::new(&state_dir, &config.host_id);
        let restored = match sealed.load() {
            Ok(restored) => restored,
            Err(err) => {
                tracing::warn!("sealed repository settings not used: {err}");
                None
            }
        };
        if let Some(kept) = &restored {
            tracing::info!(
                config_version = kept.config_version,
                "repository settings restored from the sealed file"
            );
        }
        let mut cron = CronTable::load(&state_dir);
        // Times that passed while the agent was down fire once, now.
        cron.tick(clock.now());
        if !queue.is_empty() {
            tracing::info!(
                count = queue.len(),
                "jobs accepted before the restart will run"
            );
        }
        let (live_tx, live_rx) = mpsc::channel(LIVE_BUFFER);
        let mut restic = ResticHost::new(config.restic_binary.clone(), &state_dir);
        restic.hostname = Some(config.hostname());
        Ok(Self {
            config,
            journal,
            cron,
            clock,
            orphans,
            unlock_due,
            config_received: restored.is_some(),
            config_version: restored.as_ref().and_then(|kept| kept.config_version),
            repo: restored.map(|kept| kept.settings).unwrap_or_default(),
            sealed,
            spool,
            ran_offline: HashSet::new(),
            source_repos: SourceRepos::default(),
            dump_passwords: HashMap::new(),
            dump_capabilities: Vec::new(),
            discovery: Discovery::default(),
            restic,
            queue,
            busy: None,
            reports_due: false,
            reports_next: Instant::now(),
            restore_size: None,
            downloads: Downloads::default(),
            live_tx,
            live_rx,
            link: None,
            connecting: None,
            retry_at: None,
            backoff: Backoff::new(),
            health: HealthChecks::default(),
            listings: tokio::task::JoinSet::new(),
            _lock: lock,
        })
    }

    async fn main_loop(&mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        self.connecting = Some(self.connect_attempt());
        loop {
            self.start_next_work().await;
            let now = self.clock.now();
            let cron_wake = match self.next_offline_due() {
                // At least a second apart: a fire that cannot be run now
                // is tried again, never in a tight loop.
                Some(due) => self
                    .cron
                    .next_wake(now)
                    .min(due.max(now + chrono::TimeDelta::seconds(1))),
                None => self.cron.next_wake(now),
            };
            let cron_sleep = (cron_wake - now).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                () = &mut shutdown => break,
                (result, version) = poll_opt(&mut self.connecting) => {
                    self.connecting = None;
                    if version.is_some() {
                        self.restic.version = version;
                    }
                    match result {
                        Ok(ws) => self.on_connected(ws).await,
                        Err(err) => self.on_connect_failed(&err),
                    }
                }
                () = sleep_until_opt(self.retry_at) => {
                    self.retry_at = None;
                    self.connecting = Some(self.connect_attempt());
                }
                event = link_event(&mut self.link) => match event {
                    LinkEvent::Frame(frame) => self.on_frame(frame).await,
                    LinkEvent::HeartbeatDue => self.send_heartbeat().await,
                },
                Some(message) = self.live_rx.recv() => self.send_live(message).await,
                done = busy_done(&mut self.busy) => self.on_work_done(done).await,
                event = self.downloads.next() => self.on_download_event(event).await,
                () = tokio::time::sleep(cron_sleep) => self.on_cron_tick().await,
                () = sleep_until_opt(self.health.next_wake()) => {
                    let report = self.health.tick(Instant::now());
                    self.send_health(report).await;
                }
                Some(done) = self.health.next_done() => {
                    let report = self.health.on_done(done, Instant::now());
                    self.send_health(report).await;
                }
                report = self.discovery.next() => {
                    self.send_live(AgentToServer::from(report)).await;
                }
                () = tokio::time::sleep_until(self.reports_next) => {
                    self.reports_due = true;
                    self.reports_next = Instant::now() + self.report_interval();
                }
            }
        }
        self.stop().await;
    }
}

// --- select! helpers: a missing source never fires ---------------------------

async fn poll_opt<T>(future: &mut Option<BoxFuture<'static, T>>) -> T {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// What the live connection has for the loop.
enum LinkEvent {
    /// A frame, an error, or the end of the stream (`None`).
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    /// Time for a heartbeat.
    HeartbeatDue,
}

async fn link_event(link: &mut Option<Link>) -> LinkEvent {
    match link {
        Some(link) => tokio::select! {
            frame = link.ws.next() => LinkEvent::Frame(frame),
            _ = link.heartbeat.tick() => LinkEvent::HeartbeatDue,
        },
        None => std::future::pending().await,
    }
}

async fn busy_done(busy: &mut Option<Busy>) -> Done {
    match busy {
        Some(Busy::Job { work, .. }) => Done::Job(work.await),
        Some(Busy::Reports { work }) => Done::Reports(work.await),
        Some(Busy::StopOrphans { work }) => {
            work.await;
            Done::OrphansStopped
        }
        Some(Busy::Unlock { work }) => Done::Unlocked(work.await),
        None => std::future::pending().await,
    }
}
