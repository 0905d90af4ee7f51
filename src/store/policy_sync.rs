//! Writes a policy's groups and schedules onto the hosts it matches, and
//! takes them off the hosts it no longer matches: each matching host gets
//! its own rows in `source_groups` and `schedules` marked with `policy_id`
//! (schedules also with their position in the policy's list), linked to
//! that host's copies of the policy's groups.
//!
//! - [`apply_policy`]: a policy was created, changed or deleted. The hosts
//!   are found in SQL (one query per selector label, see
//!   [`hosts::filtered`]) and written in chunked multi-row statements,
//!   never one query per host; rows of hosts that keep matching are
//!   updated in place (same ids, so job history and schedule ids stay).
//! - [`sync_host`]: a host's labels changed, or it was enrolled.
//!
//! `lookups`: the conflict search and where a host's rows come from.
//! `repository`: the policy's shared repository on the hosts it matches
//! that have none of their own.
//!
//! A policy's health checks have no rows: [`apply_policy`] also returns
//! (and bumps) the hosts whose checks it changes
//! (`super::health::policy_checks_changed`).
//!
//! Both refuse a change that would give a host two source groups of the
//! same name ([`SyncError::Conflict`], naming hosts and policies), and
//! bump the schedule version of every host whose rows changed, returning
//! those hosts so the caller pushes `schedule.set` to them after the
//! commit. Run inside the caller's write transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use diesel::prelude::*;

use super::hosts::{self, HostFilter};
use super::policies::{self, Policy, PolicyGroup, PolicySchedule};
use super::schema::{
    host_schedule_version as hsv, hosts as hosts_table, schedule_source_groups as ssg, schedules,
    source_groups as sg,
};
use super::{new_id, per_backend, DbConnection, ScheduleKind, INSERT_CHUNK_ROWS};

mod lookups;
mod repository;

use lookups::{find_conflicts, name_conflicts};
pub use lookups::{origins, owner_of_group, policy_name};
pub use repository::RepositoryConflict;

/// Two source groups of one name on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub host_id: String,
    pub hostname: String,
    pub group: String,
    /// Where the group the host has comes from: `None` its own, else the
    /// policy's name.
    pub existing: Option<String>,
    /// The policy whose group would collide with it.
    pub policy: String,
}

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{}", describe(.0))]
    Conflict(Vec<Conflict>),
    #[error("{}", repository::describe(.0))]
    RepositoryConflict(Vec<RepositoryConflict>),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Most conflicts a message names.
pub(super) const MAX_NAMED_CONFLICTS: usize = 10;

/// A conflict message naming the hosts and policies involved.
pub fn describe(conflicts: &[Conflict]) -> String {
    let named: Vec<String> = conflicts
        .iter()
        .take(MAX_NAMED_CONFLICTS)
        .map(|c| {
            let existing = match &c.existing {
                None => "its own".to_owned(),
                Some(p) => format!("policy {p:?}'s"),
            };
            format!(
                "host {} ({}) has {existing} source group {:?} and policy {:?} gives one of the same name",
                c.hostname, c.host_id, c.group, c.policy
            )
        })
        .collect();
    format!(
        "source group name conflict: {}",
        join_named(&named, conflicts.len())
    )
}

/// The named conflicts joined, and how many more there are of `total`.
pub(super) fn join_named(named: &[String], total: usize) -> String {
    let more = total.saturating_sub(named.len());
    let tail = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    format!("{}{tail}", named.join("; "))
}

/// A policy group as a host's row.
#[derive(Insertable)]
#[diesel(table_name = sg)]
struct GroupRow<'a> {
    id: String,
    host_id: &'a str,
    name: &'a str,
    /// JSON, as the column holds it.
    includes: String,
    excludes: String,
    retention_policy: Option<String>,
    retry_max: i32,
    retry_backoff_seconds: i32,
    created_at: i64,
    updated_at: i64,
    prune_after_forget: bool,
    policy_id: Option<&'a str>,
    /// The policy's options with the group's own on top (JSON).
    options: Option<String>,
}

/// A policy schedule as a host's row.
#[derive(Insertable)]
#[diesel(table_name = schedules)]
struct ScheduleRow<'a> {
    id: String,
    host_id: &'a str,
    cron_expr: &'a str,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
    kind: ScheduleKind,
    policy_id: Option<&'a str>,
    policy_position: Option<i32>,
}

