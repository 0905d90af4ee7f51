//! The payloads a server sends, one struct per wire `type`, field names as
//! on the wire. `Debug` of [`ConfigUpdate`] masks its secrets.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    nullable, DecodeError, DrillSpec, DumpSpec, JobKind, Masked, MaskedPatch, RestoreSpec,
    RetentionPolicy, ScheduleKind, ERROR_UNSUPPORTED_PROTOCOL, SUPPORTED_PROTOCOL_VERSIONS,
};

/// `config.update`: per-host repository settings. An absent field means
/// "leave as is"; an explicit `null` in `repo_username`, `repo_credential`
/// or `hook_shell` clears it (an agent before config versions reads `null`
/// as absent and keeps the value). `version` is the host's config version,
/// echoed by the agent's `ack`. `Debug` masks the secrets and any
/// credentials in the URL.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// `RESTIC_REPOSITORY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// `RESTIC_PASSWORD` (secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_password: Option<String>,
    /// REST user name or S3 access key id; `null` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub repo_username: Option<Option<String>>,
    /// REST password or S3 secret key (secret); `null` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub repo_credential: Option<Option<String>>,
    /// The shell hooks run under; `null` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub hook_shell: Option<Option<String>>,
    /// The host's config version: the agent acks it with `ack` and
    /// reports it in `hello.last_known_config_version` and
    /// `heartbeat.config_version`. Absent from a server before config
    /// versions (then no `ack`) and in `command.run.restore.repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl fmt::Debug for ConfigUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigUpdate")
            .field(
                "repo_url",
                &self.repo_url.as_deref().map(crate::redact::url),
            )
            .field("repo_password", &Masked(self.repo_password.as_deref()))
            .field("repo_username", &self.repo_username)
            .field(
                "repo_credential",
                &MaskedPatch(self.repo_credential.as_ref()),
            )
            .field("hook_shell", &self.hook_shell)
            .field("version", &self.version)
            .finish()
    }
}

/// One schedule of `schedule.set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The schedule's id, echoed in `schedule.fire`.
    pub id: String,
    /// Five-field cron expression.
    pub cron_expr: String,
    /// A disabled schedule never fires.
    pub enabled: bool,
    /// What a fire creates; absent (a server before schedule kinds) is
    /// `backup`.
    #[serde(default)]
    pub kind: ScheduleKind,
    /// The source groups it acts on (see [`ScheduleKind`] for each kind).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_groups: Vec<SourceGroupSpec>,
}

/// A source group as attached to a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroupSpec {
    /// Unique per host; the snapshot tag.
    pub name: String,
    /// Paths to back up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
    /// Restic exclude patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// What `forget` keeps for this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
    /// Retries of a failed backup.
    #[serde(default)]
    pub retry_max: u32,
    /// Seconds between retries.
    #[serde(default)]
    pub retry_backoff_seconds: u32,
}

/// `schedule.set`: the host's full canonical schedule list. The list is
/// required: an empty list disables everything, an absent one is a bad frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSet {
    /// The host's schedule version, echoed in `schedule.ack`.
    pub version: u64,
    /// Every schedule of the host.
    pub schedules: Vec<ScheduleSpec>,
}

/// `command.run`: run a job now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRun {
    /// The job; the agent de-duplicates by it.
    pub job_id: String,
    /// What to run.
    pub kind: JobKind,
    /// Extra restic arguments for kinds without structured fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Backup: paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
    /// Backup: exclude patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Backup: snapshot tag; forget: `--tag` filter (the source group name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Forget: what to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<RetentionPolicy>,
    /// Restore, catalog: the snapshot (restic's full id) the job reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Restore: what, where and how (with another host's repository
    /// settings when the snapshot is that host's). Boxed: most jobs have
    /// none, and it would double the size of every `command.run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Box<RestoreSpec>>,
    /// Drill: the sample of `snapshot_id` to restore and the catalog's
    /// size of each file. Boxed like `restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Box<DrillSpec>>,
    /// Backup of a dump group: the database to dump into
    /// `restic backup --stdin` (with its password; the agent journals it
    /// without). Boxed like `restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<Box<DumpSpec>>,
}

