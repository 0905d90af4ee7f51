//! The messages other actors send a session: queue a job
//! ([`DispatchJob`], carrying the `command.run`), cancel one
//! ([`CancelJob`]), push a configuration ([`PushConfig`], carrying it),
//! and the closes (superseded, revoked, shutting down, idle check).

use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;

use super::{HostConfig, HostSession, Phase, QueuedJob, CLOSE_REVOKED, CLOSE_SUPERSEDED};
use crate::protocol;
use crate::store::models::Job;

/// Queue a job for this host (from run-now, a fire, a due retry): the
/// `command.run` to send, and its place in the queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DispatchJob(pub QueuedJob);

impl DispatchJob {
    /// The message for a job row.
    pub fn of(job: &Job) -> Self {
        DispatchJob(QueuedJob::of(job))
    }
}

impl Handler<DispatchJob> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: DispatchJob, ctx: &mut Self::Context) {
        self.queue.enqueue(msg.0);
        self.dispatch_next(ctx);
    }
}

/// Stop a job: drop it from the queue and send `command.cancel` when the
/// agent may have it. `already_cancelled`: the row is cancelled already
/// (it was queued), so the slot is free at once. Replies whether
/// `command.cancel` went out (never to an agent without `cancel`: the
/// API refuses to stop its running jobs, 409 `agent_lacks_capability`).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CancelJob {
    pub job_id: String,
    pub already_cancelled: bool,
}

impl Handler<CancelJob> for HostSession {
    type Result = bool;

    fn handle(&mut self, msg: CancelJob, ctx: &mut Self::Context) -> bool {
        let in_flight = self.queue.cancel(&msg.job_id);
        let send = self.phase == Phase::Ready
            && (in_flight || !msg.already_cancelled)
            && self.has_capability(protocol::CAPABILITY_CANCEL);
        if send {
            self.send(
                ctx,
                protocol::CommandCancel {
                    job_id: msg.job_id.clone(),
                },
            );
        }
        if msg.already_cancelled {
            self.job_done(&msg.job_id, ctx);
        }
        send
    }
}

/// The host's configuration changed: push `config.update` and
/// `schedule.set` as built by the sender (an older version than the one
/// already sent is dropped; before `hello` the greeting pushes the
/// current one).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushConfig(pub HostConfig);

impl Handler<PushConfig> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: PushConfig, ctx: &mut Self::Context) {
        if self.phase == Phase::AwaitingHello {
            return; // the hello will push the current version
        }
        self.push_config(msg.0, ctx);
    }
}

/// A newer session of the same host took over: close with 4000.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Superseded;

impl Handler<Superseded> for HostSession {
    type Result = ();

    fn handle(&mut self, _msg: Superseded, ctx: &mut Self::Context) {
        self.registered = false;
        Self::close(ctx, ws::CloseCode::Other(CLOSE_SUPERSEDED), "superseded");
    }
}

/// The host was revoked: close with 4001.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revoked;

impl Handler<Revoked> for HostSession {
    type Result = ();

    fn handle(&mut self, _msg: Revoked, ctx: &mut Self::Context) {
        Self::close(ctx, ws::CloseCode::Other(CLOSE_REVOKED), "revoked");
    }
}

/// The server is shutting down: close with 1001 (going away) so the agent
/// reconnects to the next server, and the graceful stop does not wait for
/// the connection to time out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShuttingDown;

impl Handler<ShuttingDown> for HostSession {
    type Result = ();

    fn handle(&mut self, _msg: ShuttingDown, ctx: &mut Self::Context) {
        Self::close(ctx, ws::CloseCode::Away, "server shutting down");
    }
}

/// Check the heartbeat deadline against `now` (tests pass a later time).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckIdle {
    pub now: Instant,
}

impl Handler<CheckIdle> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: CheckIdle, ctx: &mut Self::Context) {
        self.check_idle(msg.now, ctx);
    }
}
