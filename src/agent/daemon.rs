//! The running agent: one task that owns all of the agent's state and
//! reacts to everything that can happen — a frame from the server, a job
//! ending, a cron time, a heartbeat tick, a reconnect timer, shutdown.
//!
//! State and who owns it (all here, nothing shared):
//!
//! - the [`Journal`] (jobs and outbox on disk) and the [`CronTable`];
//! - the repository settings from `config.update`, and those of other
//!   hosts' repositories that accepted restores read (memory only);
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

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use super::catalog;
use super::config::AgentConfig;
use super::connection::{self, Backoff, ConnectError, WsStream};
use super::cron::{Clock, CronTable, SystemClock};
use super::download::{DownloadEvent, Downloads, Outgoing};
use super::journal::{JobRecord, JobState, Journal, JournalError, EXIT_CODE_NOT_RUN};
use super::platform::{self, OrphanOutcome, ProcessIdentity, StateLock};
use super::process::{LogSink, StopReason};
use super::reports::{collect_reports, Reports};
// Re-exported: its home was this file.
pub use super::reports::REPORT_TIMEOUT;
use super::restic::{self, RepoSettings, ResticHost, ResticVersion};
use super::restore::SourceRepos;
use super::runner::{self, sleep_until_opt, JobPlan, CANCELLED_ERROR};
use crate::protocol::{
    AgentToServer, CatalogList, CommandCancel, CommandResult, CommandRun, ConfigUpdate, Envelope,
    FinishStatus, Heartbeat, Hello, JobFinished, JobKind, ScheduleAck, ScheduleSet, ServerToAgent,
    PROTOCOL_VERSION,
};

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

