//! The writer's side of `job.report` (issue 14 §6): a backup the agent ran
//! on its own while the server was unreachable becomes a job row under the
//! agent's job id, `trigger: "agent"`, already `running`, so that the log
//! lines and the `job.finished` that follow it land as for any job (and the
//! retention `forget` follows its success through the usual path).
//!
//! Idempotent on the job id: the agent re-sends the report until it is
//! acked, and a repeat records nothing. The row carries the schedule and
//! the fire's time, so the fire counts as seen (no missed run; one the
//! server recorded while it could not know is removed) and a late
//! `schedule.fire` of the same run creates no second job for the group.

use actix::prelude::*;
use diesel::QueryResult;

use super::{PersistResult, Persistence};
use crate::ids::{HostId, JobId, ScheduleId};
use crate::protocol;
use crate::store::models::{Job, NewJob};
use crate::store::{
    self, jobs, missed_runs, schedules, source_groups, DbConnection, JobKind, JobTrigger,
};

/// Longest agent job id accepted (the agent sends a UUID).
pub const MAX_AGENT_JOB_ID_LEN: usize = 64;

/// `job.report`: records a job the agent created.
#[derive(Message)]
#[rtype(result = "PersistResult<AgentJobOutcome>")]
pub struct RecordAgentJob {
    pub host_id: HostId,
    pub payload: protocol::JobReport,
    /// When the report arrived: the row's `created_at`.
    pub now: i64,
}

/// What a `job.report` did.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentJobOutcome {
    /// The job is recorded now.
    Recorded(Box<Job>),
    /// It was recorded before (a re-sent report): nothing changed.
    AlreadyRecorded,
    /// Not recorded, with the reason (sent back in the `ack`).
    Refused(String),
}

impl Handler<RecordAgentJob> for Persistence {
    type Result = PersistResult<AgentJobOutcome>;

    fn handle(&mut self, msg: RecordAgentJob, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(reason) = check_report(&msg.payload) {
            tracing::warn!(host_id = %msg.host_id, job_id = %msg.payload.job_id, "job.report refused: {reason}");
            return Ok(AgentJobOutcome::Refused(reason));
        }
        self.write(
            "recording a job the agent ran offline",
            &msg.host_id,
            Some(&JobId::from(msg.payload.job_id.as_str())),
            |c| {
                store::write_transaction(c, |c| {
                    record_agent_job(c, &msg.host_id, &msg.payload, msg.now)
                })
            },
        )
    }
}

/// What the server accepts in a `job.report`: its own origin, a backup,
/// a bounded job id.
pub fn check_report(report: &protocol::JobReport) -> Result<(), String> {
    if report.origin != protocol::ORIGIN_AGENT {
        return Err(format!(
            "origin: expected {:?}, got {:?}",
            protocol::ORIGIN_AGENT,
            report.origin.chars().take(32).collect::<String>()
        ));
    }
    if report.kind != JobKind::Backup {
        return Err(format!(
            "kind: only backup jobs run offline, got {}",
            report.kind
        ));
    }
    if report.job_id.is_empty() || report.job_id.len() > MAX_AGENT_JOB_ID_LEN {
        return Err(format!(
            "job_id: 1 to {MAX_AGENT_JOB_ID_LEN} characters expected"
        ));
    }
    if report.tag.trim().is_empty() {
        return Err("tag: empty".to_owned());
    }
    Ok(())
}

/// Inserts the job of `report` for `host_id` as `running`, unless its id
/// exists (then: the same host's → already recorded; another host's →
/// refused). The source group and schedule are linked when the host
/// still has them (by the group's name and the schedule's id).
pub fn record_agent_job(
    conn: &mut DbConnection,
    host_id: &HostId,
    report: &protocol::JobReport,
    now: i64,
) -> QueryResult<AgentJobOutcome> {
    if let Some(existing) = jobs::get(conn, &report.job_id)? {
        return Ok(if existing.host_id == *host_id {
            AgentJobOutcome::AlreadyRecorded
        } else {
            AgentJobOutcome::Refused(format!("job id {} belongs to another host", report.job_id))
        });
    }
    let group = source_groups::by_name(conn, host_id, &report.tag)?;
    let schedule = schedules::get_for_host(
        conn,
        host_id,
        &ScheduleId::from(report.schedule_id.as_str()),
    )?;
    let mut new = NewJob::new(
        report.job_id.clone(),
        host_id.clone(),
        JobKind::Backup,
        JobTrigger::Agent,
        now,
    );
    new.tag = Some(report.tag.clone());
    new.includes = report.includes.clone();
    new.excludes = report.excludes.clone();
    if let Some(group) = &group {
        new.source_group_id = Some(group.id.clone());
        new.retention_policy = group.retention_policy.clone();
    }
    if let Some(schedule) = &schedule {
        let scheduled_at = report.scheduled_at.timestamp_millis();
        new.schedule_id = Some(schedule.id.clone());
        new.scheduled_at = Some(scheduled_at);
        // Recorded as missed while the server was down before the agent
        // could report it: it ran.
        missed_runs::delete_for_fire(conn, &schedule.id, scheduled_at)?;
    }
    let job = jobs::insert(conn, &new)?;
    jobs::mark_started(conn, &job.id, report.started_at.timestamp_millis())?;
    let job = jobs::get(conn, &job.id)?.unwrap_or(job);
    Ok(AgentJobOutcome::Recorded(Box::new(job)))
}
