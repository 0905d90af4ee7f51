//! Opening the database: the URL rules, the r2d2 connection manager, the
//! SQLite pragmas set on every pooled connection, and [`StoreError`].
//!
//! `postgres://` / `postgresql://` select PostgreSQL (with the `postgres`
//! feature); `sqlite://PATH`, `sqlite:PATH` or a plain path select SQLite.
//! The manager establishes the concrete connection itself rather than
//! going through the derived `DbConnection::establish`, which tries every
//! backend in turn and throws each one's error away: here the backend is
//! decided once, from the URL, and a refused connection keeps its reason.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::{Connection, Instrumentation, InstrumentationEvent, SimpleConnection};
use diesel::r2d2::{CustomizeConnection, HandleError, R2D2Connection};
use diesel::sqlite::SqliteConnection;

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;

use super::pool_settings::PoolSettings;
use super::DbConnection;

/// The connection pool every caller shares. Build it with [`connect`].
pub type Pool = r2d2::Pool<DbManager>;

/// A connection checked out of the [`Pool`]; derefs to [`DbConnection`].
pub type PooledConn = r2d2::PooledConnection<DbManager>;

/// A connection given back to the pool less than this long ago, whose
/// queries all succeeded, is handed out again without a test query.
pub const TESTED_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pooled connection and what the pool knows of its health; derefs to
/// [`DbConnection`].
///
/// r2d2 tests every connection it hands out (`test_on_check_out`: a
/// `SELECT 1`), which on PostgreSQL is one more round trip for every
/// request, greeting and read: a third of the statements a 15,000-agent
/// connect sent (issue 19). The test only matters for a connection that
/// may have died since it was last used: one that sat idle (a PostgreSQL
/// restart meanwhile) or one whose last use failed. So a connection is
/// tested when it has been idle for [`TESTED_AFTER_IDLE`] or when one of
/// its queries failed since its last test (any error: a lost connection
/// or a refused statement alike); otherwise it is handed out as is. The
/// writer's kept connection follows the same rule
/// (`actors::persistence::held_conn`). What it costs: a connection that
/// dies within a second of a successful use (the database restarted
/// under load) fails the one request that next uses it, which reports
/// the error; that failure marks it, and its next checkout tests it and
/// replaces it. HikariCP skips its check the same way (within 500 ms of
/// a use).
pub struct TrackedConn {
    conn: DbConnection,
    /// When the pool last took it back (or opened it).
    idle_since: Instant,
    /// Set by the connection's instrumentation when a query fails.
    failed: Arc<AtomicBool>,
}

impl TrackedConn {
    /// Whether the next checkout must test it first.
    fn needs_test(&self, now: Instant) -> bool {
        self.failed.swap(false, Ordering::Relaxed)
            || now.duration_since(self.idle_since) >= TESTED_AFTER_IDLE
    }
}

