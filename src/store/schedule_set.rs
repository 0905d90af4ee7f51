//! A host's `schedule.set` as the greeting and every push send it: the
//! host's own schedules from their rows, its policies' schedules from the
//! policies (issue 12 §7: `hello` with 20 policies within 10 % of without).
//!
//! A policy writes its schedules and groups onto every host it matches
//! (`policy_sync`), each policy for all its hosts in one go, so a host's
//! 20 policy schedules, their 20 group copies and 20 links lie on about
//! 60 different pages, which every `hello` under constant commits read
//! afresh. The copies hold what the policy holds (`policy_sync` writes
//! and updates them in the policy's own transaction), so the policy part
//! is built from the host's schedule ids alone — `(policy_id,
//! policy_position, created_at, id)`, read from the covering index
//! `schedules_host_policy` (a page or two per host) — and the policy's
//! `schedules` / `source_groups` columns, whose parsed form is kept in
//! [`PolicyMemo`] keyed by the stored text. The memo is a cache of a pure
//! function of that text, so a policy changed by another process (say
//! `restic-manager apply`) is seen at the next read: the text differs.
//!
//! A row the policy text cannot explain (a position past its list, a
//! policy gone) falls back to the rows for the whole host: never a wrong
//! `schedule.set`. Order is the rows' `(created_at, id)`, as before.
//! Blocking: call inside the caller's read transaction.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use diesel::prelude::*;

use super::models::SourceGroup;
use super::policies::{PolicyGroup, PolicySchedule};
use super::schema::{policies, schedules};
use super::{schedules as schedule_queries, DbConnection};
use crate::protocol::{RetentionPolicy, ScheduleSpec, SourceGroupSpec};

/// Most policies [`PolicyMemo`] holds; past it, it starts over (a fleet
/// has tens of policies; this only bounds a pathological churn).
const MEMO_MAX_POLICIES: usize = 4096;

/// One of a host's policy schedule rows with its policy's texts (`None`
/// when the policy row is gone): `(id, policy_id, position, created_at,
/// policy schedules, policy groups)`.
type PolicyRow = (
    String,
    Option<String>,
    Option<i32>,
    i64,
    Option<String>,
    Option<String>,
);

