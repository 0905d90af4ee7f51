//! What a simulated agent does with the jobs it is sent: accept a
//! `command.run` (again, without running it twice, if it knows the job),
//! then finish at once, hold for a while, or stream log lines paced or as
//! fast as the socket takes them ([`JobBehaviour`](super::JobBehaviour));
//! each result goes to the outbox until the server acks it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use restic_manager::protocol::{self, AgentToServer, Envelope, LogStreamKind};

use super::{Agent, JobBehaviour, Ws};

/// Log lines written to the socket before each flush.
const STREAM_CHUNK: u64 = 32;
/// Finished job ids remembered for de-duplicating a repeated `command.run`.
const REMEMBERED_JOBS: usize = 16;

/// A job the agent has accepted and not finished.
pub(super) struct RunningJob {
    pub(super) id: String,
    /// When the agent took it.
    pub(super) started: Instant,
    /// Hold: when it ends.
    pub(super) ends_at: Option<Instant>,
    /// Stream: next line number; catalog: next chunk number.
    pub(super) next_seq: u64,
    /// Catalog: the snapshot listed.
    pub(super) snapshot_id: Option<String>,
    /// Catalog: entries sent so far (`job.finished`'s `stats.entries`).
    pub(super) entries_sent: u64,
}

impl Agent {
    pub(super) async fn on_run(
        &mut self,
        run: protocol::CommandRun,
        ws: &mut Ws,
    ) -> anyhow::Result<()> {
        self.shared.runs_received.fetch_add(1, Ordering::Relaxed);
        if self.shared.record_runs.load(Ordering::Relaxed) {
            let at = Instant::now();
            match self.shared.runs.lock() {
                Ok(mut runs) => runs.push((run.job_id.clone(), at)),
                Err(poisoned) => poisoned.into_inner().push((run.job_id.clone(), at)),
            }
        }
        let known = self.jobs.iter().any(|j| j.id == run.job_id)
            || self.done.contains(&run.job_id)
            || self.outbox_has(&run.job_id);
        Self::send(
            ws,
            protocol::CommandResult {
                job_id: run.job_id.clone(),
                accepted: true,
                error: None,
            },
        )
        .await?;
        if known {
            return Ok(());
        }
        Self::send(
            ws,
            protocol::JobStarted {
                job_id: run.job_id.clone(),
                kind: run.kind,
                started_at: Utc::now(),
            },
        )
        .await?;
        let catalog = run.kind == protocol::JobKind::Catalog;
        let mut job = RunningJob {
            id: run.job_id,
            started: Instant::now(),
            ends_at: None,
            next_seq: 1,
            snapshot_id: run.snapshot_id.filter(|_| catalog),
            entries_sent: 0,
        };
        match self.config.jobs {
            JobBehaviour::Catalog { .. } if job.snapshot_id.is_some() => self.jobs.push(job),
            JobBehaviour::Catalog { .. } => {
                self.finish(job, protocol::FinishStatus::Succeeded, Some(ws))
                    .await?
            }
            JobBehaviour::Instant => {
                self.finish(job, protocol::FinishStatus::Succeeded, Some(ws))
                    .await?
            }
            JobBehaviour::Hold(d) => {
                job.ends_at = Some(Instant::now() + d);
                self.jobs.push(job);
            }
            JobBehaviour::Stream { .. } => {
                if let Ok(mut current) = self.slot().stream_job.lock() {
                    *current = Some(job.id.clone());
                }
                self.slot().stream_seq.store(0, Ordering::Relaxed);
                self.jobs.push(job);
            }
        }
        Ok(())
    }

    fn outbox_has(&self, job_id: &str) -> bool {
        // Frames are small JSON; the job id appears once in each.
        self.outbox.iter().any(|(_, frame)| frame.contains(job_id))
    }

    /// When the streaming job's next line is due (now, unpaced).
    pub(super) fn next_line_due(&self) -> Option<Instant> {
        let per_second = match self.config.jobs {
            JobBehaviour::Stream { per_second, .. } => per_second,
            JobBehaviour::Catalog { .. } => None,
            _ => return None,
        };
        let job = self.jobs.iter().find(|j| j.ends_at.is_none())?;
        Some(match per_second {
            Some(rate) => job.started + Duration::from_secs_f64((job.next_seq - 1) as f64 / rate),
            None => Instant::now(),
        })
    }

