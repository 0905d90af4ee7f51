//! Database dump groups end to end with every real part (issue 13 §3): a
//! test server, the real agent, real restic, and a real database: the
//! throwaway PostgreSQL of `scripts/test` (`RESTIC_MANAGER_TEST_POSTGRES_URL`;
//! without it these tests start their own through `scripts/pg-throwaway`,
//! and skip with a printed reason when PostgreSQL is not installed),
//! `sqlite3`, and MariaDB (`mariadb.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use restic_manager::agent::dump::detect;
use serde_json::{json, Value};

use crate::common::daemon::InProcessAgent;
use crate::common::db::postgres_admin_url;
use crate::common::e2e::{get, init_repository, online_agent, post, run_job, wait_host_idle};
use crate::common::off_thread;
use crate::common::restic::TempRepo;
use crate::common::server::{spawn_app, TestApp};

mod mariadb;

/// A PostgreSQL server the test may create databases on: the one of the
/// environment, or a throwaway one stopped on drop.
struct Postgres {
    url: String,
    throwaway: Option<PathBuf>,
}

impl Postgres {
    /// `None` (with the reason printed) when no server can be had.
    fn get() -> Option<Self> {
        if let Some(url) = postgres_admin_url() {
            return Some(Self {
                url,
                throwaway: None,
            });
        }
        if !detect::on_path("pg_dump") || !detect::on_path("psql") {
            eprintln!(
                "skipped: pg_dump/psql not installed and RESTIC_MANAGER_TEST_POSTGRES_URL unset"
            );
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("rm-dumps-pg-{}", uuid::Uuid::new_v4().simple()));
        match throwaway("pg-throwaway", "start", &dir) {
            Ok(url) => Some(Self {
                url,
                throwaway: Some(dir),
            }),
            Err(reason) => {
                eprintln!("skipped: cannot start a throwaway PostgreSQL: {reason}");
                None
            }
        }
    }

    /// (host, port) of the server.
    fn host_port(&self) -> (String, u16) {
        let authority = self.url.split("://").nth(1).unwrap();
        let authority = authority.split(['/', '?']).next().unwrap();
        let host_port = authority.rsplit('@').next().unwrap();
        let (host, port) = host_port.rsplit_once(':').unwrap();
        (host.to_owned(), port.parse().unwrap())
    }

    /// `psql` on `database`, asserting success; returns stdout.
    fn psql(&self, database: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
        let url = crate::common::db::with_database(&self.url, database);
        let mut command = Command::new("psql");
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-d", &url])
            .args(args);
        run_tool(command, stdin)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.throwaway {
            // Best effort: a leftover cluster in /tmp is harmless.
            let _ = throwaway("pg-throwaway", "stop", dir);
        }
    }
}

/// `scripts/<script> <action> <dir>` (`pg-throwaway`, `mariadb-throwaway`):
/// its trimmed stdout, or its stderr when it fails.
fn throwaway(script: &str, action: &str, dir: &Path) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new(&script)
        .arg(action)
        .arg(dir)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

/// Runs a database client `command` with `stdin` (or an empty one),
/// asserting success; returns its trimmed stdout.
fn run_tool(mut command: Command, stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?} {:?}: {}",
        command.get_program(),
        command.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The server, an online agent, and an initialised repository.
async fn setup(work: &Path, repo: &TempRepo) -> (TestApp, String, InProcessAgent) {
    let app = spawn_app().await;
    let (host, agent) = online_agent(&app, work).await;
    init_repository(&app, &host, &repo.repo, &repo.password).await;
    (app, host, agent)
}

