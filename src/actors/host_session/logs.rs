//! Log batching: `log.stream` lines are published live (if anyone
//! listens and the job is the host's) and collected, then handed to the writer in batches of
//! [`LOG_BATCH_LINES`] or after [`LOG_BATCH_LINGER`]; while the writer is
//! [`LOG_BACKLOG_HIGH`] lines behind, the session stops reading its
//! socket until the backlog is down to [`LOG_BACKLOG_LOW`].

use actix::prelude::*;
use actix_web_actors::ws;

use super::{HostSession, LOG_BACKLOG_HIGH, LOG_BACKLOG_LOW, LOG_BATCH_LINES, LOG_BATCH_LINGER};
use crate::actors::events::Event;
use crate::actors::persistence::AppendLogs;
use crate::protocol;

impl HostSession {
    /// `log.stream`: published live (if anyone listens) and collected;
    /// a full batch goes to Persistence at once, a partial one after
    /// [`LOG_BATCH_LINGER`].
    pub(super) fn on_log(
        &mut self,
        line: protocol::LogStream,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let host_id = self.host_id.clone();
        self.publish_job_event(
            &line.job_id,
            || Event::JobLog {
                host_id,
                job_id: line.job_id.clone().into(),
                seq: line.seq,
                ts: line.ts,
                stream: line.stream,
                payload: line.payload.clone(),
            },
            ctx,
        );
        self.logs.push(line);
        if self.logs.len() >= LOG_BATCH_LINES {
            self.send_logs();
            self.pause_if_backlogged(ctx);
        } else if !self.logs_timer {
            self.logs_timer = true;
            ctx.run_later(LOG_BATCH_LINGER, |act, ctx| {
                act.logs_timer = false;
                act.send_logs();
                act.pause_if_backlogged(ctx);
            });
        }
    }

    /// Hands the collected log lines to Persistence, counting them into
    /// the shared backlog first.
    pub(super) fn send_logs(&mut self) {
        if self.logs.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.logs);
        self.actors.log_backlog.add(lines.len());
        self.actors.persistence.do_send(AppendLogs {
            host_id: self.host_id.clone(),
            lines,
        });
    }

    /// While Persistence is [`LOG_BACKLOG_HIGH`] lines behind, this
    /// session handles nothing (so reads nothing from its socket) until
    /// the backlog is down to [`LOG_BACKLOG_LOW`]: memory stays bounded
    /// and the agents slow down instead.
    pub(super) fn pause_if_backlogged(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.actors.log_backlog.len() < LOG_BACKLOG_HIGH {
            return;
        }
        let backlog = self.actors.log_backlog.clone();
        let wait = async move { backlog.wait_down_to(LOG_BACKLOG_LOW).await };
        ctx.wait(wait.into_actor(self));
    }
}
