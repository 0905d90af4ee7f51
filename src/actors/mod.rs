//! The server's actors (DESIGN.md "The actor model") and [`Actors`], the
//! facade the HTTP layer uses to reach them.
//!
//! # Layout
//!
//! - [`host_session`]: `HostSession`, one per connected agent (WebSocket).
//! - [`registry`]: `Registry`, host id → live session.
//! - [`scheduler`]: `Scheduler`, fires → jobs, retries, retention, missed runs.
//! - [`persistence`]: `Persistence`, the one writer, on a `SyncArbiter`.
//! - [`events`]: `Events`, live fan-out to UI subscribers.
//! - [`log_retention`]: prunes old job logs, a small batch per writer turn.
//!
//! [`start`] builds them once (inside the actix system, outside
//! `HttpServer::new`) and returns the cloneable [`Actors`]. Its methods
//! are what REST handlers call: create and cancel jobs, push a changed
//! configuration, revoke a host. Reads run in `web::block` with a pooled
//! connection; writes go through [`persistence::Persistence`].

pub mod events;
pub mod host_session;
pub mod log_retention;
pub mod persistence;
pub mod registry;
pub mod scheduler;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::ServerConfig;
use crate::crypto::SecretKey;
use crate::metrics::Metrics;
use crate::protocol;
use crate::store::{self, models, JobTrigger, Pool};

use events::{Event, Events, Publish};
use host_session::{CancelJob, DispatchJob, PushConfig, Revoked};
use persistence::{
    BumpScheduleVersion, CancelQueued, Flush, InsertJob, PersistError, Persistence, RevokeHost,
    RunWrite,
};
use registry::{Lookup, Registry, SweepIdle};
use scheduler::Scheduler;

