//! Live job events only for the session's own host (issue 15 B.4): an
//! agent's `job.progress` and `log.stream` frames are published to the
//! live views only when the job belongs to this session's host, so an agent
//! cannot inject lines into another host's job page. (The writer checks the
//! owner again before storing anything.)
//!
//! Jobs dispatched or started in this session are known to be the host's
//! until they end (then forgotten: a session lives for days, its memory
//! must not grow with its host's job count); a job the session has not seen (one still running from before a
//! reconnect) is looked up once off the event loop, and its events are not
//! published until the answer is in. Nothing is lost by that: the database
//! holds every line, and a job stream fills gaps from it.

use std::collections::HashSet;

use actix::prelude::*;
use actix_web_actors::ws;

use super::recent::Recent;
use super::HostSession;
use crate::actors::blocking_read;
use crate::actors::events::Event;
use crate::store;

/// Job owners remembered per session, oldest forgotten first. A host runs
/// one job at a time, so only a few are ever live; ended jobs are
/// forgotten at once ([`OwnJobs::forget`]).
const MAX_KNOWN_JOBS: usize = 16;
/// Owner look-ups in flight per session; events of further unknown jobs
/// are dropped until one is answered.
const MAX_LOOKUPS: usize = 8;

/// Which job ids are this host's, as far as the session knows.
#[derive(Debug)]
pub(super) struct OwnJobs {
    /// Job id → whether it belongs to this host.
    known: Recent<bool>,
    /// Job ids being looked up.
    looking_up: HashSet<String>,
}

impl Default for OwnJobs {
    fn default() -> Self {
        Self {
            known: Recent::new(MAX_KNOWN_JOBS),
            looking_up: HashSet::new(),
        }
    }
}

impl OwnJobs {
    /// Whether `job_id` is this host's: `None` while unknown.
    pub(super) fn owned(&self, job_id: &str) -> Option<bool> {
        self.known.get(job_id)
    }

    /// Records the answer for `job_id`.
    pub(super) fn record(&mut self, job_id: &str, own: bool) {
        self.looking_up.remove(job_id);
        self.known.insert(job_id, own);
    }

    /// Forgets `job_id`: it ended. A late event of it is looked up again.
    pub(super) fn forget(&mut self, job_id: &str) {
        self.known.remove(job_id);
    }

    /// Starts a look-up of `job_id` unless one runs or too many do.
    fn begin_lookup(&mut self, job_id: &str) -> bool {
        if self.looking_up.len() >= MAX_LOOKUPS || self.looking_up.contains(job_id) {
            return false;
        }
        self.looking_up.insert(job_id.to_owned())
    }
}

impl HostSession {
    /// Publishes `event` (made only if needed) about `job_id` if the job
    /// is this host's; for a job not known yet, its owner is looked up.
    pub(super) fn publish_job_event(
        &mut self,
        job_id: &str,
        event: impl FnOnce() -> Event,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if !self.actors.has_event_listeners() {
            return;
        }
        match self.own_jobs.owned(job_id) {
            Some(true) => self.publish(event()),
            Some(false) => {
                tracing::debug!(host_id = %self.host_id, job_id, "live event for another host's job not published");
            }
            None => self.look_up_owner(job_id, ctx),
        }
    }

    fn look_up_owner(&mut self, job_id: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.own_jobs.begin_lookup(job_id) {
            return;
        }
        let pool = self.actors.pool.clone();
        let id = job_id.to_owned();
        let lookup = async move {
            blocking_read(&pool, move |conn| {
                Ok(store::jobs::get(conn, &id)?.map(|job| job.host_id.to_string()))
            })
            .await
        };
        let job_id = job_id.to_owned();
        ctx.spawn(lookup.into_actor(self).map(move |owner, act, _ctx| match owner {
            Ok(owner) => {
                let own = owner.as_deref() == Some(act.host_id.as_str());
                if !own {
                    tracing::warn!(host_id = %act.host_id, job_id = %job_id, "agent reports on a job that is not its host's");
                }
                act.own_jobs.record(&job_id, own);
            }
            Err(e) => {
                tracing::warn!(host_id = %act.host_id, job_id = %job_id, error = %e, "cannot look up a job's host");
                act.own_jobs.looking_up.remove(&job_id);
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers are remembered, look-ups are not repeated or unbounded, and
    /// the memory is bounded.
    #[test]
    fn own_jobs_bookkeeping() {
        let mut jobs = OwnJobs::default();
        assert_eq!(jobs.owned("j1"), None);
        assert!(jobs.begin_lookup("j1"));
        assert!(!jobs.begin_lookup("j1"), "one look-up per job");
        jobs.record("j1", false);
        assert_eq!(jobs.owned("j1"), Some(false));
        for i in 0..MAX_LOOKUPS {
            assert!(jobs.begin_lookup(&format!("x{i}")));
        }
        assert!(!jobs.begin_lookup("one-too-many"));
        for i in 0..=MAX_KNOWN_JOBS {
            jobs.record(&format!("k{i}"), true);
        }
        assert!(jobs.known.len() <= MAX_KNOWN_JOBS);
        jobs.forget(&format!("k{MAX_KNOWN_JOBS}"));
        assert_eq!(jobs.owned(&format!("k{MAX_KNOWN_JOBS}")), None);
    }
}
