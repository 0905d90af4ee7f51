//! The writer's job writes: the agent's reports on a job (dispatched,
//! accepted or refused, started, finished, lost), an operator's cancel of
//! a queued job, and the crash-test [`Failpoint`]. (A schedule fire's jobs
//! are a `RunWrite` of the scheduler: `actors::fire`.)
//!
//! Finishing a job and creating the job that follows it
//! ([`followup`]: a retry with back-off, the retention `forget`) are one
//! transaction, whichever way the job ends (`job.finished`, a refused
//! `command.run`, a job the agent lost), and the reply carries both: a
//! crash between them cannot lose the follow-up.

use actix::prelude::*;
use diesel::QueryResult;

use super::{PersistError, PersistResult, Persistence};
use crate::actors::followup;
use crate::ids::{HostId, JobId};
use crate::notify;
use crate::protocol;
use crate::store::channel;
use crate::store::jobs::{self, FinishOutcome};
use crate::store::models::{Job, JobFinish};
use crate::store::{self, notifications, source_groups, DbConnection, JobStatus};

/// `command.run` went out for a job.
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct MarkDispatched {
    pub host_id: HostId,
    pub job_id: JobId,
    pub now: i64,
}

impl Handler<MarkDispatched> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: MarkDispatched, _ctx: &mut Self::Context) -> Self::Result {
        self.write(
            "marking a job dispatched",
            &msg.host_id,
            Some(&msg.job_id),
            |c| jobs::mark_dispatched(c, &msg.job_id, msg.now),
        )
    }
}

/// `command.result`: accepted, or refused (the job fails with the error,
/// and its follow-up is created in the same transaction).
#[derive(Message)]
#[rtype(result = "PersistResult<CommandOutcome>")]
pub struct RecordCommandResult {
    pub host_id: HostId,
    pub payload: protocol::CommandResult,
    pub now: i64,
}

/// What a `command.result` did.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    /// Accepted (or a repeat of an acceptance).
    Accepted,
    /// Refused: the job is now failed.
    Refused(Box<Finished>),
}

impl Handler<RecordCommandResult> for Persistence {
    type Result = PersistResult<CommandOutcome>;

    fn handle(&mut self, msg: RecordCommandResult, _ctx: &mut Self::Context) -> Self::Result {
        let job_id = JobId::from(msg.payload.job_id.as_str());
        if msg.payload.accepted {
            return self
                .write(
                    "recording an accepted job",
                    &msg.host_id,
                    Some(&job_id),
                    |c| channel::mark_accepted_for_host(c, &msg.host_id, &job_id, msg.now),
                )
                .map(|_| CommandOutcome::Accepted);
        }
        let reason = msg
            .payload
            .error
            .unwrap_or_else(|| "no reason given".to_owned());
        let finish = JobFinish {
            status: JobStatus::Failed,
            finished_at: msg.now,
            exit_code: None,
            error: Some(format!("the agent refused the job: {reason}")),
            warning: None,
            stats: None,
        };
        self.finish_job(
            "recording a refused job",
            &msg.host_id,
            &job_id,
            &finish,
            msg.now,
        )
        .map(|finished| CommandOutcome::Refused(Box::new(finished)))
    }
}

/// `job.started`: queued → running. Replies whether it changed.
#[derive(Message)]
#[rtype(result = "PersistResult<bool>")]
pub struct RecordJobStarted {
    pub host_id: HostId,
    pub payload: protocol::JobStarted,
}

impl Handler<RecordJobStarted> for Persistence {
    type Result = PersistResult<bool>;

    fn handle(&mut self, msg: RecordJobStarted, _ctx: &mut Self::Context) -> Self::Result {
        let started_at = msg.payload.started_at.timestamp_millis();
        let job_id = JobId::from(msg.payload.job_id.as_str());
        self.write(
            "recording a started job",
            &msg.host_id,
            Some(&job_id),
            |c| channel::mark_started_for_host(c, &msg.host_id, &job_id, started_at),
        )
    }
}