/// Optional features this agent has, sent in `hello.capabilities`.
pub const CAPABILITIES: &[&str] = &[
    "active_job_ids",
    "cancel",
    "download",
    "durable_outbox",
    "hooks",
    "local_cron",
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
    /// Repository settings from `config.update`; memory only.
    repo: RepoSettings,
    /// Other hosts' repositories that accepted restores read; memory only.
    source_repos: SourceRepos,
    /// Whether a `config.update` arrived since start: recovered jobs wait
    /// for it (the password is not kept on disk).
    config_received: bool,
    restic: ResticHost,
    queue: VecDeque<JobRecord>,
    busy: Option<Busy>,
    /// Snapshot downloads streaming to the server (beside the job).
    downloads: Downloads,
    live_tx: mpsc::Sender<AgentToServer>,
    live_rx: mpsc::Receiver<AgentToServer>,
    link: Option<Link>,
    connecting: Option<Connecting>,
    retry_at: Option<Instant>,
    backoff: Backoff,
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
        let restic = ResticHost::new(config.restic_binary.clone(), &state_dir);
        Ok(Self {
            config,
            journal,
            cron,
            clock,
            orphans,
            unlock_due,
            repo: RepoSettings::default(),
            source_repos: SourceRepos::default(),
            config_received: false,
            restic,
            queue,
            busy: None,
            downloads: Downloads::default(),
            live_tx,
            live_rx,
            link: None,
            connecting: None,
            retry_at: None,
            backoff: Backoff::new(),
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
            let cron_wake = self.cron.next_wake(now);
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
            }
        }
        self.stop().await;
    }

    // --- connection -------------------------------------------------------

    /// A connection attempt, run inside the loop's `select!`: probes the
    /// restic version first (so `hello` reports the installed one).
    fn connect_attempt(&self) -> Connecting {
        let config = self.config.clone();
        let version = self.restic.version_invocation();
        async move {
            let version = match runner::capture(&version, VERSION_TIMEOUT).await {
                Ok(output) => restic::parse_version(&output.stdout),
                Err(err) => {
                    tracing::error!("cannot run `restic version`: {err}");
                    None
                }
            };
            (connection::connect(&config).await, version)
        }
        .boxed()
    }

    fn on_connect_failed(&mut self, err: &ConnectError) {
        let delay = self.backoff.next_delay(connection::jitter_unit());
        match err {
            ConnectError::Unauthorized
            | ConnectError::InsecureRefused { .. }
            | ConnectError::BadUrl { .. }
            | ConnectError::Tls(_) => {
                tracing::error!("cannot connect to the server: {err}; retrying in {delay:?}");
            }
            _ => tracing::warn!("cannot connect to the server: {err}; retrying in {delay:?}"),
        }
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Session start: hello, outbox replay, pending schedule fires.
    async fn on_connected(&mut self, ws: WsStream) {
        tracing::info!("connected to the server");
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.link = Some(Link {
            ws,
            since: Instant::now(),
            heartbeat,
        });
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            restic_version: self
                .restic
                .version
                .as_ref()
                .map_or_else(|| UNKNOWN_RESTIC_VERSION.to_owned(), |v| v.text.clone()),
            hostname: platform::hostname(),
            os: platform::os_name().to_owned(),
            arch: platform::arch_name().to_owned(),
            boot_time: platform::boot_time(),
            capabilities: CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
            last_known_config_version: None,
        };
        self.send_live(AgentToServer::from(hello)).await;
        match self.journal.outbox() {
            Ok(outbox) => {
                if !outbox.is_empty() {
                    tracing::info!(count = outbox.len(), "replaying the outbox");
                }
                for envelope in outbox {
                    if !self.send_envelope(&envelope).await {
                        return;
                    }
                }
            }
            Err(err) => tracing::error!("cannot read the outbox: {err}"),
        }
        self.send_pending_fires().await;
    }

    /// Ends the session after a close, error or failed send, and arms the
    /// reconnect timer.
    fn disconnect(&mut self, why: &str) {
        let Some(link) = self.link.take() else {
            return;
        };
        // The server forgot this connection's downloads: stop their restic.
        self.downloads.cancel_all();
        let lasted = link.since.elapsed();
        self.backoff.session_ended(lasted);
        let delay = self.backoff.next_delay(connection::jitter_unit());
        tracing::warn!(
            ?lasted,
            "disconnected from the server ({why}); reconnecting in {delay:?}"
        );
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Sends a message under a fresh envelope id if connected; dropped
    /// otherwise (live messages are best effort).
    async fn send_live(&mut self, message: AgentToServer) {
        if self.link.is_some() {
            self.send_envelope(&Envelope::new(message)).await;
        }
    }

    /// Sends an envelope if connected; returns whether it was written.
    async fn send_envelope(&mut self, envelope: &Envelope<AgentToServer>) -> bool {
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        match connection::send(&mut link.ws, envelope).await {
            Ok(()) => true,
            Err(err) => {
                self.disconnect(&format!("send failed: {err}"));
                false
            }
        }
    }

    async fn send_heartbeat(&mut self) {
        let heartbeat = Heartbeat {
            sent_at: Utc::now(),
            active_job_ids: Some(self.active_job_ids()),
            metrics: platform::metrics(&self.config.state_dir),
        };
        self.send_live(AgentToServer::from(heartbeat)).await;
    }

    /// The running job and the queued ones.
    fn active_job_ids(&self) -> Vec<String> {
        let running = match &self.busy {
            Some(Busy::Job { record, .. }) => Some(record.job_id().to_owned()),
            _ => None,
        };
        running
            .into_iter()
            .chain(self.queue.iter().map(|record| record.job_id().to_owned()))
            .collect()
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        match frame {
            Some(Ok(Message::Text(text))) => match Envelope::<ServerToAgent>::decode(text.as_str())
            {
                Ok(envelope) => self.on_message(envelope).await,
                Err(err) => tracing::warn!("undecodable frame from the server: {err}"),
            },
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!("binary frame from the server ignored (protocol error)");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(close))) => {
                let why = close.map_or_else(
                    || "closed by the server".to_owned(),
                    |frame| format!("closed by the server: {} {}", frame.code, frame.reason),
                );
                self.disconnect(&why);
            }
            Some(Err(err)) => self.disconnect(&format!("connection error: {err}")),
            None => self.disconnect("connection ended"),
        }
    }

    async fn on_message(&mut self, envelope: Envelope<ServerToAgent>) {
        match envelope.message {
            ServerToAgent::ConfigUpdate(update) => self.on_config_update(&update),
            ServerToAgent::ScheduleSet(set) => self.on_schedule_set(&set).await,
            ServerToAgent::CommandRun(run) => self.on_command_run(run).await,
            ServerToAgent::CommandCancel(cancel) => self.on_command_cancel(cancel).await,
            ServerToAgent::CatalogList(request) => self.on_catalog_list(request),
            ServerToAgent::AgentUpdateAvailable(update) => tracing::info!(
                latest_version = %update.latest_version,
                package_url = %update.package_url,
                "a newer agent is available (install it with the package manager)"
            ),
            ServerToAgent::Ack(ack) => {
                if !ack.accepted {
                    tracing::warn!(
                        correlation_id = %ack.correlation_id,
                        reason = ack.reason.as_deref().unwrap_or(""),
                        "the server refused a message; dropping it from the outbox"
                    );
                }
                if let Err(err) = self.journal.acknowledge(&ack.correlation_id) {
                    tracing::error!("cannot record an ack: {err}");
                }
            }
            ServerToAgent::DownloadStart(start) => {
                self.downloads.start(start, &self.restic, &self.repo);
            }
            ServerToAgent::DownloadCredit(credit) => self.downloads.credit(&credit),
            ServerToAgent::DownloadCancel(cancel) => self.downloads.cancel(&cancel.download_id),
            ServerToAgent::Error(error) => tracing::warn!(
                code = %error.code,
                correlation_id = error.correlation_id.as_deref().unwrap_or(""),
                "the server reported an error: {}",
                error.detail
            ),
        }
    }

    /// `catalog.list`: one folder of a snapshot, listed now by a restic
    /// of its own (read-only, no lock) beside whatever job runs; the
    /// answer goes out as `catalog.listing` frames.
    fn on_catalog_list(&mut self, request: CatalogList) {
        while self.listings.try_join_next().is_some() {}
        let invocation = if self.listings.len() >= catalog::MAX_LIVE_LISTINGS {
            Err(format!(
                "{} live listings are running on this host; try again",
                catalog::MAX_LIVE_LISTINGS
            ))
        } else {
            self.restic
                .ls_dir(&self.repo, &request.snapshot_id, &request.path)
                .map_err(|e| e.to_string())
        };
        let tx = self.live_tx.clone();
        self.listings
            .spawn(catalog::list_dir(request, invocation, tx).in_current_span());
    }

    fn on_config_update(&mut self, update: &ConfigUpdate) {
        self.repo.apply(update);
        self.config_received = true;
        tracing::info!(repo = ?self.repo, "repository settings updated");
    }

    async fn on_schedule_set(&mut self, set: &ScheduleSet) {
        let now = self.clock.now();
        match self.cron.apply(set, now) {
            Ok(()) => {
                tracing::info!(
                    version = set.version,
                    schedules = set.schedules.len(),
                    "schedule applied"
                );
                self.send_live(AgentToServer::from(ScheduleAck {
                    version: set.version,
                    applied_at: now,
                }))
                .await;
            }
            // Not acked: the server keeps the version unacked and re-pushes.
            Err(err) => tracing::error!(version = set.version, "schedule.set not applied: {err}"),
        }
    }

    async fn on_command_run(&mut self, mut run: CommandRun) {
        let job_id = run.job_id.clone();
        match self.journal.job(&job_id) {
            Ok(Some(record)) => {
                tracing::info!(job_id = %job_id, "command.run for a job already journaled; answering from the journal");
                self.send_live(AgentToServer::from(CommandResult {
                    job_id,
                    accepted: true,
                    error: None,
                }))
                .await;
                if let JobState::Finished {
                    finished,
                    envelope_id,
                    ..
                } = record.state
                {
                    if !self.journal.outbox_contains(&envelope_id) {
                        // The server lost the result it acknowledged: say it again.
                        self.send_live(AgentToServer::from(finished)).await;
                    }
                }
                return;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::error!(job_id = %job_id, "cannot read the journal: {err}");
                self.refuse(job_id, format!("agent journal unreadable: {err}"))
                    .await;
                return;
            }
        }
        // Another host's repository settings never reach the journal.
        let source = match SourceRepos::take_from(&mut run) {
            Ok(source) => source,
            Err(err) => return self.refuse(job_id, err.to_string()).await,
        };
        if let Err(err) = self.restic.job(&run, source.as_ref().unwrap_or(&self.repo)) {
            tracing::warn!(job_id = %job_id, kind = %run.kind, "command.run refused: {err}");
            self.refuse(job_id, err.to_string()).await;
            return;
        }
        let record = JobRecord::queued(run, Utc::now());
        if let Err(err) = self.journal.put_job(&record) {
            tracing::error!(job_id = %job_id, "cannot journal the job: {err}");
            self.refuse(job_id, format!("agent cannot persist the job: {err}"))
                .await;
            return;
        }
        tracing::info!(job_id = %job_id, kind = %record.kind(), "job accepted");
        if let Some(source) = source {
            self.source_repos.insert(&job_id, source);
        }
        self.queue.push_back(record);
        self.send_live(AgentToServer::from(CommandResult {
            job_id,
            accepted: true,
            error: None,
        }))
        .await;
    }

    async fn refuse(&mut self, job_id: String, error: String) {
        self.send_live(AgentToServer::from(CommandResult {
            job_id,
            accepted: false,
            error: Some(error),
        }))
        .await;
    }

    async fn on_command_cancel(&mut self, cancel: CommandCancel) {
        if let Some(Busy::Job { record, stop, .. }) = &self.busy {
            if record.job_id() == cancel.job_id {
                tracing::info!(job_id = %cancel.job_id, "cancel requested");
                // Err only if the job already ended and dropped its receiver.
                let _ = stop.send(Some(StopReason::Cancelled));
                return;
            }
        }
        if let Some(position) = self
            .queue
            .iter()
            .position(|record| record.job_id() == cancel.job_id)
        {
            if let Some(record) = self.queue.remove(position) {
                tracing::info!(job_id = %cancel.job_id, "queued job cancelled before it started");
                self.finish(record, FinishStatus::Cancelled, CANCELLED_ERROR.to_owned())
                    .await;
            }
            return;
        }
        tracing::info!(job_id = %cancel.job_id, "cancel for a job that is not running or queued; ignored");
    }

    // --- downloads --------------------------------------------------------

    /// A download's message or data frame goes out (dropped when offline:
    /// the server has forgotten the download then); an ended one is gone.
    async fn on_download_event(&mut self, event: DownloadEvent) {
        match event {
            DownloadEvent::Send(Outgoing::Message(message)) => self.send_live(message).await,
            DownloadEvent::Send(Outgoing::Data(frame)) => {
                let Some(link) = self.link.as_mut() else {
                    return;
                };
                if let Err(err) = connection::send_binary(&mut link.ws, frame).await {
                    self.disconnect(&format!("send failed: {err}"));
                }
            }
            DownloadEvent::Done(download_id) => {
                tracing::info!(download_id = %download_id, "download ended");
            }
        }
    }

    // --- jobs -------------------------------------------------------------

    /// Starts the next work when nothing runs: first the clean-up after a
    /// crash (stop leftover restic processes, then `restic unlock`), then
    /// the queued jobs. Unlock and jobs wait for the first `config.update`
    /// (the repository password is not stored on disk).
    async fn start_next_work(&mut self) {
        if self.busy.is_some() {
            return;
        }
        if !self.orphans.is_empty() {
            self.start_stopping_orphans();
            return;
        }
        if self.unlock_due && self.config_received {
            self.start_unlock();
            if self.busy.is_some() {
                return;
            }
        }
        while self.busy.is_none() && self.config_received {
            let Some(mut record) = self.queue.pop_front() else {
                return;
            };
            let invocation = match self
                .source_repos
                .for_start(&record.command, &self.repo)
                .map_err(|err| err.to_string())
                .and_then(|repo| {
                    self.restic
                        .job(&record.command, &repo)
                        .map_err(|err| err.to_string())
                }) {
                Ok(invocation) => invocation,
                Err(err) => {
                    tracing::warn!(job_id = %record.job_id(), "job cannot run: {err}");
                    self.finish(record, FinishStatus::Failed, err).await;
                    continue;
                }
            };
            record.state = JobState::Running {
                started_at: Utc::now(),
                restic: None,
            };
            if let Err(err) = self.journal.put_job(&record) {
                tracing::error!(job_id = %record.job_id(), "cannot journal the job start: {err}");
            }
            let plan = JobPlan {
                command: record.command.clone(),
                invocation,
                hooks: self.config.hooks.clone(),
                hook_shell: self
                    .repo
                    .hook_shell
                    .clone()
                    .unwrap_or_else(|| platform::default_hook_shell().to_owned()),
                cancel_grace: runner::CANCEL_GRACE,
            };
            let (stop, mut stop_rx) = watch::channel(None);
            let mut sink = LogSink::new(record.job_id(), self.live_tx.clone());
            let span = tracing::info_span!("job", job_id = %record.job_id(), kind = %record.kind());
            tracing::info!(job_id = %record.job_id(), kind = %record.kind(), "job started");
            let journal = self.journal.clone();
            let mut running = record.clone();
            let mut on_spawn = move |pid: u32| {
                let Some(process) = platform::process_identity(pid) else {
                    return; // exited already, or not identifiable on this platform
                };
                if let Err(err) = journal.record_restic(&mut running, process) {
                    tracing::warn!(job_id = %running.job_id(), "cannot journal restic's process: {err}");
                }
            };
            let work = async move {
                runner::run_job_observed(plan, &mut sink, &mut stop_rx, &mut on_spawn).await
            }
            .instrument(span)
            .boxed();
            self.busy = Some(Busy::Job {
                record: Box::new(record),
                stop,
                work,
            });
        }
    }

    /// Stops the restic processes that jobs interrupted by a crash left
    /// running (they are not children of this process).
    fn start_stopping_orphans(&mut self) {
        let orphans = std::mem::take(&mut self.orphans);
        let work = async move {
            for (job_id, process) in orphans {
                let outcome =
                    platform::stop_orphan(&process, ORPHAN_GRACE, ORPHAN_REAP_WAIT).await;
                let pid = process.pid;
                match outcome {
                    OrphanOutcome::AlreadyGone => {
                        tracing::info!(job_id = %job_id, pid, "restic of the interrupted job is no longer running");
                    }
                    OrphanOutcome::Interrupted => {
                        tracing::warn!(job_id = %job_id, pid, "restic left running by the previous agent process was interrupted");
                    }
                    OrphanOutcome::Killed => {
                        tracing::warn!(job_id = %job_id, pid, "restic left running by the previous agent process ignored SIGINT and was killed");
                    }
                    OrphanOutcome::StillThere => {
                        tracing::error!(job_id = %job_id, pid, "restic left running by the previous agent process could not be stopped; its lock may stay");
                    }
                }
            }
        }
        .in_current_span()
        .boxed();
        self.busy = Some(Busy::StopOrphans { work });
    }

    /// Starts `restic unlock` (stale locks only). Tried once per start; the
    /// durable mark is cleared only when it succeeds.
    fn start_unlock(&mut self) {
        self.unlock_due = false;
        let invocation = match self.restic.unlock_stale(&self.repo) {
            Ok(invocation) => invocation,
            Err(err) => {
                tracing::warn!("stale-lock cleanup skipped: {err}");
                return;
            }
        };
        tracing::info!(
            "removing stale repository locks left by the interrupted job (restic unlock)"
        );
        let work = async move {
            match runner::capture(&invocation, UNLOCK_TIMEOUT).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!("restic unlock failed: {err}");
                    false
                }
            }
        }
        .in_current_span()
        .boxed();
        self.busy = Some(Busy::Unlock { work });
    }

    /// Ends a job that never ran restic (refused at start, cancelled while
    /// queued).
    async fn finish(&mut self, record: JobRecord, status: FinishStatus, error: String) {
        self.source_repos.forget(record.job_id());
        let finished = JobFinished {
            job_id: record.job_id().to_owned(),
            status,
            exit_code: EXIT_CODE_NOT_RUN,
            finished_at: Utc::now(),
            stats: None,
            error: Some(error),
        };
        self.record_finished(record, finished).await;
    }

    /// Makes a job's end durable (journal, then outbox) and sends it.
    async fn record_finished(&mut self, record: JobRecord, finished: JobFinished) {
        tracing::info!(
            job_id = %finished.job_id,
            status = %finished.status,
            exit_code = finished.exit_code,
            error = finished.error.as_deref().unwrap_or(""),
            "job finished"
        );
        match self.journal.finish_job(record, finished.clone()) {
            Ok(envelope) => {
                self.send_envelope(&envelope).await;
            }
            Err(err) => {
                tracing::error!(job_id = %finished.job_id, "cannot journal the job result: {err}");
                self.send_live(AgentToServer::from(finished)).await;
            }
        }
    }

    async fn on_work_done(&mut self, done: Done) {
        // The job's last log lines are already in the channel: send them
        // before its job.finished so the server sees them in order.
        self.drain_live().await;
        let busy = self.busy.take();
        match (done, busy) {
            (Done::Job(finished), Some(Busy::Job { record, .. })) => {
                let kind = record.kind();
                let succeeded = finished.status == FinishStatus::Succeeded;
                self.record_finished(*record, finished).await;
                if let Err(err) = self.journal.prune(Utc::now() - JOURNAL_RETENTION) {
                    tracing::warn!("cannot prune the journal: {err}");
                }
                if succeeded && matches!(kind, JobKind::Backup | JobKind::Forget) {
                    self.start_reports();
                }
            }
            (Done::Reports(reports), _) => self.on_reports(reports).await,
            (Done::OrphansStopped, _) => {}
            (Done::Unlocked(unlocked), _) => {
                if unlocked {
                    tracing::info!("stale repository locks removed");
                    if let Err(err) = self.journal.set_unlock_needed(false) {
                        tracing::warn!("cannot clear the unlock mark: {err}");
                    }
                }
            }
            (Done::Job(finished), _) => {
                tracing::error!(job_id = %finished.job_id, "job ended without its record; reporting it");
                self.send_live(AgentToServer::from(finished)).await;
            }
        }
    }

    /// Starts `snapshots.report` and `repo.stats` collection.
    fn start_reports(&mut self) {
        let restic = self.restic.clone();
        let repo = self.repo.clone();
        let last_check = match self.journal.last_check() {
            Ok(last) => last,
            Err(err) => {
                tracing::warn!("cannot read the last check from the journal: {err}");
                None
            }
        };
        let work = async move { collect_reports(&restic, &repo, last_check).await }
            .in_current_span()
            .boxed();
        self.busy = Some(Busy::Reports { work });
    }

    async fn on_reports(&mut self, reports: Reports) {
        if let Some(report) = reports.snapshots {
            // A newer report replaces an older unsent one: the server keeps
            // only the latest projection anyway.
            if let Ok(outbox) = self.journal.outbox() {
                for old in outbox {
                    if matches!(old.message, AgentToServer::SnapshotsReport(_)) {
                        if let Err(err) = self.journal.outbox_remove(&old.id) {
                            tracing::warn!("cannot drop a superseded snapshots report: {err}");
                        }
                    }
                }
            }
            let envelope = Envelope::new(AgentToServer::from(report));
            match self.journal.outbox_put(&envelope, Utc::now()) {
                Ok(()) => {
                    self.send_envelope(&envelope).await;
                }
                Err(err) => {
                    tracing::error!("cannot queue the snapshots report: {err}");
                    self.send_envelope(&envelope).await;
                }
            }
        }
        if let Some(stats) = reports.stats {
            self.send_live(AgentToServer::from(stats)).await;
        }
    }

    // --- schedule ---------------------------------------------------------

    async fn on_cron_tick(&mut self) {
        let fires = self.cron.tick(self.clock.now());
        for fire in &fires {
            tracing::info!(schedule_id = %fire.schedule_id, scheduled_at = %fire.scheduled_at, "schedule due");
        }
        if !fires.is_empty() {
            self.send_pending_fires().await;
        }
    }

    /// Sends every pending `schedule.fire` if connected, oldest first.
    async fn send_pending_fires(&mut self) {
        for fire in self.cron.pending() {
            if !self
                .send_envelope(&Envelope::new(AgentToServer::from(fire.clone())))
                .await
            {
                return;
            }
            self.cron.mark_sent(std::slice::from_ref(&fire));
        }
    }

    /// Sends (or drops, when offline) every live message already queued.
    async fn drain_live(&mut self) {
        while let Ok(message) = self.live_rx.try_recv() {
            self.send_live(message).await;
        }
    }

    // --- shutdown ---------------------------------------------------------

    /// Stops the running job (its result goes to the outbox), then closes
    /// the socket. Reports in flight are dropped (they are re-made after
    /// the next backup); queued jobs stay in the journal.
    async fn stop(&mut self) {
        tracing::info!("shutting down");
        if let Some(Busy::StopOrphans { work }) = self
            .busy
            .take_if(|busy| matches!(busy, Busy::StopOrphans { .. }))
        {
            // Bounded by the grace period and the reap wait; the leftover
            // processes are known only to this run, so finish the job.
            work.await;
        }
        if let Some(Busy::Job {
            record,
            stop,
            mut work,
        }) = self.busy.take()
        {
            // Err only if the job already ended.
            let _ = stop.send(Some(StopReason::Shutdown));
            let finished = loop {
                tokio::select! {
                    finished = &mut work => break finished,
                    // Keep draining live output so the job can finish.
                    Some(message) = self.live_rx.recv() => self.send_live(message).await,
                }
            };
            self.record_finished(*record, finished).await;
        }
        self.drain_live().await;
        self.downloads.shutdown().await;
        if let Some(mut link) = self.link.take() {
            let close = link.ws.close(None);
            // A server that does not answer the close is not waited for.
            let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
        }
        tracing::info!("stopped");
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
