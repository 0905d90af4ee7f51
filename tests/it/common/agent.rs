//! A scripted test agent: enrols over HTTP, connects over a real TCP
//! WebSocket, and speaks PROTOCOL.md through `protocol.rs` one frame at a
//! time, so tests decide exactly what the server sees and check exactly
//! what it answers. Plus small helpers to read and seed the database and
//! to wait for a condition without sleeping blindly.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use restic_manager::protocol::{
    self, AgentToServer, CommandRun, ConfigUpdate, Envelope, ScheduleSet, ServerToAgent,
};
use restic_manager::store::{self, DbConnection};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::server::{client, TestApp};

/// How long a test waits for a frame or a condition before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// The scripted agents' WebSocket settings: reads of 4 KiB, as the load
/// generator's agents (`restic-manager-loadgen`). tungstenite's default
/// (128 KiB) zero-fills the whole buffer before every read: with the
/// burst test's 1,000 agents that memset was a sixth of its CPU time.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// An enrolled host's credentials.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub host_id: String,
    pub token: String,
}

/// Enrols a host with a fresh enrolment token.
pub async fn enroll(app: &TestApp, hostname: &str) -> Enrolled {
    let token = app.enrollment_token().await;
    let response = client()
        .post(app.api("/agent/enroll"))
        .json(&serde_json::json!({"token": token, "hostname": hostname, "os": "linux", "arch": "amd64"}))
        .send()
        .await
        .expect("enrol request");
    assert_eq!(response.status(), 200, "enrolment answers 200");
    let body: protocol::EnrollResponse = response.json().await.expect("enrolment body");
    Enrolled {
        host_id: body.host_id,
        token: body.agent_token,
    }
}

