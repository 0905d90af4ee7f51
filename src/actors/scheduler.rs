//! `Scheduler`: turns schedule fires into jobs and decides what follows a
//! finished backup.
//!
//! - `schedule.fire` → one backup job per source group of the schedule
//!   (tag = group name, includes / excludes / retention from the group),
//!   de-duplicated per (schedule, scheduled_at, group) so a replayed fire
//!   runs nothing twice.
//! - A failed backup is retried up to the group's `retry_max` times, the
//!   n-th retry `retry_backoff_seconds × 2^(n−1)` after the failure; a
//!   retry row links to the first attempt, carries its `attempt` number
//!   and becomes due at `retry_at`. Due retries go out on a [`Tick`].
//! - A succeeded backup of a group with a retention policy is followed by
//!   a `forget` job with `--tag <group>`.
//! - Missed runs: on every [`Tick`], each enabled schedule's cron times
//!   that passed more than the grace period ago without a fire are
//!   recorded (and published as events).
//!
//! Time comes in messages (`Tick { now }`, `JobCompleted { now }`), so
//! tests drive it with a fake clock; the actor's own timer sends the real
//! time every [`TICK_INTERVAL`].

use std::collections::HashSet;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::events::{Event, Events, Publish};
use super::persistence::{InsertFireJobs, InsertJob, Persistence, RecordMissedRun};
use super::registry::Registry;
use super::{blocking_read, hand_to_session, ActorError};
use crate::cron::{CronExpr, InvalidCron};
use crate::protocol;
use crate::store::models::{Job, NewJob, NewMissedRun, SourceGroup};
use crate::store::{self, channel, jobs, schedules, source_groups};
use crate::store::{JobKind, JobStatus, JobTrigger, Pool};

/// How often the scheduler wakes up on its own.
pub const TICK_INTERVAL: Duration = Duration::from_secs(30);

/// How far back the first tick after a start looks for missed runs.
pub const MISSED_RUN_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// At most this many missed times are recorded per schedule per tick.
const MAX_MISSES_PER_SCHEDULE: usize = 100;

/// At most this many due retries go out per tick.
const MAX_RETRIES_PER_TICK: i64 = 500;

/// Longest back-off between retries (a misconfigured group cannot push a
/// retry into the far future or overflow).
const MAX_BACKOFF: Duration = Duration::from_secs(7 * 24 * 3600);

/// The scheduler.
pub struct Scheduler {
    pool: Pool,
    persistence: Addr<Persistence>,
    registry: Addr<Registry>,
    events: Addr<Events>,
    /// A cron time must be this far in the past before it counts as missed.
    grace: Duration,
    /// Cron times up to here (Unix ms) have been checked for misses.
    checked_until: Option<i64>,
}

impl Scheduler {
    pub fn new(
        pool: Pool,
        persistence: Addr<Persistence>,
        registry: Addr<Registry>,
        events: Addr<Events>,
        grace: Duration,
    ) -> Self {
        Scheduler {
            pool,
            persistence,
            registry,
            events,
            grace,
            checked_until: None,
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK_INTERVAL, |_, ctx| {
            ctx.notify(Tick { now: Utc::now() });
        });
    }
}

/// The stored retention policy, if it is set and not empty.
pub fn group_retention(group: &SourceGroup) -> Option<protocol::RetentionPolicy> {
    let text = group.retention_policy.as_deref()?;
    match serde_json::from_str::<protocol::RetentionPolicy>(text) {
        Ok(policy) if !policy.is_empty() => Some(policy),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, group_id = %group.id, "stored retention policy does not parse");
            None
        }
    }
}

/// A first-attempt backup job of `group`.
pub fn backup_job(group: &SourceGroup, trigger: JobTrigger, now: i64) -> NewJob {
    NewJob {
        source_group_id: Some(group.id.clone()),
        tag: Some(group.name.clone()),
        includes: group.includes.clone(),
        excludes: group.excludes.clone(),
        retention_policy: group.retention_policy.clone(),
        ..NewJob::new(
            store::new_id(),
            group.host_id.clone(),
            JobKind::Backup,
            trigger,
            now,
        )
    }
}

/// The retention `forget` job that follows a good backup of `group`.
pub fn forget_job(group: &SourceGroup, policy: &protocol::RetentionPolicy, now: i64) -> NewJob {
    NewJob {
        source_group_id: Some(group.id.clone()),
        tag: Some(group.name.clone()),
        // Ints and a string always encode.
        retention_policy: serde_json::to_string(policy).ok(),
        ..NewJob::new(
            store::new_id(),
            group.host_id.clone(),
            JobKind::Forget,
            JobTrigger::Retention,
            now,
        )
    }
}

