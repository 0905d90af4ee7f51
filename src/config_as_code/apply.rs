//! Applying a file: [`apply`] reads what the database holds
//! ([`load_current`]), plans the changes (`diff`) and writes them in one
//! transaction, the policies through [`policy_sync`] exactly as the REST
//! API's policy writes do (each policy's rows on the hosts it matches,
//! the schedule versions of the hosts whose configuration changed
//! bumped). It returns those hosts so that the caller pushes
//! `schedule.set` to them after the commit, preceded by `config.update`
//! for the hosts whose repository changed (a shared repository updated,
//! a policy's repository given or taken back).
//!
//! A dry run makes the same writes in a savepoint and rolls them back, so
//! it refuses what the apply would refuse (a source group name taken on a
//! host, a repository in use) and changes nothing.

use std::collections::{BTreeSet, HashSet};

use diesel::prelude::*;
use serde_json::json;

use super::diff::{
    self, Current, CurrentHost, CurrentRepository, PlanError, PolicyOp, RepositoryOp,
};
use super::file::{Desired, FileError, RepositoryRef, Secret};
use super::Change;
use crate::crypto::{self, SecretKey};
use crate::store::models::{Host, HostPatch};
use crate::store::policy_sync::{self, OnConflict, SyncError};
use crate::store::repositories::{self, SharedForm};
use crate::store::schema::{hosts, repositories as repositories_table};
use crate::store::{self, DbConnection, INSERT_CHUNK_ROWS};

/// Why an apply did not happen (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The file does not fit the database (400, naming the line).
    #[error(transparent)]
    File(#[from] FileError),
    /// It would break something in use, or give a host two source groups
    /// of one name (409).
    #[error("{0}")]
    Conflict(String),
    /// A secret could not be sealed (500).
    #[error("cannot seal a secret: {0}")]
    Crypto(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// A dry run's writes, rolled back on purpose (never returned).
    #[error("dry run")]
    DryRun(Applied),
}

impl From<PlanError> for ApplyError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::File(f) => ApplyError::File(f),
            PlanError::Conflict(m) => ApplyError::Conflict(m),
        }
    }
}

impl From<SyncError> for ApplyError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Conflict(c) => ApplyError::Conflict(policy_sync::describe(&c)),
            e @ SyncError::RepositoryConflict(_) => ApplyError::Conflict(e.to_string()),
            SyncError::Db(e) => ApplyError::Db(e),
        }
    }
}

/// What an apply did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub changes: Vec<Change>,
    /// The hosts whose configuration changed: push to them.
    pub pushes: policy_sync::Applied,
}

impl Applied {
    /// How many hosts' configuration changed.
    pub fn hosts_affected(&self) -> usize {
        self.pushes.hosts_affected()
    }
}

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions<'a> {
    /// Check and report, change nothing.
    pub dry_run: bool,
    /// Who applies, for the audit log (`cli` or the user name).
    pub actor: &'a str,
    /// The client's address, for the audit log.
    pub source_addr: Option<&'a str>,
}

/// Applies `desired` in one transaction (a savepoint inside the caller's
/// one), with an audit row `config.apply` unless dry. `key` seals new
/// secrets and opens stored ones to compare them.
pub fn apply(
    conn: &mut DbConnection,
    desired: &Desired,
    key: &SecretKey,
    options: &ApplyOptions<'_>,
) -> Result<Applied, ApplyError> {
    let result = store::write_transaction(conn, |conn| {
        let applied = write(conn, desired, key)?;
        if options.dry_run {
            return Err(ApplyError::DryRun(applied));
        }
        let count = |a: diff::Action| applied.changes.iter().filter(|c| c.action == a).count();
        let listed: Vec<String> = applied
            .changes
            .iter()
            .take(100)
            .map(ToString::to_string)
            .collect();
        store::audit::record(
            conn,
            store::now_ms(),
            options.actor,
            options.source_addr,
            "config.apply",
            None,
            Some(json!({
                "created": count(diff::Action::Create),
                "updated": count(diff::Action::Update),
                "deleted": count(diff::Action::Delete),
                "hosts_affected": applied.hosts_affected(),
                "changes": listed,
            })),
        )?;
        Ok(applied)
    });
    match result {
        Err(ApplyError::DryRun(applied)) => Ok(applied),
        other => other,
    }
}

