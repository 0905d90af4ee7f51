//! The database: one diesel schema over SQLite (default, bundled) and
//! PostgreSQL (`postgres` feature), the r2d2 pool, embedded migrations and
//! typed query functions, one module per concern.
//!
//! Usage: [`connect`] a database URL once at start (it creates the SQLite
//! file's directory, sets the SQLite pragmas on every pooled connection and
//! runs the migrations), then in blocking code take a connection with
//! `pool.get()` and call the free functions of the query modules, e.g.
//! `store::jobs::insert(&mut conn, &new_job)`. Every query function takes
//! `&mut DbConnection` and returns diesel's `QueryResult`; the callers map
//! errors to their own layer. Diesel is blocking: call these only from the
//! persistence actor or inside `web::block` (STYLE.md).
//!
//! Conventions: ids are UUID v7 text ([`new_id`]); times are Unix
//! milliseconds UTC ([`now_ms`]); JSON columns (lists, retention policy,
//! stats, labels, progress, audit detail) are TEXT that rows read and
//! write as typed values through [`Json`]; token columns hold the hex
//! SHA-256 of a token;
//! sealed secrets are stored as the bytes the caller gives.
//!
//! # Layout
//!
//! - `pool`: [`connect`], [`Pool`], the connection manager and SQLite pragmas;
//!   [`sqlite_build`]: the bundled SQLite's compile options, checked at start.
//! - `migrations`: the two embedded migration sets, [`run_migrations`] and
//!   its refusal of a database newer than this binary.
//! - [`schema`]: the hand-written diesel schema, portable across backends.
//! - [`types`]: TEXT-backed enums ([`Role`], [`JobStatus`], …) and [`Page`].
//! - [`json`]: [`Json`], the column type of every JSON column.
//! - [`models`]: row structs and their insert / update forms.
//! - [`users`], [`sessions`], [`api_tokens`], [`enrollment`], [`hosts`],
//!   [`repositories`], [`source_groups`], [`schedules`],
//!   [`schedule_versions`], [`config_versions`] (their pushes and acks in
//!   bulk: [`version_marks`]), [`jobs`], [`job_logs`], [`snapshots`],
//!   [`repo_stats`], [`missed_runs`], [`audit`]: the queries, one table
//!   (or concern) per module.
//! - [`schedule_replace`]: a host's schedule PUT, checks and writes as
//!   one statement on PostgreSQL.
//! - [`policies`]: fleet policies by label; [`policy_sync`] writes their
//!   groups and schedules onto the hosts they match.
//! - [`catalog`]: the snapshot catalog (entries, folder browsing, path
//!   search, `--catalog-keep`).
//! - [`health`]: service health checks, their latest results and history;
//!   [`host_metrics`]: heartbeat metrics as a time series, downsampled.
//! - [`discovery`]: each host's latest Docker discovery report.
//! - [`api_queries`]: paged reads the REST API needs (snapshots, stats).
//! - [`admin_queries`]: reads of the administration API (tokens, users)
//!   and the aggregates of `/metrics`.
//! - [`ui_queries`]: read-only overviews for the web UI (dashboard, calendar).
//! - [`channel`]: the agent channel's host-scoped job writes and the
//!   scheduler's fire de-duplication.

use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::result::Error as DieselError;
use diesel::sqlite::SqliteConnection;

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;

mod migrations;
mod pool;
mod pool_settings;

pub mod admin_queries;
pub mod api_queries;
pub mod api_tokens;
pub mod audit;
pub mod catalog;
pub mod channel;
pub mod checkpoint;
pub mod config_versions;
pub mod discovery;
pub mod drills;
pub mod enrollment;
pub mod health;
pub mod host_metrics;
pub mod host_state;
pub mod hosts;
pub mod job_logs;
#[cfg(feature = "postgres")]
mod job_logs_pg;
pub mod job_params;
pub mod jobs;
pub mod json;
pub mod leases;
pub mod missed_runs;
pub mod models;
pub mod notifications;
pub mod paged;
pub mod policies;
pub mod policy_sync;
pub mod prepared;
pub mod repo_stats;
pub mod repositories;
pub mod revision_memo;
pub mod schedule_replace;
pub mod schedule_set;
pub mod schedule_versions;
pub mod schedules;
pub mod schema;
pub mod sessions;
pub mod snapshots;
pub mod source_groups;
pub mod sqlite_build;
pub mod types;
pub mod ui_queries;
pub mod users;
pub mod verification;
pub mod version_marks;

