//! Queries on `source_groups`: what a host backs up (includes, excludes),
//! how long it keeps it (retention policy) and how it retries. Names are
//! unique per host: a duplicate is diesel's `UniqueViolation` (the API's
//! 409). Deleting a group removes its schedule links (cascade) and leaves
//! its past jobs with `source_group_id` NULL.

use diesel::prelude::*;

use super::models::{NewSourceGroup, SourceGroup, SourceGroupChanges};
use super::schema::source_groups as sg;
use super::{DbConnection, INSERT_CHUNK_ROWS};
use crate::ids::{HostId, SourceGroupId};

/// Creates a source group.
pub fn insert(conn: &mut DbConnection, new: &NewSourceGroup) -> QueryResult<SourceGroup> {
    diesel::insert_into(sg::table)
        .values(new.clone())
        .execute(conn)?;
    get(conn, &new.id)?.ok_or(diesel::result::Error::NotFound)
}

/// The group with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SourceGroup>> {
    sg::table
        .find(id)
        .select(SourceGroup::as_select())
        .first(conn)
        .optional()
}

/// The group with this id if it belongs to this host.
pub fn get_for_host(
    conn: &mut DbConnection,
    host_id: &HostId,
    id: &SourceGroupId,
) -> QueryResult<Option<SourceGroup>> {
    sg::table
        .find(id)
        .filter(sg::host_id.eq(host_id))
        .select(SourceGroup::as_select())
        .first(conn)
        .optional()
}

/// The host's group with this name.
pub fn by_name(
    conn: &mut DbConnection,
    host_id: &str,
    name: &str,
) -> QueryResult<Option<SourceGroup>> {
    sg::table
        .filter(sg::host_id.eq(host_id))
        .filter(sg::name.eq(name))
        .select(SourceGroup::as_select())
        .first(conn)
        .optional()
}

/// The host's groups with these names, ordered by name as
/// [`super::schedules::groups_of`] orders them (the database's collation;
/// per 500 names), a name it does not have left out: one read for a
/// schedule's groups, where [`by_name`] per name is a round trip each on
/// PostgreSQL.
pub fn by_names(
    conn: &mut DbConnection,
    host_id: &str,
    names: &[String],
) -> QueryResult<Vec<SourceGroup>> {
    let mut groups = Vec::with_capacity(names.len());
    for chunk in names.chunks(INSERT_CHUNK_ROWS) {
        groups.extend(
            sg::table
                .filter(sg::host_id.eq(host_id))
                .filter(sg::name.eq_any(chunk))
                .order(sg::name.asc())
                .select(SourceGroup::as_select())
                .load(conn)?,
        );
    }
    Ok(groups)
}

/// The host's groups, ordered by name.
pub fn list_for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<SourceGroup>> {
    sg::table
        .filter(sg::host_id.eq(host_id))
        .order(sg::name.asc())
        .select(SourceGroup::as_select())
        .load(conn)
}

/// Changes a group. `None` if it does not exist.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &SourceGroupChanges,
    now: i64,
) -> QueryResult<Option<SourceGroup>> {
    diesel::update(sg::table.find(id))
        .set((changes.clone(), sg::updated_at.eq(now)))
        .execute(conn)?;
    get(conn, id)
}

/// Deletes a group. False if it did not exist.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(sg::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}