/// `command.cancel`: stop a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCancel {
    /// The job.
    pub job_id: String,
}

/// `agent.update_available`: informational; the agent never self-updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUpdateAvailable {
    /// The newest agent version.
    pub latest_version: String,
    /// Where the package comes from (apt repository, Chocolatey source).
    pub package_url: String,
    /// What changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<String>,
}

/// `ack`: the receiver applied (or refused) the frame with id
/// `correlation_id`. Both directions: the server acks `job.finished`,
/// `snapshots.report` and `job.report`; the agent acks a `config.update`
/// that carries a `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The acknowledged envelope's `id`.
    pub correlation_id: String,
    /// Whether it was applied.
    pub accepted: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `error`: the answer to a frame that could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// [`ERROR_UNKNOWN_TYPE`], [`ERROR_BAD_FRAME`] or
    /// [`ERROR_UNSUPPORTED_PROTOCOL`].
    pub code: String,
    /// Human-readable, names the field at fault.
    #[serde(default)]
    pub detail: String,
    /// The offending envelope's `id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// With `unsupported_protocol`: the versions the server accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<Vec<u32>>,
}

impl ErrorFrame {
    /// The answer to a frame that failed to decode; `correlation_id` is
    /// usually [`frame_id`] of the frame's text.
    pub fn from_decode_error(error: &DecodeError, correlation_id: Option<String>) -> Self {
        Self {
            code: error.code().to_owned(),
            detail: error.to_string(),
            correlation_id,
            supported: None,
        }
    }

