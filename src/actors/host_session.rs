//! `HostSession`: one connected agent, an actix-web-actors WebSocket actor
//! that speaks PROTOCOL.md's lifecycle.
//!
//! It owns the socket, the host's job queue (jobs waiting, and the one
//! `command.run` in flight: one job at a time per host, in creation
//! order) and the frame-level policy: `hello` within `ServerConfig::hello_timeout`,
//! protocol version check, bad frames answered with `error` frames and
//! the session closed (1008) after [`BAD_FRAME_LIMIT`] of them in
//! [`BAD_FRAME_WINDOW`], frames over the configured size closed with
//! 1009, no frame for [`HEARTBEAT_TIMEOUT`] → closed and offline, a
//! WebSocket ping every [`PING_INTERVAL`].
//!
//! After `hello` it registers with the [`Registry`] (superseding an older
//! session of the host, which is closed with [`CLOSE_SUPERSEDED`]), has
//! [`Persistence`] record the hello, then sends `config.update`
//! (repository secrets opened with the server key, never logged) and
//! `schedule.set`, then the host's queued jobs. Everything the agent
//! reports goes to [`Persistence`]; `job.finished` and `snapshots.report`
//! are acked only once the write is durable. Log lines go in batches
//! ([`LOG_BATCH_LINES`], or after [`LOG_BATCH_LINGER`]), always before
//! the session's next other write; while Persistence is
//! [`LOG_BACKLOG_HIGH`] lines behind, sessions stop reading their
//! sockets. This file and `src/http/agent.rs` are the only users of
//! `actix_web_actors`.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web::BytesMut;
use actix_web_actors::ws;

use super::events::{Event, Publish};
use super::persistence::{
    AppendLogs, CommandOutcome, MarkDispatched, MarkSchedulePushed, ReconcileRunning,
    RecordCommandResult, RecordHello, RecordJobFinished, RecordJobStarted, RecordProgress,
    RecordScheduleAck, ReplaceSnapshots, StoreRepoStats, Touch,
};
use super::registry::{Register, Unregister};
use super::scheduler::{JobCompleted, ScheduleFired};
use super::{blocking_read, ActorError, Actors};
use crate::crypto::{self, SecretKey};
use crate::metrics;
use crate::protocol::{self, AgentToServer, Envelope, ErrorFrame, ServerToAgent, WireMessage};
use crate::store::jobs::FinishOutcome;
use crate::store::models::Job;
use crate::store::{self, jobs, repositories, schedule_versions, schedules, DbConnection};

/// No frame for this long → the session closes and the host is offline.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the server sends a WebSocket ping.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// How often the session checks its heartbeat deadline.
pub const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Bad frames tolerated within [`BAD_FRAME_WINDOW`]; the next closes 1008.
pub const BAD_FRAME_LIMIT: usize = 10;
/// The window bad frames are counted in.
pub const BAD_FRAME_WINDOW: Duration = Duration::from_secs(60);
/// Close code for a session replaced by a newer one of the same host.
pub const CLOSE_SUPERSEDED: u16 = 4000;
/// Close code for a session whose host was revoked.
pub const CLOSE_REVOKED: u16 = 4001;
/// Job ids remembered as finished in this session (guards re-dispatch of
/// a job whose report raced with the queue load); cleared past this.
const MAX_REMEMBERED_FINISHED: usize = 10_000;
/// Log lines a session collects before handing them to Persistence in
/// one message (one message per line cost two thread hops per line).
pub const LOG_BATCH_LINES: usize = 256;
/// How long a partial batch of log lines waits for more.
pub const LOG_BATCH_LINGER: Duration = Duration::from_millis(5);
/// Log lines waiting for Persistence above which sessions stop reading
/// their sockets (TCP back-pressure on the agents) …
pub const LOG_BACKLOG_HIGH: usize = 50_000;
/// … until the backlog is down to this.
pub const LOG_BACKLOG_LOW: usize = 25_000;

/// Session serials: a registry entry is removed only by its own session.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// Where the session is in PROTOCOL.md's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Upgraded; waiting for `hello`.
    AwaitingHello,
    /// `hello` received; registering, recording it, loading what to push.
    Greeting,
    /// Config and schedules pushed: jobs may go out.
    Ready,
}

