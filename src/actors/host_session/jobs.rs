//! The session's half of a job's life: sending the queue's next
//! `command.run` (a restore from another host's repository first gets
//! that repository's settings, read off the event loop), and the agent's
//! reports on it (`command.result`, `job.started`, `job.finished`, the
//! heartbeat's `active_job_ids`, and `snapshots.report` after a job). A job's end comes back from the
//! writer with its follow-up (one transaction); the follow-up is
//! published and, when due now, queued here.

use std::time::Duration;

use actix::prelude::*;
use actix_web_actors::ws;

use super::{load_repository, HostSession, Phase, QueuedJob};
use crate::actors::blocking_read;
use crate::actors::events::Event;
use crate::actors::followup;
use crate::actors::persistence::{
    CommandOutcome, Finished, MarkDispatched, ReconcileRunning, RecordCommandResult,
    RecordJobFinished, RecordJobStarted, ReplaceSnapshots, Touch,
};
use crate::protocol;
use crate::store;
use crate::store::jobs::FinishOutcome;
use crate::store::models::Job;

/// `exit_code` of a job the server failed before sending it (restic never
/// ran), as the agent reports a job it could not start.
const UNSENT_EXIT_CODE: i32 = -1;

impl HostSession {
    /// Sends the next queued job if none is in flight.
    pub(super) fn dispatch_next(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.phase != Phase::Ready {
            return;
        }
        if self.catalog_gives_way() {
            return self.dispatch_next(ctx);
        }
        self.yield_catalog_if_needed(ctx);
        let Some(job) = self.queue.take_next() else {
            return;
        };
        if let Some(reason) = self
            .capability_refusal(&job)
            .or_else(|| self.withdrawn_refusal(&job))
        {
            return self.fail_unsent(job.id().to_owned(), reason, ctx);
        }
        match self.lease_needed(&job) {
            Some((repository, mode)) => self.wait_for_lease(job, repository, mode, ctx),
            None => self.route_job(job, ctx),
        }
    }

    /// Why `job` is not sent when the host's repository was taken away
    /// (`HostSession::repository_withdrawn`): every job uses the host's
    /// repository but a restore from another host's.
    fn withdrawn_refusal(&self, job: &QueuedJob) -> Option<String> {
        let elsewhere = job
            .run
            .restore
            .as_ref()
            .is_some_and(|r| r.source_host_id.is_some());
        (self.repository_withdrawn && !elsewhere).then(|| {
            format!(
                "not sent: host {} has no repository any more (a policy's repository no longer applies to it) \
                 and its agent may still hold the old one; give it a repository \
                 (PUT /api/v1/hosts/{}/repository or a matching policy's repository_id) and run the job again",
                self.host_id, self.host_id
            )
        })
    }

    /// Sends a job whose lease (if it needs one) is held.
    pub(super) fn route_job(&mut self, job: QueuedJob, ctx: &mut ws::WebsocketContext<Self>) {
        if self.queue.in_flight() != Some(job.id()) {
            return; // cancelled while it waited for its lease
        }
        let source = job
            .run
            .restore
            .as_ref()
            .and_then(|restore| restore.source_host_id.clone());
        match source {
            Some(source) => self.send_with_source_repository(job, source, ctx),
            None if job.run.dump.is_some() => self.send_with_dump_password(job, ctx),
            None => self.send_job(job, ctx),
        }
    }

