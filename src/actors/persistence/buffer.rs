//! The writer's high-rate buffers: log lines (and the backlog counter the
//! sessions pause on), the latest progress per job, heartbeats' last-seen
//! times and schedule pushes and acks. Messages here are `do_send`; what
//! they carry is written as one transaction per buffer on the next
//! [`Flush`] tick (or at once past [`FLUSH_MAX_ROWS`] lines), and before
//! every low-rate write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use actix::prelude::*;

use super::{PersistError, Persistence, FLUSH_MAX_ROWS, MAX_FLUSH_ATTEMPTS};
use crate::ids::HostId;
use crate::protocol;
use crate::store::channel::{self, HostLogLine};
use crate::store::models::NewJobLog;
use crate::store::version_marks::{self, Mark, MarkKind};
use crate::store::{self, hosts};

/// Log lines sent to the writer and not yet written or dropped, shared by
/// the sessions and the writer: a session counts lines in ([`add`]) before
/// sending [`AppendLogs`], the writer counts them out as it writes or
/// drops them, and a session pauses reading its socket while the count is
/// high, resuming when [`wait_down_to`] returns (back-pressure).
///
/// [`add`]: LogBacklog::add
/// [`wait_down_to`]: LogBacklog::wait_down_to
#[derive(Debug, Default)]
pub struct LogBacklog {
    lines: AtomicUsize,
    /// Woken each time the writer counts lines out.
    drained: tokio::sync::Notify,
}

impl LogBacklog {
    /// Lines waiting now.
    pub fn len(&self) -> usize {
        self.lines.load(Ordering::Relaxed)
    }

    /// True when no line waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `lines` more are on their way to the writer.
    pub fn add(&self, lines: usize) {
        self.lines.fetch_add(lines, Ordering::Relaxed);
    }

    /// `lines` left the backlog (written, or dropped); wakes the waiters.
    pub(super) fn done(&self, lines: usize) {
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .lines
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(lines))
            });
        self.drained.notify_waiters();
    }

    /// Returns once at most `low` lines wait: woken by the writer, never
    /// polling.
    pub async fn wait_down_to(&self, low: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a wake-up between the two
            // is not lost.
            drained.as_mut().enable();
            if self.len() <= low {
                return;
            }
            drained.await;
        }
    }
}

impl Persistence {
    /// Lines left the backlog (written, or dropped).
    pub(super) fn backlog_done(&self, lines: usize) {
        self.log_backlog.done(lines);
    }

    /// Buffers one line (seq checked); returns false if it was dropped.
    fn buffer_line(&mut self, host_id: String, line: protocol::LogStream) -> bool {
        let Ok(seq) = i64::try_from(line.seq) else {
            tracing::warn!(host_id = %host_id, job_id = %line.job_id, "log seq out of range; dropped");
            return false;
        };
        if self.logs.is_empty() {
            self.batch_started = Some(Instant::now());
        }
        self.logs.push(HostLogLine {
            host_id,
            line: NewJobLog {
                job_id: line.job_id.into(),
                seq,
                ts: line.ts.timestamp_millis(),
                stream: line.stream,
                payload: line.payload,
            },
        });
        true
    }

    pub(super) fn flush_logs(&mut self) {
        if self.logs.is_empty() {
            return;
        }
        let result = self
            .db
            .run(|c| Ok::<_, PersistError>(channel::insert_logs_for_hosts(c, &self.logs)?));
        match result {
            Ok(outcome) => {
                if outcome.unknown_job > 0 {
                    tracing::warn!(
                        lines = outcome.unknown_job,
                        "dropped log lines of unknown jobs or of another host's jobs"
                    );
                }
                tracing::trace!(
                    inserted = outcome.inserted,
                    duplicates = outcome.duplicates,
                    "log lines written"
                );
                let lag = self.batch_started.take().map(|t| t.elapsed());
                self.metrics
                    .batch_written(self.logs.len(), lag.unwrap_or_default());
                self.backlog_done(self.logs.len());
                self.logs.clear();
                self.failed_attempts = 0;
            }
            Err(e) => {
                self.failed_attempts += 1;
                let jobs: Vec<&str> = self
                    .logs
                    .iter()
                    .map(|l| l.line.job_id.as_str())
                    .take(5)
                    .collect();
                if self.failed_attempts >= MAX_FLUSH_ATTEMPTS {
                    tracing::error!(error = %e, lines = self.logs.len(), ?jobs, "dropping log lines after repeated write failures");
                    self.backlog_done(self.logs.len());
                    self.logs.clear();
                    self.batch_started = None;
                    self.failed_attempts = 0;
                } else {
                    tracing::warn!(error = %e, lines = self.logs.len(), ?jobs, "writing log lines failed; will retry");
                }
            }
        }
    }

    pub(super) fn flush_progress(&mut self) {
        if self.progress.is_empty() {
            return;
        }
        let updates: Vec<(String, protocol::JobProgress)> =
            self.progress.drain().map(|(_, update)| update).collect();
        let result = self
            .db
            .run(|c| Ok::<_, PersistError>(channel::update_progress_batch(c, &updates)?));
        if let Err(e) = result {
            // Progress is a live view; the next report replaces it anyway.
            tracing::warn!(error = %e, jobs = updates.len(), "writing job progress failed");
        }
    }