impl Deref for TrackedConn {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl DerefMut for TrackedConn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// Marks its connection when a query fails (see [`TrackedConn`]).
struct MarkFailures(Arc<AtomicBool>);

impl Instrumentation for MarkFailures {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error: Some(_), .. } = event {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// SQLite waits this long for a lock held by another connection before it
/// gives up with "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

/// WAL pages after which a commit checkpoints the WAL into the database
/// itself (SQLite's default is 1000, about 4 MiB). Each such checkpoint
/// fsyncs the WAL and the database file inline in the committing writer:
/// at 8,192 pages that stalled a write for 110–260 ms about every second
/// under 200 run-nows/s. The server checkpoints on a thread of its own
/// instead (`store::checkpoint`), so this is only the safety net of a
/// process without it (admin commands, bulk seeding): 65,536 pages is
/// 256 MiB of WAL.
const SQLITE_WAL_AUTOCHECKPOINT_PAGES: u32 = 65_536;

/// A WAL file larger than this is truncated back to it when the WAL
/// starts over, so one burst does not leave a huge file behind. The
/// truncation runs in the write that starts the WAL over: at 64 MiB, a
/// 160 MiB WAL made that write take 120 ms (BENCHMARKS.md, "dispatch"),
/// so the limit sits above the WAL the checkpoint thread lets grow
/// (`store::checkpoint::TAIL_FRAMES`, 128 MiB, plus its catch-up).
const SQLITE_JOURNAL_SIZE_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// Why the store could not be opened or migrated. Every message is one line
/// and names the database URL without its password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend this program speaks, or is unusable.
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, password removed.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `postgres://` URL given to a SQLite-only build.
    #[error("this build has no PostgreSQL support (built without the `postgres` feature)")]
    PostgresUnsupported,
    /// A pool needs at least one connection.
    #[error("invalid database pool size {0}: it must be at least 1")]
    InvalidPoolSize(u32),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the database directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The SQLite file could not be created with its private mode.
    #[error("cannot create the database file {}: {source}", path.display())]
    CreateFile {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The database refused or could not be reached.
    #[error("cannot connect to database {url}: {message}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// The driver's reason, on one line, password removed.
        message: String,
    },
    /// Applying or reverting migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The database has a migration newer than any this binary carries: a
    /// newer restic-manager made it. Refused before anything is applied.
    #[error(
        "database schema {database} is newer than this restic-manager {binary_version} \
         (schema {binary_schema}) — upgrade restic-manager"
    )]
    NewerDatabase {
        /// The database's newest migration this binary does not know.
        database: String,
        /// This binary's version.
        binary_version: &'static str,
        /// This binary's newest migration.
        binary_schema: String,
    },
    /// The database has a migration this binary does not carry, older than
    /// its newest one (another build made it). Refused before anything is
    /// applied.
    #[error(
        "database schema has migration {database}, which this restic-manager {binary_version} \
         (schema {binary_schema}) does not know — run the restic-manager build that made it"
    )]
    UnknownMigration {
        /// The database's newest migration this binary does not know.
        database: String,
        /// This binary's version.
        binary_version: &'static str,
        /// This binary's newest migration.
        binary_schema: String,
    },
    /// A query during start-up failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Which database a URL selects, decided once when the pool is built.
#[derive(Clone)]
enum Target {
    /// A SQLite file (or a `file:` URI handed to SQLite as is).
    Sqlite { path: String },
    /// A PostgreSQL URL, handed to libpq as is.
    #[cfg(feature = "postgres")]
    Postgres { url: String },
}

impl Target {
    /// Classifies a database URL (see the module documentation).
    fn parse(database_url: &str) -> Result<Target, StoreError> {
        let invalid = |reason| StoreError::InvalidUrl {
            url: crate::redact::url(database_url),
            reason,
        };
        if database_url.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        let lower = database_url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Target::Postgres {
                url: database_url.to_owned(),
            });
            #[cfg(not(feature = "postgres"))]
            return Err(StoreError::PostgresUnsupported);
        }
        let path = if lower.starts_with("sqlite://") {
            &database_url["sqlite://".len()..]
        } else if lower.starts_with("sqlite:") {
            &database_url["sqlite:".len()..]
        } else if has_url_scheme(database_url) {
            return Err(invalid(
                "unsupported scheme; use postgres://…, sqlite://PATH or a file path",
            ));
        } else {
            database_url
        };
        if path.is_empty() {
            return Err(invalid("the SQLite path is empty"));
        }
        let lower_path = path.to_ascii_lowercase();
        if lower_path == ":memory:"
            || lower_path.starts_with("file::memory:")
            || lower_path.contains("mode=memory")
        {
            return Err(invalid(
                "an in-memory SQLite database cannot back a connection pool \
                 (every connection would get its own empty database); give a file path",
            ));
        }
        Ok(Target::Sqlite {
            path: path.to_owned(),
        })
    }

    /// The URL or path this target opens, for messages (password removed).
    fn display(&self) -> String {
        match self {
            Target::Sqlite { path } => path.clone(),
            #[cfg(feature = "postgres")]
            Target::Postgres { url } => crate::redact::url(url),
        }
    }

    /// The URL or path exactly as given.
    fn raw(&self) -> &str {
        match self {
            Target::Sqlite { path } => path,
            #[cfg(feature = "postgres")]
            Target::Postgres { url } => url,
        }
    }

    /// Text that must never appear in a message: the URL's password, raw
    /// and percent-decoded (nothing for a plain path).
    fn secrets(&self) -> Vec<String> {
        match url_password(self.raw()) {
            Some(raw) if !raw.is_empty() => vec![raw.to_owned(), percent_decode(raw)],
            _ => Vec::new(),
        }
    }
}

/// True when `s` starts with `scheme://` (letters, digits, `+ - .`).
fn has_url_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(end) if end >= 2 => {
            let scheme = &s[..end];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        _ => false,
    }
}

