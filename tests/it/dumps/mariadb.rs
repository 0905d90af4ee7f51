//! A MariaDB dump group end to end (issue 13 §3): the throwaway MariaDB of
//! `scripts/test` (`RESTIC_MANAGER_TEST_MARIADB_PORT`, root without a
//! password on 127.0.0.1); without it the test starts its own through
//! `scripts/mariadb-throwaway`, and skips with a printed reason when
//! MariaDB is not installed, unless `RESTIC_MANAGER_REQUIRE_MARIADB` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

use restic_manager::agent::dump::detect;
use serde_json::json;

use super::{
    assert_dump_backup, assert_missing_database_fails, restic_dump, run_tool, setup,
    snapshots_tagged, throwaway,
};
use crate::common::e2e::post;
use crate::common::restic::TempRepo;

/// The port of the MariaDB server of the environment.
const PORT_ENV: &str = "RESTIC_MANAGER_TEST_MARIADB_PORT";
/// Set: a missing MariaDB fails the test instead of skipping it.
const REQUIRE_ENV: &str = "RESTIC_MANAGER_REQUIRE_MARIADB";

/// A MariaDB server on 127.0.0.1 whose `root` needs no password: the one
/// of the environment, or a throwaway one stopped on drop.
struct Mariadb {
    port: u16,
    throwaway: Option<PathBuf>,
}

impl Mariadb {
    /// `None` (with the reason printed) when no server can be had and none
    /// is required.
    fn get() -> Option<Self> {
        if let Some(port) = std::env::var(PORT_ENV).ok().filter(|p| !p.is_empty()) {
            return Some(Self {
                port: port.parse().expect("a port number"),
                throwaway: None,
            });
        }
        let installed = ["mariadb-install-db", "mariadb", "mariadb-dump"]
            .iter()
            .all(|tool| detect::on_path(tool));
        let reason = if installed {
            let dir = std::env::temp_dir().join(format!(
                "rm-dumps-mariadb-{}",
                uuid::Uuid::new_v4().simple()
            ));
            match throwaway("mariadb-throwaway", "start", &dir) {
                Ok(port) => {
                    return Some(Self {
                        port: port.parse().expect("a port number"),
                        throwaway: Some(dir),
                    })
                }
                Err(reason) => format!("cannot start a throwaway MariaDB: {reason}"),
            }
        } else {
            format!("MariaDB is not installed and {PORT_ENV} is unset")
        };
        assert!(
            std::env::var_os(REQUIRE_ENV).is_none(),
            "{REQUIRE_ENV} is set: {reason}"
        );
        eprintln!("skipped: {reason}");
        None
    }

    /// The `mariadb` client as root on `database` (`""`: none), batch
    /// mode, asserting success; returns stdout.
    fn sql(&self, database: &str, sql: Option<&str>, stdin: Option<&[u8]>) -> String {
        let mut command = Command::new("mariadb");
        command.args([
            "--no-defaults",
            "--protocol=TCP",
            "--host=127.0.0.1",
            &format!("--port={}", self.port),
            "--user=root",
            "--batch",
            "--skip-column-names",
        ]);
        if let Some(sql) = sql {
            command.arg(format!("--execute={sql}"));
        }
        if !database.is_empty() {
            command.args(["--", database]);
        }
        run_tool(command, stdin)
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        if let Some(dir) = &self.throwaway {
            // Best effort: a leftover data directory in /tmp is harmless.
            let _ = throwaway("mariadb-throwaway", "stop", dir);
        }
    }
}

/// Every regular file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

/// 10,000 rows dumped with `mariadb-dump` through a `mariadb` dump group
/// as a user that needs its password (which reaches the tool through
/// `MYSQL_PWD` only: not in the group, the job, its log or any file the
/// agent wrote), read back with `restic dump`, loaded with the `mariadb`
/// client into a new database: the same rows. The stats name the engine
/// and version the server reports. A database that does not exist fails
/// the job with mariadb-dump's words and leaves no snapshot.
#[actix_web::test]
async fn mariadb_dump_round_trip_and_missing_database() {
    let Some(db) = Mariadb::get() else { return };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let source = format!("dump_src_{}", &suffix[..12]);
    let copy = format!("dump_copy_{}", &suffix[..12]);
    let user = format!("dumper_{}", &suffix[..12]);
    let password = format!("pw {} '\"$x", &suffix[12..24]);
    let escaped = password.replace('\\', "\\\\").replace('\'', "\\'");
    db.sql(
        "",
        Some(&format!(
            "CREATE DATABASE {source}; CREATE DATABASE {copy}; \
             CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{escaped}'; \
             GRANT ALL ON {source}.* TO '{user}'@'127.0.0.1'"
        )),
        None,
    );
    // seq_1_to_10000: MariaDB's Sequence engine.
    db.sql(
        &source,
        Some(
            "CREATE TABLE items (id int PRIMARY KEY, name varchar(64) NOT NULL); \
             INSERT INTO items SELECT seq, md5(seq) FROM seq_1_to_10000",
        ),
        None,
    );

    let work = tempfile::tempdir().unwrap();
    let repo = TempRepo::new();
    let (app, host, agent) = setup(work.path(), &repo).await;

    let group = post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "shop-mariadb", "type": "dump", "dump": {
            "driver": "mariadb", "database": source, "host": "127.0.0.1", "port": db.port,
            "user": user, "password": password
        }}),
    )
    .await;
    assert_eq!(group["dump"]["driver"], "mariadb", "{group}");
    assert_eq!(group["dump"]["password_set"], true, "{group}");
    assert!(!group.to_string().contains(&password), "{group}");

    // `10.11.6-MariaDB-0+deb12u1` → `MariaDB 10.11.6`.
    let version = db.sql("", Some("SELECT VERSION()"), None);
    let engine = format!("MariaDB {}", version.split('-').next().unwrap());
    assert_dump_backup(&app, &host, "shop-mariadb", &engine, &password).await;
    let leaked = files_containing(work.path(), password.as_bytes());
    assert!(
        leaked.is_empty(),
        "password on the agent's disk: {leaked:?}"
    );

    let dumped = restic_dump(&repo, "shop-mariadb", &format!("/{source}.sql"));
    db.sql(&copy, None, Some(&dumped));
    let digest = "SELECT count(*), sum(id), \
                  md5(group_concat(name ORDER BY id SEPARATOR ',')) FROM items";
    assert_eq!(
        db.sql(&copy, Some(digest), None),
        db.sql(&source, Some(digest), None)
    );
    assert_eq!(
        db.sql(&copy, Some("SELECT count(*) FROM items"), None),
        "10000"
    );

    assert_missing_database_fails(
        &app,
        &host,
        &repo,
        "missing-mariadb",
        json!({"driver": "mariadb", "database": "no_such_database_here",
               "host": "127.0.0.1", "port": db.port, "user": "root"}),
        "mariadb-dump",
        "Unknown database 'no_such_database_here'",
    )
    .await;
    assert_eq!(snapshots_tagged(&repo, "shop-mariadb").len(), 1);

    db.sql(
        "",
        Some(&format!(
            "DROP DATABASE {source}; DROP DATABASE {copy}; DROP USER '{user}'@'127.0.0.1'"
        )),
        None,
    );
    agent.stop().await;
}
