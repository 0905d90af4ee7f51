//! The payloads an agent sends, one struct per wire `type`, field names as
//! on the wire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{FinishStatus, JobKind, LockState, LogStreamKind, ScheduleKind};

/// `hello`: the agent's first frame on a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the agent speaks ([`PROTOCOL_VERSION`]).
    pub protocol_version: u32,
    /// The agent's own version.
    pub agent_version: String,
    /// `restic version` as found on the host.
    pub restic_version: String,
    /// The host's name.
    pub hostname: String,
    /// [`OS_LINUX`] or [`OS_WINDOWS`].
    pub os: String,
    /// [`ARCH_AMD64`] or [`ARCH_ARM64`].
    pub arch: String,
    /// When the host booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_time: Option<DateTime<Utc>>,
    /// Optional features the agent has (seed 002). Absent (`None`): an
    /// agent of protocol 1 as first written, held to
    /// [`PROTOCOL_1_CAPABILITIES`](super::PROTOCOL_1_CAPABILITIES); a
    /// list, even an empty one, is all it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// The config version of the repository settings the agent holds (in
    /// memory or restored from its sealed file); absent when it holds none.
    /// The server leaves `config.update` out of its greeting when this is
    /// the current version (seed 002).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_config_version: Option<u64>,
}

/// `heartbeat`: sent every 30 s; marks the host online.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The agent's clock when it sent the frame.
    pub sent_at: DateTime<Utc>,
    /// Jobs the agent is running. `None` (absent) means the agent does not
    /// report them, which is not the same as `Some(vec![])`, "none running":
    /// only the latter lets the server fail a job the agent lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_job_ids: Option<Vec<String>>,
    /// Host metrics (`load1`, `mem_used_bytes`, `disk_free_bytes`, ..); a key
    /// is present only when it was measured.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metrics: Map<String, Value>,
    /// The config version the agent holds (the last `config.update` it
    /// applied); absent from agents before config versions and from an
    /// agent that holds none. The server re-pushes when it is behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<u64>,
}

/// `command.result`: the agent accepted (persisted) or refused a
/// `command.run`. Not the job's completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The job of the `command.run`.
    pub job_id: String,
    /// Whether the agent took the job.
    pub accepted: bool,
    /// Why it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `job.started`: the agent began running a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    /// The job.
    pub job_id: String,
    /// What it runs.
    pub kind: JobKind,
    /// When restic was started.
    pub started_at: DateTime<Utc>,
}

/// `job.progress`: the latest restic status of a running job. Kinds other
/// than backup fill the subset that makes sense (missing counters are 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// The job.
    pub job_id: String,
    /// Fraction done, 0..1.
    #[serde(default)]
    pub percent_done: f64,
    /// Files processed so far.
    #[serde(default)]
    pub files_done: u64,
    /// Files found so far by the scanner.
    #[serde(default)]
    pub total_files: u64,
    /// Bytes processed so far.
    #[serde(default)]
    pub bytes_done: u64,
    /// Bytes found so far by the scanner.
    #[serde(default)]
    pub total_bytes: u64,
    /// Estimated seconds left; absent while restic cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// Current throughput in bytes per second.
    #[serde(default)]
    pub throughput_bps: u64,
    /// What a dump backup is doing: `dumping` (the dump tool runs, restic
    /// reads it) or `uploading` (the dump ended, restic finishes);
    /// absent for other jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Bytes the dump tool wrote so far (dump backups only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dumped_bytes: Option<u64>,
}

/// `log.stream`: one line of a job's live log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStream {
    /// The job.
    pub job_id: String,
    /// Per job, from 1, strictly increasing; `(job_id, seq)` de-duplicates.
    pub seq: u64,
    /// When the line was read.
    pub ts: DateTime<Utc>,
    /// Its channel.
    pub stream: LogStreamKind,
    /// The line, without its newline.
    pub payload: String,
}

