//! Paged reads the REST API needs beyond the per-table modules: a host's
//! snapshots and its repository statistics, each as a [`Page`] with the
//! total that match.

use diesel::prelude::*;

use super::models::{RepoStats, Snapshot};
use super::paged::PagedDsl;
use super::schema::{repo_stats, snapshots};
use super::types::Page;
use super::{clamp_limit, page_total, DbConnection, MAX_PAGE};

/// The host's snapshots, newest first, one page of them.
pub fn snapshots_page(
    conn: &mut DbConnection,
    host_id: &str,
    limit: i64,
    offset: i64,
) -> QueryResult<Page<Snapshot>> {
    let limit = clamp_limit(limit, MAX_PAGE);
    let offset = offset.max(0);
    let items = snapshots::table
        .filter(snapshots::host_id.eq(host_id))
        .order((snapshots::time.desc(), snapshots::snapshot_id.asc()))
        .select(Snapshot::as_select())
        .paged(limit, offset)
        .load(conn)?;
    let total = page_total(items.len(), limit, offset, || {
        snapshots::table
            .filter(snapshots::host_id.eq(host_id))
            .count()
            .get_result(conn)
    })?;
    Ok(Page { items, total })
}

fn stats_filtered<'a>(
    host_id: &'a str,
    since: Option<i64>,
) -> repo_stats::BoxedQuery<'a, super::MultiBackend> {
    let mut query = repo_stats::table
        .filter(repo_stats::host_id.eq(host_id))
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(repo_stats::recorded_at.ge(since));
    }
    query
}

/// The host's statistics samples recorded at or after `since` (all if
/// `None`), oldest first (a time series), one page of them.
pub fn repo_stats_page(
    conn: &mut DbConnection,
    host_id: &str,
    since: Option<i64>,
    limit: i64,
    offset: i64,
) -> QueryResult<Page<RepoStats>> {
    let limit = clamp_limit(limit, MAX_PAGE);
    let offset = offset.max(0);
    let items = stats_filtered(host_id, since)
        .order((repo_stats::recorded_at.asc(), repo_stats::id.asc()))
        .select(RepoStats::as_select())
        .paged(limit, offset)
        .load(conn)?;
    let total = page_total(items.len(), limit, offset, || {
        stats_filtered(host_id, since).count().get_result(conn)
    })?;
    Ok(Page { items, total })
}
