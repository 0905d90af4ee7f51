//! What applying a file changes: [`plan`] compares the file ([`Desired`])
//! with what the database holds ([`Current`]) and returns the changes to
//! report and the operations to write, without touching the database
//! (so it is tested here on plain values).
//!
//! The file is the whole truth for policies and shared repositories:
//! one the file does not name is deleted (a repository only if no host
//! uses it, else the apply fails naming the hosts). Host labels are set
//! for the hosts the file names; other hosts keep theirs. A repository
//! whose file entry names no password source keeps its stored password
//! (likewise the credential), so an exported file changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::file::{Desired, DesiredRepository, FileError, RepositoryRef, Secret};
use crate::store::policies::Policy;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Policy,
    Repository,
    HostLabels,
}

/// One change of an apply, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ConfigChange)]
pub struct Change {
    /// `create`, `update` or `delete`.
    #[schema(value_type = String)]
    pub action: Action,
    /// `policy`, `repository` or `host_labels`.
    #[schema(value_type = String)]
    pub kind: Kind,
    /// The policy's or repository's name, or the host's hostname.
    pub name: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        };
        let kind = match self.kind {
            Kind::Policy => "policy",
            Kind::Repository => "repository",
            Kind::HostLabels => "host_labels",
        };
        write!(f, "{action} {kind} {}", self.name)
    }
}

/// A shared repository as stored, its secrets opened.
#[derive(Debug, Clone)]
pub struct CurrentRepository {
    pub id: String,
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    /// `None` if unset or if it cannot be opened (then a file that names
    /// a source rewrites it).
    pub password: Option<Secret>,
    pub credential: Option<Secret>,
    pub maintenance_host_id: Option<String>,
    /// The live hosts attached to it (an update reaches them all).
    pub host_ids: Vec<String>,
    /// Those attached by their own choice, not given it by a policy:
    /// they block a delete. A policy's hosts are released by the policy's
    /// own change (or, if it keeps naming the repository by id, by the
    /// delete itself, which detaches them).
    pub own_host_ids: Vec<String>,
}

/// A live host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentHost {
    pub id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
}

/// What the database holds, as far as the file is concerned.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub repositories: Vec<CurrentRepository>,
    pub policies: Vec<Policy>,
    /// The live hosts the file names (by hostname or id).
    pub hosts: Vec<CurrentHost>,
    /// Ids of repositories (shared or private) that the file's
    /// `repository_id`s name and that exist.
    pub repository_ids: HashSet<String>,
}

/// A repository write.
#[derive(Debug, Clone)]
pub enum RepositoryOp {
    Create {
        id: String,
        desired: DesiredRepository,
        maintenance_host_id: Option<String>,
    },
    Update {
        id: String,
        desired: DesiredRepository,
        maintenance_host_id: Option<String>,
        host_ids: Vec<String>,
    },
    Delete {
        id: String,
        name: String,
    },
}

/// A policy write (`old` as stored, `new` as the file wants it; boxed,
/// as two policies with their options make a large variant).
#[derive(Debug, Clone)]
pub enum PolicyOp {
    Create(Policy),
    /// Boxed: a policy is large, and a create or delete carries one.
    Update {
        old: Box<Policy>,
        new: Box<Policy>,
    },
    Delete(Policy),
}

/// A host's new labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOp {
    pub id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
}

/// Why a file cannot be applied to this database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Something the file says does not fit the database (400).
    #[error(transparent)]
    File(#[from] FileError),
    /// The apply would break something in use (409).
    #[error("{0}")]
    Conflict(String),
}

/// The changes and the writes that make them.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Repositories, then policies, then host labels; within each, the
    /// file's order, deletions last.
    pub changes: Vec<Change>,
    pub repositories: Vec<RepositoryOp>,
    pub policies: Vec<PolicyOp>,
    pub hosts: Vec<HostOp>,
}

fn change(action: Action, kind: Kind, name: &str) -> Change {
    Change {
        action,
        kind,
        name: name.to_owned(),
    }
}

