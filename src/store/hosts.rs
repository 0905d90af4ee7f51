//! Queries on `hosts`: enrolment, the agent-token lookup that guards the
//! WebSocket, what `hello` reports, presence (online / last seen),
//! revocation and the operator's display name and labels.
//!
//! Every host has a `host_schedule_version` row from the moment it is
//! created (version 1, nothing pushed or acked).
//!
//! Lists are in natural order of the host name (`web-2` before `web-10`):
//! `hosts.sort_key` holds [`natural_key`] of the hostname, written with
//! every insert and `hello` and filled in at start for rows that lack it
//! ([`fill_sort_keys`]), so a page of 10,000 hosts is one index range on
//! both backends. `hosts.last_backup_at` and the `host_labels` rows are
//! kept by triggers (migration `fleet_summary`).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Bool, Nullable};

use super::config_versions::HostConfigVersion;
use super::models::{Host, HostHello, HostPatch, HostScheduleVersion, NewHost};
use super::paged::PagedDsl;
use super::prepared::PrepareOnce;
use super::schema::{
    backup_latest, host_labels, host_schedule_version as hsv, hosts, missed_runs, repositories,
};
use super::types::{JobStatus, Page};
use super::{
    clamp_limit, enrollment, page_total, page_window, write_transaction, DbConnection, MAX_PAGE,
};
use crate::ids::HostId;

diesel::define_sql_function! {
    /// SQL `lower()`, for case-insensitive search on both backends.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// The column tuple of [`HOST_COLUMNS`].
type HostColumns = (
    hosts::id,
    hosts::hostname,
    hosts::display_name,
    hosts::labels,
    hosts::os,
    hosts::arch,
    hosts::agent_version,
    hosts::restic_version,
    hosts::boot_time,
    hosts::capabilities,
    hosts::agent_token_hash,
    hosts::repository_id,
    hosts::online,
    hosts::last_seen_at,
    hosts::enrolled_at,
    hosts::updated_at,
    hosts::revoked_at,
);

/// The columns of [`Host`] in its field order: what writes return (the
/// table also has the sort key and last backup time, which `Host` leaves
/// out).
const HOST_COLUMNS: HostColumns = (
    hosts::id,
    hosts::hostname,
    hosts::display_name,
    hosts::labels,
    hosts::os,
    hosts::arch,
    hosts::agent_version,
    hosts::restic_version,
    hosts::boot_time,
    hosts::capabilities,
    hosts::agent_token_hash,
    hosts::repository_id,
    hosts::online,
    hosts::last_seen_at,
    hosts::enrolled_at,
    hosts::updated_at,
    hosts::revoked_at,
);

/// Which hosts [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    /// `Some(true)`: online only; `Some(false)`: offline only.
    pub online: Option<bool>,
    /// Case-insensitive substring of the hostname or display name.
    pub query: Option<String>,
    /// Only hosts with every one of these labels (`key`, `value`).
    pub labels: Vec<(String, String)>,
    /// Only hosts in this backup state.
    pub health: Option<Health>,
    /// Revoked hosts are left out unless this is set.
    pub include_revoked: bool,
    /// Only hosts whose agent version is (or is not) one of a list.
    pub agent_versions: Option<VersionFilter>,
    /// Only hosts attached to this repository (the maintenance host's
    /// choices on the repositories page).
    pub repository_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The `?update_available=` filter as the database sees it: the older
/// versions are found among [`distinct_agent_versions`] first, so the
/// host list stays one indexed query with an `IN` (no per-row work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionFilter {
    /// `agent_version IN (…)`.
    In(Vec<String>),
    /// `agent_version IS NULL OR agent_version NOT IN (…)`.
    NotIn(Vec<String>),
}

/// The distinct agent versions of the live hosts (a handful, however
/// large the fleet).
pub fn distinct_agent_versions(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    let versions: Vec<Option<String>> = hosts::table
        .filter(hosts::revoked_at.is_null())
        .select(hosts::agent_version)
        .distinct()
        .load(conn)?;
    Ok(versions.into_iter().flatten().collect())
}