/// The capabilities of a scripted agent: a current agent's but for those
/// a test opts into (`download`, `health`, `offline_backup`, dumps).
pub fn capabilities() -> Vec<String> {
    [
        protocol::CAPABILITY_ACTIVE_JOB_IDS,
        protocol::CAPABILITY_CANCEL,
        protocol::CAPABILITY_CATALOG,
        protocol::CAPABILITY_DRILL,
        protocol::CAPABILITY_DURABLE_OUTBOX,
        protocol::CAPABILITY_HOOKS,
        protocol::CAPABILITY_LOCAL_CRON,
        protocol::CAPABILITY_RESTORE,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A `hello` as a current agent sends it, with [`capabilities`].
pub fn hello(hostname: &str) -> protocol::Hello {
    protocol::Hello {
        protocol_version: protocol::PROTOCOL_VERSION,
        // The server's own version: current, so no update notice.
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        restic_version: "0.14.0".to_owned(),
        hostname: hostname.to_owned(),
        os: protocol::OS_LINUX.to_owned(),
        arch: protocol::ARCH_AMD64.to_owned(),
        boot_time: None,
        capabilities: Some(capabilities()),
        last_known_config_version: None,
    }
}

/// What arrived from the server.
#[derive(Debug)]
pub enum Incoming {
    /// A decoded frame.
    Message(Box<Envelope<ServerToAgent>>),
    /// The server closed: code and reason (no code: the TCP stream ended).
    Closed(Option<u16>, String),
}

/// One scripted agent connection.
pub struct TestAgent {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// How long [`TestAgent::recv`] waits for a frame ([`WAIT`] unless a
    /// load test sets its own with [`TestAgent::set_wait`]).
    wait: Duration,
}

fn request(app: &TestApp, token: &str) -> tungstenite::handshake::client::Request {
    let mut request = app
        .ws_url
        .as_str()
        .into_client_request()
        .expect("ws request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

impl TestAgent {
    /// Connects with `token` (an error is the HTTP answer of a refused
    /// upgrade).
    pub async fn connect(
        app: &TestApp,
        enrolled: &Enrolled,
    ) -> Result<TestAgent, tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            request(app, &enrolled.token),
            Some(ws_config()),
            false,
        )
        .await?;
        Ok(TestAgent { ws, wait: WAIT })
    }

    /// Connects from a chosen local address (127.0.0.x spreads many
    /// connections over several source addresses).
    pub async fn connect_from(
        app: &TestApp,
        enrolled: &Enrolled,
        local: IpAddr,
    ) -> Result<TestAgent, tungstenite::Error> {
        let socket = TcpSocket::new_v4().map_err(tungstenite::Error::Io)?;
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(tungstenite::Error::Io)?;
        let stream = socket
            .connect(app.addr)
            .await
            .map_err(tungstenite::Error::Io)?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            request(app, &enrolled.token),
            MaybeTlsStream::Plain(stream),
            Some(ws_config()),
        )
        .await?;
        Ok(TestAgent { ws, wait: WAIT })
    }

    /// Sends a message under a fresh id; returns the id.
    pub async fn send(&mut self, message: impl Into<AgentToServer>) -> String {
        let envelope = Envelope::new(message.into());
        self.send_envelope(&envelope).await;
        envelope.id
    }

    /// Sends an envelope as is (a replay keeps its id).
    pub async fn send_envelope(&mut self, envelope: &Envelope<AgentToServer>) {
        self.send_text(&envelope.encode()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send a text frame");
    }

    /// Sends `text` as one message split over `parts` frames (a text
    /// frame and continuation frames).
    pub async fn send_fragmented(&mut self, text: &str, parts: usize) {
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        use tungstenite::protocol::frame::Frame;
        let bytes = text.as_bytes();
        let size = bytes.len().div_ceil(parts.max(1));
        let chunks: Vec<&[u8]> = bytes.chunks(size.max(1)).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            let frame = Frame::message(chunk.to_vec(), OpCode::Data(opcode), i + 1 == chunks.len());
            self.ws
                .send(Message::Frame(frame))
                .await
                .expect("send a fragment");
        }
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .expect("send a binary frame");
    }

    /// Sets how long [`TestAgent::recv`] waits for a frame. For load tests
    /// whose point is that everything lands, not how fast: on a slow
    /// machine running other tests at once, an answer that waits behind
    /// a thousand agents' writes can take longer than [`WAIT`].
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// The next frame from the server (pings are answered underneath).
    pub async fn recv(&mut self) -> Incoming {
        loop {
            let next = tokio::time::timeout(self.wait, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame from the server within {:?}", self.wait));
            match next {
                None => return Incoming::Closed(None, String::new()),
                Some(Err(e)) => return Incoming::Closed(None, e.to_string()),
                Some(Ok(Message::Text(text))) => {
                    let envelope = Envelope::<ServerToAgent>::decode(text.as_str())
                        .unwrap_or_else(|e| panic!("server frame does not decode: {e}: {text}"));
                    return Incoming::Message(Box::new(envelope));
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(f) => Incoming::Closed(Some(u16::from(f.code)), f.reason.to_string()),
                        None => Incoming::Closed(None, String::new()),
                    }
                }
                Some(Ok(Message::Binary(_))) => panic!("the server sent a binary frame"),
                Some(Ok(_)) => continue, // ping / pong / raw frame
            }
        }
    }

    /// The next frame, which must be a message.
    pub async fn expect_message(&mut self) -> Envelope<ServerToAgent> {
        match self.recv().await {
            Incoming::Message(envelope) => *envelope,
            Incoming::Closed(code, reason) => {
                panic!("expected a message, the server closed: {code:?} {reason}")
            }
        }
    }

    /// The next frame, which must close the connection; returns the code.
    pub async fn expect_close(&mut self) -> (Option<u16>, String) {
        loop {
            match self.recv().await {
                Incoming::Closed(code, reason) => return (code, reason),
                Incoming::Message(_) => continue,
            }
        }
    }

    /// Messages until one that `pick` selects (the skipped ones are
    /// returned too, in order).
    pub async fn wait_for<T>(
        &mut self,
        mut pick: impl FnMut(&ServerToAgent) -> Option<T>,
    ) -> (T, Vec<Envelope<ServerToAgent>>) {
        let mut skipped = Vec::new();
        loop {
            let envelope = self.expect_message().await;
            if let Some(found) = pick(&envelope.message) {
                return (found, skipped);
            }
            skipped.push(envelope);
        }
    }

    /// The next `command.run` (other messages in between are skipped).
    pub async fn expect_command_run(&mut self) -> CommandRun {
        self.wait_for(|m| match m {
            ServerToAgent::CommandRun(run) => Some(run.clone()),
            _ => None,
        })
        .await
        .0
    }

    /// The `ack` of the frame with `id`.
    pub async fn expect_ack(&mut self, id: &str) -> protocol::Ack {
        self.wait_for(|m| match m {
            ServerToAgent::Ack(ack) if ack.correlation_id == id => Some(ack.clone()),
            _ => None,
        })
        .await
        .0
    }

    /// The next `error` frame.
    pub async fn expect_error(&mut self) -> protocol::ErrorFrame {
        match self.expect_message().await.message {
            ServerToAgent::Error(frame) => frame,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    /// Says hello and checks the answer is `config.update` then
    /// `schedule.set`.
    pub async fn hello(&mut self, hostname: &str) -> (ConfigUpdate, ScheduleSet) {
        self.send(hello(hostname)).await;
        let config = match self.expect_message().await.message {
            ServerToAgent::ConfigUpdate(config) => config,
            other => panic!("expected config.update after hello, got {other:?}"),
        };
        let schedules = match self.expect_message().await.message {
            ServerToAgent::ScheduleSet(set) => set,
            other => panic!("expected schedule.set after config.update, got {other:?}"),
        };
        (config, schedules)
    }

    /// Accepts, starts, reports progress and `lines` log lines, and
    /// finishes a job with `status`; returns the `job.finished` envelope
    /// (for replays) once its ack arrived.
    pub async fn run_job(
        &mut self,
        run: &CommandRun,
        lines: u64,
        status: protocol::FinishStatus,
    ) -> Envelope<AgentToServer> {
        self.start_job(run).await;
        self.send(protocol::JobProgress {
            job_id: run.job_id.clone(),
            percent_done: 0.5,
            files_done: 1,
            total_files: 2,
            bytes_done: 10,
            total_bytes: 20,
            eta_seconds: Some(1),
            throughput_bps: 10,
            step: None,
            dumped_bytes: None,
        })
        .await;
        for seq in 1..=lines {
            self.send(log_line(&run.job_id, seq)).await;
        }
        let finished = finished_envelope(&run.job_id, status);
        self.send_envelope(&finished).await;
        let ack = self.expect_ack(&finished.id).await;
        assert!(ack.accepted, "job.finished accepted: {ack:?}");
        finished
    }

    /// Accepts `run` (`command.result`) and starts it (`job.started`).
    pub async fn start_job(&mut self, run: &CommandRun) {
        self.send(protocol::CommandResult {
            job_id: run.job_id.clone(),
            accepted: true,
            error: None,
        })
        .await;
        self.send(protocol::JobStarted {
            job_id: run.job_id.clone(),
            kind: run.kind,
            started_at: chrono::Utc::now(),
        })
        .await;
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        // The server may have closed already; either way the test goes on.
        let _ = self.ws.close(None).await;
    }
}

/// Log line `seq` of a job.
pub fn log_line(job_id: &str, seq: u64) -> protocol::LogStream {
    protocol::LogStream {
        job_id: job_id.to_owned(),
        seq,
        ts: chrono::Utc::now(),
        stream: protocol::LogStreamKind::Stdout,
        payload: format!("line {seq} of {job_id}"),
    }
}

/// A `job.finished` envelope (kept, so that it can be replayed with the
/// same id as an outbox would).
pub fn finished_envelope(job_id: &str, status: protocol::FinishStatus) -> Envelope<AgentToServer> {
    let exit_code = match status {
        protocol::FinishStatus::Succeeded => 0,
        protocol::FinishStatus::Failed => 1,
        protocol::FinishStatus::Cancelled => 130,
    };
    let mut stats = serde_json::Map::new();
    stats.insert("files_new".to_owned(), serde_json::json!(3));
    Envelope::new(AgentToServer::from(protocol::JobFinished {
        job_id: job_id.to_owned(),
        status,
        exit_code,
        finished_at: chrono::Utc::now(),
        stats: Some(stats),
        error: (status == protocol::FinishStatus::Failed)
            .then(|| "Fatal: repository is locked".to_owned()),
    }))
}

/// A run-now job of `kind` (of `group`, for the kinds that take one) on
/// `host_id`, as `admin` asks for it.
pub async fn run_now(
    app: &TestApp,
    host_id: &str,
    kind: protocol::JobKind,
    group: Option<&str>,
) -> store::models::Job {
    app.state
        .actors
        .create_job(restic_manager::actors::NewJobRequest {
            host_id: host_id.to_owned(),
            kind,
            source_group: group.map(str::to_owned),
            requested_by: "admin".to_owned(),
            source_addr: None,
            restore: None,
            drill: None,
        })
        .await
        .expect("job created")
}

/// Runs `f` with a pooled connection on the blocking pool.
pub async fn db<T: Send + 'static>(
    app: &TestApp,
    f: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
) -> T {
    let pool = app.state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().expect("a pooled connection");
        f(&mut conn)
    })
    .await
    .expect("blocking task")
    .expect("query")
}

