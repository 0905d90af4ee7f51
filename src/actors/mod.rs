//! The server's actors (DESIGN.md "The actor model") and [`Actors`], the
//! facade the HTTP layer uses to reach them.
//!
//! # Layout
//!
//! - [`host_session`]: `HostSession`, one per connected agent (WebSocket).
//! - [`registry`]: `Registry`, host id → live session.
//! - [`scheduler`]: `Scheduler`, fires → jobs, due retries, missed runs.
//! - `fire`: what one fire of a schedule creates, by the schedule's kind.
//! - [`maintenance`]: where a shared repository's prune and check run
//!   (once per repository), and the server's `unlock` jobs.
//! - [`followup`]: the pure rules of what job follows what (retry with
//!   back-off, retention `forget`), applied by the writer.
//! - [`persistence`]: `Persistence`, the one writer, on a `SyncArbiter`.
//! - [`events`]: `Events`, live fan-out to UI subscribers.
//! - [`log_retention`]: prunes old job logs, a small batch per writer turn.
//! - [`metrics_retention`]: folds old host metric points into hourly ones
//!   and drops those past 30 days, a small batch per writer turn.
//! - [`login_audit`]: `LoginAudit`, failed logins counted, written in aggregate.
//! - [`restore`]: the checks of a restore request and its audit detail.
//! - [`drill`]: a restore drill's options and its sampled job.
//! - [`bulk`]: jobs created or cancelled on many hosts in one write, and
//!   `schedule.set` pushed to many hosts after a policy change.
//!
//! [`start`] builds them once (inside the actix system, outside
//! `HttpServer::new`) and returns the cloneable [`Actors`]. Its methods
//! are what REST handlers call: create (run now) and cancel jobs, push a
//! changed configuration, revoke a host. Reads run in `web::block` with a
//! pooled connection; writes go through [`persistence::Persistence`], a
//! run-now in one transaction with its validation and its audit row (on
//! PostgreSQL: its reads, then its writes in one statement).

pub mod bulk;
pub mod drill;
pub mod events;
mod fire;
pub mod followup;
pub mod host_session;
pub mod log_retention;
pub mod login_audit;
pub mod maintenance;
pub mod metrics_retention;
pub mod notifier;
pub mod persistence;
pub mod registry;
pub mod restore;
pub mod scheduler;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::ServerConfig;
use crate::crypto::SecretKey;
use crate::ids::HostId;
use crate::metrics::Metrics;
use crate::protocol;
use crate::store::verification::CheckStep;
use crate::store::{self, models, JobTrigger, Pool};

use events::{Event, Events, Publish};
use host_session::{CancelJob, DispatchJob, PushConfig, Revoked};
use persistence::{CancelQueued, Flush, PersistError, Persistence, RevokeHost, RunWrite};
use registry::{Directory, Registry, SweepIdle};
use scheduler::Scheduler;

/// Handles to the server's actors, built once in the app wiring.
#[derive(Clone)]
pub struct Actors {
    /// Host id → live session.
    pub registry: Addr<Registry>,
    /// The registry's map, read in place (no round trip).
    pub(crate) sessions: Directory,
    /// The one database writer.
    pub persistence: Addr<Persistence>,
    /// Fires, retries, retention, missed runs (send it `Tick { now }`).
    pub scheduler: Addr<Scheduler>,
    /// Live events (send it `Subscribe { filter }`).
    pub events: Addr<Events>,
    /// Failed logins, written to the audit log in aggregate.
    pub login_audit: Addr<login_audit::LoginAudit>,
    /// For reads inside `web::block`.
    pub(crate) pool: Pool,
    /// Opens repository secrets for `config.update`.
    pub(crate) key: Arc<SecretKey>,
    /// The resolved configuration (frame size limit, grace period).
    pub(crate) config: Arc<ServerConfig>,
    /// Counters, gauges and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Log lines handed to `persistence` and not yet written (sessions
    /// pause reading while it is high).
    pub(crate) log_backlog: Arc<persistence::LogBacklog>,
    /// How many live-event subscribers `events` has.
    pub(crate) event_listeners: Arc<AtomicUsize>,
    /// Stops the notification delivery at shutdown.
    pub(crate) notifier: Arc<notifier::Handle>,
}