/// A host's backup state as the dashboard sorts it (a host may be in
/// several); each is also a filter of the host list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The latest backup of one of its source groups failed.
    Failed,
    /// A scheduled run was missed at or after `since` (Unix ms).
    Missed { since: i64 },
    /// No backup ever succeeded.
    Never,
    /// Its newest successful backup finished before `before` (Unix ms).
    Stale { before: i64 },
    /// Online, a success at or after `stale_before`, no failed group, no
    /// run missed since `missed_since`.
    Healthy {
        missed_since: i64,
        stale_before: i64,
    },
}

/// Parses a label filter written `key=value`; `None` when there is no
/// `=` or the key is empty.
pub fn parse_label_filter(text: &str) -> Option<(String, String)> {
    let (key, value) = text.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then(|| (key.to_owned(), value.trim().to_owned()))
}

/// The natural-order sort key of a host name: lower-cased, every run of
/// digits written as its length (three digits) and the number without
/// leading zeros, so that comparing keys byte by byte compares the names
/// as people do (`web-2` < `web-10` < `Web-11`).
pub fn natural_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len() + 8);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut digits = String::from(c);
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            let number = digits.trim_start_matches('0');
            let number = if number.is_empty() { "0" } else { number };
            key.push_str(&format!("{:03}", number.len().min(999)));
            key.push_str(number);
        } else {
            key.extend(c.to_lowercase());
        }
    }
    key
}

/// A host with its schedule versions (the API's host object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostWithVersion {
    pub host: Host,
    /// `None` only for a row created outside this module.
    pub schedule: Option<HostScheduleVersion>,
    /// What `config.update` carries: its version and the agent's ack.
    pub config: HostConfigVersion,
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
        .values((new.clone(), hosts::sort_key.eq(natural_key(&new.hostname))))
        .returning(HOST_COLUMNS)
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
    // One statement: on PostgreSQL each is a round trip.
    let row = hosts::table
        .left_join(hsv::table)
        .filter(hosts::id.eq(id))
        .select((
            Host::as_select(),
            HostConfigVersion::as_select(),
            Option::<HostScheduleVersion>::as_select(),
        ))
        .first::<(Host, HostConfigVersion, Option<HostScheduleVersion>)>(conn)
        .optional()?;
    Ok(row.map(|(host, config, schedule)| HostWithVersion {
        host,
        schedule,
        config,
    }))
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

