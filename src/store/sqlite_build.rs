//! What the bundled SQLite was compiled with, checked at start-up.
//!
//! The repository's `.cargo/config.toml` builds the bundled SQLite with
//! `SQLITE_ENABLE_QPSG` (the query planner stability guarantee on by
//! default). Without it, SQLite lets the planner read a bound `LIMIT ?`
//! and marks the statement to be re-prepared whenever that parameter is
//! bound again. Diesel binds every `.first()` and `.limit(n)` that way and
//! binds afresh at each execution, so those statements were parsed and
//! planned again every time: the prepared-statement cache never hit them
//! (`sqlite3Reprepare` under `sqlite3_step`, 12 % of the server's CPU when
//! 15,000 agents with 20 policies each said hello; BENCHMARKS.md). With
//! QPSG the plan never depends on a bound value; nothing in this schema
//! needs that (no partial indexes, no `ANALYZE` statistics, `LIKE` only
//! as a substring search).
//!
//! A binary built outside the repository's configuration (another
//! workspace, a distribution's own build) works the same, only slower:
//! [`plans_are_stable`] tells, and `store::connect` warns once.

use diesel::sql_types::Bool;
use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;

/// Whether the linked SQLite keeps a plan whatever the bound values
/// (compiled with `SQLITE_ENABLE_QPSG`).
pub fn plans_are_stable(conn: &mut SqliteConnection) -> diesel::QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Used {
        #[diesel(sql_type = Bool)]
        used: bool,
    }
    let row: Used = diesel::sql_query("SELECT sqlite_compileoption_used('ENABLE_QPSG') AS used")
        .get_result(conn)?;
    Ok(row.used)
}

/// Logs a warning when [`plans_are_stable`] is false (or cannot be asked).
pub fn warn_unless_plans_are_stable(conn: &mut SqliteConnection) {
    match plans_are_stable(conn) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "this build's SQLite was compiled without SQLITE_ENABLE_QPSG: statements with \
             LIMIT are re-prepared at every execution (slower, not wrong); build from the \
             repository so that .cargo/config.toml applies"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read SQLite's compile options"),
    }
}

#[cfg(test)]
mod tests {
    use diesel::Connection;

    use super::*;

    /// This repository's builds have the option (`.cargo/config.toml`).
    #[test]
    fn the_bundled_sqlite_keeps_its_plans() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        assert!(plans_are_stable(&mut conn).unwrap());
    }
}
