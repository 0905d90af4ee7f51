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
//! (repository secrets opened with the server key, never logged; left
//! out when the agent holds the current config version, see
//! `config_version`),
//! `schedule.set` and (to an agent with the `health` capability)
//! `health.set`, then the host's queued jobs. Everything the agent
//! reports goes to [`Persistence`]; `job.finished` and `snapshots.report`
//! are acked only once the write is durable. Log lines go in batches
//! ([`LOG_BATCH_LINES`], or after [`LOG_BATCH_LINGER`]), always before
//! the session's next other write; while Persistence is
//! [`LOG_BACKLOG_HIGH`] lines behind, sessions stop reading their
//! sockets. This file and `src/http/agent.rs` are the only users of
//! `actix_web_actors`.
//!
//! A `job.finished` (or a refused `command.run`, or a job the agent lost)
//! goes to the writer once; its reply carries the finished job and the
//! job created to follow it (retry, retention `forget`) in the same
//! transaction. The session publishes both and queues the follow-up
//! itself when it is due now; a retry with a back-off waits in the
//! database for the scheduler's tick.
//!
//! # Layout
//!
//! - this file: the actor, the frame dispatch and the lifecycle (hello,
//!   greeting, configuration push, heartbeat deadline).
//! - `messages`: what other actors send a session ([`DispatchJob`],
//!   [`CancelJob`], [`PushConfig`], the closes).
//! - `jobs`: dispatching the queue and the agent's job reports.
//! - `job_queue`: the pure job queue ([`JobQueue`], [`QueuedJob`]).
//! - `leases`: a job on a shared repository asks the writer for its
//!   lease before it goes out, and waits in the slot until it has it.
//! - `logs`: log batching and the back-pressure pause.
//! - `downloads`: relaying snapshot downloads between the agent and HTTP
//!   responses ([`StartDownload`], credits, cancel, the cut).
//! - `frames`: fragment assembly and the bad-frame window.
//! - `fires`: `schedule.fire`, limited per schedule, the socket paused
//!   while the scheduler handles it.
//! - `greeting`: what is loaded for `hello` and for a configuration push.
//! - `config_version`: the `config.update` sent, the agent's `ack` of it,
//!   and the re-push of an agent whose version is behind.
//! - `catalog`: `catalog.chunk`s to the writer, queued `catalog` jobs and
//!   their yielding to other work.
//! - `live_listing`: [`ListDirectory`], a live `catalog.list` for the API.
//! - `own_jobs`: live progress and log events only for the host's own jobs.
//! - `recent`: the small bounded memory of job ids both of those use.
//! - `health`: `health.set` to capable agents, `health.report` and the
//!   heartbeat's metrics to the writer (one point per minute) and to
//!   `/metrics`.
//! - `discovery`: `discovery.report`, bounded and checked for secret
//!   values, to the writer.
//! - `capabilities`: what the agent declared in `hello` (protocol 1's
//!   set when nothing), the gate of every outgoing message, and the
//!   session's one `agent.update_available`.
//! - `agent_jobs`: `job.report`, a backup the agent ran while the server
//!   was away, recorded once and acked.
//!
//! The submodules are parts of this actor (each an `impl HostSession`),
//! so `actix_web_actors` stays inside the session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;

use super::events::{Event, Publish};
use super::persistence::{
    MarkSchedulePushed, RecordHello, RecordProgress, RecordScheduleAck, StoreRepoStats,
};
use super::registry::{Register, Unregister};
use super::{blocking_read, ActorError, Actors};
use crate::ids::HostId;
use crate::metrics;
use crate::protocol::{self, AgentToServer, Envelope, ErrorFrame, ServerToAgent, WireMessage};
use crate::store;

mod agent_jobs;
mod capabilities;
mod catalog;
mod config_version;
mod discovery;
mod downloads;
mod fires;
mod frames;
mod greeting;
mod health;
mod job_queue;
mod jobs;
mod leases;
mod live_listing;
mod logs;
mod messages;
mod own_jobs;
mod recent;
mod requests;

