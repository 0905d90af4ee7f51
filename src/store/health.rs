//! Queries on `health_checks`, `health_results` and `health_history`:
//! a host's configured service checks (one JSON list per host), the latest
//! result per check, and a bounded history per check ([`HISTORY_KEEP`]
//! newest results). Results are written by the one writer in batches
//! (`actors::persistence`); the REST API and the UI read them.
//!
//! A host runs its own checks plus those of every policy that matches its
//! labels ([`effective_checks`]): its own win on a name, then the policies
//! by name. [`policy_checks_changed`] finds the hosts a policy change
//! gives other checks, so the caller bumps and pushes them.

use diesel::prelude::*;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use super::paged::PagedDsl;
use super::policies::Policy;
use super::revision_memo::RevisionMemo;
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
    parse_checks(text.as_deref())
}

/// A host's checks from their stored text (`None`: never set, no check).
pub fn parse_checks(text: Option<&str>) -> QueryResult<Vec<HealthCheckSpec>> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e))),
    }
}

/// A check a host runs and where it comes from: `None` its own, else the
/// policy's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveCheck {
    pub spec: HealthCheckSpec,
    pub policy: Option<String>,
}

/// The policies that carry health checks, by name (the ones
/// [`effective_checks_with`] looks at).
pub fn policies_with_checks(conn: &mut DbConnection) -> QueryResult<Vec<Policy>> {
    // The query skips the empty lists as stored; any other spelling of
    // one is still no check.
    Ok(super::policies::with_health_checks(conn)?
        .into_iter()
        .filter(|p| !p.health_checks.is_empty())
        .collect())
}

/// Merges a host's own checks with those of the `policies` its `labels`
/// match: its own first and winning on a name, then each policy's (by
/// name; an earlier policy wins a clash between two).
pub fn merge_checks(
    own: Vec<HealthCheckSpec>,
    labels: &BTreeMap<String, String>,
    policies: &[Policy],
) -> Vec<EffectiveCheck> {
    let mut merged: Vec<EffectiveCheck> = own
        .into_iter()
        .map(|spec| EffectiveCheck { spec, policy: None })
        .collect();
    for p in policies.iter().filter(|p| p.selector.matches(labels)) {
        for check in &p.health_checks {
            if !merged.iter().any(|m| m.spec.name == check.name) {
                merged.push(EffectiveCheck {
                    spec: check.clone(),
                    policy: Some(p.name.clone()),
                });
            }
        }
    }
    merged
}

/// [`effective_checks`] with the policies loaded once by the caller
/// ([`policies_with_checks`]), for many hosts in a row.
pub fn effective_checks_with(
    conn: &mut DbConnection,
    host_id: &str,
    policies: &[Policy],
) -> QueryResult<Vec<EffectiveCheck>> {
    let own = get_checks(conn, host_id)?;
    if policies.is_empty() {
        return Ok(merge_checks(own, &BTreeMap::new(), &[]));
    }
    let labels = super::hosts::get(conn, host_id)?
        .map(|h| h.labels)
        .unwrap_or_default();
    Ok(merge_checks(own, &labels, policies))
}

/// [`effective_checks`] from a host's state read beforehand
/// (`store::host_state`): its own checks' text and labels as read, and the
/// policies with checks as of the policy revision read with them, from a
/// memo per revision (no statement at all while the policies stay as they
/// are). Without a revision row the policies are read.
pub fn effective_checks_of(
    conn: &mut DbConnection,
    own_checks: Option<&str>,
    labels: &BTreeMap<String, String>,
    policy_revision: Option<i64>,
) -> QueryResult<Vec<EffectiveCheck>> {
    let own = parse_checks(own_checks)?;
    let policies = match policy_revision {
        Some(revision) => policies_with_checks_at(conn, revision)?,
        None => Arc::new(policies_with_checks(conn)?),
    };
    Ok(merge_checks(own, labels, &policies))
}

/// The policies with checks by policy revision.
static CHECKS_MEMO: LazyLock<RevisionMemo<Vec<Policy>>> = LazyLock::new(|| RevisionMemo::new(8));