/// The snapshots restic itself lists with `tag`.
fn snapshots_tagged(repo: &TempRepo, tag: &str) -> Vec<Value> {
    let out = repo.restic(&["snapshots", "--json", "--tag", tag]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `restic dump latest <path>` of the group `tag`.
fn restic_dump(repo: &TempRepo, tag: &str, path: &str) -> Vec<u8> {
    let out = repo.restic(&["dump", "--tag", tag, "latest", path]);
    assert!(
        out.status.success(),
        "restic dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the backup of dump group `group`: it succeeds, its stats name
/// `engine` and more than 300,000 bytes dumped, its log shows the steps,
/// and `secret` is in neither the job nor its log.
async fn assert_dump_backup(app: &TestApp, host: &str, group: &str, engine: &str, secret: &str) {
    let backup = run_job(app, host, json!({"kind": "backup", "source_group": group})).await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    assert!(!backup.to_string().contains(secret), "{backup}");
    assert_eq!(backup["stats"]["database_engine"], engine, "{backup}");
    assert!(
        backup["stats"]["dump_bytes"].as_u64().unwrap() > 300_000,
        "{backup}"
    );
    let logs = get(
        app,
        &format!("/jobs/{}/logs?limit=10000", backup["id"].as_str().unwrap()),
    )
    .await;
    let text = logs.to_string();
    assert!(text.contains("dumping "), "no dumping step in the log");
    assert!(text.contains("dump complete: "), "no dump size in the log");
    assert!(!text.contains(secret), "password in the log");
}

/// A dump group `group` with `dump` (naming a database that does not
/// exist): its backup fails with `"<tool> failed"` and the tool's own
/// `message`, and leaves neither a snapshot nor a lock. A stale lock is
/// planted first: the agent interrupts restic at once here, inside the
/// window where restic 0.14 holds a lock it has not yet registered for
/// removal, and runs `restic unlock` after such an interrupt; without
/// that run the planted lock would stay (as the lock of an early-killed
/// restic used to, now and then, under load).
async fn assert_missing_database_fails(
    app: &TestApp,
    host: &str,
    repo: &TempRepo,
    group: &str,
    dump: Value,
    tool: &str,
    message: &str,
) {
    post(
        app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": group, "type": "dump", "dump": dump}),
    )
    .await;
    off_thread(repo.stale_lock_maker()).await;
    let failed = run_job(app, host, json!({"kind": "backup", "source_group": group})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(message), "{error}");
    assert!(error.starts_with(&format!("{tool} failed")), "{error}");
    assert!(
        snapshots_tagged(repo, group).is_empty(),
        "a failed dump left a snapshot"
    );
    // The earlier backup's `catalog` job may start right after this one
    // and hold its own (live) lock: only what is left once nothing runs
    // is this job's.
    wait_host_idle(app, host).await;
    assert!(
        repo.lock_files().is_empty(),
        "restic left a lock:\n{}",
        repo.lock_report()
    );
}

/// 10,000 rows dumped with pg_dump through a dump group, read back with
/// `restic dump`, loaded with psql into a new database: the same rows.
/// The stats name the engine as the server reports it. A database that
/// does not exist fails the job with pg_dump's words and leaves no
/// snapshot.
#[actix_web::test]
async fn postgres_dump_round_trip_and_missing_database() {
    let Some(pg) = Postgres::get() else { return };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let source = format!("dump_src_{}", &suffix[..12]);
    let copy = format!("dump_copy_{}", &suffix[..12]);
    pg.psql(
        "postgres",
        &["-c", &format!("CREATE DATABASE {source}")],
        None,
    );
    pg.psql(
        &source,
        &[
            "-c",
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); \
                 INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 10000) g",
        ],
        None,
    );
    let (host_name, port) = pg.host_port();

    let work = tempfile::tempdir().unwrap();
    let repo = TempRepo::new();
    let (app, host, agent) = setup(work.path(), &repo).await;

    let group = post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "shop-db", "type": "dump", "dump": {
            "driver": "postgres", "database": source, "host": host_name, "port": port,
            "user": "postgres", "password": "not-needed-with-trust"
        }}),
    )
    .await;
    assert_eq!(group["type"], "dump", "{group}");
    assert_eq!(group["dump"]["password_set"], true, "{group}");
    assert!(
        !group.to_string().contains("not-needed-with-trust"),
        "{group}"
    );

    let version = pg.psql("postgres", &["-c", "SHOW server_version"], None);
    let engine = format!("PostgreSQL {}", version.split_whitespace().next().unwrap());
    assert_dump_backup(&app, &host, "shop-db", &engine, "not-needed-with-trust").await;

    let dumped = restic_dump(&repo, "shop-db", &format!("/{source}.sql"));
    pg.psql(
        "postgres",
        &["-c", &format!("CREATE DATABASE {copy}")],
        None,
    );
    pg.psql(&copy, &[], Some(&dumped));
    let digest = "SELECT count(*), sum(id), md5(string_agg(name, ',' ORDER BY id)) FROM items";
    assert_eq!(
        pg.psql(&copy, &["-c", digest], None),
        pg.psql(&source, &["-c", digest], None)
    );
    assert!(pg.psql(&copy, &["-c", "SELECT count(*) FROM items"], None) == "10000");

    assert_missing_database_fails(
        &app,
        &host,
        &repo,
        "missing-db",
        json!({"driver": "postgres", "database": "no_such_database_here",
               "host": host_name, "port": port, "user": "postgres"}),
        "pg_dump",
        "database \"no_such_database_here\" does not exist",
    )
    .await;
    assert_eq!(snapshots_tagged(&repo, "shop-db").len(), 1);

    for db in [&source, &copy] {
        pg.psql("postgres", &["-c", &format!("DROP DATABASE {db}")], None);
    }
    agent.stop().await;
}