    /// The answer to a `hello` with an unsupported `protocol_version`.
    pub fn unsupported_protocol(requested: u32, correlation_id: Option<String>) -> Self {
        Self {
            code: ERROR_UNSUPPORTED_PROTOCOL.to_owned(),
            detail: format!("protocol_version {requested} is not supported"),
            correlation_id,
            supported: Some(SUPPORTED_PROTOCOL_VERSIONS.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::*;

    // --- golden frames, server → agent --------------------------------------

    /// `config.update` with every field, and with none ("leave all as is").
    #[test]
    fn golden_config_update() {
        golden_s2a(
            r#"{"type":"config.update","id":"cu1","data":{"repo_url":"rest:https://backup.example:8000/web-01","repo_password":"pw","repo_username":"web-01","repo_credential":"cred","hook_shell":"/bin/sh","version":7}}"#,
            "cu1",
            ServerToAgent::ConfigUpdate(ConfigUpdate {
                repo_url: Some("rest:https://backup.example:8000/web-01".to_owned()),
                repo_password: Some("pw".to_owned()),
                repo_username: Some(Some("web-01".to_owned())),
                repo_credential: Some(Some("cred".to_owned())),
                hook_shell: Some(Some("/bin/sh".to_owned())),
                version: Some(7),
            }),
        );
        // An explicit null clears a field; an absent one leaves it.
        golden_s2a(
            r#"{"type":"config.update","id":"cu3","data":{"repo_url":"/srv/repo","repo_username":null,"repo_credential":null,"version":8}}"#,
            "cu3",
            ServerToAgent::ConfigUpdate(ConfigUpdate {
                repo_url: Some("/srv/repo".to_owned()),
                repo_username: Some(None),
                repo_credential: Some(None),
                version: Some(8),
                ..ConfigUpdate::default()
            }),
        );
        golden_s2a(
            r#"{"type":"config.update","id":"cu2","data":{}}"#,
            "cu2",
            ServerToAgent::ConfigUpdate(ConfigUpdate::default()),
        );
    }

    /// `schedule.set` as in PROTOCOL.md's example.
    #[test]
    fn golden_schedule_set() {
        golden_s2a(
            r#"{"type":"schedule.set","id":"7a2e","data":{"version":4,"schedules":[{"id":"sch_1","cron_expr":"0 2 * * *","enabled":true,"kind":"backup","source_groups":[{"name":"etc","includes":["/etc"],"excludes":["*.tmp"],"retention_policy":{"keep_daily":7,"keep_weekly":4},"retry_max":2,"retry_backoff_seconds":300}]}]}}"#,
            "7a2e",
            ServerToAgent::ScheduleSet(ScheduleSet {
                version: 4,
                schedules: vec![ScheduleSpec {
                    id: "sch_1".to_owned(),
                    cron_expr: "0 2 * * *".to_owned(),
                    enabled: true,
                    kind: ScheduleKind::Backup,
                    source_groups: vec![SourceGroupSpec {
                        name: "etc".to_owned(),
                        includes: vec!["/etc".to_owned()],
                        excludes: vec!["*.tmp".to_owned()],
                        retention_policy: Some(RetentionPolicy {
                            keep_daily: Some(7),
                            keep_weekly: Some(4),
                            ..RetentionPolicy::default()
                        }),
                        retry_max: 2,
                        retry_backoff_seconds: 300,
                    }],
                }],
            }),
        );
    }

    /// `schedule.set` of a check schedule (no groups), and a schedule from
    /// a server before kinds (no `kind`) decodes as a backup.
    #[test]
    fn golden_schedule_set_kinds() {
        golden_s2a(
            r#"{"type":"schedule.set","id":"7a30","data":{"version":6,"schedules":[{"id":"sch_2","cron_expr":"0 4 * * 0","enabled":true,"kind":"check"}]}}"#,
            "7a30",
            ServerToAgent::ScheduleSet(ScheduleSet {
                version: 6,
                schedules: vec![ScheduleSpec {
                    id: "sch_2".to_owned(),
                    cron_expr: "0 4 * * 0".to_owned(),
                    enabled: true,
                    kind: ScheduleKind::Check,
                    source_groups: vec![],
                }],
            }),
        );
        let old: ScheduleSpec =
            serde_json::from_str(r#"{"id":"s","cron_expr":"@daily","enabled":true}"#).unwrap();
        assert_eq!(old.kind, ScheduleKind::Backup);
        let bad = serde_json::from_str::<ScheduleSpec>(
            r#"{"id":"s","cron_expr":"@daily","enabled":true,"kind":"restore"}"#,
        );
        assert!(bad.is_err());
    }

    /// `schedule.set` with an empty list (disables everything).
    #[test]
    fn golden_schedule_set_empty() {
        golden_s2a(
            r#"{"type":"schedule.set","id":"7a2f","data":{"version":5,"schedules":[]}}"#,
            "7a2f",
            ServerToAgent::ScheduleSet(ScheduleSet {
                version: 5,
                schedules: vec![],
            }),
        );
    }

    /// `command.run` as in PROTOCOL.md's example (backup).
    #[test]
    fn golden_command_run_backup() {
        golden_s2a(
            r#"{"type":"command.run","id":"c41d","data":{"job_id":"0193","kind":"backup","includes":["/etc"],"excludes":["*.tmp"],"tag":"etc"}}"#,
            "c41d",
            ServerToAgent::CommandRun(CommandRun {
                job_id: "0193".to_owned(),
                kind: JobKind::Backup,
                args: vec![],
                includes: vec!["/etc".to_owned()],
                excludes: vec!["*.tmp".to_owned()],
                tag: Some("etc".to_owned()),
                retention_policy: None,
                snapshot_id: None,
                restore: None,
                drill: None,
                dump: None,
            }),
        );
    }

    /// `command.run` for forget with a full retention policy, and for check
    /// with free-form args.
    #[test]
    fn golden_command_run_forget_and_args() {
        golden_s2a(
            r#"{"type":"command.run","id":"c41e","data":{"job_id":"0196","kind":"forget","tag":"etc","retention_policy":{"keep_last":3,"keep_hourly":24,"keep_daily":7,"keep_weekly":4,"keep_monthly":12,"keep_yearly":2,"keep_within":"30d"}}}"#,
            "c41e",
            ServerToAgent::CommandRun(CommandRun {
                job_id: "0196".to_owned(),
                kind: JobKind::Forget,
                args: vec![],
                includes: vec![],
                excludes: vec![],
                tag: Some("etc".to_owned()),
                retention_policy: Some(RetentionPolicy {
                    keep_last: Some(3),
                    keep_hourly: Some(24),
                    keep_daily: Some(7),
                    keep_weekly: Some(4),
                    keep_monthly: Some(12),
                    keep_yearly: Some(2),
                    keep_within: Some("30d".to_owned()),
                }),
                snapshot_id: None,
                restore: None,
                drill: None,
                dump: None,
            }),
        );
        golden_s2a(
            r#"{"type":"command.run","id":"c41f","data":{"job_id":"0197","kind":"check","args":["--read-data-subset=1/10"]}}"#,
            "c41f",
            ServerToAgent::CommandRun(CommandRun {
                job_id: "0197".to_owned(),
                kind: JobKind::Check,
                args: vec!["--read-data-subset=1/10".to_owned()],
                includes: vec![],
                excludes: vec![],
                tag: None,
                retention_policy: None,
                snapshot_id: None,
                restore: None,
                drill: None,
                dump: None,
            }),
        );
    }

    /// `command.cancel`.
    #[test]
    fn golden_command_cancel() {
        golden_s2a(
            r#"{"type":"command.cancel","id":"cc1","data":{"job_id":"0193"}}"#,
            "cc1",
            ServerToAgent::CommandCancel(CommandCancel {
                job_id: "0193".to_owned(),
            }),
        );
    }

    /// `agent.update_available` with and without a changelog.
    #[test]
    fn golden_agent_update_available() {
        golden_s2a(
            r#"{"type":"agent.update_available","id":"ua1","data":{"latest_version":"0.2.0","package_url":"https://apt.example/","changelog":"faster"}}"#,
            "ua1",
            ServerToAgent::AgentUpdateAvailable(AgentUpdateAvailable {
                latest_version: "0.2.0".to_owned(),
                package_url: "https://apt.example/".to_owned(),
                changelog: Some("faster".to_owned()),
            }),
        );
        golden_s2a(
            r#"{"type":"agent.update_available","id":"ua2","data":{"latest_version":"0.2.0","package_url":"https://apt.example/"}}"#,
            "ua2",
            ServerToAgent::AgentUpdateAvailable(AgentUpdateAvailable {
                latest_version: "0.2.0".to_owned(),
                package_url: "https://apt.example/".to_owned(),
                changelog: None,
            }),
        );
    }

    /// `ack` as in PROTOCOL.md's example, and a refusal with `reason`.
    #[test]
    fn golden_ack() {
        golden_s2a(
            r#"{"type":"ack","id":"5d0a","data":{"correlation_id":"e0b7","accepted":true}}"#,
            "5d0a",
            ServerToAgent::Ack(Ack {
                correlation_id: "e0b7".to_owned(),
                accepted: true,
                reason: None,
            }),
        );
        golden_s2a(
            r#"{"type":"ack","id":"5d0b","data":{"correlation_id":"e0b8","accepted":false,"reason":"unknown job"}}"#,
            "5d0b",
            ServerToAgent::Ack(Ack {
                correlation_id: "e0b8".to_owned(),
                accepted: false,
                reason: Some("unknown job".to_owned()),
            }),
        );
    }

    /// `error` for a bad frame, and `unsupported_protocol` with `supported`.
    #[test]
    fn golden_error() {
        golden_s2a(
            r#"{"type":"error","id":"er1","data":{"code":"bad_frame","detail":"bad data for job.progress: missing field `job_id`","correlation_id":"jp9"}}"#,
            "er1",
            ServerToAgent::Error(ErrorFrame {
                code: ERROR_BAD_FRAME.to_owned(),
                detail: "bad data for job.progress: missing field `job_id`".to_owned(),
                correlation_id: Some("jp9".to_owned()),
                supported: None,
            }),
        );
        golden_s2a(
            r#"{"type":"error","id":"er2","data":{"code":"unsupported_protocol","detail":"protocol_version 7 is not supported","supported":[1]}}"#,
            "er2",
            ServerToAgent::Error(ErrorFrame::unsupported_protocol(7, None)),
        );
    }
}
