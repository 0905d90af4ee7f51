//! The agent in-process against a minimal WebSocket server written here
//! with `protocol.rs` (tokio-tungstenite on 127.0.0.1:0): hello, outbox
//! replay until ack, the command flow with the real restic, duplicate
//! `command.run`, cancel across a dropped connection, kill and restart
//! recovery, missed schedule fires, clean shutdown, and no secret in the
//! agent's logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use crate::common::restic as restic_repo;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use futures_util::{SinkExt, StreamExt};
use restic_manager::agent::cron::CronTable;
use restic_manager::agent::journal::{JobRecord, JobState, Journal, RESTARTED_ERROR};
use restic_manager::agent::{self, AgentConfig, AgentError, Secret};
use restic_manager::protocol::{
    Ack, AgentToServer, CommandCancel, CommandRun, ConfigUpdate, Envelope, FinishStatus,
    JobFinished, JobKind, LockState, ScheduleSet, ScheduleSpec, ServerToAgent, PROTOCOL_VERSION,
};
use restic_repo::TempRepo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, StatusCode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::instrument::WithSubscriber;
use tracing::Dispatch;

/// How long a test waits for one expected frame.
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

// --- log capture ---------------------------------------------------------------

/// What one agent logged. Each [`RunningAgent`] gets its own subscriber,
/// attached to the agent's task (the agent is one task): the tests share
/// one process, so a global subscriber would mix their logs.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn dispatch(&self) -> Dispatch {
        let logs = self.clone();
        tracing_subscriber::fmt()
            .with_env_filter("info,restic_manager=trace")
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish()
            .into()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// --- the test server --------------------------------------------------------------

/// A WebSocket server that accepts agents presenting `token` (401 otherwise)
/// and hands each connection to the test.
pub(crate) struct TestServer {
    addr: SocketAddr,
    pub(crate) conns: mpsc::Receiver<Conn>,
}

