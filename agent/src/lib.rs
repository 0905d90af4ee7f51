//! The `restic-manager-agent` package's library: the agent daemon and the
//! few modules it shares with the server, compiled from the server
//! package's own files (`../src/…`) so that there is one copy of each, but
//! linked against the agent's crates only: no database, HTTP server or UI
//! code, so the binary links on Windows without libpq and stays small.
//!
//! The module paths are the server library's (`crate::agent`,
//! `crate::protocol`, `crate::cron`, `crate::redact`, `crate::repo_url`), so the shared files
//! compile unchanged in both crates. A file under `src/agent/` or
//! `src/protocol/` that reaches for a server-only module (`crate::store`,
//! `crate::ids`, …) fails this package's build: that is the check that
//! keeps server code out of the agent.

#[path = "../../src/agent/mod.rs"]
pub mod agent;
#[path = "../../src/cli.rs"]
mod cli;
#[path = "../../src/cron.rs"]
pub mod cron;
#[path = "../../src/protocol/mod.rs"]
pub mod protocol;
#[path = "../../src/redact.rs"]
pub mod redact;
#[path = "../../src/repo_url.rs"]
pub mod repo_url;

pub use cli::{
    init_tracing, init_tracing_with_default, parse_cli, version_line, GIT_COMMIT, VERSION,
};
