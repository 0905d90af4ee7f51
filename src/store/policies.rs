//! Queries on `policies` (issue 12 §1): source groups and schedules that
//! every host whose labels match a [`Selector`] gets. A policy row holds
//! its groups and schedules as given; [`super::policy_sync`] writes each
//! matching host's own copies (rows of `source_groups` and `schedules`
//! marked with `policy_id`), so fires, run-now and `schedule.set` read a
//! host's rows as they always did. Names are unique: a duplicate is
//! diesel's `UniqueViolation` (the API's 409).

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::json::Json;
use super::schema::policies;
use super::{DbConnection, ScheduleKind};
use crate::protocol::{HealthCheckSpec, RetentionPolicy, RunOptions};

/// Which hosts a policy applies to: every label must match (an empty
/// selector matches every host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    /// Whether a host with these labels matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// The label pairs, for [`super::hosts::HostFilter::labels`].
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A source group of a policy (validated as a host's group is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyGroup {
    pub name: String,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    pub retention_policy: Option<RetentionPolicy>,
    pub retry_max: i32,
    pub retry_backoff_seconds: i32,
    pub prune_after_forget: bool,
    /// The group's own options (over the policy's); absent in rows
    /// stored before options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<RunOptions>,
}

impl PolicyGroup {
    /// Whether `other` differs from it in its options alone (or not at
    /// all).
    fn same_but_options(&self, other: &PolicyGroup) -> bool {
        let bare = |g: &PolicyGroup| PolicyGroup {
            options: None,
            ..g.clone()
        };
        bare(self) == bare(other)
    }
}

/// A schedule of a policy; `source_groups` names groups of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySchedule {
    pub cron_expr: String,
    pub enabled: bool,
    pub kind: ScheduleKind,
    /// Distinct, sorted.
    pub source_groups: Vec<String>,
}

/// A policy row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = policies)]
pub struct Policy {
    pub id: String,
    pub name: String,
    #[diesel(deserialize_as = Json<Selector>)]
    pub selector: Selector,
    #[diesel(deserialize_as = Json<Vec<PolicyGroup>>)]
    pub source_groups: Vec<PolicyGroup>,
    #[diesel(deserialize_as = Json<Vec<PolicySchedule>>)]
    pub schedules: Vec<PolicySchedule>,
    pub repository_id: Option<String>,
    /// Options of every group of the policy (a group's own win).
    #[diesel(deserialize_as = Json<Option<RunOptions>>)]
    pub options: Option<RunOptions>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Health checks every matching host runs besides its own (a host's
    /// own check of the same name wins: `store::health::effective_checks`).
    #[diesel(deserialize_as = Json<Vec<HealthCheckSpec>>)]
    pub health_checks: Vec<HealthCheckSpec>,
}

impl Policy {
    /// Whether the policy gives a host any rows (else matching it
    /// changes nothing a host runs).
    pub fn materializes(&self) -> bool {
        !self.source_groups.is_empty() || !self.schedules.is_empty()
    }

    /// Whether `other` gives hosts the same groups (with the same
    /// options) and schedules.
    pub fn same_content(&self, other: &Policy) -> bool {
        self.source_groups == other.source_groups
            && self.schedules == other.schedules
            && self.options == other.options
    }

    /// Whether `other` gives hosts the same `schedule.set`: the same
    /// schedules and groups, options aside (options travel in each job's
    /// `command.run.args`, not in `schedule.set`).
    pub fn same_schedules(&self, other: &Policy) -> bool {
        self.schedules == other.schedules
            && self.source_groups.len() == other.source_groups.len()
            && self
                .source_groups
                .iter()
                .zip(&other.source_groups)
                .all(|(a, b)| a.same_but_options(b))
    }

