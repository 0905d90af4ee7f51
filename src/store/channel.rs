//! Queries of the agent channel that are scoped to the host that sent the
//! message: a session may only move, log to or finish its own host's jobs.
//! A job id that names another host's job is treated as unknown, so a
//! compromised agent cannot touch the rest of the fleet.
//!
//! Also the scheduler's queries that span tables: the de-duplicated
//! insertion of a schedule fire's jobs, and the fire times already seen
//! (the missed-run check). Called by the persistence actor (writes) and
//! inside `web::block` (reads), like every store function.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::job_logs::{self, LogBatchOutcome};
use super::jobs::{self, FinishOutcome};
use super::json::Json;
use super::models::{Job, JobFinish, NewJob, NewJobLog};
use super::prepared::PrepareOnce;
use super::schema::jobs as jobs_table;
use super::types::JobStatus;
use super::{write_transaction, DbConnection, INSERT_CHUNK_ROWS};
use crate::ids::{HostId, JobId, SourceGroupId};
use crate::protocol::JobProgress;

/// The error of a job the agent no longer knows (PROTOCOL.md "Delivery
/// guarantees").
pub const LOST_JOB_ERROR: &str = "agent lost the job";

/// The job if it exists and belongs to `host_id`.
pub fn job_of_host(
    conn: &mut DbConnection,
    host_id: &HostId,
    job_id: &JobId,
) -> QueryResult<Option<Job>> {
    Ok(jobs::get(conn, job_id)?.filter(|job| job.host_id == *host_id))
}

/// [`jobs::finish`] for a job of `host_id`; another host's job is
/// `NotFound`.
pub use super::jobs::finish_for_host;

/// `job.started` for a job of `host_id`: `queued` → `running`. False when
/// the job is not this host's or not queued.
pub fn mark_started_for_host(
    conn: &mut DbConnection,
    host_id: &HostId,
    job_id: &JobId,
    started_at: i64,
) -> QueryResult<bool> {
    diesel::update(
        jobs_table::table
            .find(job_id)
            .filter(jobs_table::host_id.eq(host_id))
            .filter(jobs_table::status.eq(JobStatus::Queued)),
    )
    .set((
        jobs_table::status.eq(JobStatus::Running),
        jobs_table::started_at.eq(started_at),
    ))
    .returning(jobs_table::id)
    .prepared()
    .changed_one::<JobId>(conn)
}

/// `command.result` with `accepted: true` for a job of `host_id`. False
/// when the job is not this host's, not active, or already accepted.
pub fn mark_accepted_for_host(
    conn: &mut DbConnection,
    host_id: &HostId,
    job_id: &JobId,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        jobs_table::table
            .find(job_id)
            .filter(jobs_table::host_id.eq(host_id))
            .filter(jobs_table::status.eq_any(JobStatus::ACTIVE))
            .filter(jobs_table::accepted_at.is_null()),
    )
    .set(jobs_table::accepted_at.eq(now))
    .returning(jobs_table::id)
    .prepared()
    .changed_one::<JobId>(conn)
}

/// The latest `job.progress` of each job (with the host whose session
/// sent it), for jobs of that host that are still active, in one
/// transaction. Returns how many rows changed.
pub fn update_progress_batch(
    conn: &mut DbConnection,
    updates: &[(String, JobProgress)],
) -> QueryResult<usize> {
    if updates.is_empty() {
        return Ok(0);
    }
    write_transaction(conn, |conn| {
        let mut changed = 0;
        for (host_id, progress) in updates {
            changed += diesel::update(
                jobs_table::table
                    .find(&progress.job_id)
                    .filter(jobs_table::host_id.eq(host_id))
                    .filter(jobs_table::status.eq_any(JobStatus::ACTIVE)),
            )
            .set(jobs_table::progress.eq(Json(Some(progress.clone()))))
            .execute(conn)?;
        }
        Ok(changed)
    })
}

/// A log line and the host whose session sent it.
#[derive(Debug, Clone)]
pub struct HostLogLine {
    pub host_id: String,
    pub line: NewJobLog,
}

