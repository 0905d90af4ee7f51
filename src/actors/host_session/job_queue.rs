//! One host's job queue, as its session keeps it: jobs waiting in
//! creation order, the one `command.run` in flight (one job at a time per
//! host), and the ids of jobs that ended during the session (so a late
//! copy of a finished job is not sent again). Pure data: no actor, no
//! socket, no database; the session decides when to send.
//!
//! `catalog` jobs are low priority: one goes out only when no other job
//! waits, and one in flight yields ([`JobQueue::to_yield`]) as soon as
//! another job is waiting, so a catalog never delays a backup, restore
//! or maintenance job.

use std::collections::VecDeque;

use super::recent::Recent;

use crate::protocol;
use crate::store::job_params::JobParams;
use crate::store::models::Job;

/// Job ids remembered as finished in this session, oldest forgotten
/// first. They guard against a late copy of a finished job (a dispatch
/// or queue load that was already on its way when the job ended); the
/// finish is written before the job counts as done here, so only copies
/// already in flight at that moment can arrive, and a few suffice. Kept
/// small: a session lives for days (issue 15's soak grew about 270 bytes
/// per job with 10,000 here).
pub const MAX_REMEMBERED_FINISHED: usize = 16;

/// A job waiting to go out: the `command.run` to send and its place in
/// the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    /// The job's creation time (Unix ms); with the id, the queue's order.
    pub created_at: i64,
    /// The job's source group (a dump's password is read from it when
    /// the job is sent).
    pub source_group_id: Option<String>,
    /// What goes on the wire.
    pub run: protocol::CommandRun,
}

impl QueuedJob {
    /// The queue entry of a job row.
    pub fn of(job: &Job) -> Self {
        QueuedJob {
            created_at: job.created_at,
            source_group_id: job.source_group_id.as_ref().map(ToString::to_string),
            run: command_run(job),
        }
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.run.job_id
    }

    fn order(&self) -> (i64, &str) {
        (self.created_at, self.id())
    }
}

/// The `command.run` of a job row.
pub fn command_run(job: &Job) -> protocol::CommandRun {
    protocol::CommandRun {
        job_id: job.id.to_string(),
        kind: job.kind,
        args: job.args.clone(),
        includes: job.includes.clone(),
        excludes: job.excludes.clone(),
        tag: job.tag.clone(),
        retention_policy: job.retention_policy.clone(),
        snapshot_id: job.snapshot_id.clone(),
        restore: restore_spec(job),
        drill: drill_spec(job),
        dump: dump_spec(job),
    }
}

/// A dump group's backup: its stored database (the password is added
/// when the job is sent).
fn dump_spec(job: &Job) -> Option<Box<protocol::DumpSpec>> {
    if job.kind != protocol::JobKind::Backup {
        return None;
    }
    job.params
        .as_ref()
        .and_then(JobParams::dump)
        .cloned()
        .map(Box::new)
}

/// A restore job's stored parameters (`jobs.params`, a [`RestoreSpec`]
/// without repository settings, which are added when the job is sent).
///
/// [`RestoreSpec`]: protocol::RestoreSpec
fn restore_spec(job: &Job) -> Option<Box<protocol::RestoreSpec>> {
    if job.kind != protocol::JobKind::Restore {
        return None;
    }
    job.params
        .as_ref()
        .and_then(JobParams::restore)
        .cloned()
        .map(Box::new)
}

/// A drill job's stored sample (`jobs.params`, a [`DrillSpec`]); without
/// one the agent refuses the job.
///
/// [`DrillSpec`]: protocol::DrillSpec
fn drill_spec(job: &Job) -> Option<Box<protocol::DrillSpec>> {
    if job.kind != protocol::JobKind::Drill {
        return None;
    }
    job.params
        .as_ref()
        .and_then(JobParams::drill)
        .cloned()
        .map(Box::new)
}

/// A `catalog` job in flight: asked to yield or not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Yield {
    Running,
    Asked,
}

fn is_catalog(job: &QueuedJob) -> bool {
    job.run.kind == protocol::JobKind::Catalog
}