pub(crate) fn filtered<'a>(filter: &HostFilter) -> hosts::BoxedQuery<'a, super::MultiBackend> {
    let mut query = hosts::table.into_boxed();
    if !filter.include_revoked {
        query = query.filter(hosts::revoked_at.is_null());
    }
    if let Some(online) = filter.online {
        query = query.filter(hosts::online.eq(online));
    }
    for (key, value) in &filter.labels {
        query = query.filter(
            hosts::id.eq_any(
                host_labels::table
                    .filter(host_labels::key.eq(key.clone()))
                    .filter(host_labels::value.eq(value.clone()))
                    .select(host_labels::host_id),
            ),
        );
    }
    if let Some(health) = filter.health {
        query = query.filter(health_condition(health));
    }
    if let Some(repository) = &filter.repository_id {
        query = query.filter(hosts::repository_id.eq(repository.clone()));
    }
    match &filter.agent_versions {
        // No version matches: no host (`id` is never NULL).
        Some(VersionFilter::In(versions)) if versions.is_empty() => {
            query = query.filter(hosts::id.is_null());
        }
        Some(VersionFilter::In(versions)) => {
            query = query.filter(hosts::agent_version.eq_any(versions.clone()));
        }
        Some(VersionFilter::NotIn(versions)) if !versions.is_empty() => {
            query = query.filter(hosts::agent_version.is_null().or(diesel::dsl::not(
                hosts::agent_version.eq_any(versions.clone()),
            )));
        }
        Some(VersionFilter::NotIn(_)) | None => {}
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

/// A condition on a host row, for both backends.
type HostCondition =
    Box<dyn BoxableExpression<hosts::table, super::MultiBackend, SqlType = Nullable<Bool>>>;

/// Whether a host is in the backup state `health`: the host list's filter
/// and the dashboard's counters ([`state_counts`]).
fn health_condition(health: Health) -> HostCondition {
    // The subqueries are closures, not boxed queries: a boxed subquery
    // cannot be handed to the concrete backends behind `MultiBackend`.
    let failed = || {
        hosts::id.eq_any(
            backup_latest::table
                .filter(backup_latest::status.eq(JobStatus::Failed))
                .select(backup_latest::host_id),
        )
    };
    let missed = |since: i64| {
        hosts::id.eq_any(
            missed_runs::table
                .filter(missed_runs::scheduled_at.ge(since))
                .select(missed_runs::host_id),
        )
    };
    match health {
        Health::Failed => Box::new(failed().nullable()),
        Health::Missed { since } => Box::new(missed(since).nullable()),
        Health::Never => Box::new(hosts::last_backup_at.is_null().nullable()),
        Health::Stale { before } => Box::new(hosts::last_backup_at.lt(before)),
        Health::Healthy {
            missed_since,
            stale_before,
        } => Box::new(
            hosts::online
                .eq(true)
                .nullable()
                .and(hosts::last_backup_at.ge(stale_before))
                // `NOT (id IN (…))`, not `id <> ALL (…)`: PostgreSQL hashes
                // the subquery of a NOT IN once, but compares every host
                // with every row of an `<> ALL` (1.4 s at 10,000 hosts; the
                // dashboard's p99 on PostgreSQL, BENCHMARKS.md). Both
                // columns are NOT NULL, so the two mean the same.
                .and(diesel::dsl::not(failed()).nullable())
                .and(diesel::dsl::not(missed(missed_since)).nullable()),
        ),
    }
}

/// The live hosts online and offline, and how many are in each of the
/// `states` (a host may be in several): the dashboard's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCounts {
    pub hosts: HostCounts,
    pub states: [i64; 5],
}

/// [`StateCounts`] at once. On PostgreSQL in one scan of the hosts (each
/// count alone is a scan of its own there, about 1 ms per 10,000 hosts:
/// the dashboard's counters took 6 ms; one statement summing a `CASE` per
/// state takes under 3); on SQLite one count per state, which its indexes
/// answer faster than one scan evaluating every condition (3.6 ms against
/// 5, BENCHMARKS.md).
pub fn state_counts(conn: &mut DbConnection, states: [Health; 5]) -> QueryResult<StateCounts> {
    #[cfg(feature = "postgres")]
    if matches!(conn, DbConnection::Pg(_)) {
        return state_counts_in_one_scan(conn, states);
    }
    let hosts = counts(conn)?;
    let mut counted = [0; 5];
    for (n, health) in counted.iter_mut().zip(states) {
        *n = count(
            conn,
            &HostFilter {
                health: Some(health),
                ..HostFilter::default()
            },
        )?;
    }
    Ok(StateCounts {
        hosts,
        states: counted,
    })
}

#[cfg(feature = "postgres")]
fn state_counts_in_one_scan(
    conn: &mut DbConnection,
    states: [Health; 5],
) -> QueryResult<StateCounts> {
    use diesel::dsl::{case_when, count_star, sum};
    let [s0, s1, s2, s3, s4] = states.map(health_condition);
    let n = |condition: HostCondition| {
        sum(case_when::<_, _, diesel::sql_types::Integer>(condition, 1).otherwise(0))
    };
    type Sum = Option<i64>;
    let (total, (online, a, b, c, d, e)): (i64, (Sum, Sum, Sum, Sum, Sum, Sum)) = hosts::table
        .filter(hosts::revoked_at.is_null())
        .select((
            count_star(),
            (
                n(Box::new(hosts::online.eq(true).nullable())),
                n(s0),
                n(s1),
                n(s2),
                n(s3),
                n(s4),
            ),
        ))
        .first(conn)?;
    let online = online.unwrap_or(0);
    Ok(StateCounts {
        hosts: HostCounts {
            online,
            offline: total - online,
        },
        states: [a, b, c, d, e].map(|n| n.unwrap_or(0)),
    })
}

/// How many hosts match the filter (its limit and offset aside).
pub fn count(conn: &mut DbConnection, filter: &HostFilter) -> QueryResult<i64> {
    filtered(filter).count().get_result(conn)
}

/// The hosts matching the filter, in natural order of their names, one
/// page of them (no total, no schedule versions).
pub fn page(conn: &mut DbConnection, filter: &HostFilter) -> QueryResult<Vec<Host>> {
    filtered(filter)
        .order((hosts::sort_key.asc(), hosts::id.asc()))
        .select(Host::as_select())
        .paged(clamp_limit(filter.limit, MAX_PAGE), filter.offset)
        .load(conn)
}

/// Whether the filter leaves every live host in (limit and offset aside).
fn is_unfiltered(filter: &HostFilter) -> bool {
    let HostFilter {
        online,
        query,
        labels,
        health,
        include_revoked,
        agent_versions,
        repository_id,
        limit: _,
        offset: _,
    } = filter;
    online.is_none()
        && query.as_deref().is_none_or(str::is_empty)
        && labels.is_empty()
        && health.is_none()
        && !include_revoked
        && agent_versions.is_none()
        && repository_id.is_none()
}

/// How many hosts are not revoked, from the `host_totals` row its
/// triggers keep (a count would scan every host).
pub fn live_count(conn: &mut DbConnection) -> QueryResult<i64> {
    use super::schema::host_totals;
    host_totals::table.select(host_totals::live).first(conn)
}

/// Hosts matching the filter in natural order of their names, with their
/// schedule versions, and the total that match.
pub fn list(conn: &mut DbConnection, filter: &HostFilter) -> QueryResult<Page<HostWithVersion>> {
    let rows = page_with_config(conn, filter)?;
    let total = total(conn, filter, rows.len())?;
    let items = with_schedule_versions(conn, rows)?;
    Ok(Page { items, total })
}

/// One page of the hosts matching the filter, in natural order of their
/// names, with their configuration versions: the first read of [`list`].
pub fn page_with_config(
    conn: &mut DbConnection,
    filter: &HostFilter,
) -> QueryResult<Vec<(Host, HostConfigVersion)>> {
    filtered(filter)
        .order((hosts::sort_key.asc(), hosts::id.asc()))
        .select((Host::as_select(), HostConfigVersion::as_select()))
        .paged(clamp_limit(filter.limit, MAX_PAGE), filter.offset)
        .load(conn)
}

/// The total a [`page_with_config`] of `len` hosts tells by itself, if
/// it does (then [`total`] reads nothing).
pub fn known_total(filter: &HostFilter, len: usize) -> Option<i64> {
    let (limit, offset) = page_window(filter.limit, filter.offset);
    super::known_total(len, limit, offset)
}

/// How many hosts match the filter, for its page of `len` hosts: the
/// page's own count when it tells, the live hosts' summary row when the
/// filter leaves every live host in, else a count.
pub fn total(conn: &mut DbConnection, filter: &HostFilter, len: usize) -> QueryResult<i64> {
    let (limit, offset) = page_window(filter.limit, filter.offset);
    page_total(len, limit, offset, || {
        if is_unfiltered(filter) {
            live_count(conn)
        } else {
            filtered(filter).count().get_result(conn)
        }
    })
}

/// A page of hosts with their schedule versions, read in one statement.
pub fn with_schedule_versions(
    conn: &mut DbConnection,
    rows: Vec<(Host, HostConfigVersion)>,
) -> QueryResult<Vec<HostWithVersion>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|(h, _)| h.id.as_str()).collect();
    let mut versions: HashMap<HostId, HostScheduleVersion> = hsv::table
        .filter(hsv::host_id.eq_any(&ids))
        .select(HostScheduleVersion::as_select())
        .load(conn)?
        .into_iter()
        .map(|v| (v.host_id.clone(), v))
        .collect();
    Ok(rows
        .into_iter()
        .map(|(host, config)| {
            let schedule = versions.remove(&host.id);
            HostWithVersion {
                host,
                schedule,
                config,
            }
        })
        .collect())
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
            hello.clone(),
            hosts::sort_key.eq(natural_key(&hello.hostname)),
            hosts::online.eq(true),
            hosts::last_seen_at.eq(now),
            hosts::updated_at.eq(now),
        ))
        .returning(HOST_COLUMNS)
        .get_result(conn)
        .optional()
}