/// Stores log lines from many sessions in one transaction: a line is kept
/// only if its job belongs to the host that sent it (others count as
/// `unknown_job`); duplicates of `(job_id, seq)` are skipped.
pub fn insert_logs_for_hosts(
    conn: &mut DbConnection,
    lines: &[HostLogLine],
) -> QueryResult<LogBatchOutcome> {
    if lines.is_empty() {
        return Ok(LogBatchOutcome::default());
    }
    write_transaction(conn, |conn| {
        let mut job_ids: Vec<&str> = lines.iter().map(|l| l.line.job_id.as_str()).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        let mut owner: HashMap<String, String> = HashMap::with_capacity(job_ids.len());
        for chunk in job_ids.chunks(INSERT_CHUNK_ROWS) {
            let found: Vec<(String, String)> = jobs_table::table
                .filter(jobs_table::id.eq_any(chunk))
                .select((jobs_table::id, jobs_table::host_id))
                .load(conn)?;
            owner.extend(found);
        }
        let mut keep = Vec::with_capacity(lines.len());
        let mut foreign = 0;
        for l in lines {
            if owner.get(l.line.job_id.as_str()) == Some(&l.host_id) {
                keep.push(&l.line);
            } else {
                foreign += 1;
            }
        }
        // The jobs exist (just looked up): no second lookup, no copies.
        let mut outcome = job_logs::insert_known(conn, &keep)?;
        outcome.unknown_job += foreign;
        Ok(outcome)
    })
}

/// Cancels a job that is still `queued` (not started), once. `None` if it
/// is not queued any more (started, or already terminal) or does not exist.
pub fn cancel_if_queued(
    conn: &mut DbConnection,
    job_id: &str,
    reason: &str,
    now: i64,
) -> QueryResult<Option<Job>> {
    diesel::update(
        jobs_table::table
            .find(job_id)
            .filter(jobs_table::status.eq(JobStatus::Queued)),
    )
    .set((
        jobs_table::status.eq(JobStatus::Cancelled),
        jobs_table::finished_at.eq(now),
        jobs_table::error.eq(reason),
        jobs_table::retry_at.eq(None::<i64>),
    ))
    .returning(jobs_table::all_columns)
    .get_result(conn)
    .optional()
}

/// Fails every `running` job of the host that the agent did not list in
/// `active_job_ids` ("agent lost the job"); returns the jobs it failed.
pub fn fail_lost_jobs(
    conn: &mut DbConnection,
    host_id: &HostId,
    active_job_ids: &[String],
    now: i64,
) -> QueryResult<Vec<Job>> {
    write_transaction(conn, |conn| {
        let active: HashSet<&str> = active_job_ids.iter().map(String::as_str).collect();
        let mut failed = Vec::new();
        for job in jobs::running_for_host(conn, host_id)? {
            if active.contains(job.id.as_str()) {
                continue;
            }
            let finish = JobFinish {
                status: JobStatus::Failed,
                finished_at: now,
                exit_code: None,
                error: Some(LOST_JOB_ERROR.to_owned()),
                warning: None,
                stats: None,
            };
            if let FinishOutcome::Applied(job) = jobs::finish(conn, &job.id, &finish)? {
                failed.push(job);
            }
        }
        Ok(failed)
    })
}

/// Inserts the jobs of one fire of a schedule, skipping every source group
/// that already has a job for this `(schedule_id, scheduled_at)`, so a
/// replayed `schedule.fire` does not run anything twice. Each `NewJob`
/// must carry this schedule id, time and its source group id. Returns the
/// jobs created now.
pub fn insert_fire_jobs(
    conn: &mut DbConnection,
    schedule_id: &str,
    scheduled_at: i64,
    new_jobs: &[NewJob],
) -> QueryResult<Vec<Job>> {
    write_transaction(conn, |conn| {
        let existing: HashSet<Option<SourceGroupId>> =
            jobs::for_schedule_run(conn, schedule_id, scheduled_at)?
                .into_iter()
                .map(|job| job.source_group_id)
                .collect();
        let mut created = Vec::new();
        for new in new_jobs {
            if existing.contains(&new.source_group_id) {
                continue;
            }
            created.push(jobs::insert(conn, new)?);
        }
        Ok(created)
    })
}

/// `(schedule_id, scheduled_at)` of every scheduled job whose cron time is
/// at or after `since` (Unix ms): the fires the server has seen.
pub fn fires_since(conn: &mut DbConnection, since: i64) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<(Option<String>, Option<i64>)> = jobs_table::table
        .filter(jobs_table::schedule_id.is_not_null())
        .filter(jobs_table::scheduled_at.ge(since))
        .select((jobs_table::schedule_id, jobs_table::scheduled_at))
        .distinct()
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(schedule, at)| Some((schedule?, at?)))
        .collect())
}
