//! Read-only queries behind the web UI's overview pages: the fleet's hosts
//! in brief, every source group, the latest backup result per host and
//! group, the backup outcomes and missed runs of a time window (the fleet
//! calendar) and job counts since a time. Nothing here writes.
//!
//! They are shaped for one page render each: few round trips, narrow
//! columns, and bounded by the caller's host list where a fleet-wide
//! answer could be large.

use diesel::prelude::*;

use super::models::{Job, MissedRun, SourceGroup};
use super::schema::{hosts, jobs, missed_runs, source_groups};
use super::types::{JobKind, JobStatus};
use super::DbConnection;

/// The most host ids one `IN (…)` list carries (SQLite's bind limit is
/// far above; this keeps statements small).
const IDS_PER_QUERY: usize = 500;

/// A host as the overview pages list it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = hosts)]
pub struct HostBrief {
    pub id: String,
    pub hostname: String,
    pub display_name: Option<String>,
    pub online: bool,
    pub last_seen_at: Option<i64>,
}

/// One finished backup, reduced to what the calendar colours by.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct BackupOutcome {
    pub host_id: String,
    /// When it finished (Unix ms); `None` never occurs for a terminal job
    /// written by the server, but the column is nullable.
    pub finished_at: Option<i64>,
    pub status: JobStatus,
    /// restic's warning (a backup that succeeded with exit code 3).
    pub warning: Option<String>,
}

/// Every host that is not revoked, ordered by hostname.
pub fn hosts_brief(conn: &mut DbConnection) -> QueryResult<Vec<HostBrief>> {
    hosts::table
        .filter(hosts::revoked_at.is_null())
        .order((hosts::hostname.asc(), hosts::id.asc()))
        .select(HostBrief::as_select())
        .load(conn)
}

/// Every source group of every host, ordered by host and name.
pub fn all_source_groups(conn: &mut DbConnection) -> QueryResult<Vec<SourceGroup>> {
    source_groups::table
        .order((source_groups::host_id.asc(), source_groups::name.asc()))
        .select(SourceGroup::as_select())
        .load(conn)
}

/// The latest finished backup job of every (host, source group) pair.
/// "Latest" is the most recently created: job ids are UUID v7, so the
/// greatest id of a group is its newest job (a retry is newer than the
/// attempt it retries).
pub fn latest_backup_results(conn: &mut DbConnection) -> QueryResult<Vec<Job>> {
    let ids: Vec<Option<String>> = jobs::table
        .filter(jobs::kind.eq(JobKind::Backup))
        .filter(jobs::status.eq_any(JobStatus::TERMINAL))
        .filter(jobs::source_group_id.is_not_null())
        .group_by((jobs::host_id, jobs::source_group_id))
        .select(diesel::dsl::max(jobs::id))
        .load(conn)?;
    let ids: Vec<String> = ids.into_iter().flatten().collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        out.extend(
            jobs::table
                .filter(jobs::id.eq_any(chunk))
                .select(Job::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// The finished backups of these hosts that finished at or after `since`
/// (Unix ms), oldest first.
pub fn backup_outcomes_since(
    conn: &mut DbConnection,
    host_ids: &[String],
    since: i64,
) -> QueryResult<Vec<BackupOutcome>> {
    let mut out = Vec::new();
    for chunk in host_ids.chunks(IDS_PER_QUERY) {
        out.extend(
            jobs::table
                .filter(jobs::host_id.eq_any(chunk))
                .filter(jobs::kind.eq(JobKind::Backup))
                .filter(jobs::status.eq_any(JobStatus::TERMINAL))
                .filter(jobs::finished_at.ge(since))
                .order((jobs::finished_at.asc(), jobs::id.asc()))
                .select((
                    jobs::host_id,
                    jobs::finished_at,
                    jobs::status,
                    jobs::warning,
                ))
                .load::<BackupOutcome>(conn)?,
        );
    }
    Ok(out)
}

/// The missed runs of these hosts scheduled at or after `since` (Unix
/// ms), oldest first.
pub fn missed_runs_since(
    conn: &mut DbConnection,
    host_ids: &[String],
    since: i64,
) -> QueryResult<Vec<MissedRun>> {
    let mut out = Vec::new();
    for chunk in host_ids.chunks(IDS_PER_QUERY) {
        out.extend(
            missed_runs::table
                .filter(missed_runs::host_id.eq_any(chunk))
                .filter(missed_runs::scheduled_at.ge(since))
                .order((missed_runs::scheduled_at.asc(), missed_runs::id.asc()))
                .select(MissedRun::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// How many jobs of `kind` created at or after `since` ended in each
/// terminal status: `(succeeded, failed, cancelled)`.
pub fn job_outcome_counts_since(
    conn: &mut DbConnection,
    kind: JobKind,
    since: i64,
) -> QueryResult<(i64, i64, i64)> {
    let mut count = |status: JobStatus| -> QueryResult<i64> {
        jobs::table
            .filter(jobs::kind.eq(kind))
            .filter(jobs::status.eq(status))
            .filter(jobs::created_at.ge(since))
            .count()
            .get_result(conn)
    };
    Ok((
        count(JobStatus::Succeeded)?,
        count(JobStatus::Failed)?,
        count(JobStatus::Cancelled)?,
    ))
}

/// The jobs of one host that are still queued or running, oldest first.
pub fn active_jobs_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::host_id.eq(host_id))
        .filter(jobs::status.eq_any(JobStatus::ACTIVE))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .load(conn)
}
