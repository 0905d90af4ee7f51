//! Helpers shared by the end-to-end tests: test databases, a real server on
//! a random port, the REST API, scripted agents, the real agent in-process
//! or as a process, a TCP proxy that can cut connections, and temp restic
//! repositories.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

pub mod agent;
pub mod agent_proc;
pub mod api;
pub mod browser;
pub mod daemon;
pub mod db;
pub mod e2e;
pub mod fake_docker;
pub mod fleet;
pub mod proxy;
pub mod restic;
pub mod restic_key;
pub mod server;
pub mod template;

/// Runs blocking work (a `restic` run, a file walk) off the test's thread,
/// which also runs the server and the in-process agent.
pub async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}