/// A fragmented message being assembled.
struct Partial {
    text: bool,
    buf: BytesMut,
}

/// One agent connection.
pub struct HostSession {
    host_id: String,
    serial: u64,
    actors: Actors,
    max_frame_bytes: usize,
    phase: Phase,
    /// When the last frame arrived (the heartbeat deadline's base).
    last_frame: Instant,
    /// Times of recent bad frames, oldest first.
    bad_frames: VecDeque<Instant>,
    partial: Option<Partial>,
    /// Jobs waiting to go out, in creation order.
    queue: VecDeque<Job>,
    /// The job whose `command.run` is out and not finished.
    in_flight: Option<String>,
    /// Jobs that became terminal during this session.
    finished: HashSet<String>,
    /// Whether this session registered (and must unregister).
    registered: bool,
    /// Log lines not yet handed to Persistence, in arrival order.
    logs: Vec<protocol::LogStream>,
    /// Whether a linger timer will hand `logs` over.
    logs_timer: bool,
}

impl HostSession {
    /// A session for an authenticated host; frames up to `max_frame_bytes`.
    pub fn new(host_id: String, actors: Actors, max_frame_bytes: usize) -> Self {
        HostSession {
            host_id,
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            actors,
            max_frame_bytes,
            phase: Phase::AwaitingHello,
            last_frame: Instant::now(),
            bad_frames: VecDeque::new(),
            partial: None,
            queue: VecDeque::new(),
            in_flight: None,
            finished: HashSet::new(),
            registered: false,
            logs: Vec::new(),
            logs_timer: false,
        }
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, message: impl Into<ServerToAgent>) {
        let message = message.into();
        self.actors.metrics.message_out(message.type_name());
        ctx.text(Envelope::new(message).encode());
    }

    fn ack(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        correlation_id: String,
        accepted: bool,
        reason: Option<String>,
    ) {
        self.send(
            ctx,
            protocol::Ack {
                correlation_id,
                accepted,
                reason,
            },
        );
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: ws::CloseCode, reason: &str) {
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    fn publish(&self, event: Event) {
        self.actors.events.do_send(Publish(event));
    }

    /// Answers a bad frame and closes the session when they come too fast.
    fn bad_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: ErrorFrame, now: Instant) {
        tracing::debug!(host_id = %self.host_id, code = %frame.code, detail = %frame.detail, "bad frame");
        self.send(ctx, frame);
        while let Some(first) = self.bad_frames.front() {
            if now.saturating_duration_since(*first) >= BAD_FRAME_WINDOW {
                self.bad_frames.pop_front();
            } else {
                break;
            }
        }
        self.bad_frames.push_back(now);
        if self.bad_frames.len() >= BAD_FRAME_LIMIT {
            tracing::warn!(host_id = %self.host_id, "too many bad frames; closing the session");
            Self::close(ctx, ws::CloseCode::Policy, "too many bad frames");
        }
    }

    fn bad(code: &str, detail: impl Into<String>, correlation_id: Option<String>) -> ErrorFrame {
        ErrorFrame {
            code: code.to_owned(),
            detail: detail.into(),
            correlation_id,
            supported: None,
        }
    }

    fn unsupported_protocol(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        version: u32,
        id: Option<String>,
    ) {
        tracing::info!(host_id = %self.host_id, version, "agent speaks an unsupported protocol version");
        self.send(ctx, ErrorFrame::unsupported_protocol(version, id));
        Self::close(ctx, ws::CloseCode::Policy, "unsupported protocol version");
    }