/// Moves the scheduler's clock to `now` (retries, missed runs).
pub async fn tick(
    app: &TestApp,
    now: chrono::DateTime<chrono::Utc>,
) -> restic_manager::actors::scheduler::TickReport {
    app.state
        .actors
        .scheduler
        .send(restic_manager::actors::scheduler::Tick { now })
        .await
        .expect("scheduler mailbox")
        .expect("tick")
}

/// The first ten recorded missed runs (and their total).
pub async fn missed_runs(app: &TestApp) -> store::Page<store::models::MissedRun> {
    db(app, |c| {
        store::missed_runs::list(
            c,
            &store::missed_runs::MissedRunFilter {
                limit: 10,
                ..Default::default()
            },
        )
    })
    .await
}

/// A host's jobs, oldest first.
pub async fn jobs_of(app: &TestApp, host_id: &str) -> Vec<store::models::Job> {
    let filter = store::jobs::JobFilter {
        host_id: Some(host_id.to_owned()),
        limit: 1000,
        ..Default::default()
    };
    let mut jobs = db(app, move |c| store::jobs::list(c, &filter)).await.items;
    jobs.reverse(); // oldest first
    jobs
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The job row, waiting until `ok` holds for it.
pub async fn job_when(
    app: &TestApp,
    job_id: &str,
    what: &str,
    ok: impl Fn(&store::models::Job) -> bool,
) -> store::models::Job {
    let ok = &ok;
    eventually(what, || {
        let id = job_id.to_owned();
        async move {
            let job = db(app, move |c| store::jobs::get(c, &id)).await?;
            ok(&job).then_some(job)
        }
    })
    .await
}