/// The password in a URL's user info, if any (still percent-encoded).
fn url_password(url: &str) -> Option<&str> {
    let (start, end) = crate::redact::authority_range(url)?;
    let authority = &url[start..end];
    let userinfo = &authority[..authority.rfind('@')?];
    let colon = userinfo.find(':')?;
    Some(&userinfo[colon + 1..])
}

/// Decodes `%XX` escapes; anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of one hexadecimal digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Makes a driver message safe to show: one line, no password.
fn clean_message(message: &str, secrets: &[String]) -> String {
    let mut one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    for secret in secrets {
        one_line = one_line.replace(secret.as_str(), "***");
    }
    one_line
}

/// Creates the directory a SQLite file lives in, if the path has one
/// (mode 0700 on unix), and the file itself, empty and mode 0600, if it
/// does not exist yet: the database is never readable by others, whatever
/// the umask (issue 15 B.8). SQLite gives its `-wal` and `-shm` files the
/// database file's mode. Existing ones are left as they are.
fn create_private_file(path: &str) -> Result<(), StoreError> {
    if path.to_ascii_lowercase().starts_with("file:") {
        // A SQLite URI: its options, not a plain path; SQLite opens it as is.
        return Ok(());
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        crate::crypto::create_private_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: PathBuf::from(path),
            source,
        }),
    }
}

/// The r2d2 connection manager: opens a connection to the one backend the
/// URL selected.
#[derive(Clone)]
pub struct DbManager {
    target: Target,
}

impl fmt::Debug for DbManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbManager")
            .field("database", &self.target.display())
            .finish()
    }
}

impl DbManager {
    /// A [`StoreError::Connect`] for this database, cleaned of secrets.
    fn connect_error(&self, error: &dyn fmt::Display) -> StoreError {
        StoreError::Connect {
            url: self.target.display(),
            message: clean_message(&error.to_string(), &self.target.secrets()),
        }
    }
}

impl r2d2::ManageConnection for DbManager {
    type Connection = TrackedConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<TrackedConn, Self::Error> {
        let mut conn = match &self.target {
            Target::Sqlite { path } => SqliteConnection::establish(path).map(DbConnection::Sqlite),
            #[cfg(feature = "postgres")]
            Target::Postgres { url } => PgConnection::establish(url).map(DbConnection::Pg),
        }
        .map_err(diesel::r2d2::Error::ConnectionError)?;
        let failed = Arc::new(AtomicBool::new(false));
        conn.set_instrumentation(MarkFailures(Arc::clone(&failed)));
        Ok(TrackedConn {
            conn,
            idle_since: Instant::now(),
            failed,
        })
    }

    fn is_valid(&self, conn: &mut TrackedConn) -> Result<(), Self::Error> {
        if !conn.needs_test(Instant::now()) {
            return Ok(());
        }
        conn.conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    /// Called as the pool takes a connection back.
    fn has_broken(&self, conn: &mut TrackedConn) -> bool {
        conn.idle_since = Instant::now();
        std::thread::panicking() || conn.conn.is_broken()
    }
}

/// Sets the per-connection SQLite pragmas each time r2d2 opens a
/// connection (busy timeout first, so that the journal-mode switch itself
/// waits for a lock instead of failing), or PostgreSQL's session settings
/// ([`PoolSettings::postgres_setup`]).
#[derive(Debug, Clone)]
struct ConnectionSetup {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    postgres: String,
}

impl CustomizeConnection<TrackedConn, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut TrackedConn) -> Result<(), diesel::r2d2::Error> {
        match &mut conn.conn {
            DbConnection::Sqlite(sqlite) => sqlite
                .batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT_PAGES};
                     PRAGMA journal_size_limit = {SQLITE_JOURNAL_SIZE_LIMIT_BYTES};
                     PRAGMA foreign_keys = ON;"
                ))
                .map_err(diesel::r2d2::Error::QueryError),
            #[cfg(feature = "postgres")]
            DbConnection::Pg(pg) => pg
                .batch_execute(&self.postgres)
                .map_err(diesel::r2d2::Error::QueryError),
        }
    }
}

/// Sends r2d2's background connection errors to `tracing` (its default
/// handler writes to the `log` crate, which this program does not collect).
#[derive(Debug)]
struct TracingErrorHandler {
    database: String,
    secrets: Vec<String>,
}

