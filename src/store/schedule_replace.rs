//! A host's own schedule replaced (`PUT /hosts/{id}/schedules/{sid}`):
//! the checks (the host is live, the schedule is the host's and no policy
//! manages it, every named group exists on the host) and the writes (the
//! row, its group links, the audit row, the host's schedule version) as
//! one unit, answered with what was refused or the row as written.
//!
//! On SQLite these are the statements one after another (in-process, a
//! statement costs no round trip); call it inside a write transaction.
//!
//! On PostgreSQL they were ten round trips on the one writer (`BEGIN`,
//! four reads, five writes, `COMMIT`), and at 10,000 PUTs the writer,
//! statement after statement, was what fan-out waited for (issue 19,
//! BENCHMARKS.md). There they are **one statement**: data-modifying
//! `WITH` clauses whose writes run only when every check passed, and a
//! last `SELECT` that reports the checks. One statement is atomic by
//! itself, so no transaction wraps it (`RunWrite::one_statement_on_pg`);
//! a refusal writes nothing. Links are not deleted and re-inserted (a
//! statement may not touch a row twice): the links to groups no longer
//! named are deleted, the new ones inserted `ON CONFLICT DO NOTHING`.

use diesel::prelude::*;
use serde_json::Value;

use super::models::Schedule;
use super::{audit, hosts, schedule_versions, schedules, source_groups, DbConnection};
use crate::ids::{HostId, ScheduleId};
use crate::protocol::ScheduleKind;

/// The change, already validated against itself (cron, kind, groups for
/// the kind), not yet against the database.
#[derive(Debug, Clone)]
pub struct Replace<'a> {
    pub host_id: &'a HostId,
    pub schedule_id: &'a ScheduleId,
    pub cron_expr: &'a str,
    pub enabled: bool,
    pub kind: ScheduleKind,
    /// Names of the host's groups it will run: distinct.
    pub group_names: &'a [String],
    /// Unix ms: the row's `updated_at` and the audit row's time.
    pub now: i64,
    /// The audit row's actor, source address and detail (never a secret).
    pub actor: &'a str,
    pub source_addr: Option<&'a str>,
    pub detail: Value,
}

/// What [`replace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replaced {
    /// The host does not exist or is revoked.
    NoHost,
    /// The host has no schedule with this id.
    NoSchedule,
    /// A policy manages the schedule: its `policy_id`.
    Managed(String),
    /// Some named groups are not on the host: the names that are,
    /// ordered by name.
    MissingGroups(Vec<String>),
    /// Written: the row and its groups' names, ordered by name.
    Done(Schedule, Vec<String>),
}

/// Checks and writes `change` (see the module doc). Nothing is written
/// unless the answer is [`Replaced::Done`] (on SQLite: the caller's
/// transaction is rolled back on a refusal).
pub fn replace(conn: &mut DbConnection, change: &Replace<'_>) -> QueryResult<Replaced> {
    match conn {
        #[cfg(feature = "postgres")]
        DbConnection::Pg(pg) => pg::replace(pg, change),
        sqlite => in_steps(sqlite, change),
    }
}

/// One statement at a time, in the caller's write transaction.
fn in_steps(conn: &mut DbConnection, change: &Replace<'_>) -> QueryResult<Replaced> {
    let live = hosts::get(conn, change.host_id)?.is_some_and(|h| h.revoked_at.is_none());
    if !live {
        return Ok(Replaced::NoHost);
    }
    match schedules::policy_of(conn, change.host_id, change.schedule_id)? {
        None => return Ok(Replaced::NoSchedule),
        Some((Some(policy), _)) => return Ok(Replaced::Managed(policy)),
        Some((None, _)) => {}
    }
    let groups = source_groups::by_names(conn, change.host_id, change.group_names)?;
    if groups.len() < change.group_names.len() {
        return Ok(Replaced::MissingGroups(
            groups.into_iter().map(|g| g.name).collect(),
        ));
    }
    let changes = super::models::ScheduleChanges {
        cron_expr: Some(change.cron_expr.to_owned()),
        enabled: Some(change.enabled),
        kind: Some(change.kind),
    };
    let Some(schedule) = schedules::update(conn, change.schedule_id, &changes, change.now)? else {
        return Ok(Replaced::NoSchedule);
    };
    audit::record(
        conn,
        change.now,
        change.actor,
        change.source_addr,
        "schedule.update",
        Some(change.schedule_id),
        Some(change.detail.clone()),
    )?;
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_ref()).collect();
    schedules::replace_groups(conn, change.schedule_id, &ids)?;
    schedule_versions::bump(conn, change.host_id)?;
    Ok(Replaced::Done(
        schedule,
        groups.into_iter().map(|g| g.name).collect(),
    ))
}