/// `job.finished`: the job becomes terminal, once, and the job that
/// follows it (retry, retention `forget`) is created in the same
/// transaction. Replies after both (and the job's earlier log lines) are
/// durable.
#[derive(Message)]
#[rtype(result = "PersistResult<Finished>")]
pub struct RecordJobFinished {
    pub host_id: HostId,
    pub payload: protocol::JobFinished,
    /// When the report arrived: the follow-up's creation time and the
    /// base of a retry's back-off.
    pub now: i64,
}

/// What finishing a job did: the outcome, and the job created to follow
/// it (only when the outcome is `Applied`).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub outcome: FinishOutcome,
    pub follow_up: Option<Job>,
}

/// The row change a `job.finished` makes. A `succeeded` report with an
/// `error` (restic exit 3) keeps it as a warning.
pub fn finish_from_report(report: &protocol::JobFinished) -> JobFinish {
    let status: JobStatus = protocol::JobStatus::from(report.status);
    let (error, warning) = match report.status {
        protocol::FinishStatus::Succeeded => (None, report.error.clone()),
        _ => (report.error.clone(), None),
    };
    JobFinish {
        status,
        finished_at: report.finished_at.timestamp_millis(),
        exit_code: Some(report.exit_code),
        error,
        warning,
        stats: report.stats.clone().map(serde_json::Value::Object),
    }
}

/// Inserts the job that follows `job` (just made terminal), if the rules
/// of [`followup`] give one. Call inside the transaction that finished it.
fn insert_follow_up(conn: &mut DbConnection, job: &Job, now: i64) -> QueryResult<Option<Job>> {
    let Some(group_id) = followup::group_to_ask(job) else {
        return Ok(None);
    };
    let group = source_groups::get(conn, group_id)?;
    followup::follow_up(job, group.as_ref(), now)
        .map(|new| jobs::insert(conn, &new))
        .transpose()
}

/// Queues the notifications a job's end raises (`notify::job_events`), in
/// the transaction that ended it: a crash cannot keep the one without
/// the other.
fn notify_end(conn: &mut DbConnection, job: &Job, follow_up: Option<&Job>) -> QueryResult<()> {
    for event in notify::job_events(job, follow_up) {
        notifications::emit(conn, &event)?;
    }
    Ok(())
}

/// Finishes a job of `host_id` and creates its follow-up, in one
/// transaction.
fn finish_with_follow_up(
    conn: &mut DbConnection,
    host_id: &HostId,
    job_id: &JobId,
    finish: &JobFinish,
    now: i64,
    catalog_keep: usize,
) -> QueryResult<Finished> {
    store::write_transaction(conn, |c| {
        let outcome = channel::finish_for_host(c, host_id, job_id, finish)?;
        let follow_up = match &outcome {
            FinishOutcome::Applied(job) => {
                super::catalog_writes::complete_job(c, job, finish, catalog_keep, now)?;
                let follow_up = insert_follow_up(c, job, now)?;
                notify_end(c, job, follow_up.as_ref())?;
                follow_up
            }
            _ => None,
        };
        Ok(Finished { outcome, follow_up })
    })
}

impl Persistence {
    /// Finishes a job with its follow-up (one transaction), then fires the
    /// armed [`Failpoint::AfterFinishCommit`], if any.
    fn finish_job(
        &mut self,
        what: &str,
        host_id: &HostId,
        job_id: &JobId,
        finish: &JobFinish,
        now: i64,
    ) -> PersistResult<Finished> {
        let keep = self.catalog_keep;
        let finished = self.write(what, host_id, Some(job_id), |c| {
            finish_with_follow_up(c, host_id, job_id, finish, now, keep)
        })?;
        if let Some(Failpoint::AfterFinishCommit { reached }) = self.failpoint.take() {
            tracing::warn!(
                host_id = %host_id,
                job_id = %job_id,
                "failpoint: the writer plays dead after the finish commit"
            );
            // The test may have stopped listening; the crash happens anyway.
            let _ = reached.send(finished.clone());
            return Err(PersistError::Unavailable(
                "failpoint: crashed after the finish commit".into(),
            ));
        }
        Ok(finished)
    }
}

