//! `job.report`: a backup the agent ran on its own while the server was
//! away. The writer records it (once per job id) and the session acks
//! only then, so the agent keeps re-sending it until it is durable; the
//! log lines and the `job.finished` the agent sends after it find the job.

use actix::prelude::*;
use actix_web_actors::ws;

use super::HostSession;
use crate::actors::events::Event;
use crate::actors::persistence::{AgentJobOutcome, RecordAgentJob};
use crate::protocol;
use crate::store;

impl HostSession {
    pub(super) fn on_job_report(
        &mut self,
        id: String,
        report: protocol::JobReport,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let job_id = report.job_id.clone();
        let write = self.actors.persistence.send(RecordAgentJob {
            host_id: self.host_id.clone(),
            payload: report,
            now: store::now_ms(),
        });
        ctx.spawn(write.into_actor(self).map(move |outcome, act, ctx| match outcome {
            Ok(Ok(AgentJobOutcome::Recorded(job))) => {
                tracing::info!(host_id = %act.host_id, job_id = %job.id, tag = job.tag.as_deref().unwrap_or(""), "recorded a backup the agent ran while the server was away");
                act.own_jobs.record(&job_id, true);
                act.ack(ctx, id, true, None);
                act.publish(Event::JobStatus {
                    host_id: act.host_id.clone(),
                    job_id: job_id.into(),
                    status: job.status,
                    message: None,
                });
            }
            Ok(Ok(AgentJobOutcome::AlreadyRecorded)) => {
                act.own_jobs.record(&job_id, true);
                act.ack(ctx, id, true, None);
            }
            Ok(Ok(AgentJobOutcome::Refused(reason))) => act.ack(ctx, id, false, Some(reason)),
            Ok(Err(e)) => act.not_stored(ctx, "job.report", &e),
            Err(e) => act.not_stored(ctx, "job.report", &e),
        }));
    }
}
