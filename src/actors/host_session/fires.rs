//! `schedule.fire` with back-pressure (issue 15 B.7): a fire of a schedule
//! the host does not have is a bad frame (counted towards the 1008 close,
//! not a warning per frame); more than [`FIRE_LIMIT`] fires of one schedule
//! in [`FIRE_WINDOW`] are bad frames too (an agent sends at most one per
//! cron minute, plus one replayed after a reconnect); and the session reads
//! nothing more from its socket until the scheduler has handled the fire,
//! so a flood of fires waits in the agent's TCP buffer, not in the
//! server's memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;

use super::HostSession;
use crate::actors::scheduler::{Fired, ScheduleFired};
use crate::protocol;
use crate::store;

/// Fires of one schedule accepted per [`FIRE_WINDOW`]; more are bad frames.
pub const FIRE_LIMIT: u32 = 5;
/// The window fires are counted in, per schedule.
pub const FIRE_WINDOW: Duration = Duration::from_secs(60);
/// Schedules whose fires are counted at once; past it the counts restart.
const MAX_COUNTED_SCHEDULES: usize = 1024;
/// Longest schedule id echoed in an error frame.
const MAX_ECHOED_ID: usize = 64;

/// Fires per schedule in fixed windows.
#[derive(Debug, Default)]
pub(super) struct FireCounts {
    windows: HashMap<String, (Instant, u32)>,
}

impl FireCounts {
    /// Counts a fire of `schedule_id` at `now`; false past the limit.
    pub(super) fn admit(&mut self, schedule_id: &str, now: Instant) -> bool {
        if self.windows.len() >= MAX_COUNTED_SCHEDULES && !self.windows.contains_key(schedule_id) {
            self.windows
                .retain(|_, (started, _)| now.duration_since(*started) < FIRE_WINDOW);
            if self.windows.len() >= MAX_COUNTED_SCHEDULES {
                self.windows.clear();
            }
        }
        let window = self
            .windows
            .entry(schedule_id.to_owned())
            .or_insert((now, 0));
        if now.duration_since(window.0) >= FIRE_WINDOW {
            *window = (now, 0);
        }
        window.1 = window.1.saturating_add(1);
        window.1 <= FIRE_LIMIT
    }
}

fn echoed(schedule_id: &str) -> String {
    schedule_id.chars().take(MAX_ECHOED_ID).collect()
}

impl HostSession {
    /// `schedule.fire`: limited per schedule, handed to the scheduler
    /// while the socket waits, a bad frame if the schedule is unknown.
    pub(super) fn on_schedule_fire(
        &mut self,
        id: String,
        fire: protocol::ScheduleFire,
        ctx: &mut ws::WebsocketContext<Self>,
        now: Instant,
    ) {
        let schedule_id = echoed(&fire.schedule_id);
        if !self.fires.admit(&fire.schedule_id, now) {
            let detail = format!("too many fires of schedule {schedule_id}");
            let frame = Self::bad(protocol::ERROR_BAD_FRAME, detail, Some(id));
            return self.bad_frame(ctx, frame, now);
        }
        let work = self.actors.scheduler.send(ScheduleFired {
            host_id: self.host_id.clone(),
            payload: fire,
            now: store::now_ms(),
        });
        // `wait`: nothing more is read from the socket until it is handled.
        ctx.wait(
            work.into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(Ok(Fired::Jobs(_))) => {}
                    Ok(Ok(Fired::UnknownSchedule)) => {
                        let detail =
                            format!("schedule.fire: this host has no schedule {schedule_id}");
                        let frame = Self::bad(protocol::ERROR_BAD_FRAME, detail, Some(id));
                        act.bad_frame(ctx, frame, Instant::now());
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(host_id = %act.host_id, error = %e, "schedule fire failed")
                    }
                    Err(e) => {
                        tracing::error!(host_id = %act.host_id, error = %e, "scheduler unavailable")
                    }
                }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At most FIRE_LIMIT fires per schedule per window; another schedule
    /// and the next window count afresh; memory stays bounded.
    #[test]
    fn fires_are_limited_per_schedule() {
        let mut fires = FireCounts::default();
        let t0 = Instant::now();
        for _ in 0..FIRE_LIMIT {
            assert!(fires.admit("s1", t0));
        }
        assert!(!fires.admit("s1", t0));
        assert!(fires.admit("s2", t0));
        assert!(fires.admit("s1", t0 + FIRE_WINDOW));
        for i in 0..(MAX_COUNTED_SCHEDULES * 2) {
            fires.admit(&format!("x{i}"), t0);
        }
        assert!(fires.windows.len() <= MAX_COUNTED_SCHEDULES);
    }
}