impl TestServer {
    pub(crate) async fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, conns) = mpsc::channel(8);
        let expected = format!("Bearer {token}");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                let expected = expected.clone();
                tokio::spawn(async move {
                    // The signature is tungstenite's Callback; its error type is large.
                    #[allow(clippy::result_large_err)]
                    let check = |request: &Request, response: Response| {
                        let auth = request.headers().get(header::AUTHORIZATION);
                        if request.uri().path() != "/api/v1/agent/ws"
                            || auth.and_then(|v| v.to_str().ok()) != Some(expected.as_str())
                        {
                            let mut refusal = ErrorResponse::new(None);
                            *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                            return Err(refusal);
                        }
                        Ok(response)
                    };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await {
                        let _ = tx.send(Conn { ws }).await;
                    }
                });
            }
        });
        Self { addr, conns }
    }

    /// The next agent connection.
    pub(crate) async fn accept(&mut self) -> Conn {
        tokio::time::timeout(FRAME_TIMEOUT, self.conns.recv())
            .await
            .expect("agent connects in time")
            .expect("server running")
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// One agent connection, seen from the server.
pub(crate) struct Conn {
    pub(crate) ws: WebSocketStream<TcpStream>,
}

impl Conn {
    /// The next message from the agent.
    pub(crate) async fn recv(&mut self) -> Envelope<AgentToServer> {
        loop {
            let frame = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .expect("frame in time")
                .expect("connection open")
                .expect("frame ok");
            match frame {
                Message::Text(text) => {
                    return Envelope::<AgentToServer>::decode(text.as_str()).expect("valid frame")
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next message that is not a heartbeat.
    pub(crate) async fn recv_work(&mut self) -> Envelope<AgentToServer> {
        loop {
            let envelope = self.recv().await;
            if !matches!(envelope.message, AgentToServer::Heartbeat(_)) {
                return envelope;
            }
        }
    }

    /// Messages until (and including) the `job.finished` of `job_id`.
    async fn until_finished(
        &mut self,
        job_id: &str,
    ) -> (Vec<AgentToServer>, Envelope<AgentToServer>) {
        let mut seen = Vec::new();
        loop {
            let envelope = self.recv().await;
            if matches!(&envelope.message, AgentToServer::JobFinished(f) if f.job_id == job_id) {
                return (seen, envelope);
            }
            seen.push(envelope.message);
        }
    }

    /// Every message within `window` (none expected to end it).
    async fn quiet_for(&mut self, window: Duration) -> Vec<AgentToServer> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(text) = frame {
                seen.push(
                    Envelope::<AgentToServer>::decode(text.as_str())
                        .unwrap()
                        .message,
                );
            }
        }
        seen
    }

    pub(crate) async fn send(&mut self, message: impl Into<ServerToAgent>) {
        let frame = Envelope::new(message.into()).encode();
        self.ws
            .send(Message::text(frame))
            .await
            .expect("send to agent");
    }

    async fn ack(&mut self, id: &str) {
        self.send(Ack {
            correlation_id: id.to_owned(),
            accepted: true,
            reason: None,
        })
        .await;
    }

    /// Expects `hello` and checks its fields.
    pub(crate) async fn hello(&mut self) {
        let envelope = self.recv().await;
        let AgentToServer::Hello(hello) = envelope.message else {
            panic!("expected hello first, got {envelope:?}");
        };
        assert_eq!(hello.protocol_version, PROTOCOL_VERSION);
        assert_eq!(hello.agent_version, env!("CARGO_PKG_VERSION"));
        assert!(
            hello.restic_version.starts_with("0."),
            "restic version parsed: {}",
            hello.restic_version
        );
        assert!(!hello.hostname.is_empty());
        assert_eq!(hello.os, "linux");
        assert!(!hello.arch.is_empty());
        assert!(hello.boot_time.is_some());
        assert!(hello.capabilities.iter().flatten().any(|c| c == "cancel"));
    }

    /// Pushes the repository and answers nothing else.
    async fn configure(&mut self, repo: &TempRepo) {
        self.send(repo.config_update()).await;
    }
}

// --- the agent under test --------------------------------------------------------

pub(crate) struct RunningAgent {
    handle: JoinHandle<Result<(), AgentError>>,
    stop: oneshot::Sender<()>,
    logs: Logs,
}

impl RunningAgent {
    pub(crate) fn start(config: AgentConfig) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let logs = Logs::default();
        let run = agent::run(config, async {
            // Err means the test dropped the sender: stop as well.
            let _ = stopped.await;
        });
        let handle = tokio::spawn(run.with_subscriber(logs.dispatch()));
        Self { handle, stop, logs }
    }

    /// Everything this agent logged so far.
    pub(crate) fn logs(&self) -> Logs {
        self.logs.clone()
    }

    /// Asks for a clean stop and waits for `run` to return.
    pub(crate) async fn shutdown(self) -> Result<(), AgentError> {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("agent stops in time")
            .expect("agent task")
    }

    /// Drops the agent mid-flight, as a crash would (restic is killed).
    async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

pub(crate) fn config(server: &TestServer, token: &str, state_dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::new(server.url(), "host-1", Secret::new(token));
    config.state_dir = state_dir.to_owned();
    config.restic_binary = restic_repo::restic_binary();
    config
}

fn run(job_id: &str, kind: JobKind) -> CommandRun {
    CommandRun {
        job_id: job_id.to_owned(),
        kind,
        args: Vec::new(),
        includes: Vec::new(),
        excludes: Vec::new(),
        tag: None,
        retention_policy: None,
        snapshot_id: None,
        restore: None,
        drill: None,
        dump: None,
    }
}

pub(crate) fn backup_of(job_id: &str, source: &Path, tag: &str) -> CommandRun {
    CommandRun {
        includes: vec![source.to_string_lossy().into_owned()],
        tag: Some(tag.to_owned()),
        ..run(job_id, JobKind::Backup)
    }
}

fn finished_of(envelope: &Envelope<AgentToServer>) -> &JobFinished {
    match &envelope.message {
        AgentToServer::JobFinished(finished) => finished,
        other => panic!("expected job.finished, got {other:?}"),
    }
}

// --- tests ----------------------------------------------------------------------

/// hello carries the agent's facts; the outbox is replayed after every
/// hello, with the same envelope id, until the server acks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_is_replayed_until_acked() {
    let token = "agent-token-outbox";
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let envelope_id = {
        let journal = Journal::open(state.path()).unwrap();
        let record = JobRecord::queued(run("old-job", JobKind::Check), Utc::now());
        let finished = JobFinished {
            job_id: "old-job".to_owned(),
            status: FinishStatus::Succeeded,
            exit_code: 0,
            finished_at: Utc::now(),
            stats: None,
            error: None,
        };
        journal.finish_job(record, finished).unwrap().id
    };
    let agent = RunningAgent::start(config(&server, token, state.path()));

    let mut conn = server.accept().await;
    conn.hello().await;
    let replayed = conn.recv().await;
    assert_eq!(replayed.id, envelope_id);
    assert_eq!(finished_of(&replayed).job_id, "old-job");
    let AgentToServer::Heartbeat(heartbeat) = conn.recv().await.message else {
        panic!("expected a heartbeat after the replay");
    };
    assert_eq!(heartbeat.active_job_ids, Some(Vec::new()));
    drop(conn); // no ack: the server went away

    let mut conn = server.accept().await;
    conn.hello().await;
    let replayed = conn.recv().await;
    assert_eq!(replayed.id, envelope_id, "re-sent under the same id");
    conn.ack(&envelope_id).await;
    assert!(matches!(
        conn.recv().await.message,
        AgentToServer::Heartbeat(_)
    ));
    drop(conn);

    let mut conn = server.accept().await;
    conn.hello().await;
    assert!(
        matches!(conn.recv().await.message, AgentToServer::Heartbeat(_)),
        "nothing replayed after the ack"
    );
    let record = Journal::open(state.path())
        .unwrap()
        .job("old-job")
        .unwrap()
        .unwrap();
    assert!(matches!(
        record.state,
        JobState::Finished { acked: true, .. }
    ));
    agent.shutdown().await.unwrap();
}

/// config and schedule are applied and acked; init and a tagged backup run
/// through command.result → job.started → log.stream → job.finished, then
/// snapshots.report and repo.stats; a duplicate command.run is answered
/// from the journal without running again; no secret reaches the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_flow_with_real_restic() {
    let token = "agent-token-flow-5b1e";
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let repo = TempRepo::new();
    let source = repo.source("docs", &[("a.txt", "alpha"), ("b/c.txt", "gamma")]);
    let agent = RunningAgent::start(config(&server, token, state.path()));

    let mut conn = server.accept().await;
    conn.hello().await;
    conn.configure(&repo).await;
    conn.send(ScheduleSet {
        version: 3,
        schedules: vec![ScheduleSpec {
            id: "sch-1".to_owned(),
            cron_expr: "0 3 * * *".to_owned(),
            enabled: true,
            kind: restic_manager::protocol::ScheduleKind::Backup,
            source_groups: Vec::new(),
        }],
    })
    .await;
    let AgentToServer::ScheduleAck(ack) = conn.recv_work().await.message else {
        panic!("expected schedule.ack");
    };
    assert_eq!(ack.version, 3);

    // init
    conn.send(run("job-init", JobKind::Init)).await;
    let AgentToServer::CommandResult(result) = conn.recv_work().await.message else {
        panic!("expected command.result");
    };
    assert!(result.accepted && result.job_id == "job-init", "{result:?}");
    let (seen, finished) = conn.until_finished("job-init").await;
    assert!(
        matches!(seen.iter().find(|m| !matches!(m, AgentToServer::Heartbeat(_))),
        Some(AgentToServer::JobStarted(s)) if s.job_id == "job-init" && s.kind == JobKind::Init)
    );
    let seqs: Vec<u64> = seen
        .iter()
        .filter_map(|m| match m {
            AgentToServer::LogStream(line) => Some(line.seq),
            _ => None,
        })
        .collect();
    assert!(!seqs.is_empty());
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(finished_of(&finished).status, FinishStatus::Succeeded);
    conn.ack(&finished.id).await;

    // backup
    conn.send(backup_of("job-b1", &source, "docs")).await;
    let AgentToServer::CommandResult(result) = conn.recv_work().await.message else {
        panic!("expected command.result");
    };
    assert!(result.accepted, "{result:?}");
    let (seen, finished) = conn.until_finished("job-b1").await;
    assert!(seen
        .iter()
        .any(|m| matches!(m, AgentToServer::JobStarted(_))));
    assert!(seen
        .iter()
        .any(|m| matches!(m, AgentToServer::JobProgress(_))));
    let report = finished_of(&finished);
    assert_eq!(report.status, FinishStatus::Succeeded, "{report:?}");
    let short_id = report.stats.as_ref().unwrap()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    conn.ack(&finished.id).await;

    let snapshots = conn.recv_work().await;
    let AgentToServer::SnapshotsReport(listed) = &snapshots.message else {
        panic!("expected snapshots.report, got {snapshots:?}");
    };
    assert_eq!(listed.snapshots.len(), 1);
    assert_eq!(listed.snapshots[0].short_id, short_id);
    assert_eq!(listed.snapshots[0].tags, ["docs"]);
    conn.ack(&snapshots.id).await;
    let AgentToServer::RepoStats(stats) = conn.recv_work().await.message else {
        panic!("expected repo.stats");
    };
    assert_eq!(stats.snapshot_count, 1);
    assert_eq!(stats.lock_state, LockState::Unlocked);
    assert!(stats.size_bytes > 0 && stats.dedup_ratio > 0.0, "{stats:?}");

    // the same command.run again: answered from the journal, not re-run
    conn.send(backup_of("job-b1", &source, "docs")).await;
    let AgentToServer::CommandResult(result) = conn.recv_work().await.message else {
        panic!("expected command.result");
    };
    assert!(result.accepted && result.job_id == "job-b1");
    let later = conn.quiet_for(Duration::from_secs(3)).await;
    assert!(
        !later.iter().any(|m| matches!(
            m,
            AgentToServer::JobStarted(_) | AgentToServer::LogStream(_)
        )),
        "the job ran twice: {later:?}"
    );
    assert_eq!(repo.snapshots().len(), 1);
    let logs = agent.logs();
    agent.shutdown().await.unwrap();

    let logs = logs.text();
    assert!(logs.contains("job-b1"), "the capture works");
    assert!(
        !logs.contains(&repo.password),
        "the repository password was logged"
    );
    assert!(!logs.contains(token), "the agent token was logged");
}

/// A dropped connection does not stop a running backup: the agent
/// reconnects, reports the job in active_job_ids, and a cancel on the new
/// connection ends it `cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_after_reconnect() {
    let token = "agent-token-cancel";
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let repo = TempRepo::new();
    repo.init();
    let source = repo.slow_source("big", 64 * 1024 * 1024 * 1024);
    let agent = RunningAgent::start(config(&server, token, state.path()));

    let mut conn = server.accept().await;
    conn.hello().await;
    conn.configure(&repo).await;
    conn.send(backup_of("job-long", &source, "big")).await;
    loop {
        if let AgentToServer::JobStarted(started) = conn.recv().await.message {
            assert_eq!(started.job_id, "job-long");
            break;
        }
    }
    drop(conn); // the network breaks

    let mut conn = server.accept().await;
    conn.hello().await;
    let active = loop {
        if let AgentToServer::Heartbeat(heartbeat) = conn.recv().await.message {
            break heartbeat.active_job_ids;
        }
    };
    assert_eq!(active, Some(vec!["job-long".to_owned()]));
    conn.send(CommandCancel {
        job_id: "job-long".to_owned(),
    })
    .await;
    let (_, finished) = conn.until_finished("job-long").await;
    let report = finished_of(&finished);
    assert_eq!(report.status, FinishStatus::Cancelled, "{report:?}");
    conn.ack(&finished.id).await;
    agent.shutdown().await.unwrap();
    assert!(
        repo.lock_files().is_empty(),
        "restic removed its lock on SIGINT; left:\n{}",
        repo.lock_report()
    );
}