pub use json::Json;
pub use migrations::{binary_schema, revert_all_migrations, run_migrations, run_migrations_until};
pub use pool::{
    connect, connect_with, DbManager, Pool, PooledConn, StoreError, TrackedConn, TESTED_AFTER_IDLE,
};
pub use pool_settings::{check_application_name, PlanCacheMode, PoolSettings};
pub use types::{
    JobKind, JobStatus, JobTrigger, LogStream, Page, Role, ScheduleKind, UnknownValue,
};

/// One database connection, SQLite or PostgreSQL, chosen at run time from
/// the database URL. Query functions take `&mut DbConnection` and run on
/// either; the derive makes the enum a diesel `Connection` whose backend is
/// [`MultiBackend`].
///
/// The `Pg` variant exists only with the `postgres` feature: `#[cfg]` on a
/// variant is applied before the derive sees the enum, so a SQLite-only
/// build neither compiles nor links any PostgreSQL code.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// The embedded default.
    Sqlite(SqliteConnection),
    /// Selected by a `postgres://` URL.
    #[cfg(feature = "postgres")]
    Pg(PgConnection),
}

/// The short name of the backend behind a connection: `"sqlite"` or
/// `"postgres"`.
pub fn backend_name(conn: &DbConnection) -> &'static str {
    match conn {
        DbConnection::Sqlite(_) => "sqlite",
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => "postgres",
    }
}

/// A trivial query, for readiness checks.
pub fn ping(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ())
}

/// The current time as Unix milliseconds UTC, the unit of every time column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new row id: a UUID v7 (time-ordered) in its hyphenated lowercase form.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Runs `f` in a write transaction. On SQLite it starts with
/// `BEGIN IMMEDIATE`, taking the write lock up front so that a transaction
/// that reads before it writes waits for other writers (busy timeout)
/// instead of failing with `SQLITE_BUSY` when it upgrades its lock; on
/// PostgreSQL it is an ordinary transaction. Inside an open transaction it
/// becomes a savepoint, like diesel's `transaction`.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    let begun = match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")
        }
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => return conn.transaction(f),
    };
    match begun {
        Ok(()) => {}
        Err(DieselError::AlreadyInTransaction) => return conn.transaction(f),
        Err(e) => return Err(e.into()),
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) =
                <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
            {
                // The caller's error says what went wrong; a failed rollback
                // leaves the connection marked broken, so r2d2 drops it.
                tracing::warn!(error = %rollback, "rollback after a failed write transaction failed");
            }
            Err(e)
        }
    }
}

/// Runs several reads of `f` together. On SQLite in one read transaction:
/// one snapshot for all of them, and one check of the connection's page
/// cache instead of one per statement. On PostgreSQL without one: under
/// its READ COMMITTED isolation a transaction gives no common snapshot
/// (each statement takes its own), so `BEGIN` and `COMMIT` would be two
/// round trips for nothing (issue 19: a greeting's reads). Callers that
/// need one value read before another rely on statement order, which
/// both give.
pub fn read_together<T, F>(conn: &mut DbConnection, f: F) -> diesel::QueryResult<T>
where
    F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
{
    match conn {
        DbConnection::Sqlite(_) => conn.transaction(f),
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => f(conn),
    }
}

/// Whether the connection's database takes writes from several
/// connections at once without them waiting for each other's
/// transactions (PostgreSQL); SQLite has one writer at a time.
pub fn writes_concurrently(conn: &DbConnection) -> bool {
    match conn {
        DbConnection::Sqlite(_) => false,
        #[cfg(feature = "postgres")]
        DbConnection::Pg(_) => true,
    }
}

