//! The restic work the daemon runs one at a time: queued jobs, the
//! crash clean-up before them (stop leftover restic, `restic unlock`), the
//! snapshot/stats reports after a backup, the local schedule's fires, and
//! the orderly stop on shutdown.

use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use tokio::sync::watch;
use tracing::Instrument;

use crate::agent::journal::{JobRecord, JobState, EXIT_CODE_NOT_RUN};
use crate::agent::platform::{self, OrphanOutcome};
use crate::agent::process::{LogSink, StopReason};
use crate::agent::reports::{collect_reports, Reports};
use crate::agent::runner::{self, JobPlan};
use crate::protocol::{AgentToServer, Envelope, FinishStatus, JobFinished, JobKind};

use super::{
    Busy, Daemon, Done, JOURNAL_RETENTION, ORPHAN_GRACE, ORPHAN_REAP_WAIT, UNLOCK_TIMEOUT,
};

impl Daemon {
    // --- jobs -------------------------------------------------------------

    /// Starts the next work when nothing runs: first the clean-up after a
    /// crash (stop leftover restic processes, then `restic unlock`), then
    /// the queued jobs, then the reports when due. Unlock and jobs wait for
    /// repository settings (the first `config.update`, or the sealed ones
    /// of an earlier run). Reports in flight give way to a queued job.
    pub(super) async fn start_next_work(&mut self) {
        if matches!(self.busy, Some(Busy::Reports { .. }))
            && !self.queue.is_empty()
            && self.config_received
        {
            // Reports never hold a job: dropping them kills their restic
            // (`--no-lock`, so no lock is left), and they run again once
            // the queue is empty.
            tracing::info!("a job is waiting: reports stopped, collected again after it");
            self.busy = None;
            self.reports_due = true;
        }
        if self.busy.is_some() {
            return;
        }
        if !self.orphans.is_empty() {
            self.start_stopping_orphans();
            return;
        }
        if self.unlock_due && self.config_received {
            self.start_unlock();
            if self.busy.is_some() {
                return;
            }
        }
        while self.busy.is_none() && self.config_received {
            let Some(mut record) = self.queue.pop_front() else {
                self.start_reports_if_due();
                return;
            };
            let invocation = match self
                .source_repos
                .for_start(&record.command, &self.repo)
                .map_err(|err| err.to_string())
                .and_then(|repo| {
                    self.restic
                        .job(&record.command, &repo)
                        .map_err(|err| err.to_string())
                }) {
                Ok(invocation) => invocation,
                Err(err) => {
                    tracing::warn!(job_id = %record.job_id(), "job cannot run: {err}");
                    self.finish(record, FinishStatus::Failed, err).await;
                    continue;
                }
            };
            record.state = JobState::Running {
                started_at: Utc::now(),
                restic: None,
            };
            if let Err(err) = self.journal.put_job(&record) {
                tracing::error!(job_id = %record.job_id(), "cannot journal the job start: {err}");
            }
            let mut command = record.command.clone();
            let password = self.dump_passwords.remove(record.job_id());
            if let Some(dump) = command.dump.as_mut() {
                dump.password = password.map(|p| p.expose().to_owned());
            }
            let plan = JobPlan {
                command,
                invocation,
                hooks: self.config.hooks.clone(),
                hook_shell: self
                    .repo
                    .hook_shell
                    .clone()
                    .unwrap_or_else(|| platform::default_hook_shell().to_owned()),
                cancel_grace: runner::CANCEL_GRACE,
            };
            let (stop, mut stop_rx) = watch::channel(None);
            let mut sink = LogSink::new(record.job_id(), self.live_tx.clone());
            let span = tracing::info_span!("job", job_id = %record.job_id(), kind = %record.kind());
            tracing::info!(job_id = %record.job_id(), kind = %record.kind(), "job started");
            let journal = self.journal.clone();
            let mut running = record.clone();
            let mut on_spawn = move |pid: u32| {
                let Some(process) = platform::process_identity(pid) else {
                    return; // exited already, or not identifiable on this platform
                };
                if let Err(err) = journal.record_restic(&mut running, process) {
                    tracing::warn!(job_id = %running.job_id(), "cannot journal restic's process: {err}");
                }
            };
            let work = async move {
                runner::run_job_observed(plan, &mut sink, &mut stop_rx, &mut on_spawn).await
            }
            .instrument(span)
            .boxed();
            self.busy = Some(Busy::Job {
                record: Box::new(record),
                stop,
                work,
            });
        }
    }

