//! What one fire of a schedule creates, by the schedule's kind (issue 12
//! §2), built and inserted inside one writer transaction ([`fire_jobs`]):
//!
//! | kind     | jobs created                                                    |
//! |----------|-----------------------------------------------------------------|
//! | `backup` | one backup per source group of the schedule                     |
//! | `forget` | one `forget` per group with a retention policy: the schedule's  |
//! |          | groups, or every group of the host when it names none           |
//! | `prune`  | one `prune` of the host's repository (groups: none)             |
//! | `check`  | one `check` reading the next `--read-data-subset` in rotation   |
//! | `drill`  | one restore drill of the group drilled least recently among the |
//! |          | schedule's groups (every group when it names none)              |
//!
//! A fire is de-duplicated per (schedule, scheduled_at): per group for
//! backup and forget, once for the others, so a replayed `schedule.fire`
//! runs nothing twice and moves no rotation twice. A fire that cannot make
//! its job (a drill before any catalog, a forget without a retention
//! policy) is recorded as a `failed` job whose error says why: every fire
//! leaves a trace, so it is never silently dropped nor later reported as a
//! missed run.
//!
//! The kind is the one the server has stored: an agent's `schedule.fire`
//! names the kind in its table (or none, before kinds), which only matters
//! for the log when the two disagree (the schedule changed while the fire
//! waited to be sent).

use super::maintenance::{self, Route};
use super::registry::Directory;
use super::{check_rotation_args, drill, followup, ActorError};
use crate::ids::{HostId, ScheduleId};
use crate::protocol::ScheduleKind;
use crate::store::models::{Host, Job, JobFinish, NewJob, Schedule, SourceGroup};
use crate::store::{self, channel, jobs, schedules, JobStatus, JobTrigger};

/// One job a fire makes: to run, or to record as failed with the reason.
#[derive(Debug)]
enum Planned {
    Run(NewJob),
    Refused(NewJob, String),
    /// Not run: the shared repository's maintenance of this kind is
    /// queued or running already (recorded as `cancelled`).
    Skipped(NewJob, String),
}

