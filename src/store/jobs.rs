//! Queries on `jobs`: creation, the per-host queue, the status moves that
//! the agent's messages cause (dispatched → accepted → running → terminal),
//! progress, retries and the lists the UI and API show.
//!
//! Status changes are conditional updates, so a late or repeated message
//! never moves a job backwards: [`finish`] applies once, whatever the
//! number of `job.finished` deliveries.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::Error as DieselError;

use super::json::Json;
use super::models::{Job, JobFinish, NewAuditEntry, NewJob};
use super::paged::PagedDsl;
use super::prepared::{PrepareOnce, TextLiteral};
use super::schema::jobs;
use super::types::{JobKind, JobStatus, Page};
use super::verification::CheckStep;
use super::{clamp_limit, page_total, page_window, DbConnection, MAX_PAGE};
use crate::ids::{HostId, JobId};
use crate::protocol::JobProgress;

/// Which jobs [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub host_id: Option<String>,
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    pub source_group_id: Option<String>,
    /// Created at or after (Unix ms).
    pub since: Option<i64>,
    /// Created before (Unix ms).
    pub until: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// What [`finish`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum FinishOutcome {
    /// The job was active and is now terminal: the row after the change.
    Applied(Job),
    /// The job was already terminal (a repeated or late report); unchanged.
    AlreadyFinished(Job),
    /// No job has this id.
    NotFound,
}

impl FinishOutcome {
    /// True when this call changed the job.
    pub fn applied(&self) -> bool {
        matches!(self, FinishOutcome::Applied(_))
    }
}

/// Creates a job in status `queued`.
pub fn insert(conn: &mut DbConnection, new: &NewJob) -> QueryResult<Job> {
    diesel::insert_into(jobs::table)
        .values((new.clone(), jobs::status.eq(JobStatus::Queued)))
        .returning(jobs::all_columns)
        .prepared()
        .get_result(conn)
}

/// Creates a job in status `queued` with its audit entry and, for a
/// rotating check, the rotation's step: on PostgreSQL in one statement
/// (`WITH w0 AS (INSERT INTO audit_log …), … INSERT INTO jobs …`), one
/// round trip for every run-now, atomic without a transaction; on SQLite
/// one statement each.
pub fn insert_audited(
    conn: &mut DbConnection,
    new: &NewJob,
    audit: &NewAuditEntry,
    check: Option<&CheckStep>,
) -> QueryResult<Job> {
    #[cfg(feature = "postgres")]
    if let DbConnection::Pg(pg) = conn {
        let mut writes: Vec<super::prepared::BoxedWrite<'_, diesel::pg::Pg>> = vec![Box::new(
            diesel::insert_into(super::schema::audit_log::table).values(audit.clone()),
        )];
        if let Some(step) = check {
            writes.extend(step.pg_writes());
        }
        return super::prepared::with_writes(
            writes,
            diesel::insert_into(jobs::table)
                .values((new.clone(), jobs::status.eq(JobStatus::Queued)))
                .returning(jobs::all_columns),
        )
        .get_result(pg);
    }
    if let Some(step) = check {
        step.write(conn)?;
    }
    let job = insert(conn, new)?;
    super::audit::insert(conn, audit)?;
    Ok(job)
}

/// The job with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Job>> {
    jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .optional()
}

