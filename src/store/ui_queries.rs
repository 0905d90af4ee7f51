//! Read-only queries behind the web UI's overview pages: hosts in brief
//! by backup state (one capped page each), the latest backup result per
//! host and source group, the backup outcomes and missed runs of a time
//! window (the fleet calendar) and job outcome counts since a time.
//! Nothing here writes.
//!
//! They are shaped for one page render each and bounded whatever the
//! fleet's size: fleet-wide figures come from the summary rows triggers
//! keep (`backup_latest`, `job_outcomes_hourly`, `hosts.last_backup_at`),
//! lists are capped pages, and per-host reads are bounded by the caller's
//! host list. None of them reads every job.

use diesel::prelude::*;

use super::hosts::{filtered, HostFilter};
use super::models::{Job, MissedRun};
use super::paged::PagedDsl;
use super::schema::{
    backup_latest, hosts, job_outcomes_hourly, jobs, missed_runs, source_groups, users,
};
use super::types::{JobKind, JobStatus};
use super::{clamp_limit, DbConnection, MAX_PAGE};

/// The most host ids one `IN (…)` list carries (SQLite's bind limit is
/// far above; this keeps statements small).
const IDS_PER_QUERY: usize = 500;
/// Milliseconds per `job_outcomes_hourly` hour.
const HOUR_MS: i64 = 3_600_000;

/// A host as the overview pages list it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = hosts)]
pub struct HostBrief {
    pub id: String,
    pub hostname: String,
    pub display_name: Option<String>,
    pub online: bool,
    pub last_seen_at: Option<i64>,
    /// Finish time of its newest succeeded backup.
    pub last_backup_at: Option<i64>,
}

/// The latest finished backup of one host and source group.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct LatestResult {
    pub host_id: String,
    /// The source group's name.
    pub group: String,
    pub job_id: String,
    pub status: JobStatus,
    /// restic reported a warning (exit code 3).
    pub warning: bool,
    pub finished_at: Option<i64>,
}

/// One finished backup or drill, reduced to what the calendar colours by.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct JobOutcome {
    pub host_id: String,
    /// When it finished (Unix ms); `None` never occurs for a terminal job
    /// written by the server, but the column is nullable.
    pub finished_at: Option<i64>,
    pub status: JobStatus,
    /// restic's warning (a backup that succeeded with exit code 3).
    pub warning: Option<String>,
}

/// The hosts matching `filter`, in natural order of their names, at most
/// `filter.limit` (its offset applies).
pub fn hosts_brief(conn: &mut DbConnection, filter: &HostFilter) -> QueryResult<Vec<HostBrief>> {
    filtered(filter)
        .order((hosts::sort_key.asc(), hosts::id.asc()))
        .select(HostBrief::as_select())
        .paged(clamp_limit(filter.limit, MAX_PAGE), filter.offset.max(0))
        .load(conn)
}

/// Failing (host, source group) pairs: the latest backup failed. The
/// first `limit` in natural order of the host names, with their hosts.
pub fn failed_results(
    conn: &mut DbConnection,
    limit: i64,
) -> QueryResult<Vec<(HostBrief, LatestResult)>> {
    backup_latest::table
        .inner_join(hosts::table)
        .inner_join(source_groups::table)
        .filter(hosts::revoked_at.is_null())
        .filter(backup_latest::status.eq(JobStatus::Failed))
        .order((
            hosts::sort_key.asc(),
            hosts::id.asc(),
            source_groups::name.asc(),
        ))
        .select((
            HostBrief::as_select(),
            (
                backup_latest::host_id,
                source_groups::name,
                backup_latest::job_id,
                backup_latest::status,
                backup_latest::warning,
                backup_latest::finished_at,
            ),
        ))
        .paged(clamp_limit(limit, MAX_PAGE), 0)
        .load(conn)
}

