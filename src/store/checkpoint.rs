//! SQLite WAL checkpoints off the writer's latency path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses
//! `wal_autocheckpoint` pages, on the committing connection: the one
//! writer. At 8,192 pages it took 110–260 ms about every 0.9 s under 200
//! run-nows/s (BENCHMARKS.md, "dispatch"), and whichever write was in
//! that commit (a run-now, a `job.finished`) waited for it. So the pool's
//! automatic checkpoint is only a safety net (see `pool.rs`) and the
//! server checkpoints in two steps:
//!
//! 1. [`Checkpointer`], a thread of its own, runs a *passive* checkpoint
//!    every [`CHECKPOINT_INTERVAL`]. A passive checkpoint takes no write
//!    lock: the writer keeps committing into the WAL while it copies
//!    pages into the database file and fsyncs it.
//! 2. Under a steady write load that alone never lets the WAL start over
//!    (SQLite restarts it at the first write after a checkpoint that
//!    copied *every* frame, and frames keep arriving while the thread
//!    works), so once the WAL holds [`TAIL_FRAMES`] frames the thread
//!    catches up with a few more passes (each shorter than the one
//!    before) and raises [`Checkpointer::tail_wanted`]; the writer, on
//!    its next flush tick, runs [`checkpoint_tail`]: a passive checkpoint
//!    of the few frames that arrived meanwhile, after which its next
//!    write restarts the WAL from the beginning.
//!
//! Durability is unchanged: a commit is durable once it is in the WAL
//! (`synchronous = NORMAL` as before), whichever thread later copies it.
//! PostgreSQL needs none of this; the thread ends at once there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::sql_types::Integer;
use diesel::RunQueryDsl;

use super::{DbConnection, Pool};

/// How often the checkpoint thread copies the WAL into the database.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// WAL frames (pages) from which the writer is asked to copy the last
/// few itself so that the WAL starts over (128 MiB at 4 KiB pages).
pub const TAIL_FRAMES: i64 = 32_768;

/// What one passive checkpoint did: `PRAGMA wal_checkpoint`'s row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::QueryableByName)]
pub struct CheckpointOutcome {
    /// 1 when another checkpoint was running (nothing was done).
    #[diesel(sql_type = Integer)]
    pub busy: i32,
    /// Frames in the WAL (since it last started over).
    #[diesel(sql_type = Integer)]
    pub log: i32,
    /// Frames of them now copied into the database file.
    #[diesel(sql_type = Integer)]
    pub checkpointed: i32,
}

/// Runs one passive checkpoint; `None` on PostgreSQL.
pub fn checkpoint_passive(
    conn: &mut DbConnection,
) -> diesel::QueryResult<Option<CheckpointOutcome>> {
    match conn {
        DbConnection::Sqlite(sqlite) => diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result(sqlite)
            .map(Some),
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => Ok(None),
    }
}

/// The writer's part (step 2 of the module documentation): if the
/// checkpoint thread asked for it, copies the WAL's last frames on the
/// writer's connection, between two writes.
pub fn checkpoint_tail(conn: &mut DbConnection, wanted: &AtomicBool) {
    if !wanted.swap(false, Ordering::AcqRel) {
        return;
    }
    let started = Instant::now();
    match checkpoint_passive(conn) {
        Ok(outcome) => tracing::debug!(
            ?outcome,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "WAL tail checkpointed by the writer"
        ),
        Err(e) => tracing::warn!(error = %e, "checkpointing the WAL's tail failed"),
    }
}

/// The checkpoint thread (step 1). Dropping it stops the thread after a
/// last checkpoint.
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    tail_wanted: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Starts the thread on connections from `pool`, every `interval`.
    pub fn start(pool: Pool, interval: Duration) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let tail_wanted = Arc::new(AtomicBool::new(false));
        let wanted = tail_wanted.clone();
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || loop {
                let last = match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => false,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                };
                if !run_once(&pool, &wanted, TAIL_FRAMES) || last {
                    break;
                }
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            tail_wanted,
        })
    }

    /// Raised when the writer should run [`checkpoint_tail`].
    pub fn tail_wanted(&self) -> &AtomicBool {
        &self.tail_wanted
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the WAL checkpoint thread panicked");
            }
        }
    }
}

