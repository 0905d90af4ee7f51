//! The database as a configuration file: [`export`] writes the shared
//! repositories, the policies (their health checks included) and the labels of every live host that has
//! some, in the format `file` reads, so that applying the export to the
//! same server changes nothing. The output is deterministic (sorted by
//! name, no timestamp), so exports diff well under version control.
//!
//! Never a secret: the server keeps no record of where a stored password
//! came from, so a repository's password and credential are written as a
//! comment saying they are stored and kept (a file that names no source
//! keeps the stored secret).

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use serde::Serialize;

use crate::protocol::{HealthCheckSpec, RetentionPolicy, RunOptions};
use crate::store::models::Host;
use crate::store::schema::hosts;
use crate::store::{self, DbConnection};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    /// A value TOML cannot hold.
    #[error("cannot write {what} as TOML: {message}")]
    Toml { what: String, message: String },
}

const HEADER: &str = "\
# restic-manager configuration (`restic-manager export`).
#
# Apply with `restic-manager apply FILE [--dry-run]` or
# POST /api/v1/config/apply. The file is the whole truth for policies and
# shared repositories: those it does not name are deleted (a repository
# hosts still use is refused). Host labels are set for the hosts listed;
# other hosts keep theirs.
#
# Secrets are never written here. Name where a repository's password comes
# from with password_env = \"VARIABLE\" or password_file = \"/path\" (likewise
# credential_env / credential_file); without one the stored secret is kept.
";

#[derive(Serialize)]
struct Out<T> {
    repositories: Vec<T>,
}

#[derive(Serialize)]
struct OutPolicies<T> {
    policies: Vec<T>,
}

#[derive(Serialize)]
struct OutHosts<T> {
    hosts: Vec<T>,
}

#[derive(Serialize)]
struct OutRepository<'a> {
    name: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maintenance_host: Option<&'a str>,
}

#[derive(Serialize)]
struct OutSelector<'a> {
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct OutGroup<'a> {
    name: &'a str,
    includes: &'a [String],
    excludes: &'a [String],
    retry_max: i32,
    retry_backoff_seconds: i32,
    prune_after_forget: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_policy: Option<&'a RetentionPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<&'a RunOptions>,
}

#[derive(Serialize)]
struct OutSchedule<'a> {
    cron_expr: &'a str,
    enabled: bool,
    kind: &'a str,
    source_groups: &'a [String],
}

#[derive(Serialize)]
struct OutPolicy<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repository_id: Option<&'a str>,
    selector: OutSelector<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<&'a RunOptions>,
    source_groups: Vec<OutGroup<'a>>,
    schedules: Vec<OutSchedule<'a>>,
    #[serde(skip_serializing_if = "no_checks")]
    health_checks: &'a [HealthCheckSpec],
}

/// A policy without health checks writes no `health_checks` key.
fn no_checks(checks: &&[HealthCheckSpec]) -> bool {
    checks.is_empty()
}

#[derive(Serialize)]
struct OutHost<'a> {
    hostname: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    labels: &'a BTreeMap<String, String>,
}

fn to_toml<T: Serialize>(what: &str, value: &T) -> Result<String, ExportError> {
    toml::to_string(value).map_err(|e| ExportError::Toml {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

/// The configuration file of what the database holds.
pub fn export(conn: &mut DbConnection) -> Result<String, ExportError> {
    let mut out = String::from(HEADER);
    let live: Vec<Host> = hosts::table
        .filter(hosts::revoked_at.is_null())
        .select(Host::as_select())
        .load(conn)?;
    let hostname: HashMap<&str, &str> = live
        .iter()
        .map(|h| (h.id.as_str(), h.hostname.as_str()))
        .collect();
    let mut per_name: HashMap<&str, usize> = HashMap::new();
    for h in &live {
        *per_name.entry(h.hostname.as_str()).or_default() += 1;
    }

    let shared = store::repositories::list_shared(conn)?;
    let repo_names: HashMap<&str, &str> = shared
        .iter()
        .filter_map(|r| r.name.as_deref().map(|n| (r.id.as_str(), n)))
        .collect();
    for r in &shared {
        let name = r.name.as_deref().unwrap_or_default();
        let entry = OutRepository {
            name,
            url: &r.url,
            username: r.username.as_deref(),
            maintenance_host: r
                .maintenance_host_id
                .as_deref()
                .and_then(|id| hostname.get(id).copied()),
        };
        out.push('\n');
        out.push_str(&to_toml(
            &format!("repository {name:?}"),
            &Out {
                repositories: vec![entry],
            },
        )?);
        for (what, set) in [
            ("password", r.password_set()),
            ("credential", r.credential_set()),
        ] {
            if set {
                out.push_str(&format!(
                    "# {what}: stored on the server and kept; to set it from this file add\n\
                     # {what}_env = \"…\" or {what}_file = \"…\"\n"
                ));
            }
        }
    }

    for p in store::policies::list(conn)? {
        let shared_name = p
            .repository_id
            .as_deref()
            .and_then(|id| repo_names.get(id).copied());
        let entry = OutPolicy {
            name: &p.name,
            repository: shared_name,
            repository_id: p.repository_id.as_deref().filter(|_| shared_name.is_none()),
            selector: OutSelector {
                labels: &p.selector.labels,
            },
            options: p.options.as_ref(),
            source_groups: p
                .source_groups
                .iter()
                .map(|g| OutGroup {
                    name: &g.name,
                    includes: &g.includes,
                    excludes: &g.excludes,
                    retry_max: g.retry_max,
                    retry_backoff_seconds: g.retry_backoff_seconds,
                    prune_after_forget: g.prune_after_forget,
                    retention_policy: g.retention_policy.as_ref(),
                    options: g.options.as_ref(),
                })
                .collect(),
            schedules: p
                .schedules
                .iter()
                .map(|s| OutSchedule {
                    cron_expr: &s.cron_expr,
                    enabled: s.enabled,
                    kind: s.kind.as_str(),
                    source_groups: &s.source_groups,
                })
                .collect(),
            health_checks: &p.health_checks,
        };
        out.push('\n');
        out.push_str(&to_toml(
            &format!("policy {:?}", p.name),
            &OutPolicies {
                policies: vec![entry],
            },
        )?);
    }

    let mut labelled: Vec<&Host> = live.iter().filter(|h| !h.labels.is_empty()).collect();
    labelled.sort_by(|a, b| (&a.hostname, a.id.as_str()).cmp(&(&b.hostname, b.id.as_str())));
    for h in labelled {
        let shared_name = per_name.get(h.hostname.as_str()).copied().unwrap_or(0) > 1;
        let entry = OutHost {
            hostname: &h.hostname,
            id: shared_name.then_some(h.id.as_str()),
            labels: &h.labels,
        };
        out.push('\n');
        out.push_str(&to_toml(
            &format!("host {:?}", h.hostname),
            &OutHosts { hosts: vec![entry] },
        )?);
    }
    Ok(out)
}
