//! One simulated agent: a real WebSocket client speaking PROTOCOL.md
//! through `restic_manager::protocol`, with the behaviour of the real
//! agent that the server's costs depend on, and nothing that needs restic:
//!
//! - connects from its own loopback source address with its agent token,
//!   says `hello`, answers `schedule.set` with `schedule.ack`, sends a
//!   `heartbeat` (with `active_job_ids`) every heartbeat interval, first
//!   at a random offset so a fleet's heartbeats spread out;
//! - answers `command.run` with `command.result`, `job.started`, then runs
//!   the job as the scenario says ([`JobBehaviour`]) and reports
//!   `job.finished`, kept in an outbox until the server's `ack` and sent
//!   again right after `hello` on every reconnection (before any
//!   heartbeat, as the real agent does); a repeated `command.run` of a job it
//!   knows is accepted again and not run twice;
//! - reconnects after a lost connection with PROTOCOL.md's back-off (1 s
//!   doubling to 60 s, ±20 % jitter, reset after a session of a minute).
//!
//! Per-agent memory stays small: the socket's buffers are 4 KiB and the
//! state is a few strings.
//!
//! # Layout
//!
//! - this module: the connection, the session loop and the server's frames;
//! - [`jobs`]: running the jobs the server sends;
//! - [`backoff`]: reconnection delays and the random generator.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use restic_manager::protocol::{self, AgentToServer, Envelope, ServerToAgent, WireMessage};

use crate::fleet::{Credentials, Shared};

mod backoff;
mod catalog;
mod jobs;

pub use backoff::{Backoff, Rng};
pub use catalog::{folders as catalog_folders, snapshot_id as catalog_snapshot_id};
pub use jobs::log_payload;
use jobs::RunningJob;

/// Give up a connection attempt (TCP + upgrade) after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the back-off.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// Socket buffer sizes: small, so that thousands of agents fit.
const READ_BUFFER: usize = 4 * 1024;

/// What an agent does with a job it accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobBehaviour {
    /// Finish at once (`succeeded`).
    Instant,
    /// Stream `lines` log lines of about `line_bytes` each, `per_second`
    /// lines a second or (`None`) as fast as the socket takes them, then
    /// finish.
    Stream {
        lines: u64,
        line_bytes: usize,
        per_second: Option<f64>,
    },
    /// Run for this long, then finish, connected or not (a result made
    /// while disconnected waits in the outbox).
    Hold(Duration),
    /// Report one snapshot after the first greeting and list it when its
    /// `catalog` job comes: `entries` entries in `catalog.chunk` frames
    /// as fast as the socket takes them; other jobs finish at once.
    Catalog { entries: u64 },
}

/// How every agent of a fleet behaves.
pub struct AgentConfig {
    /// `ws://host:port/api/v1/agent/ws`.
    pub ws_url: String,
    /// The server's address (TCP connect target).
    pub server: SocketAddr,
    /// Whether the server greets (`config.update` + `schedule.set`); the
    /// bare baseline does not, so an agent is online once `hello` is out.
    pub expect_greeting: bool,
    pub heartbeat: Duration,
    pub jobs: JobBehaviour,
    /// Reconnect after a lost connection.
    pub reconnect: bool,
}

/// The WebSocket settings of agents (and of the bare baseline server).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

type Ws = WebSocketStream<TcpStream>;

/// How a session ended.
enum End {
    /// The scenario asked the agents to stop.
    Stop,
    /// The connection broke or the server closed it.
    Lost,
}

/// One agent.
struct Agent {
    index: usize,
    hosts: Arc<Vec<Credentials>>,
    source: Ipv4Addr,
    config: Arc<AgentConfig>,
    shared: Arc<Shared>,
    jobs: Vec<RunningJob>,
    /// Ids of jobs finished lately.
    done: VecDeque<String>,
    /// `job.finished` frames not acked yet: (envelope id, frame).
    outbox: Vec<(String, String)>,
    /// Greeted on the current connection.
    greeted: bool,
    /// Catalog: the snapshot has been reported.
    reported: bool,
    /// Held until the first greeting (first connections only).
    gate: Option<OwnedSemaphorePermit>,
    /// When the first connection attempt began.
    first_attempt: Option<Instant>,
    backoff: Backoff,
}