    /// One complete text message.
    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let now = Instant::now();
        self.last_frame = now;
        match Envelope::<AgentToServer>::decode(text) {
            Ok(envelope) => {
                self.actors.metrics.message_in(envelope.message.type_name());
                self.on_message(envelope, ctx, now)
            }
            Err(error) => {
                self.actors.metrics.message_in(metrics::INVALID_TYPE);
                let id = protocol::frame_id(text);
                match protocol::hello_protocol_version(text) {
                    Some(version) if !protocol::is_supported_protocol(version) => {
                        self.unsupported_protocol(ctx, version, id)
                    }
                    // An unknown type is a newer agent's message, not a bad
                    // frame: answered, not counted towards the 1008 close.
                    _ if matches!(error, protocol::DecodeError::UnknownType(_)) => {
                        self.send(ctx, ErrorFrame::from_decode_error(&error, id))
                    }
                    _ => self.bad_frame(ctx, ErrorFrame::from_decode_error(&error, id), now),
                }
            }
        }
    }

    fn on_message(
        &mut self,
        envelope: Envelope<AgentToServer>,
        ctx: &mut ws::WebsocketContext<Self>,
        now: Instant,
    ) {
        let Envelope { id, message } = envelope;
        if !matches!(message, AgentToServer::LogStream(_)) {
            // Lines go to Persistence before anything else this session
            // sends there, so a job's lines are written before its end.
            self.send_logs();
        }
        match (self.phase, message) {
            (Phase::AwaitingHello, AgentToServer::Hello(hello)) => {
                if protocol::is_supported_protocol(hello.protocol_version) {
                    self.greet(hello, ctx);
                } else {
                    self.unsupported_protocol(ctx, hello.protocol_version, Some(id));
                }
            }
            (Phase::AwaitingHello, _) => {
                let frame = Self::bad(protocol::ERROR_BAD_FRAME, "expected hello first", Some(id));
                self.bad_frame(ctx, frame, now);
            }
            (_, AgentToServer::Hello(_)) => {
                let frame = Self::bad(
                    protocol::ERROR_BAD_FRAME,
                    "hello was already received on this connection",
                    Some(id),
                );
                self.bad_frame(ctx, frame, now);
            }
            (_, AgentToServer::Heartbeat(heartbeat)) => self.on_heartbeat(heartbeat, ctx),
            (_, AgentToServer::CommandResult(result)) => self.on_command_result(result, ctx),
            (_, AgentToServer::JobStarted(started)) => self.on_job_started(started, ctx),
            (_, AgentToServer::JobProgress(progress)) => {
                if self.actors.has_event_listeners() {
                    self.publish(Event::JobProgress {
                        host_id: self.host_id.clone(),
                        job_id: progress.job_id.clone(),
                        progress: progress.clone(),
                    });
                }
                self.actors.persistence.do_send(RecordProgress {
                    host_id: self.host_id.clone(),
                    payload: progress,
                });
            }
            (_, AgentToServer::LogStream(line)) => self.on_log(line, ctx),
            (_, AgentToServer::JobFinished(finished)) => self.on_job_finished(id, finished, ctx),
            (_, AgentToServer::SnapshotsReport(report)) => self.on_snapshots(id, report, ctx),
            (_, AgentToServer::RepoStats(stats)) => {
                self.actors.persistence.do_send(StoreRepoStats {
                    host_id: self.host_id.clone(),
                    payload: stats,
                    now: store::now_ms(),
                });
            }
            (_, AgentToServer::ScheduleAck(ack)) => {
                let Ok(version) = i64::try_from(ack.version) else {
                    let frame =
                        Self::bad(protocol::ERROR_BAD_FRAME, "version: out of range", Some(id));
                    self.bad_frame(ctx, frame, now);
                    return;
                };
                self.actors.persistence.do_send(RecordScheduleAck {
                    host_id: self.host_id.clone(),
                    version,
                    now: store::now_ms(),
                });
            }
            (_, AgentToServer::ScheduleFire(fire)) => {
                self.actors.scheduler.do_send(ScheduleFired {
                    host_id: self.host_id.clone(),
                    payload: fire,
                    now: store::now_ms(),
                });
            }
        }
    }

    /// `log.stream`: published live (if anyone listens) and collected;
    /// a full batch goes to Persistence at once, a partial one after
    /// [`LOG_BATCH_LINGER`].
    fn on_log(&mut self, line: protocol::LogStream, ctx: &mut ws::WebsocketContext<Self>) {
        if self.actors.has_event_listeners() {
            self.publish(Event::JobLog {
                host_id: self.host_id.clone(),
                job_id: line.job_id.clone(),
                seq: line.seq,
                ts: line.ts,
                stream: line.stream,
                payload: line.payload.clone(),
            });
        }
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
    fn send_logs(&mut self) {
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
    fn pause_if_backlogged(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.actors.log_backlog.len() < LOG_BACKLOG_HIGH {
            return;
        }
        let backlog = self.actors.log_backlog.clone();
        let wait = async move { backlog.wait_down_to(LOG_BACKLOG_LOW).await };
        ctx.wait(wait.into_actor(self));
    }

    /// `hello`: register, record, then push config, schedules and jobs.
    fn greet(&mut self, hello: protocol::Hello, ctx: &mut ws::WebsocketContext<Self>) {
        self.phase = Phase::Greeting;
        tracing::info!(host_id = %self.host_id, hostname = %hello.hostname, agent_version = %hello.agent_version, "agent said hello");
        let register = self.actors.registry.send(Register {
            host_id: self.host_id.clone(),
            serial: self.serial,
            addr: ctx.address(),
        });
        // `wait`: nothing else is handled until the session is registered,
        // so every later frame sees a registered session.
        register
            .into_actor(self)
            .map(move |result, act, ctx| match result {
                Ok(()) => {
                    act.registered = true;
                    act.record_hello(hello, ctx);
                }
                Err(e) => {
                    tracing::error!(host_id = %act.host_id, error = %e, "registry unavailable");
                    Self::close(ctx, ws::CloseCode::Error, "server error");
                }
            })
            .wait(ctx);
    }

    fn record_hello(&mut self, hello: protocol::Hello, ctx: &mut ws::WebsocketContext<Self>) {
        let persistence = self.actors.persistence.clone();
        let pool = self.actors.pool.clone();
        let key = self.actors.key.clone();
        let host_id = self.host_id.clone();
        let work = async move {
            let now = store::now_ms();
            let recorded = persistence
                .send(RecordHello {
                    host_id: host_id.clone(),
                    payload: hello,
                    now,
                })
                .await
                .map_err(ActorError::mailbox)??;
            if recorded.is_none() {
                return Ok(None);
            }
            let greeting =
                blocking_read(&pool, move |c| load_greeting(c, &key, &host_id, now)).await?;
            Ok(Some(greeting))
        };
        ctx.spawn(work.into_actor(self).map(
            |result: Result<Option<Greeting>, ActorError>, act, ctx| match result {
                Ok(Some(greeting)) => act.finish_greeting(greeting, ctx),
                Ok(None) => {
                    tracing::info!(host_id = %act.host_id, "hello from a revoked or deleted host");
                    Self::close(ctx, ws::CloseCode::Policy, "host revoked");
                }
                Err(e) => {
                    tracing::error!(host_id = %act.host_id, error = %e, "cannot complete hello");
                    Self::close(ctx, ws::CloseCode::Error, "server error");
                }
            },
        ));
    }

    fn finish_greeting(&mut self, greeting: Greeting, ctx: &mut ws::WebsocketContext<Self>) {
        self.publish(Event::HostOnline {
            host_id: self.host_id.clone(),
        });
        self.push_config(greeting.config, greeting.schedules, ctx);
        for job in greeting.queued {
            self.enqueue(job);
        }
        self.phase = Phase::Ready;
        self.dispatch_next(ctx);
    }

    fn push_config(
        &mut self,
        config: protocol::ConfigUpdate,
        schedules: protocol::ScheduleSet,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let version = i64::try_from(schedules.version).unwrap_or(i64::MAX);
        self.send(ctx, config);
        self.send(ctx, schedules);
        self.actors.persistence.do_send(MarkSchedulePushed {
            host_id: self.host_id.clone(),
            version,
            now: store::now_ms(),
        });
    }

    /// Adds a job to the queue unless it is known already.
    fn enqueue(&mut self, job: Job) {
        if job.host_id != self.host_id
            || self.finished.contains(&job.id)
            || self.in_flight.as_deref() == Some(job.id.as_str())
            || self.queue.iter().any(|j| j.id == job.id)
        {
            return;
        }
        let at = self
            .queue
            .iter()
            .position(|j| (j.created_at, &j.id) > (job.created_at, &job.id))
            .unwrap_or(self.queue.len());
        self.queue.insert(at, job);
    }

    /// Sends the next queued job if none is in flight.
    fn dispatch_next(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.phase != Phase::Ready || self.in_flight.is_some() {
            return;
        }
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        tracing::info!(host_id = %self.host_id, job_id = %job.id, kind = %job.kind, "dispatching job");
        self.send(ctx, command_run(&job));
        self.in_flight = Some(job.id.clone());
        self.actors.persistence.do_send(MarkDispatched {
            host_id: self.host_id.clone(),
            job_id: job.id,
            now: store::now_ms(),
        });
    }

    /// A job of this host is over (for whatever reason): free the slot.
    fn job_done(&mut self, job_id: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if self.finished.len() >= MAX_REMEMBERED_FINISHED {
            self.finished.clear();
        }
        self.finished.insert(job_id.to_owned());
        self.queue.retain(|j| j.id != job_id);
        if self.in_flight.as_deref() == Some(job_id) {
            self.in_flight = None;
        }
        self.dispatch_next(ctx);
    }

    fn job_terminal(&mut self, job: Job, ctx: &mut ws::WebsocketContext<Self>) {
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
        let job_id = job.id.clone();
        self.actors.scheduler.do_send(JobCompleted {
            job,
            now: store::now_ms(),
        });
        self.job_done(&job_id, ctx);
    }

    fn on_heartbeat(
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
                for job in lost {
                    tracing::warn!(host_id = %act.host_id, job_id = %job.id, "agent lost a running job");
                    act.job_terminal(job, ctx);
                }
            }
            Ok(Err(_)) => {} // logged by the writer
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }

    fn on_command_result(
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
            Ok(Ok(CommandOutcome::Refused(outcome))) => match *outcome {
                FinishOutcome::Applied(job) => act.job_terminal(job, ctx),
                FinishOutcome::AlreadyFinished(_) | FinishOutcome::NotFound => act.job_done(&job_id, ctx),
            },
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }

    fn on_job_started(
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

    fn on_job_finished(
        &mut self,
        id: String,
        finished: protocol::JobFinished,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let job_id = finished.job_id.clone();
        let write = self.actors.persistence.send(RecordJobFinished {
            host_id: self.host_id.clone(),
            payload: finished,
        });
        ctx.spawn(write.into_actor(self).map(move |outcome, act, ctx| match outcome {
            Ok(Ok(FinishOutcome::Applied(job))) => {
                act.ack(ctx, id, true, None);
                act.job_terminal(job, ctx);
            }
            Ok(Ok(FinishOutcome::AlreadyFinished(_))) => {
                act.ack(ctx, id, true, None);
                act.job_done(&job_id, ctx);
            }
            Ok(Ok(FinishOutcome::NotFound)) => {
                tracing::warn!(host_id = %act.host_id, job_id = %job_id, "job.finished for an unknown job");
                act.ack(ctx, id, false, Some(format!("unknown job {job_id}")));
            }
            // Not acked: the agent keeps it in its outbox and re-sends it
            // after the next reconnect.
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }

    fn on_snapshots(
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
            Ok(Ok(_)) => act.ack(ctx, id, true, None),
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }

    /// A fragment of a fragmented message.
    fn on_continuation(
        &mut self,
        item: actix_http::ws::Item,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let (text, bytes, last) = match item {
            actix_http::ws::Item::FirstText(bytes) => (Some(true), bytes, false),
            actix_http::ws::Item::FirstBinary(bytes) => (Some(false), bytes, false),
            actix_http::ws::Item::Continue(bytes) => (None, bytes, false),
            actix_http::ws::Item::Last(bytes) => (None, bytes, true),
        };
        match (text, self.partial.as_mut()) {
            (Some(text), None) => {
                self.partial = Some(Partial {
                    text,
                    buf: BytesMut::from(&bytes[..]),
                });
            }
            (None, Some(partial)) => partial.buf.extend_from_slice(&bytes),
            _ => {
                tracing::info!(host_id = %self.host_id, "fragments out of order");
                Self::close(ctx, ws::CloseCode::Protocol, "fragments out of order");
                return;
            }
        }
        if self
            .partial
            .as_ref()
            .is_some_and(|p| p.buf.len() > self.max_frame_bytes)
        {
            Self::close(ctx, ws::CloseCode::Size, "message too large");
            return;
        }
        if !last {
            return;
        }
        let Some(partial) = self.partial.take() else {
            return;
        };
        if partial.text {
            match std::str::from_utf8(&partial.buf) {
                Ok(text) => self.on_text(text, ctx),
                Err(_) => Self::close(ctx, ws::CloseCode::Invalid, "text message is not UTF-8"),
            }
        } else {
            self.on_binary(ctx);
        }
    }

    fn on_binary(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let now = Instant::now();
        self.last_frame = now;
        let frame = Self::bad(
            protocol::ERROR_BAD_FRAME,
            "binary frames are not part of the protocol; send JSON text frames",
            None,
        );
        self.bad_frame(ctx, frame, now);
    }
}

impl Actor for HostSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.actors.metrics.session_opened();
        ctx.run_interval(PING_INTERVAL, |_, ctx| ctx.ping(b""));
        ctx.run_interval(IDLE_CHECK_INTERVAL, |act, ctx| {
            act.check_idle(Instant::now(), ctx);
        });
        let hello_timeout = self.actors.config.hello_timeout;
        ctx.run_later(hello_timeout, move |act, ctx| {
            if act.phase == Phase::AwaitingHello {
                tracing::info!(host_id = %act.host_id, "no hello in time");
                let reason = format!("hello expected within {} s", hello_timeout.as_secs_f32());
                Self::close(ctx, ws::CloseCode::Policy, &reason);
            }
        });
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.send_logs();
        if self.registered {
            self.actors.registry.do_send(Unregister {
                host_id: self.host_id.clone(),
                serial: self.serial,
            });
            self.registered = false;
        }
        tracing::info!(host_id = %self.host_id, "session ended");
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.actors.metrics.session_closed();
    }
}

impl HostSession {
    fn check_idle(&mut self, now: Instant, ctx: &mut ws::WebsocketContext<Self>) {
        if now.saturating_duration_since(self.last_frame) >= HEARTBEAT_TIMEOUT {
            tracing::info!(host_id = %self.host_id, "heartbeat timeout");
            Self::close(ctx, ws::CloseCode::Away, "heartbeat timeout");
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for HostSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(ws::Message::Text(text)) => {
                if self.partial.is_some() {
                    Self::close(
                        ctx,
                        ws::CloseCode::Protocol,
                        "text frame inside a fragmented message",
                    );
                    return;
                }
                self.on_text(&text, ctx);
            }
            Ok(ws::Message::Binary(_)) => self.on_binary(ctx),
            Ok(ws::Message::Continuation(item)) => self.on_continuation(item, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                tracing::info!(host_id = %self.host_id, limit = self.max_frame_bytes, "frame too large");
                Self::close(ctx, ws::CloseCode::Size, "frame too large");
            }
            Err(e) => {
                tracing::info!(host_id = %self.host_id, error = %e, "WebSocket protocol error");
                Self::close(ctx, ws::CloseCode::Protocol, "protocol error");
            }
        }
    }
}

/// Queue a job for this host (from run-now, a fire, a retry, a forget).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DispatchJob {
    pub job: Job,
}

impl Handler<DispatchJob> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: DispatchJob, ctx: &mut Self::Context) {
        self.enqueue(msg.job);
        self.dispatch_next(ctx);
    }
}