/// Starts every actor; call once, inside the actix system.
pub fn start(pool: Pool, key: Arc<SecretKey>, config: Arc<ServerConfig>) -> Actors {
    let metrics = Arc::new(Metrics::new());
    let events = Events::default();
    let event_listeners = events.listeners();
    let events = events.start();
    let log_backlog = Arc::new(persistence::LogBacklog::default());
    let persistence =
        Persistence::start_with_backlog(pool.clone(), log_backlog.clone(), metrics.clone());
    let registry = Registry::new(persistence.clone(), events.clone());
    let sessions = registry.directory();
    let registry = registry.start();
    let scheduler = Scheduler::new(
        pool.clone(),
        persistence.clone(),
        sessions.clone(),
        events.clone(),
        Duration::from_secs(config.missed_run_grace_seconds),
    )
    .start();

    // The writer's tick: buffered log lines and progress go out as one
    // transaction per interval. `send` waits for the previous flush, so a
    // slow database slows the tick instead of piling up flushes.
    let flusher = persistence.clone();
    actix::spawn(async move {
        let mut interval = tokio::time::interval(persistence::FLUSH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if flusher.send(Flush).await.is_err() {
                break;
            }
        }
    });

    let login_audit = login_audit::LoginAudit::new(persistence.clone()).start();
    log_retention::start(persistence.clone(), config.log_retention_days);
    metrics_retention::start(persistence.clone());
    let notifier = notifier::start(
        persistence.clone(),
        pool.clone(),
        key.clone(),
        config.notify.clone(),
    );
    // Lease requests of the previous run: their sessions ask again.
    persistence.do_send(RunWrite::new("dropping old lease requests", |c| {
        store::leases::drop_waiting(c).map_err(ActorError::from)
    }));
    persistence.do_send(persistence::ConfigureCatalog {
        keep: config.catalog_keep,
    });

    Actors {
        registry,
        sessions,
        persistence,
        scheduler,
        events,
        login_audit,
        pool,
        key,
        config,
        metrics,
        log_backlog,
        event_listeners,
        notifier,
    }
}

/// A run-now (or other manual) job to create.
pub struct NewJobRequest {
    pub host_id: String,
    pub kind: protocol::JobKind,
    /// Source group name; required for backup and forget, refused for
    /// the others.
    pub source_group: Option<String>,
    /// Username (or `agent:<id>`) for the audit trail.
    pub requested_by: String,
    /// The requester's address, for the audit trail.
    pub source_addr: Option<String>,
    /// A restore's parameters: required for `restore`, refused for the
    /// other kinds.
    pub restore: Option<restore::RestoreRequest>,
    /// A drill's options (`drill_sample_files`, `drill_sample_bytes`);
    /// refused (by the API) for the other kinds.
    pub drill: Option<drill::DrillOptions>,
}

/// Whether a kind runs on one source group (backup its paths, forget with
/// its retention policy and tag); the others act on the whole repository.
pub fn needs_group(kind: protocol::JobKind) -> bool {
    matches!(kind, protocol::JobKind::Backup | protocol::JobKind::Forget)
}

