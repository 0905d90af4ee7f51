//! The real agent daemon in-process (as `e2e_backup.rs` runs it): enrolled
//! over HTTP with a token, then `agent::run` on the test's runtime with a
//! state dir in a temp folder, stopped through a oneshot.
//!
//! Include it from a test crate with
//! `#[path = "common/real_agent.rs"] mod real_agent;`.

#![allow(dead_code)] // each test crate uses a different subset
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use restic_manager::agent::{self, AgentConfig, EnrollOptions, Secret};
use tempfile::TempDir;

/// An enrolled agent that is not running yet.
pub struct EnrolledAgent {
    pub config: AgentConfig,
    /// Holds the agent's config file and state dir.
    pub dir: TempDir,
}

/// Enrols a new agent with `token` against `server_url` (plain HTTP on
/// loopback is allowed by the agent).
pub async fn enroll(server_url: &str, token: &str) -> EnrolledAgent {
    let dir = tempfile::tempdir().expect("agent temp dir");
    let mut config = agent::enroll(&EnrollOptions {
        server_url: server_url.to_owned(),
        token: Secret::new(token.to_owned()),
        config_path: dir.path().join("agent.toml"),
        ca_file: None,
        force: false,
        allow_insecure: false,
    })
    .await
    .expect("the agent enrols");
    config.state_dir = dir.path().join("state");
    EnrolledAgent { config, dir }
}

/// A running agent daemon.
pub struct RunningAgent {
    pub host_id: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: actix_web::rt::task::JoinHandle<Result<(), agent::AgentError>>,
    _dir: TempDir,
}

impl EnrolledAgent {
    /// The host id the server gave it.
    pub fn host_id(&self) -> &str {
        &self.config.host_id
    }

    /// Starts the daemon on the current runtime.
    pub fn run(self) -> RunningAgent {
        let host_id = self.config.host_id.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = actix_web::rt::spawn(agent::run(self.config, async move {
            // Err: the sender was dropped, which also means stop.
            let _ = stopped.await;
        }));
        RunningAgent {
            host_id,
            stop,
            task,
            _dir: self.dir,
        }
    }
}

impl RunningAgent {
    /// Stops the daemon and waits for it to finish cleanly.
    pub async fn stop(self) {
        // Err: the daemon already ended; its result is checked below.
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the agent task")
            .expect("the agent ends cleanly");
    }
}