/// Plans and writes; the caller's transaction makes it all or nothing.
fn write(
    conn: &mut DbConnection,
    desired: &Desired,
    key: &SecretKey,
) -> Result<Applied, ApplyError> {
    let current = load_current(conn, desired, key)?;
    let now = store::now_ms();
    let plan = diff::plan(&current, desired, store::new_id, now)?;
    let mut schedules: BTreeSet<String> = BTreeSet::new();
    let mut repos: BTreeSet<String> = BTreeSet::new();
    let mut options_only: BTreeSet<String> = BTreeSet::new();
    let seal = |id: &str, s: &Secret| {
        crypto::seal_str(key, s.expose(), id.as_bytes())
            .map_err(|e| ApplyError::Crypto(e.to_string()))
    };

    for op in &plan.repositories {
        match op {
            RepositoryOp::Create {
                id,
                desired: d,
                maintenance_host_id,
            } => {
                let form = SharedForm {
                    name: Some(d.name.clone()),
                    url: Some(d.url.clone()),
                    username: Some(d.username.clone()),
                    password_sealed: d.password.as_ref().map(|p| seal(id, p)).transpose()?,
                    credential_sealed: Some(
                        d.credential.as_ref().map(|c| seal(id, c)).transpose()?,
                    ),
                    maintenance_host_id: Some(maintenance_host_id.clone()),
                };
                repositories::insert_shared(conn, id, &form, now)?;
            }
            RepositoryOp::Update {
                id,
                desired: d,
                maintenance_host_id,
                host_ids,
            } => {
                let form = SharedForm {
                    name: None,
                    url: Some(d.url.clone()),
                    username: Some(d.username.clone()),
                    password_sealed: d.password.as_ref().map(|p| seal(id, p)).transpose()?,
                    credential_sealed: d
                        .credential
                        .as_ref()
                        .map(|c| seal(id, c).map(Some))
                        .transpose()?,
                    maintenance_host_id: Some(maintenance_host_id.clone()),
                };
                repositories::update_shared(conn, id, &form, now)?;
                // As `PUT /repositories/{id}`: every attached host gets the
                // new settings.
                for host in host_ids {
                    store::schedule_versions::bump(conn, host)?;
                    repos.insert(host.clone());
                }
            }
            RepositoryOp::Delete { .. } => {}
        }
    }
    // Deletions first, so that a policy renamed in the file (a delete
    // and a create) frees its group names before the new one takes them.
    let mut ordered: Vec<&PolicyOp> = plan
        .policies
        .iter()
        .filter(|op| matches!(op, PolicyOp::Delete(_)))
        .collect();
    ordered.extend(
        plan.policies
            .iter()
            .filter(|op| !matches!(op, PolicyOp::Delete(_))),
    );
    for op in ordered {
        let reached = match op {
            PolicyOp::Create(p) => {
                let row = store::policies::insert(conn, p)?;
                policy_sync::apply_policy(conn, None, Some(&row), now)?
            }
            PolicyOp::Update { old, new } => {
                let row =
                    store::policies::update(conn, new)?.ok_or(diesel::result::Error::NotFound)?;
                policy_sync::apply_policy(conn, Some(&**old), Some(&row), now)?
            }
            PolicyOp::Delete(old) => {
                let reached = policy_sync::apply_policy(conn, Some(old), None, now)?;
                store::policies::delete(conn, &old.id)?;
                reached
            }
        };
        schedules.extend(reached.schedules);
        repos.extend(reached.repositories);
        options_only.extend(reached.options);
    }
    for op in &plan.hosts {
        let patch = HostPatch {
            display_name: None,
            labels: Some(op.labels.clone()),
        };
        let checks_before = store::health::effective_checks(conn, &op.id)?;
        store::hosts::patch(conn, &op.id, &patch, now)?;
        let synced = policy_sync::sync_host(conn, &op.id, &op.labels, OnConflict::Refuse, now)?;
        // New health checks travel with the schedules' push (health.set
        // follows schedule.set).
        let checks = store::health::relabelled(conn, &op.id, &checks_before)?;
        if synced.schedules || checks {
            schedules.insert(op.id.clone());
        }
        if synced.repository {
            repos.insert(op.id.clone());
        }
    }
    for op in &plan.repositories {
        if let RepositoryOp::Delete { id, .. } = op {
            // Hosts still holding it have it from a policy that keeps
            // naming it by id: the delete detaches them, tell them.
            repos.extend(repositories::hosts_using(conn, id)?);
            repositories::delete(conn, id)?;
        }
    }
    Ok(Applied {
        changes: plan.changes,
        pushes: policy_sync::Applied {
            schedules: schedules.into_iter().collect(),
            repositories: repos.into_iter().collect(),
            options: options_only.into_iter().collect(),
        },
    })
}

