//! Rows and forms of a job's life: the job from creation to its terminal
//! status, how it finished, and its stored log lines.

use diesel::prelude::*;
use serde_json::Value;

use crate::ids::{HostId, JobId, ScheduleId, SourceGroupId};
use crate::protocol::{JobProgress, RetentionPolicy};
use crate::store::job_params::JobParams;
use crate::store::json::Json;
use crate::store::schema::{job_logs, jobs};
use crate::store::types::{JobKind, JobStatus, JobTrigger, LogStream};

/// A job: one restic run on one host, from creation to its terminal status.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: JobId,
    pub host_id: HostId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub trigger: JobTrigger,
    pub source_group_id: Option<SourceGroupId>,
    /// The restic tag (the source group's name for backups and forgets).
    pub tag: Option<String>,
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub includes: Vec<String>,
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub excludes: Vec<String>,
    /// The retention policy (forget jobs).
    #[diesel(deserialize_as = Json<Option<RetentionPolicy>>)]
    pub retention_policy: Option<RetentionPolicy>,
    /// Extra restic arguments.
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub args: Vec<String>,
    pub schedule_id: Option<ScheduleId>,
    /// The cron time a scheduled job was fired for.
    pub scheduled_at: Option<i64>,
    /// 1 for a first attempt, n for the (n−1)th retry.
    pub attempt: i32,
    /// For retries: the job that failed first.
    pub first_attempt_id: Option<JobId>,
    /// For a pending retry: when it becomes due.
    pub retry_at: Option<i64>,
    pub created_at: i64,
    pub dispatched_at: Option<i64>,
    pub accepted_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub warning: Option<String>,
    /// restic's summary, as the agent reported it.
    #[diesel(deserialize_as = Json<Option<Value>>)]
    pub stats: Option<Value>,
    /// The latest `job.progress`.
    #[diesel(deserialize_as = Json<Option<JobProgress>>)]
    pub progress: Option<JobProgress>,
    /// The highest log seq stored for this job (0: none).
    pub last_log_seq: i64,
    /// Restore and catalog: the snapshot the job reads.
    pub snapshot_id: Option<String>,
    /// The kind's own parameters, stored as JSON (see [`JobParams`]): a
    /// restore's spec or a drill's sample; `None` for kinds without any.
    #[diesel(deserialize_as = Json<Option<JobParams>>)]
    pub params: Option<JobParams>,
}

/// A job to create; it starts `queued`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    pub id: JobId,
    pub host_id: HostId,
    pub kind: JobKind,
    pub trigger: JobTrigger,
    pub source_group_id: Option<SourceGroupId>,
    pub tag: Option<String>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub includes: Vec<String>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub excludes: Vec<String>,
    #[diesel(serialize_as = Json<Option<RetentionPolicy>>)]
    pub retention_policy: Option<RetentionPolicy>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub args: Vec<String>,
    pub schedule_id: Option<ScheduleId>,
    pub scheduled_at: Option<i64>,
    pub attempt: i32,
    pub first_attempt_id: Option<JobId>,
    pub retry_at: Option<i64>,
    pub created_at: i64,
    /// Restore and catalog: the snapshot the job reads.
    pub snapshot_id: Option<String>,
    /// The kind's own parameters (see [`Job::params`]).
    #[diesel(serialize_as = Json<Option<JobParams>>)]
    pub params: Option<JobParams>,
}

impl NewJob {
    /// A first-attempt job with empty lists, to be completed with struct
    /// update syntax: `NewJob { tag: Some(..), ..NewJob::new(id, host, kind, trigger, now) }`.
    pub fn new(
        id: impl Into<JobId>,
        host_id: impl Into<HostId>,
        kind: JobKind,
        trigger: JobTrigger,
        created_at: i64,
    ) -> NewJob {
        NewJob {
            id: id.into(),
            host_id: host_id.into(),
            kind,
            trigger,
            source_group_id: None,
            tag: None,
            includes: Vec::new(),
            excludes: Vec::new(),
            retention_policy: None,
            args: Vec::new(),
            schedule_id: None,
            scheduled_at: None,
            attempt: 1,
            first_attempt_id: None,
            retry_at: None,
            created_at,
            snapshot_id: None,
            params: None,
        }
    }
}

/// How a job ended (`job.finished`, a refused `command.result`, a cancel, a
/// lost job). `status` must be terminal.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = jobs)]
pub struct JobFinish {
    pub status: JobStatus,
    pub finished_at: i64,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub warning: Option<String>,
    /// restic's summary.
    #[diesel(treat_none_as_null = true, serialize_as = Json<Option<Value>>)]
    pub stats: Option<Value>,
}

/// One stored log line of a job.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = job_logs)]
pub struct JobLog {
    pub job_id: JobId,
    pub seq: i64,
    pub ts: i64,
    pub stream: LogStream,
    pub payload: String,
}

/// A log line to store (`log.stream`).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = job_logs)]
pub struct NewJobLog {
    pub job_id: JobId,
    pub seq: i64,
    pub ts: i64,
    pub stream: LogStream,
    pub payload: String,
}
