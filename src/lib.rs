//! restic-manager: a control plane for restic backups across a fleet.
//!
//! # Layout
//!
//! - [`protocol`]: the agent ⇄ server wire protocol (PROTOCOL.md), serde types only.
//! - [`ids`]: typed ids ([`ids::HostId`], [`ids::JobId`], …) the server passes around.
//! - [`store`]: diesel schema, migrations and typed queries (SQLite and PostgreSQL).
//! - [`crypto`]: XChaCha20-Poly1305 sealing of secrets at rest and the key file.
//! - [`auth`]: argon2id passwords, random tokens stored as SHA-256, roles,
//!   username and password rules.
//! - [`config`]: server configuration (flags > `RESTIC_MANAGER_*` env > TOML file).
//! - [`redact`]: secrets in URLs hidden for logs and errors.
//! - [`repo_url`]: rules on repository URLs both server and agent enforce.
//! - [`cron`]: the one cron dialect (API, UI, scheduler, agent) and its time math.
//! - [`tokens`]: issuing enrolment and API tokens, for the CLI and the REST API.
//! - [`admin`]: the admin commands (users, tokens, migrations, first admin).
//! - [`config_as_code`]: policies, shared repositories and host labels as
//!   one TOML file (`export`, `apply`; also over the API).
//! - [`agent_release`]: the newest agent release and which agents are older
//!   (update notices).
//! - [`server`]: app wiring: store, key, actors, HTTP server, TLS.
//! - [`actors`]: the server's actors, one per file.
//! - [`http`]: actix-web routes: REST API, agent WebSocket upgrade, health, metrics.
//! - [`metrics`]: in-process counters and the Prometheus text format.
//! - [`agent`]: the agent daemon. The agent binary is its own package,
//!   `agent/` (`restic-manager-agent`), built from these same files with
//!   none of the server's crates; this library keeps the module for the
//!   tests and the load generator, which run agents in-process.
//! - `proptests` (tests only): property tests of every decoder of outside input.
//! - `cli`: tracing setup, one-line usage errors and the build's version,
//!   commit and protocol (`--version`), shared by every binary.

pub mod actors;
pub mod admin;
pub mod agent;
pub mod agent_release;
pub mod auth;
mod cli;
pub mod config;
pub mod config_as_code;
pub mod cron;
pub mod crypto;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod notify;
pub mod protocol;
pub mod redact;
pub mod repo_url;
pub mod server;
pub mod store;
pub mod tokens;

#[cfg(test)]
mod proptests;

pub use cli::{
    init_tracing, init_tracing_with_default, parse_cli, version_line, GIT_COMMIT, VERSION,
};