/// The latest backup result of every source group of these hosts, by
/// host and group name.
pub fn latest_results(
    conn: &mut DbConnection,
    host_ids: &[String],
) -> QueryResult<Vec<LatestResult>> {
    let mut out = Vec::new();
    for chunk in host_ids.chunks(IDS_PER_QUERY) {
        out.extend(
            backup_latest::table
                .inner_join(source_groups::table)
                .filter(backup_latest::host_id.eq_any(chunk))
                .order((backup_latest::host_id.asc(), source_groups::name.asc()))
                .select((
                    backup_latest::host_id,
                    source_groups::name,
                    backup_latest::job_id,
                    backup_latest::status,
                    backup_latest::warning,
                    backup_latest::finished_at,
                ))
                .load::<LatestResult>(conn)?,
        );
    }
    Ok(out)
}

/// How many jobs of `kind` ended at or after `since` (Unix ms, rounded
/// down to the hour) in each terminal status: `(succeeded, failed,
/// cancelled)`. Read from the hourly summary rows.
pub fn job_outcome_counts_since(
    conn: &mut DbConnection,
    kind: JobKind,
    since: i64,
) -> QueryResult<(i64, i64, i64)> {
    let rows: Vec<(JobStatus, i64)> = job_outcomes_hourly::table
        .filter(job_outcomes_hourly::hour.ge(since.div_euclid(HOUR_MS)))
        .filter(job_outcomes_hourly::kind.eq(kind))
        .select((job_outcomes_hourly::status, job_outcomes_hourly::n))
        .load(conn)?;
    let mut out = (0, 0, 0);
    for (status, n) in rows {
        match status {
            JobStatus::Succeeded => out.0 += n,
            JobStatus::Failed => out.1 += n,
            JobStatus::Cancelled => out.2 += n,
            _ => {}
        }
    }
    Ok(out)
}

/// How many runs were missed at or after `since` (Unix ms).
pub fn missed_run_count_since(conn: &mut DbConnection, since: i64) -> QueryResult<i64> {
    missed_runs::table
        .filter(missed_runs::scheduled_at.ge(since))
        .count()
        .get_result(conn)
}