/// Handles to the server's actors, built once in the app wiring.
#[derive(Clone)]
pub struct Actors {
    /// Host id → live session.
    pub registry: Addr<Registry>,
    /// The one database writer.
    pub persistence: Addr<Persistence>,
    /// Fires, retries, retention, missed runs (send it `Tick { now }`).
    pub scheduler: Addr<Scheduler>,
    /// Live events (send it `Subscribe { filter }`).
    pub events: Addr<Events>,
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
    let registry = Registry::new(persistence.clone(), events.clone()).start();
    let scheduler = Scheduler::new(
        pool.clone(),
        persistence.clone(),
        registry.clone(),
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

    log_retention::start(persistence.clone(), config.log_retention_days);

    Actors {
        registry,
        persistence,
        scheduler,
        events,
        pool,
        key,
        config,
        metrics,
        log_backlog,
        event_listeners,
    }
}

/// A run-now (or other manual) job to create.
pub struct NewJobRequest {
    pub host_id: String,
    pub kind: protocol::JobKind,
    /// Source group name; required for backup.
    pub source_group: Option<String>,
    /// Username (or `agent:<id>`) for the audit trail.
    pub requested_by: String,
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
pub(crate) async fn hand_to_session(
    registry: &Addr<Registry>,
    events: &Addr<Events>,
    job: models::Job,
) -> bool {
    events.do_send(Publish(Event::JobStatus {
        host_id: job.host_id.clone(),
        job_id: job.id.clone(),
        status: job.status,
        message: None,
    }));
    match registry
        .send(Lookup {
            host_id: job.host_id.clone(),
        })
        .await
    {
        Ok(Some(session)) => {
            session.do_send(DispatchJob { job });
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::error!(error = %e, job_id = %job.id, "registry unavailable");
            false
        }
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
    pub fn new_session(&self, host_id: String) -> host_session::HostSession {
        host_session::HostSession::new(host_id, self.clone(), self.config.max_frame_bytes)
    }

    /// Writes a queued job row and hands it to the live session, if any.
    pub async fn create_job(&self, req: NewJobRequest) -> Result<models::Job, ActorError> {
        let now = store::now_ms();
        let host_id = req.host_id.clone();
        let group_name = req.source_group.clone();
        let kind = req.kind;
        let new = blocking_read(&self.pool, move |conn| {
            let Some(host) = store::hosts::get(conn, &host_id)? else {
                return Ok(Err(ActorError::NotFound(format!("host {host_id}"))));
            };
            if host.revoked_at.is_some() {
                return Ok(Err(ActorError::Conflict(format!(
                    "host {host_id} is revoked"
                ))));
            }
            let mut new = models::NewJob::new(
                store::new_id(),
                host_id.clone(),
                kind.into(),
                JobTrigger::Manual,
                now,
            );
            match &group_name {
                Some(name) => {
                    let Some(group) = store::source_groups::by_name(conn, &host_id, name)? else {
                        return Ok(Err(ActorError::NotFound(format!("source group {name}"))));
                    };
                    if kind == protocol::JobKind::Forget {
                        let Some(policy) = scheduler::group_retention(&group) else {
                            return Ok(Err(ActorError::Invalid(format!(
                                "source group {name} has no retention policy to forget with"
                            ))));
                        };
                        new = scheduler::forget_job(&group, &policy, now);
                        new.trigger = JobTrigger::Manual;
                    } else {
                        new.source_group_id = Some(group.id.clone());
                        new.tag = Some(group.name.clone());
                        new.includes = group.includes.clone();
                        new.excludes = group.excludes.clone();
                        new.retention_policy = group.retention_policy.clone();
                    }
                }
                None if kind == protocol::JobKind::Backup => {
                    return Ok(Err(ActorError::Invalid(
                        "source_group is required for a backup".into(),
                    )));
                }
                None if kind == protocol::JobKind::Forget => {
                    return Ok(Err(ActorError::Invalid(
                        "source_group is required for a forget (its tag and retention policy)"
                            .into(),
                    )));
                }
                None => {}
            }
            Ok(Ok(new))
        })
        .await??;
        let job = self
            .persistence
            .send(InsertJob { new })
            .await
            .map_err(ActorError::mailbox)??;
        tracing::info!(host_id = %job.host_id, job_id = %job.id, kind = %job.kind, requested_by = %req.requested_by, "job created");
        hand_to_session(&self.registry, &self.events, job.clone()).await;
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
        self.persistence
            .send(RunWrite::new(what, f))
            .await
            .map_err(|e| {
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
        let session = self
            .registry
            .send(Lookup {
                host_id: job.host_id.clone(),
            })
            .await
            .map_err(ActorError::mailbox)?;
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
                        job_id: cancelled.id,
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
        session
            .send(CancelJob {
                job_id: job.id.clone(),
                already_cancelled: false,
            })
            .await
            .map_err(ActorError::mailbox)?;
        Ok(CancelOutcome::CancelRequested)
    }

    /// After a change to a host's repository, groups or schedules: bumps
    /// the schedule version and pushes `config.update` + `schedule.set` to
    /// the live session.
    pub async fn host_config_changed(&self, host_id: &str) -> Result<(), ActorError> {
        let id = host_id.to_string();
        let exists = blocking_read(&self.pool, move |conn| store::hosts::get(conn, &id))
            .await?
            .is_some();
        if !exists {
            return Err(ActorError::NotFound(format!("host {host_id}")));
        }
        self.persistence
            .send(BumpScheduleVersion {
                host_id: host_id.to_string(),
            })
            .await
            .map_err(ActorError::mailbox)??;
        self.push_config(host_id).await
    }

    /// Pushes `config.update` + `schedule.set` to the host's live session,
    /// if any (after a change that bumped the version in its own write).
    pub async fn push_config(&self, host_id: &str) -> Result<(), ActorError> {
        if let Some(session) = self.session(host_id).await? {
            session.do_send(PushConfig);
        }
        Ok(())
    }

    /// Revokes a host: its token stops working and its live session closes.
    pub async fn revoke_host(&self, host_id: &str) -> Result<(), ActorError> {
        let revoked = self
            .persistence
            .send(RevokeHost {
                host_id: host_id.to_string(),
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
        self.registry
            .send(Lookup {
                host_id: host_id.to_string(),
            })
            .await
            .map_err(ActorError::mailbox)
    }
}
