//! `job.report`: a job the agent ran on its own while the server was
//! unreachable (issue 14 §6), reported on reconnect so that the server
//! records it once, under the agent's own job id, before its log lines and
//! its `job.finished` follow.
//!
//! Only a `backup` of a schedule's source group is run that way: the
//! agent fires its local schedule, and when the fire is still unsent
//! `offline_grace_seconds` after it was due it runs the backup itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::JobKind;

/// [`JobReport::origin`] of a job the agent created itself.
pub const ORIGIN_AGENT: &str = "agent";

/// The `hello.capabilities` entry of an agent that runs backups while the
/// server is away and reports them with `job.report`.
pub const CAPABILITY_OFFLINE_BACKUP: &str = "offline_backup";

/// `job.report`: a job the agent created (not the server). Kept in the
/// agent's outbox until the server's `ack`; the server records it once per
/// `job_id` (a repeat is acked again and changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// The agent's own job id (a UUID v7).
    pub job_id: String,
    /// Who created the job: [`ORIGIN_AGENT`].
    pub origin: String,
    /// What it runs (`backup`).
    pub kind: JobKind,
    /// The schedule whose fire it ran.
    pub schedule_id: String,
    /// The fire's cron time (the de-duplication key with `schedule_id`
    /// and the group, as for a fire the server turned into jobs).
    pub scheduled_at: DateTime<Utc>,
    /// The source group's name (the snapshot tag).
    pub tag: String,
    /// The paths backed up (the group's, from the last `schedule.set`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub includes: Vec<String>,
    /// The group's exclude patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// When the agent started it.
    pub started_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::*;

    /// `job.report` of an offline backup, every field.
    #[test]
    fn golden_job_report() {
        golden_a2s(
            r#"{"type":"job.report","id":"jr1","data":{"job_id":"0193f0aa-7c41-7e12-9d55-1b2c3d4e5f60","origin":"agent","kind":"backup","schedule_id":"sch_1","scheduled_at":"2026-11-23T02:00:00Z","tag":"etc","includes":["/etc"],"excludes":["*.tmp"],"started_at":"2026-11-23T02:10:00Z"}}"#,
            "jr1",
            AgentToServer::JobReport(JobReport {
                job_id: "0193f0aa-7c41-7e12-9d55-1b2c3d4e5f60".to_owned(),
                origin: ORIGIN_AGENT.to_owned(),
                kind: JobKind::Backup,
                schedule_id: "sch_1".to_owned(),
                scheduled_at: ts("2026-11-23T02:00:00Z"),
                tag: "etc".to_owned(),
                includes: vec!["/etc".to_owned()],
                excludes: vec!["*.tmp".to_owned()],
                started_at: ts("2026-11-23T02:10:00Z"),
            }),
        );
    }

    /// Without the optional lists; a missing `origin` is a bad frame
    /// naming it.
    #[test]
    fn golden_job_report_minimal_and_missing_origin() {
        golden_a2s(
            r#"{"type":"job.report","id":"jr2","data":{"job_id":"j2","origin":"agent","kind":"backup","schedule_id":"s","scheduled_at":"2026-11-23T02:00:00Z","tag":"db","started_at":"2026-11-23T02:10:00Z"}}"#,
            "jr2",
            AgentToServer::JobReport(JobReport {
                job_id: "j2".to_owned(),
                origin: ORIGIN_AGENT.to_owned(),
                kind: JobKind::Backup,
                schedule_id: "s".to_owned(),
                scheduled_at: ts("2026-11-23T02:00:00Z"),
                tag: "db".to_owned(),
                includes: vec![],
                excludes: vec![],
                started_at: ts("2026-11-23T02:10:00Z"),
            }),
        );
        let (message_type, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"job.report","id":"x","data":{"job_id":"j","kind":"backup","schedule_id":"s","scheduled_at":"2026-11-23T02:00:00Z","tag":"db","started_at":"2026-11-23T02:10:00Z"}}"#,
        ));
        assert_eq!(message_type, "job.report");
        assert_eq!(detail, "missing field `origin`");
    }
}