pub use downloads::{
    CancelDownload, DownloadEnd, DownloadOutcome, GrantCredit, ReadyReply, StartDownload,
    StartRefused, DOWNLOAD_WINDOW,
};
use frames::{Assembled, BadFrames, FragmentError, Fragments};
pub use greeting::{
    load_config, load_greeting, load_repository, load_schedules, Greeting, HostConfig,
};
pub use job_queue::{command_run, JobQueue, QueuedJob};
pub use leases::{is_lock_error, nudge_waiters, queue_unlock, RetryLease};
pub use live_listing::{ListDirectory, ListingError, ListingReply, PendingListings};
pub use messages::{
    CancelJob, CheckIdle, DispatchJob, PushConfig, Revoked, ShuttingDown, Superseded,
};
pub use requests::{ask, AskError, Reply};

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

/// One agent connection.
pub struct HostSession {
    host_id: HostId,
    serial: u64,
    /// Shared, not cloned: a clone of `Actors` clones five actor
    /// addresses, and each `Addr` clone allocates its own sender state
    /// (about 0.36 KiB per session in all; issue 10 §8).
    actors: Arc<Actors>,
    max_frame_bytes: usize,
    phase: Phase,
    /// When the last frame arrived (the heartbeat deadline's base).
    last_frame: Instant,
    /// Recent bad frames (the 1008 close).
    bad_frames: BadFrames,
    /// A fragmented message being assembled.
    fragments: Fragments,
    /// Jobs waiting, the one in flight, the ones finished here.
    queue: JobQueue,
    /// The newest `schedule.set` version sent (an older push that arrives
    /// late is not sent over it).
    pushed_version: u64,
    /// Whether this session registered (and must unregister).
    registered: bool,
    /// Log lines not yet handed to Persistence, in arrival order.
    logs: Vec<protocol::LogStream>,
    /// Whether a linger timer will hand `logs` over.
    logs_timer: bool,
    /// Live directory listings waiting for the agent's answer.
    listings: PendingListings,
    /// Snapshot downloads relayed to HTTP responses.
    relays: downloads::Relays,
    /// Which jobs are this host's (live events are published for those only).
    own_jobs: own_jobs::OwnJobs,
    /// Recent `schedule.fire`s per schedule (the limit).
    fires: fires::FireCounts,
    /// The shared repository the host is attached to (from the last
    /// configuration pushed): its jobs need a lease there.
    shared_repository: Option<String>,
    /// Whether the last configuration pushed gave the host a repository.
    has_repository: bool,
    /// The server took the host's repository away during this session (a
    /// policy's repository no longer applies). `config.update` can only
    /// set fields, not clear them, so the agent may still hold the old
    /// one: its jobs are failed here rather than run there, without a
    /// lease, until a repository is given again (`jobs::withdrawn_refusal`).
    repository_withdrawn: bool,
    /// The job in the slot that waits for its lease (`leases`).
    /// Boxed: a job waiting for a lease is rare, and inline it made every
    /// session 300 bytes larger (issue 10 §8).
    awaiting_lease: Option<Box<leases::Awaiting>>,
    /// Health checks and heartbeat metrics (`health`).
    health: health::HealthState,
    /// The config version sent, held and acked (`config_version`).
    config_version: config_version::ConfigVersion,
    /// What the agent declared in `hello.capabilities` (protocol 1's set
    /// when it sent none): nothing needing more is sent (`capabilities`).
    capabilities: Arc<[String]>,
    /// The `agent.update_available` still to send this session (an agent
    /// older than the newest release), sent once after the greeting.
    /// Boxed, as rare (an older agent) and 72 bytes inline.
    update_notice: Option<Box<protocol::AgentUpdateAvailable>>,
}

