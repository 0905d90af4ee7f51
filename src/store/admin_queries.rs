//! Reads the administration API and `/metrics` need beyond the per-table
//! modules: pages of usable enrolment tokens and of API tokens, the
//! usernames behind a set of user ids, the count of enabled admins (the
//! last one may not be removed), and the cheap aggregates `/metrics`
//! exposes (hosts online, jobs by kind and status, last successful backup
//! per host and source group). The job figures come from the summary rows
//! that triggers keep (`job_counts`, `backup_latest`), so a scrape reads a
//! few rows per host, never the jobs table.

use std::collections::HashMap;

use diesel::prelude::*;

use super::models::{ApiToken, EnrollmentToken, User};
use super::paged::PagedDsl;
use super::schema::{api_tokens, backup_latest, enrollment_tokens as et, hosts, job_counts, users};
use super::types::{JobKind, JobStatus, Page, Role};
use super::{clamp_limit, DbConnection, MAX_PAGE};

/// Enrolment tokens still usable at `now` (unused, unrevoked, unexpired),
/// newest first, one page of them.
pub fn usable_enrollment_tokens(
    conn: &mut DbConnection,
    now: i64,
    limit: i64,
    offset: i64,
) -> QueryResult<Page<EnrollmentToken>> {
    let usable = || {
        et::table
            .filter(et::used_at.is_null())
            .filter(et::revoked_at.is_null())
            .filter(et::expires_at.gt(now))
    };
    let items = usable()
        .order((et::created_at.desc(), et::id.desc()))
        .select(EnrollmentToken::as_select())
        .paged(clamp_limit(limit, MAX_PAGE), offset.max(0))
        .load(conn)?;
    let total = usable().count().get_result(conn)?;
    Ok(Page { items, total })
}

/// API tokens that are not revoked (expired ones included), newest
/// first, with their users, one page of them.
pub fn active_api_tokens(
    conn: &mut DbConnection,
    limit: i64,
    offset: i64,
) -> QueryResult<Page<(ApiToken, User)>> {
    let items = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::revoked_at.is_null())
        .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
        .select((ApiToken::as_select(), User::as_select()))
        .paged(clamp_limit(limit, MAX_PAGE), offset)
        .load(conn)?;
    let total = api_tokens::table
        .filter(api_tokens::revoked_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(Page { items, total })
}

/// Username of each of these user ids that exists.
pub fn usernames(conn: &mut DbConnection, ids: &[String]) -> QueryResult<HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::username))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// How many enabled users have the admin role.
pub fn enabled_admins(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table
        .filter(users::role.eq(Role::Admin))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)
}

/// Hosts (not revoked) whose agent is connected.
pub fn hosts_online(conn: &mut DbConnection) -> QueryResult<i64> {
    hosts::table
        .filter(hosts::online.eq(true))
        .filter(hosts::revoked_at.is_null())
        .count()
        .get_result(conn)
}

/// How many jobs there are of each kind and status (pairs with none are
/// absent), from the `job_counts` summary rows.
pub fn jobs_by_kind_and_status(
    conn: &mut DbConnection,
) -> QueryResult<Vec<(JobKind, JobStatus, i64)>> {
    job_counts::table
        .filter(job_counts::n.gt(0))
        .select((job_counts::kind, job_counts::status, job_counts::n))
        .order((job_counts::kind.asc(), job_counts::status.asc()))
        .load(conn)
}

/// One row of [`last_successful_backups`]: host id, source group name
/// (the job's tag) and the latest finish time (Unix ms).
pub type LastBackup = (String, Option<String>, Option<i64>);

/// The latest finish time (Unix ms) of a succeeded backup per host and
/// source group (named by its latest job's tag), for hosts that are not
/// revoked, from the `backup_latest` summary rows.
pub fn last_successful_backups(conn: &mut DbConnection) -> QueryResult<Vec<LastBackup>> {
    backup_latest::table
        .inner_join(hosts::table)
        .filter(hosts::revoked_at.is_null())
        .filter(backup_latest::last_success_at.is_not_null())
        .select((
            backup_latest::host_id,
            backup_latest::tag,
            backup_latest::last_success_at,
        ))
        .order((backup_latest::host_id.asc(), backup_latest::tag.asc()))
        .load(conn)
}