/// The finished jobs of `kind` (backups for the calendar, drills for its
/// verified view) of these hosts that finished at or after `since` (Unix
/// ms), oldest first.
pub fn outcomes_since(
    conn: &mut DbConnection,
    host_ids: &[String],
    kind: JobKind,
    since: i64,
) -> QueryResult<Vec<JobOutcome>> {
    let mut out = Vec::new();
    for chunk in host_ids.chunks(IDS_PER_QUERY) {
        out.extend(
            jobs::table
                .filter(jobs::host_id.eq_any(chunk))
                .filter(jobs::kind.eq(kind))
                .filter(jobs::status.eq_any(JobStatus::TERMINAL))
                .filter(jobs::finished_at.ge(since))
                .order((jobs::finished_at.asc(), jobs::id.asc()))
                .select((
                    jobs::host_id,
                    jobs::finished_at,
                    jobs::status,
                    jobs::warning,
                ))
                .load::<JobOutcome>(conn)?,
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

/// The jobs of one host that are still queued or running, oldest first.
pub fn active_jobs_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<Job>> {
    jobs::table
        .filter(jobs::host_id.eq(host_id))
        .filter(jobs::status.eq_any(JobStatus::ACTIVE))
        .order((jobs::created_at.asc(), jobs::id.asc()))
        .select(Job::as_select())
        .load(conn)
}

/// What an audit target id names, when it is a host or a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetName {
    /// A host: its display name, else its host name.
    Host(String),
    /// A user: the user name.
    User(String),
}

/// The hosts and users among `ids` (audit targets), by id; ids of other
/// things (jobs, schedules, tokens) are simply absent. Bounded by the
/// caller's list (one audit page).
pub fn target_names(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<std::collections::HashMap<String, TargetName>> {
    let mut names = std::collections::HashMap::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let found: Vec<(String, String, Option<String>)> = hosts::table
            .filter(hosts::id.eq_any(chunk))
            .select((hosts::id, hosts::hostname, hosts::display_name))
            .load(conn)?;
        for (id, hostname, display) in found {
            names.insert(id, TargetName::Host(display.unwrap_or(hostname)));
        }
        let found: Vec<(String, String)> = users::table
            .filter(users::id.eq_any(chunk))
            .select((users::id, users::username))
            .load(conn)?;
        for (id, username) in found {
            names.insert(id, TargetName::User(username));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    //! The summary rows (kept by the `fleet_summary` migration's
    //! triggers) against the store's own writes, and the host list's
    //! order and filters, on a temporary SQLite database.

    use super::*;
    use crate::store::hosts::{self, Health};
    use crate::store::models::{JobFinish, NewHost, NewJob, NewSourceGroup};
    use crate::store::{
        admin_queries, connect, jobs as job_store, source_groups, JobTrigger, Pool,
    };

    const NOW: i64 = 100 * 86_400_000;

    fn pool() -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(dir.path().join("t.db").to_str().unwrap(), 1).unwrap();
        (dir, pool)
    }

    fn add_host(c: &mut DbConnection, name: &str, labels: &str) -> String {
        let id = crate::store::new_id();
        hosts::insert(
            c,
            &NewHost {
                labels: serde_json::from_str(labels).unwrap(),
                arch: "x86_64".into(),
                ..NewHost::new(id.clone(), name, format!("hash-{id}"), 0)
            },
        )
        .unwrap();
        id
    }

    fn add_group(c: &mut DbConnection, host: &str, name: &str) -> String {
        let id = crate::store::new_id();
        source_groups::insert(
            c,
            &NewSourceGroup {
                id: id.clone().into(),
                host_id: host.into(),
                name: name.into(),
                includes: Vec::new(),
                excludes: Vec::new(),
                retention_policy: None,
                retry_max: 0,
                retry_backoff_seconds: 300,
                created_at: 0,
                updated_at: 0,
                prune_after_forget: false,
                kind: "files".to_owned(),
                dump: None,
                dump_password_sealed: None,
                options: None,
            },
        )
        .unwrap();
        id
    }

    /// Runs a backup of the group to `status`, finished at `at`.
    fn backup(c: &mut DbConnection, host: &str, group: &str, status: JobStatus, at: i64) -> String {
        let job = job_store::insert(
            c,
            &NewJob {
                source_group_id: Some(group.into()),
                tag: Some("docs".into()),
                ..NewJob::new(
                    crate::store::new_id(),
                    host,
                    JobKind::Backup,
                    JobTrigger::Manual,
                    at - 1000,
                )
            },
        )
        .unwrap();
        assert!(job_store::mark_started(c, &job.id, at - 500).unwrap());
        let finish = JobFinish {
            status,
            finished_at: at,
            exit_code: Some(0),
            error: None,
            warning: None,
            stats: None,
        };
        assert!(job_store::finish(c, &job.id, &finish).unwrap().applied());
        job.id.into()
    }

    fn names(c: &mut DbConnection, filter: HostFilter) -> Vec<String> {
        hosts::list(
            c,
            &HostFilter {
                limit: 100,
                ..filter
            },
        )
        .unwrap()
        .items
        .into_iter()
        .map(|h| h.host.hostname)
        .collect()
    }

    /// The host list is in natural order, and its label filter matches
    /// labels as they are set and changed.
    #[test]
    fn natural_order_and_label_filter() {
        let (_dir, pool) = pool();
        let c = &mut pool.get().unwrap();
        for (name, env) in [
            ("web-10", "prod"),
            ("web-2", "dev"),
            ("web-1", "prod"),
            ("db-3", "prod"),
        ] {
            add_host(c, name, &format!("{{\"env\":\"{env}\"}}"));
        }
        assert_eq!(
            names(c, HostFilter::default()),
            ["db-3", "web-1", "web-2", "web-10"]
        );
        let prod = || HostFilter {
            labels: vec![("env".into(), "prod".into())],
            ..HostFilter::default()
        };
        assert_eq!(names(c, prod()), ["db-3", "web-1", "web-10"]);
        let page = hosts::list(
            c,
            &HostFilter {
                limit: 1,
                offset: 1,
                ..prod()
            },
        )
        .unwrap();
        assert_eq!(
            (page.total, page.items[0].host.hostname.as_str()),
            (3, "web-1")
        );
        // A relabelled host leaves the filter; the triggers keep the rows.
        let web10 = hosts::list(
            c,
            &HostFilter {
                query: Some("web-10".into()),
                limit: 1,
                ..HostFilter::default()
            },
        )
        .unwrap()
        .items[0]
            .host
            .id
            .clone();
        let patch = crate::store::models::HostPatch {
            labels: Some([("env".to_owned(), "dev".to_owned())].into()),
            ..Default::default()
        };
        hosts::patch(c, &web10, &patch, NOW).unwrap().unwrap();
        assert_eq!(names(c, prod()), ["db-3", "web-1"]);
    }

    /// Finishing backups keeps `backup_latest`, the host's last backup
    /// time, the hourly outcomes and the job counts in step; the health
    /// filters read them; deleting a host takes its counts away.
    #[test]
    fn summaries_follow_the_writes() {
        let (_dir, pool) = pool();
        let c = &mut pool.get().unwrap();
        let ok = add_host(c, "ok", "{}");
        let bad = add_host(c, "bad", "{}");
        let old = add_host(c, "old", "{}");
        let _never = add_host(c, "never", "{}");
        for id in [&ok, &bad, &old] {
            hosts::set_online(c, id, true, NOW).unwrap();
        }
        let ok_group = add_group(c, &ok, "docs");
        let bad_group = add_group(c, &bad, "docs");
        let old_group = add_group(c, &old, "docs");
        backup(c, &ok, &ok_group, JobStatus::Failed, NOW - 7_200_000);
        let ok_job = backup(c, &ok, &ok_group, JobStatus::Succeeded, NOW - 3_600_000);
        backup(c, &bad, &bad_group, JobStatus::Succeeded, NOW - 7_200_000);
        let bad_job = backup(c, &bad, &bad_group, JobStatus::Failed, NOW - 3_600_000);
        backup(
            c,
            &old,
            &old_group,
            JobStatus::Succeeded,
            NOW - 10 * 86_400_000,
        );

        let latest = latest_results(c, &[ok.clone(), bad.clone()]).unwrap();
        let by_host = |id: &str| latest.iter().find(|r| r.host_id == id).unwrap().clone();
        assert_eq!(
            (by_host(&ok).job_id, by_host(&ok).status),
            (ok_job, JobStatus::Succeeded)
        );
        assert_eq!(
            (by_host(&bad).job_id, by_host(&bad).status),
            (bad_job, JobStatus::Failed)
        );
        let failed = failed_results(c, 10).unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0.hostname, "bad");

        let health = |c: &mut DbConnection, h: Health| {
            names(
                c,
                HostFilter {
                    health: Some(h),
                    ..HostFilter::default()
                },
            )
        };
        let stale_before = NOW - 3 * 86_400_000;
        assert_eq!(health(c, Health::Failed), ["bad"]);
        assert_eq!(health(c, Health::Never), ["never"]);
        assert_eq!(
            health(
                c,
                Health::Stale {
                    before: stale_before
                }
            ),
            ["old"]
        );
        assert_eq!(
            health(
                c,
                Health::Healthy {
                    missed_since: NOW - 86_400_000,
                    stale_before
                }
            ),
            ["ok"]
        );

        // Two succeeded and two failed in the last day; the old one is older.
        assert_eq!(
            job_outcome_counts_since(c, JobKind::Backup, NOW - 86_400_000).unwrap(),
            (2, 2, 0)
        );
        let counts = admin_queries::jobs_by_kind_and_status(c).unwrap();
        assert_eq!(
            counts,
            [
                (JobKind::Backup, JobStatus::Failed, 2),
                (JobKind::Backup, JobStatus::Succeeded, 3)
            ]
        );
        let last = admin_queries::last_successful_backups(c).unwrap();
        assert_eq!(last.len(), 3, "{last:?}");

        hosts::delete(c, &bad).unwrap();
        let counts = admin_queries::jobs_by_kind_and_status(c).unwrap();
        assert_eq!(
            counts,
            [
                (JobKind::Backup, JobStatus::Failed, 1),
                (JobKind::Backup, JobStatus::Succeeded, 2)
            ]
        );
        assert!(failed_results(c, 10).unwrap().is_empty());
    }
}
