//! A policy's shared repository on the hosts it matches (issue 12 §1/§3):
//! a host without a repository of its own gets the `repository_id` of the
//! policy that matches it. The host row says where its repository comes
//! from (`repository_policy_id`: the policy; NULL: the host's own
//! choice), so a host's own repository is never overwritten, and the
//! policy's is taken back (or replaced by another matching policy's) when
//! the policy stops matching, drops its repository or is deleted.
//!
//! Two matching policies that would give one host different repositories
//! are a conflict ([`super::SyncError::RepositoryConflict`], the API's
//! 409 naming the hosts and policies); policies that agree are fine.
//! Only hosts whose repository changes are returned: they, and only
//! they, get a `config.update`.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;

use super::{join_named, OnConflict, SyncError, MAX_NAMED_CONFLICTS};
use crate::store::hosts::{self, HostFilter};
use crate::store::policies::{self, Policy};
use crate::store::schema::hosts as hosts_table;
use crate::store::{DbConnection, INSERT_CHUNK_ROWS};

/// A host two matching policies would give different repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryConflict {
    pub host_id: String,
    pub hostname: String,
    /// (policy name, repository id) of every matching policy that gives
    /// one.
    pub policies: Vec<(String, String)>,
}

/// The message of a repository conflict, naming hosts and policies.
pub fn describe(conflicts: &[RepositoryConflict]) -> String {
    let named: Vec<String> = conflicts
        .iter()
        .take(MAX_NAMED_CONFLICTS)
        .map(|c| {
            let gives: Vec<String> = c
                .policies
                .iter()
                .map(|(p, r)| format!("policy {p:?} gives repository {r}"))
                .collect();
            format!("host {} ({}): {}", c.hostname, c.host_id, gives.join(", "))
        })
        .collect();
    format!(
        "repository conflict (a host without a repository of its own can get one policy's repository only): {}",
        join_named(&named, conflicts.len())
    )
}

/// A host as this module sees it.
struct HostRepo {
    id: String,
    hostname: String,
    labels: BTreeMap<String, String>,
    repository_id: Option<String>,
    repository_policy_id: Option<String>,
}

impl HostRepo {
    /// The host chose its repository itself.
    fn has_own(&self) -> bool {
        self.repository_id.is_some() && self.repository_policy_id.is_none()
    }
}

type HostRow = (String, String, String, Option<String>, Option<String>);

fn host_repo(row: HostRow) -> HostRepo {
    let (id, hostname, labels, repository_id, repository_policy_id) = row;
    HostRepo {
        id,
        hostname,
        // The column always holds a JSON object (hosts::patch writes it).
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        repository_id,
        repository_policy_id,
    }
}

/// `(policy id, repository id)`: the policy a host's repository comes from.
type Given<'a> = (&'a str, &'a str);

/// What the matching policies give a host: `(policy id, repository)` or
/// the conflicting `(name, repository)` pairs. `givers` is sorted by name,
/// so of policies that agree the first by name is recorded.
fn wanted<'a>(
    givers: &'a [Policy],
    labels: &BTreeMap<String, String>,
) -> Result<Option<Given<'a>>, Vec<(String, String)>> {
    let matching: Vec<(&Policy, &str)> = givers
        .iter()
        .filter(|p| p.selector.matches(labels))
        .filter_map(|p| p.repository_id.as_deref().map(|r| (p, r)))
        .collect();
    let Some((first, repo)) = matching.first() else {
        return Ok(None);
    };
    if matching.iter().all(|(_, r)| r == repo) {
        return Ok(Some((first.id.as_str(), repo)));
    }
    Err(matching
        .iter()
        .map(|(p, r)| (p.name.clone(), (*r).to_owned()))
        .collect())
}

/// Brings each host to what `givers` give it; returns the hosts whose
/// repository changed, or every conflict.
fn settle(
    conn: &mut DbConnection,
    hosts: Vec<HostRepo>,
    givers: &[Policy],
    on_conflict: OnConflict,
) -> Result<Vec<String>, SyncError> {
    let mut conflicts = Vec::new();
    // (repository, policy) → hosts to set to it.
    let mut updates: HashMap<(Option<&str>, Option<&str>), Vec<String>> = HashMap::new();
    let mut changed = Vec::new();
    for host in hosts {
        if host.has_own() {
            continue;
        }
        let target = match wanted(givers, &host.labels) {
            Ok(t) => t,
            Err(policies) => match on_conflict {
                OnConflict::Refuse => {
                    conflicts.push(RepositoryConflict {
                        host_id: host.id,
                        hostname: host.hostname,
                        policies,
                    });
                    continue;
                }
                OnConflict::Skip => {
                    tracing::warn!(host_id = %host.id, "policies give the host different repositories; it keeps the one it has");
                    continue;
                }
            },
        };
        let (policy, repo) = target.map_or((None, None), |(p, r)| (Some(p), Some(r)));
        if host.repository_id.as_deref() == repo && host.repository_policy_id.as_deref() == policy {
            continue;
        }
        if host.repository_id.as_deref() != repo {
            changed.push(host.id.clone());
        }
        updates.entry((repo, policy)).or_default().push(host.id);
    }
    if !conflicts.is_empty() {
        return Err(SyncError::RepositoryConflict(conflicts));
    }
    for ((repo, policy), ids) in updates {
        for chunk in ids.chunks(INSERT_CHUNK_ROWS) {
            diesel::update(hosts_table::table.filter(hosts_table::id.eq_any(chunk)))
                .set((
                    hosts_table::repository_id.eq(repo),
                    hosts_table::repository_policy_id.eq(policy),
                ))
                .execute(conn)?;
        }
    }
    changed.sort_unstable();
    Ok(changed)
}