impl HandleError<diesel::r2d2::Error> for TracingErrorHandler {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::error!(
            database = %self.database,
            error = %clean_message(&error.to_string(), &self.secrets),
            "database pool could not open a connection"
        );
    }
}

/// Opens the database at `database_url` with up to `max_size` pooled
/// connections and the other settings at their defaults; see
/// [`connect_with`].
pub fn connect(database_url: &str, max_size: u32) -> Result<Pool, StoreError> {
    connect_with(database_url, &PoolSettings::with_size(max_size))
}

/// Opens the database at `database_url` with `settings`, creating the
/// SQLite file's directory and running the pending migrations first.
///
/// One connection is opened and migrated by hand before the pool is built,
/// so an unreachable or misconfigured database fails at once with the
/// driver's reason instead of after r2d2's connection timeout.
///
/// A database that goes away later (a PostgreSQL restart) is survived:
/// r2d2 checks a connection that sat idle (or whose last use failed) as
/// it is handed out and replaces a broken one ([`TrackedConn`]), so
/// callers see errors while the database is down, for at most
/// `connection_timeout` per request, and once per connection that died
/// within a second of its last use.
pub fn connect_with(database_url: &str, settings: &PoolSettings) -> Result<Pool, StoreError> {
    let max_size = settings.max_size;
    if max_size == 0 {
        return Err(StoreError::InvalidPoolSize(max_size));
    }
    let target = Target::parse(database_url)?;
    match &target {
        Target::Sqlite { path } => create_private_file(path)?,
        #[cfg(feature = "postgres")]
        Target::Postgres { .. } => {}
    }
    let manager = DbManager { target };
    let setup = ConnectionSetup {
        postgres: settings.postgres_setup(),
    };
    {
        use r2d2::ManageConnection;
        let mut first = manager.connect().map_err(|e| manager.connect_error(&e))?;
        setup
            .on_acquire(&mut first)
            .map_err(|e| manager.connect_error(&e))?;
        let applied = super::run_migrations(&mut first)?;
        // Hosts from before the natural sort key (or bulk-loaded) get theirs.
        let sort_keys = super::hosts::fill_sort_keys(&mut first)?;
        match &mut first.conn {
            DbConnection::Sqlite(sqlite) => {
                super::sqlite_build::warn_unless_plans_are_stable(sqlite)
            }
            #[cfg(feature = "postgres")]
            DbConnection::Pg(_) => {}
        }
        tracing::info!(
            database = %manager.target.display(),
            backend = super::backend_name(&first),
            migrations_applied = applied,
            sort_keys_filled = sort_keys,
            "database ready"
        );
    }
    let handler = TracingErrorHandler {
        database: manager.target.display(),
        secrets: manager.target.secrets(),
    };
    let checker = manager.clone();
    r2d2::Pool::builder()
        .max_size(max_size)
        .connection_timeout(settings.connection_timeout)
        .idle_timeout(settings.idle_timeout)
        .connection_customizer(Box::new(setup))
        .error_handler(Box::new(handler))
        .build(manager)
        .map_err(|e| checker.connect_error(&e))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A connection is tested on checkout after a second idle or after a
    /// failed query (once), not when it was just given back healthy.
    #[test]
    fn a_connection_is_tested_only_when_idle_or_after_a_failure() {
        use diesel::RunQueryDsl;
        use r2d2::ManageConnection;
        let dir = tempfile::tempdir().unwrap();
        let manager = DbManager {
            target: Target::parse(&dir.path().join("t.db").display().to_string()).unwrap(),
        };
        let mut conn = manager.connect().unwrap();
        let now = Instant::now();
        assert!(!conn.needs_test(now), "just opened");
        assert!(!manager.has_broken(&mut conn));
        assert!(!conn.needs_test(Instant::now()), "just given back");
        assert!(
            conn.needs_test(Instant::now() + TESTED_AFTER_IDLE),
            "idle a second"
        );

        diesel::sql_query("SELECT 1").execute(&mut *conn).unwrap();
        assert!(!conn.needs_test(Instant::now()), "a success marks nothing");
        diesel::sql_query("SELECT * FROM no_such_table")
            .execute(&mut *conn)
            .unwrap_err();
        assert!(conn.needs_test(Instant::now()), "a failure is tested");
        assert!(!conn.needs_test(Instant::now()), "once");
        manager.is_valid(&mut conn).unwrap();
    }

    /// The pool takes the timeouts it is given.
    #[test]
    fn pool_takes_its_settings() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = PoolSettings::with_size(2);
        settings.connection_timeout = Duration::from_secs(3);
        settings.idle_timeout = None;
        let url = dir.path().join("t.db").display().to_string();
        let pool = connect_with(&url, &settings).unwrap();
        assert_eq!(pool.max_size(), 2);
        assert_eq!(pool.connection_timeout(), Duration::from_secs(3));
        assert_eq!(pool.idle_timeout(), None);
    }

    /// A new data directory is 0700 and a new SQLite file (and its WAL)
    /// 0600, whatever the umask (issue 15 B.8).
    #[cfg(unix)]
    #[test]
    fn sqlite_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").join("inner");
        let db = data.join("rm.db");
        let pool = connect(db.to_str().unwrap(), 1).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&db), 0o600);
        drop(pool.get().unwrap());
        let wal = data.join("rm.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
    }

    /// Driver messages become one line without the password.
    #[test]
    fn cleans_driver_messages() {
        let msg = "connection failed:\n  FATAL: password p%40ss rejected\n";
        assert_eq!(
            clean_message(msg, &["p%40ss".to_owned()]),
            "connection failed: FATAL: password *** rejected"
        );
        assert_eq!(percent_decode("p%40ss%zz%4"), "p@ss%zz%4");
    }

    /// `:memory:` and its URI spellings are refused with the reason.
    #[test]
    fn refuses_in_memory_sqlite() {
        for url in [
            ":memory:",
            "sqlite://:memory:",
            "file::memory:?cache=shared",
        ] {
            let err = Target::parse(url).err().unwrap();
            assert!(err.to_string().contains("in-memory SQLite"), "{url}: {err}");
        }
    }

    /// Plain paths and both sqlite spellings select SQLite with the path.
    #[test]
    fn sqlite_urls_give_paths() {
        for (url, want) in [
            ("data/rm.db", "data/rm.db"),
            ("sqlite://data/rm.db", "data/rm.db"),
            ("sqlite:///var/lib/rm.db", "/var/lib/rm.db"),
            ("sqlite:rm.db", "rm.db"),
        ] {
            match Target::parse(url) {
                Ok(Target::Sqlite { path }) => assert_eq!(path, want),
                _ => panic!("{url} should be SQLite"),
            }
        }
    }

    /// Unknown schemes and empty input are refused, not opened as files.
    #[test]
    fn refuses_other_schemes() {
        for url in ["mysql://root:pw@db/x", "", "  ", "sqlite://"] {
            let err = Target::parse(url).err().unwrap();
            assert!(matches!(err, StoreError::InvalidUrl { .. }), "{url}: {err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }

    /// A PostgreSQL URL selects PostgreSQL, or a clear error without the
    /// feature.
    #[test]
    fn postgres_urls() {
        let parsed = Target::parse("postgres://u:pw@localhost/db");
        #[cfg(feature = "postgres")]
        assert!(matches!(parsed, Ok(Target::Postgres { .. })));
        #[cfg(not(feature = "postgres"))]
        assert_eq!(
            parsed.err().unwrap().to_string(),
            "this build has no PostgreSQL support (built without the `postgres` feature)"
        );
    }

    /// Every pooled SQLite connection checkpoints the WAL by itself only
    /// after [`SQLITE_WAL_AUTOCHECKPOINT_PAGES`] pages, not SQLite's 1000
    /// (the server's checkpoints run on `store::checkpoint`'s thread).
    #[test]
    fn sqlite_connections_checkpoint_less_often() {
        use diesel::sql_types::Integer;
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Pages {
            #[diesel(sql_type = Integer)]
            wal_autocheckpoint: i32,
        }
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&dir.path().join("t.db").display().to_string(), 2).unwrap();
        let mut conn = pool.get().unwrap();
        let DbConnection::Sqlite(sqlite) = &mut **conn else {
            panic!("expected SQLite");
        };
        let pages: Pages = diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result(sqlite)
            .unwrap();
        assert_eq!(
            pages.wal_autocheckpoint as u32,
            SQLITE_WAL_AUTOCHECKPOINT_PAGES
        );
    }

    /// A pool of zero connections is refused instead of panicking in r2d2.
    #[test]
    fn zero_pool_size_is_an_error() {
        let err = connect("unused.db", 0).err().unwrap();
        assert!(matches!(err, StoreError::InvalidPoolSize(0)));
    }
}