/// [`update_from_hello`] for a batch of hellos (the writer's group commit,
/// `actors::persistence::hellos`), inside the caller's transaction; one
/// answer per hello, in order. A host with several hellos in the batch
/// ends as its last one left it, and each of its hellos is answered with
/// that row.
///
/// On SQLite one `UPDATE` per hello (in-process, a statement costs no
/// round trip). On PostgreSQL, where each statement is a round trip on
/// the one writer, two statements for the whole batch: one
/// `UPDATE … FROM unnest(…)` and one read of the updated rows (a fleet of
/// 15,000 agents coming online was 15,000 round trips in a row there).
pub fn update_from_hellos(
    conn: &mut DbConnection,
    hellos: &[(&str, &HostHello, i64)],
) -> QueryResult<Vec<Option<Host>>> {
    match conn {
        DbConnection::Sqlite(_) => {}
        #[cfg(feature = "postgres")]
        DbConnection::Pg(pg) => {
            // One row per host: its hellos folded in batch order, as
            // one `UPDATE` after another would leave it (a later hello's
            // fields win, one it leaves out keeps the earlier's).
            let mut merged: HashMap<&str, (HostHello, i64)> = HashMap::new();
            for (id, hello, now) in hellos {
                merged
                    .entry(id)
                    .and_modify(|(earlier, at)| {
                        *earlier = hello.after(earlier);
                        *at = *now;
                    })
                    .or_insert_with(|| ((*hello).clone(), *now));
            }
            let mut latest: Vec<(&str, HostHello, i64)> = merged
                .into_iter()
                .map(|(id, (hello, now))| (id, hello, now))
                .collect();
            latest.sort_by(|a, b| a.0.cmp(b.0));
            let updated = pg_hellos::update(pg, &latest)?;
            let rows: Vec<Host> = hosts::table
                .filter(hosts::id.eq_any(&updated))
                .select(HOST_COLUMNS)
                .load(conn)?;
            let by_id: HashMap<String, Host> =
                rows.into_iter().map(|h| (h.id.to_string(), h)).collect();
            return Ok(hellos
                .iter()
                .map(|(id, _, _)| by_id.get(*id).cloned())
                .collect());
        }
    }
    let mut by_id: HashMap<&str, Option<Host>> = HashMap::new();
    for (id, hello, now) in hellos {
        by_id.insert(id, update_from_hello(conn, id, hello, *now)?);
    }
    Ok(hellos
        .iter()
        .map(|(id, _, _)| by_id.get(id).cloned().flatten())
        .collect())
}

