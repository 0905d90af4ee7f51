//! The one-row part of what a greeting or a configuration push reads of a
//! host, in one statement: its schedule and config versions, its labels,
//! its repository, its own health checks, the policy revision and whether
//! it has a queued job.
//!
//! They were five or six statements (`schedule_versions::get`,
//! `config_versions::get`, `repositories::get_for_host`,
//! `health::get_checks`, the policies with checks and the revision), one
//! round trip each on PostgreSQL, where a greeting is bound by round trips
//! (issue 19, BENCHMARKS.md). One statement also reads them as of one
//! moment on both backends.
//!
//! The host page reads the same in its one statement ([`for_page`]), with
//! the host's whole row and the rest of what hangs off it one to one: the
//! check rotation and the latest Docker discovery report.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::config_versions::HostConfigVersion;
use super::discovery::DiscoveryRow;
use super::hosts::HostWithVersion;
use super::json::Json;
use super::models::{Host, HostScheduleVersion, Repository, SourceGroup};
use super::schema::{
    health_checks, host_discovery, host_schedule_version, hosts, jobs, policy_revision,
    repositories, source_groups,
};
use super::verification::{check_rotation, RotationRow};
use super::{DbConnection, JobStatus};

diesel::allow_tables_to_appear_in_same_query!(check_rotation, hosts);
diesel::allow_tables_to_appear_in_same_query!(check_rotation, repositories);
diesel::allow_tables_to_appear_in_same_query!(check_rotation, host_schedule_version);
diesel::allow_tables_to_appear_in_same_query!(check_rotation, health_checks);
diesel::allow_tables_to_appear_in_same_query!(check_rotation, policy_revision);
diesel::allow_tables_to_appear_in_same_query!(check_rotation, host_discovery);
diesel::allow_tables_to_appear_in_same_query!(check_rotation, source_groups);
diesel::allow_tables_to_appear_in_same_query!(host_discovery, hosts);
diesel::allow_tables_to_appear_in_same_query!(host_discovery, repositories);
diesel::allow_tables_to_appear_in_same_query!(host_discovery, host_schedule_version);
diesel::allow_tables_to_appear_in_same_query!(host_discovery, health_checks);
diesel::allow_tables_to_appear_in_same_query!(host_discovery, policy_revision);
diesel::allow_tables_to_appear_in_same_query!(jobs, health_checks);
diesel::allow_tables_to_appear_in_same_query!(jobs, policy_revision);

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
    /// Whether the host has a `queued` job: without one, a greeting skips
    /// the read of the jobs it sends (`jobs::queued_for_host`), the common
    /// case of a reconnect.
    pub has_queued: bool,
}

type Row = (
    Option<i64>,
    HostConfigVersion,
    Json<BTreeMap<String, String>>,
    Option<Repository>,
    Option<String>,
    Option<i64>,
    bool,
);

/// The host's state, or `None` when there is no such host.
pub fn get(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<HostState>> {
    let revision = policy_revision::table
        .filter(policy_revision::id.eq(1))
        .select(policy_revision::revision)
        .single_value();
    let queued = diesel::dsl::exists(
        jobs::table
            .filter(jobs::host_id.eq(host_id))
            .filter(jobs::status.eq(JobStatus::Queued)),
    );
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
            queued,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(
            schedule_version,
            config,
            labels,
            repository,
            own_checks,
            policy_revision,
            has_queued,
        )| {
            HostState {
                schedule_version,
                config,
                labels: labels.0,
                repository,
                own_checks,
                policy_revision,
                has_queued,
            }
        },
    ))
}

/// What the host page shows of a host that hangs off it one to one.
#[derive(Debug, Clone)]
pub struct HostPageRow {
    pub host: HostWithVersion,
    pub repository: Option<Repository>,
    /// The host's own checks as stored (a JSON list); `None`: never set.
    pub own_checks: Option<String>,
    /// `policy_revision.revision`, as in [`HostState`].
    pub policy_revision: Option<i64>,
    /// `check_rotation.subsets`; `None`: no rotating check yet.
    pub check_subsets: Option<i64>,
    /// The latest Docker discovery report, if the agent sent one.
    pub discovery: Option<DiscoveryRow>,
}

type PageRow = (
    Host,
    HostConfigVersion,
    Option<HostScheduleVersion>,
    Option<Repository>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<DiscoveryRow>,
);

/// The host page's one-to-one reads in one statement (six before, one
/// round trip each on PostgreSQL), or `None` when there is no such host.
pub fn for_page(conn: &mut DbConnection, host_id: &str) -> QueryResult<Option<HostPageRow>> {
    let revision = policy_revision::table
        .filter(policy_revision::id.eq(1))
        .select(policy_revision::revision)
        .single_value();
    let row: Option<PageRow> = hosts::table
        .left_join(repositories::table)
        .left_join(host_schedule_version::table.on(host_schedule_version::host_id.eq(hosts::id)))
        .left_join(health_checks::table.on(health_checks::host_id.eq(hosts::id)))
        .left_join(check_rotation::table.on(check_rotation::host_id.eq(hosts::id)))
        .left_join(host_discovery::table.on(host_discovery::host_id.eq(hosts::id)))
        .filter(hosts::id.eq(host_id))
        .select((
            Host::as_select(),
            HostConfigVersion::as_select(),
            Option::<HostScheduleVersion>::as_select(),
            Option::<Repository>::as_select(),
            health_checks::checks.nullable(),
            revision,
            check_rotation::subsets.nullable(),
            Option::<DiscoveryRow>::as_select(),
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(
            host,
            config,
            schedule,
            repository,
            own_checks,
            policy_revision,
            check_subsets,
            discovery,
        )| {
            HostPageRow {
                host: HostWithVersion {
                    host,
                    schedule,
                    config,
                },
                repository,
                own_checks,
                policy_revision,
                check_subsets,
                discovery,
            }
        },
    ))
}

/// What a run-now reads of its host: the host, its repository, the
/// source group it names (if it names one and the host has it) and its
/// check rotation (for a check's subset).
#[derive(Debug, Clone)]
pub struct RunTarget {
    pub host: Host,
    pub repository: Option<Repository>,
    pub group: Option<SourceGroup>,
    pub rotation: Option<RotationRow>,
}

type RunRow = (
    Host,
    Option<Repository>,
    Option<SourceGroup>,
    Option<RotationRow>,
);

/// A run-now's reads in one statement (three before: the host, then its
/// repository or its group, then a check's rotation; each a round trip
/// on PostgreSQL), or `None` when there is no such host.
pub fn for_run(
    conn: &mut DbConnection,
    host_id: &str,
    group: Option<&str>,
) -> QueryResult<Option<RunTarget>> {
    // `name = NULL` matches nothing: without a group, no group row. (An
    // owned name: diesel asks a bind in the third join's `ON` to be
    // 'static.)
    let group = group.map(str::to_owned);
    let row: Option<RunRow> = hosts::table
        .left_join(repositories::table)
        .left_join(
            source_groups::table.on(source_groups::host_id
                .eq(hosts::id)
                .and(source_groups::name.nullable().eq(group))),
        )
        .left_join(check_rotation::table.on(check_rotation::host_id.eq(hosts::id)))
        .filter(hosts::id.eq(host_id))
        .select((
            Host::as_select(),
            Option::<Repository>::as_select(),
            Option::<SourceGroup>::as_select(),
            Option::<RotationRow>::as_select(),
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(host, repository, group, rotation)| RunTarget {
        host,
        repository,
        group,
        rotation,
    }))
}
