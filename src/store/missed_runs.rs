//! Queries on `missed_runs`: schedule times that passed with no fire. One
//! row per `(schedule_id, scheduled_at)`, so the scheduler may report the
//! same miss on every tick and it is recorded once.

use diesel::prelude::*;

use super::models::{MissedRun, NewMissedRun};
use super::paged::PagedDsl;
use super::schema::missed_runs;
use super::types::Page;
use super::{clamp_limit, page_total, per_backend, DbConnection, MAX_PAGE};

/// Which missed runs [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct MissedRunFilter {
    pub host_id: Option<String>,
    pub schedule_id: Option<String>,
    /// Scheduled at or after (Unix ms).
    pub since: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// Records a missed run unless that schedule time is already recorded.
/// True if this call stored it.
pub fn insert_ignore(conn: &mut DbConnection, new: &NewMissedRun) -> QueryResult<bool> {
    // ON CONFLICT DO NOTHING: not expressible on the multi-backend.
    per_backend!(conn, |c| diesel::insert_into(missed_runs::table)
        .values(new)
        .on_conflict_do_nothing()
        .execute(c))
    .map(|n| n == 1)
}

/// Forgets the missed run of one schedule time: it did run after all (a
/// backup the agent ran while the server was away, reported later).
/// Returns how many rows went (0 or 1).
pub fn delete_for_fire(
    conn: &mut DbConnection,
    schedule_id: &str,
    scheduled_at: i64,
) -> QueryResult<usize> {
    diesel::delete(
        missed_runs::table
            .filter(missed_runs::schedule_id.eq(schedule_id))
            .filter(missed_runs::scheduled_at.eq(scheduled_at)),
    )
    .execute(conn)
}

fn filtered<'a>(filter: &'a MissedRunFilter) -> missed_runs::BoxedQuery<'a, super::MultiBackend> {
    let mut query = missed_runs::table.into_boxed();
    if let Some(host_id) = &filter.host_id {
        query = query.filter(missed_runs::host_id.eq(host_id));
    }
    if let Some(schedule_id) = &filter.schedule_id {
        query = query.filter(missed_runs::schedule_id.eq(schedule_id));
    }
    if let Some(since) = filter.since {
        query = query.filter(missed_runs::scheduled_at.ge(since));
    }
    query
}

/// Missed runs matching the filter, latest scheduled time first, and the
/// total that match.
pub fn list(conn: &mut DbConnection, filter: &MissedRunFilter) -> QueryResult<Page<MissedRun>> {
    let limit = clamp_limit(filter.limit, MAX_PAGE);
    let offset = filter.offset.max(0);
    let items = filtered(filter)
        .order((missed_runs::scheduled_at.desc(), missed_runs::id.desc()))
        .select(MissedRun::as_select())
        .paged(limit, offset)
        .load(conn)?;
    let total = page_total(items.len(), limit, offset, || {
        filtered(filter).count().get_result(conn)
    })?;
    Ok(Page { items, total })
}
