//! Rows and forms of what a host backs up and when: source groups,
//! schedules and their links, and the version of the schedule list the
//! agent has been sent and has acknowledged.

use diesel::prelude::*;

use crate::ids::{HostId, ScheduleId, SourceGroupId};
use crate::protocol::{DumpSpec, RetentionPolicy, RunOptions};
use crate::store::json::Json;
use crate::store::schema::{
    host_schedule_version, schedule_source_groups, schedules, source_groups,
};
use crate::store::ScheduleKind;

/// A named set of paths a host backs up, with its retention and retries.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = source_groups)]
pub struct SourceGroup {
    pub id: SourceGroupId,
    pub host_id: HostId,
    /// Unique per host; also the restic tag of its snapshots.
    pub name: String,
    /// Paths to back up.
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub includes: Vec<String>,
    /// Patterns to leave out.
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub excludes: Vec<String>,
    /// `None`: keep everything.
    #[diesel(deserialize_as = Json<Option<RetentionPolicy>>)]
    pub retention_policy: Option<RetentionPolicy>,
    pub retry_max: i32,
    pub retry_backoff_seconds: i32,
    pub created_at: i64,
    pub updated_at: i64,
    /// Its `forget` jobs also prune (`restic forget --prune`).
    pub prune_after_forget: bool,
    /// [`GROUP_KIND_FILES`] or [`GROUP_KIND_DUMP`].
    pub kind: String,
    /// A dump group's database, without its password.
    #[diesel(deserialize_as = Json<Option<DumpSpec>>)]
    pub dump: Option<DumpSpec>,
    /// The dump's password, sealed with the server key bound to the
    /// group's id (`crypto::seal`).
    pub dump_password_sealed: Option<Vec<u8>>,
    /// Restic options its jobs run with (a policy's group: the policy's
    /// with the group's own on top).
    #[diesel(deserialize_as = Json<Option<RunOptions>>)]
    pub options: Option<RunOptions>,
}

/// `source_groups.kind` of a group that backs up paths.
pub const GROUP_KIND_FILES: &str = "files";
/// `source_groups.kind` of a group that backs up a database dump.
pub const GROUP_KIND_DUMP: &str = "dump";

impl SourceGroup {
    /// The dump spec when this is a dump group.
    pub fn dump_spec(&self) -> Option<&DumpSpec> {
        self.dump.as_ref().filter(|_| self.kind == GROUP_KIND_DUMP)
    }
}

/// A source group to create.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = source_groups)]
pub struct NewSourceGroup {
    pub id: SourceGroupId,
    pub host_id: HostId,
    pub name: String,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub includes: Vec<String>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub excludes: Vec<String>,
    #[diesel(serialize_as = Json<Option<RetentionPolicy>>)]
    pub retention_policy: Option<RetentionPolicy>,
    pub retry_max: i32,
    pub retry_backoff_seconds: i32,
    pub created_at: i64,
    pub updated_at: i64,
    pub prune_after_forget: bool,
    pub kind: String,
    #[diesel(serialize_as = Json<Option<DumpSpec>>)]
    pub dump: Option<DumpSpec>,
    pub dump_password_sealed: Option<Vec<u8>>,
    #[diesel(serialize_as = Json<Option<RunOptions>>)]
    pub options: Option<RunOptions>,
}

/// A change to a source group.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = source_groups)]
pub struct SourceGroupChanges {
    pub name: Option<String>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub includes: Option<Vec<String>>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub excludes: Option<Vec<String>>,
    /// `Some(None)` removes the policy.
    #[diesel(serialize_as = Json<Option<RetentionPolicy>>)]
    pub retention_policy: Option<Option<RetentionPolicy>>,
    pub retry_max: Option<i32>,
    pub retry_backoff_seconds: Option<i32>,
    pub prune_after_forget: Option<bool>,
    pub kind: Option<String>,
    /// `Some(None)` makes it a files group.
    #[diesel(serialize_as = Json<Option<DumpSpec>>)]
    pub dump: Option<Option<DumpSpec>>,
    /// `Some(None)` removes the password.
    pub dump_password_sealed: Option<Option<Vec<u8>>>,
    /// `Some(None)` removes every option.
    #[diesel(serialize_as = Json<Option<RunOptions>>)]
    pub options: Option<Option<RunOptions>>,
}

/// A cron schedule of a host; a fire creates the jobs of its kind for the
/// source groups linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = schedules)]
pub struct Schedule {
    pub id: ScheduleId,
    pub host_id: HostId,
    pub cron_expr: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// What a fire creates (`backup` for rows from before kinds).
    pub kind: ScheduleKind,
}

/// A schedule to create (link its groups with `schedules::set_groups`).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = schedules)]
pub struct NewSchedule {
    pub id: ScheduleId,
    pub host_id: HostId,
    pub cron_expr: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub kind: ScheduleKind,
}

/// A change to a schedule.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = schedules)]
pub struct ScheduleChanges {
    pub cron_expr: Option<String>,
    pub enabled: Option<bool>,
    pub kind: Option<ScheduleKind>,
}

/// One link between a schedule and a source group.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = schedule_source_groups)]
pub struct ScheduleSourceGroup {
    pub schedule_id: ScheduleId,
    pub source_group_id: SourceGroupId,
}

/// A schedule with the source groups it runs (the `schedule.set` shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleWithGroups {
    pub schedule: Schedule,
    /// Ordered by name.
    pub groups: Vec<SourceGroup>,
}

/// The version of a host's canonical schedule list, and what the agent
/// has been sent and has acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = host_schedule_version, primary_key(host_id))]
pub struct HostScheduleVersion {
    pub host_id: HostId,
    /// The current version; every change bumps it (starts at 1).
    pub version: i64,
    /// The last version sent in `schedule.set` (0: never).
    pub pushed_version: i64,
    /// The last version the agent acked (0: never).
    pub acked_version: i64,
    pub pushed_at: Option<i64>,
    pub acked_at: Option<i64>,
}