/// Every policy that gives a repository, by name, with `pid`'s row
/// replaced by `new` (or left out when `new` is `None`).
fn givers(conn: &mut DbConnection, pid: &str, new: Option<&Policy>) -> QueryResult<Vec<Policy>> {
    let mut all: Vec<Policy> = policies::list(conn)?
        .into_iter()
        .filter(|p| p.id != pid && p.repository_id.is_some())
        .collect();
    if let Some(n) = new.filter(|n| n.repository_id.is_some()) {
        all.push(n.clone());
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// A policy went from `old` to `new`: the hosts that hold its repository
/// and the ones it now matches are settled. Returns the hosts whose
/// repository changed.
pub(super) fn apply(
    conn: &mut DbConnection,
    old: Option<&Policy>,
    new: Option<&Policy>,
) -> Result<Vec<String>, SyncError> {
    let Some(pid) = new.or(old).map(|p| p.id.clone()) else {
        return Ok(Vec::new());
    };
    let repo_of = |p: Option<&Policy>| p.and_then(|p| p.repository_id.clone());
    let same_reach = match (old, new) {
        (Some(o), Some(n)) => o.selector == n.selector,
        _ => false,
    };
    if repo_of(old).is_none() && repo_of(new).is_none() {
        return Ok(Vec::new());
    }
    if same_reach && repo_of(old) == repo_of(new) {
        // A schedule or group change: no host's repository moves.
        return Ok(Vec::new());
    }
    let columns = (
        hosts_table::id,
        hosts_table::hostname,
        hosts_table::labels,
        hosts_table::repository_id,
        hosts_table::repository_policy_id,
    );
    let mut rows: Vec<HostRow> = hosts_table::table
        .filter(hosts_table::repository_policy_id.eq(&pid))
        .select(columns)
        .load(conn)?;
    if let Some(n) = new.filter(|n| n.repository_id.is_some()) {
        let filter = HostFilter {
            labels: n.selector.pairs(),
            ..HostFilter::default()
        };
        let matched: Vec<HostRow> = hosts::filtered(&filter).select(columns).load(conn)?;
        rows.extend(matched);
    }
    let mut seen = std::collections::HashSet::new();
    let hosts: Vec<HostRepo> = rows
        .into_iter()
        .filter(|r| seen.insert(r.0.clone()))
        .map(host_repo)
        .collect();
    let givers = givers(conn, &pid, new)?;
    settle(conn, hosts, &givers, OnConflict::Refuse)
}

/// The host now has `labels`: its repository follows the policies that
/// match. Whether it changed.
pub(super) fn sync(
    conn: &mut DbConnection,
    host_id: &str,
    labels: &BTreeMap<String, String>,
    all: &[Policy],
    on_conflict: OnConflict,
) -> Result<bool, SyncError> {
    let row: Option<HostRow> = hosts_table::table
        .find(host_id)
        .select((
            hosts_table::id,
            hosts_table::hostname,
            hosts_table::labels,
            hosts_table::repository_id,
            hosts_table::repository_policy_id,
        ))
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        return Ok(false);
    };
    let mut host = host_repo(row);
    host.labels = labels.clone();
    let mut givers: Vec<Policy> = all
        .iter()
        .filter(|p| p.repository_id.is_some())
        .cloned()
        .collect();
    givers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(!settle(conn, vec![host], &givers, on_conflict)?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::policies::Selector;

    fn policy(name: &str, env: Option<&str>, repo: &str) -> Policy {
        let mut labels = BTreeMap::new();
        if let Some(env) = env {
            labels.insert("env".to_owned(), env.to_owned());
        }
        Policy {
            id: format!("id-{name}"),
            name: name.to_owned(),
            selector: Selector { labels },
            source_groups: Vec::new(),
            schedules: Vec::new(),
            repository_id: Some(repo.to_owned()),
            options: None,
            health_checks: Vec::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// One matching policy gives its repository; agreeing ones are fine
    /// (the first by name is recorded); disagreeing ones are a conflict
    /// naming both; none matching gives none.
    #[test]
    fn what_policies_give_a_host() {
        let prod = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
        let givers = vec![policy("a", Some("prod"), "r1"), policy("b", None, "r1")];
        assert_eq!(wanted(&givers, &prod), Ok(Some(("id-a", "r1"))));
        let dev = BTreeMap::from([("env".to_owned(), "dev".to_owned())]);
        assert_eq!(wanted(&givers, &dev), Ok(Some(("id-b", "r1"))));
        let clash = vec![policy("a", Some("prod"), "r1"), policy("b", None, "r2")];
        assert_eq!(
            wanted(&clash, &prod),
            Err(vec![
                ("a".to_owned(), "r1".to_owned()),
                ("b".to_owned(), "r2".to_owned())
            ])
        );
        assert_eq!(wanted(&clash[..1], &dev), Ok(None));
    }
}