/// Runs agent `index` until the scenario stops the fleet.
pub async fn run(
    index: usize,
    hosts: Arc<Vec<Credentials>>,
    source: Ipv4Addr,
    config: Arc<AgentConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut agent = Agent {
        index,
        hosts,
        source,
        config,
        shared,
        jobs: Vec::new(),
        done: VecDeque::new(),
        outbox: Vec::new(),
        greeted: false,
        reported: false,
        gate: None,
        first_attempt: None,
        backoff: Backoff::new(index as u64 + 1),
    };
    agent.main_loop(&mut stop).await;
}

impl Agent {
    fn creds(&self) -> &Credentials {
        &self.hosts[self.index]
    }

    fn slot(&self) -> &crate::fleet::Slot {
        &self.shared.slots[self.index]
    }

    async fn main_loop(&mut self, stop: &mut watch::Receiver<bool>) {
        let gate = self.shared.connect_gate.clone();
        self.gate = tokio::select! {
            permit = gate.acquire_owned() => permit.ok(),
            _ = stop.changed() => return,
        };
        self.first_attempt = Some(Instant::now());
        loop {
            if *stop.borrow() {
                return;
            }
            self.finish_due_jobs_offline();
            match self.connect().await {
                Ok(mut ws) => {
                    let began = Instant::now();
                    let end = self.session(&mut ws, stop).await;
                    self.went_offline();
                    match end {
                        End::Stop => {
                            // Best effort: the process is winding down.
                            let _ = ws.close(None).await;
                            return;
                        }
                        End::Lost => {
                            self.shared.sessions_lost.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if began.elapsed() >= BACKOFF_RESET_AFTER {
                        self.backoff.reset();
                    }
                }
                Err(_) => {
                    self.shared.connect_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A first connection that failed gives its place to another.
            self.gate = None;
            if !self.config.reconnect {
                return;
            }
            let delay = self.backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn connect(&self) -> anyhow::Result<Ws> {
        let socket = TcpSocket::new_v4().context("socket")?;
        socket
            .bind(SocketAddr::new(self.source.into(), 0))
            .with_context(|| format!("bind {}", self.source))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(self.config.server))
            .await
            .context("connect timed out")?
            .context("connect")?;
        stream.set_nodelay(true).context("nodelay")?;
        let mut request = self
            .config
            .ws_url
            .as_str()
            .into_client_request()
            .context("request")?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.creds().token)
                .parse()
                .context("token header")?,
        );
        let (ws, _) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config())),
        )
        .await
        .context("upgrade timed out")?
        .context("upgrade")?;
        Ok(ws)
    }

    async fn send(ws: &mut Ws, message: impl Into<AgentToServer>) -> anyhow::Result<()> {
        let text = Envelope::new(message.into()).encode();
        ws.send(Message::text(text)).await.context("send")
    }

    fn went_online(&mut self) {
        if self.greeted {
            return;
        }
        self.greeted = true;
        let slot = self.slot();
        slot.online.store(true, Ordering::Relaxed);
        slot.sessions.fetch_add(1, Ordering::Relaxed);
        self.shared.online.fetch_add(1, Ordering::Relaxed);
        if self.gate.take().is_some() {
            if let Some(first) = self.first_attempt {
                let took = first.elapsed();
                match self.shared.first_online.lock() {
                    Ok(mut v) => v.push(took),
                    Err(poisoned) => poisoned.into_inner().push(took),
                }
            }
        }
    }

    fn went_offline(&mut self) {
        if !self.greeted {
            return;
        }
        self.greeted = false;
        self.slot().online.store(false, Ordering::Relaxed);
        self.shared.online.fetch_sub(1, Ordering::Relaxed);
    }