/// Creates the jobs of the fire of `schedule_id` at `scheduled_at` (Unix
/// ms) for `host_id`, on the writer's connection inside its transaction.
/// Returns the jobs created now (none for an unknown or disabled schedule
/// or a replayed fire); refused ones are already `failed`.
pub(super) fn fire_jobs(
    conn: &mut store::DbConnection,
    sessions: &Directory,
    host_id: &HostId,
    schedule_id: &ScheduleId,
    scheduled_at: i64,
    fired_kind: Option<ScheduleKind>,
    now: i64,
) -> Result<Vec<Job>, ActorError> {
    let Some(schedule) = schedules::get_for_host(conn, host_id, schedule_id)? else {
        tracing::warn!(host_id = %host_id, schedule_id = %schedule_id, "fire of an unknown schedule ignored");
        return Ok(Vec::new());
    };
    if !schedule.enabled {
        tracing::warn!(host_id = %host_id, schedule_id = %schedule_id, "fire of a disabled schedule ignored");
        return Ok(Vec::new());
    }
    if let Some(fired) = fired_kind.filter(|k| *k != schedule.kind) {
        tracing::info!(host_id = %host_id, schedule_id = %schedule_id, fired = %fired, stored = %schedule.kind,
            "the schedule's kind changed since the agent fired it; the stored kind is used");
    }
    let groups = schedules::groups_of(conn, schedule_id)?;
    let planned = match schedule.kind {
        ScheduleKind::Backup => {
            let host = store::hosts::get(conn, host_id)?;
            groups
                .iter()
                .map(|group| backup_plan(host.as_ref(), group, now))
                .collect()
        }
        ScheduleKind::Forget => {
            let groups = if groups.is_empty() {
                store::source_groups::list_for_host(conn, host_id)?
            } else {
                groups
            };
            forget_plan(&schedule, &groups, now)
        }
        kind => {
            if !jobs::for_schedule_run(conn, schedule_id, scheduled_at)?.is_empty() {
                return Ok(Vec::new()); // a replayed fire
            }
            vec![match maintenance::route(conn, sessions, host_id, kind.job_kind())? {
                Route::Own => repository_plan(conn, &schedule, kind, &groups, now)?,
                Route::Host(runs_on) => {
                    let mut on = schedule.clone();
                    on.host_id = runs_on.into();
                    repository_plan(conn, &on, kind, &groups, now)?
                }
                Route::Active(job) => Planned::Skipped(
                    bare_job(&schedule, kind.job_kind(), now),
                    format!(
                        "{kind} schedule: the shared repository's {kind} is {} already as job {} on host {}",
                        job.status, job.id, job.host_id
                    ),
                ),
            }]
        }
    };
    let stamp = |mut job: NewJob| {
        job.schedule_id = Some(schedule.id.clone());
        job.scheduled_at = Some(scheduled_at);
        job
    };
    let mut runs = Vec::new();
    let mut refusals = Vec::new();
    for plan in planned {
        match plan {
            Planned::Run(job) => runs.push(stamp(job)),
            Planned::Refused(job, reason) => refusals.push((stamp(job), reason, JobStatus::Failed)),
            Planned::Skipped(job, reason) => {
                refusals.push((stamp(job), reason, JobStatus::Cancelled))
            }
        }
    }
    // Per group for backup and forget (a replay adds only what is missing).
    let mut created = channel::insert_fire_jobs(conn, schedule_id, scheduled_at, &runs)?;
    for (job, reason, status) in refusals {
        if !jobs::for_schedule_run(conn, schedule_id, scheduled_at)?.is_empty() {
            continue;
        }
        tracing::warn!(host_id = %host_id, schedule_id = %schedule_id, kind = %job.kind, "scheduled job refused: {reason}");
        let job = jobs::insert(conn, &job)?;
        let finish = JobFinish {
            status,
            finished_at: now,
            exit_code: None,
            error: Some(reason),
            warning: None,
            stats: None,
        };
        if let jobs::FinishOutcome::Applied(job) = jobs::finish(conn, &job.id, &finish)? {
            created.push(job);
        }
    }
    Ok(created)
}

/// The backup of one group: refused when it is a dump whose tool the
/// host's agent did not declare (the job fails with that reason).
fn backup_plan(host: Option<&Host>, group: &SourceGroup, now: i64) -> Planned {
    let job = followup::backup_job(group, JobTrigger::Schedule, now);
    let required = group.dump_spec().map(|dump| dump.required_capability());
    match (host, required) {
        (Some(host), Some(capability)) => match host.require_capability(&capability) {
            Ok(()) => Planned::Run(job),
            Err(e) => Planned::Refused(job, format!("agent_lacks_capability: {e}")),
        },
        _ => Planned::Run(job),
    }
}

/// The forgets of a forget schedule: one per group with a retention
/// policy, or one refusal when none has one.
fn forget_plan(schedule: &Schedule, groups: &[SourceGroup], now: i64) -> Vec<Planned> {
    let planned: Vec<Planned> = groups
        .iter()
        .filter_map(|group| {
            let policy = followup::group_retention(group)?;
            Some(Planned::Run(followup::forget_job(
                group,
                &policy,
                JobTrigger::Schedule,
                now,
            )))
        })
        .collect();
    if !planned.is_empty() {
        return planned;
    }
    let reason = if groups.is_empty() {
        "forget schedule: the host has no source group to apply a retention policy of".to_owned()
    } else {
        format!(
            "forget schedule: none of the source groups {} has a retention policy",
            names(groups)
        )
    };
    vec![Planned::Refused(
        bare_job(schedule, store::JobKind::Forget, now),
        reason,
    )]
}

