//! Row structs (what a query returns) and, apart from them, the forms that
//! insert or change rows (`New*` are `Insertable`, `*Changes` / `*Patch`
//! are `AsChangeset`: a `None` field is left as it is, `Some(None)` sets
//! NULL).
//!
//! Rows that carry a secret or a credential's hash (users, sessions, API,
//! agent and enrolment tokens, repositories) print it as `***` in `Debug`
//! so that logging a row never leaks it. None of these types is
//! `Serialize`: the HTTP layer builds its own answers and chooses what to
//! show.

use std::collections::BTreeMap;
use std::fmt;

use diesel::prelude::*;
use serde_json::Value;

use super::job_params::JobParams;
use super::json::Json;
use super::schema::{
    api_tokens, audit_log, enrollment_tokens, host_schedule_version, hosts, job_logs, jobs,
    missed_runs, repo_stats, repositories, schedule_source_groups, schedules, sessions, snapshots,
    source_groups, users,
};
use super::types::{JobKind, JobStatus, JobTrigger, LogStream, Role};
use crate::ids::{HostId, JobId, ScheduleId, SourceGroupId};
use crate::protocol::{JobProgress, RetentionPolicy};

/// How a redacted field prints in `Debug`.
const REDACTED: &str = "***";

/// A user account.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    /// The argon2id PHC string (never logged).
    pub password_hash: String,
    pub role: Role,
    /// A disabled user can neither log in nor use sessions or API tokens.
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &REDACTED)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// A user to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A browser login session; the cookie holds the token, the row its hash.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    /// The session's CSRF token, compared with the one each form sends.
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub source_addr: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("token_hash", &REDACTED)
            .field("user_id", &self.user_id)
            .field("csrf_token", &REDACTED)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("source_addr", &self.source_addr)
            .finish()
    }
}

/// A session to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub source_addr: Option<String>,
}

/// An API token for automation (`Authorization: Bearer …`).
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The most the token may do (it never exceeds its user's current
    /// role); `None`: the user's role.
    pub role: Option<Role>,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("token_hash", &REDACTED)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("role", &self.role)
            .finish()
    }
}