    /// Stops the restic processes that jobs interrupted by a crash left
    /// running (they are not children of this process).
    pub(super) fn start_stopping_orphans(&mut self) {
        let orphans = std::mem::take(&mut self.orphans);
        let work = async move {
            for (job_id, process) in orphans {
                let outcome =
                    platform::stop_orphan(&process, ORPHAN_GRACE, ORPHAN_REAP_WAIT).await;
                let pid = process.pid;
                match outcome {
                    OrphanOutcome::AlreadyGone => {
                        tracing::info!(job_id = %job_id, pid, "restic of the interrupted job is no longer running");
                    }
                    OrphanOutcome::Interrupted => {
                        tracing::warn!(job_id = %job_id, pid, "restic left running by the previous agent process was interrupted");
                    }
                    OrphanOutcome::Killed => {
                        tracing::warn!(job_id = %job_id, pid, "restic left running by the previous agent process ignored SIGINT and was killed");
                    }
                    OrphanOutcome::StillThere => {
                        tracing::error!(job_id = %job_id, pid, "restic left running by the previous agent process could not be stopped; its lock may stay");
                    }
                }
            }
        }
        .in_current_span()
        .boxed();
        self.busy = Some(Busy::StopOrphans { work });
    }

    /// Starts `restic unlock` (stale locks only). Tried once per start; the
    /// durable mark is cleared only when it succeeds.
    pub(super) fn start_unlock(&mut self) {
        self.unlock_due = false;
        let invocation = match self.restic.unlock_stale(&self.repo) {
            Ok(invocation) => invocation,
            Err(err) => {
                tracing::warn!("stale-lock cleanup skipped: {err}");
                return;
            }
        };
        tracing::info!(
            "removing stale repository locks left by the interrupted job (restic unlock)"
        );
        let work = async move {
            match runner::capture(&invocation, UNLOCK_TIMEOUT).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!("restic unlock failed: {err}");
                    false
                }
            }
        }
        .in_current_span()
        .boxed();
        self.busy = Some(Busy::Unlock { work });
    }

    /// Ends a job that never ran restic (refused at start, cancelled while
    /// queued).
    pub(super) async fn finish(&mut self, record: JobRecord, status: FinishStatus, error: String) {
        self.source_repos.forget(record.job_id());
        self.dump_passwords.remove(record.job_id());
        let finished = JobFinished {
            job_id: record.job_id().to_owned(),
            status,
            exit_code: EXIT_CODE_NOT_RUN,
            finished_at: Utc::now(),
            stats: None,
            error: Some(error),
        };
        self.record_finished(record, finished).await;
    }

    /// Makes a job's end durable (journal, then outbox) and sends it.
    pub(super) async fn record_finished(&mut self, record: JobRecord, finished: JobFinished) {
        tracing::info!(
            job_id = %finished.job_id,
            status = %finished.status,
            exit_code = finished.exit_code,
            error = finished.error.as_deref().unwrap_or(""),
            "job finished"
        );
        // Its lines kept while offline are durable before its end is.
        if let Err(err) = self.spool.sync(&finished.job_id) {
            tracing::warn!(job_id = %finished.job_id, "cannot sync the log lines kept while offline: {err}");
        }
        match self.journal.finish_job(record, finished.clone()) {
            Ok(envelope) => {
                self.send_envelope(&envelope).await;
            }
            Err(err) => {
                tracing::error!(job_id = %finished.job_id, "cannot journal the job result: {err}");
                self.send_live(AgentToServer::from(finished)).await;
            }
        }
    }

    pub(super) async fn on_work_done(&mut self, done: Done) {
        // The job's last log lines are already in the channel: send them
        // before its job.finished so the server sees them in order.
        self.drain_live().await;
        let busy = self.busy.take();
        match (done, busy) {
            (Done::Job(finished), Some(Busy::Job { record, .. })) => {
                let kind = record.kind();
                let succeeded = finished.status == FinishStatus::Succeeded;
                self.record_finished(*record, finished).await;
                if let Err(err) = self.journal.prune(Utc::now() - JOURNAL_RETENTION) {
                    tracing::warn!("cannot prune the journal: {err}");
                }
                if succeeded && matches!(kind, JobKind::Backup | JobKind::Forget) {
                    // Collected once no job waits (start_next_work).
                    self.reports_due = true;
                }
            }
            (Done::Reports(reports), _) => self.on_reports(reports).await,
            (Done::OrphansStopped, _) => {}
            (Done::Unlocked(unlocked), _) => {
                if unlocked {
                    tracing::info!("stale repository locks removed");
                    if let Err(err) = self.journal.set_unlock_needed(false) {
                        tracing::warn!("cannot clear the unlock mark: {err}");
                    }
                }
            }
            (Done::Job(finished), _) => {
                tracing::error!(job_id = %finished.job_id, "job ended without its record; reporting it");
                self.send_live(AgentToServer::from(finished)).await;
            }
        }
    }

    /// Starts the reports when they are due (after a backup or forget, on
    /// the interval, or retried after a job stopped them), nothing runs
    /// and no job waits.
    fn start_reports_if_due(&mut self) {
        if self.reports_due
            && self.busy.is_none()
            && self.queue.is_empty()
            && self.repo.is_configured()
        {
            self.reports_due = false;
            self.start_reports();
        }
    }

    /// Starts `snapshots.report` and `repo.stats` collection.
    pub(super) fn start_reports(&mut self) {
        let restic = self.restic.clone();
        let repo = self.repo.clone();
        let last_check = match self.journal.last_check() {
            Ok(last) => last,
            Err(err) => {
                tracing::warn!("cannot read the last check from the journal: {err}");
                None
            }
        };
        let restore_size = self.restore_size;
        let work = async move { collect_reports(&restic, &repo, last_check, restore_size).await }
            .in_current_span()
            .boxed();
        self.busy = Some(Busy::Reports { work });
    }

    pub(super) async fn on_reports(&mut self, reports: Reports) {
        self.restore_size = reports.restore_size;
        self.reports_next = tokio::time::Instant::now() + self.report_interval();
        if let Some(report) = reports.snapshots {
            // A newer report replaces an older unsent one: the server keeps
            // only the latest projection anyway.
            if let Ok(outbox) = self.journal.outbox() {
                for old in outbox {
                    if matches!(old.message, AgentToServer::SnapshotsReport(_)) {
                        if let Err(err) = self.journal.outbox_remove(&old.id) {
                            tracing::warn!("cannot drop a superseded snapshots report: {err}");
                        }
                    }
                }
            }
            let envelope = Envelope::new(AgentToServer::from(report));
            match self.journal.outbox_put(&envelope, Utc::now()) {
                Ok(()) => {
                    self.send_envelope(&envelope).await;
                }
                Err(err) => {
                    tracing::error!("cannot queue the snapshots report: {err}");
                    self.send_envelope(&envelope).await;
                }
            }
        }
        if let Some(stats) = reports.stats {
            self.send_live(AgentToServer::from(stats)).await;
        }
    }

    /// The longest time between two report collections.
    pub(super) fn report_interval(&self) -> Duration {
        Duration::from_secs(
            self.config
                .report_interval_seconds
                .clamp(60, 365 * 24 * 3600),
        )
    }

    // --- schedule ---------------------------------------------------------

    pub(super) async fn on_cron_tick(&mut self) {
        let fires = self.cron.tick(self.clock.now());
        for fire in &fires {
            tracing::info!(schedule_id = %fire.schedule_id, scheduled_at = %fire.scheduled_at, "schedule due");
        }
        if !fires.is_empty() {
            self.send_pending_fires().await;
        }
        self.run_overdue_fires();
    }

    /// Sends every pending `schedule.fire` if connected, oldest first.
    pub(super) async fn send_pending_fires(&mut self) {
        for fire in self.cron.pending() {
            if !self
                .send_envelope(&Envelope::new(AgentToServer::from(fire.clone())))
                .await
            {
                return;
            }
            self.cron.mark_sent(std::slice::from_ref(&fire));
        }
    }

    /// Sends (or drops, when offline) every live message already queued.
    pub(super) async fn drain_live(&mut self) {
        while let Ok(message) = self.live_rx.try_recv() {
            self.send_live(message).await;
        }
    }

    // --- shutdown ---------------------------------------------------------

    /// Stops the running job (its result goes to the outbox), then closes
    /// the socket. Reports in flight are dropped (they are re-made after
    /// the next backup); queued jobs stay in the journal.
    pub(super) async fn stop(&mut self) {
        tracing::info!("shutting down");
        if let Some(Busy::StopOrphans { work }) = self
            .busy
            .take_if(|busy| matches!(busy, Busy::StopOrphans { .. }))
        {
            // Bounded by the grace period and the reap wait; the leftover
            // processes are known only to this run, so finish the job.
            work.await;
        }
        if let Some(Busy::Job {
            record,
            stop,
            mut work,
        }) = self.busy.take()
        {
            // Err only if the job already ended.
            let _ = stop.send(Some(StopReason::Shutdown));
            let finished = loop {
                tokio::select! {
                    finished = &mut work => break finished,
                    // Keep draining live output so the job can finish.
                    Some(message) = self.live_rx.recv() => self.send_live(message).await,
                }
            };
            self.record_finished(*record, finished).await;
        }
        self.drain_live().await;
        self.downloads.shutdown().await;
        if let Some(mut link) = self.link.take() {
            let close = link.ws.close(None);
            // A server that does not answer the close is not waited for.
            let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
        }
        tracing::info!("stopped");
    }
}