/// The queue.
#[derive(Debug)]
pub struct JobQueue {
    /// Jobs waiting to go out, in creation order.
    waiting: VecDeque<QueuedJob>,
    /// The job whose `command.run` is out and not finished.
    in_flight: Option<String>,
    /// Whether the job in flight is a `catalog` job that may yield, and
    /// whether it was told to already.
    in_flight_catalog: Option<Yield>,
    /// Jobs that became terminal during this session.
    finished: Recent<()>,
}

impl Default for JobQueue {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            in_flight: None,
            in_flight_catalog: None,
            finished: Recent::new(MAX_REMEMBERED_FINISHED),
        }
    }
}

impl JobQueue {
    /// Adds a job in creation order unless it is known already (waiting,
    /// in flight, or finished here). Returns whether it was added.
    pub fn enqueue(&mut self, job: QueuedJob) -> bool {
        let id = job.id();
        if self.finished.get(id).is_some()
            || self.in_flight.as_deref() == Some(id)
            || self.waiting.iter().any(|j| j.id() == id)
        {
            return false;
        }
        let at = self
            .waiting
            .iter()
            .position(|j| j.order() > job.order())
            .unwrap_or(self.waiting.len());
        self.waiting.insert(at, job);
        true
    }

    /// The next job to send, if none is in flight; it is in flight from
    /// now on. The oldest job that is not a `catalog` job goes first; a
    /// `catalog` job only when nothing else waits.
    pub fn take_next(&mut self) -> Option<QueuedJob> {
        if self.in_flight.is_some() {
            return None;
        }
        let at = self
            .waiting
            .iter()
            .position(|j| !is_catalog(j))
            .unwrap_or(0);
        let job = self.waiting.remove(at)?;
        self.in_flight = Some(job.id().to_owned());
        self.in_flight_catalog = is_catalog(&job).then_some(Yield::Running);
        Some(job)
    }

    /// The `catalog` job in flight, when another job waits and it has not
    /// been asked to yield yet; from now on it counts as asked.
    pub fn to_yield(&mut self) -> Option<String> {
        if self.in_flight_catalog != Some(Yield::Running)
            || !self.waiting.iter().any(|j| !is_catalog(j))
        {
            return None;
        }
        self.in_flight_catalog = Some(Yield::Asked);
        self.in_flight.clone()
    }

    /// A job is over (for whatever reason): remembered as finished, out
    /// of the queue, and its slot free.
    pub fn done(&mut self, job_id: &str) {
        self.finished.insert(job_id, ());
        self.waiting.retain(|j| j.id() != job_id);
        if self.in_flight.as_deref() == Some(job_id) {
            self.in_flight = None;
            self.in_flight_catalog = None;
        }
    }

    /// Drops a job from the waiting list; returns whether it is the one
    /// in flight (whose slot stays taken until [`done`](Self::done)).
    pub fn cancel(&mut self, job_id: &str) -> bool {
        self.waiting.retain(|j| j.id() != job_id);
        self.in_flight.as_deref() == Some(job_id)
    }

    /// Gives the slot back: the job in flight had not gone out (it waited
    /// for a lease) and waits again in its place.
    pub fn put_back(&mut self, job: QueuedJob) {
        if self.in_flight.as_deref() == Some(job.id()) {
            self.in_flight = None;
            self.in_flight_catalog = None;
        }
        self.enqueue(job);
    }

    /// Whether a job other than a `catalog` one waits.
    pub fn has_other_than_catalog(&self) -> bool {
        self.waiting.iter().any(|j| !is_catalog(j))
    }

    /// The job in flight.
    pub fn in_flight(&self) -> Option<&str> {
        self.in_flight.as_deref()
    }

