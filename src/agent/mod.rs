//! The agent daemon, `restic-manager-agent`: one per host, it keeps one
//! WebSocket to the server, runs `restic` when told or when its local
//! schedule fires, and reports every result at least once, through network
//! loss, server restarts and its own restarts.
//!
//! # Use
//!
//! ```text
//! let config = agent::enroll(&EnrollOptions { server_url, token, config_path, .. }).await?;
//! agent::run(AgentConfig::load(&path)?, shutdown_signal()).await?;
//! ```
//!
//! [`run`] returns when its shutdown future resolves, so tests start an
//! agent in-process with a config pointing at a test server and a temp
//! state directory, and stop it with a oneshot (or drop the future to
//! simulate a crash).
//!
//! # Layout
//!
//! - [`config`]: `agent.toml` (server, identity, state dir, restic, hooks).
//! - [`enroll`]: the enrolment exchange that writes `agent.toml`.
//! - [`daemon`]: the running agent: state, event loop, protocol handling.
//! - [`download`]: snapshot downloads: `restic dump` streamed under credits.
//! - [`connection`]: WebSocket URL, TLS, upgrade, back-off.
//! - [`tls`]: the rustls client config (web PKI + optional CA file).
//! - [`cron`]: the local schedule ([`crate::cron`]), missed fires, persistence.
//! - [`journal`]: crash-safe job journal and outbox.
//! - [`offline`]: when the server is away: log lines spooled on disk,
//!   the sealed repository settings, backups the agent runs itself.
//! - [`reports`]: snapshot list and repository stats after a job.
//! - [`catalog`]: `restic ls --json` read as it prints, sent in bounded
//!   chunks (a `catalog` job's `catalog.chunk`s, a live `catalog.listing`).
//! - [`runner`]: runs one job (hooks, restic, log lines, progress, cancel).
//! - [`process`]: what a job's child processes share: stop request, log sink, line reader.
//! - [`hooks`]: pre/post hooks under the configured shell.
//! - [`health`]: service health checks (`health.set`), probed on their own
//!   timers, reported as `health.report`.
//! - [`restic`]: restic arguments, credential environment, output parsers.
//! - [`restore`]: restore jobs' source repositories (memory only) and stats.
//! - [`drill`]: restore drills' private folder and size comparison.
//! - [`dump`]: database dumps streamed into `restic backup --stdin`.
//! - [`discovery`]: the Docker containers of the host (`discovery.report`),
//!   watched through the Engine API beside the loop.
//! - [`platform`]: everything that differs between Unix and Windows.
//! - [`preflight`]: what a job's options need from the repository (compression: format 2).

pub mod catalog;
pub mod config;
pub mod connection;
pub mod cron;
pub mod daemon;
pub mod discovery;
pub mod download;
pub mod drill;
pub mod dump;
pub mod enroll;
pub mod health;
pub mod hooks;
pub mod journal;
pub mod offline;
pub mod platform;
pub mod preflight;
pub mod process;
pub mod reports;
pub mod restic;
pub mod restore;
pub mod runner;
pub mod tls;

pub use config::{AgentConfig, HooksConfig, Secret};
pub use daemon::{run, run_with_clock, AgentError};
pub use enroll::{enroll, EnrollError, EnrollOptions};
