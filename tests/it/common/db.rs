//! Test databases for both backends.
//!
//! [`sqlite_pool`] gives a pool on a fresh SQLite file in a temporary
//! directory. [`postgres_pool`] gives a pool on a freshly created,
//! uniquely named PostgreSQL database when `RESTIC_MANAGER_TEST_POSTGRES_URL`
//! names a server (a URL whose user may `CREATE DATABASE`), and drops that
//! database when the returned guard goes out of scope. [`postgres_database`]
//! gives just such a database's URL (for a server under test).

// Test set-up fails loudly: a database that cannot be prepared is a failed test.
#![allow(clippy::expect_used)]

use std::ops::Deref;

use restic_manager::store::{self, Pool};
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_ENV: &str = "RESTIC_MANAGER_TEST_POSTGRES_URL";

/// Connections per test pool: enough for the concurrency tests.
const TEST_POOL_SIZE: u32 = 8;

/// A pool on a new SQLite database under a temporary directory (in a
/// sub-directory that `connect` must create). Keep the `TempDir` alive as
/// long as the pool.
pub fn sqlite_pool() -> (TempDir, Pool) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("data").join("restic-manager.db");
    let url = format!("sqlite://{}", path.display());
    let pool = store::connect(&url, TEST_POOL_SIZE).expect("open the SQLite test database");
    (dir, pool)
}

/// A pool on a PostgreSQL database created for one test; dropping it
/// closes the pool, then drops the database. Derefs to [`Pool`].
pub struct PgDatabase {
    // Field order matters: the pool closes before the guard drops the database.
    pool: Pool,
    _guard: DatabaseGuard,
}

impl Deref for PgDatabase {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.pool
    }
}

/// Drops a test database by name when it goes out of scope.
struct DatabaseGuard {
    admin_url: String,
    name: String,
}

#[cfg(feature = "postgres")]
impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        // WITH (FORCE) also ends connections r2d2 has not closed yet.
        let dropped = diesel::PgConnection::establish(&self.admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        self.name
                    ))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// The admin URL from the environment, if set and not empty.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[authority_start..];
    match rest.find(['/', '?']).map(|i| authority_start + i) {
        None => format!("{url}/{name}"),
        Some(start) => {
            let query = url[start..]
                .find('?')
                .map(|q| &url[start + q..])
                .unwrap_or("");
            format!("{}/{name}{query}", &url[..start])
        }
    }
}

/// A freshly created PostgreSQL database for one test: its URL, and a
/// guard that drops the database when this goes out of scope.
pub struct PgScratch {
    pub url: String,
    guard: DatabaseGuard,
}

/// A new, empty PostgreSQL database, or `None` when
/// `RESTIC_MANAGER_TEST_POSTGRES_URL` is unset (or this build has no
/// PostgreSQL support). Panics if the server is set but unusable.
pub fn postgres_database() -> Option<PgScratch> {
    #[cfg(not(feature = "postgres"))]
    {
        None
    }
    #[cfg(feature = "postgres")]
    {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;

        let admin_url = postgres_admin_url()?;
        let name = format!("rm_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = diesel::PgConnection::establish(&admin_url).unwrap_or_else(|e| {
            panic!(
                "cannot reach the test PostgreSQL server {}: {e}",
                restic_manager::redact::url(&admin_url)
            )
        });
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create the test database");
        drop(admin);
        let url = with_database(&admin_url, &name);
        Some(PgScratch {
            url,
            guard: DatabaseGuard { admin_url, name },
        })
    }
}

/// A pool on a new PostgreSQL database, or `None` when
/// `RESTIC_MANAGER_TEST_POSTGRES_URL` is unset (or this build has no
/// PostgreSQL support). Panics if the server is set but unusable: a test
/// told to use PostgreSQL must not silently skip it.
pub fn postgres_pool() -> Option<PgDatabase> {
    let PgScratch { url, guard } = postgres_database()?;
    let pool = store::connect(&url, TEST_POOL_SIZE)
        .unwrap_or_else(|e| panic!("cannot open the test database {}: {e}", guard.name));
    Some(PgDatabase {
        pool,
        _guard: guard,
    })
}
