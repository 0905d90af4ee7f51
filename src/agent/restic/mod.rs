//! Everything the agent knows about the `restic` command line, without
//! running it: the repository settings pushed by `config.update`, the
//! argument lists of the six job kinds and of the report commands, the
//! environment that carries credentials (never argv), the parsers of restic
//! 0.14–0.18 output, and the exit-code mapping.
//!
//! Running processes is [`runner`](super::runner)'s job; this module is pure
//! and tested against the outputs recorded in `shared/restic-json-samples.txt`.
//! Callers name everything as `restic::…`.
//!
//! # Layout
//!
//! - `settings`: the repository settings of `config.update` ([`RepoSettings`]).
//! - `version`: `restic version` parsed ([`ResticVersion`]).
//! - `command`: argument lists of the job kinds and reports ([`ResticHost`]).
//! - `invocation`: one run as a value and its repository environment
//!   ([`Invocation`]).
//! - `output`: `--json` lines by message type ([`OutputLine`]), the run's
//!   [`OutputDigest`], exit codes.
//! - `reports`: snapshot list, stats and lock list parsers.
//! - `restore`: restore's arguments, 0.14's header line, restore stats.

mod command;
mod invocation;
mod output;
mod reports;
mod restore;
mod settings;
mod version;

pub use command::{is_file_safe_id, BuildError, ResticHost};
pub use invocation::{Invocation, PROGRESS_FPS};
pub use output::{finish_status, parse_line, BackupStatus, OutputDigest, OutputLine, EXIT_PARTIAL};
pub use reports::{
    dedup_ratio, lock_state, parse_snapshots, parse_stats, ParseError, RepoStatsOutput,
};
pub use restore::{header_paths, restore_stats, Counted, RestoreError, OVERWRITE_SINCE};
pub use settings::RepoSettings;
pub use version::{parse_version, ResticVersion};