    pub(super) fn flush_schedule_marks(&mut self) {
        if self.schedule_marks.is_empty() {
            return;
        }
        let marks = std::mem::take(&mut self.schedule_marks);
        let result = self.db.run(|c| {
            Ok::<_, PersistError>(store::write_transaction(c, |c| {
                version_marks::apply(c, &marks)
            })?)
        });
        if let Err(e) = result {
            // Bookkeeping only: a host whose ack is not recorded is sent
            // its schedules again at its next hello.
            tracing::warn!(error = %e, marks = marks.len(), "writing schedule pushes and acks failed");
        }
    }

    pub(super) fn flush_touched(&mut self) {
        let Some(now) = self.touched.values().copied().max() else {
            return;
        };
        let ids: Vec<String> = self.touched.drain().map(|(id, _)| id).collect();
        self.last_touch_write = Instant::now();
        let result = self
            .db
            .run(|c| Ok::<_, PersistError>(hosts::touch_last_seen(c, &ids, now)?));
        if let Err(e) = result {
            tracing::warn!(error = %e, hosts = ids.len(), "writing last-seen times failed");
        }
    }
}

/// Write what is buffered (sent every [`FLUSH_INTERVAL`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for Persistence {
    type Result = ();

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) {
        self.flush();
        self.checkpoint_tail_if_wanted();
    }
}

/// Write everything buffered now, including last-seen times, and reply
/// when it is durable (tests, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushAll;

impl Handler<FlushAll> for Persistence {
    type Result = ();

    fn handle(&mut self, _msg: FlushAll, _ctx: &mut Self::Context) {
        self.flush_hellos();
        self.flush_logs();
        self.flush_catalog();
        self.flush_progress();
        self.flush_schedule_marks();
        self.flush_health(true);
        self.flush_touched();
    }
}

/// `log.stream` lines a session collected (buffered). One message per
/// batch rather than per line: each message crosses two threads (the
/// `SyncArbiter`'s forwarder, then this one). The sender has already
/// counted `lines.len()` into the backlog.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendLogs {
    pub host_id: HostId,
    pub lines: Vec<protocol::LogStream>,
}

impl Handler<AppendLogs> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: AppendLogs, _ctx: &mut Self::Context) {
        let AppendLogs { host_id, lines } = msg;
        let mut dropped = 0;
        for line in lines {
            if !self.buffer_line(host_id.as_str().to_owned(), line) {
                dropped += 1;
            }
        }
        self.backlog_done(dropped);
        if self.logs.len() >= FLUSH_MAX_ROWS {
            self.flush_logs();
        }
    }
}

/// `job.progress` from a host's session (coalesced per job).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordProgress {
    pub host_id: HostId,
    pub payload: protocol::JobProgress,
}

impl Handler<RecordProgress> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordProgress, _ctx: &mut Self::Context) {
        self.progress.insert(
            msg.payload.job_id.clone(),
            (msg.host_id.into_string(), msg.payload),
        );
    }
}

/// A frame arrived from the host: its last-seen time is `now` (coalesced).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Touch {
    pub host_id: HostId,
    pub now: i64,
}

impl Handler<Touch> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: Touch, _ctx: &mut Self::Context) {
        let seen = self
            .touched
            .entry(msg.host_id.into_string())
            .or_insert(msg.now);
        *seen = (*seen).max(msg.now);
    }
}
/// `schedule.set` with `version` went out to the host (buffered; written
/// with the next flush, before any later low-rate write).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkSchedulePushed {
    pub host_id: HostId,
    pub version: i64,
    pub now: i64,
}

impl Handler<MarkSchedulePushed> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: MarkSchedulePushed, _ctx: &mut Self::Context) {
        self.schedule_marks.push(Mark {
            kind: MarkKind::Pushed,
            host_id: msg.host_id.into_string(),
            version: msg.version,
            now: msg.now,
        });
    }
}

/// `schedule.ack`: the host applied `version` (buffered like
/// [`MarkSchedulePushed`]). Recorded only if it is still the host's
/// current version when written; the buffer keeps arrival order and is
/// written before any later version bump.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordScheduleAck {
    pub host_id: HostId,
    pub version: i64,
    pub now: i64,
}

impl Handler<RecordScheduleAck> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordScheduleAck, _ctx: &mut Self::Context) {
        self.schedule_marks.push(Mark {
            kind: MarkKind::Acked,
            host_id: msg.host_id.into_string(),
            version: msg.version,
            now: msg.now,
        });
    }
}

/// The agent's `ack` of the `config.update` of `version` (buffered like
/// [`RecordScheduleAck`]). Raises `hosts.acked_config_version`, never
/// past the current version (`store::config_versions::ack`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordConfigAck {
    pub host_id: HostId,
    pub version: i64,
    pub now: i64,
}

impl Handler<RecordConfigAck> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordConfigAck, _ctx: &mut Self::Context) {
        self.schedule_marks.push(Mark {
            kind: MarkKind::ConfigAcked,
            host_id: msg.host_id.into_string(),
            version: msg.version,
            now: msg.now,
        });
    }
}
