//! The daemon while the server is away (issue 14 §6): log lines that
//! cannot be sent go to the [`LogSpool`](crate::agent::offline::spool::LogSpool)
//! and are sent after the next `hello`; a backup schedule's fire still
//! unsent `offline_grace_seconds` after it was due becomes backups run
//! here, each reported with a `job.report` kept in the outbox.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use crate::agent::journal::JobRecord;
use crate::agent::offline::plan_offline_backup;
use crate::protocol::{
    AgentToServer, Envelope, ErrorFrame, LogStream, ScheduleFire, ScheduleKind, WireMessage,
    ERROR_UNKNOWN_TYPE,
};

use super::Daemon;

/// Longest `offline_grace_seconds` honoured (ten years): past it the
/// value is read as "never run offline".
const MAX_GRACE_SECONDS: u64 = 10 * 365 * 24 * 3600;

impl Daemon {
    /// Keeps a log line that could not be sent.
    pub(super) fn spool_line(&mut self, line: &LogStream) {
        if let Err(err) = self.spool.append(line) {
            tracing::warn!(job_id = %line.job_id, "cannot keep a log line while offline: {err}");
        }
    }

    /// Sends `job_id`'s spooled lines; false when the connection broke.
    /// The spool stays until the server acks the job's `job.finished`.
    pub(super) async fn send_spooled(&mut self, job_id: &str) -> bool {
        if !self.spool.contains(job_id) {
            return true;
        }
        let lines = match self.spool.lines(job_id) {
            Ok(lines) => lines,
            Err(err) => {
                tracing::warn!(job_id = %job_id, "cannot read the log lines kept while offline: {err}");
                return true;
            }
        };
        if !lines.is_empty() {
            tracing::info!(job_id = %job_id, count = lines.len(), "sending the log lines kept while offline");
        }
        for line in lines {
            if !self
                .send_envelope(&Envelope::new(AgentToServer::from(line)))
                .await
            {
                return false;
            }
        }
        true
    }

    /// The outbox replay after `hello`: each envelope in order, a job's
    /// spooled lines after its `job.report` and before its `job.finished`,
    /// then the lines of jobs still running. False when the connection
    /// broke.
    pub(super) async fn replay(&mut self, outbox: Vec<Envelope<AgentToServer>>) -> bool {
        let mut sent = HashSet::new();
        for envelope in outbox {
            if let AgentToServer::JobFinished(finished) = &envelope.message {
                if sent.insert(finished.job_id.clone())
                    && !self.send_spooled(&finished.job_id).await
                {
                    return false;
                }
            }
            if !self.send_envelope(&envelope).await {
                return false;
            }
            if let AgentToServer::JobReport(report) = &envelope.message {
                if sent.insert(report.job_id.clone()) && !self.send_spooled(&report.job_id).await {
                    return false;
                }
            }
        }
        for job_id in self.spool.job_ids() {
            if !sent.contains(&job_id) && !self.send_spooled(&job_id).await {
                return false;
            }
        }
        true
    }

    /// An `error` `unknown_type` naming an outbox entry: the server is
    /// older than the message (a `job.report` to a server before offline
    /// backups); re-sending it would never help, so it is dropped.
    pub(super) fn on_unknown_to_server(&mut self, error: &ErrorFrame) {
        if error.code != ERROR_UNKNOWN_TYPE {
            return;
        }
        let Some(id) = error.correlation_id.as_deref() else {
            return;
        };
        match self.journal.outbox_remove(id) {
            Ok(Some(envelope)) => tracing::warn!(
                message_type = envelope.message.type_name(),
                "the server does not know this message (an older server); dropped from the outbox"
            ),
            Ok(None) => {}
            Err(err) => tracing::warn!("cannot drop an outbox entry: {err}"),
        }
    }

    /// The grace a fire gets before the agent runs it itself.
    fn offline_grace(&self) -> TimeDelta {
        let seconds = self.config.offline_grace_seconds.min(MAX_GRACE_SECONDS);
        TimeDelta::seconds(i64::try_from(seconds).unwrap_or(0))
    }

