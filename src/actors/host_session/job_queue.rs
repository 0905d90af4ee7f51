//! One host's job queue, as its session keeps it: jobs waiting in
//! creation order, the one `command.run` in flight (one job at a time per
//! host), and the ids of jobs that ended during the session (so a late
//! copy of a finished job is not sent again). Pure data: no actor, no
//! socket, no database; the session decides when to send.

use std::collections::{HashSet, VecDeque};

use crate::protocol;
use crate::store::models::Job;

/// Job ids remembered as finished in this session (guards re-dispatch of
/// a job whose report raced with the queue load); cleared past this.
pub const MAX_REMEMBERED_FINISHED: usize = 10_000;

/// A job waiting to go out: the `command.run` to send and its place in
/// the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    /// The job's creation time (Unix ms); with the id, the queue's order.
    pub created_at: i64,
    /// What goes on the wire.
    pub run: protocol::CommandRun,
}

impl QueuedJob {
    /// The queue entry of a job row.
    pub fn of(job: &Job) -> Self {
        QueuedJob {
            created_at: job.created_at,
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
        job_id: job.id.clone(),
        kind: job.kind,
        args: job.args.clone(),
        includes: job.includes.clone(),
        excludes: job.excludes.clone(),
        tag: job.tag.clone(),
        retention_policy: job.retention_policy.clone(),
        snapshot_id: job.snapshot_id.clone(),
        restore: restore_spec(job),
    }
}

/// A restore job's stored parameters (`jobs.params`, a [`RestoreSpec`]
/// without repository settings, which are added when the job is sent);
/// ones that do not parse are logged and left out, and the agent refuses
/// the job.
///
/// [`RestoreSpec`]: protocol::RestoreSpec
fn restore_spec(job: &Job) -> Option<Box<protocol::RestoreSpec>> {
    if job.kind != protocol::JobKind::Restore {
        return None;
    }
    let text = job.params.as_deref()?;
    serde_json::from_str(text)
        .map_err(
            |e| tracing::warn!(error = %e, id = %job.id, "stored restore parameters do not parse"),
        )
        .ok()
}

/// The queue.
#[derive(Debug, Default)]
pub struct JobQueue {
    /// Jobs waiting to go out, in creation order.
    waiting: VecDeque<QueuedJob>,
    /// The job whose `command.run` is out and not finished.
    in_flight: Option<String>,
    /// Jobs that became terminal during this session.
    finished: HashSet<String>,
}

impl JobQueue {
    /// Adds a job in creation order unless it is known already (waiting,
    /// in flight, or finished here). Returns whether it was added.
    pub fn enqueue(&mut self, job: QueuedJob) -> bool {
        let id = job.id();
        if self.finished.contains(id)
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
    /// now on.
    pub fn take_next(&mut self) -> Option<QueuedJob> {
        if self.in_flight.is_some() {
            return None;
        }
        let job = self.waiting.pop_front()?;
        self.in_flight = Some(job.id().to_owned());
        Some(job)
    }

    /// A job is over (for whatever reason): remembered as finished, out
    /// of the queue, and its slot free.
    pub fn done(&mut self, job_id: &str) {
        if self.finished.len() >= MAX_REMEMBERED_FINISHED {
            self.finished.clear();
        }
        self.finished.insert(job_id.to_owned());
        self.waiting.retain(|j| j.id() != job_id);
        if self.in_flight.as_deref() == Some(job_id) {
            self.in_flight = None;
        }
    }

    /// Drops a job from the waiting list; returns whether it is the one
    /// in flight (whose slot stays taken until [`done`](Self::done)).
    pub fn cancel(&mut self, job_id: &str) -> bool {
        self.waiting.retain(|j| j.id() != job_id);
        self.in_flight.as_deref() == Some(job_id)
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
        QueuedJob {
            created_at,
            run: protocol::CommandRun {
                job_id: id.to_owned(),
                kind: protocol::JobKind::Check,
                args: Vec::new(),
                includes: Vec::new(),
                excludes: Vec::new(),
                tag: None,
                retention_policy: None,
                snapshot_id: None,
                restore: None,
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