/// Every attempt of the job `id`'s retry chain (its first attempt and
/// the retries of it; just the job when it was never retried), by number,
/// and its host's display name, else its host name (`None` if the host
/// is gone), in one statement. Empty if there is no such job.
pub fn chain_with_host_label(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<(Vec<Job>, Option<String>)> {
    use super::schema::hosts;
    // The job (`this`) joined to its chain's members: the chain's first
    // attempt is this job's `first_attempt_id`, or this job. A join on
    // the job's own columns, not `IN (subquery)` conditions: PostgreSQL
    // plans it as index lookups for one job (ORed subqueries made it scan
    // every job, 37 ms at 200,000 jobs).
    let this = diesel::alias!(jobs as this_job);
    let first = this.field(jobs::first_attempt_id);
    let own = this.field(jobs::id);
    let rows: Vec<(Job, Option<String>, Option<String>)> = jobs::table
        .inner_join(
            this.on(jobs::id
                .nullable()
                .eq(first)
                .or(jobs::first_attempt_id.eq(first))
                .or(jobs::id.eq(own))
                .or(jobs::first_attempt_id.eq(own.nullable()))),
        )
        .left_join(hosts::table.on(hosts::id.eq(jobs::host_id)))
        .filter(own.eq(id))
        .order((jobs::attempt.asc(), jobs::created_at.asc()))
        .select((
            Job::as_select(),
            hosts::display_name.nullable(),
            hosts::hostname.nullable(),
        ))
        .load(conn)?;
    let label = rows
        .first()
        .and_then(|(_, display_name, hostname)| display_name.clone().or(hostname.clone()));
    Ok((rows.into_iter().map(|(job, _, _)| job).collect(), label))
}

fn filtered<'a>(filter: &'a JobFilter) -> jobs::BoxedQuery<'a, super::MultiBackend> {
    let mut query = jobs::table.into_boxed();
    if let Some(host_id) = &filter.host_id {
        query = query.filter(jobs::host_id.eq(host_id));
    }
    if let Some(status) = filter.status {
        // Written out: the 20 running jobs among 200,000 were a walk of
        // the whole `created_at` index under a generic plan that thought
        // every status a quarter of the jobs (853 ms on PostgreSQL; its
        // own plan takes the status index).
        query = query.filter(jobs::status.eq(TextLiteral::of(status.as_str())));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(jobs::kind.eq(kind));
    }
    if let Some(group) = &filter.source_group_id {
        query = query.filter(jobs::source_group_id.eq(group));
    }
    if let Some(since) = filter.since {
        query = query.filter(jobs::created_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(jobs::created_at.lt(until));
    }
    query
}

/// Jobs matching the filter, newest first, and the total that match.
pub fn list(conn: &mut DbConnection, filter: &JobFilter) -> QueryResult<Page<Job>> {
    let items = page(conn, filter)?;
    let total = total(conn, filter, items.len())?;
    Ok(Page { items, total })
}

/// One page of the jobs matching the filter, newest first.
pub fn page(conn: &mut DbConnection, filter: &JobFilter) -> QueryResult<Vec<Job>> {
    filtered(filter)
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .select(Job::as_select())
        .paged(clamp_limit(filter.limit, MAX_PAGE), filter.offset)
        .load(conn)
}

/// How many jobs match the filter, for its [`page`] of `len` jobs: the
/// page's own count when it tells, else the summary rows when the filter
/// is [`summarised`], else a count.
pub fn total(conn: &mut DbConnection, filter: &JobFilter, len: usize) -> QueryResult<i64> {
    let (limit, offset) = page_window(filter.limit, filter.offset);
    page_total(len, limit, offset, || match by_kind_and_status(filter) {
        Some((kind, status)) => summary_count(conn, kind, status),
        None => filtered(filter).count().get_result(conn),
    })
}

/// Whether the filter narrows by kind and status only, so that its total
/// is a sum of a few summary rows: cheap enough to read beside the page,
/// on another connection ([`summary_total`]).
pub fn summarised(filter: &JobFilter) -> bool {
    by_kind_and_status(filter).is_some()
}

/// The total of a [`summarised`] filter from its summary rows (`None`,
/// and no statement, for any other filter).
pub fn summary_total(conn: &mut DbConnection, filter: &JobFilter) -> QueryResult<Option<i64>> {
    by_kind_and_status(filter)
        .map(|(kind, status)| summary_count(conn, kind, status))
        .transpose()
}

/// The total a [`page`] of `len` jobs tells by itself, if it does (then
/// [`total`] reads nothing).
pub fn known_total(filter: &JobFilter, len: usize) -> Option<i64> {
    let (limit, offset) = page_window(filter.limit, filter.offset);
    super::known_total(len, limit, offset)
}

/// The kind and status a filter narrows to when it narrows by nothing
/// else: its total is a sum of `job_counts` summary rows.
fn by_kind_and_status(filter: &JobFilter) -> Option<(Option<JobKind>, Option<JobStatus>)> {
    let JobFilter {
        host_id: None,
        source_group_id: None,
        since: None,
        until: None,
        kind,
        status,
        ..
    } = filter
    else {
        return None;
    };
    Some((*kind, *status))
}

/// How many jobs have this kind and status (any, if `None`), from the
/// `job_counts` rows the `jobs` triggers keep in the same transaction: a
/// few rows instead of a count over every job of a status (0.34 ms at
/// 200,000 jobs on PostgreSQL, `/api/v1/jobs?status=failed`).
fn summary_count(
    conn: &mut DbConnection,
    kind: Option<JobKind>,
    status: Option<JobStatus>,
) -> QueryResult<i64> {
    use super::schema::job_counts;
    let mut query = job_counts::table.select(job_counts::n).into_boxed();
    if let Some(kind) = kind {
        query = query.filter(job_counts::kind.eq(kind));
    }
    if let Some(status) = status {
        query = query.filter(job_counts::status.eq(status));
    }
    Ok(query.load::<i64>(conn)?.into_iter().sum())
}