/// An API token to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A one-time enrolment token.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = enrollment_tokens)]
pub struct EnrollmentToken {
    pub id: String,
    pub token_hash: String,
    /// The user who created it; `None` for the CLI or a deleted user.
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by_host_id: Option<String>,
    pub revoked_at: Option<i64>,
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("id", &self.id)
            .field("token_hash", &REDACTED)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .field("used_by_host_id", &self.used_by_host_id)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// An enrolment token to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = enrollment_tokens)]
pub struct NewEnrollmentToken {
    pub id: String,
    pub token_hash: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A restic repository; a host points to one through `repository_id`.
/// The secrets are sealed by `crypto.rs` with this row's id as associated
/// data; the store keeps the sealed bytes exactly as given.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = repositories)]
pub struct Repository {
    pub id: String,
    pub url: String,
    pub username: Option<String>,
    pub password_sealed: Option<Vec<u8>>,
    pub credential_sealed: Option<Vec<u8>>,
    pub hook_shell: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Repository {
    /// Whether a password is stored (the API's `password_set`).
    pub fn password_set(&self) -> bool {
        self.password_sealed.is_some()
    }

    /// Whether a credential is stored (the API's `credential_set`).
    pub fn credential_set(&self) -> bool {
        self.credential_sealed.is_some()
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password_set", &self.password_set())
            .field("credential_set", &self.credential_set())
            .field("hook_shell", &self.hook_shell)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// What `repositories::upsert_for_host` writes. `id` is the id the caller
/// sealed the secrets with: the host's current repository id if it has one
/// (from `repositories::get_for_host`), else a fresh [`super::new_id`].
/// `None` leaves a field as it is (on creation: NULL); `Some(None)` clears it.
#[derive(Clone, Default)]
pub struct RepositoryUpsert {
    pub id: String,
    pub url: String,
    pub username: Option<Option<String>>,
    pub password_sealed: Option<Option<Vec<u8>>>,
    pub credential_sealed: Option<Option<Vec<u8>>>,
    pub hook_shell: Option<Option<String>>,
}

/// A host: an enrolled agent and what it last told about itself.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = hosts)]
pub struct Host {
    pub id: HostId,
    pub hostname: String,
    pub display_name: Option<String>,
    /// The operator's labels (a JSON object in the column).
    #[diesel(deserialize_as = Json<BTreeMap<String, String>>)]
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub restic_version: Option<String>,
    pub boot_time: Option<i64>,
    /// The agent's capabilities (a JSON list in the column).
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub capabilities: Vec<String>,
    /// SHA-256 (hex) of the agent token.
    pub agent_token_hash: String,
    pub repository_id: Option<String>,
    pub online: bool,
    pub last_seen_at: Option<i64>,
    pub enrolled_at: i64,
    pub updated_at: i64,
    /// Set when the host is revoked: its token no longer authenticates.
    pub revoked_at: Option<i64>,
}

impl Host {
    /// Whether the agent announced `capability` in its last `hello`
    /// (`protocol::CAPABILITY_*`).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("id", &self.id)
            .field("hostname", &self.hostname)
            .field("display_name", &self.display_name)
            .field("labels", &self.labels)
            .field("os", &self.os)
            .field("arch", &self.arch)
            .field("agent_version", &self.agent_version)
            .field("restic_version", &self.restic_version)
            .field("boot_time", &self.boot_time)
            .field("capabilities", &self.capabilities)
            .field("agent_token_hash", &REDACTED)
            .field("repository_id", &self.repository_id)
            .field("online", &self.online)
            .field("last_seen_at", &self.last_seen_at)
            .field("enrolled_at", &self.enrolled_at)
            .field("updated_at", &self.updated_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// A host to create at enrolment (offline, no repository yet).
#[derive(Clone, Insertable)]
#[diesel(table_name = hosts)]
pub struct NewHost {
    pub id: HostId,
    pub hostname: String,
    pub display_name: Option<String>,
    #[diesel(serialize_as = Json<BTreeMap<String, String>>)]
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub restic_version: Option<String>,
    pub boot_time: Option<i64>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub capabilities: Vec<String>,
    pub agent_token_hash: String,
    pub enrolled_at: i64,
    pub updated_at: i64,
}

impl NewHost {
    /// A Linux amd64 host that has reported nothing yet, enrolled `now`;
    /// complete it with struct update syntax:
    /// `NewHost { arch: .., ..NewHost::new(id, hostname, token_hash, now) }`.
    pub fn new(
        id: impl Into<HostId>,
        hostname: impl Into<String>,
        agent_token_hash: impl Into<String>,
        now: i64,
    ) -> NewHost {
        NewHost {
            id: id.into(),
            hostname: hostname.into(),
            display_name: None,
            labels: BTreeMap::new(),
            os: crate::protocol::OS_LINUX.to_owned(),
            arch: crate::protocol::ARCH_AMD64.to_owned(),
            agent_version: None,
            restic_version: None,
            boot_time: None,
            capabilities: Vec::new(),
            agent_token_hash: agent_token_hash.into(),
            enrolled_at: now,
            updated_at: now,
        }
    }
}

/// What a `hello` updates on the host row (`None`: keep the stored value).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = hosts)]
pub struct HostHello {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: Option<String>,
    pub restic_version: Option<String>,
    pub boot_time: Option<i64>,
    #[diesel(serialize_as = Json<Vec<String>>)]
    pub capabilities: Option<Vec<String>>,
}

/// An operator's change to a host (`PATCH /hosts/{id}`).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = hosts)]
pub struct HostPatch {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
    #[diesel(serialize_as = Json<BTreeMap<String, String>>)]
    pub labels: Option<BTreeMap<String, String>>,
}

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
}

/// A cron schedule of a host; it runs the source groups linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = schedules)]
pub struct Schedule {
    pub id: ScheduleId,
    pub host_id: HostId,
    pub cron_expr: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
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
}

/// A change to a schedule.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = schedules)]
pub struct ScheduleChanges {
    pub cron_expr: Option<String>,
    pub enabled: Option<bool>,
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

/// One snapshot of the host's last `snapshots.report`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = snapshots)]
pub struct Snapshot {
    pub host_id: String,
    pub snapshot_id: String,
    pub short_id: String,
    pub time: i64,
    pub hostname: String,
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub paths: Vec<String>,
    #[diesel(deserialize_as = Json<Vec<String>>)]
    pub tags: Vec<String>,
    pub size_bytes: Option<i64>,
    pub file_count: Option<i64>,
    /// When the report that listed it arrived.
    pub reported_at: i64,
}

/// One snapshot of a report (host and report time are given alongside).
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub snapshot_id: String,
    pub short_id: String,
    pub time: i64,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub size_bytes: Option<i64>,
    pub file_count: Option<i64>,
}

/// One `repo.stats` sample.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = repo_stats)]
pub struct RepoStats {
    pub id: String,
    pub host_id: String,
    pub recorded_at: i64,
    pub size_bytes: Option<i64>,
    pub snapshot_count: Option<i64>,
    pub dedup_ratio: Option<f64>,
    pub last_check_at: Option<i64>,
    pub last_check_status: Option<String>,
    /// `locked` or `unlocked`.
    pub lock_state: Option<String>,
}

/// A `repo.stats` sample to store (same shape as the row).
pub type NewRepoStats = RepoStats;

/// A schedule time that passed without a fire.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = missed_runs)]
pub struct MissedRun {
    pub id: String,
    pub host_id: String,
    pub schedule_id: String,
    pub scheduled_at: i64,
    pub detected_at: i64,
}

/// A missed run to record (same shape as the row).
pub type NewMissedRun = MissedRun;

/// One audit record: who did what, when, from where.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    /// Username, `agent:<host id>`, or `system`.
    pub actor: String,
    /// Dotted verb, e.g. `host.revoke`, `login.failed`.
    pub action: String,
    pub target: Option<String>,
    /// Details (a JSON object; never a secret).
    #[diesel(
        deserialize_as = Json<Option<Value>>,
        serialize_as = Json<Option<Value>>
    )]
    pub detail: Option<Value>,
    pub source_addr: Option<String>,
}

/// An audit record to write (same shape as the row).
pub type NewAuditEntry = AuditEntry;