    /// A dump group's backup: the group's password is opened off the
    /// event loop and added to the `command.run` (never stored with the
    /// job). Without its group (deleted since) or with a password that
    /// cannot be opened, the job fails here.
    fn send_with_dump_password(
        &mut self,
        mut job: QueuedJob,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let pool = self.actors.pool.clone();
        let key = self.actors.key.clone();
        let group_id = job.source_group_id.clone();
        let load = async move {
            blocking_read(&pool, move |conn| {
                let Some(group_id) = group_id else {
                    return Ok(Err("the job has no source group".to_owned()));
                };
                let Some(group) = store::source_groups::get(conn, &group_id)? else {
                    return Ok(Err(format!("source group {group_id} was deleted")));
                };
                Ok(match group.dump_password_sealed.as_deref() {
                    None => Ok(None),
                    Some(sealed) => crate::crypto::open_string(&key, sealed, group_id.as_bytes())
                        .map(Some)
                        .map_err(|e| format!("the dump password cannot be opened: {e}")),
                })
            })
            .await
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, act, ctx| {
            if act.queue.in_flight() != Some(job.id()) {
                return; // cancelled while the password was read
            }
            let failure = match loaded {
                Ok(Ok(password)) => {
                    if let Some(dump) = job.run.dump.as_mut() {
                        dump.password = password;
                    }
                    return act.send_job(job, ctx);
                }
                Ok(Err(reason)) => reason,
                Err(e) => format!("cannot read the dump's source group: {e}"),
            };
            act.fail_unsent(job.id().to_owned(), failure, ctx);
        }));
    }

    fn send_job(&mut self, job: QueuedJob, ctx: &mut ws::WebsocketContext<Self>) {
        tracing::info!(host_id = %self.host_id, job_id = %job.id(), kind = %job.run.kind, "dispatching job");
        let job_id = job.run.job_id.clone();
        self.own_jobs.record(&job_id, true);
        self.send(ctx, job.run);
        self.actors.persistence.do_send(MarkDispatched {
            host_id: self.host_id.clone(),
            job_id: job_id.into(),
            now: store::now_ms(),
        });
    }

    /// A restore from another host's repository: that repository's
    /// settings are read (secrets opened) off the event loop, added to the
    /// `command.run` and sent; they are never stored with the job. The job
    /// holds the in-flight slot meanwhile; if it was cancelled in between,
    /// nothing is sent. Without usable settings the job fails here.
    fn send_with_source_repository(
        &mut self,
        mut job: QueuedJob,
        source: String,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let pool = self.actors.pool.clone();
        let key = self.actors.key.clone();
        let host = source.clone();
        let load = async move {
            blocking_read(&pool, move |conn| load_repository(conn, &key, &host)).await
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, act, ctx| {
            if act.queue.in_flight() != Some(job.id()) {
                return; // cancelled while the settings were read
            }
            let failure = match loaded {
                Ok(Some(repository))
                    if repository.repo_url.is_some() && repository.repo_password.is_some() =>
                {
                    if let Some(restore) = job.run.restore.as_mut() {
                        restore.repository = Some(repository);
                    }
                    return act.send_job(job, ctx);
                }
                Ok(_) => format!(
                    "the repository of source host {source} is not configured or its password cannot be opened"
                ),
                Err(e) => {
                    tracing::error!(host_id = %act.host_id, job_id = %job.id(), error = %e, "cannot read the source repository");
                    format!("cannot read the repository of source host {source}: {e}")
                }
            };
            act.fail_unsent(job.id().to_owned(), failure, ctx);
        }));
    }

    /// Fails a job the server could not send (its `job.finished` is
    /// written as if the agent had reported it).
    fn fail_unsent(&mut self, job_id: String, error: String, ctx: &mut ws::WebsocketContext<Self>) {
        tracing::warn!(host_id = %self.host_id, job_id = %job_id, error = %error, "job not sent");
        let write = self.actors.persistence.send(RecordJobFinished {
            host_id: self.host_id.clone(),
            payload: protocol::JobFinished {
                job_id: job_id.clone(),
                status: protocol::FinishStatus::Failed,
                exit_code: UNSENT_EXIT_CODE,
                finished_at: chrono::Utc::now(),
                stats: None,
                error: Some(error),
            },
            now: store::now_ms(),
        });
        ctx.spawn(write.into_actor(self).map(move |outcome, act, ctx| match outcome {
            Ok(Ok(finished)) => act.job_terminal(finished, ctx),
            Ok(Err(_)) => act.job_done(&job_id, ctx), // logged by the writer
            Err(e) => {
                tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable");
                act.job_done(&job_id, ctx);
            }
        }));
    }

    /// A job of this host is over (for whatever reason): free the slot.
    pub(super) fn job_done(&mut self, job_id: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.job_ended(job_id);
        self.dispatch_next(ctx);
    }

    /// What every end of a job does to the session's own state: its slot
    /// and lease are freed and the session forgets it (bounded memory).
    fn job_ended(&mut self, job_id: &str) {
        self.queue.done(job_id);
        self.lease_over(job_id);
        self.own_jobs.forget(job_id);
    }

    /// A job became terminal here (applied once), with the job created to
    /// follow it in the same write: publish both, queue the follow-up when
    /// it is due now, free the slot.
    pub(super) fn job_terminal(
        &mut self,
        finished: Finished,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Finished { outcome, follow_up } = finished;
        let job = match outcome {
            FinishOutcome::Applied(job) => job,
            FinishOutcome::AlreadyFinished(job) => return self.job_done(&job.id, ctx),
            FinishOutcome::NotFound => return,
        };
        if let (Some(started), Some(finished)) = (job.started_at, job.finished_at) {
            let ran = u64::try_from(finished.saturating_sub(started)).unwrap_or(0);
            self.actors
                .metrics
                .job_finished(job.kind, Duration::from_millis(ran));
        }
        self.publish(Event::JobStatus {
            host_id: job.host_id.clone(),
            job_id: job.id.clone(),
            status: job.status,
            message: job.error.clone().or_else(|| job.warning.clone()),
        });
        self.job_ended(&job.id);
        self.unlock_after_lock_error(&job);
        if let Some(next) = follow_up {
            self.follow_up(&job, next);
        }
        self.dispatch_next(ctx);
    }

    /// Publishes a follow-up job and queues it if it is due now.
    pub(super) fn follow_up(&mut self, after: &Job, next: Job) {
        tracing::info!(
            host_id = %next.host_id,
            job_id = %next.id,
            after = %after.id,
            trigger = %next.trigger,
            "follow-up job created"
        );
        self.publish(Event::JobStatus {
            host_id: next.host_id.clone(),
            job_id: next.id.clone(),
            status: next.status,
            message: None,
        });
        if followup::is_due(next.retry_at, store::now_ms()) {
            self.queue.enqueue(QueuedJob::of(&next));
        }
    }

    pub(super) fn on_heartbeat(
        &mut self,
        heartbeat: protocol::Heartbeat,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let now = store::now_ms();
        self.actors.persistence.do_send(Touch {
            host_id: self.host_id.clone(),
            now,
        });
        self.on_host_metrics(&heartbeat.metrics, now);
        self.check_config_version(heartbeat.config_version, ctx);
        let Some(active_job_ids) = heartbeat.active_job_ids else {
            return;
        };
        let reconcile = self.actors.persistence.send(ReconcileRunning {
            host_id: self.host_id.clone(),
            active_job_ids,
            now,
        });
        ctx.spawn(reconcile.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(lost)) => {
                for finished in lost {
                    if let FinishOutcome::Applied(job) = &finished.outcome {
                        tracing::warn!(host_id = %act.host_id, job_id = %job.id, "agent lost a running job");
                    }
                    act.job_terminal(finished, ctx);
                }
            }
            Ok(Err(_)) => {} // logged by the writer
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }

    pub(super) fn on_command_result(
        &mut self,
        result: protocol::CommandResult,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let job_id = result.job_id.clone();
        let write = self.actors.persistence.send(RecordCommandResult {
            host_id: self.host_id.clone(),
            payload: result,
            now: store::now_ms(),
        });
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |outcome, act, ctx| match outcome {
                    Ok(Ok(CommandOutcome::Accepted)) => {}
                    Ok(Ok(CommandOutcome::Refused(finished))) => match finished.outcome {
                        FinishOutcome::Applied(_) => act.job_terminal(*finished, ctx),
                        FinishOutcome::AlreadyFinished(_) | FinishOutcome::NotFound => {
                            act.job_done(&job_id, ctx)
                        }
                    },
                    Ok(Err(e)) => act.not_stored(ctx, "command.result", &e),
                    Err(e) => act.not_stored(ctx, "command.result", &e),
                }),
        );
    }

    pub(super) fn on_job_started(
        &mut self,
        started: protocol::JobStarted,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let job_id = started.job_id.clone();
        let write = self.actors.persistence.send(RecordJobStarted {
            host_id: self.host_id.clone(),
            payload: started,
        });
        ctx.spawn(write.into_actor(self).map(move |outcome, act, _ctx| match outcome {
            Ok(Ok(true)) => {
                act.own_jobs.record(&job_id, true);
                act.publish(Event::JobStatus {
                    host_id: act.host_id.clone(),
                    job_id: job_id.into(),
                    status: store::JobStatus::Running,
                    message: None,
                });
            }
            Ok(_) => {}
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }

    pub(super) fn on_job_finished(
        &mut self,
        id: String,
        finished: protocol::JobFinished,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let job_id = finished.job_id.clone();
        // The lines collected so far go to the writer before the end, so
        // that a job stream that sees the end finds every line stored once
        // it flushes the writer (`http::api::events`).
        self.send_logs();
        let write = self.actors.persistence.send(RecordJobFinished {
            host_id: self.host_id.clone(),
            payload: finished,
            now: store::now_ms(),
        });
        ctx.spawn(write.into_actor(self).map(move |outcome, act, ctx| match outcome {
            Ok(Ok(finished)) if finished.outcome == FinishOutcome::NotFound => {
                tracing::warn!(host_id = %act.host_id, job_id = %job_id, "job.finished for an unknown job");
                act.ack(ctx, id, false, Some(format!("unknown job {job_id}")));
            }
            Ok(Ok(finished)) => {
                act.ack(ctx, id, true, None);
                act.job_terminal(finished, ctx);
            }
            Ok(Err(e)) => act.not_stored(ctx, "job.finished", &e),
            Err(e) => act.not_stored(ctx, "job.finished", &e),
        }));
    }

    pub(super) fn on_snapshots(
        &mut self,
        id: String,
        report: protocol::SnapshotsReport,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let write = self.actors.persistence.send(ReplaceSnapshots {
            host_id: self.host_id.clone(),
            payload: report,
            now: store::now_ms(),
        });
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |outcome, act, ctx| match outcome {
                    Ok(Ok(replaced)) => {
                        act.ack(ctx, id, true, None);
                        act.queue_catalog_jobs(replaced.catalog_jobs);
                        act.dispatch_next(ctx);
                    }
                    Ok(Err(e)) => act.not_stored(ctx, "snapshots.report", &e),
                    Err(e) => act.not_stored(ctx, "snapshots.report", &e),
                }),
        );
    }
}