/// An agent killed mid-backup reports the job `failed` ("agent restarted
/// during the job") after its restart, answers a re-sent command.run from
/// its journal, and clears the killed restic's stale lock by itself
/// (`restic unlock` before its next job, here an unlock job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_recovery() {
    let token = "agent-token-restart";
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let repo = TempRepo::new();
    repo.init();
    let source = repo.slow_source("big", 64 * 1024 * 1024 * 1024);

    let agent = RunningAgent::start(config(&server, token, state.path()));
    let mut conn = server.accept().await;
    conn.hello().await;
    conn.configure(&repo).await;
    conn.send(backup_of("job-crash", &source, "big")).await;
    loop {
        if let AgentToServer::JobProgress(progress) = conn.recv().await.message {
            if progress.bytes_done > 0 {
                break;
            }
        }
    }
    agent.kill().await;
    drop(conn);
    assert!(
        !repo.lock_files().is_empty(),
        "the killed restic left its lock"
    );
    let record = Journal::open(state.path())
        .unwrap()
        .job("job-crash")
        .unwrap()
        .unwrap();
    assert!(
        matches!(record.state, JobState::Running { .. }),
        "{record:?}"
    );

    let agent = RunningAgent::start(config(&server, token, state.path()));
    let mut conn = server.accept().await;
    conn.hello().await;
    let replayed = conn.recv_work().await;
    let report = finished_of(&replayed);
    assert_eq!(report.job_id, "job-crash");
    assert_eq!(report.status, FinishStatus::Failed);
    assert_eq!(report.error.as_deref(), Some(RESTARTED_ERROR));

    conn.configure(&repo).await;
    conn.send(backup_of("job-crash", &source, "big")).await;
    let AgentToServer::CommandResult(result) = conn.recv_work().await.message else {
        panic!("expected command.result");
    };
    assert!(result.accepted);
    conn.ack(&replayed.id).await;
    let later = conn.quiet_for(Duration::from_secs(2)).await;
    assert!(
        !later
            .iter()
            .any(|m| matches!(m, AgentToServer::JobStarted(_))),
        "{later:?}"
    );

    conn.send(run("job-unlock", JobKind::Unlock)).await;
    let (_, finished) = conn.until_finished("job-unlock").await;
    assert_eq!(finished_of(&finished).status, FinishStatus::Succeeded);
    assert!(repo.lock_files().is_empty());
    assert!(
        agent
            .logs()
            .text()
            .contains("stale repository locks removed"),
        "the agent's own clean-up ran"
    );
    agent.shutdown().await.unwrap();
}