/// Stop a job: drop it from the queue and send `command.cancel` when the
/// agent may have it. `already_cancelled`: the row is cancelled already
/// (it was queued), so the slot is free at once. Replies whether
/// `command.cancel` went out.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CancelJob {
    pub job_id: String,
    pub already_cancelled: bool,
}

impl Handler<CancelJob> for HostSession {
    type Result = bool;

    fn handle(&mut self, msg: CancelJob, ctx: &mut Self::Context) -> bool {
        self.queue.retain(|j| j.id != msg.job_id);
        let in_flight = self.in_flight.as_deref() == Some(msg.job_id.as_str());
        let send = self.phase == Phase::Ready && (in_flight || !msg.already_cancelled);
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

/// The host's configuration changed: reload and push `config.update` and
/// `schedule.set`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushConfig;

impl Handler<PushConfig> for HostSession {
    type Result = ();

    fn handle(&mut self, _msg: PushConfig, ctx: &mut Self::Context) {
        if self.phase == Phase::AwaitingHello {
            return; // the hello will push the current version
        }
        let pool = self.actors.pool.clone();
        let key = self.actors.key.clone();
        let host_id = self.host_id.clone();
        let load = async move {
            blocking_read(&pool, move |c| {
                load_greeting(c, &key, &host_id, store::now_ms())
            })
            .await
        };
        ctx.spawn(load.into_actor(self).map(|result, act, ctx| match result {
            Ok(greeting) => act.push_config(greeting.config, greeting.schedules, ctx),
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "cannot load the host's configuration"),
        }));
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

/// What a session sends after `hello` (and after a config change).
pub struct Greeting {
    pub config: protocol::ConfigUpdate,
    pub schedules: protocol::ScheduleSet,
    /// Queued jobs due at the load time, in creation order.
    pub queued: Vec<Job>,
}

fn json_list(text: &str, what: &str, job_or_group: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(error = %e, id = job_or_group, "stored {what} is not a JSON list");
        Vec::new()
    })
}

/// The stored retention policy; one that does not parse is logged and
/// left out (the agent then keeps everything, the safe side).
fn retention(text: Option<&str>, id: &str) -> Option<protocol::RetentionPolicy> {
    let text = text?;
    serde_json::from_str(text)
        .map_err(|e| tracing::warn!(error = %e, id, "stored retention policy does not parse"))
        .ok()
}

/// The `command.run` of a job row.
pub fn command_run(job: &Job) -> protocol::CommandRun {
    protocol::CommandRun {
        job_id: job.id.clone(),
        kind: job.kind.into(),
        args: json_list(&job.args, "args", &job.id),
        includes: json_list(&job.includes, "includes", &job.id),
        excludes: json_list(&job.excludes, "excludes", &job.id),
        tag: job.tag.clone(),
        retention_policy: retention(job.retention_policy.as_deref(), &job.id),
    }
}

/// Opens one sealed secret; a failure is logged (never the value) and the
/// field is left out, which tells the agent to keep what it has.
fn open_secret(
    key: &SecretKey,
    sealed: Option<&[u8]>,
    repository_id: &str,
    what: &str,
) -> Option<String> {
    let sealed = sealed?;
    match crypto::open_string(key, sealed, repository_id.as_bytes()) {
        Ok(secret) => Some(secret),
        Err(e) => {
            tracing::error!(repository_id, error = %e, "cannot open the repository {what}");
            None
        }
    }
}

/// Loads the host's `config.update`, `schedule.set` and queued jobs.
/// Blocking: call inside `web::block`.
pub fn load_greeting(
    conn: &mut DbConnection,
    key: &SecretKey,
    host_id: &str,
    now: i64,
) -> diesel::QueryResult<Greeting> {
    let config = match repositories::get_for_host(conn, host_id)? {
        Some(repo) => protocol::ConfigUpdate {
            repo_url: Some(repo.url.clone()),
            repo_password: open_secret(key, repo.password_sealed.as_deref(), &repo.id, "password"),
            repo_username: repo.username.clone(),
            repo_credential: open_secret(
                key,
                repo.credential_sealed.as_deref(),
                &repo.id,
                "credential",
            ),
            hook_shell: repo.hook_shell.clone(),
        },
        None => protocol::ConfigUpdate::default(),
    };
    let version = schedule_versions::get(conn, host_id)?.map_or(1, |v| v.version);
    let schedules = schedules::list_with_groups_for_host(conn, host_id)?
        .into_iter()
        .map(|s| protocol::ScheduleSpec {
            id: s.schedule.id.clone(),
            cron_expr: s.schedule.cron_expr.clone(),
            enabled: s.schedule.enabled,
            source_groups: s
                .groups
                .iter()
                .map(|g| protocol::SourceGroupSpec {
                    name: g.name.clone(),
                    includes: json_list(&g.includes, "includes", &g.id),
                    excludes: json_list(&g.excludes, "excludes", &g.id),
                    retention_policy: retention(g.retention_policy.as_deref(), &g.id),
                    retry_max: u32::try_from(g.retry_max).unwrap_or(0),
                    retry_backoff_seconds: u32::try_from(g.retry_backoff_seconds).unwrap_or(0),
                })
                .collect(),
        })
        .collect();
    let queued = jobs::queued_for_host(conn, host_id, now)?;
    Ok(Greeting {
        config,
        schedules: protocol::ScheduleSet {
            version: u64::try_from(version).unwrap_or(0),
            schedules,
        },
        queued,
    })
}
