//! What the journal stores: a job's record ([`JobRecord`], its
//! [`JobState`]), an outbox entry, and what recovery after a crash found
//! ([`Recovery`]). Each file holds one of these as JSON, tagged with the
//! on-disk format version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::platform::ProcessIdentity;
use crate::protocol::{CommandRun, JobFinished, JobKind};

/// Version of the on-disk format of [`JobRecord`] and [`OutboxEntry`].
pub(super) const FORMAT: u32 = 1;

/// Where a journaled job stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Accepted (`command.result` sent or about to be), not started.
    Queued,
    /// Restic (or the pre hook) was started.
    Running {
        /// When it started.
        started_at: DateTime<Utc>,
        /// Restic's process once it runs (absent before, and where the
        /// platform cannot identify a process across restarts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restic: Option<ProcessIdentity>,
    },
    /// Ended; `finished` is what `job.finished` carries.
    Finished {
        /// The `job.finished` payload.
        finished: JobFinished,
        /// The id of the `job.finished` envelope in the outbox.
        envelope_id: String,
        /// Whether the server acknowledged it.
        acked: bool,
    },
}

/// One job as the agent remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// On-disk format version.
    pub format: u32,
    /// The `command.run` as received (it holds no secret).
    pub command: CommandRun,
    /// When the agent accepted it.
    pub accepted_at: DateTime<Utc>,
    /// Where it stands.
    #[serde(flatten)]
    pub state: JobState,
}

impl JobRecord {
    /// A freshly accepted job.
    pub fn queued(command: CommandRun, accepted_at: DateTime<Utc>) -> Self {
        Self {
            format: FORMAT,
            command,
            accepted_at,
            state: JobState::Queued,
        }
    }

    /// The job id.
    pub fn job_id(&self) -> &str {
        &self.command.job_id
    }

    /// The job's kind.
    pub fn kind(&self) -> JobKind {
        self.command.kind
    }

    /// The `job.finished` payload, if the job ended.
    pub fn finished(&self) -> Option<&JobFinished> {
        match &self.state {
            JobState::Finished { finished, .. } => Some(finished),
            _ => None,
        }
    }
}

/// One message waiting for the server's `ack`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct OutboxEntry {
    pub(super) format: u32,
    /// When it was queued (replay order).
    pub(super) created_at: DateTime<Utc>,
    /// The envelope as sent on the wire (`Envelope::encode`).
    pub(super) frame: String,
}

/// A job that was running when the previous agent process died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// The job.
    pub job_id: String,
    /// Its restic process, if it had started and could be recorded.
    pub restic: Option<ProcessIdentity>,
}

/// What [`Journal::recover`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Jobs accepted but not started, in acceptance order: to be run.
    pub queued: Vec<JobRecord>,
    /// Jobs that were running: now finished `failed`, their restic maybe
    /// still alive.
    pub interrupted: Vec<Interrupted>,
}