/// A schedule time that passed while the agent was down is sent once
/// after hello, with its original scheduled_at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_fire_is_sent_on_connect() {
    let token = "agent-token-cron";
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let set = ScheduleSet {
        version: 9,
        schedules: vec![ScheduleSpec {
            id: "hourly".to_owned(),
            cron_expr: "0 * * * *".to_owned(),
            enabled: true,
            kind: restic_manager::protocol::ScheduleKind::Backup,
            source_groups: Vec::new(),
        }],
    };
    CronTable::load(state.path())
        .apply(&set, Utc::now() - TimeDelta::hours(3))
        .unwrap();

    let agent = RunningAgent::start(config(&server, token, state.path()));
    let mut conn = server.accept().await;
    conn.hello().await;
    let AgentToServer::ScheduleFire(fire) = conn.recv_work().await.message else {
        panic!("expected schedule.fire");
    };
    assert_eq!(fire.schedule_id, "hourly");
    let expected = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    assert_eq!(fire.scheduled_at, expected);
    let later = conn.quiet_for(Duration::from_secs(1)).await;
    assert!(
        !later
            .iter()
            .any(|m| matches!(m, AgentToServer::ScheduleFire(_))),
        "sent once"
    );
    agent.shutdown().await.unwrap();
}

/// Stopping the agent during a backup interrupts restic, reports the job
/// failed ("agent stopped during the job") and returns cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_job() {
    let token = "agent-token-stop";
    let mut server = TestServer::start(token).await;
    let state = tempfile::tempdir().unwrap();
    let repo = TempRepo::new();
    repo.init();
    let source = repo.slow_source("big", 64 * 1024 * 1024 * 1024);
    let agent = RunningAgent::start(config(&server, token, state.path()));
    let mut conn = server.accept().await;
    conn.hello().await;
    conn.configure(&repo).await;
    conn.send(backup_of("job-stop", &source, "big")).await;
    // Wait for restic's first progress line, not just job.started: by then
    // it holds its lock and has registered it for removal on SIGINT. A
    // SIGINT that lands while restic is still writing its lock file (the
    // window right after spawn, wide when the machine is busy) can leave
    // that lock behind — restic's race, cleaned up by the agent's stale
    // unlock on its next start, but not what this test is about.
    loop {
        if let AgentToServer::JobProgress(_) = conn.recv().await.message {
            break;
        }
    }
    let stopping = tokio::spawn(agent.shutdown());
    let (_, finished) = conn.until_finished("job-stop").await;
    let report = finished_of(&finished);
    assert_eq!(report.status, FinishStatus::Failed);
    assert_eq!(report.error.as_deref(), Some(agent::runner::STOPPED_ERROR));
    stopping.await.unwrap().unwrap();
    // Not acked before the stop: still in the outbox for the next start.
    let outbox = Journal::open(state.path()).unwrap().outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert!(repo.lock_files().is_empty());
}

/// A wrong agent token is refused by the server (401) and the agent keeps
/// retrying without crashing; a config update with unknown repository
/// makes command.run refused with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let mut server = TestServer::start("the-right-token").await;
    let state = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(config(&server, "a-wrong-token", state.path()));
    assert!(
        tokio::time::timeout(Duration::from_secs(3), server.conns.recv())
            .await
            .is_err(),
        "a wrong token must not get a session"
    );
    agent.shutdown().await.unwrap();

    let state = tempfile::tempdir().unwrap();
    let agent = RunningAgent::start(config(&server, "the-right-token", state.path()));
    let mut conn = server.accept().await;
    conn.hello().await;
    conn.send(ConfigUpdate::default()).await;
    conn.send(run("job-x", JobKind::Check)).await;
    let AgentToServer::CommandResult(result) = conn.recv_work().await.message else {
        panic!("expected command.result");
    };
    assert!(!result.accepted);
    assert_eq!(
        result.error.as_deref(),
        Some("no repository is configured for this host")
    );
    agent.shutdown().await.unwrap();
}