/// What the database holds that the file is about: the shared
/// repositories (secrets opened with `key`), the policies, the live hosts
/// the file names, and the repository ids it names that exist.
pub fn load_current(
    conn: &mut DbConnection,
    desired: &Desired,
    key: &SecretKey,
) -> QueryResult<Current> {
    let mut current = Current::default();
    for r in repositories::list_shared(conn)? {
        let open = |sealed: &Option<Vec<u8>>| {
            sealed
                .as_ref()
                .and_then(|s| crypto::open_string(key, s, r.id.as_bytes()).ok())
                .map(Secret::new)
        };
        current.repositories.push(CurrentRepository {
            password: open(&r.password_sealed),
            credential: open(&r.credential_sealed),
            host_ids: repositories::hosts_using(conn, &r.id)?,
            own_host_ids: repositories::hosts_choosing(conn, &r.id)?,
            id: r.id.clone(),
            name: r.name.clone().unwrap_or_default(),
            url: r.url.clone(),
            username: r.username.clone(),
            maintenance_host_id: r.maintenance_host_id.clone(),
        });
    }
    current.policies = store::policies::list(conn)?;
    let mut names: BTreeSet<&str> = desired.hosts.iter().map(|h| h.hostname.as_str()).collect();
    names.extend(
        desired
            .repositories
            .iter()
            .filter_map(|r| r.maintenance_host.as_ref().map(|(h, _)| h.as_str())),
    );
    let names: Vec<&str> = names.into_iter().collect();
    let ids: Vec<&str> = desired
        .hosts
        .iter()
        .filter_map(|h| h.id.as_deref())
        .collect();
    let mut seen = HashSet::new();
    for chunk in names.chunks(INSERT_CHUNK_ROWS) {
        let rows: Vec<Host> = hosts::table
            .filter(hosts::hostname.eq_any(chunk))
            .filter(hosts::revoked_at.is_null())
            .select(Host::as_select())
            .load(conn)?;
        push_hosts(&mut current.hosts, &mut seen, rows);
    }
    for chunk in ids.chunks(INSERT_CHUNK_ROWS) {
        let rows: Vec<Host> = hosts::table
            .filter(hosts::id.eq_any(chunk))
            .filter(hosts::revoked_at.is_null())
            .select(Host::as_select())
            .load(conn)?;
        push_hosts(&mut current.hosts, &mut seen, rows);
    }
    let wanted: Vec<&str> = desired
        .policies
        .iter()
        .filter_map(|p| match &p.repository {
            Some((RepositoryRef::Id(id), _)) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    if !wanted.is_empty() {
        current.repository_ids = repositories_table::table
            .filter(repositories_table::id.eq_any(&wanted))
            .select(repositories_table::id)
            .load::<String>(conn)?
            .into_iter()
            .collect();
    }
    Ok(current)
}

fn push_hosts(out: &mut Vec<CurrentHost>, seen: &mut HashSet<String>, rows: Vec<Host>) {
    for h in rows {
        let id = h.id.into_string();
        if seen.insert(id.clone()) {
            out.push(CurrentHost {
                id,
                hostname: h.hostname,
                labels: h.labels,
            });
        }
    }
}