/// The one live host a file entry means (by id if given, else by
/// hostname, which must then be unique).
fn find_host<'a>(
    hosts: &'a [CurrentHost],
    hostname: &str,
    id: Option<&str>,
    line: usize,
    field: &str,
) -> Result<&'a CurrentHost, FileError> {
    if let Some(id) = id {
        return match hosts.iter().find(|h| h.id == id) {
            Some(h) if h.hostname == hostname => Ok(h),
            Some(h) => Err(FileError::at(
                line,
                format!(
                    "{field}: host {id} is named {:?}, not {hostname:?}",
                    h.hostname
                ),
            )),
            None => Err(FileError::at(line, format!("{field}: no live host {id}"))),
        };
    }
    let named: Vec<&CurrentHost> = hosts.iter().filter(|h| h.hostname == hostname).collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(FileError::at(
            line,
            format!("{field}: no live host named {hostname:?}"),
        )),
        many => Err(FileError::at(
            line,
            format!(
                "{field}: {} hosts are named {hostname:?} ({}); add id = \"…\" to choose one",
                many.len(),
                many.iter()
                    .map(|h| h.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Whether the file's repository differs from the stored one. A secret
/// the file does not name is kept, so it does not count.
fn repository_differs(
    d: &DesiredRepository,
    c: &CurrentRepository,
    maintenance: Option<&str>,
) -> bool {
    let secret_differs = |want: &Option<Secret>, have: &Option<Secret>| {
        want.as_ref().is_some_and(|w| have.as_ref() != Some(w))
    };
    d.url != c.url
        || d.username != c.username
        || maintenance != c.maintenance_host_id.as_deref()
        || secret_differs(&d.password, &c.password)
        || secret_differs(&d.credential, &c.credential)
}

/// Whether two policies give hosts the same configuration (ids and
/// times aside).
fn same_policy(a: &Policy, b: &Policy) -> bool {
    a.name == b.name
        && a.selector == b.selector
        && a.source_groups == b.source_groups
        && a.schedules == b.schedules
        && a.repository_id == b.repository_id
        && a.options == b.options
        && a.health_checks == b.health_checks
}

/// Compares `desired` with `current`. `new_id` names new rows; `now`
/// dates them.
pub fn plan(
    current: &Current,
    desired: &Desired,
    mut new_id: impl FnMut() -> String,
    now: i64,
) -> Result<Plan, PlanError> {
    let mut out = Plan::default();

    // Repositories: the file's, by name; the others are deleted.
    let stored: HashMap<&str, &CurrentRepository> = current
        .repositories
        .iter()
        .map(|r| (r.name.as_str(), r))
        .collect();
    let mut ids_by_name: HashMap<&str, String> = HashMap::new();
    for d in &desired.repositories {
        let maintenance = match &d.maintenance_host {
            Some((hostname, line)) => Some(
                find_host(&current.hosts, hostname, None, *line, "maintenance_host")?
                    .id
                    .clone(),
            ),
            None => None,
        };
        match stored.get(d.name.as_str()) {
            None => {
                if d.password.is_none() {
                    return Err(FileError::at(
                        d.line,
                        format!(
                            "password_env: repository {:?} is new; give password_env or password_file",
                            d.name
                        ),
                    )
                    .into());
                }
                let id = new_id();
                ids_by_name.insert(&d.name, id.clone());
                out.changes
                    .push(change(Action::Create, Kind::Repository, &d.name));
                out.repositories.push(RepositoryOp::Create {
                    id,
                    desired: d.clone(),
                    maintenance_host_id: maintenance,
                });
            }
            Some(c) => {
                ids_by_name.insert(&d.name, c.id.clone());
                if repository_differs(d, c, maintenance.as_deref()) {
                    out.changes
                        .push(change(Action::Update, Kind::Repository, &d.name));
                    out.repositories.push(RepositoryOp::Update {
                        id: c.id.clone(),
                        desired: d.clone(),
                        maintenance_host_id: maintenance,
                        host_ids: c.host_ids.clone(),
                    });
                }
            }
        }
    }
    let mut deleted_ids = HashSet::new();
    for c in &current.repositories {
        if ids_by_name.contains_key(c.name.as_str()) {
            continue;
        }
        if !c.own_host_ids.is_empty() {
            return Err(PlanError::Conflict(format!(
                "repository {:?} is not in the file, but {} host(s) use it: {}; \
                 add it to the file or attach them elsewhere first",
                c.name,
                c.own_host_ids.len(),
                c.own_host_ids.join(", ")
            )));
        }
        deleted_ids.insert(c.id.as_str());
        out.changes
            .push(change(Action::Delete, Kind::Repository, &c.name));
        out.repositories.push(RepositoryOp::Delete {
            id: c.id.clone(),
            name: c.name.clone(),
        });
    }

    // Policies, by name.
    let stored: HashMap<&str, &Policy> = current
        .policies
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut named = HashSet::new();
    for d in &desired.policies {
        let repository_id = match &d.repository {
            None => None,
            Some((RepositoryRef::Name(name), line)) => {
                Some(ids_by_name.get(name.as_str()).cloned().ok_or_else(|| {
                    FileError::at(
                        *line,
                        format!("repository: no repository named {name:?} in this file"),
                    )
                })?)
            }
            Some((RepositoryRef::Id(id), line)) => {
                if deleted_ids.contains(id.as_str()) || !current.repository_ids.contains(id) {
                    return Err(FileError::at(
                        *line,
                        format!("repository_id: no repository {id:?} (a shared repository is named with repository = \"…\" and listed in the file)"),
                    )
                    .into());
                }
                Some(id.clone())
            }
        };
        let mut want = d.policy.clone();
        want.repository_id = repository_id;
        named.insert(want.name.clone());
        match stored.get(want.name.as_str()) {
            None => {
                want.id = new_id();
                want.created_at = now;
                want.updated_at = now;
                out.changes
                    .push(change(Action::Create, Kind::Policy, &want.name));
                out.policies.push(PolicyOp::Create(want));
            }
            Some(old) if same_policy(old, &want) => {}
            Some(old) => {
                want.id = old.id.clone();
                want.created_at = old.created_at;
                want.updated_at = now;
                out.changes
                    .push(change(Action::Update, Kind::Policy, &want.name));
                out.policies.push(PolicyOp::Update {
                    old: Box::new((*old).clone()),
                    new: Box::new(want),
                });
            }
        }
    }
    for old in &current.policies {
        if !named.contains(&old.name) {
            out.changes
                .push(change(Action::Delete, Kind::Policy, &old.name));
            out.policies.push(PolicyOp::Delete(old.clone()));
        }
    }

    // Host labels of the hosts the file names.
    for d in &desired.hosts {
        let host = find_host(
            &current.hosts,
            &d.hostname,
            d.id.as_deref(),
            d.line,
            "hostname",
        )?;
        if host.labels != d.labels {
            out.changes
                .push(change(Action::Update, Kind::HostLabels, &d.hostname));
            out.hosts.push(HostOp {
                id: host.id.clone(),
                hostname: d.hostname.clone(),
                labels: d.labels.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
