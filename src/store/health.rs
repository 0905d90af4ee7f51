//! Queries on `health_checks`, `health_results` and `health_history`:
//! a host's configured service checks (one JSON list per host), the latest
//! result per check, and a bounded history per check ([`HISTORY_KEEP`]
//! newest results). Results are written by the one writer in batches
//! (`actors::persistence`); the REST API and the UI read them.

use diesel::prelude::*;

use super::schema::{health_checks, health_history, health_results};
use super::{per_backend, DbConnection};
use crate::protocol::{HealthCheckResult, HealthCheckSpec};

/// Results kept per check in `health_history` (at one report per 5
/// minutes when nothing changes, more than a day).
pub const HISTORY_KEEP: i64 = 500;

/// The latest result of one check, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = health_results)]
pub struct HealthResultRow {
    pub host_id: String,
    pub name: String,
    pub ok: bool,
    pub latency_ms: Option<i64>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// Unix ms.
    pub checked_at: i64,
}

impl HealthResultRow {
    /// The row of a reported result (an error is clipped to 1,000 bytes).
    pub fn of(host_id: &str, result: &HealthCheckResult) -> Self {
        HealthResultRow {
            host_id: host_id.to_owned(),
            name: result.name.clone(),
            ok: result.ok,
            latency_ms: result.latency_ms.and_then(|l| i64::try_from(l).ok()),
            status_code: result.status_code.map(i32::from),
            error: result.error.as_deref().map(|e| clip(e, 1000)),
            checked_at: result.checked_at.timestamp_millis(),
        }
    }
}

fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[derive(Insertable)]
#[diesel(table_name = health_history)]
struct HistoryRow<'a> {
    host_id: &'a str,
    name: &'a str,
    checked_at: i64,
    ok: bool,
    latency_ms: Option<i64>,
    status_code: Option<i32>,
    error: Option<&'a str>,
}

/// The host's configured checks (empty when none were set).
pub fn get_checks(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<HealthCheckSpec>> {
    let text: Option<String> = health_checks::table
        .find(host_id)
        .select(health_checks::checks)
        .first(conn)
        .optional()?;
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e))),
    }
}

/// Replaces the host's checks; the results and history of checks no
/// longer listed go with them.
pub fn set_checks(
    conn: &mut DbConnection,
    host_id: &str,
    checks: &[HealthCheckSpec],
    now: i64,
) -> QueryResult<()> {
    let text = serde_json::to_string(checks)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    per_backend!(&mut *conn, |c| diesel::insert_into(health_checks::table)
        .values((
            health_checks::host_id.eq(host_id),
            health_checks::checks.eq(&text),
            health_checks::updated_at.eq(now),
        ))
        .on_conflict(health_checks::host_id)
        .do_update()
        .set((
            health_checks::checks.eq(&text),
            health_checks::updated_at.eq(now),
        ))
        .execute(c))?;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    diesel::delete(
        health_results::table
            .filter(health_results::host_id.eq(host_id))
            .filter(health_results::name.ne_all(names.clone())),
    )
    .execute(conn)?;
    diesel::delete(
        health_history::table
            .filter(health_history::host_id.eq(host_id))
            .filter(health_history::name.ne_all(names)),
    )
    .execute(conn)?;
    Ok(())
}

/// Stores one reported result of a configured check: the latest (unless
/// an older result arrives late), one history row, the history trimmed to
/// [`HISTORY_KEEP`]. Returns false (nothing stored) for a check the host
/// does not have (removed meanwhile).
pub fn record_result(
    conn: &mut DbConnection,
    row: &HealthResultRow,
    configured: &[HealthCheckSpec],
) -> QueryResult<bool> {
    if !configured.iter().any(|c| c.name == row.name) {
        return Ok(false);
    }
    let current: Option<i64> = health_results::table
        .find((&row.host_id, &row.name))
        .select(health_results::checked_at)
        .first(conn)
        .optional()?;
    if current.is_none_or(|at| at <= row.checked_at) {
        per_backend!(&mut *conn, |c| diesel::insert_into(health_results::table)
            .values(row)
            .on_conflict((health_results::host_id, health_results::name))
            .do_update()
            .set((
                health_results::ok.eq(row.ok),
                health_results::latency_ms.eq(row.latency_ms),
                health_results::status_code.eq(row.status_code),
                health_results::error.eq(&row.error),
                health_results::checked_at.eq(row.checked_at),
            ))
            .execute(c))?;
    }
    let history = HistoryRow {
        host_id: &row.host_id,
        name: &row.name,
        checked_at: row.checked_at,
        ok: row.ok,
        latency_ms: row.latency_ms,
        status_code: row.status_code,
        error: row.error.as_deref(),
    };
    per_backend!(&mut *conn, |c| diesel::insert_into(health_history::table)
        .values(&history)
        .on_conflict_do_nothing()
        .execute(c))?;
    let oldest_kept: Option<i64> = health_history::table
        .filter(health_history::host_id.eq(&row.host_id))
        .filter(health_history::name.eq(&row.name))
        .order(health_history::checked_at.desc())
        .offset(HISTORY_KEEP - 1)
        .select(health_history::checked_at)
        .first(conn)
        .optional()?;
    if let Some(oldest) = oldest_kept {
        diesel::delete(
            health_history::table
                .filter(health_history::host_id.eq(&row.host_id))
                .filter(health_history::name.eq(&row.name))
                .filter(health_history::checked_at.lt(oldest)),
        )
        .execute(conn)?;
    }
    Ok(true)
}

/// The latest result of each of the host's checks, by name.
pub fn latest_for_host(
    conn: &mut DbConnection,
    host_id: &str,
) -> QueryResult<Vec<HealthResultRow>> {
    health_results::table
        .filter(health_results::host_id.eq(host_id))
        .order(health_results::name.asc())
        .select(HealthResultRow::as_select())
        .load(conn)
}

/// The newest `limit` results of one check, newest first.
pub fn history(
    conn: &mut DbConnection,
    host_id: &str,
    name: &str,
    limit: i64,
) -> QueryResult<Vec<(i64, bool)>> {
    health_history::table
        .filter(health_history::host_id.eq(host_id))
        .filter(health_history::name.eq(name))
        .order(health_history::checked_at.desc())
        .limit(limit.clamp(1, HISTORY_KEEP))
        .select((health_history::checked_at, health_history::ok))
        .load(conn)
}

/// Checks whose latest result is down, across live hosts (the
/// dashboard's "services down").
pub fn down_count(conn: &mut DbConnection) -> QueryResult<i64> {
    use super::schema::hosts;
    health_results::table
        .inner_join(hosts::table.on(hosts::id.eq(health_results::host_id)))
        .filter(hosts::revoked_at.is_null())
        .filter(health_results::ok.eq(false))
        .count()
        .get_result(conn)
}
