//! The session's half of a job's life: sending the queue's next
//! `command.run`, and the agent's reports on it (`command.result`,
//! `job.started`, `job.finished`, the heartbeat's `active_job_ids`, and
//! `snapshots.report` after a job). A job's end comes back from the
//! writer with its follow-up (one transaction); the follow-up is
//! published and, when due now, queued here.

use std::time::Duration;

use actix::prelude::*;
use actix_web_actors::ws;

use super::{HostSession, Phase, QueuedJob};
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

impl HostSession {
    /// Sends the next queued job if none is in flight.
    pub(super) fn dispatch_next(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.phase != Phase::Ready {
            return;
        }
        self.yield_catalog_if_needed(ctx);
        let Some(job) = self.queue.take_next() else {
            return;
        };
        tracing::info!(host_id = %self.host_id, job_id = %job.id(), kind = %job.run.kind, "dispatching job");
        let job_id = job.run.job_id.clone();
        self.send(ctx, job.run);
        self.actors.persistence.do_send(MarkDispatched {
            host_id: self.host_id.clone(),
            job_id,
            now: store::now_ms(),
        });
    }

    /// A job of this host is over (for whatever reason): free the slot.
    pub(super) fn job_done(&mut self, job_id: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.queue.done(job_id);
        self.dispatch_next(ctx);
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
            host_id: job.host_id.to_string(),
            job_id: job.id.to_string(),
            status: job.status,
            message: job.error.clone().or_else(|| job.warning.clone()),
        });
        self.queue.done(&job.id);
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
            host_id: next.host_id.to_string(),
            job_id: next.id.to_string(),
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
        ctx.spawn(write.into_actor(self).map(move |outcome, act, ctx| match outcome {
            Ok(Ok(CommandOutcome::Accepted)) => {}
            Ok(Ok(CommandOutcome::Refused(finished))) => match finished.outcome {
                FinishOutcome::Applied(_) => act.job_terminal(*finished, ctx),
                FinishOutcome::AlreadyFinished(_) | FinishOutcome::NotFound => act.job_done(&job_id, ctx),
            },
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
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
            Ok(Ok(true)) => act.publish(Event::JobStatus {
                host_id: act.host_id.clone(),
                job_id,
                status: store::JobStatus::Running,
                message: None,
            }),
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
            // Not acked: the agent keeps it in its outbox and re-sends it
            // after the next reconnect.
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
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
        ctx.spawn(write.into_actor(self).map(move |outcome, act, ctx| match outcome {
            Ok(Ok(replaced)) => {
                act.ack(ctx, id, true, None);
                act.queue_catalog_jobs(replaced.catalog_jobs);
                act.dispatch_next(ctx);
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }
}
