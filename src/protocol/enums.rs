//! The closed sets of strings on the wire (job kind, schedule kind, job
//! status, finish status, log stream, lock state), each spelled once by `wire_enum!`.
//!
//! Job kind, job status and log stream are also what the store keeps in its
//! TEXT columns: `store::types` gives these same enums their diesel
//! conversions, so this module stays serde-only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::decode::clip;

/// A value that is not one of an enum's wire spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownVariant {
    /// What was being parsed ("job kind").
    pub what: &'static str,
    /// The rejected text (clipped).
    pub value: String,
}

/// Defines a string enum with its wire spellings, `as_str`, `Display` and
/// `FromStr`, so the spelling is written once.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $wire => Ok(Self::$variant), )+
                    other => Err(UnknownVariant { what: $what, value: clip(other) }),
                }
            }
        }
    };
}

wire_enum! {
    /// The operation a job runs (`command.run.kind`, `job.started.kind`).
    pub enum JobKind ("job kind") {
        /// `restic backup` of one source group.
        Backup = "backup",
        /// `restic init` of the host's repository.
        Init = "init",
        /// `restic forget` with a retention policy.
        Forget = "forget",
        /// `restic prune`.
        Prune = "prune",
        /// `restic check`.
        Check = "check",
        /// `restic unlock`.
        Unlock = "unlock",
        /// `restic restore` of a snapshot (or some of its paths) into a
        /// target folder.
        Restore = "restore",
        /// `restic ls --json` of one snapshot, streamed into the server's
        /// catalog so browsing never touches the repository.
        Catalog = "catalog",
        /// `restic restore --verify` of a sample of one snapshot into a
        /// private temporary folder, each file's size compared with the
        /// catalog's (a restore drill).
        Drill = "drill",
    }
}

wire_enum! {
    /// What a schedule's fire creates (`schedule.set.schedules[].kind`,
    /// `schedule.fire.kind`): absent on the wire means `backup`, the only
    /// kind before schedules had one.
    #[derive(Default)]
    pub enum ScheduleKind ("schedule kind") {
        /// One backup per source group of the schedule.
        #[default]
        Backup = "backup",
        /// One `forget` per source group with a retention policy (every
        /// such group of the host when the schedule names none).
        Forget = "forget",
        /// One `prune` of the host's repository.
        Prune = "prune",
        /// One `check` of the host's repository, reading its next
        /// `--read-data-subset` in rotation.
        Check = "check",
        /// One restore drill, sampled like a run-now drill.
        Drill = "drill",
    }
}

impl ScheduleKind {
    /// The job kind a fire of this schedule creates.
    pub fn job_kind(self) -> JobKind {
        match self {
            Self::Backup => JobKind::Backup,
            Self::Forget => JobKind::Forget,
            Self::Prune => JobKind::Prune,
            Self::Check => JobKind::Check,
            Self::Drill => JobKind::Drill,
        }
    }

    /// Whether this is the default kind (`backup`).
    pub fn is_backup(&self) -> bool {
        *self == Self::Backup
    }
}

wire_enum! {
    /// What a restore does with a file that exists in the target already
    /// (restic's `--overwrite`, 0.17 and later; older restic always
    /// overwrites).
    #[derive(Default)]
    pub enum RestoreOverwrite ("overwrite mode") {
        /// Always write the snapshot's file (restic's default).
        #[default]
        Always = "always",
        /// Write it when its content differs.
        IfChanged = "if-changed",
        /// Write it when the snapshot's copy is newer.
        IfNewer = "if-newer",
        /// Never overwrite an existing file.
        Never = "never",
    }
}

