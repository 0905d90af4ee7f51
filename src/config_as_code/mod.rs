//! Configuration as code (issue 12 §6): the policies, shared repositories
//! and host labels of a server as one TOML file, exported
//! (`restic-manager export`, `GET /api/v1/config/export`) and applied
//! (`restic-manager apply FILE [--dry-run]`,
//! `POST /api/v1/config/apply?dry_run=true|false`).
//!
//! An apply is all or nothing (one transaction) and idempotent: applying
//! the same file again, or an export to the server it came from, changes
//! nothing. Secrets are references (`password_env`, `password_file`,
//! `credential_env`, `credential_file`) read where the apply runs (the
//! CLI's machine, or the server's process for the API); an export never
//! writes one.
//!
//! # Layout
//!
//! - `file`: the format, [`parse`] with every error naming its line, the
//!   secret references resolved; `file::lines` finds those lines.
//! - `diff`: [`plan`], what an apply changes, on plain values.
//! - `apply`: [`apply`], the plan written in one transaction with the
//!   policy sync, or rolled back for a dry run.
//! - `export`: [`export`], the database as a file.
//! - `remote`: the CLI's `--server` mode, the same over the REST API.

mod apply;
mod diff;
mod export;
mod file;
pub mod remote;

pub use apply::{apply, load_current, Applied, ApplyError, ApplyOptions};
pub use diff::{plan, Action, Change, Kind, Plan, PlanError};
pub use export::{export, ExportError};
pub use file::{line_of, parse, Desired, FileError, Secret, MAX_FILE_BYTES};

/// Reads a variable of this process's environment (the `env` of
/// [`parse`] outside tests).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
