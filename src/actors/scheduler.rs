//! `Scheduler`: turns schedule fires into jobs, sends retries when they
//! fall due and records missed runs.
//!
//! - `schedule.fire` → the jobs of the schedule's kind ([`super::fire`]):
//!   a backup per source group (tag = group name, includes / excludes /
//!   retention from the group), a forget per group with retention, or one
//!   prune, check or drill, de-duplicated per (schedule, scheduled_at)
//!   so a replayed fire runs nothing twice; built and inserted in one
//!   writer transaction.
//! - Due retries go out on a [`Tick`]: a failed backup's retry is created
//!   by the writer in the transaction that finishes it (the rules are in
//!   [`followup`](super::followup)), due at its `retry_at`; the tick hands
//!   the rows whose time has come to their hosts' sessions.
//! - Lost hosts: on every [`Tick`], the repository leases of hosts offline
//!   for [`LEASE_HOST_LOST_AFTER`] (or revoked) end, the waiters there
//!   are told, and the server queues an `unlock` of the repository.
//! - Missed runs: on every [`Tick`], each enabled schedule's cron times
//!   that passed more than the grace period ago without a fire are
//!   recorded (and published as events).
//!
//! Time comes in messages (`Tick { now }`, `ScheduleFired { now }`), so
//! tests drive it with a fake clock; the actor's own timer sends the real
//! time every [`TICK_INTERVAL`].

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::events::{Event, Events, Publish};
use super::fire::fire_jobs;
use super::host_session::{nudge_waiters, queue_unlock};
use super::persistence::{Persistence, RecordMissedRun, RunWrite};
use super::registry::Directory;
use super::{blocking_read, hand_to_session, ActorError};
use crate::cron::{CronExpr, InvalidCron};
use crate::ids::{HostId, ScheduleId};
use crate::protocol;
use crate::store::models::{Job, NewMissedRun};
use crate::store::{self, channel, jobs, leases, schedules};
use crate::store::{JobStatus, Pool, ScheduleKind};

/// How often the scheduler wakes up on its own.
pub const TICK_INTERVAL: Duration = Duration::from_secs(30);

/// How far back the first tick after a start looks for missed runs.
pub const MISSED_RUN_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// At most this many missed times are recorded per schedule per tick.
const MAX_MISSES_PER_SCHEDULE: usize = 100;

/// A host holding a repository lease that has been offline this long is
/// declared lost: its leases end and the server unlocks the repository.
pub const LEASE_HOST_LOST_AFTER: Duration = Duration::from_secs(15 * 60);

/// At most this many due retries go out per tick.
const MAX_RETRIES_PER_TICK: i64 = 500;