/// The non-revoked hosts a selector matches, in one query.
pub fn matching_hosts(
    conn: &mut DbConnection,
    selector: &policies::Selector,
) -> QueryResult<Vec<String>> {
    let filter = HostFilter {
        labels: selector.pairs(),
        ..HostFilter::default()
    };
    hosts::filtered(&filter).select(hosts_table::id).load(conn)
}

/// The hosts that have rows of this policy.
fn hosts_with_policy(conn: &mut DbConnection, policy_id: &str) -> QueryResult<HashSet<String>> {
    let mut set: HashSet<String> = sg::table
        .filter(sg::policy_id.eq(policy_id))
        .select(sg::host_id)
        .distinct()
        .load::<String>(conn)?
        .into_iter()
        .collect();
    set.extend(
        schedules::table
            .filter(schedules::policy_id.eq(policy_id))
            .select(schedules::host_id)
            .distinct()
            .load::<String>(conn)?,
    );
    Ok(set)
}

/// Adds one to the schedule version of each host.
fn bump_many(conn: &mut DbConnection, host_ids: &[String]) -> QueryResult<()> {
    for chunk in host_ids.chunks(INSERT_CHUNK_ROWS) {
        diesel::update(hsv::table.filter(hsv::host_id.eq_any(chunk)))
            .set(hsv::version.eq(hsv::version + 1_i64))
            .execute(conn)?;
    }
    Ok(())
}

