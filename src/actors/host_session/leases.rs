//! The session's half of repository leases (`store::leases`, issue 12
//! §3): a job of a host attached to a shared repository goes out only
//! once it holds its lease there.
//!
//! When the queue's next job needs one, the session asks the writer
//! ([`leases::acquire`], one transaction that decides and records). While
//! the answer is "waiting", the job keeps the host's slot ([`Awaiting`]),
//! stays `queued`, and the job API shows the writer's `waiting_for`. When
//! a lease on the repository ends (a job of an attached host ends, a
//! waiting request is dropped), [`nudge_waiters`] tells every session
//! with a waiting job to ask again ([`RetryLease`]); the writer's order
//! decides who gets it. Nothing here blocks the event loop: the asks are
//! messages to the writer, their answers come back through `ctx.spawn`.
//!
//! A lease itself ends with its job (the writer ignores and deletes rows
//! of terminal jobs), so there is no release message; a session that ends
//! drops its waiting requests (it asks again after reconnecting).

use std::time::Duration;

use actix::prelude::*;
use actix_web_actors::ws;

use super::{HostSession, QueuedJob};
use crate::actors::events::Events;
use crate::actors::persistence::Persistence;
use crate::actors::persistence::RunWrite;
use crate::actors::registry::Directory;
use crate::actors::{blocking_read, hand_to_session, maintenance, ActorError};
use crate::ids::JobId;
use crate::protocol;
use crate::store::leases::{self, Acquired, Mode};
use crate::store::models::Job;
use crate::store::JobStatus;
use crate::store::Pool;

/// How long a session waits before asking again after the writer failed.
const ASK_AGAIN_AFTER_ERROR: Duration = Duration::from_secs(2);

/// The job in the slot that waits for its lease.
#[derive(Debug)]
pub(super) struct Awaiting {
    job: QueuedJob,
    repository_id: String,
    mode: Mode,
    /// An ask is out to the writer.
    asking: bool,
    /// A lease ended while the ask was out: ask again after its answer.
    again: bool,
}

/// A lease on the repository ended: a job waiting in this session asks
/// again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RetryLease;

impl Handler<RetryLease> for HostSession {
    type Result = ();

    fn handle(&mut self, _msg: RetryLease, ctx: &mut Self::Context) {
        if let Some(awaiting) = self.awaiting_lease.as_mut() {
            awaiting.again = true;
        }
        self.ask_lease(ctx);
    }
}

/// Tells every session with a job waiting for a lease on `repository_id`
/// to ask again (read off the event loop, then one message per host).
pub fn nudge_waiters(pool: &Pool, sessions: &Directory, repository_id: String) {
    let pool = pool.clone();
    let sessions = sessions.clone();
    actix::spawn(async move {
        let repo = repository_id.clone();
        match blocking_read(&pool, move |c| leases::waiting_hosts(c, &repo)).await {
            Ok(hosts) => {
                for host in hosts {
                    if let Some(session) = sessions.get(&host) {
                        session.do_send(RetryLease);
                    }
                }
            }
            Err(e) => {
                tracing::error!(repository_id = %repository_id, error = %e, "cannot read lease waiters")
            }
        }
    });
}

impl HostSession {
    /// The lease `job` needs before it goes out, if the host is on a
    /// shared repository and the job touches it.
    pub(super) fn lease_needed(&self, job: &QueuedJob) -> Option<(String, Mode)> {
        let repository = self.shared_repository.clone()?;
        let restore_elsewhere = job
            .run
            .restore
            .as_ref()
            .is_some_and(|r| r.source_host_id.is_some());
        if restore_elsewhere {
            return None; // it reads another host's repository
        }
        leases::mode_for(job.run.kind, &job.run.args).map(|mode| (repository, mode))
    }

    /// Holds `job` in the slot until its lease is granted.
    pub(super) fn wait_for_lease(
        &mut self,
        job: QueuedJob,
        repository_id: String,
        mode: Mode,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.awaiting_lease = Some(Box::new(Awaiting {
            job,
            repository_id,
            mode,
            asking: false,
            again: false,
        }));
        self.ask_lease(ctx);
    }