/// Runs one expression against the concrete connection inside a
/// [`DbConnection`], binding it to `$c`. For the few statements diesel's
/// multi-backend cannot express (`ON CONFLICT` upserts and inserts that
/// ignore duplicates); the expression is compiled once per backend.
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::DbConnection::Sqlite($c) => $body,
            #[cfg(feature = "postgres")]
            $crate::store::DbConnection::Pg($c) => $body,
        }
    };
}
pub(crate) use per_backend;

/// Rows per multi-row INSERT: keeps every batch under SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters for the widest batched table.
pub(crate) const INSERT_CHUNK_ROWS: usize = 500;

/// Clamps a caller's page size to `1..=max`, so that a bad `limit` never
/// turns into an unbounded query.
pub(crate) fn clamp_limit(limit: i64, max: i64) -> i64 {
    limit.clamp(1, max)
}

/// The total of a list whose page of `len` rows was read with `LIMIT
/// limit OFFSET offset`, counted by `count` only when the page cannot tell
/// it: a short page that is not past the end holds the last rows, so the
/// total is `offset + len`. Most of a host's lists (its jobs, snapshots,
/// missed runs) fit on their first page, and on PostgreSQL every statement
/// saved is a round trip (the host page, BENCHMARKS.md).
pub(crate) fn page_total(
    len: usize,
    limit: i64,
    offset: i64,
    count: impl FnOnce() -> diesel::QueryResult<i64>,
) -> diesel::QueryResult<i64> {
    match known_total(len, limit, offset) {
        Some(total) => Ok(total),
        None => count(),
    }
}

/// The page a caller's `limit` and `offset` ask for: the limit clamped to
/// `1..=MAX_PAGE`, a negative offset as 0.
pub(crate) fn page_window(limit: i64, offset: i64) -> (i64, i64) {
    (clamp_limit(limit, MAX_PAGE), offset.max(0))
}

/// The total a page of `len` rows read with `LIMIT limit OFFSET offset`
/// tells by itself ([`page_total`]), if it does.
pub(crate) fn known_total(len: usize, limit: i64, offset: i64) -> Option<i64> {
    let len = len as i64;
    (len < limit && (len > 0 || offset == 0)).then_some(offset + len)
}

/// The largest page any list query returns.
pub const MAX_PAGE: i64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    /// A short page knows its total; a full page, or an empty one past
    /// the end, asks for a count (and its error is the list's).
    #[test]
    fn a_page_counts_only_when_it_cannot_tell() {
        let never = || -> diesel::QueryResult<i64> { panic!("counted") };
        assert_eq!(page_total(2, 5, 10, never).unwrap(), 12);
        assert_eq!(page_total(0, 5, 0, never).unwrap(), 0);
        assert_eq!(page_total(2, 2, 0, || Ok(40)).unwrap(), 40);
        assert_eq!(page_total(0, 5, 100, || Ok(7)).unwrap(), 7);
        assert!(page_total(1, 1, 0, || Err(DieselError::NotFound)).is_err());
    }

    /// Ids are UUID v7 and sort by creation time.
    #[test]
    fn new_ids_are_v7_and_ordered() {
        let a = new_id();
        let b = new_id();
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(a < b, "{a} then {b}");
    }

    /// `now_ms` is in milliseconds (a 2020s date, not seconds or micros).
    #[test]
    fn now_is_milliseconds() {
        let now = now_ms();
        assert!(now > 1_600_000_000_000 && now < 10_000_000_000_000, "{now}");
    }

    /// A page limit is clamped into range.
    #[test]
    fn limits_are_clamped() {
        assert_eq!(clamp_limit(0, 100), 1);
        assert_eq!(clamp_limit(-5, 100), 1);
        assert_eq!(clamp_limit(50, 100), 50);
        assert_eq!(clamp_limit(5000, 100), 100);
    }
}