/// `job.finished`: a job's terminal state. Kept in the agent's outbox until
/// the server's `ack`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFinished {
    /// The job.
    pub job_id: String,
    /// Its outcome.
    pub status: FinishStatus,
    /// Restic's exit code (PROTOCOL.md lists their meanings).
    pub exit_code: i32,
    /// When restic ended.
    pub finished_at: DateTime<Utc>,
    /// Restic's summary object, as restic printed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Map<String, Value>>,
    /// The error, or the warning of a `succeeded` exit 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One snapshot of `snapshots.report`, mirrored from `restic snapshots --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The long snapshot id.
    pub id: String,
    /// Its 8-hex-digit short form.
    pub short_id: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// The host restic recorded.
    pub hostname: String,
    /// The backed-up paths.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Its tags (the source group's name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Total size, from restic ≥ 0.17's summary; absent on older restic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Total files, from restic ≥ 0.17's summary; absent on older restic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_count: Option<u64>,
}

/// `snapshots.report`: the host's full snapshot list; replaces the server's
/// projection, so the list is required (an absent list is a bad frame, not
/// "no snapshots").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsReport {
    /// Every snapshot of the host's repository.
    pub snapshots: Vec<SnapshotInfo>,
}

/// `repo.stats`: periodic repository health facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoStats {
    /// Repository size on disk.
    pub size_bytes: u64,
    /// Number of snapshots.
    pub snapshot_count: u64,
    /// Logical size over stored size.
    pub dedup_ratio: f64,
    /// When `restic check` last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<DateTime<Utc>>,
    /// How that check ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_status: Option<String>,
    /// Whether a lock was held.
    pub lock_state: LockState,
}

/// `schedule.ack`: the agent applied a `schedule.set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleAck {
    /// The `schedule.set` version applied.
    pub version: u64,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
}

