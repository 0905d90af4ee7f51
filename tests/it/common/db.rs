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

use super::template::Template;

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
        let admin_url = postgres_admin_url()?;
        let name = scratch_name();
        super::template::admin_execute(&admin_url, &format!("CREATE DATABASE \"{name}\""));
        Some(scratch(admin_url, name))
    }
}

/// A new PostgreSQL database for a test server: a copy of this process's
/// template (migrated, with `admin`: [`super::template`]), or an empty one
/// when there is no template; `None` as for [`postgres_database`].
pub fn postgres_server_database() -> Option<(PgScratch, Option<&'static Template>)> {
    #[cfg(not(feature = "postgres"))]
    {
        None
    }
    #[cfg(feature = "postgres")]
    {
        let admin_url = postgres_admin_url()?;
        let Some(template) = super::template::postgres(&admin_url) else {
            return postgres_database().map(|db| (db, None));
        };
        let name = scratch_name();
        template.create_database(&admin_url, &name);
        Some((scratch(admin_url, name), Some(template)))
    }
}

#[cfg(feature = "postgres")]
fn scratch_name() -> String {
    format!("rm_test_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(feature = "postgres")]
fn scratch(admin_url: String, name: String) -> PgScratch {
    PgScratch {
        url: with_database(&admin_url, &name),
        guard: DatabaseGuard { admin_url, name },
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