#[cfg(feature = "postgres")]
mod pg_hellos {
    use crate::store::prepared::PrepareOnce;
    use diesel::pg::PgConnection;
    use diesel::prelude::*;
    use diesel::sql_types::{Array, BigInt, Nullable, Text};

    use super::natural_key;
    use crate::store::models::HostHello;

    #[derive(QueryableByName)]
    struct Updated {
        #[diesel(sql_type = Text)]
        id: String,
    }

    /// One statement for every hello (one per host): the same columns and
    /// conditions as `update_from_hello` (a field the hello leaves out
    /// keeps the stored value; a revoked host is not touched). Returns the
    /// ids of the hosts it updated.
    pub(super) fn update(
        conn: &mut PgConnection,
        hellos: &[(&str, HostHello, i64)],
    ) -> QueryResult<Vec<String>> {
        if hellos.is_empty() {
            return Ok(Vec::new());
        }
        let capabilities = hellos
            .iter()
            .map(|(_, h, _)| {
                h.capabilities
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
            })
            .collect::<Result<Vec<Option<String>>, _>>()
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        let column = |f: fn(&HostHello) -> String| -> Vec<String> {
            hellos.iter().map(|(_, h, _)| f(h)).collect()
        };
        let optional = |f: fn(&HostHello) -> Option<String>| -> Vec<Option<String>> {
            hellos.iter().map(|(_, h, _)| f(h)).collect()
        };
        diesel::sql_query(
            "UPDATE hosts AS h SET hostname = v.hostname, os = v.os, arch = v.arch, \
             agent_version = COALESCE(v.agent_version, h.agent_version), \
             restic_version = COALESCE(v.restic_version, h.restic_version), \
             boot_time = COALESCE(v.boot_time, h.boot_time), \
             capabilities = COALESCE(v.capabilities, h.capabilities), \
             sort_key = v.sort_key, online = TRUE, last_seen_at = v.at, updated_at = v.at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::bigint[], $8::text[], $9::text[], $10::bigint[]) \
             AS v(id, hostname, os, arch, agent_version, restic_version, boot_time, \
             capabilities, sort_key, at) \
             WHERE h.id = v.id AND h.revoked_at IS NULL RETURNING h.id",
        )
        .bind::<Array<Text>, _>(
            hellos
                .iter()
                .map(|(id, _, _)| (*id).to_owned())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(column(|h| h.hostname.clone()))
        .bind::<Array<Text>, _>(column(|h| h.os.clone()))
        .bind::<Array<Text>, _>(column(|h| h.arch.clone()))
        .bind::<Array<Nullable<Text>>, _>(optional(|h| h.agent_version.clone()))
        .bind::<Array<Nullable<Text>>, _>(optional(|h| h.restic_version.clone()))
        .bind::<Array<Nullable<BigInt>>, _>(
            hellos
                .iter()
                .map(|(_, h, _)| h.boot_time)
                .collect::<Vec<Option<i64>>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(capabilities)
        .bind::<Array<Text>, _>(column(|h| natural_key(&h.hostname)))
        .bind::<Array<BigInt>, _>(hellos.iter().map(|(_, _, now)| *now).collect::<Vec<i64>>())
        .prepared()
        .load::<Updated>(conn)
        .map(|rows| rows.into_iter().map(|r| r.id).collect())
    }
}

/// Marks a host online or offline and seen at `now`. False if it does not
/// exist (or, when going online, is revoked).
pub fn set_online(conn: &mut DbConnection, id: &str, online: bool, now: i64) -> QueryResult<bool> {
    if online {
        diesel::update(hosts::table.find(id).filter(hosts::revoked_at.is_null()))
            .set((hosts::online.eq(true), hosts::last_seen_at.eq(now)))
            .returning(hosts::id)
            .prepared()
            .changed_one::<String>(conn)
    } else {
        diesel::update(hosts::table.find(id))
            .set((hosts::online.eq(false), hosts::last_seen_at.eq(now)))
            .returning(hosts::id)
            .prepared()
            .changed_one::<String>(conn)
    }
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
        .set((patch.clone(), hosts::updated_at.eq(now)))
        .returning(HOST_COLUMNS)
        .get_result(conn)
        .optional()
}

/// Rows [`fill_sort_keys`] updates per transaction.
const SORT_KEY_BATCH: i64 = 1000;

/// Writes the sort key of every host that has none (rows from before the
/// key existed, or bulk-loaded); returns how many were filled. Runs at
/// start, in batches of [`SORT_KEY_BATCH`] hosts per transaction.
pub fn fill_sort_keys(conn: &mut DbConnection) -> QueryResult<usize> {
    let mut filled = 0;
    loop {
        let done = write_transaction(conn, |conn| {
            let rows: Vec<(String, String)> = hosts::table
                .filter(hosts::sort_key.is_null())
                .select((hosts::id, hosts::hostname))
                .limit(SORT_KEY_BATCH)
                .load(conn)?;
            for (id, hostname) in &rows {
                diesel::update(hosts::table.find(id))
                    .set(hosts::sort_key.eq(natural_key(hostname)))
                    .execute(conn)?;
            }
            QueryResult::Ok(rows.len())
        })?;
        filled += done;
        if done < SORT_KEY_BATCH as usize {
            return Ok(filled);
        }
    }
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
    use super::{like_pattern, natural_key};

    /// Natural order: numbers compare by value, letters without case, and
    /// leading zeros do not matter.
    #[test]
    fn natural_keys_order_numbers_by_value() {
        let mut names = vec![
            "web-10", "web-2", "Web-11", "db-1", "web-2a", "web-02b", "web", "web-1000", "web-100",
        ];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            [
                "db-1", "web", "web-2", "web-2a", "web-02b", "web-10", "Web-11", "web-100",
                "web-1000"
            ]
        );
        assert_eq!(natural_key("a007"), natural_key("a7"));
        assert_eq!(natural_key("x0"), "x0010");
    }

    /// Search text is lower-cased and its LIKE wildcards are escaped.
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Web"), "%web%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