/// Removes the policy's rows from these hosts (their links go by cascade).
fn remove_rows(conn: &mut DbConnection, policy_id: &str, host_ids: &[String]) -> QueryResult<()> {
    for chunk in host_ids.chunks(INSERT_CHUNK_ROWS) {
        diesel::delete(
            schedules::table
                .filter(schedules::policy_id.eq(policy_id))
                .filter(schedules::host_id.eq_any(chunk)),
        )
        .execute(conn)?;
        diesel::delete(
            sg::table
                .filter(sg::policy_id.eq(policy_id))
                .filter(sg::host_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// A group's JSON columns: includes, excludes, retention, options.
type GroupTexts = (String, String, Option<String>, Option<String>);

/// Writes these groups and schedules of the policy onto these hosts, and
/// links each new schedule to the groups it names (which must be among
/// `groups` or already on the host). Chunked multi-row inserts.
fn insert_rows(
    conn: &mut DbConnection,
    policy: &Policy,
    host_ids: &[String],
    groups: &[&PolicyGroup],
    schedules_at: &[(i32, &PolicySchedule)],
    now: i64,
) -> QueryResult<()> {
    if host_ids.is_empty() || (groups.is_empty() && schedules_at.is_empty()) {
        return Ok(());
    }
    let policy_id = policy.id.as_str();
    // (host, group name) → id, for the links of the new schedules.
    let mut group_ids: HashMap<(&str, &str), String> = HashMap::new();
    let texts: Vec<GroupTexts> = groups
        .iter()
        .map(|g| {
            Ok((
                policies_text(&g.includes)?,
                policies_text(&g.excludes)?,
                g.retention_policy.as_ref().map(policies_text).transpose()?,
                policy
                    .group_options(g)
                    .as_ref()
                    .map(policies_text)
                    .transpose()?,
            ))
        })
        .collect::<QueryResult<_>>()?;
    let mut group_rows = Vec::with_capacity(host_ids.len() * groups.len());
    for host in host_ids {
        for (g, (includes, excludes, retention, options)) in groups.iter().zip(&texts) {
            let id = new_id();
            group_ids.insert((host.as_str(), g.name.as_str()), id.clone());
            group_rows.push(GroupRow {
                id,
                host_id: host,
                name: &g.name,
                includes: includes.clone(),
                excludes: excludes.clone(),
                retention_policy: retention.clone(),
                retry_max: g.retry_max,
                retry_backoff_seconds: g.retry_backoff_seconds,
                created_at: now,
                updated_at: now,
                prune_after_forget: g.prune_after_forget,
                policy_id: Some(policy_id),
                options: options.clone(),
            });
        }
    }
    for chunk in group_rows.chunks(INSERT_CHUNK_ROWS / 4) {
        // Multi-row VALUES: not expressible on the multi-backend.
        per_backend!(&mut *conn, |c| diesel::insert_into(sg::table)
            .values(chunk)
            .execute(c))?;
    }
    if schedules_at.is_empty() {
        return Ok(());
    }
    // Groups named by new schedules that were on the hosts already.
    let names: BTreeSet<&str> = schedules_at
        .iter()
        .flat_map(|(_, s)| s.source_groups.iter().map(String::as_str))
        .filter(|n| !groups.iter().any(|g| g.name == *n))
        .collect();
    let mut existing: HashMap<(String, String), String> = HashMap::new();
    if !names.is_empty() {
        for chunk in host_ids.chunks(INSERT_CHUNK_ROWS) {
            let rows: Vec<(String, String, String)> = sg::table
                .filter(sg::policy_id.eq(policy_id))
                .filter(sg::host_id.eq_any(chunk))
                .filter(sg::name.eq_any(&names))
                .select((sg::host_id, sg::name, sg::id))
                .load(conn)?;
            existing.extend(rows.into_iter().map(|(h, n, id)| ((h, n), id)));
        }
    }
    let mut schedule_rows = Vec::with_capacity(host_ids.len() * schedules_at.len());
    let mut links: Vec<(String, String)> = Vec::new();
    for host in host_ids {
        for (position, s) in schedules_at {
            let id = new_id();
            for name in &s.source_groups {
                let group = group_ids
                    .get(&(host.as_str(), name.as_str()))
                    .or_else(|| existing.get(&(host.clone(), name.clone())));
                if let Some(group) = group {
                    links.push((id.clone(), group.clone()));
                }
            }
            schedule_rows.push(ScheduleRow {
                id,
                host_id: host,
                cron_expr: &s.cron_expr,
                enabled: s.enabled,
                created_at: now,
                updated_at: now,
                kind: s.kind,
                policy_id: Some(policy_id),
                policy_position: Some(*position),
            });
        }
    }
    for chunk in schedule_rows.chunks(INSERT_CHUNK_ROWS / 4) {
        per_backend!(&mut *conn, |c| diesel::insert_into(schedules::table)
            .values(chunk)
            .execute(c))?;
    }
    let links: Vec<_> = links
        .iter()
        .map(|(s, g)| (ssg::schedule_id.eq(s), ssg::source_group_id.eq(g)))
        .collect();
    for chunk in links.chunks(INSERT_CHUNK_ROWS / 2) {
        per_backend!(&mut *conn, |c| diesel::insert_into(ssg::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// Links every host's copy of the schedule at `position` to its copies of
/// the groups named, replacing the links it had (two statements for all
/// hosts).
fn relink(
    conn: &mut DbConnection,
    policy_id: &str,
    position: i32,
    names: &[String],
) -> QueryResult<()> {
    diesel::delete(
        ssg::table.filter(
            ssg::schedule_id.eq_any(
                schedules::table
                    .filter(schedules::policy_id.eq(policy_id))
                    .filter(schedules::policy_position.eq(position))
                    .select(schedules::id),
            ),
        ),
    )
    .execute(conn)?;
    if names.is_empty() {
        return Ok(());
    }
    per_backend!(&mut *conn, |c| diesel::insert_into(ssg::table)
        .values(
            schedules::table
                .inner_join(sg::table.on(sg::host_id.eq(schedules::host_id)))
                .filter(schedules::policy_id.eq(policy_id))
                .filter(schedules::policy_position.eq(position))
                .filter(sg::policy_id.eq(policy_id))
                .filter(sg::name.eq_any(names))
                .select((schedules::id, sg::id)),
        )
        .into_columns((ssg::schedule_id, ssg::source_group_id))
        .execute(c))?;
    Ok(())
}

/// Brings the rows of hosts that keep matching from `old` to `new` in
/// place: changed groups and schedules are updated (same ids), removed
/// ones deleted, new ones inserted on `kept` hosts.
fn update_in_place(
    conn: &mut DbConnection,
    old: &Policy,
    new: &Policy,
    kept: &[String],
    now: i64,
) -> QueryResult<()> {
    let pid = new.id.as_str();
    let old_groups: HashMap<&str, &PolicyGroup> = old
        .source_groups
        .iter()
        .map(|g| (g.name.as_str(), g))
        .collect();
    let new_names: HashSet<&str> = new.source_groups.iter().map(|g| g.name.as_str()).collect();
    let gone: Vec<&str> = old_groups
        .keys()
        .copied()
        .filter(|n| !new_names.contains(n))
        .collect();
    if !gone.is_empty() {
        diesel::delete(
            sg::table
                .filter(sg::policy_id.eq(pid))
                .filter(sg::name.eq_any(&gone)),
        )
        .execute(conn)?;
    }
    let mut added: Vec<&PolicyGroup> = Vec::new();
    for g in &new.source_groups {
        let options = new.group_options(g);
        match old_groups.get(g.name.as_str()) {
            None => added.push(g),
            Some(before) if *before == g && old.group_options(before) == options => {}
            Some(_) => {
                diesel::update(
                    sg::table
                        .filter(sg::policy_id.eq(pid))
                        .filter(sg::name.eq(&g.name)),
                )
                .set((
                    sg::includes.eq(policies_text(&g.includes)?),
                    sg::excludes.eq(policies_text(&g.excludes)?),
                    sg::retention_policy.eq(g
                        .retention_policy
                        .as_ref()
                        .map(policies_text)
                        .transpose()?),
                    sg::retry_max.eq(g.retry_max),
                    sg::retry_backoff_seconds.eq(g.retry_backoff_seconds),
                    sg::prune_after_forget.eq(g.prune_after_forget),
                    sg::options.eq(options.as_ref().map(policies_text).transpose()?),
                    sg::updated_at.eq(now),
                ))
                .execute(conn)?;
            }
        }
    }
    insert_rows(conn, new, kept, &added, &[], now)?;
    let added_names: HashSet<&str> = added.iter().map(|g| g.name.as_str()).collect();

    let new_len = i32::try_from(new.schedules.len()).unwrap_or(i32::MAX);
    diesel::delete(
        schedules::table
            .filter(schedules::policy_id.eq(pid))
            .filter(schedules::policy_position.ge(new_len)),
    )
    .execute(conn)?;
    let mut fresh: Vec<(i32, &PolicySchedule)> = Vec::new();
    for (i, s) in new.schedules.iter().enumerate() {
        let position = i32::try_from(i).unwrap_or(i32::MAX);
        let Some(before) = old.schedules.get(i) else {
            fresh.push((position, s));
            continue;
        };
        if before.cron_expr != s.cron_expr || before.enabled != s.enabled || before.kind != s.kind {
            diesel::update(
                schedules::table
                    .filter(schedules::policy_id.eq(pid))
                    .filter(schedules::policy_position.eq(position)),
            )
            .set((
                schedules::cron_expr.eq(&s.cron_expr),
                schedules::enabled.eq(s.enabled),
                schedules::kind.eq(s.kind),
                schedules::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
        let relinks = before.source_groups != s.source_groups
            || s.source_groups
                .iter()
                .any(|n| added_names.contains(n.as_str()));
        if relinks {
            relink(conn, pid, position, &s.source_groups)?;
        }
    }
    insert_rows(conn, new, kept, &[], &fresh, now)
}

fn policies_text<T: serde::Serialize>(value: &T) -> QueryResult<String> {
    serde_json::to_string(value).map_err(|e| diesel::result::Error::SerializationError(e.into()))
}

/// The hosts a policy change reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Hosts whose groups or schedules changed (version bumped: they get
    /// `schedule.set`).
    pub schedules: Vec<String>,
    /// Hosts whose repository changed (they get `config.update`).
    pub repositories: Vec<String>,
    /// Hosts whose groups' options alone changed: stored, version not
    /// bumped, nothing pushed (options reach the agent in the next job's
    /// `command.run.args`, not in `schedule.set`).
    pub options: Vec<String>,
}

impl Applied {
    /// How many hosts' effective configuration changed.
    pub fn hosts_affected(&self) -> usize {
        let mut all: HashSet<&str> = self.schedules.iter().map(String::as_str).collect();
        all.extend(self.repositories.iter().map(String::as_str));
        all.extend(self.options.iter().map(String::as_str));
        all.len()
    }
}

/// A policy went from `old` to `new` (`None`: did not exist / deleted):
/// writes, updates or removes its rows on the hosts it matches and
/// matched, bumps their versions, gives or takes back its repository,
/// and returns the hosts whose rows or repository changed. A conflict
/// changes nothing (the caller's transaction rolls back).
pub fn apply_policy(
    conn: &mut DbConnection,
    old: Option<&Policy>,
    new: Option<&Policy>,
    now: i64,
) -> Result<Applied, SyncError> {
    let repositories = repository::apply(conn, old, new)?;
    let (schedules, options) = apply_rows(conn, old, new, now)?;
    Ok(Applied {
        schedules,
        repositories,
        options,
    })
}

/// The groups and schedules part of [`apply_policy`]: the hosts whose
/// `schedule.set` changed (bumped) and those whose options alone did.
fn apply_rows(
    conn: &mut DbConnection,
    old: Option<&Policy>,
    new: Option<&Policy>,
    now: i64,
) -> Result<(Vec<String>, Vec<String>), SyncError> {
    let Some(pid) = new.or(old).map(|p| p.id.clone()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let had = hosts_with_policy(conn, &pid)?;
    let target: Vec<String> = match new {
        Some(p) if p.materializes() => matching_hosts(conn, &p.selector)?,
        _ => Vec::new(),
    };
    let target_set: HashSet<&str> = target.iter().map(String::as_str).collect();
    let mut removed: Vec<String> = had
        .iter()
        .filter(|h| !target_set.contains(h.as_str()))
        .cloned()
        .collect();
    removed.sort_unstable();
    let added: Vec<String> = target
        .iter()
        .filter(|h| !had.contains(h.as_str()))
        .cloned()
        .collect();
    let kept: Vec<String> = target
        .iter()
        .filter(|h| had.contains(h.as_str()))
        .cloned()
        .collect();
    let changed_content = match (old, new) {
        (Some(o), Some(n)) => !o.same_content(n),
        _ => false,
    };
    // What the hosts' `schedule.set` carries changed (not only options).
    let changed_schedules = match (old, new) {
        (Some(o), Some(n)) => !o.same_schedules(n),
        _ => false,
    };
    if let Some(new) = new {
        let all_names: Vec<&str> = new.source_groups.iter().map(|g| g.name.as_str()).collect();
        let old_names: HashSet<&str> = old
            .map(|o| o.source_groups.iter().map(|g| g.name.as_str()).collect())
            .unwrap_or_default();
        let new_names: Vec<&str> = all_names
            .iter()
            .copied()
            .filter(|n| !old_names.contains(n))
            .collect();
        let conflicts = find_conflicts(
            conn,
            new,
            &[(added.as_slice(), all_names), (kept.as_slice(), new_names)],
        )?;
        if !conflicts.is_empty() {
            return Err(SyncError::Conflict(conflicts));
        }
    }
    remove_rows(conn, &pid, &removed)?;
    if let (Some(o), Some(n), true) = (old, new, changed_content) {
        if !kept.is_empty() {
            update_in_place(conn, o, n, &kept, now)?;
        }
    }
    if let Some(n) = new {
        let groups: Vec<&PolicyGroup> = n.source_groups.iter().collect();
        let at = positions(&n.schedules);
        insert_rows(conn, n, &added, &groups, &at, now)?;
    }
    let mut affected = removed;
    affected.extend(added);
    let mut options_only = Vec::new();
    if changed_schedules {
        affected.extend(kept);
    } else if changed_content {
        options_only = kept;
    }
    // Hosts whose health checks (not rows) the change touches.
    let rows_changed: HashSet<String> = affected.iter().cloned().collect();
    affected.extend(
        super::health::policy_checks_changed(conn, old, new)?
            .into_iter()
            .filter(|h| !rows_changed.contains(h)),
    );
    bump_many(conn, &affected)?;
    Ok((affected, options_only))
}

/// Schedules with their positions.
fn positions(list: &[PolicySchedule]) -> Vec<(i32, &PolicySchedule)> {
    list.iter()
        .enumerate()
        .map(|(i, s)| (i32::try_from(i).unwrap_or(i32::MAX), s))
        .collect()
}

/// What [`sync_host`] does with a policy whose groups collide with the
/// host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Nothing changes; the error names the conflicts.
    Refuse,
    /// The policy is left off the host (logged): for enrolment, which
    /// must not fail.
    Skip,
}

/// What [`sync_host`] changed on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Its groups or schedules (version bumped).
    pub schedules: bool,
    /// Its repository (a policy's given or taken back).
    pub repository: bool,
}

impl Synced {
    /// Whether anything changed.
    pub fn any(self) -> bool {
        self.schedules || self.repository
    }
}

/// The host now has `labels`: adds the rows of the policies that match
/// and removes those of the ones that no longer do, and its repository
/// follows the policies when it has none of its own.
pub fn sync_host(
    conn: &mut DbConnection,
    host_id: &str,
    labels: &BTreeMap<String, String>,
    on_conflict: OnConflict,
    now: i64,
) -> Result<Synced, SyncError> {
    let all = policies::list(conn)?;
    let repository = repository::sync(conn, host_id, labels, &all, on_conflict)?;
    let schedules = sync_rows(conn, host_id, labels, &all, on_conflict, now)?;
    Ok(Synced {
        schedules,
        repository,
    })
}

/// The groups and schedules part of [`sync_host`]; true (and the version
/// bumped) if anything changed.
fn sync_rows(
    conn: &mut DbConnection,
    host_id: &str,
    labels: &BTreeMap<String, String>,
    all: &[Policy],
    on_conflict: OnConflict,
    now: i64,
) -> Result<bool, SyncError> {
    let wanted: Vec<&Policy> = all
        .iter()
        .filter(|p| p.materializes() && p.selector.matches(labels))
        .collect();
    let wanted_ids: HashSet<&str> = wanted.iter().map(|p| p.id.as_str()).collect();
    let groups: Vec<(String, Option<String>)> = sg::table
        .filter(sg::host_id.eq(host_id))
        .select((sg::name, sg::policy_id))
        .load(conn)?;
    let mut have: HashSet<String> = groups.iter().filter_map(|(_, p)| p.clone()).collect();
    have.extend(
        schedules::table
            .filter(schedules::host_id.eq(host_id))
            .filter(schedules::policy_id.is_not_null())
            .select(schedules::policy_id.assume_not_null())
            .distinct()
            .load::<String>(conn)?,
    );
    let removed: Vec<String> = have
        .iter()
        .filter(|p| !wanted_ids.contains(p.as_str()))
        .cloned()
        .collect();
    // Group names the host keeps, and where each comes from.
    let mut taken: HashMap<String, Option<String>> = groups
        .into_iter()
        .filter(|(_, p)| p.as_ref().is_none_or(|p| wanted_ids.contains(p.as_str())))
        .collect();
    let mut raw = Vec::new();
    let mut adding: Vec<&Policy> = Vec::new();
    for p in wanted.iter().filter(|p| !have.contains(&p.id)) {
        let clashes: Vec<(String, String, Option<String>)> = p
            .source_groups
            .iter()
            .filter_map(|g| {
                taken
                    .get(&g.name)
                    .map(|by| (host_id.to_owned(), g.name.clone(), by.clone()))
            })
            .collect();
        if clashes.is_empty() {
            for g in &p.source_groups {
                taken.insert(g.name.clone(), Some(p.id.clone()));
            }
            adding.push(p);
            continue;
        }
        match on_conflict {
            OnConflict::Refuse => {
                let named = name_conflicts(conn, &p.name, clashes)?;
                raw.extend(named);
            }
            OnConflict::Skip => {
                tracing::warn!(host_id, policy = %p.name, "policy left off the host: a source group name is taken");
            }
        }
    }
    if !raw.is_empty() {
        return Err(SyncError::Conflict(raw));
    }
    let host = [host_id.to_owned()];
    for pid in &removed {
        remove_rows(conn, pid, &host)?;
    }
    for p in &adding {
        let groups: Vec<&PolicyGroup> = p.source_groups.iter().collect();
        insert_rows(conn, p, &host, &groups, &positions(&p.schedules), now)?;
    }
    let changed = !removed.is_empty() || !adding.is_empty();
    if changed {
        bump_many(conn, &host)?;
    }
    Ok(changed)
}