/// Checks a run-now request against the database and builds its job:
/// the host must exist and not be revoked, the source group must be given
/// exactly for the kinds that need one and exist on the host, and a
/// forget needs the group's retention policy. It only reads: the job's
/// writes (and a check's rotation step, returned with it) are the
/// caller's (`jobs::insert_audited`).
fn run_now_job(
    conn: &mut store::DbConnection,
    sessions: &Directory,
    req: &NewJobRequest,
    now: i64,
) -> Result<(models::NewJob, Option<CheckStep>), ActorError> {
    let kind = req.kind;
    if kind == protocol::JobKind::Catalog {
        return Err(ActorError::Invalid(
            "kind: catalog jobs are queued by the server for each new snapshot a host reports; they cannot be run on request".to_owned(),
        ));
    }
    match (&req.restore, kind == protocol::JobKind::Restore) {
        (None, true) => {
            return Err(ActorError::Invalid(
                "target: required for a restore job".to_owned(),
            ))
        }
        (Some(_), false) => {
            return Err(ActorError::Invalid(format!(
                "snapshot_id: only a restore job reads a snapshot, not a {kind} job"
            )))
        }
        _ => {}
    }
    if kind == protocol::JobKind::Drill {
        let host_id = &req.host_id;
        match store::hosts::get(conn, host_id)? {
            Some(host) if host.revoked_at.is_none() => require_kind(&host, kind)?,
            _ => return Err(ActorError::NotFound(format!("host {host_id}"))),
        }
        let job = drill::drill_job(
            conn,
            host_id,
            req.source_group.as_slice(),
            &req.drill.unwrap_or_default(),
            JobTrigger::Manual,
            now,
        )?;
        return Ok((job, None));
    }
    match (&req.source_group, needs_group(kind)) {
        (None, true) => {
            return Err(ActorError::Invalid(format!(
                "source_group: required for a {kind} job"
            )))
        }
        (Some(_), false) => {
            return Err(ActorError::Invalid(format!(
                "source_group: a {kind} job acts on the whole repository; omit source_group"
            )))
        }
        _ => {}
    }
    let host_id = &req.host_id;
    // The host, its repository and the named group in one read.
    let target = match store::host_state::for_run(conn, host_id, req.source_group.as_deref())? {
        Some(target) if target.host.revoked_at.is_none() => target,
        _ => return Err(ActorError::NotFound(format!("host {host_id}"))),
    };
    let host = target.host;
    require_kind(&host, kind)?;
    if let Some(restore) = &req.restore {
        return Ok((restore::restore_job(conn, host_id, restore, now)?, None));
    }
    let Some(name) = &req.source_group else {
        // A shared repository's prune or check runs once, on its
        // maintenance host.
        let runs_on =
            match maintenance::route_with(conn, sessions, host_id, kind, target.repository)? {
                maintenance::Route::Own => host_id.clone(),
                maintenance::Route::Host(host) => host,
                maintenance::Route::Active(job) => {
                    return Err(ActorError::Conflict(format!(
                    "a {kind} of this host's shared repository is {} already: job {} on host {}",
                    job.status, job.id, job.host_id
                )))
                }
            };
        let mut job = models::NewJob::new(store::new_id(), runs_on, kind, JobTrigger::Manual, now);
        if kind != protocol::JobKind::Check {
            return Ok((job, None));
        }
        // Every check rotates, run now or from a check schedule: the
        // rotation read with the host, unless the check runs elsewhere.
        let rotation = if job.host_id.as_str() == host_id {
            target.rotation
        } else {
            store::verification::rotation_of(conn, job.host_id.as_str())?
        };
        let step = CheckStep::after(
            rotation,
            job.host_id.clone(),
            job.id.clone(),
            store::verification::DEFAULT_CHECK_SUBSETS,
            now,
        );
        job.args = step.args();
        return Ok((job, Some(step)));
    };
    let group = target.group.ok_or_else(|| {
        ActorError::Invalid(format!(
            "source_group: no source group named {name:?} on this host"
        ))
    })?;
    if kind == protocol::JobKind::Forget {
        let policy = followup::group_retention(&group).ok_or_else(|| {
            ActorError::Invalid(format!(
                "source_group: {name:?} has no retention policy to forget with"
            ))
        })?;
        return Ok((
            followup::forget_job(&group, &policy, JobTrigger::Manual, now),
            None,
        ));
    }
    if let Some(dump) = group.dump_spec() {
        host.require_capability(&dump.required_capability())?;
    }
    Ok((followup::backup_job(&group, JobTrigger::Manual, now), None))
}

/// Refuses a job kind the host's agent did not declare (`restore`,
/// `drill`; 409 `agent_lacks_capability`).
fn require_kind(host: &models::Host, kind: protocol::JobKind) -> Result<(), ActorError> {
    match protocol::kind_capability(kind) {
        Some(capability) => Ok(host.require_capability(capability)?),
        None => Ok(()),
    }
}

/// A check job reads the host's next subset of the repository's data
/// (`--read-data-subset=k/n`, issue 11 §4); the rotation advances in the
/// transaction that inserts the job.
fn check_rotation_args(
    conn: &mut store::DbConnection,
    job: &models::NewJob,
    now: i64,
) -> Result<Vec<String>, ActorError> {
    use store::verification::{rotate_check, subset_arg, DEFAULT_CHECK_SUBSETS};
    let (k, n) = rotate_check(conn, &job.host_id, &job.id, DEFAULT_CHECK_SUBSETS, now)?;
    Ok(vec![subset_arg(k, n)])
}

/// Why an actor request failed.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    LacksCapability(#[from] models::LacksCapability),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ActorError {
    /// An actor's mailbox was closed (the system is shutting down).
    pub(crate) fn mailbox(e: MailboxError) -> Self {
        ActorError::Internal(format!("actor unavailable: {e}"))
    }
}

impl From<PersistError> for ActorError {
    fn from(e: PersistError) -> Self {
        ActorError::Internal(e.to_string())
    }
}

impl From<diesel::result::Error> for ActorError {
    fn from(e: diesel::result::Error) -> Self {
        ActorError::Internal(e.to_string())
    }
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    CancelledQueued,
    CancelRequested,
    AlreadyFinished,
}

/// Runs a blocking read on actix's blocking pool with a pooled connection
/// (never on an actor's event loop).
pub(crate) async fn blocking_read<T, F>(pool: &Pool, f: F) -> Result<T, ActorError>
where
    T: Send + 'static,
    F: FnOnce(&mut store::DbConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool
            .get()
            .map_err(|e| ActorError::Internal(format!("database unavailable: {e}")))?;
        f(&mut conn).map_err(ActorError::from)
    })
    .await
    .map_err(|e| ActorError::Internal(e.to_string()))?
}