    async fn session(&mut self, ws: &mut Ws, stop: &mut watch::Receiver<bool>) -> End {
        let hello = protocol::Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            // The server's own version (build metadata is ignored by semver
            // precedence): no `agent.update_available` per session.
            agent_version: concat!(env!("CARGO_PKG_VERSION"), "+loadgen").to_owned(),
            restic_version: "0.14.0".to_owned(),
            hostname: format!("loadgen-{}", self.index + 1),
            os: protocol::OS_LINUX.to_owned(),
            arch: protocol::ARCH_AMD64.to_owned(),
            boot_time: None,
            capabilities: Some(
                [
                    protocol::CAPABILITY_ACTIVE_JOB_IDS,
                    protocol::CAPABILITY_CANCEL,
                    protocol::CAPABILITY_CATALOG,
                    protocol::CAPABILITY_LOCAL_CRON,
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            last_known_config_version: None,
        };
        if Self::send(ws, hello).await.is_err() {
            return End::Lost;
        }
        // Like the real agent: the outbox right after `hello`, before any
        // heartbeat, so the server never takes a result still in the outbox
        // for a lost job.
        for (_, frame) in &self.outbox {
            if ws.send(Message::text(frame.clone())).await.is_err() {
                return End::Lost;
            }
        }
        if !self.config.expect_greeting {
            self.went_online();
        }
        let period = self.config.heartbeat;
        let offset = period.mul_f64(self.backoff.random());
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_line = if self.greeted {
                self.next_line_due()
            } else {
                None
            };
            let next_end = self.jobs.iter().filter_map(|j| j.ends_at).min();
            let result = tokio::select! {
                biased;
                _ = stop.changed() => return End::Stop,
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str(), ws).await,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::Lost,
                    Some(Ok(_)) => Ok(()),
                },
                _ = heartbeat.tick() => self.heartbeat(ws).await,
                _ = sleep_until_opt(next_end), if next_end.is_some() => self.finish_due_jobs(ws).await,
                _ = sleep_until_opt(next_line), if next_line.is_some() => self.stream_chunk(ws).await,
            };
            if result.is_err() {
                return End::Lost;
            }
        }
    }

    async fn heartbeat(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        let active = self.jobs.iter().map(|j| j.id.clone()).collect();
        Self::send(
            ws,
            protocol::Heartbeat {
                sent_at: Utc::now(),
                active_job_ids: Some(active),
                // What a real agent measures, so that idle runs exercise
                // the server's metric points (issue 14).
                metrics: serde_json::json!({
                    "load1": 0.25,
                    "mem_used_bytes": 512_u64 << 20,
                    "mem_total_bytes": 2_u64 << 30,
                    "disk_free_bytes": 10_u64 << 30,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
                // The loadgen agent never applies a `config.update`.
                config_version: None,
            },
        )
        .await
    }

    /// `schedule.set`: acked; the first one puts the agent online.
    async fn on_schedule_set(&mut self, version: u64, ws: &mut Ws) -> anyhow::Result<()> {
        let now = self.shared.now_us();
        let slot = self.slot();
        slot.schedule_version.store(version, Ordering::Relaxed);
        slot.schedule_at_us.store(now, Ordering::Relaxed);
        Self::send(
            ws,
            protocol::ScheduleAck {
                version,
                applied_at: Utc::now(),
            },
        )
        .await?;
        self.slot()
            .acked_version
            .fetch_max(version, Ordering::Relaxed);
        if !self.greeted {
            self.went_online();
            self.report_snapshot(ws).await?;
        }
        Ok(())
    }

    async fn on_text(&mut self, text: &str, ws: &mut Ws) -> anyhow::Result<()> {
        let message = match read_frame(text) {
            Ok(Incoming::ScheduleSet(version)) => return self.on_schedule_set(version, ws).await,
            Ok(Incoming::Other(message)) => message,
            Err(e) => bail!("undecodable frame from the server: {e}"),
        };
        match message {
            ServerToAgent::ConfigUpdate(_)
            | ServerToAgent::AgentUpdateAvailable(_)
            | ServerToAgent::DownloadStart(_)
            | ServerToAgent::DownloadCredit(_)
            | ServerToAgent::DownloadCancel(_)
            | ServerToAgent::HealthSet(_) => Ok(()),
            ServerToAgent::ScheduleSet(set) => self.on_schedule_set(set.version, ws).await,
            ServerToAgent::CommandRun(run) => self.on_run(run, ws).await,
            ServerToAgent::CommandCancel(cancel) => {
                if let Some(at) = self.jobs.iter().position(|j| j.id == cancel.job_id) {
                    let job = self.jobs.swap_remove(at);
                    self.finish(job, protocol::FinishStatus::Cancelled, Some(ws))
                        .await?;
                }
                Ok(())
            }
            ServerToAgent::Ack(ack) => {
                if let Some(at) = self
                    .outbox
                    .iter()
                    .position(|(id, _)| *id == ack.correlation_id)
                {
                    self.outbox.swap_remove(at);
                    self.slot().outbox.fetch_sub(1, Ordering::Relaxed);
                    self.shared.results_acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            ServerToAgent::Error(_) => {
                self.shared.error_frames.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            // Simulated hosts have no repository to list.
            ServerToAgent::CatalogList(list) => {
                let answer = protocol::CatalogListing {
                    request_id: list.request_id,
                    entries: Vec::new(),
                    done: true,
                    error: Some("a simulated host has no repository".to_owned()),
                };
                Self::send(ws, answer).await
            }
        }
    }
}

/// A frame from the server as the simulated agent reads it.
// Matched and taken apart at once, never stored: boxing the message would
// only add an allocation per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
enum Incoming {
    /// `schedule.set`, read for its version alone.
    ScheduleSet(u64),
    Other(ServerToAgent),
}

/// Reads a frame, parsing its envelope once: a `schedule.set` for its
/// version without building its schedules, any other message in full. The
/// simulated agent keeps no cron table, and a real agent parses its
/// schedules on its own host: here 15,000 simulated agents would
/// otherwise spend the cores the measured server runs on building 20
/// policy schedules each (issue 12 §7). A frame that does not read so goes
/// to the protocol's own decoder, for its error.
fn read_frame(text: &str) -> Result<Incoming, protocol::DecodeError> {
    #[derive(serde::Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type", borrow)]
        message_type: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    #[derive(serde::Deserialize)]
    struct Version {
        version: u64,
        // Required, as the full decode requires it.
        #[allow(dead_code)]
        schedules: serde::de::IgnoredAny,
    }
    let full = || Envelope::<ServerToAgent>::decode(text).map(|e| Incoming::Other(e.message));
    let Ok(frame) = serde_json::from_str::<Frame>(text) else {
        return full();
    };
    if frame.message_type != restic_manager::store::schedule_set::message_type() {
        return ServerToAgent::decode_data(&frame.message_type, frame.data.get())
            .map(Incoming::Other);
    }
    match serde_json::from_str::<Version>(frame.data.get()) {
        Ok(set) => Ok(Incoming::ScheduleSet(set.version)),
        Err(_) => full(),
    }
}

/// Sleeps until `at` (at once if it has passed); never without one.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        // A passed deadline returns at once, without a trip through the
        // timer (unpaced streaming asks for "now" per chunk).
        Some(at) if at <= Instant::now() => {}
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `schedule.set` is read for its version; other frames as the
    /// protocol decodes them; what the protocol refuses is refused.
    #[test]
    fn a_schedule_set_is_read_for_its_version_alone() {
        let set = protocol::ScheduleSet {
            version: 42,
            schedules: vec![protocol::ScheduleSpec {
                id: "s1".to_owned(),
                cron_expr: "0 2 * * *".to_owned(),
                enabled: true,
                kind: protocol::ScheduleKind::Backup,
                source_groups: Vec::new(),
            }],
        };
        let frame = Envelope::new(ServerToAgent::ScheduleSet(set)).encode();
        assert_eq!(read_frame(&frame).unwrap(), Incoming::ScheduleSet(42));
        let ack = Envelope::new(ServerToAgent::Ack(protocol::Ack {
            correlation_id: "x".to_owned(),
            accepted: true,
            reason: None,
        }))
        .encode();
        assert_eq!(
            read_frame(&ack).unwrap(),
            Incoming::Other(Envelope::<ServerToAgent>::decode(&ack).unwrap().message)
        );
        let no_list = r#"{"type":"schedule.set","id":"1","data":{"version":3}}"#;
        assert!(read_frame(no_list).is_err());
        assert!(read_frame("not json").is_err());
    }
}
