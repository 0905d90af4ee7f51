//! The embedded migrations: `migrations/sqlite` and `migrations/postgres`,
//! one set per backend with the same migration names, compiled into the
//! binary and applied to whichever backend a connection speaks.

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{DbConnection, StoreError};

/// The SQLite dialect of every migration.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The PostgreSQL dialect of every migration.
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Applies every pending migration for the connection's backend and
/// returns how many ran. [`super::connect`] calls it; `restic-manager
/// migrate` may call it on its own.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
    };
    applied.map_err(|e| StoreError::Migration(one_line(&e.to_string())))
}

/// Reverts every applied migration (newest first), leaving an empty
/// database, and returns how many were reverted. For tests that check each
/// migration goes down cleanly, and for maintenance; never called at start.
pub fn revert_all_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let reverted = match conn {
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => c
            .revert_all_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
    };
    reverted.map_err(|e| StoreError::Migration(one_line(&e.to_string())))
}

/// Folds a multi-line driver message (SQL errors often span lines) into one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