/// One pass of the thread; false when there is nothing to do on this
/// backend (PostgreSQL), which ends the thread. A WAL of `tail_frames`
/// frames or more is caught up
/// with further passes (each copies only what arrived during the one
/// before, so they get shorter) before the writer is asked for the last
/// few frames.
fn run_once(pool: &Pool, tail_wanted: &AtomicBool, tail_frames: i64) -> bool {
    let started = Instant::now();
    let mut outcome = match pass(pool) {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, "checkpointing the WAL failed; trying again");
            return true;
        }
    };
    if i64::from(outcome.log) >= tail_frames {
        for _ in 0..CATCH_UP_PASSES {
            let before = outcome.log;
            match pass(pool) {
                Ok(Some(next)) => outcome = next,
                Ok(None) | Err(_) => break,
            }
            if i64::from(outcome.log - before) <= SMALL_TAIL_FRAMES {
                break;
            }
        }
        tail_wanted.store(true, Ordering::Release);
    }
    tracing::trace!(
        ?outcome,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "WAL checkpointed"
    );
    true
}

/// Passes after the first that catch a long WAL up.
const CATCH_UP_PASSES: usize = 4;

/// Frames arrived during a catch-up pass below which the writer can copy
/// the rest in a few milliseconds.
const SMALL_TAIL_FRAMES: i64 = 256;

/// One passive checkpoint on a pooled connection.
fn pass(pool: &Pool) -> Result<Option<CheckpointOutcome>, String> {
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    checkpoint_passive(&mut conn).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;

    /// Writes `rows` rows of 1 KiB into a scratch table.
    fn write_rows(conn: &mut DbConnection, rows: usize) {
        let DbConnection::Sqlite(sqlite) = conn else {
            panic!("expected SQLite");
        };
        sqlite
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS scratch (v BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO scratch (v) SELECT randomblob(1024) FROM n;"
            ))
            .unwrap();
    }

    fn db_len(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("t.db")).unwrap().len()
    }

    /// Commits leave their pages in the WAL (no checkpoint on the writer's
    /// path); the thread copies them into the database file, and stopping
    /// it makes a last pass.
    #[test]
    fn the_thread_not_the_writer_copies_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let pool =
            super::super::connect(&dir.path().join("t.db").display().to_string(), 2).unwrap();
        let before = db_len(dir.path());
        write_rows(&mut pool.get().unwrap(), 2000);
        assert_eq!(db_len(dir.path()), before, "a commit checkpointed");
        let checkpointer = Checkpointer::start(pool.clone(), Duration::from_secs(3600)).unwrap();
        drop(checkpointer);
        assert!(db_len(dir.path()) > before + 2000 * 1024);
        // Everything was copied: a new pass finds nothing left.
        let again = checkpoint_passive(&mut pool.get().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(again.log, again.checkpointed);
    }

    /// A long WAL (here: 200 frames) asks the writer for its tail; after the writer's tail
    /// checkpoint the next write starts the WAL over.
    #[test]
    fn a_long_wal_starts_over_after_the_writers_tail() {
        let dir = tempfile::tempdir().unwrap();
        let pool =
            super::super::connect(&dir.path().join("t.db").display().to_string(), 2).unwrap();
        let mut conn = pool.get().unwrap();
        let wanted = AtomicBool::new(false);
        // A small WAL: no request.
        write_rows(&mut conn, 10);
        assert!(run_once(&pool, &wanted, 200));
        assert!(!wanted.load(Ordering::Acquire));
        // Over 200 frames (1 KiB rows, 4 KiB pages): the writer is asked.
        write_rows(&mut conn, 1000);
        assert!(run_once(&pool, &wanted, 200));
        assert!(wanted.load(Ordering::Acquire));
        checkpoint_tail(&mut conn, &wanted);
        assert!(!wanted.load(Ordering::Acquire));
        write_rows(&mut conn, 1);
        let after = checkpoint_passive(&mut conn).unwrap().unwrap();
        assert!(after.log < 100, "the WAL did not start over: {after:?}");
    }
}
