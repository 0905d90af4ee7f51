//! The agent's durable memory: the job journal and the outbox, one JSON
//! file per entry under the state directory, each written crash-safely
//! (temp file, fsync, rename, fsync of the directory), so that `kill -9` at
//! any instant leaves either the old or the new version of every entry.
//!
//! ```text
//! <state_dir>/jobs/<sha256(job_id)>.json     JobRecord: the command, its state
//! <state_dir>/outbox/<sha256(id)>.json       OutboxEntry: one encoded envelope
//! ```
//!
//! - A job is written `Queued` **before** `command.result {accepted: true}`
//!   is sent, `Running` before restic starts, `Finished` (with its
//!   `job.finished` payload and the envelope id it is sent under) when it
//!   ends. A `command.run` for a journaled job is answered from the journal.
//! - The outbox holds `job.finished` and `snapshots.report` envelopes until
//!   the server's `ack` names their id. Entries are keyed by the envelope
//!   id (a UUID), never a counter, so a restart cannot overwrite one.
//! - [`Journal::recover`] runs at start-up: a job found `Running` is
//!   finished `failed` ("agent restarted during the job"); a finished,
//!   unacknowledged job whose outbox entry was lost to a crash between the
//!   two writes gets it back.
//! - A `Running` job also records its restic process once started
//!   ([`Journal::record_restic`]): after a crash the restarted agent stops
//!   that restic if it still runs, and `<state_dir>/unlock-needed` (written
//!   by [`Journal::recover`], removed once `restic unlock` succeeded) makes
//!   it clear the stale lock a killed restic leaves behind.
//!
//! File names are hashes, so ids from the server never reach a path. The
//! file operations are synchronous: each writes a few hundred bytes and
//! fsyncs once, well below what would stall the agent's event loop.
//!
//! The records are in [`record`], the file helpers in `files`.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::platform::{self, ProcessIdentity};
use crate::protocol::{AgentToServer, Envelope, FinishStatus, JobFinished, JobKind};

mod files;
pub mod record;

use files::{decode_envelope, decode_file, file_name, io_error, read_dir};
pub use record::{Interrupted, JobRecord, JobState, Recovery};
use record::{OutboxEntry, FORMAT};

/// The error of a job that was running when the agent stopped or died.
pub const RESTARTED_ERROR: &str = "agent restarted during the job";

