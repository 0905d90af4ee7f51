//! The one-row part of what a greeting or a configuration push reads of a
//! host, in one statement: its schedule and config versions, its labels,
//! its repository, its own health checks and the policy revision.
//!
//! They were five or six statements (`schedule_versions::get`,
//! `config_versions::get`, `repositories::get_for_host`,
//! `health::get_checks`, the policies with checks and the revision), one
//! round trip each on PostgreSQL, where a greeting is bound by round trips
//! (issue 19, BENCHMARKS.md). One statement also reads them as of one
//! moment on both backends.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::config_versions::HostConfigVersion;
use super::json::Json;
use super::models::Repository;
use super::schema::{health_checks, host_schedule_version, hosts, policy_revision, repositories};
use super::DbConnection;

/// A host's row with what hangs off it one to one.
#[derive(Debug, Clone)]
pub struct HostState {
    /// `host_schedule_version.version`; `None` before the first bump.
    pub schedule_version: Option<i64>,
    pub config: HostConfigVersion,
    pub labels: BTreeMap<String, String>,
    pub repository: Option<Repository>,
    /// The host's own checks as stored (a JSON list); `None`: never set.
    pub own_checks: Option<String>,
    /// `policy_revision.revision`; `None`: no revision row (then nothing
    /// may be taken from the per-revision memos).
    pub policy_revision: Option<i64>,
}

type Row = (
    Option<i64>,
    HostConfigVersion,
    Json<BTreeMap<String, String>>,
    Option<Repository>,
    Option<String>,
    Option<i64>,
);

/// The host's state, or `None` when there is no such host.
pub fn get(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<HostState>> {
    let revision = policy_revision::table
        .filter(policy_revision::id.eq(1))
        .select(policy_revision::revision)
        .single_value();
    let row: Option<Row> = hosts::table
        .left_join(repositories::table)
        .left_join(host_schedule_version::table.on(host_schedule_version::host_id.eq(hosts::id)))
        .left_join(health_checks::table.on(health_checks::host_id.eq(hosts::id)))
        .filter(hosts::id.eq(host_id))
        .select((
            host_schedule_version::version.nullable(),
            HostConfigVersion::as_select(),
            hosts::labels,
            Option::<Repository>::as_select(),
            health_checks::checks.nullable(),
            revision,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(schedule_version, config, labels, repository, own_checks, policy_revision)| HostState {
            schedule_version,
            config,
            labels: labels.0,
            repository,
            own_checks,
            policy_revision,
        },
    ))
}
