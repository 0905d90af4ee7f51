//! Queries on `repo_stats`: the time series of a host's repository
//! statistics (`repo.stats`), one row per report.

use diesel::prelude::*;

use super::models::{NewRepoStats, RepoStats};
use super::paged::PagedDsl;
use super::schema::repo_stats;
use super::{clamp_limit, DbConnection, MAX_PAGE};

/// Stores one sample.
pub fn insert(conn: &mut DbConnection, new: &NewRepoStats) -> QueryResult<RepoStats> {
    diesel::insert_into(repo_stats::table)
        .values(new)
        .returning(repo_stats::all_columns)
        .get_result(conn)
}

/// The host's samples recorded at or after `since` (all if `None`),
/// oldest first; if there are more than `limit`, the most recent `limit`.
pub fn list_for_host(
    conn: &mut DbConnection,
    host_id: &str,
    since: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<RepoStats>> {
    let mut query = repo_stats::table
        .filter(repo_stats::host_id.eq(host_id))
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(repo_stats::recorded_at.ge(since));
    }
    let mut rows: Vec<RepoStats> = query
        .order((repo_stats::recorded_at.desc(), repo_stats::id.desc()))
        .select(RepoStats::as_select())
        .paged(clamp_limit(limit, MAX_PAGE), 0)
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// The host's most recent sample.
pub fn latest_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<RepoStats>> {
    repo_stats::table
        .filter(repo_stats::host_id.eq(host_id))
        .order((repo_stats::recorded_at.desc(), repo_stats::id.desc()))
        .select(RepoStats::as_select())
        .first(conn)
        .optional()
}
