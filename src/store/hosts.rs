//! Queries on `hosts`: enrolment, the agent-token lookup that guards the
//! WebSocket, what `hello` reports, presence (online / last seen),
//! revocation and the operator's display name and labels.
//!
//! Every host has a `host_schedule_version` row from the moment it is
//! created (version 1, nothing pushed or acked).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::Error as DieselError;

use super::models::{Host, HostHello, HostPatch, HostScheduleVersion, NewHost};
use super::schema::{host_schedule_version as hsv, hosts, repositories};
use super::types::Page;
use super::{clamp_limit, enrollment, write_transaction, DbConnection, MAX_PAGE};

diesel::define_sql_function! {
    /// SQL `lower()`, for case-insensitive search on both backends.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Which hosts [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    /// `Some(true)`: online only; `Some(false)`: offline only.
    pub online: Option<bool>,
    /// Case-insensitive substring of the hostname or display name.
    pub query: Option<String>,
    /// Revoked hosts are left out unless this is set.
    pub include_revoked: bool,
    pub limit: i64,
    pub offset: i64,
}

/// A host with its schedule versions (the API's host object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWithVersion {
    pub host: Host,
    /// `None` only for a row created outside this module.
    pub schedule: Option<HostScheduleVersion>,
}

/// Online and offline counts of the hosts that are not revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostCounts {
    pub online: i64,
    pub offline: i64,
}

/// Creates a host and its schedule-version row in one transaction.
pub fn insert(conn: &mut DbConnection, new: &NewHost) -> QueryResult<Host> {
    write_transaction(conn, |conn| insert_in_tx(conn, new))
}

fn insert_in_tx(conn: &mut DbConnection, new: &NewHost) -> QueryResult<Host> {
    let host: Host = diesel::insert_into(hosts::table)
        .values(new)
        .returning(hosts::all_columns)
        .get_result(conn)?;
    diesel::insert_into(hsv::table)
        .values(hsv::host_id.eq(&host.id))
        .execute(conn)?;
    Ok(host)
}