impl HostSession {
    /// A session for an authenticated host; frames up to `max_frame_bytes`.
    pub fn new(host_id: HostId, actors: Arc<Actors>, max_frame_bytes: usize) -> Self {
        HostSession {
            host_id,
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            actors,
            max_frame_bytes,
            phase: Phase::AwaitingHello,
            last_frame: Instant::now(),
            bad_frames: BadFrames::new(BAD_FRAME_LIMIT, BAD_FRAME_WINDOW),
            fragments: Fragments::new(max_frame_bytes),
            queue: JobQueue::default(),
            pushed_version: 0,
            registered: false,
            logs: Vec::new(),
            logs_timer: false,
            listings: PendingListings::default(),
            relays: downloads::Relays::default(),
            own_jobs: own_jobs::OwnJobs::default(),
            fires: fires::FireCounts::default(),
            shared_repository: None,
            has_repository: false,
            repository_withdrawn: false,
            awaiting_lease: None,
            health: health::HealthState::default(),
            config_version: config_version::ConfigVersion::default(),
            capabilities: capabilities::interned(Vec::new()),
            update_notice: None,
        }
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, message: impl Into<ServerToAgent>) {
        let message = message.into();
        if let Some(missing) = self.missing_for(&message) {
            // Callers refuse such work earlier; this guard keeps the rule.
            tracing::error!(host_id = %self.host_id, message = message.type_name(), capability = %missing,
                "not sent: the agent lacks the capability");
            return;
        }
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

    /// A message the agent keeps in its outbox until acked could not be
    /// stored (the database is away, say a PostgreSQL restart): it is not
    /// acked, and the session ends with 1013 "try again later". The agent
    /// reconnects with its back-off and re-sends its outbox, so the write
    /// is retried once the database is back, instead of waiting for a
    /// reconnect a healthy connection never makes while its heartbeats,
    /// no longer listing the finished job, would fail it as lost.
    fn not_stored(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        what: &str,
        error: &dyn std::fmt::Display,
    ) {
        tracing::warn!(host_id = %self.host_id, error = %error, "{what} could not be stored; closing the session so the agent re-sends it");
        Self::close(
            ctx,
            ws::CloseCode::Again,
            "database unavailable, try again later",
        );
    }

    fn publish(&self, event: Event) {
        self.actors.events.do_send(Publish(event));
    }

    /// Answers a bad frame and closes the session when they come too fast.
    fn bad_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: ErrorFrame, now: Instant) {
        tracing::debug!(host_id = %self.host_id, code = %frame.code, detail = %frame.detail, "bad frame");
        self.send(ctx, frame);
        if self.bad_frames.record(now) {
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
                let host_id = self.host_id.clone();
                self.publish_job_event(
                    &progress.job_id,
                    || Event::JobProgress {
                        host_id,
                        job_id: progress.job_id.clone().into(),
                        progress: progress.clone(),
                    },
                    ctx,
                );
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
            (_, AgentToServer::CatalogChunk(chunk)) => self.on_catalog_chunk(chunk, ctx),
            (_, AgentToServer::CatalogListing(listing)) => self.listings.on_listing(listing),
            (_, AgentToServer::DownloadReady(ready)) => self.on_download_ready(ready, ctx),
            (_, AgentToServer::DownloadEnd(end)) => self.on_download_end(end),
            (_, AgentToServer::ScheduleFire(fire)) => self.on_schedule_fire(id, fire, ctx, now),
            (_, AgentToServer::HealthReport(report)) => self.on_health_report(report),
            (_, AgentToServer::JobReport(report)) => self.on_job_report(id, report, ctx),
            (_, AgentToServer::Ack(ack)) => self.on_agent_ack(ack),
            (_, AgentToServer::DiscoveryReport(report)) => {
                self.on_discovery_report(id, report, ctx, now);
            }
        }
    }

