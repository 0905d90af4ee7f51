//! The writer's connection, kept between writes (issue 19 §2).
//!
//! The one writer keeps its connection instead of taking one from the
//! pool for every turn, and tests it only when it has been idle for
//! [`IDLE_BEFORE_TEST`] (a PostgreSQL restart meanwhile is seen before
//! the write). The pool's other connections follow the same rule since
//! (`store::TrackedConn`); keeping the connection still saves the pool's
//! lock and bookkeeping on every writer turn. A write that fails gives
//! the connection back to the pool (marked by its failed query, so tested
//! on its next checkout), so a connection that broke under load is used
//! for one failed write at most, which its sender retries (PROTOCOL.md:
//! an unacked message is re-sent).

use std::time::{Duration, Instant};

use diesel::r2d2::R2D2Connection;

use super::PersistError;
use crate::store::{self, Pool, PooledConn};

/// A kept connection idle for this long is tested before its next write.
pub(super) const IDLE_BEFORE_TEST: Duration = store::TESTED_AFTER_IDLE;

/// The pool and the connection kept from it.
pub(super) struct HeldConn {
    pool: Pool,
    /// The kept connection and when its last write succeeded.
    held: Option<(PooledConn, Instant)>,
}

impl HeldConn {
    pub(super) fn new(pool: Pool) -> Self {
        HeldConn { pool, held: None }
    }

    /// Runs `f` with the kept connection (or a pooled one) and keeps the
    /// connection if `f` succeeded.
    pub(super) fn run<T, E>(
        &mut self,
        f: impl FnOnce(&mut store::DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<PersistError>,
    {
        let mut conn = self.take()?;
        let result = f(&mut conn);
        if result.is_ok() && !conn.is_broken() {
            self.held = Some((conn, Instant::now()));
        }
        result
    }

    /// The kept connection if fresh (or alive), else one from the pool.
    fn take(&mut self) -> Result<PooledConn, PersistError> {
        if let Some((mut conn, used)) = self.held.take() {
            if used.elapsed() < IDLE_BEFORE_TEST || store::ping(&mut conn).is_ok() {
                return Ok(conn);
            }
            // Dropped: the pool's own check discards it on its next
            // checkout.
        }
        self.pool.get().map_err(|e| {
            tracing::error!(error = %e, "the writer has no database connection");
            PersistError::Unavailable(e.to_string())
        })
    }

    /// Gives the kept connection back to the pool (the writer stops).
    pub(super) fn release(&mut self) {
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &tempfile::TempDir) -> Pool {
        store::connect(dir.path().join("t.db").to_str().unwrap(), 2).unwrap()
    }

    /// A write keeps its connection out of the pool for the next one; a
    /// failed write gives it back; `release` gives it back too.
    #[test]
    fn keeps_the_connection_between_writes() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let mut held = HeldConn::new(pool.clone());
        let idle = || pool.state().idle_connections;
        let before = idle();
        let n: Result<usize, PersistError> = held.run(|c| {
            Ok(diesel::RunQueryDsl::execute(
                diesel::sql_query("SELECT 1"),
                c,
            )?)
        });
        assert_eq!(n.unwrap(), 0);
        assert_eq!(idle(), before - 1, "kept, not returned");
        let again: Result<(), PersistError> = held.run(|_| Ok(()));
        assert!(again.is_ok());
        assert_eq!(idle(), before - 1, "the same connection, no second one");

        let failed: Result<(), PersistError> =
            held.run(|_| Err(PersistError::Database("refused".into())));
        assert!(failed.is_err());
        assert_eq!(idle(), before, "a failed write gives it back");

        let _: Result<(), PersistError> = held.run(|_| Ok(()));
        assert_eq!(idle(), before - 1);
        held.release();
        assert_eq!(idle(), before);
    }

    /// A connection idle past [`IDLE_BEFORE_TEST`] is tested before it is
    /// used again, and still used when alive.
    #[test]
    fn tests_a_connection_idle_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir);
        let mut held = HeldConn::new(pool.clone());
        let _: Result<(), PersistError> = held.run(|_| Ok(()));
        let (_, used) = held.held.as_mut().unwrap();
        *used = used.checked_sub(IDLE_BEFORE_TEST * 2).unwrap();
        let before = pool.state().idle_connections;
        let ok: Result<(), PersistError> = held.run(|_| Ok(()));
        assert!(ok.is_ok());
        assert_eq!(pool.state().idle_connections, before, "the tested one");
    }
}
