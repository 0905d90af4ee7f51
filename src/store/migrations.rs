//! The embedded migrations: `migrations/sqlite` and `migrations/postgres`,
//! one set per backend with the same migration names, compiled into the
//! binary and applied to whichever backend a connection speaks.
//!
//! Before applying anything, [`run_migrations`] compares the database's
//! applied migrations with the ones this binary carries: a database that
//! has one this binary does not know was made by a newer restic-manager
//! (or another build), and is refused untouched ([`StoreError::NewerDatabase`],
//! [`StoreError::UnknownMigration`]) instead of being run against a schema
//! the code does not understand.

use diesel::backend::Backend;
use diesel::migration::MigrationSource;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{DbConnection, StoreError};

/// The SQLite dialect of every migration.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The PostgreSQL dialect of every migration.
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The error type of diesel's migration harness.
type HarnessError = Box<dyn std::error::Error + Send + Sync>;

/// Applies every pending migration for the connection's backend and
/// returns how many ran. [`super::connect`] calls it; `restic-manager
/// migrate` may call it on its own. A database with a migration this
/// binary does not know is refused before anything is applied.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    run_migrations_until(conn, None)
}

/// Applies the pending migrations up to and including the one of version
/// `until` (`2026-12-01-000001`, the start of its folder's name), or all
/// of them with `None`, after the same check as [`run_migrations`]; returns
/// how many ran. For tests that build the database an older release left
/// behind; never called at start.
pub fn run_migrations_until(
    conn: &mut DbConnection,
    until: Option<&str>,
) -> Result<usize, StoreError> {
    let until = until.map(|version| version.replace('-', ""));
    match conn {
        DbConnection::Sqlite(c) => migrate(c, SQLITE_MIGRATIONS, until.as_deref()),
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => migrate(c, POSTGRES_MIGRATIONS, until.as_deref()),
    }
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
    reverted.map_err(|e| migration_error(&*e))
}

/// The newest migration this binary carries, as `2026-12-06-000001`: the
/// database schema it expects (both backends have the same names).
pub fn binary_schema() -> String {
    let known = known_versions::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS).unwrap_or_default();
    known
        .last()
        .map_or_else(String::new, |v| display_version(v))
}

/// The check, then the pending migrations (up to `until`, a version
/// without dashes), one at a time in version order.
fn migrate<DB: Backend, C: MigrationHarness<DB>>(
    conn: &mut C,
    source: EmbeddedMigrations,
    until: Option<&str>,
) -> Result<usize, StoreError> {
    let known = known_versions::<DB>(&source).map_err(|e| migration_error(&*e))?;
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(|e| migration_error(&*e))?
        .iter()
        .map(ToString::to_string)
        .collect();
    if let Some(refusal) = refuse_unknown(&known, &applied) {
        return Err(refusal);
    }
    if let Some(until) = until {
        if !known.iter().any(|v| v == until) {
            return Err(StoreError::Migration(format!(
                "no migration has version {}",
                display_version(until)
            )));
        }
    }
    let pending = conn
        .pending_migrations(source)
        .map_err(|e| migration_error(&*e))?;
    let mut ran = 0;
    for migration in &pending {
        if until.is_some_and(|until| migration.name().version().to_string().as_str() > until) {
            break;
        }
        conn.run_migration(&**migration)
            .map_err(|e| migration_error(&*e))?;
        ran += 1;
    }
    Ok(ran)
}

/// The versions of `source`'s migrations (`20261206000001`), oldest first.
fn known_versions<DB: Backend>(source: &EmbeddedMigrations) -> Result<Vec<String>, HarnessError> {
    let mut known: Vec<String> = MigrationSource::<DB>::migrations(source)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    known.sort();
    Ok(known)
}

/// The refusal for a database with applied migrations (`applied`) that are
/// not among this binary's (`known`, oldest first), or `None` when every
/// applied one is known.
fn refuse_unknown(known: &[String], applied: &[String]) -> Option<StoreError> {
    let unknown = applied
        .iter()
        .filter(|v| !known.contains(v))
        .max()?
        .as_str();
    let binary_schema = known.last().map_or("none", String::as_str);
    let database = display_version(unknown);
    let binary_schema = display_version(binary_schema);
    let binary_version = crate::cli::VERSION;
    Some(if unknown > known.last().map_or("", String::as_str) {
        StoreError::NewerDatabase {
            database,
            binary_version,
            binary_schema,
        }
    } else {
        StoreError::UnknownMigration {
            database,
            binary_version,
            binary_schema,
        }
    })
}

/// `20261206000001` as its folder name writes it, `2026-12-06-000001`;
/// any other text as it is.
fn display_version(version: &str) -> String {
    if version.len() == 14 && version.bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "{}-{}-{}-{}",
            &version[..4],
            &version[4..6],
            &version[6..8],
            &version[8..]
        )
    } else {
        version.to_owned()
    }
}

fn migration_error(error: &(dyn std::error::Error + Send + Sync)) -> StoreError {
    StoreError::Migration(one_line(&error.to_string()))
}

/// Folds a multi-line driver message (SQL errors often span lines) into one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(list: &[&str]) -> Vec<String> {
        list.iter().map(|v| (*v).to_owned()).collect()
    }

    /// Every applied migration known (or fewer applied): no refusal.
    #[test]
    fn known_or_older_databases_pass() {
        let known = versions(&["20261123000001", "20261201000001"]);
        assert!(refuse_unknown(&known, &versions(&[])).is_none());
        assert!(refuse_unknown(&known, &versions(&["20261123000001"])).is_none());
        assert!(refuse_unknown(&known, &known).is_none());
    }

    /// A database past this binary's newest migration is refused naming
    /// both schemas and this version.
    #[test]
    fn newer_database_is_refused_naming_both_versions() {
        let known = versions(&["20261123000001", "20261205000001"]);
        let applied = versions(&["20261207000001", "20261206000001", "20261205000001"]);
        let err = refuse_unknown(&known, &applied).unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "database schema 2026-12-07-000001 is newer than this restic-manager {} \
                 (schema 2026-12-05-000001) — upgrade restic-manager",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    /// An unknown migration older than the newest known one (another
    /// build's) is refused as unknown, not as newer.
    #[test]
    fn unknown_older_migration_is_refused_as_unknown() {
        let known = versions(&["20261123000001", "20261205000001"]);
        let applied = versions(&["20261201000099", "20261123000001"]);
        let err = refuse_unknown(&known, &applied).unwrap();
        assert!(matches!(err, StoreError::UnknownMigration { .. }), "{err}");
        assert!(err.to_string().contains("2026-12-01-000099"), "{err}");
    }

    /// The binary's schema is its newest migration folder's version.
    #[test]
    fn binary_schema_is_the_newest_folder() {
        let newest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .max()
            .unwrap();
        assert!(newest.starts_with(&binary_schema()), "{newest}");
        assert_eq!(display_version("20261206000001"), "2026-12-06-000001");
        assert_eq!(display_version("abc"), "abc");
    }
}
