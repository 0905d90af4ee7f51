//! Queries on `schedules` and `schedule_source_groups`: a host's cron
//! schedules and the source groups each one runs, read back in the shape
//! of `schedule.set`.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::models::{
    NewSchedule, Schedule, ScheduleChanges, ScheduleSourceGroup, ScheduleWithGroups, SourceGroup,
};
use super::schema::{hosts, schedule_source_groups as ssg, schedules, source_groups as sg};
use super::{per_backend, write_transaction, DbConnection, INSERT_CHUNK_ROWS};
use crate::ids::{HostId, ScheduleId};

/// [`Schedule`]'s columns in its field order, for `RETURNING` (the
/// multi-backend connection takes a column tuple there, not `as_returning`).
type ScheduleColumns = (
    schedules::id,
    schedules::host_id,
    schedules::cron_expr,
    schedules::enabled,
    schedules::created_at,
    schedules::updated_at,
    schedules::kind,
);

/// Creates a schedule (without groups: see [`set_groups`]).
/// `RETURNING`, not a read after it: one round trip on PostgreSQL's writer.
pub fn insert(conn: &mut DbConnection, new: &NewSchedule) -> QueryResult<Schedule> {
    diesel::insert_into(schedules::table)
        .values(new)
        .returning(ScheduleColumns::default())
        .get_result::<Schedule>(conn)
}

/// The schedule with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Schedule>> {
    schedules::table
        .find(id)
        .select(Schedule::as_select())
        .first(conn)
        .optional()
}

/// The schedule with this id if it belongs to this host.
pub fn get_for_host(
    conn: &mut DbConnection,
    host_id: &HostId,
    id: &ScheduleId,
) -> QueryResult<Option<Schedule>> {
    schedules::table
        .find(id)
        .filter(schedules::host_id.eq(host_id))
        .select(Schedule::as_select())
        .first(conn)
        .optional()
}

/// The host's schedules in creation order.
pub fn list_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<Schedule>> {
    schedules::table
        .filter(schedules::host_id.eq(host_id))
        .order((schedules::created_at.asc(), schedules::id.asc()))
        .select(Schedule::as_select())
        .load(conn)
}

/// The distinct cron expressions of enabled schedules (the missed-run
/// check: a fleet of 15,000 hosts with 20 policies has 300,000 rows and a
/// handful of expressions).
pub fn enabled_cron_exprs(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    schedules::table
        .filter(schedules::enabled.eq(true))
        .select(schedules::cron_expr)
        .distinct()
        .load(conn)
}

/// The enabled schedules of non-revoked hosts with this cron expression,
/// last changed before `updated_before` (the missed-run check: the others
/// have no cron time left in its window), by host and id.
pub fn list_enabled_with_cron(
    conn: &mut DbConnection,
    cron_expr: &str,
    updated_before: i64,
) -> QueryResult<Vec<Schedule>> {
    schedules::table
        .inner_join(hosts::table)
        .filter(schedules::enabled.eq(true))
        .filter(schedules::cron_expr.eq(cron_expr))
        .filter(schedules::updated_at.lt(updated_before))
        .filter(hosts::revoked_at.is_null())
        .order((schedules::host_id.asc(), schedules::id.asc()))
        .select(Schedule::as_select())
        .load(conn)
}

/// Changes a schedule and returns it as changed (`RETURNING`: one round
/// trip). `None` if it does not exist.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &ScheduleChanges,
    now: i64,
) -> QueryResult<Option<Schedule>> {
    diesel::update(schedules::table.find(id))
        .set((changes, schedules::updated_at.eq(now)))
        .returning(ScheduleColumns::default())
        .get_result::<Schedule>(conn)
        .optional()
}

/// The `policy_id` (`None` for one of the host's own, which no policy
/// manages) and `cron_expr` of the host's schedule `id`, or `None` if the
/// host has no such schedule. The check before a change, and what its
/// audit row names, in one read.
pub fn policy_of(
    conn: &mut DbConnection,
    host_id: &str,
    id: &str,
) -> QueryResult<Option<(Option<String>, String)>> {
    schedules::table
        .find(id)
        .filter(schedules::host_id.eq(host_id))
        .select((schedules::policy_id, schedules::cron_expr))
        .first(conn)
        .optional()
}

/// Deletes a schedule and its group links. False if it did not exist.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(schedules::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// Replaces the source groups a schedule runs, in one transaction. Every
/// group must belong to the schedule's host: otherwise nothing changes and
/// the error is a `ForeignKeyViolation` naming the problem. `NotFound` if
/// the schedule does not exist.
pub fn set_groups(
    conn: &mut DbConnection,
    schedule_id: &ScheduleId,
    group_ids: &[String],
) -> QueryResult<()> {
    write_transaction(conn, |conn| {
        let host_id: String = schedules::table
            .find(schedule_id)
            .select(schedules::host_id)
            .first(conn)?;
        let mut wanted: Vec<&str> = group_ids.iter().map(String::as_str).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut found = 0;
        for chunk in wanted.chunks(INSERT_CHUNK_ROWS) {
            let n: i64 = sg::table
                .filter(sg::id.eq_any(chunk))
                .filter(sg::host_id.eq(&host_id))
                .count()
                .get_result(conn)?;
            found += usize::try_from(n).unwrap_or(usize::MAX);
        }
        if found != wanted.len() {
            return Err(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                Box::new(format!(
                    "{} of the source groups do not exist on host {host_id}",
                    wanted.len().saturating_sub(found)
                )),
            ));
        }
        replace_groups(conn, schedule_id, &wanted)
    })
}