impl Handler<RecordJobFinished> for Persistence {
    type Result = PersistResult<Finished>;

    fn handle(&mut self, msg: RecordJobFinished, _ctx: &mut Self::Context) -> Self::Result {
        let finish = finish_from_report(&msg.payload);
        self.finish_job(
            "recording a finished job",
            &msg.host_id,
            &JobId::from(msg.payload.job_id.as_str()),
            &finish,
            msg.now,
        )
    }
}

/// A heartbeat's `active_job_ids`: running jobs it does not list fail
/// ("agent lost the job"), each with its follow-up, in one transaction.
/// Replies with what was finished.
#[derive(Message)]
#[rtype(result = "PersistResult<Vec<Finished>>")]
pub struct ReconcileRunning {
    pub host_id: HostId,
    pub active_job_ids: Vec<String>,
    pub now: i64,
}

impl Handler<ReconcileRunning> for Persistence {
    type Result = PersistResult<Vec<Finished>>;

    fn handle(&mut self, msg: ReconcileRunning, _ctx: &mut Self::Context) -> Self::Result {
        self.write("reconciling running jobs", &msg.host_id, None, |c| {
            // Nearly every heartbeat lists all its host's running jobs:
            // one read then, not a transaction with a nested savepoint (on
            // PostgreSQL one round trip instead of five per heartbeat, 333
            // heartbeats/s at 10,000 agents; issue 19). A lost job is
            // failed in the transaction below, which reads again.
            let running = jobs::running_for_host(c, &msg.host_id)?;
            if running
                .iter()
                .all(|job| msg.active_job_ids.iter().any(|id| id == job.id.as_str()))
            {
                return Ok(Vec::new());
            }
            store::write_transaction(c, |c| {
                let lost = channel::fail_lost_jobs(c, &msg.host_id, &msg.active_job_ids, msg.now)?;
                lost.into_iter()
                    .map(|job| {
                        let follow_up = insert_follow_up(c, &job, msg.now)?;
                        notify_end(c, &job, follow_up.as_ref())?;
                        Ok(Finished {
                            outcome: FinishOutcome::Applied(job),
                            follow_up,
                        })
                    })
                    .collect()
            })
        })
    }
}

/// An operator cancels a job that has not started. `None` if it is no
/// longer queued.
#[derive(Message)]
#[rtype(result = "PersistResult<Option<Job>>")]
pub struct CancelQueued {
    pub job_id: JobId,
    pub now: i64,
}

/// The error a job cancelled by an operator carries.
pub const CANCELLED_BY_OPERATOR: &str = "cancelled by an operator";

impl Handler<CancelQueued> for Persistence {
    type Result = PersistResult<Option<Job>>;

    fn handle(&mut self, msg: CancelQueued, _ctx: &mut Self::Context) -> Self::Result {
        self.write("cancelling a queued job", "", Some(&msg.job_id), |c| {
            channel::cancel_if_queued(c, &msg.job_id, CANCELLED_BY_OPERATOR, msg.now)
        })
    }
}

/// A crash to simulate, for crash tests: armed with [`ArmFailpoint`] on
/// one server's writer (never by the server itself, nor by any setting),
/// it fires once.
#[derive(Debug)]
pub enum Failpoint {
    /// The next finish transaction commits, then the writer answers as if
    /// the server had died at that point: the session gets an error, so
    /// nothing is acked, published or dispatched. `reached` gets what was
    /// committed.
    AfterFinishCommit {
        reached: tokio::sync::oneshot::Sender<Finished>,
    },
}

/// Arms a [`Failpoint`] (crash tests).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ArmFailpoint(pub Failpoint);

impl Handler<ArmFailpoint> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: ArmFailpoint, _ctx: &mut Self::Context) {
        self.failpoint = Some(msg.0);
    }
}