/// A SQLite file written to during the dump: the snapshot holds a
/// consistent database (integrity check ok) with at least the rows there
/// when the dump started; the private copy is gone afterwards.
#[actix_web::test]
async fn sqlite_dump_while_written() {
    if !detect::on_path("sqlite3") {
        eprintln!("skipped: sqlite3 not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("app.db");
    let sqlite = |sql: &str| {
        let out = Command::new("sqlite3").arg(&db).arg(sql).output().unwrap();
        assert!(
            out.status.success(),
            "sqlite3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    sqlite(
        "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO t (v) SELECT hex(randomblob(64)) FROM n;",
    );
    // A writer that keeps inserting until it is stopped.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do sqlite3 '{}' \".timeout 5000\" \"INSERT INTO t (v) VALUES (hex(randomblob(64)));\" || exit 1; done",
            db.display()
        ))
        .spawn()
        .unwrap();

    let repo = TempRepo::new();
    let (app, host, agent) = setup(work.path(), &repo).await;
    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "app-db", "type": "dump", "dump": {"driver": "sqlite", "path": db.to_string_lossy()}}),
    )
    .await;
    let backup = run_job(
        &app,
        &host,
        json!({"kind": "backup", "source_group": "app-db"}),
    )
    .await;
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert_eq!(backup["status"], "succeeded", "{backup}");
    assert!(
        backup["stats"]["database_engine"]
            .as_str()
            .unwrap()
            .starts_with("SQLite 3."),
        "{backup}"
    );

    let restored = work.path().join("restored.db");
    std::fs::write(&restored, restic_dump(&repo, "app-db", "/app.db")).unwrap();
    let check = |sql: &str| {
        let out = Command::new("sqlite3")
            .arg(&restored)
            .arg(sql)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(check("PRAGMA integrity_check"), "ok");
    let rows: u64 = check("SELECT count(*) FROM t").parse().unwrap();
    assert!(rows >= 20_000, "{rows} rows");
    let copies = work.path().join("state/dumps");
    let left: Vec<_> = std::fs::read_dir(&copies)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "private copy left behind: {left:?}");
    agent.stop().await;
}

/// A dump job for a driver whose tool the agent lacks is refused at
/// creation with 409 `agent_lacks_capability` naming it.
#[actix_web::test]
async fn dump_job_needs_the_agents_capability() {
    let present = detect::dump_capabilities(detect::on_path);
    let Some(driver) = ["mongodb", "mysql", "mariadb", "postgres"]
        .into_iter()
        .find(|d| !present.contains(&format!("dump:{d}")))
    else {
        eprintln!("skipped: every dump tool is installed here");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let app = spawn_app().await;
    let (host, agent) = online_agent(&app, work.path()).await;
    post(
        &app,
        &format!("/hosts/{host}/source-groups"),
        json!({"name": "db", "type": "dump", "dump": {"driver": driver, "database": "x"}}),
    )
    .await;
    let (status, body) = crate::common::api::call(
        &app,
        &app.admin_token,
        reqwest::Method::POST,
        &format!("/hosts/{host}/jobs"),
        Some(json!({"kind": "backup", "source_group": "db"})),
    )
    .await;
    assert_eq!(status.as_u16(), 409, "{body}");
    assert_eq!(body["error"]["code"], "agent_lacks_capability", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("dump:{driver}")), "{message}");
    agent.stop().await;
}
