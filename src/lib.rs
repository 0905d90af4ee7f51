//! restic-manager: a control plane for restic backups across a fleet.
//!
//! # Layout
//!
//! - [`protocol`]: the agent ⇄ server wire protocol (PROTOCOL.md), serde types only.
//! - [`store`]: diesel schema, migrations and typed queries (SQLite and PostgreSQL).
//! - [`crypto`]: XChaCha20-Poly1305 sealing of secrets at rest and the key file.
//! - [`auth`]: argon2id passwords, random tokens stored as SHA-256, roles.
//! - [`config`]: server configuration (flags > `RESTIC_MANAGER_*` env > TOML file).
//! - [`actors`]: the server's actors, one per file.
//! - [`http`]: actix-web routes: REST API, agent WebSocket upgrade, health.
//! - [`agent`]: the agent daemon.

pub mod actors;
pub mod agent;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod http;
pub mod protocol;
pub mod store;
