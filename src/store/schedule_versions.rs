//! Queries on `host_schedule_version`: the version of each host's
//! canonical schedule list, the version last pushed in `schedule.set` and
//! the version the agent acked. Every change to a host's schedules, source
//! groups or repository [`bump`]s it.

use diesel::prelude::*;

use super::models::HostScheduleVersion;
use super::schema::host_schedule_version as hsv;
use super::{per_backend, DbConnection};

/// The host's versions, if it has a row (every host made by
/// `hosts::insert` has one).
pub fn get(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<HostScheduleVersion>> {
    hsv::table
        .find(host_id)
        .select(HostScheduleVersion::as_select())
        .first(conn)
        .optional()
}

/// Increments the host's version and returns the new one, atomically (one
/// upsert; a missing row counts as version 0). The host must exist.
pub fn bump(conn: &mut DbConnection, host_id: &str) -> QueryResult<i64> {
    per_backend!(conn, |c| diesel::insert_into(hsv::table)
        .values((hsv::host_id.eq(host_id), hsv::version.eq(1_i64)))
        .on_conflict(hsv::host_id)
        .do_update()
        .set(hsv::version.eq(hsv::version + 1_i64))
        .returning(hsv::version)
        .get_result(c))
}

/// Records that `version` was sent to the agent at `now`. False if the
/// host has no row.
pub fn mark_pushed(
    conn: &mut DbConnection,
    host_id: &str,
    version: i64,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(hsv::table.find(host_id))
        .set((hsv::pushed_version.eq(version), hsv::pushed_at.eq(now)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Records the agent's `schedule.ack` of `version`, only if it is the
/// host's current version (a late ack of an older push changes nothing).
/// True if it was recorded.
pub fn ack(conn: &mut DbConnection, host_id: &str, version: i64, now: i64) -> QueryResult<bool> {
    diesel::update(hsv::table.find(host_id).filter(hsv::version.eq(version)))
        .set((hsv::acked_version.eq(version), hsv::acked_at.eq(now)))
        .execute(conn)
        .map(|n| n == 1)
}