/// Publishes a queued job and hands it to the host's live session, if
/// any. Returns whether a session took it.
pub(crate) fn hand_to_session(
    sessions: &Directory,
    events: &Addr<Events>,
    job: &models::Job,
) -> bool {
    events.do_send(Publish(Event::JobStatus {
        host_id: job.host_id.clone(),
        job_id: job.id.clone(),
        status: job.status,
        message: None,
    }));
    match sessions.get(&job.host_id) {
        Some(session) => {
            session.do_send(DispatchJob::of(job));
            true
        }
        None => false,
    }
}

impl Actors {
    /// Whether anyone receives live events (else high-rate ones are not
    /// built).
    pub(crate) fn has_event_listeners(&self) -> bool {
        self.event_listeners.load(Ordering::Relaxed) > 0
    }

    /// The largest WebSocket frame (and message) an agent may send.
    pub fn max_frame_bytes(&self) -> usize {
        self.config.max_frame_bytes
    }

    /// A session actor for an authenticated host (the upgrade route
    /// starts it).
    pub fn new_session(self: &Arc<Self>, host_id: HostId) -> host_session::HostSession {
        host_session::HostSession::new(host_id, Arc::clone(self), self.config.max_frame_bytes)
    }

    /// Run now: one write validates the request ([`run_now_job`]), inserts
    /// the queued job, its `job.create` audit row and a check's rotation
    /// step; then the job goes to the host's live session, if any. On
    /// PostgreSQL the reads run outside a transaction (the one writer
    /// changes nothing between them) and the writes are one statement: a
    /// check is two round trips on the writer, not five.
    pub async fn create_job(&self, req: NewJobRequest) -> Result<models::Job, ActorError> {
        let sessions = self.sessions.clone();
        let job = self
            .write_one_statement_on_pg("creating a job", move |conn| {
                let now = store::now_ms();
                let (new, check) = run_now_job(conn, &sessions, &req, now)?;
                let detail = match &req.restore {
                    Some(restore) => restore::audit_detail(&req.host_id, &new, restore),
                    None if new.kind == protocol::JobKind::Drill => {
                        drill::audit_detail(&req.host_id, &new)
                    }
                    None => serde_json::json!({
                        "host_id": req.host_id,
                        "kind": req.kind,
                        "source_group": req.source_group,
                    }),
                };
                let audit = store::audit::entry(
                    now,
                    &req.requested_by,
                    req.source_addr.as_deref(),
                    "job.create",
                    Some(&new.id),
                    Some(detail),
                );
                // The job, its audit row and a check's rotation step in
                // one statement on PostgreSQL.
                let job = store::jobs::insert_audited(conn, &new, &audit, check.as_ref())?;
                tracing::info!(host_id = %job.host_id, job_id = %job.id, kind = %job.kind, requested_by = %req.requested_by, "job created");
                Ok::<_, ActorError>(job)
            })
            .await?;
        hand_to_session(&self.sessions, &self.events, &job);
        Ok(job)
    }