    /// The options a host's copy of `group` runs with: the policy's, with
    /// the group's own on top.
    pub fn group_options(&self, group: &PolicyGroup) -> Option<RunOptions> {
        RunOptions::overlaid(self.options.as_ref(), group.options.as_ref())
    }
}

/// JSON text of a value for a TEXT column (these types always serialise).
fn text<T: Serialize>(value: &T) -> QueryResult<String> {
    serde_json::to_string(value).map_err(|e| diesel::result::Error::SerializationError(e.into()))
}

/// Stores a new policy (its id, name and times as given).
pub fn insert(conn: &mut DbConnection, p: &Policy) -> QueryResult<Policy> {
    let options = p.options.as_ref().map(text).transpose()?;
    diesel::insert_into(policies::table)
        .values((
            policies::id.eq(&p.id),
            policies::name.eq(&p.name),
            policies::selector.eq(text(&p.selector)?),
            policies::source_groups.eq(text(&p.source_groups)?),
            policies::schedules.eq(text(&p.schedules)?),
            policies::repository_id.eq(&p.repository_id),
            policies::options.eq(options),
            policies::created_at.eq(p.created_at),
            policies::updated_at.eq(p.updated_at),
            policies::health_checks.eq(text(&p.health_checks)?),
        ))
        .execute(conn)?;
    get(conn, &p.id)?.ok_or(diesel::result::Error::NotFound)
}

/// Replaces every field of the policy `p.id` but its creation time.
/// `None` if it does not exist.
pub fn update(conn: &mut DbConnection, p: &Policy) -> QueryResult<Option<Policy>> {
    let options = p.options.as_ref().map(text).transpose()?;
    diesel::update(policies::table.find(&p.id))
        .set((
            policies::name.eq(&p.name),
            policies::selector.eq(text(&p.selector)?),
            policies::source_groups.eq(text(&p.source_groups)?),
            policies::schedules.eq(text(&p.schedules)?),
            policies::repository_id.eq(&p.repository_id),
            policies::options.eq(options),
            policies::updated_at.eq(p.updated_at),
            policies::health_checks.eq(text(&p.health_checks)?),
        ))
        .execute(conn)?;
    get(conn, &p.id)
}

/// The policy with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Policy>> {
    policies::table
        .find(id)
        .select(Policy::as_select())
        .first(conn)
        .optional()
}

/// The policy with this name.
pub fn by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Policy>> {
    policies::table
        .filter(policies::name.eq(name))
        .select(Policy::as_select())
        .first(conn)
        .optional()
}

/// Every policy, by name.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Policy>> {
    policies::table
        .order(policies::name.asc())
        .select(Policy::as_select())
        .load(conn)
}

/// The policies that carry health checks, by name: the filter is in the
/// query, so a greeting on a fleet whose policies have none reads no
/// policy row (issue 12 §7: `hello` must not slow down with policies).
pub fn with_health_checks(conn: &mut DbConnection) -> QueryResult<Vec<Policy>> {
    policies::table
        .filter(policies::health_checks.ne(NO_HEALTH_CHECKS))
        .order(policies::name.asc())
        .select(Policy::as_select())
        .load(conn)
}

/// How `health_checks` stores "none": the column's default and the JSON
/// text of an empty list ([`text`]).
const NO_HEALTH_CHECKS: &str = "[]";

/// Names of these policies by id.
pub fn names(conn: &mut DbConnection, ids: &[String]) -> QueryResult<BTreeMap<String, String>> {
    Ok(policies::table
        .filter(policies::id.eq_any(ids))
        .select((policies::id, policies::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}

/// Deletes the policy row (its hosts' rows: [`super::policy_sync`]).
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(policies::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Every label of the selector must match; an empty one matches all.
    #[test]
    fn selector_matching() {
        let host = labels(&[("env", "prod"), ("role", "db")]);
        let sel = |pairs: &[(&str, &str)]| Selector {
            labels: labels(pairs),
        };
        assert!(sel(&[]).matches(&host));
        assert!(sel(&[]).matches(&BTreeMap::new()));
        assert!(sel(&[("env", "prod")]).matches(&host));
        assert!(sel(&[("env", "prod"), ("role", "db")]).matches(&host));
        assert!(!sel(&[("env", "prod"), ("role", "web")]).matches(&host));
        assert!(!sel(&[("env", "dev")]).matches(&host));
        assert!(!sel(&[("zone", "a")]).matches(&host));
        assert!(!sel(&[("env", "prod")]).matches(&BTreeMap::new()));
    }

    /// Options (the policy's or a group's) change the content but not the
    /// `schedule.set`; an include changes both.
    #[test]
    fn options_alone_leave_the_schedules() {
        let group = PolicyGroup {
            name: "etc".to_owned(),
            includes: vec!["/etc".to_owned()],
            excludes: Vec::new(),
            retention_policy: None,
            retry_max: 0,
            retry_backoff_seconds: 300,
            prune_after_forget: false,
            options: None,
        };
        let base = Policy {
            id: "p".to_owned(),
            name: "base".to_owned(),
            selector: Selector::default(),
            source_groups: vec![group],
            schedules: Vec::new(),
            repository_id: None,
            options: None,
            health_checks: Vec::new(),
            created_at: 0,
            updated_at: 0,
        };
        let limit = Some(RunOptions {
            limit_upload_kib: Some(100),
            ..RunOptions::default()
        });
        let mut policy_options = base.clone();
        policy_options.options = limit.clone();
        let mut group_options = base.clone();
        group_options.source_groups[0].options = limit;
        let mut include = base.clone();
        include.source_groups[0].includes.push("/srv".to_owned());
        for changed in [&policy_options, &group_options] {
            assert!(!base.same_content(changed));
            assert!(base.same_schedules(changed));
        }
        assert!(!base.same_content(&include));
        assert!(!base.same_schedules(&include));
        assert!(base.same_schedules(&base));
    }
}