/// Replaces the source groups a schedule runs, without [`set_groups`]'
/// checks: for a caller inside its write transaction that has just read
/// these groups from the schedule's host (a delete and an insert: on
/// PostgreSQL's one writer, four round trips fewer than `set_groups`).
/// `group_ids` must be distinct.
pub fn replace_groups(
    conn: &mut DbConnection,
    schedule_id: &str,
    group_ids: &[&str],
) -> QueryResult<()> {
    diesel::delete(ssg::table.filter(ssg::schedule_id.eq(schedule_id))).execute(conn)?;
    let links: Vec<ScheduleSourceGroup> = group_ids
        .iter()
        .map(|g| ScheduleSourceGroup {
            schedule_id: schedule_id.to_owned().into(),
            source_group_id: (*g).to_owned().into(),
        })
        .collect();
    for chunk in links.chunks(INSERT_CHUNK_ROWS) {
        // Multi-row VALUES: not expressible on the multi-backend.
        per_backend!(&mut *conn, |c| diesel::insert_into(ssg::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// The source groups a schedule runs, ordered by name.
pub fn groups_of(conn: &mut DbConnection, schedule_id: &str) -> QueryResult<Vec<SourceGroup>> {
    ssg::table
        .inner_join(sg::table)
        .filter(ssg::schedule_id.eq(schedule_id))
        .order(sg::name.asc())
        .select(SourceGroup::as_select())
        .load(conn)
}

/// The host's schedules in creation order, each with its groups ordered by
/// name: the canonical list `schedule.set` carries (`super::schedule_set`
/// builds it from fewer rows, and falls back to this).
pub fn list_with_groups_for_host(
    conn: &mut DbConnection,
    host_id: &str,
) -> QueryResult<Vec<ScheduleWithGroups>> {
    // One statement, the schedules joined to their groups (a schedule
    // without groups comes once, without one): on PostgreSQL each
    // statement is a round trip, and this was two. Two flat left joins,
    // not one to a nested join: SQLite computes a nested join on its own,
    // every link of every host (17 ms at 10,000 hosts, not 0.1 ms).
    let rows: Vec<(Schedule, Option<SourceGroup>)> = schedules::table
        .left_join(ssg::table)
        .left_join(sg::table.on(sg::id.eq(ssg::source_group_id)))
        .filter(schedules::host_id.eq(host_id))
        .order((
            schedules::created_at.asc(),
            schedules::id.asc(),
            sg::name.asc(),
        ))
        .select((Schedule::as_select(), Option::<SourceGroup>::as_select()))
        .load(conn)?;
    let mut out: Vec<ScheduleWithGroups> = Vec::new();
    for (schedule, group) in rows {
        if out
            .last()
            .is_none_or(|last| last.schedule.id != schedule.id)
        {
            out.push(ScheduleWithGroups {
                schedule,
                groups: Vec::new(),
            });
        }
        if let (Some(last), Some(group)) = (out.last_mut(), group) {
            last.groups.push(group);
        }
    }
    Ok(out)
}

/// The host's `schedules` (kept in their order), each with its linked
/// groups ordered by name, read in one statement of fixed text (SQLite's
/// prepared-statement cache keeps it). `own_only`: `schedules` holds the
/// host's own rows only, and the links of its policy rows are not read.
pub fn with_groups(
    conn: &mut DbConnection,
    host_id: &str,
    schedules: Vec<Schedule>,
    own_only: bool,
) -> QueryResult<Vec<ScheduleWithGroups>> {
    if schedules.is_empty() {
        return Ok(Vec::new());
    }
    let links = ssg::table
        .inner_join(sg::table)
        .inner_join(schedules::table)
        .filter(schedules::host_id.eq(host_id))
        .order(sg::name.asc())
        .select((ssg::schedule_id, SourceGroup::as_select()));
    let links: Vec<(ScheduleId, SourceGroup)> = if own_only {
        links.filter(schedules::policy_id.is_null()).load(conn)?
    } else {
        links.load(conn)?
    };
    let mut by_schedule: HashMap<ScheduleId, Vec<SourceGroup>> = HashMap::new();
    for (schedule_id, group) in links {
        by_schedule.entry(schedule_id).or_default().push(group);
    }
    Ok(schedules
        .into_iter()
        .map(|schedule| {
            let groups = by_schedule.remove(&schedule.id).unwrap_or_default();
            ScheduleWithGroups { schedule, groups }
        })
        .collect())
}