    /// Runs `f` on the one writer ([`Persistence`]) inside one write
    /// transaction and returns its result: how the REST API writes (its
    /// reads stay in `web::block`). `what` names the write in logs. A
    /// closed writer is [`PersistError::Unavailable`].
    pub async fn write<T, E, F>(&self, what: &'static str, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<PersistError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static,
        F: FnOnce(&mut store::DbConnection) -> Result<T, E> + Send + 'static,
    {
        self.run_write(RunWrite::new(what, f)).await
    }

    /// [`Actors::write`] for a closure that, on PostgreSQL, writes in one
    /// statement and otherwise only reads: no `BEGIN`/`COMMIT` around it
    /// there ([`RunWrite::one_statement_on_pg`]); on SQLite the same as
    /// [`Actors::write`].
    pub async fn write_one_statement_on_pg<T, E, F>(&self, what: &'static str, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<PersistError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static,
        F: FnOnce(&mut store::DbConnection) -> Result<T, E> + Send + 'static,
    {
        self.run_write(RunWrite::one_statement_on_pg(what, f)).await
    }

    async fn run_write<T, E>(&self, write: RunWrite<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<PersistError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static,
    {
        self.persistence.send(write).await.map_err(|e| {
            E::from(PersistError::Unavailable(format!(
                "writer unavailable: {e}"
            )))
        })?
    }

    /// Cancels a queued job directly, or asks the agent to stop a running one.
    pub async fn cancel_job(&self, job_id: &str) -> Result<CancelOutcome, ActorError> {
        let id = job_id.to_string();
        let job = blocking_read(&self.pool, move |conn| store::jobs::get(conn, &id))
            .await?
            .ok_or_else(|| ActorError::NotFound(format!("job {job_id}")))?;
        if job.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyFinished);
        }
        let session = self.sessions.get(&job.host_id);
        if job.status == store::JobStatus::Queued {
            let cancelled = self
                .persistence
                .send(CancelQueued {
                    job_id: job.id.clone(),
                    now: store::now_ms(),
                })
                .await
                .map_err(ActorError::mailbox)??;
            if let Some(cancelled) = cancelled {
                self.events.do_send(Publish(Event::JobStatus {
                    host_id: cancelled.host_id.clone(),
                    job_id: cancelled.id.clone(),
                    status: cancelled.status,
                    message: cancelled.error.clone(),
                }));
                if let Some(session) = &session {
                    session.do_send(CancelJob {
                        job_id: cancelled.id.into(),
                        already_cancelled: true,
                    });
                }
                return Ok(CancelOutcome::CancelledQueued);
            }
            // It started (or finished) meanwhile: look again.
            let id = job.id.clone();
            let now = blocking_read(&self.pool, move |conn| store::jobs::get(conn, &id))
                .await?
                .ok_or_else(|| ActorError::NotFound(format!("job {job_id}")))?;
            if now.status.is_terminal() {
                return Ok(CancelOutcome::AlreadyFinished);
            }
        }
        let Some(session) = session else {
            return Err(ActorError::Conflict(format!(
                "host {} is offline; the running job cannot be stopped until it reconnects",
                job.host_id
            )));
        };
        let host_id = job.host_id.to_string();
        if let Some(host) =
            blocking_read(&self.pool, move |conn| store::hosts::get(conn, &host_id)).await?
        {
            host.require_capability(protocol::CAPABILITY_CANCEL)?;
        }
        session
            .send(CancelJob {
                job_id: job.id.to_string(),
                already_cancelled: false,
            })
            .await
            .map_err(ActorError::mailbox)?;
        Ok(CancelOutcome::CancelRequested)
    }

    /// Pushes the host's current `config.update` + `schedule.set` to its
    /// live session, if any (after a change that bumped the version in
    /// its own write): loaded here, sent as [`PushConfig`].
    pub async fn push_config(&self, host_id: &str) -> Result<(), ActorError> {
        let Some(session) = self.session(host_id).await? else {
            return Ok(());
        };
        let key = self.key.clone();
        let id = host_id.to_owned();
        let config = blocking_read(&self.pool, move |conn| {
            host_session::load_config(conn, &key, &id)
        })
        .await?;
        session.do_send(PushConfig(config));
        Ok(())
    }

    /// Revokes a host: its token stops working and its live session closes.
    pub async fn revoke_host(&self, host_id: &str) -> Result<(), ActorError> {
        let revoked = self
            .persistence
            .send(RevokeHost {
                host_id: HostId::from(host_id),
                now: store::now_ms(),
            })
            .await
            .map_err(ActorError::mailbox)??;
        if !revoked {
            return Err(ActorError::NotFound(format!("host {host_id}")));
        }
        if let Some(session) = self.session(host_id).await? {
            session.do_send(Revoked);
        }
        Ok(())
    }

    /// Whether the host has a live session.
    pub async fn is_online(&self, host_id: &str) -> Result<bool, ActorError> {
        Ok(self.session(host_id).await?.is_some())
    }

    /// Asks every session to check its heartbeat deadline against `now`
    /// (a later `now` in tests times sessions out without waiting).
    pub async fn sweep_idle_sessions(&self, now: Instant) -> Result<usize, ActorError> {
        self.registry
            .send(SweepIdle { now })
            .await
            .map_err(ActorError::mailbox)
    }

    /// Closes every agent session with 1001 (server shutting down), then
    /// makes everything buffered durable; returns how many sessions were
    /// told. Part of a graceful stop.
    pub async fn close_all_sessions(&self) -> Result<usize, ActorError> {
        let told = self
            .registry
            .send(registry::CloseAll)
            .await
            .map_err(ActorError::mailbox)?;
        self.persistence
            .send(persistence::FlushAll)
            .await
            .map_err(ActorError::mailbox)?;
        Ok(told)
    }

    async fn session(
        &self,
        host_id: &str,
    ) -> Result<Option<Addr<host_session::HostSession>>, ActorError> {
        Ok(self.sessions.get(host_id))
    }
}