/// Enrols a host: in one transaction, creates the host (and its
/// schedule-version row) and spends the enrolment token with this hash.
/// `None`, with nothing written, if the token is unknown, used, revoked or
/// expired at `now`.
pub fn enroll_with_token(
    conn: &mut DbConnection,
    token_hash: &str,
    new: &NewHost,
    now: i64,
) -> QueryResult<Option<Host>> {
    let outcome = write_transaction(conn, |conn| {
        let host = insert_in_tx(conn, new)?;
        match enrollment::consume(conn, token_hash, &host.id, now)? {
            Some(_) => Ok(host),
            // Undo the host: the token did not allow it.
            None => Err(DieselError::RollbackTransaction),
        }
    });
    match outcome {
        Ok(host) => Ok(Some(host)),
        Err(DieselError::RollbackTransaction) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The non-revoked host whose agent token has this hash (the WebSocket's
/// authentication).
pub fn find_by_agent_token(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<Host>> {
    hosts::table
        .filter(hosts::agent_token_hash.eq(token_hash))
        .filter(hosts::revoked_at.is_null())
        .select(Host::as_select())
        .first(conn)
        .optional()
}

/// The host with this id (revoked or not).
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Host>> {
    hosts::table
        .find(id)
        .select(Host::as_select())
        .first(conn)
        .optional()
}

/// The host with this id and its schedule versions.
pub fn get_with_version(conn: &mut DbConnection, id: &str) -> QueryResult<Option<HostWithVersion>> {
    let Some(host) = get(conn, id)? else {
        return Ok(None);
    };
    let schedule = hsv::table
        .find(id)
        .select(HostScheduleVersion::as_select())
        .first(conn)
        .optional()?;
    Ok(Some(HostWithVersion { host, schedule }))
}

/// Escapes `%`, `_` and `\` so that text matches itself in `LIKE … ESCAPE '\'`.
fn like_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn filtered<'a>(filter: &HostFilter) -> hosts::BoxedQuery<'a, super::MultiBackend> {
    let mut query = hosts::table.into_boxed();
    if !filter.include_revoked {
        query = query.filter(hosts::revoked_at.is_null());
    }
    if let Some(online) = filter.online {
        query = query.filter(hosts::online.eq(online));
    }
    if let Some(text) = filter.query.as_deref().filter(|q| !q.is_empty()) {
        let pattern = like_pattern(text);
        query = query.filter(
            lower(hosts::hostname.nullable())
                .like(pattern.clone())
                .escape('\\')
                .or(lower(hosts::display_name).like(pattern).escape('\\')),
        );
    }
    query
}

/// Hosts matching the filter, ordered by hostname, with their schedule
/// versions, and the total that match.
pub fn list(conn: &mut DbConnection, filter: &HostFilter) -> QueryResult<Page<HostWithVersion>> {
    let hosts: Vec<Host> = filtered(filter)
        .order((hosts::hostname.asc(), hosts::id.asc()))
        .limit(clamp_limit(filter.limit, MAX_PAGE))
        .offset(filter.offset.max(0))
        .select(Host::as_select())
        .load(conn)?;
    let total = filtered(filter).count().get_result(conn)?;
    let ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
    let mut versions: HashMap<String, HostScheduleVersion> = hsv::table
        .filter(hsv::host_id.eq_any(&ids))
        .select(HostScheduleVersion::as_select())
        .load(conn)?
        .into_iter()
        .map(|v| (v.host_id.clone(), v))
        .collect();
    let items = hosts
        .into_iter()
        .map(|host| {
            let schedule = versions.remove(&host.id);
            HostWithVersion { host, schedule }
        })
        .collect();
    Ok(Page { items, total })
}

/// Applies a `hello`: the reported facts, online, last seen `now`. `None`
/// if the host does not exist or is revoked.
pub fn update_from_hello(
    conn: &mut DbConnection,
    id: &str,
    hello: &HostHello,
    now: i64,
) -> QueryResult<Option<Host>> {
    diesel::update(hosts::table.find(id).filter(hosts::revoked_at.is_null()))
        .set((
            hello,
            hosts::online.eq(true),
            hosts::last_seen_at.eq(now),
            hosts::updated_at.eq(now),
        ))
        .returning(hosts::all_columns)
        .get_result(conn)
        .optional()
}

/// Marks a host online or offline and seen at `now`. False if it does not
/// exist (or, when going online, is revoked).
pub fn set_online(conn: &mut DbConnection, id: &str, online: bool, now: i64) -> QueryResult<bool> {
    let n = if online {
        diesel::update(hosts::table.find(id).filter(hosts::revoked_at.is_null()))
            .set((hosts::online.eq(true), hosts::last_seen_at.eq(now)))
            .execute(conn)?
    } else {
        diesel::update(hosts::table.find(id))
            .set((hosts::online.eq(false), hosts::last_seen_at.eq(now)))
            .execute(conn)?
    };
    Ok(n == 1)
}

/// Sets `last_seen_at = now` for many hosts at once (a tick's heartbeats);
/// returns how many rows changed.
pub fn touch_last_seen(conn: &mut DbConnection, ids: &[String], now: i64) -> QueryResult<usize> {
    let mut changed = 0;
    for chunk in ids.chunks(super::INSERT_CHUNK_ROWS) {
        changed += diesel::update(hosts::table.filter(hosts::id.eq_any(chunk)))
            .set(hosts::last_seen_at.eq(now))
            .execute(conn)?;
    }
    Ok(changed)
}

/// Marks every host offline (server start: no session survives a restart);
/// returns how many were online.
pub fn set_offline_all(conn: &mut DbConnection) -> QueryResult<usize> {
    diesel::update(hosts::table.filter(hosts::online.eq(true)))
        .set(hosts::online.eq(false))
        .execute(conn)
}

/// Revokes a host: its agent token stops working and it is offline. Its
/// rows (jobs, snapshots, …) stay. False if it does not exist or was
/// already revoked.
pub fn revoke(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(hosts::table.find(id).filter(hosts::revoked_at.is_null()))
        .set((
            hosts::revoked_at.eq(now),
            hosts::online.eq(false),
            hosts::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Applies an operator's patch (display name, labels). `None` if the host
/// does not exist.
pub fn patch(
    conn: &mut DbConnection,
    id: &str,
    patch: &HostPatch,
    now: i64,
) -> QueryResult<Option<Host>> {
    diesel::update(hosts::table.find(id))
        .set((patch, hosts::updated_at.eq(now)))
        .returning(hosts::all_columns)
        .get_result(conn)
        .optional()
}

/// Online / offline counts of non-revoked hosts (for `/metrics`).
pub fn counts(conn: &mut DbConnection) -> QueryResult<HostCounts> {
    let rows: Vec<(bool, i64)> = hosts::table
        .filter(hosts::revoked_at.is_null())
        .group_by(hosts::online)
        .select((hosts::online, diesel::dsl::count_star()))
        .load(conn)?;
    let mut counts = HostCounts::default();
    for (online, n) in rows {
        if online {
            counts.online += n;
        } else {
            counts.offline += n;
        }
    }
    Ok(counts)
}

/// Deletes a host and everything that belongs to it (source groups,
/// schedules, jobs and their logs, snapshots, stats, missed runs, schedule
/// version: cascades), and its repository if no other host uses it. False
/// if it did not exist.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    write_transaction(conn, |conn| {
        let repository_id: Option<Option<String>> = hosts::table
            .find(id)
            .select(hosts::repository_id)
            .first(conn)
            .optional()?;
        let Some(repository_id) = repository_id else {
            return Ok(false);
        };
        diesel::delete(hosts::table.find(id)).execute(conn)?;
        if let Some(repository_id) = repository_id {
            let still_used: i64 = hosts::table
                .filter(hosts::repository_id.eq(&repository_id))
                .count()
                .get_result(conn)?;
            if still_used == 0 {
                diesel::delete(repositories::table.find(&repository_id)).execute(conn)?;
            }
        }
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    /// Search text is lower-cased and its LIKE wildcards are escaped.
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Web"), "%web%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