/// [`policies_with_checks`] as of `revision`, read before the call
/// ([`RevisionMemo`]).
fn policies_with_checks_at(
    conn: &mut DbConnection,
    revision: i64,
) -> QueryResult<Arc<Vec<Policy>>> {
    CHECKS_MEMO.get_or_load(revision, || policies_with_checks(conn))
}

/// Every check the host runs: its own and its policies' (what
/// `health.set` carries and what results are kept for).
pub fn effective_checks(
    conn: &mut DbConnection,
    host_id: &str,
) -> QueryResult<Vec<EffectiveCheck>> {
    let policies = policies_with_checks(conn)?;
    effective_checks_with(conn, host_id, &policies)
}

/// A policy went from `old` to `new` (`None`: did not exist / deleted):
/// the hosts whose checks that changes (those it matched or matches, when
/// its checks or selector changed and it has checks before or after).
/// Their results of checks they no longer run are dropped; the caller
/// bumps their schedule version and pushes their configuration.
pub fn policy_checks_changed(
    conn: &mut DbConnection,
    old: Option<&Policy>,
    new: Option<&Policy>,
) -> QueryResult<Vec<String>> {
    fn checks(p: Option<&Policy>) -> &[HealthCheckSpec] {
        p.map(|p| p.health_checks.as_slice()).unwrap_or_default()
    }
    let unchanged = match (old, new) {
        _ if checks(old).is_empty() && checks(new).is_empty() => true,
        // The name orders the policies in a merge; the selector picks hosts.
        (Some(o), Some(n)) => {
            o.health_checks == n.health_checks && o.selector == n.selector && o.name == n.name
        }
        _ => false,
    };
    if unchanged {
        return Ok(Vec::new());
    }
    let mut hosts = std::collections::BTreeSet::new();
    for p in [old, new].into_iter().flatten() {
        if !p.health_checks.is_empty() {
            hosts.extend(super::policy_sync::matching_hosts(conn, &p.selector)?);
        }
    }
    let mut policies = policies_with_checks(conn)?;
    if let (Some(gone), None) = (old, new) {
        // A deleted policy's row goes after this call.
        policies.retain(|p| p.id != gone.id);
    }
    for host_id in &hosts {
        let names: Vec<String> = effective_checks_with(conn, host_id, &policies)?
            .into_iter()
            .map(|c| c.spec.name)
            .collect();
        drop_results_except(conn, host_id, &names)?;
    }
    Ok(hosts.into_iter().collect())
}

/// The host's labels changed (its own checks did not): true if it now
/// runs other checks than `before` ([`effective_checks`] read before the
/// change), in which case the results of checks it no longer runs are
/// dropped and its schedule version is bumped, so the caller pushes.
pub fn relabelled(
    conn: &mut DbConnection,
    host_id: &str,
    before: &[EffectiveCheck],
) -> QueryResult<bool> {
    let after = effective_checks(conn, host_id)?;
    let specs = |checks: &[EffectiveCheck]| -> Vec<HealthCheckSpec> {
        checks.iter().map(|c| c.spec.clone()).collect()
    };
    if specs(&after) == specs(before) {
        return Ok(false);
    }
    let names: Vec<String> = after.into_iter().map(|c| c.spec.name).collect();
    drop_results_except(conn, host_id, &names)?;
    super::schedule_versions::bump(conn, host_id)?;
    Ok(true)
}

/// Deletes the results and history of the host's checks not in `names`.
fn drop_results_except(
    conn: &mut DbConnection,
    host_id: &str,
    names: &[String],
) -> QueryResult<()> {
    diesel::delete(
        health_results::table
            .filter(health_results::host_id.eq(host_id))
            .filter(health_results::name.ne_all(names)),
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

/// Replaces the host's own checks; the results and history of checks it
/// no longer runs (neither its own nor a policy's) go with them.
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
    let names: Vec<String> = effective_checks(conn, host_id)?
        .into_iter()
        .map(|c| c.spec.name)
        .collect();
    drop_results_except(conn, host_id, &names)
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
        .select((health_history::checked_at, health_history::ok))
        .paged(limit.clamp(1, HISTORY_KEEP), 0)
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