    /// Asks the writer for the waiting job's lease (once at a time).
    fn ask_lease(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(awaiting) = self.awaiting_lease.as_mut() else {
            return;
        };
        if awaiting.asking {
            return;
        }
        awaiting.asking = true;
        awaiting.again = false;
        let job_id = awaiting.job.id().to_owned();
        let host_id = self.host_id.clone();
        let repository_id = awaiting.repository_id.clone();
        let mode = awaiting.mode;
        let asked = JobId::from(job_id.as_str());
        let write =
            self.actors
                .persistence
                .send(RunWrite::new("acquiring a repository lease", move |c| {
                    let now = crate::store::now_ms();
                    leases::acquire(c, &asked, &host_id, &repository_id, mode, now)
                        .map_err(ActorError::from)
                }));
        ctx.spawn(write.into_actor(self).map(move |outcome, act, ctx| {
            let Some(awaiting) = act
                .awaiting_lease
                .as_mut()
                .filter(|a| a.job.id() == job_id)
            else {
                return; // cancelled or ended meanwhile; its row counts for nothing
            };
            awaiting.asking = false;
            match outcome {
                Ok(Ok(Acquired::Granted)) => {
                    let Some(awaiting) = act.awaiting_lease.take() else {
                        return;
                    };
                    tracing::info!(host_id = %act.host_id, job_id = %job_id, mode = awaiting.mode.as_str(), "repository lease granted");
                    act.route_job(awaiting.job, ctx);
                }
                Ok(Ok(Acquired::Waiting(reason))) => {
                    tracing::info!(host_id = %act.host_id, job_id = %job_id, reason = %reason, "job waits for a repository lease");
                    if awaiting.again {
                        act.ask_lease(ctx);
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(host_id = %act.host_id, job_id = %job_id, error = %e, "cannot acquire a lease");
                    ctx.run_later(ASK_AGAIN_AFTER_ERROR, |act, ctx| act.ask_lease(ctx));
                }
                Err(e) => {
                    tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable");
                    ctx.run_later(ASK_AGAIN_AFTER_ERROR, |act, ctx| act.ask_lease(ctx));
                }
            }
        }));
    }

    /// A job of this host ended (or left the slot): if it was the one
    /// waiting, it waits no more; either way a lease on the shared
    /// repository may have ended, so the waiters there ask again.
    pub(super) fn lease_over(&mut self, job_id: &str) {
        if self
            .awaiting_lease
            .as_ref()
            .is_some_and(|a| a.job.id() == job_id)
        {
            self.awaiting_lease = None;
        }
        if let Some(repository) = &self.shared_repository {
            nudge_waiters(&self.actors.pool, &self.actors.sessions, repository.clone());
        }
    }

    /// A job of this host failed on a restic lock (one left by a crashed
    /// host or an unmanaged restic): the server queues an `unlock
    /// --remove-all` of the shared repository, which takes an exclusive
    /// lease, so it runs only when no job holds one.
    pub(super) fn unlock_after_lock_error(&mut self, job: &Job) {
        let Some(repository) = self.shared_repository.clone() else {
            return;
        };
        if job.status != JobStatus::Failed || !job.error.as_deref().is_some_and(is_lock_error) {
            return;
        }
        tracing::warn!(host_id = %self.host_id, job_id = %job.id, "job failed on a restic lock; queueing an unlock");
        queue_unlock(
            &self.actors.persistence,
            &self.actors.sessions,
            &self.actors.events,
            repository,
        );
    }

    /// A `catalog` job waiting for its lease gives the slot back when
    /// other work is queued (as a running one would yield); returns
    /// whether it did.
    pub(super) fn catalog_gives_way(&mut self) -> bool {
        let waiting_catalog = self
            .awaiting_lease
            .as_ref()
            .is_some_and(|a| a.job.run.kind == protocol::JobKind::Catalog);
        if !waiting_catalog || !self.queue.has_other_than_catalog() {
            return false;
        }
        let Some(awaiting) = self.awaiting_lease.take() else {
            return false;
        };
        let job_id = awaiting.job.id().to_owned();
        self.queue.put_back(awaiting.job);
        self.drop_lease_requests(Some(job_id));
        true
    }

    /// Drops a waiting request: one job's (it gave way), or every one of
    /// this host (`None`: the session ends). Through the writer; then the
    /// repository's other waiters ask again.
    pub(super) fn drop_lease_requests(&mut self, job_id: Option<String>) {
        if self.shared_repository.is_none() && self.awaiting_lease.is_none() {
            return;
        }
        let actors = self.actors.clone();
        let host_id = self.host_id.clone();
        // A session that ends also stops counting its queued maintenance
        // as waiting: the repository's waiters look again.
        let own = job_id
            .is_none()
            .then(|| self.shared_repository.clone())
            .flatten();
        actix::spawn(async move {
            let host = host_id.clone();
            let dropped = actors
                .persistence
                .send(RunWrite::new("dropping lease requests", move |c| {
                    match &job_id {
                        Some(job) => leases::drop_request(c, job),
                        None => leases::drop_waiting_of_host(c, &host),
                    }
                    .map_err(ActorError::from)
                }))
                .await;
            match dropped {
                Ok(Ok(mut repositories)) => {
                    repositories.extend(own.filter(|r| !repositories.contains(r)));
                    for repository in repositories {
                        nudge_waiters(&actors.pool, &actors.sessions, repository);
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(host_id = %host_id, error = %e, "cannot drop lease requests")
                }
                Err(e) => {
                    tracing::error!(host_id = %host_id, error = %e, "persistence unavailable")
                }
            }
        });
    }
}

/// Whether a job's error is restic failing to lock the repository.
pub fn is_lock_error(error: &str) -> bool {
    error.contains("already locked") || error.contains("unable to create lock")
}

/// Creates the server's `unlock` job of a shared repository (through the
/// writer) and hands it to its host's session.
pub fn queue_unlock(
    persistence: &Addr<Persistence>,
    sessions: &Directory,
    events: &Addr<Events>,
    repository_id: String,
) {
    let persistence = persistence.clone();
    let sessions = sessions.clone();
    let events = events.clone();
    actix::spawn(async move {
        let on = sessions.clone();
        let repo = repository_id.clone();
        let created = persistence
            .send(RunWrite::new("queueing an unlock", move |c| {
                maintenance::unlock_job(c, &on, &repo, crate::store::now_ms())
                    .map_err(ActorError::from)
            }))
            .await;
        match created {
            Ok(Ok(Some(job))) => {
                tracing::info!(repository_id = %repository_id, job_id = %job.id, host_id = %job.host_id, "unlock queued");
                hand_to_session(&sessions, &events, &job);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::error!(repository_id = %repository_id, error = %e, "cannot queue an unlock")
            }
            Err(e) => tracing::error!(error = %e, "persistence unavailable"),
        }
    });
}