/// `schedule.fire`: one of the agent's cron entries fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleFire {
    /// The schedule ([`ScheduleSpec::id`]).
    pub schedule_id: String,
    /// The wall-clock time the entry fired.
    pub scheduled_at: DateTime<Utc>,
    /// The schedule's kind in the agent's table when it fired. Absent
    /// from agents before schedule kinds, which only knew backups; the
    /// server builds the job from the kind it has stored either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ScheduleKind>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::*;
    use chrono::TimeZone;
    use serde_json::json;

    // --- golden frames, agent → server --------------------------------------

    /// `hello` as in PROTOCOL.md's example.
    #[test]
    fn golden_hello() {
        golden_a2s(
            r#"{"type":"hello","id":"9f1c","data":{"protocol_version":1,"agent_version":"0.1.0","restic_version":"0.14.0","hostname":"web-01","os":"linux","arch":"amd64","boot_time":"2026-11-20T08:00:00Z"}}"#,
            "9f1c",
            AgentToServer::Hello(Hello {
                protocol_version: 1,
                agent_version: "0.1.0".to_owned(),
                restic_version: "0.14.0".to_owned(),
                hostname: "web-01".to_owned(),
                os: OS_LINUX.to_owned(),
                arch: ARCH_AMD64.to_owned(),
                boot_time: Some(ts("2026-11-20T08:00:00Z")),
                capabilities: None,
                last_known_config_version: None,
            }),
        );
    }

    /// `hello` with seed 002's optional fields and without `boot_time`.
    #[test]
    fn golden_hello_with_optional_fields() {
        golden_a2s(
            r#"{"type":"hello","id":"h2","data":{"protocol_version":1,"agent_version":"0.2.0","restic_version":"0.18.1","hostname":"win-7","os":"windows","arch":"arm64","capabilities":["vss"],"last_known_config_version":12}}"#,
            "h2",
            AgentToServer::Hello(Hello {
                protocol_version: 1,
                agent_version: "0.2.0".to_owned(),
                restic_version: "0.18.1".to_owned(),
                hostname: "win-7".to_owned(),
                os: OS_WINDOWS.to_owned(),
                arch: ARCH_ARM64.to_owned(),
                boot_time: None,
                capabilities: Some(vec!["vss".to_owned()]),
                last_known_config_version: Some(12),
            }),
        );
    }

    /// An empty `capabilities` list stays on the wire: it says "none",
    /// which is not the absent field of a protocol 1 agent.
    #[test]
    fn golden_hello_with_no_capabilities() {
        golden_a2s(
            r#"{"type":"hello","id":"h3","data":{"protocol_version":1,"agent_version":"0.3.0","restic_version":"0.18.1","hostname":"db-1","os":"linux","arch":"amd64","capabilities":[]}}"#,
            "h3",
            AgentToServer::Hello(Hello {
                protocol_version: 1,
                agent_version: "0.3.0".to_owned(),
                restic_version: "0.18.1".to_owned(),
                hostname: "db-1".to_owned(),
                os: OS_LINUX.to_owned(),
                arch: ARCH_AMD64.to_owned(),
                boot_time: None,
                capabilities: Some(vec![]),
                last_known_config_version: None,
            }),
        );
    }

    /// `heartbeat` with only `sent_at`: no active-job report, no metrics.
    #[test]
    fn golden_heartbeat_minimal() {
        golden_a2s(
            r#"{"type":"heartbeat","id":"hb1","data":{"sent_at":"2026-11-23T02:00:00Z"}}"#,
            "hb1",
            AgentToServer::Heartbeat(Heartbeat {
                sent_at: ts("2026-11-23T02:00:00Z"),
                active_job_ids: None,
                metrics: Map::new(),
                config_version: None,
            }),
        );
    }

    /// `heartbeat` with active jobs and measured metrics; an empty
    /// `active_job_ids` stays distinct from an absent one.
    #[test]
    fn golden_heartbeat_full() {
        let mut metrics = Map::new();
        metrics.insert("load1".to_owned(), json!(0.25));
        metrics.insert("disk_free_bytes".to_owned(), json!(1_000_000_u64));
        golden_a2s(
            r#"{"type":"heartbeat","id":"hb2","data":{"sent_at":"2026-11-23T02:00:30Z","active_job_ids":["j1","j2"],"metrics":{"load1":0.25,"disk_free_bytes":1000000},"config_version":5}}"#,
            "hb2",
            AgentToServer::Heartbeat(Heartbeat {
                sent_at: ts("2026-11-23T02:00:30Z"),
                active_job_ids: Some(vec!["j1".to_owned(), "j2".to_owned()]),
                metrics,
                config_version: Some(5),
            }),
        );
        golden_a2s(
            r#"{"type":"heartbeat","id":"hb3","data":{"sent_at":"2026-11-23T02:01:00Z","active_job_ids":[]}}"#,
            "hb3",
            AgentToServer::Heartbeat(Heartbeat {
                sent_at: ts("2026-11-23T02:01:00Z"),
                active_job_ids: Some(vec![]),
                metrics: Map::new(),
                config_version: None,
            }),
        );
    }

    /// `command.result` accepted (no `error`) and refused (with `error`).
    #[test]
    fn golden_command_result() {
        golden_a2s(
            r#"{"type":"command.result","id":"cr1","data":{"job_id":"0193","accepted":true}}"#,
            "cr1",
            AgentToServer::CommandResult(CommandResult {
                job_id: "0193".to_owned(),
                accepted: true,
                error: None,
            }),
        );
        golden_a2s(
            r#"{"type":"command.result","id":"cr2","data":{"job_id":"0194","accepted":false,"error":"repository not configured"}}"#,
            "cr2",
            AgentToServer::CommandResult(CommandResult {
                job_id: "0194".to_owned(),
                accepted: false,
                error: Some("repository not configured".to_owned()),
            }),
        );
    }

    /// `job.started`.
    #[test]
    fn golden_job_started() {
        golden_a2s(
            r#"{"type":"job.started","id":"js1","data":{"job_id":"0193","kind":"forget","started_at":"2026-11-23T02:00:01Z"}}"#,
            "js1",
            AgentToServer::JobStarted(JobStarted {
                job_id: "0193".to_owned(),
                kind: JobKind::Forget,
                started_at: ts("2026-11-23T02:00:01Z"),
            }),
        );
    }

    /// `job.progress` with every field.
    #[test]
    fn golden_job_progress() {
        golden_a2s(
            r#"{"type":"job.progress","id":"jp1","data":{"job_id":"0193","percent_done":0.5,"files_done":10,"total_files":20,"bytes_done":1024,"total_bytes":2048,"eta_seconds":7,"throughput_bps":4096}}"#,
            "jp1",
            AgentToServer::JobProgress(JobProgress {
                job_id: "0193".to_owned(),
                percent_done: 0.5,
                files_done: 10,
                total_files: 20,
                bytes_done: 1024,
                total_bytes: 2048,
                eta_seconds: Some(7),
                throughput_bps: 4096,
                step: None,
                dumped_bytes: None,
            }),
        );
    }

    /// `log.stream` for each stream kind.
    #[test]
    fn golden_log_stream() {
        for kind in LogStreamKind::ALL {
            let text = format!(
                r#"{{"type":"log.stream","id":"ls1","data":{{"job_id":"0193","seq":1,"ts":"2026-11-23T02:00:02.500Z","stream":"{}","payload":"scan finished"}}}}"#,
                kind.as_str()
            );
            golden_a2s(
                &text,
                "ls1",
                AgentToServer::LogStream(LogStream {
                    job_id: "0193".to_owned(),
                    seq: 1,
                    ts: Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 2).unwrap()
                        + chrono::Duration::milliseconds(500),
                    stream: *kind,
                    payload: "scan finished".to_owned(),
                }),
            );
        }
    }

    /// `job.finished` as in PROTOCOL.md's example, with the restic summary.
    #[test]
    fn golden_job_finished() {
        let mut stats = Map::new();
        stats.insert("files_new".to_owned(), json!(3));
        stats.insert("data_added".to_owned(), json!(3001768));
        stats.insert("snapshot_id".to_owned(), json!("f535d3c7"));
        golden_a2s(
            r#"{"type":"job.finished","id":"e0b7","data":{"job_id":"0193","status":"succeeded","exit_code":0,"finished_at":"2026-11-23T02:00:41Z","stats":{"files_new":3,"data_added":3001768,"snapshot_id":"f535d3c7"}}}"#,
            "e0b7",
            AgentToServer::JobFinished(JobFinished {
                job_id: "0193".to_owned(),
                status: FinishStatus::Succeeded,
                exit_code: 0,
                finished_at: ts("2026-11-23T02:00:41Z"),
                stats: Some(stats),
                error: None,
            }),
        );
    }

    /// `job.finished` failed, without `stats`, with `error`.
    #[test]
    fn golden_job_finished_failed() {
        golden_a2s(
            r#"{"type":"job.finished","id":"e0b8","data":{"job_id":"0195","status":"failed","exit_code":1,"finished_at":"2026-11-23T02:00:41Z","error":"Fatal: wrong password or no key found"}}"#,
            "e0b8",
            AgentToServer::JobFinished(JobFinished {
                job_id: "0195".to_owned(),
                status: FinishStatus::Failed,
                exit_code: 1,
                finished_at: ts("2026-11-23T02:00:41Z"),
                stats: None,
                error: Some("Fatal: wrong password or no key found".to_owned()),
            }),
        );
    }

    /// `snapshots.report` with one full snapshot and one from old restic
    /// (no tags, sizes).
    #[test]
    fn golden_snapshots_report() {
        golden_a2s(
            r#"{"type":"snapshots.report","id":"sr1","data":{"snapshots":[
                {"id":"f535d3c7aa","short_id":"f535d3c7","time":"2026-11-23T02:00:40Z","hostname":"web-01","paths":["/etc"],"tags":["etc"],"size_bytes":3001768,"file_count":3},
                {"id":"0a1b2c3d4e","short_id":"0a1b2c3d","time":"2026-11-22T02:00:40Z","hostname":"web-01","paths":["/srv"]}]}}"#,
            "sr1",
            AgentToServer::SnapshotsReport(SnapshotsReport {
                snapshots: vec![
                    SnapshotInfo {
                        id: "f535d3c7aa".to_owned(),
                        short_id: "f535d3c7".to_owned(),
                        time: ts("2026-11-23T02:00:40Z"),
                        hostname: "web-01".to_owned(),
                        paths: vec!["/etc".to_owned()],
                        tags: vec!["etc".to_owned()],
                        size_bytes: Some(3001768),
                        file_count: Some(3),
                    },
                    SnapshotInfo {
                        id: "0a1b2c3d4e".to_owned(),
                        short_id: "0a1b2c3d".to_owned(),
                        time: ts("2026-11-22T02:00:40Z"),
                        hostname: "web-01".to_owned(),
                        paths: vec!["/srv".to_owned()],
                        tags: vec![],
                        size_bytes: None,
                        file_count: None,
                    },
                ],
            }),
        );
    }

    /// `repo.stats` with and without the last check.
    #[test]
    fn golden_repo_stats() {
        golden_a2s(
            r#"{"type":"repo.stats","id":"rs1","data":{"size_bytes":123456,"snapshot_count":4,"dedup_ratio":2.5,"last_check_at":"2026-11-22T03:00:00Z","last_check_status":"ok","lock_state":"unlocked"}}"#,
            "rs1",
            AgentToServer::RepoStats(RepoStats {
                size_bytes: 123456,
                snapshot_count: 4,
                dedup_ratio: 2.5,
                last_check_at: Some(ts("2026-11-22T03:00:00Z")),
                last_check_status: Some("ok".to_owned()),
                lock_state: LockState::Unlocked,
            }),
        );
        golden_a2s(
            r#"{"type":"repo.stats","id":"rs2","data":{"size_bytes":0,"snapshot_count":0,"dedup_ratio":1.5,"lock_state":"locked"}}"#,
            "rs2",
            AgentToServer::RepoStats(RepoStats {
                size_bytes: 0,
                snapshot_count: 0,
                dedup_ratio: 1.5,
                last_check_at: None,
                last_check_status: None,
                lock_state: LockState::Locked,
            }),
        );
    }

    /// `schedule.ack`.
    #[test]
    fn golden_schedule_ack() {
        golden_a2s(
            r#"{"type":"schedule.ack","id":"sa1","data":{"version":4,"applied_at":"2026-11-23T01:00:00Z"}}"#,
            "sa1",
            AgentToServer::ScheduleAck(ScheduleAck {
                version: 4,
                applied_at: ts("2026-11-23T01:00:00Z"),
            }),
        );
    }

    /// The agent's `ack` of a `config.update`: applied, and refused with
    /// the reason.
    #[test]
    fn golden_agent_ack() {
        golden_a2s(
            r#"{"type":"ack","id":"ak1","data":{"correlation_id":"cu1","accepted":true}}"#,
            "ak1",
            AgentToServer::Ack(Ack {
                correlation_id: "cu1".to_owned(),
                accepted: true,
                reason: None,
            }),
        );
        golden_a2s(
            r#"{"type":"ack","id":"ak2","data":{"correlation_id":"cu2","accepted":false,"reason":"repository not allowed"}}"#,
            "ak2",
            AgentToServer::Ack(Ack {
                correlation_id: "cu2".to_owned(),
                accepted: false,
                reason: Some("repository not allowed".to_owned()),
            }),
        );
    }

    /// `schedule.fire`.
    #[test]
    fn golden_schedule_fire() {
        golden_a2s(
            r#"{"type":"schedule.fire","id":"sf1","data":{"schedule_id":"sch_1","scheduled_at":"2026-11-23T02:00:00Z","kind":"check"}}"#,
            "sf1",
            AgentToServer::ScheduleFire(ScheduleFire {
                schedule_id: "sch_1".to_owned(),
                scheduled_at: ts("2026-11-23T02:00:00Z"),
                kind: Some(ScheduleKind::Check),
            }),
        );
    }

    /// `schedule.fire` of an agent before schedule kinds: no `kind`.
    #[test]
    fn golden_schedule_fire_without_kind() {
        golden_a2s(
            r#"{"type":"schedule.fire","id":"sf0","data":{"schedule_id":"sch_1","scheduled_at":"2026-11-23T02:00:00Z"}}"#,
            "sf0",
            AgentToServer::ScheduleFire(ScheduleFire {
                schedule_id: "sch_1".to_owned(),
                scheduled_at: ts("2026-11-23T02:00:00Z"),
                kind: None,
            }),
        );
    }
}