/// The delay before retry number `n` (1-based): `backoff × 2^(n−1)`,
/// capped at [`MAX_BACKOFF`].
pub fn retry_delay(backoff_seconds: i32, n: i32) -> Duration {
    let base = u64::try_from(backoff_seconds.max(0)).unwrap_or(0);
    let exponent = u32::try_from((n - 1).clamp(0, 40)).unwrap_or(0);
    let seconds = base.saturating_mul(1u64 << exponent);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// The retry of a failed attempt, or `None` when the group's retries are
/// spent. `job` is the failed attempt; `now` the failure time.
pub fn retry_of(job: &Job, group: &SourceGroup, now: i64) -> Option<NewJob> {
    let retries_done = job.attempt - 1;
    if retries_done >= group.retry_max {
        return None;
    }
    let n = retries_done + 1;
    let delay = i64::try_from(retry_delay(group.retry_backoff_seconds, n).as_millis())
        .unwrap_or(i64::MAX / 2);
    let mut new = NewJob::new(
        store::new_id(),
        job.host_id.clone(),
        job.kind,
        JobTrigger::Retry,
        now,
    );
    new.source_group_id = job.source_group_id.clone();
    new.tag = job.tag.clone();
    new.includes = job.includes.clone();
    new.excludes = job.excludes.clone();
    new.retention_policy = job.retention_policy.clone();
    new.args = job.args.clone();
    new.schedule_id = job.schedule_id.clone();
    new.scheduled_at = job.scheduled_at;
    new.attempt = job.attempt + 1;
    new.first_attempt_id = Some(
        job.first_attempt_id
            .clone()
            .unwrap_or_else(|| job.id.clone()),
    );
    new.retry_at = Some(now.saturating_add(delay));
    Some(new)
}

/// Cron times of `cron_expr` in `(from, to]` (Unix ms), at most `limit`.
pub fn cron_times_between(
    cron_expr: &str,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<Vec<i64>, InvalidCron> {
    let cron = CronExpr::parse(cron_expr)?;
    let Some(from) = DateTime::from_timestamp_millis(from) else {
        return Ok(Vec::new());
    };
    Ok(cron
        .times_after(from)
        .map(|at| at.timestamp_millis())
        .take_while(|ms| *ms <= to)
        .take(limit)
        .collect())
}

/// A host's agent fired one of its schedules.
#[derive(Message)]
#[rtype(result = "Result<Vec<Job>, ActorError>")]
pub struct ScheduleFired {
    pub host_id: String,
    pub payload: protocol::ScheduleFire,
    pub now: i64,
}

impl Handler<ScheduleFired> for Scheduler {
    type Result = ResponseFuture<Result<Vec<Job>, ActorError>>;

    fn handle(&mut self, msg: ScheduleFired, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let persistence = self.persistence.clone();
        let registry = self.registry.clone();
        let events = self.events.clone();
        Box::pin(async move {
            let host_id = msg.host_id.clone();
            let schedule_id = msg.payload.schedule_id.clone();
            let (schedule, groups) = blocking_read(&pool, move |c| {
                let Some(schedule) = schedules::get_for_host(c, &host_id, &schedule_id)? else {
                    return Ok((None, Vec::new()));
                };
                let groups = schedules::groups_of(c, &schedule.id)?;
                Ok((Some(schedule), groups))
            })
            .await?;
            let Some(schedule) = schedule else {
                tracing::warn!(host_id = %msg.host_id, schedule_id = %msg.payload.schedule_id, "fire of an unknown schedule ignored");
                return Ok(Vec::new());
            };
            if !schedule.enabled {
                tracing::warn!(host_id = %msg.host_id, schedule_id = %schedule.id, "fire of a disabled schedule ignored");
                return Ok(Vec::new());
            }
            let scheduled_at = msg.payload.scheduled_at.timestamp_millis();
            let new_jobs: Vec<NewJob> = groups
                .iter()
                .map(|group| NewJob {
                    schedule_id: Some(schedule.id.clone()),
                    scheduled_at: Some(scheduled_at),
                    ..backup_job(group, JobTrigger::Schedule, msg.now)
                })
                .collect();
            let created = persistence
                .send(InsertFireJobs {
                    host_id: msg.host_id.clone(),
                    schedule_id: schedule.id.clone(),
                    scheduled_at,
                    jobs: new_jobs,
                })
                .await
                .map_err(ActorError::mailbox)??;
            for job in &created {
                hand_to_session(&registry, &events, job.clone()).await;
            }
            Ok(created)
        })
    }
}

/// A job became terminal (applied once): retry or retention may follow.
#[derive(Message)]
#[rtype(result = "Result<Option<Job>, ActorError>")]
pub struct JobCompleted {
    pub job: Job,
    pub now: i64,
}

impl Handler<JobCompleted> for Scheduler {
    type Result = ResponseFuture<Result<Option<Job>, ActorError>>;

    fn handle(&mut self, msg: JobCompleted, _ctx: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let persistence = self.persistence.clone();
        let registry = self.registry.clone();
        let events = self.events.clone();
        Box::pin(async move {
            let job = msg.job;
            if job.kind != JobKind::Backup
                || !matches!(job.status, JobStatus::Failed | JobStatus::Succeeded)
            {
                return Ok(None);
            }
            let Some(group_id) = job.source_group_id.clone() else {
                return Ok(None);
            };
            let Some(group) =
                blocking_read(&pool, move |c| source_groups::get(c, &group_id)).await?
            else {
                return Ok(None);
            };
            let follow_up = match job.status {
                JobStatus::Failed => retry_of(&job, &group, msg.now),
                _ => group_retention(&group).map(|policy| forget_job(&group, &policy, msg.now)),
            };
            let Some(new) = follow_up else {
                return Ok(None);
            };
            let due_now = new.retry_at.is_none();
            let created = persistence
                .send(InsertJob { new })
                .await
                .map_err(ActorError::mailbox)??;
            tracing::info!(
                host_id = %created.host_id,
                job_id = %created.id,
                after = %job.id,
                trigger = %created.trigger,
                "follow-up job created"
            );
            if due_now {
                hand_to_session(&registry, &events, created.clone()).await;
            }
            Ok(Some(created))
        })
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Due retries handed to a live session.
    pub retries_dispatched: usize,
    /// Missed runs recorded now.
    pub missed_runs_recorded: usize,
}

/// The clock moved to `now`: send due retries, look for missed runs.
#[derive(Message)]
#[rtype(result = "Result<TickReport, ActorError>")]
pub struct Tick {
    pub now: DateTime<Utc>,
}

impl Handler<Tick> for Scheduler {
    type Result = ResponseFuture<Result<TickReport, ActorError>>;

    fn handle(&mut self, msg: Tick, _ctx: &mut Self::Context) -> Self::Result {
        let now = msg.now.timestamp_millis();
        let grace = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX / 4);
        let lookback = i64::try_from(MISSED_RUN_LOOKBACK.as_millis()).unwrap_or(i64::MAX / 4);
        let until = now.saturating_sub(grace);
        let from = self
            .checked_until
            .unwrap_or_else(|| until.saturating_sub(lookback));
        // Claim the window now, so overlapping ticks check disjoint ones.
        let window = (until > from).then(|| {
            self.checked_until = Some(until);
            (from, until)
        });

        let pool = self.pool.clone();
        let persistence = self.persistence.clone();
        let registry = self.registry.clone();
        let events = self.events.clone();
        Box::pin(async move {
            let mut report = TickReport::default();

            let due = blocking_read(&pool, move |c| {
                jobs::due_retries(c, now, MAX_RETRIES_PER_TICK)
            })
            .await?;
            for job in due {
                if hand_to_session(&registry, &events, job).await {
                    report.retries_dispatched += 1;
                }
            }

            let Some((from, until)) = window else {
                return Ok(report);
            };
            let misses = blocking_read(&pool, move |c| {
                let fired: HashSet<(String, i64)> = channel::fires_since(c, from)?
                    .into_iter()
                    .map(|(schedule, at)| (schedule, at.div_euclid(60_000)))
                    .collect();
                let mut misses = Vec::new();
                for schedule in schedules::list_enabled(c)? {
                    let start = from.max(schedule.updated_at);
                    let expr = &schedule.cron_expr;
                    let times =
                        match cron_times_between(expr, start, until, MAX_MISSES_PER_SCHEDULE) {
                            Ok(times) => times,
                            Err(e) => {
                                tracing::warn!(
                                    schedule_id = %schedule.id,
                                    error = %e,
                                    "stored cron expression does not parse"
                                );
                                continue;
                            }
                        };
                    // A schedule without source groups makes no jobs when it
                    // fires, so its fires leave no trace: never "missed".
                    if times.is_empty() || schedules::groups_of(c, &schedule.id)?.is_empty() {
                        continue;
                    }
                    for at in times {
                        if !fired.contains(&(schedule.id.clone(), at.div_euclid(60_000))) {
                            misses.push(NewMissedRun {
                                id: store::new_id(),
                                host_id: schedule.host_id.clone(),
                                schedule_id: schedule.id.clone(),
                                scheduled_at: at,
                                detected_at: now,
                            });
                        }
                    }
                }
                Ok(misses)
            })
            .await?;
            for missed in misses {
                let event = Event::MissedRun {
                    host_id: missed.host_id.clone(),
                    schedule_id: missed.schedule_id.clone(),
                    scheduled_at: missed.scheduled_at,
                };
                let recorded = persistence
                    .send(RecordMissedRun { missed })
                    .await
                    .map_err(ActorError::mailbox)??;
                if recorded {
                    tracing::warn!(host_id = %event.host_id(), "missed scheduled run recorded");
                    report.missed_runs_recorded += 1;
                    events.do_send(Publish(event));
                }
            }
            Ok(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(retry_max: i32, backoff: i32) -> SourceGroup {
        SourceGroup {
            id: "g1".into(),
            host_id: "h1".into(),
            name: "etc".into(),
            includes: r#"["/etc"]"#.into(),
            excludes: "[]".into(),
            retention_policy: Some(r#"{"keep_daily":7}"#.into()),
            retry_max,
            retry_backoff_seconds: backoff,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn failed_job(attempt: i32, first: Option<&str>) -> Job {
        Job {
            id: format!("j{attempt}"),
            host_id: "h1".into(),
            kind: JobKind::Backup,
            status: JobStatus::Failed,
            trigger: JobTrigger::Schedule,
            source_group_id: Some("g1".into()),
            tag: Some("etc".into()),
            includes: r#"["/etc"]"#.into(),
            excludes: "[]".into(),
            retention_policy: None,
            args: "[]".into(),
            schedule_id: Some("s1".into()),
            scheduled_at: Some(1_000),
            attempt,
            first_attempt_id: first.map(str::to_owned),
            retry_at: None,
            created_at: 0,
            dispatched_at: None,
            accepted_at: None,
            started_at: None,
            finished_at: Some(5_000),
            exit_code: Some(1),
            error: Some("boom".into()),
            warning: None,
            stats: None,
            progress: None,
            last_log_seq: 0,
        }
    }

    /// Back-off doubles per retry: 300 s, 600 s, 1200 s.
    #[test]
    fn backoff_doubles() {
        assert_eq!(retry_delay(300, 1), Duration::from_secs(300));
        assert_eq!(retry_delay(300, 2), Duration::from_secs(600));
        assert_eq!(retry_delay(300, 3), Duration::from_secs(1200));
        assert_eq!(retry_delay(i32::MAX, 40), MAX_BACKOFF);
        assert_eq!(retry_delay(-5, 1), Duration::ZERO);
    }

    /// Retries link to the first attempt, count attempts and stop at
    /// `retry_max`.
    #[test]
    fn retries_link_and_stop() {
        let g = group(2, 60);
        let first = retry_of(&failed_job(1, None), &g, 10_000).unwrap();
        assert_eq!(first.attempt, 2);
        assert_eq!(first.first_attempt_id.as_deref(), Some("j1"));
        assert_eq!(first.retry_at, Some(10_000 + 60_000));
        assert_eq!(first.trigger, JobTrigger::Retry);
        let second = retry_of(&failed_job(2, Some("j1")), &g, 20_000).unwrap();
        assert_eq!(second.attempt, 3);
        assert_eq!(second.first_attempt_id.as_deref(), Some("j1"));
        assert_eq!(second.retry_at, Some(20_000 + 120_000));
        assert!(retry_of(&failed_job(3, Some("j1")), &g, 30_000).is_none());
        assert!(retry_of(&failed_job(1, None), &group(0, 60), 1).is_none());
    }

    /// The forget job carries the group's tag and policy.
    #[test]
    fn forget_follows_retention() {
        let g = group(0, 0);
        let policy = group_retention(&g).unwrap();
        let job = forget_job(&g, &policy, 7);
        assert_eq!(job.kind, JobKind::Forget);
        assert_eq!(job.trigger, JobTrigger::Retention);
        assert_eq!(job.tag.as_deref(), Some("etc"));
        assert_eq!(job.retention_policy.as_deref(), Some(r#"{"keep_daily":7}"#));
        let mut empty = g.clone();
        empty.retention_policy = Some("{}".into());
        assert!(group_retention(&empty).is_none());
    }

    /// Cron times are listed in the half-open window, limited.
    #[test]
    fn cron_window() {
        let day = 86_400_000;
        let times = cron_times_between("0 2 * * *", 0, 3 * day, 10).unwrap();
        assert_eq!(times, vec![7_200_000, day + 7_200_000, 2 * day + 7_200_000]);
        assert_eq!(
            cron_times_between("0 2 * * *", 0, 3 * day, 1)
                .unwrap()
                .len(),
            1
        );
        assert!(cron_times_between("not cron", 0, day, 10).is_err());
    }
}
