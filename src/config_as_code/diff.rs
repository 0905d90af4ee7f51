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
            // The file does not carry health checks (yet): a policy
            // keeps those set through the API.
            Some(old) if same_policy(old, &want) => {}
            Some(old) => {
                want.health_checks = old.health_checks.clone();
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
mod tests {
    use super::*;
    use crate::config_as_code::file::parse;

    fn env(name: &str) -> Option<String> {
        match name {
            "PW" => Some("pw-1".into()),
            "PW2" => Some("pw-2".into()),
            _ => None,
        }
    }

    const FILE: &str = r#"
[[repositories]]
name = "prod"
url = "/srv/prod"
password_env = "PW"
maintenance_host = "db-1"

[[policies]]
name = "base"
repository = "prod"
selector = { labels = { env = "prod" } }
[[policies.source_groups]]
name = "etc"
includes = ["/etc"]
[[policies.schedules]]
cron_expr = "0 2 * * *"
source_groups = ["etc"]

[[hosts]]
hostname = "db-1"
labels = { env = "prod" }
"#;

    fn hosts() -> Vec<CurrentHost> {
        vec![
            CurrentHost {
                id: "h1".into(),
                hostname: "db-1".into(),
                labels: BTreeMap::new(),
            },
            CurrentHost {
                id: "h2".into(),
                hostname: "web".into(),
                labels: BTreeMap::new(),
            },
            CurrentHost {
                id: "h3".into(),
                hostname: "web".into(),
                labels: BTreeMap::new(),
            },
        ]
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("new-{n}")
        }
    }

    /// The state the database has once `plan`'s writes are made.
    fn after(current: &Current, plan: &Plan) -> Current {
        let mut next = current.clone();
        for op in &plan.repositories {
            match op {
                RepositoryOp::Create {
                    id,
                    desired,
                    maintenance_host_id,
                }
                | RepositoryOp::Update {
                    id,
                    desired,
                    maintenance_host_id,
                    ..
                } => {
                    next.repositories.retain(|r| r.id != *id);
                    next.repositories.push(CurrentRepository {
                        id: id.clone(),
                        name: desired.name.clone(),
                        url: desired.url.clone(),
                        username: desired.username.clone(),
                        password: desired.password.clone(),
                        credential: desired.credential.clone(),
                        maintenance_host_id: maintenance_host_id.clone(),
                        host_ids: Vec::new(),
                        own_host_ids: Vec::new(),
                    });
                }
                RepositoryOp::Delete { id, .. } => next.repositories.retain(|r| r.id != *id),
            }
        }
        for op in &plan.policies {
            match op {
                PolicyOp::Create(p) => next.policies.push(p.clone()),
                PolicyOp::Update { new, .. } => {
                    next.policies.retain(|p| p.id != new.id);
                    next.policies.push((**new).clone());
                }
                PolicyOp::Delete(p) => next.policies.retain(|q| q.id != p.id),
            }
        }
        for op in &plan.hosts {
            for h in next.hosts.iter_mut().filter(|h| h.id == op.id) {
                h.labels = op.labels.clone();
            }
        }
        next
    }

    /// An empty database: everything is created; applied again, nothing
    /// changes (idempotence).
    #[test]
    fn creates_then_nothing() {
        let desired = parse(FILE, &env).unwrap();
        let empty = Current {
            hosts: hosts(),
            ..Current::default()
        };
        let first = plan(&empty, &desired, ids(), 1).unwrap();
        let got: Vec<String> = first.changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "create repository prod",
                "create policy base",
                "update host_labels db-1"
            ]
        );
        let PolicyOp::Create(p) = &first.policies[0] else {
            panic!("{:?}", first.policies)
        };
        assert_eq!(p.repository_id.as_deref(), Some("new-1"));
        let RepositoryOp::Create {
            maintenance_host_id,
            ..
        } = &first.repositories[0]
        else {
            panic!()
        };
        assert_eq!(maintenance_host_id.as_deref(), Some("h1"));
        let second = plan(&after(&empty, &first), &desired, ids(), 2).unwrap();
        assert!(second.changes.is_empty(), "{:?}", second.changes);
    }

    /// Changed fields update; a changed secret updates; a secret the
    /// file does not name is kept; what the file lacks is deleted.
    #[test]
    fn updates_and_deletes() {
        let desired = parse(FILE, &env).unwrap();
        let base = Current {
            hosts: hosts(),
            ..Current::default()
        };
        let state = after(&base, &plan(&base, &desired, ids(), 1).unwrap());

        let changed = parse(&FILE.replace("0 2 * * *", "0 3 * * *"), &env).unwrap();
        let p = plan(&state, &changed, ids(), 2).unwrap();
        assert_eq!(p.changes, [change(Action::Update, Kind::Policy, "base")]);

        let new_password = parse(&FILE.replace("\"PW\"", "\"PW2\""), &env).unwrap();
        let p = plan(&state, &new_password, ids(), 2).unwrap();
        assert_eq!(
            p.changes,
            [change(Action::Update, Kind::Repository, "prod")]
        );

        let no_source = parse(&FILE.replace("password_env = \"PW\"\n", ""), &env).unwrap();
        assert!(plan(&state, &no_source, ids(), 2)
            .unwrap()
            .changes
            .is_empty());

        let only_hosts = parse(
            "[[hosts]]\nhostname = \"db-1\"\nlabels = { env = \"prod\" }\n",
            &env,
        )
        .unwrap();
        let p = plan(&state, &only_hosts, ids(), 2).unwrap();
        assert_eq!(
            p.changes,
            [
                change(Action::Delete, Kind::Repository, "prod"),
                change(Action::Delete, Kind::Policy, "base"),
            ]
        );
    }

    /// A repository hosts use is not deleted (409 naming them); unknown
    /// or ambiguous hosts and unknown repositories name their line; a new
    /// repository needs a password source.
    #[test]
    fn refusals() {
        let desired = parse(FILE, &env).unwrap();
        let base = Current {
            hosts: hosts(),
            ..Current::default()
        };
        let mut state = after(&base, &plan(&base, &desired, ids(), 1).unwrap());
        state.repositories[0].host_ids = vec!["h1".into(), "h2".into()];
        state.repositories[0].own_host_ids = vec!["h1".into()];
        let empty = parse("", &env).unwrap();
        match plan(&state, &empty, ids(), 2).unwrap_err() {
            PlanError::Conflict(m) => assert!(m.contains("h1") && m.contains("prod"), "{m}"),
            other => panic!("{other:?}"),
        }

        let unknown = parse(
            &FILE.replace("hostname = \"db-1\"", "hostname = \"db-9\""),
            &env,
        )
        .unwrap();
        let e = plan(&base, &unknown, ids(), 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 20: hostname: no live host named \"db-9\""
        );
        let twice = parse(
            &FILE.replace("hostname = \"db-1\"", "hostname = \"web\""),
            &env,
        )
        .unwrap();
        let e = plan(&base, &twice, ids(), 1).unwrap_err().to_string();
        assert!(e.contains("2 hosts are named \"web\" (h2, h3)"), "{e}");
        let chosen = parse(
            &FILE.replace("hostname = \"db-1\"", "hostname = \"web\"\nid = \"h3\""),
            &env,
        )
        .unwrap();
        let p = plan(&base, &chosen, ids(), 1).unwrap();
        assert_eq!(p.hosts[0].id, "h3");

        let no_repo = parse(
            &FILE.replace("repository = \"prod\"", "repository = \"x\""),
            &env,
        )
        .unwrap();
        let e = plan(&base, &no_repo, ids(), 1).unwrap_err().to_string();
        assert!(e.starts_with("line 10: repository:"), "{e}");
        let no_pw = parse(&FILE.replace("password_env = \"PW\"\n", ""), &env).unwrap();
        let e = plan(&base, &no_pw, ids(), 1).unwrap_err().to_string();
        assert!(e.starts_with("line 3: password_env:"), "{e}");
    }
}
