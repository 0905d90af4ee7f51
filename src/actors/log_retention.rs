//! Log retention: the log lines of jobs that finished more than
//! `--log-retention-days` ago are deleted in batches of [`BATCH_LINES`],
//! each batch one [`RunWrite`] on the one writer, so agents' writes queue
//! behind at most one small batch and interleave with the pruning. While
//! there is more to prune the next batch follows after [`BUSY_PAUSE`];
//! once caught up the task looks again after [`IDLE_PAUSE`]. 0 days keeps
//! logs forever (the task is not started).
//!
//! The walk itself (cursor, budget) is `store::job_logs::prune_batch`.

use std::time::Duration;

use actix::Addr;

use super::persistence::{PersistError, Persistence, RunWrite};
use crate::store;

/// Log lines deleted per writer turn.
pub const BATCH_LINES: i64 = 5_000;
/// Pause between two batches while old lines remain.
pub const BUSY_PAUSE: Duration = Duration::from_millis(200);
/// Pause after catching up (or after an error) before looking again.
pub const IDLE_PAUSE: Duration = Duration::from_secs(600);
const DAY_MS: i64 = 86_400_000;

/// The finish time before which logs go, at `now` (Unix ms).
pub fn cutoff(now: i64, days: u32) -> i64 {
    now - i64::from(days) * DAY_MS
}

/// Starts the pruning task on the current actix system; nothing when
/// `days` is 0.
pub fn start(persistence: Addr<Persistence>, days: u32) {
    if days == 0 {
        return;
    }
    actix::spawn(async move {
        loop {
            let before = cutoff(store::now_ms(), days);
            let write = RunWrite::new("log retention", move |conn| {
                store::job_logs::prune_batch(conn, before, BATCH_LINES).map_err(PersistError::from)
            });
            let pause = match persistence.send(write).await {
                // The writer is gone: the server is stopping.
                Err(_) => break,
                Ok(Ok(outcome)) if !outcome.done => BUSY_PAUSE,
                Ok(Ok(outcome)) => {
                    if outcome.lines > 0 {
                        tracing::info!(
                            lines = outcome.lines,
                            jobs = outcome.jobs,
                            "old job logs pruned"
                        );
                    }
                    IDLE_PAUSE
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "log retention failed; trying again later");
                    IDLE_PAUSE
                }
            };
            tokio::time::sleep(pause).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cutoff is `days` whole days before now.
    #[test]
    fn cutoff_is_days_before_now() {
        assert_eq!(cutoff(100 * DAY_MS, 90), 10 * DAY_MS);
        assert_eq!(cutoff(5, 0), 5);
    }
}