#[cfg(feature = "postgres")]
mod pg {
    use crate::store::prepared::PrepareOnce;
    use diesel::pg::PgConnection;
    use diesel::prelude::*;
    use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text};

    use super::{Replace, Replaced};
    use crate::store::json::Json;
    use crate::store::models::Schedule;

    /// The checks as CTEs `h` (the live host), `s` (its schedule), `g`
    /// (its groups named), `ok` (every check passed); the writes only
    /// from `u`, the updated row, which is empty unless `ok` holds. `$1`
    /// host, `$2` schedule, `$3` group names, `$4`-`$6` cron, enabled,
    /// kind, `$7` now, `$8`-`$11` the audit row's id, actor, detail and
    /// source address.
    const REPLACE: &str = "\
WITH h AS (SELECT id FROM hosts WHERE id = $1 AND revoked_at IS NULL), \
s AS (SELECT r.id, r.policy_id FROM schedules r JOIN h ON r.host_id = h.id WHERE r.id = $2), \
g AS (SELECT r.id, r.name FROM source_groups r JOIN h ON r.host_id = h.id WHERE r.name = ANY($3)), \
ok AS (SELECT s.id FROM s WHERE s.policy_id IS NULL \
       AND (SELECT count(*) FROM g) = cardinality($3::text[])), \
u AS (UPDATE schedules SET cron_expr = $4, enabled = $5, kind = $6, updated_at = $7 \
      WHERE id = (SELECT id FROM ok) RETURNING id, host_id, created_at), \
unlinked AS (DELETE FROM schedule_source_groups l USING u \
             WHERE l.schedule_id = u.id AND l.source_group_id NOT IN (SELECT id FROM g)), \
linked AS (INSERT INTO schedule_source_groups (schedule_id, source_group_id) \
           SELECT u.id, g.id FROM u CROSS JOIN g ON CONFLICT DO NOTHING), \
audited AS (INSERT INTO audit_log (id, at, actor, action, target, detail, source_addr) \
            SELECT $8, $7, $9, 'schedule.update', u.id, $10, $11 FROM u), \
bumped AS (INSERT INTO host_schedule_version AS v (host_id, version) SELECT u.host_id, 1 FROM u \
           ON CONFLICT (host_id) DO UPDATE SET version = v.version + 1) \
SELECT EXISTS (SELECT 1 FROM h) AS host_live, \
       EXISTS (SELECT 1 FROM s) AS found, \
       (SELECT policy_id FROM s) AS policy_id, \
       ARRAY(SELECT name FROM g ORDER BY name) AS groups, \
       (SELECT created_at FROM u) AS created_at";

    /// The statement's one row: the checks and, when written, the row's
    /// creation time (the rest of the row is what was sent).
    #[derive(QueryableByName)]
    struct Outcome {
        #[diesel(sql_type = Bool)]
        host_live: bool,
        #[diesel(sql_type = Bool)]
        found: bool,
        #[diesel(sql_type = Nullable<Text>)]
        policy_id: Option<String>,
        #[diesel(sql_type = Array<Text>)]
        groups: Vec<String>,
        #[diesel(sql_type = Nullable<BigInt>)]
        created_at: Option<i64>,
    }

    pub(super) fn replace(conn: &mut PgConnection, c: &Replace<'_>) -> QueryResult<Replaced> {
        let row: Outcome = diesel::sql_query(REPLACE)
            .bind::<Text, _>(c.host_id.as_str())
            .bind::<Text, _>(c.schedule_id.as_str())
            .bind::<Array<Text>, _>(c.group_names)
            .bind::<Text, _>(c.cron_expr)
            .bind::<Bool, _>(c.enabled)
            .bind::<Text, _>(c.kind.as_str())
            .bind::<BigInt, _>(c.now)
            .bind::<Text, _>(crate::store::new_id())
            .bind::<Text, _>(c.actor)
            .bind::<Nullable<Text>, _>(Json(Some(&c.detail)))
            .bind::<Nullable<Text>, _>(c.source_addr)
            .prepared()
            .get_result(conn)?;
        Ok(match row {
            Outcome {
                host_live: false, ..
            } => Replaced::NoHost,
            Outcome { found: false, .. } => Replaced::NoSchedule,
            Outcome {
                policy_id: Some(policy),
                ..
            } => Replaced::Managed(policy),
            Outcome {
                created_at: Some(created_at),
                groups,
                ..
            } => Replaced::Done(
                Schedule {
                    id: c.schedule_id.clone(),
                    host_id: c.host_id.clone(),
                    cron_expr: c.cron_expr.to_owned(),
                    enabled: c.enabled,
                    created_at,
                    updated_at: c.now,
                    kind: c.kind,
                },
                groups,
            ),
            Outcome { groups, .. } => Replaced::MissingGroups(groups),
        })
    }
}
