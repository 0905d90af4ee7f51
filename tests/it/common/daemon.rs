//! The real agent daemon run in-process against a test server: enrolled
//! over HTTP with `agent::enroll`, run with `agent::run_with_clock` on the
//! test's runtime, stopped through its shutdown future. For an agent that
//! must survive `kill -9`, see `agent_proc`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use restic_manager::agent::cron::{Clock, SystemClock};
use restic_manager::agent::{self, AgentConfig, AgentError, EnrollOptions, Secret};

use super::server::TestApp;

/// Enrols a new host with a fresh token; the config is written to
/// `dir/agent.toml` and its state directory is `dir/state`.
pub async fn enroll(app: &TestApp, dir: &Path) -> AgentConfig {
    let token = app.enrollment_token().await;
    enroll_with(&app.base_url, &token, dir).await
}

/// Enrols a new host with `token` (e.g. one an operator created in the
/// UI) against `server_url`; files as [`enroll`] places them.
pub async fn enroll_with(server_url: &str, token: &str, dir: &Path) -> AgentConfig {
    let mut config = agent::enroll(&EnrollOptions {
        server_url: server_url.to_owned(),
        token: Secret::new(token.to_owned()),
        config_path: dir.join("agent.toml"),
        ca_file: None,
        force: false,
        allow_insecure: false,
    })
    .await
    .unwrap();
    config.state_dir = dir.join("state");
    config
}

/// A clock running at the wall clock's pace, shifted by a fixed offset.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    pub offset: TimeDelta,
}

impl ShiftedClock {
    /// A clock that reads `lead` before the next whole minute (at least
    /// `lead` from now), so that a `* * * * *` schedule applied now is due
    /// after about `lead`.
    pub fn before_next_minute(lead: TimeDelta) -> Self {
        let now = Utc::now();
        let minute = TimeDelta::minutes(1);
        let floor = DateTime::from_timestamp(now.timestamp() - now.timestamp() % 60, 0).unwrap();
        let mut boundary = floor + minute;
        if boundary - now < lead {
            boundary += minute;
        }
        Self {
            offset: boundary - lead - now,
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// A running in-process agent.
pub struct InProcessAgent {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), AgentError>>,
}

impl InProcessAgent {
    /// Runs the agent with the system clock.
    pub fn start(config: AgentConfig) -> Self {
        Self::start_with_clock(config, Arc::new(SystemClock))
    }

    /// Runs the agent with `clock` driving its local schedule.
    pub fn start_with_clock(config: AgentConfig, clock: Arc<dyn Clock>) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = actix_web::rt::spawn(agent::run_with_clock(config, clock, async move {
            // Err: the sender was dropped, which also means stop.
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Asks the agent to shut down and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            // Err: the agent already ended; the join below reports why.
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}