    /// Sends the streaming job's due lines (at most a chunk); finishes it
    /// after its last line.
    pub(super) async fn stream_chunk(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        let (lines, line_bytes, per_second) = match self.config.jobs {
            JobBehaviour::Stream {
                lines,
                line_bytes,
                per_second,
            } => (lines, line_bytes, per_second),
            JobBehaviour::Catalog { entries } => return self.catalog_chunk(ws, entries).await,
            _ => return Ok(()),
        };
        let Some(at) = self.jobs.iter().position(|j| j.ends_at.is_none()) else {
            return Ok(());
        };
        let first = self.jobs[at].next_seq;
        let due = match per_second {
            // Lines due by now (at least the one that woke us).
            Some(rate) => {
                let elapsed = self.jobs[at].started.elapsed().as_secs_f64();
                ((elapsed * rate) as u64 + 1).max(first)
            }
            None => u64::MAX,
        };
        let last = (first + STREAM_CHUNK - 1).min(lines).min(due);
        for seq in first..=last {
            let line = protocol::LogStream {
                job_id: self.jobs[at].id.clone(),
                seq,
                ts: Utc::now(),
                stream: LogStreamKind::Stdout,
                payload: log_payload(seq, lines, line_bytes),
            };
            let text = Envelope::new(AgentToServer::LogStream(line)).encode();
            ws.feed(Message::text(text)).await.context("feed")?;
        }
        ws.flush().await.context("flush")?;
        let sent = last + 1 - first;
        self.jobs[at].next_seq = last + 1;
        self.slot().stream_seq.store(last, Ordering::Relaxed);
        self.shared.lines_sent.fetch_add(sent, Ordering::Relaxed);
        let now = self.shared.now_us().max(1);
        // Err: an earlier flush set it first, which is what we want.
        let _ = self.shared.first_line_us.compare_exchange(
            0,
            now,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.shared.last_line_us.fetch_max(now, Ordering::Relaxed);
        if last >= lines {
            let job = self.jobs.swap_remove(at);
            self.finish(job, protocol::FinishStatus::Succeeded, Some(ws))
                .await?;
        }
        Ok(())
    }

    pub(super) async fn finish_due_jobs(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        let now = Instant::now();
        while let Some(at) = self
            .jobs
            .iter()
            .position(|j| j.ends_at.is_some_and(|t| t <= now))
        {
            let job = self.jobs.swap_remove(at);
            self.finish(job, protocol::FinishStatus::Succeeded, Some(ws))
                .await?;
        }
        Ok(())
    }

    /// Held jobs that ended while there was no connection: their results
    /// go to the outbox (sent after the next greeting).
    pub(super) fn finish_due_jobs_offline(&mut self) {
        let now = Instant::now();
        while let Some(at) = self
            .jobs
            .iter()
            .position(|j| j.ends_at.is_some_and(|t| t <= now))
        {
            let job = self.jobs.swap_remove(at);
            self.record_result(&job, protocol::FinishStatus::Succeeded);
            self.shared.results_offline.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Puts the job's `job.finished` in the outbox; returns the frame.
    fn record_result(&mut self, job: &RunningJob, status: protocol::FinishStatus) -> String {
        let finished = protocol::JobFinished {
            job_id: job.id.clone(),
            status,
            exit_code: 0,
            finished_at: Utc::now(),
            // What the server checks before it completes a catalog.
            stats: job.snapshot_id.as_ref().and_then(|_| {
                serde_json::json!({ "entries": job.entries_sent })
                    .as_object()
                    .cloned()
            }),
            error: None,
        };
        let envelope = Envelope::new(AgentToServer::JobFinished(finished));
        let frame = envelope.encode();
        self.outbox.push((envelope.id, frame.clone()));
        self.slot().outbox.fetch_add(1, Ordering::Relaxed);
        self.shared.results_created.fetch_add(1, Ordering::Relaxed);
        if self.done.len() >= REMEMBERED_JOBS {
            self.done.pop_front();
        }
        self.done.push_back(job.id.clone());
        frame
    }

    pub(super) async fn finish(
        &mut self,
        job: RunningJob,
        status: protocol::FinishStatus,
        ws: Option<&mut Ws>,
    ) -> anyhow::Result<()> {
        let frame = self.record_result(&job, status);
        if let Some(ws) = ws {
            ws.send(Message::text(frame)).await.context("send")?;
        }
        Ok(())
    }
}

/// A log line of about `bytes` bytes shaped like restic's `--json` status
/// output (what a backup streams most).
pub fn log_payload(seq: u64, total: u64, bytes: usize) -> String {
    let percent = seq as f64 / total.max(1) as f64;
    let mut line = format!(
        "{{\"message_type\":\"status\",\"seconds_elapsed\":{},\"percent_done\":{percent:.4},\"total_files\":{total},\"files_done\":{seq},\"total_bytes\":{},\"bytes_done\":{},\"current_files\":[\"/home/user/",
        seq / 10,
        total * 4096,
        seq * 4096
    );
    let tail = "\"]}";
    while line.len() + tail.len() < bytes {
        line.push('x');
    }
    line.push_str(tail);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log payloads have the requested size and stay valid JSON.
    #[test]
    fn log_payload_has_the_requested_size() {
        let line = log_payload(5, 100, 200);
        assert_eq!(line.len(), 200);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["files_done"], 5);
    }
}