/// `exit_code` reported for a job whose restic never ran or never ended
/// under the agent's watch.
pub const EXIT_CODE_NOT_RUN: i32 = -1;

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("journal encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The job journal and outbox of one state directory. Cloning gives a
/// second handle on the same files (the daemon and its running job).
#[derive(Debug, Clone)]
pub struct Journal {
    jobs_dir: PathBuf,
    outbox_dir: PathBuf,
    /// `<state_dir>/unlock-needed`: present while a stale-lock cleanup is due.
    unlock_marker: PathBuf,
}

impl Journal {
    /// Opens (creating) the journal under `state_dir` and sweeps temp files
    /// left by a crash mid-write.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let journal = Self {
            jobs_dir: state_dir.join("jobs"),
            outbox_dir: state_dir.join("outbox"),
            unlock_marker: state_dir.join("unlock-needed"),
        };
        for dir in [&journal.jobs_dir, &journal.outbox_dir] {
            std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
            for entry in read_dir(dir)? {
                let is_temp = entry
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with(platform::TEMP_PREFIX));
                if is_temp {
                    std::fs::remove_file(&entry).map_err(|source| io_error(&entry, source))?;
                }
            }
        }
        Ok(journal)
    }

    /// The record of `job_id`, if journaled.
    pub fn job(&self, job_id: &str) -> Result<Option<JobRecord>, JournalError> {
        let path = self.job_path(job_id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(decode_file(&path, &bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(io_error(&path, source)),
        }
    }

    /// Writes (creates or replaces) a job record durably.
    pub fn put_job(&self, record: &JobRecord) -> Result<(), JournalError> {
        let path = self.job_path(record.job_id());
        let bytes = serde_json::to_vec(record)?;
        platform::write_private_file_atomically(&path, &bytes)
            .map_err(|source| io_error(&path, source))
    }

    /// Every journaled job, oldest accepted first. Unreadable files are
    /// logged and skipped (never fatal: the agent must keep running).
    pub fn jobs(&self) -> Result<Vec<JobRecord>, JournalError> {
        let mut records: Vec<JobRecord> = read_dir(&self.jobs_dir)?
            .into_iter()
            .filter_map(|path| {
                let bytes = std::fs::read(&path)
                    .map_err(|err| tracing::warn!(path = %path.display(), "cannot read journal entry: {err}"))
                    .ok()?;
                decode_file(&path, &bytes)
            })
            .collect();
        records.sort_by(|a, b| (a.accepted_at, a.job_id()).cmp(&(b.accepted_at, b.job_id())));
        Ok(records)
    }

    /// Queues an envelope in the outbox (replacing one with the same id).
    pub fn outbox_put(
        &self,
        envelope: &Envelope<AgentToServer>,
        created_at: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let entry = OutboxEntry {
            format: FORMAT,
            created_at,
            frame: envelope.encode(),
        };
        let path = self.outbox_path(&envelope.id);
        let bytes = serde_json::to_vec(&entry)?;
        platform::write_private_file_atomically(&path, &bytes)
            .map_err(|source| io_error(&path, source))
    }

    /// Removes the outbox entry of envelope `id`; `Ok(None)` if there was
    /// none, else the envelope removed.
    pub fn outbox_remove(&self, id: &str) -> Result<Option<Envelope<AgentToServer>>, JournalError> {
        let path = self.outbox_path(id);
        let envelope = match std::fs::read(&path) {
            Ok(bytes) => decode_file::<OutboxEntry>(&path, &bytes)
                .and_then(|entry| decode_envelope(&path, &entry.frame)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error(&path, source)),
        };
        std::fs::remove_file(&path).map_err(|source| io_error(&path, source))?;
        platform::sync_dir(&self.outbox_dir)
            .map_err(|source| io_error(&self.outbox_dir, source))?;
        Ok(envelope)
    }

    /// Whether the outbox holds envelope `id`.
    pub fn outbox_contains(&self, id: &str) -> bool {
        self.outbox_path(id).exists()
    }

    /// Every outbox envelope, oldest first (the replay order).
    pub fn outbox(&self) -> Result<Vec<Envelope<AgentToServer>>, JournalError> {
        let mut entries: Vec<(DateTime<Utc>, Envelope<AgentToServer>)> =
            read_dir(&self.outbox_dir)?
                .into_iter()
                .filter_map(|path| {
                    let bytes = std::fs::read(&path)
                .map_err(
                    |err| tracing::warn!(path = %path.display(), "cannot read outbox entry: {err}"),
                )
                .ok()?;
                    let entry: OutboxEntry = decode_file(&path, &bytes)?;
                    let envelope = decode_envelope(&path, &entry.frame)?;
                    Some((entry.created_at, envelope))
                })
                .collect();
        entries.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(entries.into_iter().map(|(_, envelope)| envelope).collect())
    }

    /// Records that a job ended: the job record first (the source of
    /// truth), then its `job.finished` envelope in the outbox. A crash
    /// between the two is repaired by [`recover`](Self::recover).
    pub fn finish_job(
        &self,
        mut record: JobRecord,
        finished: JobFinished,
    ) -> Result<Envelope<AgentToServer>, JournalError> {
        let envelope = Envelope::new(AgentToServer::from(finished.clone()));
        record.state = JobState::Finished {
            finished,
            envelope_id: envelope.id.clone(),
            acked: false,
        };
        self.put_job(&record)?;
        self.outbox_put(&envelope, Utc::now())?;
        Ok(envelope)
    }

    /// Handles the server's `ack` of envelope `id`: drops it from the
    /// outbox and, for a `job.finished`, marks the job acknowledged.
    /// Returns the acknowledged message, if it was in the outbox.
    pub fn acknowledge(&self, id: &str) -> Result<Option<AgentToServer>, JournalError> {
        let Some(envelope) = self.outbox_remove(id)? else {
            return Ok(None);
        };
        if let AgentToServer::JobFinished(finished) = &envelope.message {
            if let Some(mut record) = self.job(&finished.job_id)? {
                if let JobState::Finished { acked, .. } = &mut record.state {
                    *acked = true;
                    self.put_job(&record)?;
                }
            }
        }
        Ok(Some(envelope.message))
    }

    /// Records the restic process of a running job, so that an agent
    /// restarted after a crash can find it. Does nothing for a job that is
    /// not `Running`.
    pub fn record_restic(
        &self,
        record: &mut JobRecord,
        process: ProcessIdentity,
    ) -> Result<(), JournalError> {
        let JobState::Running { restic, .. } = &mut record.state else {
            return Ok(());
        };
        *restic = Some(process);
        self.put_job(record)
    }

    /// Start-up repair. Jobs found running are finished `failed` with
    /// [`RESTARTED_ERROR`] and listed as interrupted (after the durable
    /// unlock-needed mark is set: their restic may have left a lock);
    /// finished, unacknowledged jobs whose envelope is missing from the
    /// outbox get it back.
    pub fn recover(&self, now: DateTime<Utc>) -> Result<Recovery, JournalError> {
        let mut recovery = Recovery::default();
        for record in self.jobs()? {
            match &record.state {
                JobState::Queued => recovery.queued.push(record),
                JobState::Running { restic, .. } => {
                    tracing::warn!(job_id = %record.job_id(), "job was running when the agent stopped; reporting it failed");
                    self.set_unlock_needed(true)?;
                    recovery.interrupted.push(Interrupted {
                        job_id: record.job_id().to_owned(),
                        restic: *restic,
                    });
                    let finished = JobFinished {
                        job_id: record.job_id().to_owned(),
                        status: FinishStatus::Failed,
                        exit_code: EXIT_CODE_NOT_RUN,
                        finished_at: now,
                        stats: None,
                        error: Some(RESTARTED_ERROR.to_owned()),
                    };
                    self.finish_job(record, finished)?;
                }
                JobState::Finished {
                    finished,
                    envelope_id,
                    acked: false,
                } if !self.outbox_contains(envelope_id) => {
                    let envelope = Envelope::with_id(
                        envelope_id.clone(),
                        AgentToServer::from(finished.clone()),
                    );
                    self.outbox_put(&envelope, finished.finished_at)?;
                }
                JobState::Finished { .. } => {}
            }
        }
        Ok(recovery)
    }

    /// Whether a stale-lock cleanup (`restic unlock`) is due because a
    /// job's restic may have been killed holding its lock.
    pub fn unlock_needed(&self) -> bool {
        self.unlock_marker.exists()
    }

    /// Sets or clears the durable unlock-needed mark.
    pub fn set_unlock_needed(&self, needed: bool) -> Result<(), JournalError> {
        let path = &self.unlock_marker;
        if needed {
            platform::write_private_file_atomically(path, b"restic unlock is due\n")
                .map_err(|source| io_error(path, source))
        } else {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(source) => return Err(io_error(path, source)),
            }
            let dir = path.parent().unwrap_or(Path::new("."));
            platform::sync_dir(dir).map_err(|source| io_error(dir, source))
        }
    }

    /// Deletes acknowledged finished jobs that ended before `before`.
    /// Returns how many were removed.
    pub fn prune(&self, before: DateTime<Utc>) -> Result<usize, JournalError> {
        let mut removed = 0;
        for record in self.jobs()? {
            if let JobState::Finished {
                finished,
                acked: true,
                ..
            } = &record.state
            {
                if finished.finished_at < before {
                    let path = self.job_path(record.job_id());
                    std::fs::remove_file(&path).map_err(|source| io_error(&path, source))?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            platform::sync_dir(&self.jobs_dir)
                .map_err(|source| io_error(&self.jobs_dir, source))?;
        }
        Ok(removed)
    }

    /// The most recent finished `check` job: when it ended and how.
    pub fn last_check(&self) -> Result<Option<(DateTime<Utc>, FinishStatus)>, JournalError> {
        Ok(self
            .jobs()?
            .iter()
            .filter(|record| record.kind() == JobKind::Check)
            .filter_map(JobRecord::finished)
            .map(|finished| (finished.finished_at, finished.status))
            .max_by_key(|(at, _)| *at))
    }

    fn job_path(&self, job_id: &str) -> PathBuf {
        self.jobs_dir.join(file_name(job_id))
    }

    fn outbox_path(&self, id: &str) -> PathBuf {
        self.outbox_dir.join(file_name(id))
    }
}

#[cfg(test)]
mod tests;
