//! What every fresh test server starts from: a database that is migrated
//! and holds the `admin` account, made once per test process and copied
//! for each server.
//!
//! A server's first start runs every migration and hashes the generated
//! admin password with argon2 (m = 64 MiB, t = 3: about 0.3 s of CPU even
//! with the crate optimised), and `scripts/test` starts a few hundred
//! servers on two cores: that was about a tenth of the tests' CPU
//! (BENCHMARKS.md, "scripts/test's time"). The copy is what a first start
//! would have written, so the servers still open, check and use it as
//! their own: `start_in` runs the same `server::start`, which finds the
//! migrations applied and the admin present.
//!
//! - SQLite: the files of a data directory (database, key file) are kept in
//!   memory and written into each new server's directory.
//! - PostgreSQL: a template database, and each server's database is made
//!   with `CREATE DATABASE … TEMPLATE` (the key file is copied as for
//!   SQLite). Template databases of test processes that are gone are
//!   dropped when the next process makes its own.
//!
//! A server whose test moves its database elsewhere starts from nothing,
//! as before.

// Test set-up fails loudly: a template that cannot be made is a failed test.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[cfg(feature = "postgres")]
use restic_manager::config::DatabaseUrl;
use restic_manager::config::ServerConfig;
use restic_manager::crypto::SecretKey;

/// A made data directory: its files and the admin's password.
pub struct Template {
    /// Each file's path under the data directory, and its bytes.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// The generated password of `admin` in the template's database.
    pub admin_password: String,
    /// The template database, on PostgreSQL.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pg_name: Option<String>,
}

impl Template {
    /// Writes the template's files into `dir` (a new server's empty data
    /// directory), the key file readable by its owner only.
    pub fn write_into(&self, dir: &Path) {
        for (relative, bytes) in &self.files {
            let path = dir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("template: create directory");
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).expect("template: create file");
            std::io::Write::write_all(&mut file, bytes).expect("template: write file");
        }
    }
}

/// The SQLite template of this process, made at the first call; `None`
/// when `RESTIC_MANAGER_ADMIN_PASSWORD` is set (the servers then make
/// their admin from it, as before).
pub fn sqlite() -> Option<&'static Template> {
    static TEMPLATE: OnceLock<Option<Template>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("template: temp dir");
            let config = ServerConfig::for_data_dir(dir.path());
            make(dir.path(), &config)
        })
        .as_ref()
}

/// Makes the database of `config` (in `dir`) as a first start would, and
/// reads back the files under `dir`.
fn make(dir: &Path, config: &ServerConfig) -> Option<Template> {
    let pool = restic_manager::admin::open_store(config).expect("template: open the store");
    SecretKey::load_or_create(&config.key_file).expect("template: key file");
    let admin_password = restic_manager::admin::bootstrap_admin(&pool).expect("template: admin")?;
    // Closing the pool closes SQLite's last connection, which folds the
    // write-ahead log into the database file.
    drop(pool);
    let mut files = Vec::new();
    read_files(dir, dir, &mut files);
    Some(Template {
        files,
        admin_password,
        pg_name: None,
    })
}

/// Every regular file under `dir`, relative to `root`.
fn read_files(root: &Path, dir: &Path, files: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("template: read dir") {
        let path = entry.expect("template: dir entry").path();
        if path.is_dir() {
            read_files(root, &path, files);
        } else {
            let bytes = std::fs::read(&path).expect("template: read file");
            let relative = path.strip_prefix(root).expect("under root").to_path_buf();
            files.push((relative, bytes));
        }
    }
}

/// The PostgreSQL template of this process on the server at `admin_url`,
/// made at the first call (see [`sqlite`] for `None`).
#[cfg(feature = "postgres")]
pub fn postgres(admin_url: &str) -> Option<&'static Template> {
    static TEMPLATE: OnceLock<Option<Template>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            drop_orphaned_templates(admin_url);
            let name = format!(
                "{TEMPLATE_PREFIX}{}_{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            );
            admin_execute(admin_url, &format!("CREATE DATABASE \"{name}\""));
            let dir = tempfile::tempdir().expect("template: temp dir");
            let mut config = ServerConfig::for_data_dir(dir.path());
            config.database_url = DatabaseUrl(super::db::with_database(admin_url, &name));
            let mut template = make(dir.path(), &config)?;
            template.pg_name = Some(name);
            Some(template)
        })
        .as_ref()
}

#[cfg(feature = "postgres")]
impl Template {
    /// `CREATE DATABASE "name" TEMPLATE` this template, on `admin_url`.
    pub fn create_database(&self, admin_url: &str, name: &str) {
        let template = self.pg_name.as_deref().expect("a PostgreSQL template");
        admin_execute(
            admin_url,
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
        );
    }
}

/// Template databases are named `rm_test_template_<pid>_<uuid>`.
#[cfg(feature = "postgres")]
const TEMPLATE_PREFIX: &str = "rm_test_template_";

/// Drops the template databases of test processes on this machine that
/// have ended (a process's own template lives as long as it does: nothing
/// runs at a test binary's exit).
#[cfg(feature = "postgres")]
fn drop_orphaned_templates(admin_url: &str) {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    let mut admin = admin_connection(admin_url);
    let names: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'rm\\_test\\_template\\_%'",
    )
    .load(&mut admin)
    .expect("template: list template databases");
    for Name { datname } in names {
        let pid = datname[TEMPLATE_PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        let gone = pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if gone {
            // Another process may drop it at the same time: either is fine.
            let _ = diesel::connection::SimpleConnection::batch_execute(
                &mut admin,
                &format!("DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"),
            );
        }
    }
}

#[cfg(feature = "postgres")]
fn admin_connection(admin_url: &str) -> diesel::PgConnection {
    diesel::Connection::establish(admin_url).unwrap_or_else(|e| {
        panic!(
            "cannot reach the test PostgreSQL server {}: {e}",
            restic_manager::redact::url(admin_url)
        )
    })
}

#[cfg(feature = "postgres")]
pub(super) fn admin_execute(admin_url: &str, sql: &str) {
    let mut admin = admin_connection(admin_url);
    diesel::connection::SimpleConnection::batch_execute(&mut admin, sql)
        .unwrap_or_else(|e| panic!("template: {sql}: {e}"));
}
