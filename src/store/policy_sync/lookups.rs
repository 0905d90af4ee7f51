//! Reads of [`super`]: the source-group name conflicts a policy change
//! would cause (named with hostnames and policy names), and which policy
//! a host's group or schedule row comes from.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::{Conflict, MAX_NAMED_CONFLICTS};
use crate::store::policies::{self, Policy};
use crate::store::schema::{hosts as hosts_table, schedules, source_groups as sg};
use crate::store::DbConnection;

/// Groups of these names on these hosts that do not come from
/// `policy_id`: the conflicts `policy` would cause.
pub(super) fn find_conflicts(
    conn: &mut DbConnection,
    policy: &Policy,
    checks: &[(&[String], Vec<&str>)],
) -> QueryResult<Vec<Conflict>> {
    let mut conflicts = Vec::new();
    for (host_ids, names) in checks {
        if host_ids.is_empty() || names.is_empty() {
            continue;
        }
        let wanted: HashSet<&str> = host_ids.iter().map(String::as_str).collect();
        let rows: Vec<(String, String, Option<String>)> = sg::table
            .filter(sg::name.eq_any(names))
            .filter(sg::policy_id.is_null().or(sg::policy_id.ne(&policy.id)))
            .select((sg::host_id, sg::name, sg::policy_id))
            .load(conn)?;
        for (host_id, group, existing) in rows {
            if wanted.contains(host_id.as_str()) {
                conflicts.push((host_id, group, existing));
            }
        }
    }
    name_conflicts(conn, &policy.name, conflicts)
}

/// Adds hostnames and policy names to raw conflicts.
pub(super) fn name_conflicts(
    conn: &mut DbConnection,
    policy: &str,
    raw: Vec<(String, String, Option<String>)>,
) -> QueryResult<Vec<Conflict>> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let shown: Vec<_> = raw.into_iter().take(MAX_NAMED_CONFLICTS + 1).collect();
    let host_ids: Vec<&str> = shown.iter().map(|(h, _, _)| h.as_str()).collect();
    let hostnames: HashMap<String, String> = hosts_table::table
        .filter(hosts_table::id.eq_any(&host_ids))
        .select((hosts_table::id, hosts_table::hostname))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let policy_ids: Vec<String> = shown.iter().filter_map(|(_, _, p)| p.clone()).collect();
    let policy_names = policies::names(conn, &policy_ids)?;
    Ok(shown
        .into_iter()
        .map(|(host_id, group, existing)| Conflict {
            hostname: hostnames.get(&host_id).cloned().unwrap_or_default(),
            existing: existing.map(|p| policy_names.get(&p).cloned().unwrap_or(p)),
            host_id,
            group,
            policy: policy.to_owned(),
        })
        .collect())
}

/// Where each of a host's groups and schedules comes from: row id →
/// policy name (rows of the host's own are absent).
pub fn origins(conn: &mut DbConnection, host_id: &str) -> QueryResult<HashMap<String, String>> {
    let mut rows: Vec<(String, String)> = sg::table
        .filter(sg::host_id.eq(host_id))
        .filter(sg::policy_id.is_not_null())
        .select((sg::id, sg::policy_id.assume_not_null()))
        .load(conn)?;
    rows.extend(
        schedules::table
            .filter(schedules::host_id.eq(host_id))
            .filter(schedules::policy_id.is_not_null())
            .select((schedules::id, schedules::policy_id.assume_not_null()))
            .load::<(String, String)>(conn)?,
    );
    let ids: Vec<String> = rows.iter().map(|(_, p)| p.clone()).collect();
    let names = policies::names(conn, &ids)?;
    Ok(rows
        .into_iter()
        .filter_map(|(row, p)| names.get(&p).map(|n| (row, n.clone())))
        .collect())
}

/// The policy (name) a group row comes from, if any (a schedule's:
/// `schedules::policy_of`, then [`policy_name`]).
pub fn owner_of_group(conn: &mut DbConnection, group_id: &str) -> QueryResult<Option<String>> {
    let policy_id = sg::table
        .find(group_id)
        .select(sg::policy_id)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten();
    policy_name(conn, policy_id)
}

/// The name of the policy with this id (the id itself if the policy is
/// gone), or `None` for no policy: the owner named in a 409.
pub fn policy_name(
    conn: &mut DbConnection,
    policy_id: Option<String>,
) -> QueryResult<Option<String>> {
    let Some(pid) = policy_id else {
        return Ok(None);
    };
    Ok(Some(policies::get(conn, &pid)?.map_or(pid, |p| p.name)))
}