/// The host's `queued` jobs that may go out at `now` (a pending retry
/// waits for its `retry_at`), in creation order: what a session sends after
/// `hello`. Includes jobs already dispatched or accepted but not started,
/// since `command.run` is at least once and the agent de-duplicates.
pub fn queued_for_host(conn: &mut DbConnection, host_id: &str, now: i64) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::host_id.eq(host_id))
        .filter(jobs::status.eq(JobStatus::Queued))
        .filter(jobs::retry_at.is_null().or(jobs::retry_at.le(now)))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .load(conn)
}

/// The host's `running` jobs, oldest first (reconciled against the
/// agent's `active_job_ids`).
pub fn running_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::host_id.eq(host_id))
        .filter(jobs::status.eq(JobStatus::Running))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .load(conn)
}

/// The queued and running jobs of these hosts (of `kind`, if given),
/// oldest first: what a bulk cancel stops.
pub fn active_for_hosts(
    conn: &mut DbConnection,
    host_ids: &[String],
    kind: Option<crate::protocol::JobKind>,
) -> QueryResult<Vec<Job>> {
    let mut found = Vec::new();
    for chunk in host_ids.chunks(super::INSERT_CHUNK_ROWS) {
        let mut query = jobs::table
            .filter(jobs::host_id.eq_any(chunk))
            .filter(jobs::status.eq_any(JobStatus::ACTIVE))
            .into_boxed();
        if let Some(kind) = kind {
            query = query.filter(jobs::kind.eq(kind));
        }
        found.extend(query.select(Job::as_select()).load(conn)?);
    }
    found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(found)
}

/// Retries that became due at `now` and have not been dispatched, oldest
/// due first, at most `limit`.
pub fn due_retries(conn: &mut DbConnection, now: i64, limit: i64) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::status.eq(JobStatus::Queued))
        .filter(jobs::retry_at.le(now))
        .filter(jobs::dispatched_at.is_null())
        .order((jobs::retry_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .paged(clamp_limit(limit, MAX_PAGE), 0)
        .load(conn)
}

/// The jobs created for one fire of a schedule (to ignore a repeated
/// `schedule.fire`, and to tell a missed run from one that happened).
pub fn for_schedule_run(
    conn: &mut DbConnection,
    schedule_id: &str,
    scheduled_at: i64,
) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::schedule_id.eq(schedule_id))
        .filter(jobs::scheduled_at.eq(scheduled_at))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .load(conn)
}

/// The oldest queued or running job of `kind` on one of `host_ids`.
pub fn active_of_kind(
    conn: &mut DbConnection,
    host_ids: &[String],
    kind: JobKind,
) -> QueryResult<Option<Job>> {
    if host_ids.is_empty() {
        return Ok(None);
    }
    jobs::table
        .filter(jobs::host_id.eq_any(host_ids))
        .filter(jobs::kind.eq(kind))
        .filter(jobs::status.eq_any(JobStatus::ACTIVE))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .first(conn)
        .optional()
}

/// A first attempt and its retries, by attempt number.
pub fn attempts(conn: &mut DbConnection, first_attempt_id: &str) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(
            jobs::id
                .eq(first_attempt_id)
                .or(jobs::first_attempt_id.eq(first_attempt_id)),
        )
        .order((jobs::attempt.asc(), jobs::created_at.asc()))
        .select(Job::as_select())
        .load(conn)
}

/// Records that `command.run` was sent. Only while `queued`; false
/// otherwise.
pub fn mark_dispatched(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::status.eq(JobStatus::Queued)),
    )
    .set(jobs::dispatched_at.eq(now))
    .returning(jobs::id)
    .prepared()
    .changed_one::<JobId>(conn)
}

/// Records the agent's `command.result` with `accepted: true`. Only while
/// the job is active; false otherwise. (A refusal is a [`finish`] with
/// `failed`.)
pub fn mark_accepted(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::status.eq_any(JobStatus::ACTIVE))
            .filter(jobs::accepted_at.is_null()),
    )
    .set(jobs::accepted_at.eq(now))
    .returning(jobs::id)
    .prepared()
    .changed_one::<JobId>(conn)
}

