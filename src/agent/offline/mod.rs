//! When the server is away (issue 14 §6): what the agent keeps and does so
//! that backups go on and their logs are whole once the server is back.
//!
//! - [`spool`]: log lines that could not be sent, kept on disk (bounded)
//!   and sent after the next `hello`.
//! - [`sealed`]: the last `config.update`'s repository settings, sealed
//!   under a key of the agent's own, so an agent restarted while the
//!   server is down can still back up.
//! - this file: [`plan_offline_backup`], the jobs a backup schedule's fire
//!   becomes when the agent runs it itself: one `backup` per source group
//!   of the schedule (from the last `schedule.set`), each with a job id
//!   derived from (schedule, fire time, group) so that re-planning the
//!   same fire after a crash finds the jobs already journaled, and the
//!   `job.report` that tells the server about it.
//!
//! Which fires: a backup schedule's fire still unsent
//! `offline_grace_seconds` after it was due, while the agent has no
//! connection. A fire that went out to the server is the server's to run,
//! and a fire run here is never sent: never both.

pub mod sealed;
pub mod spool;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::protocol::{
    CommandRun, JobKind, JobReport, ScheduleFire, ScheduleSpec, SourceGroupSpec, ORIGIN_AGENT,
};

/// One job an offline fire makes: the command to run (journaled like a
/// server's) and the report that tells the server about it.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineJob {
    /// The backup, as the agent journals and runs it.
    pub command: CommandRun,
    /// Its `job.report`.
    pub report: JobReport,
}

/// The backups `fire` of `schedule` becomes when run by the agent itself,
/// created at `now`. Groups without paths (a database dump group, whose
/// password only the server holds) are left out and named in the second
/// value: the fire is then still sent to the server, which creates only
/// the jobs the agent did not report.
pub fn plan_offline_backup(
    schedule: &ScheduleSpec,
    fire: &ScheduleFire,
    now: DateTime<Utc>,
) -> (Vec<OfflineJob>, Vec<String>) {
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for group in &schedule.source_groups {
        if group.includes.is_empty() {
            skipped.push(group.name.clone());
            continue;
        }
        let job_id = offline_job_id(&schedule.id, fire.scheduled_at, &group.name);
        jobs.push(OfflineJob {
            command: backup_command(&job_id, group),
            report: JobReport {
                job_id,
                origin: ORIGIN_AGENT.to_owned(),
                kind: JobKind::Backup,
                schedule_id: schedule.id.clone(),
                scheduled_at: fire.scheduled_at,
                tag: group.name.clone(),
                includes: group.includes.clone(),
                excludes: group.excludes.clone(),
                started_at: now,
            },
        });
    }
    (jobs, skipped)
}

/// The agent's own job id for the backup of `group` at a fire: a UUID
/// (version 4 layout) from the hash of the three, the same every time.
pub fn offline_job_id(schedule_id: &str, scheduled_at: DateTime<Utc>, group: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"restic-manager offline backup\0");
    hash.update(schedule_id.as_bytes());
    hash.update(b"\0");
    hash.update(scheduled_at.to_rfc3339().as_bytes());
    hash.update(b"\0");
    hash.update(group.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn backup_command(job_id: &str, group: &SourceGroupSpec) -> CommandRun {
    CommandRun {
        job_id: job_id.to_owned(),
        kind: JobKind::Backup,
        args: Vec::new(),
        includes: group.includes.clone(),
        excludes: group.excludes.clone(),
        tag: Some(group.name.clone()),
        retention_policy: None,
        snapshot_id: None,
        restore: None,
        drill: None,
        dump: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ScheduleKind;
    use chrono::TimeZone;

    fn group(name: &str, includes: &[&str]) -> SourceGroupSpec {
        SourceGroupSpec {
            name: name.to_owned(),
            includes: includes.iter().map(|p| (*p).to_owned()).collect(),
            excludes: vec!["*.tmp".to_owned()],
            retention_policy: None,
            retry_max: 0,
            retry_backoff_seconds: 0,
        }
    }

    /// One backup per group with paths, ids stable per (schedule, time,
    /// group) and distinct between groups and fires; the report matches.
    #[test]
    fn a_fire_plans_one_backup_per_group_with_stable_ids() {
        let schedule = ScheduleSpec {
            id: "sch_1".to_owned(),
            cron_expr: "0 2 * * *".to_owned(),
            enabled: true,
            kind: ScheduleKind::Backup,
            source_groups: vec![
                group("etc", &["/etc"]),
                group("db", &[]),
                group("home", &["/home"]),
            ],
        };
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        let fire = ScheduleFire {
            schedule_id: "sch_1".to_owned(),
            scheduled_at: at,
            kind: Some(ScheduleKind::Backup),
        };
        let now = at + chrono::Duration::minutes(10);
        let (jobs, skipped) = plan_offline_backup(&schedule, &fire, now);
        assert_eq!(skipped, vec!["db".to_owned()]);
        assert_eq!(jobs.len(), 2);
        let etc = &jobs[0];
        assert_eq!(etc.command.tag.as_deref(), Some("etc"));
        assert_eq!(etc.command.includes, vec!["/etc".to_owned()]);
        assert_eq!(etc.command.kind, JobKind::Backup);
        assert_eq!(etc.report.job_id, etc.command.job_id);
        assert_eq!(etc.report.origin, "agent");
        assert_eq!(etc.report.scheduled_at, at);
        assert_eq!(etc.report.started_at, now);
        assert!(uuid::Uuid::parse_str(&etc.report.job_id).is_ok());

        let (again, _) = plan_offline_backup(&schedule, &fire, now + chrono::Duration::hours(1));
        assert_eq!(
            again[0].command.job_id, etc.command.job_id,
            "same fire, same id"
        );
        assert_ne!(jobs[1].command.job_id, etc.command.job_id);
        let later = ScheduleFire {
            scheduled_at: at + chrono::Duration::days(1),
            ..fire
        };
        let (next_day, _) = plan_offline_backup(&schedule, &later, now);
        assert_ne!(next_day[0].command.job_id, etc.command.job_id);
    }
}