wire_enum! {
    /// The lifecycle state of a job (server side; the agent reports the
    /// terminal ones with [`FinishStatus`]).
    pub enum JobStatus ("job status") {
        /// Created, not yet started by the agent (it may be dispatched and
        /// accepted already: see the job's `dispatched_at` / `accepted_at`).
        Queued = "queued",
        /// `job.started` received.
        Running = "running",
        /// Finished well (restic exit 0, or 3 with a warning in `error`).
        Succeeded = "succeeded",
        /// Finished badly, refused, or lost by the agent.
        Failed = "failed",
        /// Stopped on request (queued or running).
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// The statuses a job never leaves.
    pub const TERMINAL: &'static [Self] = &[Self::Succeeded, Self::Failed, Self::Cancelled];
    /// The statuses a job can still leave.
    pub const ACTIVE: &'static [Self] = &[Self::Queued, Self::Running];

    /// Whether no further transition can happen (succeeded, failed,
    /// cancelled).
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
}

wire_enum! {
    /// The outcome in `job.finished.status`.
    pub enum FinishStatus ("finish status") {
        /// Restic exit 0, or 3 ("some source files could not be read") with
        /// the warning in `error`.
        Succeeded = "succeeded",
        /// Any other outcome.
        Failed = "failed",
        /// Stopped after `command.cancel`.
        Cancelled = "cancelled",
    }
}

impl From<FinishStatus> for JobStatus {
    fn from(status: FinishStatus) -> Self {
        match status {
            FinishStatus::Succeeded => Self::Succeeded,
            FinishStatus::Failed => Self::Failed,
            FinishStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl TryFrom<JobStatus> for FinishStatus {
    type Error = UnknownVariant;

    fn try_from(status: JobStatus) -> Result<Self, Self::Error> {
        status.as_str().parse()
    }
}

wire_enum! {
    /// Which channel a `log.stream` line came from.
    pub enum LogStreamKind ("log stream") {
        /// A line restic wrote to stdout.
        Stdout = "stdout",
        /// A line restic wrote to stderr.
        Stderr = "stderr",
        /// A parsed restic `--json` event or an agent event.
        Event = "event",
    }
}

wire_enum! {
    /// Whether the repository held a lock when `repo.stats` was taken.
    pub enum LockState ("lock state") {
        /// At least one lock file exists.
        Locked = "locked",
        /// No lock.
        Unlocked = "unlocked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Enum wire spellings are pinned and `FromStr` inverts `as_str`.
    #[test]
    fn enum_spellings_are_pinned_and_parse_back() {
        let kinds: Vec<_> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "backup", "init", "forget", "prune", "check", "unlock", "restore", "catalog",
                "drill"
            ]
        );
        let statuses: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            statuses,
            ["queued", "running", "succeeded", "failed", "cancelled"]
        );
        let finish: Vec<_> = FinishStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(finish, ["succeeded", "failed", "cancelled"]);
        let streams: Vec<_> = LogStreamKind::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(streams, ["stdout", "stderr", "event"]);
        let locks: Vec<_> = LockState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(locks, ["locked", "unlocked"]);

        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
        }
        for stream in LogStreamKind::ALL {
            assert_eq!(stream.as_str().parse::<LogStreamKind>(), Ok(*stream));
        }
        for lock in LockState::ALL {
            assert_eq!(lock.as_str().parse::<LockState>(), Ok(*lock));
        }
        assert_eq!(
            "Backup".parse::<JobKind>(),
            Err(UnknownVariant {
                what: "job kind",
                value: "Backup".to_owned()
            })
        );
        assert!("done".parse::<JobStatus>().is_err());
    }

    /// Schedule kinds are pinned, default to backup, and map onto the job
    /// kind of the same name.
    #[test]
    fn schedule_kinds() {
        let kinds: Vec<_> = ScheduleKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, ["backup", "forget", "prune", "check", "drill"]);
        assert_eq!(ScheduleKind::default(), ScheduleKind::Backup);
        for kind in ScheduleKind::ALL {
            assert_eq!(kind.as_str().parse::<ScheduleKind>(), Ok(*kind));
            assert_eq!(kind.job_kind().as_str(), kind.as_str());
        }
        let err = "restore".parse::<ScheduleKind>().unwrap_err();
        assert_eq!(err.what, "schedule kind");
    }

    /// Only succeeded, failed and cancelled are terminal; finish statuses map
    /// onto them and back.
    #[test]
    fn job_status_terminality_and_finish_mapping() {
        assert!(!JobStatus::Queued.is_terminal());
        assert!(!JobStatus::Running.is_terminal());
        assert!(JobStatus::Succeeded.is_terminal());
        assert!(JobStatus::Failed.is_terminal());
        assert!(JobStatus::Cancelled.is_terminal());
        for finish in FinishStatus::ALL {
            let status = JobStatus::from(*finish);
            assert!(status.is_terminal());
            assert_eq!(status.as_str(), finish.as_str());
            assert_eq!(FinishStatus::try_from(status), Ok(*finish));
        }
        assert!(FinishStatus::try_from(JobStatus::Running).is_err());
    }
}