    /// Jobs waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, created_at: i64) -> QueuedJob {
        job_of(id, created_at, protocol::JobKind::Check)
    }

    fn catalog(id: &str, created_at: i64) -> QueuedJob {
        job_of(id, created_at, protocol::JobKind::Catalog)
    }

    fn job_of(id: &str, created_at: i64, kind: protocol::JobKind) -> QueuedJob {
        QueuedJob {
            created_at,
            source_group_id: None,
            run: protocol::CommandRun {
                job_id: id.to_owned(),
                kind,
                args: Vec::new(),
                includes: Vec::new(),
                excludes: Vec::new(),
                tag: None,
                retention_policy: None,
                snapshot_id: None,
                restore: None,
                drill: None,
                dump: None,
            },
        }
    }

    fn ids(queue: &mut JobQueue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(j) = queue.take_next() {
            out.push(j.id().to_owned());
            queue.done(&out[out.len() - 1].clone());
        }
        out
    }

    /// Jobs go out in creation order (then id), whatever order they were
    /// queued in; a job already known is not queued twice.
    #[test]
    fn creation_order_and_no_duplicates() {
        let mut q = JobQueue::default();
        assert!(q.enqueue(job("c", 3)));
        assert!(q.enqueue(job("a", 1)));
        assert!(q.enqueue(job("b2", 2)));
        assert!(q.enqueue(job("b1", 2)));
        assert!(!q.enqueue(job("a", 1)));
        assert_eq!(q.waiting(), 4);
        assert_eq!(ids(&mut q), vec!["a", "b1", "b2", "c"]);
    }

    /// One job at a time: nothing goes out while one is in flight; its
    /// end frees the slot; a copy of the in-flight or a finished job is
    /// refused.
    #[test]
    fn one_in_flight() {
        let mut q = JobQueue::default();
        q.enqueue(job("a", 1));
        q.enqueue(job("b", 2));
        assert_eq!(q.take_next().map(|j| j.run.job_id), Some("a".into()));
        assert_eq!(q.in_flight(), Some("a"));
        assert_eq!(q.take_next(), None);
        assert!(!q.enqueue(job("a", 1)), "in flight");
        q.done("a");
        assert!(!q.enqueue(job("a", 1)), "finished here");
        assert_eq!(q.take_next().map(|j| j.run.job_id), Some("b".into()));
    }

    /// Cancelling drops a waiting job; for the job in flight it says so
    /// and keeps the slot until the job is done.
    #[test]
    fn cancel() {
        let mut q = JobQueue::default();
        q.enqueue(job("a", 1));
        q.enqueue(job("b", 2));
        q.take_next();
        assert!(!q.cancel("b"));
        assert_eq!(q.waiting(), 0);
        assert!(q.cancel("a"));
        assert_eq!(q.in_flight(), Some("a"));
        q.done("a");
        assert_eq!(q.in_flight(), None);
        assert_eq!(q.take_next(), None);
    }

    /// A job done while waiting (cancelled before it went out) leaves
    /// the queue and is not sent.
    #[test]
    fn done_while_waiting() {
        let mut q = JobQueue::default();
        q.enqueue(job("a", 1));
        q.enqueue(job("b", 2));
        q.done("a");
        assert_eq!(ids(&mut q), vec!["b"]);
    }

    /// A `catalog` job goes out only when nothing else waits, however old
    /// it is; among themselves catalog jobs keep creation order.
    #[test]
    fn catalog_jobs_go_last() {
        let mut q = JobQueue::default();
        q.enqueue(catalog("c1", 1));
        q.enqueue(job("b", 5));
        q.enqueue(catalog("c2", 2));
        q.enqueue(job("a", 9));
        assert_eq!(ids(&mut q), vec!["b", "a", "c1", "c2"]);
    }

    /// A `catalog` job in flight yields once another job waits, and is
    /// asked only once; other kinds never yield.
    #[test]
    fn catalog_yields_to_other_work() {
        let mut q = JobQueue::default();
        q.enqueue(catalog("c", 1));
        assert_eq!(q.take_next().map(|j| j.run.job_id), Some("c".into()));
        assert_eq!(q.to_yield(), None, "nothing waits");
        q.enqueue(catalog("c2", 2));
        assert_eq!(q.to_yield(), None, "another catalog job does not preempt");
        q.enqueue(job("backup", 3));
        assert_eq!(q.to_yield(), Some("c".to_owned()));
        assert_eq!(q.to_yield(), None, "asked once");
        assert_eq!(q.take_next(), None, "the slot stays taken until it ends");
        q.done("c");
        assert_eq!(q.take_next().map(|j| j.run.job_id), Some("backup".into()));
        q.enqueue(job("check", 4));
        assert_eq!(q.to_yield(), None, "a backup in flight never yields");
    }

    /// The memory of finished ids is bounded.
    #[test]
    fn finished_ids_are_bounded() {
        let mut q = JobQueue::default();
        for i in 0..=MAX_REMEMBERED_FINISHED {
            q.done(&format!("j{i}"));
        }
        assert!(q.finished.len() <= MAX_REMEMBERED_FINISHED);
    }
}