/// The host's `schedule.set` schedules, in creation order.
pub fn for_host(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<ScheduleSpec>> {
    // One statement of fixed text (so SQLite's prepared-statement cache
    // keeps it; an `IN` list of the host's policy ids was prepared afresh
    // at every greeting, with an ephemeral table for the list): the
    // covering index for the host's rows, the policy's primary key for
    // its texts.
    let policy_rows: Vec<PolicyRow> = schedules::table
        .left_join(policies::table.on(schedules::policy_id.eq(policies::id.nullable())))
        .filter(schedules::host_id.eq(host_id))
        .filter(schedules::policy_id.is_not_null())
        .select((
            schedules::id,
            schedules::policy_id,
            schedules::policy_position,
            schedules::created_at,
            policies::schedules.nullable(),
            policies::source_groups.nullable(),
        ))
        .load(conn)?;
    let Some(mut specs) = policy_specs(policy_rows) else {
        return Ok(from_host_rows(schedule_queries::list_with_groups_for_host(
            conn, host_id,
        )?));
    };
    specs.extend(own_specs(conn, host_id)?);
    specs.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    Ok(specs.into_iter().map(|(_, spec)| spec).collect())
}

/// `schedule.set` schedules of rows read with their groups
/// (`schedules::list_with_groups_for_host`): the fallback, and what
/// [`for_host`] is checked against.
pub fn from_host_rows(rows: Vec<super::models::ScheduleWithGroups>) -> Vec<ScheduleSpec> {
    rows.into_iter()
        .map(|s| ScheduleSpec {
            id: s.schedule.id.to_string(),
            cron_expr: s.schedule.cron_expr,
            enabled: s.schedule.enabled,
            kind: s.schedule.kind,
            source_groups: s.groups.iter().map(group_spec).collect(),
        })
        .collect()
}

fn group_spec(g: &SourceGroup) -> SourceGroupSpec {
    spec_of(
        &g.name,
        &g.includes,
        &g.excludes,
        g.retention_policy.as_ref(),
        g.retry_max,
        g.retry_backoff_seconds,
    )
}

fn policy_group_spec(g: &PolicyGroup) -> SourceGroupSpec {
    spec_of(
        &g.name,
        &g.includes,
        &g.excludes,
        g.retention_policy.as_ref(),
        g.retry_max,
        g.retry_backoff_seconds,
    )
}

/// A group as `schedule.set` carries it (negative retry numbers: 0).
fn spec_of(
    name: &str,
    includes: &[String],
    excludes: &[String],
    retention_policy: Option<&RetentionPolicy>,
    retry_max: i32,
    retry_backoff_seconds: i32,
) -> SourceGroupSpec {
    SourceGroupSpec {
        name: name.to_owned(),
        includes: includes.to_vec(),
        excludes: excludes.to_vec(),
        retention_policy: retention_policy.cloned(),
        retry_max: u32::try_from(retry_max).unwrap_or(0),
        retry_backoff_seconds: u32::try_from(retry_backoff_seconds).unwrap_or(0),
    }
}

/// The host's own schedules (not a policy's) with their groups, each with
/// its `created_at`.
fn own_specs(conn: &mut DbConnection, host_id: &str) -> QueryResult<Vec<(i64, ScheduleSpec)>> {
    let own = schedule_queries::list_own_with_groups_for_host(conn, host_id)?;
    let created: Vec<i64> = own.iter().map(|s| s.schedule.created_at).collect();
    Ok(created.into_iter().zip(from_host_rows(own)).collect())
}

/// One policy's schedules as `schedule.set` carries them (without the
/// host's schedule id), by position.
#[derive(Debug)]
struct ParsedPolicy {
    schedules_text: String,
    groups_text: String,
    specs: Vec<ScheduleSpec>,
}

/// Parsed policies by id, each with the text it was parsed from.
type PolicyMemo = RwLock<HashMap<String, Arc<ParsedPolicy>>>;

fn memo() -> &'static PolicyMemo {
    static MEMO: OnceLock<PolicyMemo> = OnceLock::new();
    MEMO.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The policy's parsed schedules for this stored text: from the memo when
/// the text is the one parsed, else parsed (and remembered). `None`: the
/// text does not parse (the caller falls back to the rows).
fn parsed(id: &str, schedules_text: String, groups_text: String) -> Option<Arc<ParsedPolicy>> {
    // A poisoned lock only means another reader panicked mid-insert: the
    // memo is then skipped, never trusted.
    if let Ok(map) = memo().read() {
        if let Some(p) = map.get(id) {
            if p.schedules_text == schedules_text && p.groups_text == groups_text {
                return Some(Arc::clone(p));
            }
        }
    }
    let list: Vec<PolicySchedule> = serde_json::from_str(&schedules_text).ok()?;
    let groups: Vec<PolicyGroup> = serde_json::from_str(&groups_text).ok()?;
    let specs = list
        .into_iter()
        .map(|s| {
            let mut named: Vec<&PolicyGroup> = groups
                .iter()
                .filter(|g| s.source_groups.contains(&g.name))
                .collect();
            named.sort_by(|a, b| a.name.cmp(&b.name));
            ScheduleSpec {
                id: String::new(),
                cron_expr: s.cron_expr,
                enabled: s.enabled,
                kind: s.kind,
                source_groups: named.into_iter().map(policy_group_spec).collect(),
            }
        })
        .collect();
    let parsed = Arc::new(ParsedPolicy {
        schedules_text,
        groups_text,
        specs,
    });
    if let Ok(mut map) = memo().write() {
        if map.len() >= MEMO_MAX_POLICIES {
            map.clear();
        }
        map.insert(id.to_string(), Arc::clone(&parsed));
    }
    Some(parsed)
}

/// The specs of the host's policy schedule rows, or `None` when a row is
/// not explained by its policy's text (the policy is gone, its text does
/// not parse, the position is past its list).
fn policy_specs(rows: Vec<PolicyRow>) -> Option<Vec<(i64, ScheduleSpec)>> {
    let mut by_id: HashMap<String, Arc<ParsedPolicy>> = HashMap::new();
    let mut specs = Vec::with_capacity(rows.len());
    for (id, policy_id, position, created_at, schedules_text, groups_text) in rows {
        let policy_id = policy_id?;
        let policy = match by_id.get(&policy_id) {
            Some(p) => Arc::clone(p),
            None => {
                let p = parsed(&policy_id, schedules_text?, groups_text?)?;
                by_id.insert(policy_id, Arc::clone(&p));
                p
            }
        };
        let template = policy.specs.get(usize::try_from(position?).ok()?)?;
        specs.push((
            created_at,
            ScheduleSpec {
                id,
                ..template.clone()
            },
        ));
    }
    Some(specs)
}