/// The scheduler.
pub struct Scheduler {
    pool: Pool,
    persistence: Addr<Persistence>,
    /// Live sessions, to hand jobs to.
    sessions: Directory,
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
        sessions: Directory,
        events: Addr<Events>,
        grace: Duration,
    ) -> Self {
        Scheduler {
            pool,
            persistence,
            sessions,
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

/// The last cron time of `cron_expr` in `(from, to]` (Unix ms), if any:
/// a schedule whose check starts at or after it has nothing to miss.
pub fn last_cron_time(cron_expr: &str, from: i64, to: i64) -> Result<Option<i64>, InvalidCron> {
    let cron = CronExpr::parse(cron_expr)?;
    let Some(from) = DateTime::from_timestamp_millis(from) else {
        return Ok(None);
    };
    Ok(cron
        .times_after(from)
        .map(|at| at.timestamp_millis())
        .take_while(|ms| *ms <= to)
        .last())
}

/// What a `schedule.fire` came to.
#[derive(Debug)]
pub enum Fired {
    /// The jobs created now (none for a disabled schedule or a replay).
    Jobs(Vec<Job>),
    /// The host has no such schedule: the session counts a bad frame.
    UnknownSchedule,
}

/// A host's agent fired one of its schedules.
#[derive(Message)]
#[rtype(result = "Result<Fired, ActorError>")]
pub struct ScheduleFired {
    pub host_id: HostId,
    pub payload: protocol::ScheduleFire,
    pub now: i64,
}

impl Handler<ScheduleFired> for Scheduler {
    type Result = ResponseFuture<Result<Fired, ActorError>>;

    fn handle(&mut self, msg: ScheduleFired, _ctx: &mut Self::Context) -> Self::Result {
        let persistence = self.persistence.clone();
        let sessions = self.sessions.clone();
        let fire_sessions = self.sessions.clone();
        let events = self.events.clone();
        Box::pin(async move {
            let ScheduleFired {
                host_id,
                payload,
                now,
            } = msg;
            let scheduled_at = payload.scheduled_at.timestamp_millis();
            let schedule_id = ScheduleId::from(payload.schedule_id.as_str());
            let created = persistence
                .send(RunWrite::new("creating scheduled jobs", move |c| {
                    if schedules::get_for_host(c, &host_id, &schedule_id)?.is_none() {
                        return Ok(None);
                    }
                    fire_jobs(
                        c,
                        &fire_sessions,
                        &host_id,
                        &schedule_id,
                        scheduled_at,
                        payload.kind,
                        now,
                    )
                    .map(Some)
                }))
                .await
                .map_err(ActorError::mailbox)??;
            let Some(created) = created else {
                return Ok(Fired::UnknownSchedule);
            };
            for job in &created {
                if job.status == JobStatus::Queued {
                    hand_to_session(&sessions, &events, job);
                } else {
                    // Refused at creation (a drill before any catalog).
                    events.do_send(Publish(Event::JobStatus {
                        host_id: job.host_id.clone(),
                        job_id: job.id.clone(),
                        status: job.status,
                        message: job.error.clone(),
                    }));
                }
            }
            Ok(Fired::Jobs(created))
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
        let sessions = self.sessions.clone();
        let events = self.events.clone();
        Box::pin(async move {
            let mut report = TickReport::default();

            let due = blocking_read(&pool, move |c| {
                jobs::due_retries(c, now, MAX_RETRIES_PER_TICK)
            })
            .await?;
            for job in due {
                if hand_to_session(&sessions, &events, &job) {
                    report.retries_dispatched += 1;
                }
            }

            let lost_before = now.saturating_sub(
                i64::try_from(LEASE_HOST_LOST_AFTER.as_millis()).unwrap_or(i64::MAX / 4),
            );
            let freed = persistence
                .send(RunWrite::new("ending the leases of lost hosts", move |c| {
                    let mut freed = Vec::new();
                    for host in leases::lost_holders(c, lost_before)? {
                        tracing::warn!(host_id = %host, "host declared lost: its repository leases end");
                        freed.extend(leases::release_host(c, &host)?);
                    }
                    Ok::<_, ActorError>(freed)
                }))
                .await
                .map_err(ActorError::mailbox)??;
            for repository in freed {
                nudge_waiters(&pool, &sessions, repository.clone());
                queue_unlock(&persistence, &sessions, &events, repository);
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
                // A policy gives thousands of hosts one cron expression:
                // each expression's last time in the window is worked out
                // once, and only its schedules changed before that time
                // are read (the others have no time left to miss), never
                // every enabled row each tick.
                let mut memo: HashMap<(String, i64), Vec<i64>> = HashMap::new();
                for expr in schedules::enabled_cron_exprs(c)? {
                    let last = match last_cron_time(&expr, from, until) {
                        Ok(Some(last)) => last,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(
                                cron_expr = %expr,
                                error = %e,
                                "stored cron expression does not parse"
                            );
                            continue;
                        }
                    };
                    for schedule in schedules::list_enabled_with_cron(c, &expr, last)? {
                        let start = from.max(schedule.updated_at);
                        let times = memo
                            .entry((expr.clone(), start))
                            .or_insert_with(|| {
                                // Parsed above: an error cannot come back.
                                cron_times_between(&expr, start, until, MAX_MISSES_PER_SCHEDULE)
                                    .unwrap_or_default()
                            })
                            .clone();
                        // A backup schedule without source groups makes no
                        // jobs when it fires, so its fires leave no trace:
                        // never "missed". Every other kind's fire leaves a
                        // job, if only a refused one.
                        if times.is_empty()
                            || (schedule.kind == ScheduleKind::Backup
                                && schedules::groups_of(c, &schedule.id)?.is_empty())
                        {
                            continue;
                        }
                        for at in times {
                            if !fired.contains(&(schedule.id.to_string(), at.div_euclid(60_000))) {
                                misses.push(NewMissedRun {
                                    id: store::new_id(),
                                    host_id: schedule.host_id.to_string(),
                                    schedule_id: schedule.id.to_string(),
                                    scheduled_at: at,
                                    detected_at: now,
                                });
                            }
                        }
                    }
                }
                // The order of the whole-table scan: by host, schedule, time.
                misses.sort_by(|a, b| {
                    (&a.host_id, &a.schedule_id, a.scheduled_at).cmp(&(
                        &b.host_id,
                        &b.schedule_id,
                        b.scheduled_at,
                    ))
                });
                Ok(misses)
            })
            .await?;
            for missed in misses {
                let event = Event::MissedRun {
                    host_id: missed.host_id.clone().into(),
                    schedule_id: missed.schedule_id.clone().into(),
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

    /// The last cron time in the window bounds the rows the missed-run
    /// check reads; none when the window holds no time.
    #[test]
    fn last_cron_time_in_window() {
        let day = 86_400_000;
        assert_eq!(
            last_cron_time("0 2 * * *", 0, 3 * day).unwrap(),
            Some(2 * day + 7_200_000)
        );
        assert_eq!(
            last_cron_time("0 2 * * *", 0, 7_200_000).unwrap(),
            Some(7_200_000)
        );
        assert_eq!(last_cron_time("0 2 * * *", 0, 7_199_999).unwrap(), None);
        assert_eq!(
            last_cron_time("0 2 * * *", 7_200_000, day + 7_199_999).unwrap(),
            None
        );
        assert!(last_cron_time("not cron", 0, day).is_err());
    }
}
