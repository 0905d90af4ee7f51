//! Everything that differs between Unix and Windows, and the only place with
//! `cfg(unix)` / `cfg(windows)` code in the agent. Callers name everything
//! as `platform::…`; the files below are how it is kept apart.
//!
//! # Layout
//!
//! - `host`: default paths, OS and architecture names, host name, boot
//!   time, the hook shell.
//! - `metrics`: host metrics for `heartbeat.metrics`.
//! - `signals`: signals to restic, finding and stopping a restic left
//!   running by a crashed agent ([`ProcessIdentity`], [`stop_orphan`]),
//!   exit codes, the agent's shutdown signal.
//! - `files`: durable private file writes, the state-directory lock, and
//!   on Windows the ACL that stands in for mode 0600 (`protect_agent_files`).
//! - `log_file`: the size-bounded service log ([`RotatingLogFile`]).
//! - `service` (Windows only): the native service (SCM entry point,
//!   install, uninstall).

mod files;
mod host;
mod log_file;
mod metrics;
mod signals;

#[cfg(windows)]
pub mod service;

#[cfg(windows)]
pub use files::protect_agent_files;
pub use files::{sync_dir, write_private_file_atomically, StateLock, TEMP_PREFIX};
pub use host::{
    arch_name, boot_time, default_config_path, default_hook_shell, default_state_dir, hostname,
    os_name,
};
#[cfg(windows)]
pub use host::{default_agent_dir, default_service_log_path};
pub use log_file::{RotatingLogFile, RotatingLogWriter, SERVICE_LOG_MAX_BYTES};
pub use metrics::metrics;
pub use signals::{
    exit_code, interrupt, kill_group, own_process_group, process_identity, process_state,
    shutdown_signal, stop_orphan, OrphanOutcome, ProcessIdentity, ProcessState,
};