/// `job.started`: `queued` → `running`. False if the job is not queued
/// (already running, or terminal: a late message changes nothing).
pub fn mark_started(conn: &mut DbConnection, id: &str, started_at: i64) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::status.eq(JobStatus::Queued)),
    )
    .set((
        jobs::status.eq(JobStatus::Running),
        jobs::started_at.eq(started_at),
    ))
    .returning(jobs::id)
    .prepared()
    .changed_one::<JobId>(conn)
}

/// Keeps the latest `job.progress` (of the job it names). Only while the
/// job is active; false otherwise.
pub fn update_progress(conn: &mut DbConnection, progress: &JobProgress) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .find(&progress.job_id)
            .filter(jobs::status.eq_any(JobStatus::ACTIVE)),
    )
    .set(jobs::progress.eq(Json(Some(progress.clone()))))
    .execute(conn)
    .map(|n| n == 1)
}

/// Makes a job terminal, once: the change applies only if the job is
/// still `queued` or `running`, so a repeated `job.finished` (at-least-once
/// delivery) or a report after a cancel leaves the first outcome in place.
/// A pending `retry_at` is cleared. `finish.status` must be terminal
/// (otherwise a `QueryBuilderError`, nothing written).
pub fn finish(conn: &mut DbConnection, id: &str, finish: &JobFinish) -> QueryResult<FinishOutcome> {
    require_terminal(id, finish)?;
    let updated = diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::status.eq_any(JobStatus::ACTIVE)),
    )
    .set((finish.clone(), jobs::retry_at.eq(None::<i64>)))
    .returning(jobs::all_columns)
    .prepared()
    .get_result::<Job>(conn)
    .optional()?;
    not_applied(conn, id, None, updated)
}

/// [`finish`] for a job of `host_id`; another host's job is `NotFound`.
/// One statement when the job was active (no read first, no
/// transaction: issue 19, a round trip less per job on PostgreSQL).
pub fn finish_for_host(
    conn: &mut DbConnection,
    host_id: &HostId,
    id: &JobId,
    finish: &JobFinish,
) -> QueryResult<FinishOutcome> {
    require_terminal(id, finish)?;
    let updated = diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::host_id.eq(host_id))
            .filter(jobs::status.eq_any(JobStatus::ACTIVE)),
    )
    .set((finish.clone(), jobs::retry_at.eq(None::<i64>)))
    .returning(jobs::all_columns)
    .prepared()
    .get_result::<Job>(conn)
    .optional()?;
    not_applied(conn, id, Some(host_id), updated)
}

/// A `QueryBuilderError` (nothing written) unless `finish` is terminal.
fn require_terminal(id: &str, finish: &JobFinish) -> QueryResult<()> {
    if finish.status.is_terminal() {
        return Ok(());
    }
    Err(DieselError::QueryBuilderError(
        format!(
            "cannot finish job {id} with non-terminal status {}",
            finish.status
        )
        .into(),
    ))
}

/// The outcome of a finishing `UPDATE … RETURNING`: applied if it
/// changed the row, else the job as it is (of `host_id`, when given).
fn not_applied(
    conn: &mut DbConnection,
    id: &str,
    host_id: Option<&HostId>,
    updated: Option<Job>,
) -> QueryResult<FinishOutcome> {
    if let Some(job) = updated {
        return Ok(FinishOutcome::Applied(job));
    }
    Ok(
        match get(conn, id)?.filter(|job| host_id.is_none_or(|h| job.host_id == *h)) {
            Some(job) => FinishOutcome::AlreadyFinished(job),
            None => FinishOutcome::NotFound,
        },
    )
}

/// The number of jobs per (kind, status), for `/metrics`.
pub fn count_by_kind_status(
    conn: &mut DbConnection,
) -> QueryResult<Vec<(JobKind, JobStatus, i64)>> {
    let rows: Vec<(JobKind, JobStatus, i64)> = jobs::table
        .group_by((jobs::kind, jobs::status))
        .select((jobs::kind, jobs::status, diesel::dsl::count_star()))
        .load(conn)?;
    // Merge in Rust: grouping is by text, and the order should not depend
    // on the backend's collation.
    let mut merged: HashMap<(JobKind, JobStatus), i64> = HashMap::new();
    for (kind, status, n) in rows {
        *merged.entry((kind, status)).or_default() += n;
    }
    let mut out: Vec<_> = merged.into_iter().map(|((k, s), n)| (k, s, n)).collect();
    out.sort_by_key(|(k, s, _)| (k.as_str(), s.as_str()));
    Ok(out)
}

/// Deletes a job and its log lines. False if it did not exist.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(jobs::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}