    /// Whether a backup could run here now without the server.
    fn can_back_up_offline(&self) -> bool {
        self.link.is_none() && self.config_received && self.repo.is_configured()
    }

    /// When the oldest unsent backup fire is due to run offline.
    pub(super) fn next_offline_due(&self) -> Option<DateTime<Utc>> {
        if !self.can_back_up_offline() {
            return None;
        }
        let grace = self.offline_grace();
        self.cron
            .pending()
            .into_iter()
            .filter(|fire| fire.kind.unwrap_or_default() == ScheduleKind::Backup)
            .filter(|fire| !self.ran_offline.contains(&fire_key(fire)))
            .map(|fire| fire.scheduled_at + grace)
            .min()
    }

    /// Runs the backup fires still unsent `offline_grace_seconds` after
    /// they were due while the server is unreachable: each group's
    /// backup is journaled with its `job.report` in the outbox (report
    /// first: a job is never journaled without it), queued, and the fire
    /// is marked sent so it never reaches the server too. A fire with a
    /// group that cannot run here (a database dump: its password is the
    /// server's) stays pending instead: sent after the reports on
    /// reconnect, it makes the server create only the jobs not reported
    /// (the fire's jobs are de-duplicated per group).
    pub(super) fn run_overdue_fires(&mut self) {
        if !self.can_back_up_offline() {
            return;
        }
        let now = self.clock.now();
        let grace = self.offline_grace();
        for fire in self.cron.pending() {
            if fire.kind.unwrap_or_default() != ScheduleKind::Backup
                || fire.scheduled_at + grace > now
                || self.ran_offline.contains(&fire_key(&fire))
            {
                continue;
            }
            let Some(schedule) = self
                .cron
                .schedules()
                .find(|schedule| schedule.id == fire.schedule_id)
                .cloned()
            else {
                continue;
            };
            let accepted_at = Utc::now();
            let (jobs, skipped) = plan_offline_backup(&schedule, &fire, accepted_at);
            for group in &skipped {
                tracing::warn!(schedule_id = %fire.schedule_id, group = %group, "source group without paths (a database dump) is left to the server: its fire is sent on reconnect");
            }
            let mut journaled = true;
            for job in jobs {
                let job_id = job.command.job_id.clone();
                match self.journal.job(&job_id) {
                    Ok(Some(_)) => continue, // planned before a restart
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(job_id = %job_id, "cannot read the journal: {err}");
                        journaled = false;
                        break;
                    }
                }
                let envelope = Envelope::with_id(
                    format!("job.report:{job_id}"),
                    AgentToServer::from(job.report),
                );
                let record = JobRecord::queued(job.command, accepted_at);
                let written = self
                    .journal
                    .outbox_put(&envelope, accepted_at)
                    .and_then(|()| self.journal.put_job(&record));
                if let Err(err) = written {
                    tracing::error!(job_id = %job_id, "cannot journal an offline backup: {err}");
                    journaled = false;
                    break;
                }
                tracing::info!(
                    job_id = %job_id,
                    schedule_id = %fire.schedule_id,
                    scheduled_at = %fire.scheduled_at,
                    tag = record.command.tag.as_deref().unwrap_or(""),
                    "the server is unreachable: running the scheduled backup here"
                );
                self.queue.push_back(record);
            }
            if !journaled {
                continue;
            }
            if skipped.is_empty() {
                self.cron.mark_sent(std::slice::from_ref(&fire));
            } else {
                let pending: HashSet<(String, DateTime<Utc>)> =
                    self.cron.pending().iter().map(fire_key).collect();
                self.ran_offline.retain(|key| pending.contains(key));
                self.ran_offline.insert(fire_key(&fire));
            }
        }
    }
}

/// What identifies a fire: its schedule and time.
fn fire_key(fire: &ScheduleFire) -> (String, DateTime<Utc>) {
    (fire.schedule_id.clone(), fire.scheduled_at)
}