    /// `hello`: register, record, then push config, schedules and jobs.
    fn greet(&mut self, hello: protocol::Hello, ctx: &mut ws::WebsocketContext<Self>) {
        self.phase = Phase::Greeting;
        self.take_hello_facts(&hello);
        tracing::info!(host_id = %self.host_id, hostname = %hello.hostname, agent_version = %hello.agent_version, "agent said hello");
        self.config_version.hello(hello.last_known_config_version);
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
                .map_err(ActorError::mailbox)?
                .written()
                .await?;
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

    fn finish_greeting(&mut self, mut greeting: Greeting, ctx: &mut ws::WebsocketContext<Self>) {
        self.publish(Event::HostOnline {
            host_id: self.host_id.clone(),
        });
        if self
            .config_version
            .greeting_skips(greeting.config.config_version)
        {
            // The agent holds these settings (`config_version`'s rules).
            greeting.config.config = None;
        }
        self.push_config(greeting.config, ctx);
        self.send_update_notice(ctx);
        for job in greeting.queued {
            self.queue.enqueue(job);
        }
        self.phase = Phase::Ready;
        self.dispatch_next(ctx);
    }

    /// Sends `config.update` and `schedule.set`, unless a newer version
    /// went out already.
    fn push_config(&mut self, config: HostConfig, ctx: &mut ws::WebsocketContext<Self>) {
        let HostConfig {
            config,
            config_version,
            schedule_version,
            schedules,
            shared_repository,
            has_repository,
            health,
        } = config;
        if schedule_version < self.pushed_version {
            tracing::debug!(host_id = %self.host_id, version = schedule_version, "an older configuration is not pushed");
            return;
        }
        self.pushed_version = schedule_version;
        self.shared_repository = shared_repository;
        if self.has_repository && !has_repository {
            tracing::warn!(host_id = %self.host_id, "the host's repository was taken away; its jobs are failed until it gets one, as the agent may still hold the old one");
        }
        self.repository_withdrawn =
            !has_repository && (self.repository_withdrawn || self.has_repository);
        self.has_repository = has_repository;
        let version = i64::try_from(schedule_version).unwrap_or(i64::MAX);
        self.config_version.loaded(config_version);
        if let Some(config) = config {
            self.send_config(config, ctx);
        }
        if self.has_capability(protocol::CAPABILITY_LOCAL_CRON) {
            // Assembled from the policies' rendered schedules rather than
            // serialised (store::schedule_set): the same frame.
            self.actors
                .metrics
                .message_out(store::schedule_set::message_type());
            ctx.text(schedules.frame(schedule_version));
        } else {
            tracing::debug!(host_id = %self.host_id, "no schedule.set: the agent keeps no cron table (no local_cron)");
        }
        self.push_health(health, ctx);
        self.actors.persistence.do_send(MarkSchedulePushed {
            host_id: self.host_id.clone(),
            version,
            now: store::now_ms(),
        });
    }

    /// A fragment of a fragmented message.
    fn on_continuation(
        &mut self,
        item: actix_http::ws::Item,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        match self.fragments.push(item) {
            Ok(Assembled::More) => {}
            Ok(Assembled::Text(text)) => self.on_text(&text, ctx),
            Ok(Assembled::Binary(frame)) => self.on_download_data(frame, ctx),
            Err(FragmentError::OutOfOrder) => {
                tracing::info!(host_id = %self.host_id, "fragments out of order");
                Self::close(ctx, ws::CloseCode::Protocol, "fragments out of order");
            }
            Err(FragmentError::TooLarge) => {
                Self::close(ctx, ws::CloseCode::Size, "message too large")
            }
            Err(FragmentError::NotUtf8) => {
                Self::close(ctx, ws::CloseCode::Invalid, "text message is not UTF-8")
            }
        }
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
        self.drop_lease_requests(None);
        self.relays.agent_gone();
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
                if self.fragments.in_progress() {
                    Self::close(
                        ctx,
                        ws::CloseCode::Protocol,
                        "text frame inside a fragmented message",
                    );
                    return;
                }
                self.on_text(&text, ctx);
            }
            Ok(ws::Message::Binary(frame)) => self.on_download_data(frame, ctx),
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