/// The one job of a prune, check or drill schedule.
fn repository_plan(
    conn: &mut store::DbConnection,
    schedule: &Schedule,
    kind: ScheduleKind,
    groups: &[SourceGroup],
    now: i64,
) -> Result<Planned, ActorError> {
    let mut job = bare_job(schedule, kind.job_kind(), now);
    match kind {
        ScheduleKind::Check => job.args = check_rotation_args(conn, &job, now)?,
        ScheduleKind::Drill => {
            let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
            let built = drill::drill_job(
                conn,
                &schedule.host_id,
                &names,
                &drill::DrillOptions::default(),
                JobTrigger::Schedule,
                now,
            );
            return match built {
                Ok(job) => Ok(Planned::Run(job)),
                Err(ActorError::Conflict(reason) | ActorError::Invalid(reason)) => {
                    Ok(Planned::Refused(job, format!("drill schedule: {reason}")))
                }
                Err(e) => Err(e),
            };
        }
        _ => {}
    }
    Ok(Planned::Run(job))
}

/// A job of `kind` for the schedule's host without a group.
fn bare_job(schedule: &Schedule, kind: store::JobKind, now: i64) -> NewJob {
    NewJob::new(
        store::new_id(),
        schedule.host_id.clone(),
        kind,
        JobTrigger::Schedule,
        now,
    )
}

/// "a, b, c".
fn names(groups: &[SourceGroup]) -> String {
    groups
        .iter()
        .map(|g| g.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind) -> Schedule {
        Schedule {
            id: "s1".into(),
            host_id: "h1".into(),
            cron_expr: "0 2 * * *".into(),
            enabled: true,
            created_at: 0,
            updated_at: 0,
            kind,
        }
    }

    fn group(name: &str, retention: Option<&str>, prune: bool) -> SourceGroup {
        SourceGroup {
            id: format!("g-{name}").into(),
            host_id: "h1".into(),
            name: name.into(),
            includes: vec!["/etc".to_owned()],
            excludes: Vec::new(),
            retention_policy: retention.map(|r| serde_json::from_str(r).unwrap()),
            retry_max: 0,
            retry_backoff_seconds: 0,
            created_at: 0,
            updated_at: 0,
            prune_after_forget: prune,
            kind: "files".to_owned(),
            dump: None,
            dump_password_sealed: None,
            options: None,
        }
    }

    /// A forget schedule forgets each group that has a policy (with
    /// `--prune` where the group asks), skips the others, and is refused
    /// with a reason naming the groups when none has one.
    #[test]
    fn forget_plans() {
        let s = schedule(ScheduleKind::Forget);
        let groups = [
            group("etc", Some(r#"{"keep_last":3}"#), false),
            group("home", None, false),
            group("srv", Some(r#"{"keep_daily":7}"#), true),
        ];
        let planned = forget_plan(&s, &groups, 5);
        let jobs: Vec<&NewJob> = planned
            .iter()
            .map(|p| match p {
                Planned::Run(job) => job,
                Planned::Refused(..) | Planned::Skipped(..) => panic!("refused: {p:?}"),
            })
            .collect();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].tag.as_deref(), Some("etc"));
        assert!(jobs[0].args.is_empty());
        assert_eq!(jobs[1].tag.as_deref(), Some("srv"));
        assert_eq!(jobs[1].args, ["--prune"]);
        assert!(jobs
            .iter()
            .all(|j| j.kind == store::JobKind::Forget && j.trigger == JobTrigger::Schedule));

        let refused = forget_plan(&s, &groups[1..2], 5);
        let [Planned::Refused(job, reason)] = refused.as_slice() else {
            panic!("{refused:?}");
        };
        assert_eq!(job.kind, store::JobKind::Forget);
        assert!(reason.contains("home"), "{reason}");
        let none = forget_plan(&s, &[], 5);
        let [Planned::Refused(_, reason)] = none.as_slice() else {
            panic!("no groups must be refused");
        };
        assert!(reason.contains("no source group"), "{reason}");
    }
}
