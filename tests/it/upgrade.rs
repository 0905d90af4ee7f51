//! Upgrading restic-manager over an existing database (issue 16, point 5).
//!
//! - A database an older release left behind (its migrations up to
//!   [`OLD_SCHEMA`], rows written with SQL as that release stored them) is
//!   migrated when the server starts, and every row reads back through the
//!   API: users and their passwords, API tokens, hosts and their labels,
//!   source groups, schedules, jobs, logs, snapshots, the audit log and the
//!   summaries the later migrations backfill.
//! - A database with a migration this build does not know (a newer
//!   release's) is refused, by the server and by `restic-manager migrate`,
//!   with a message naming both schemas, and left as it was: not even the
//!   older migrations it still lacks are applied.
//!
//! Each runs on SQLite, and on PostgreSQL too when
//! `RESTIC_MANAGER_TEST_POSTGRES_URL` names a server.

use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use reqwest::StatusCode;
use restic_manager::auth;
use restic_manager::config::{DatabaseUrl, ServerConfig};
use restic_manager::store::{self, DbConnection};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::api::{get, login, metrics_text};
use crate::common::db::{self, PgScratch};
use crate::common::off_thread;
use crate::common::server::start_in;

/// The newest migration of the release before this one's schema changes:
/// the point the upgraded database is built to.
const OLD_SCHEMA: &str = "2026-12-01-000001";

/// How many migrations lead up to [`OLD_SCHEMA`].
const OLD_MIGRATIONS: usize = 2;

/// A migration version no build has (yet): a newer release's.
const FUTURE_VERSION: &str = "20991231000001";

/// The password of the old database's admin.
const ADMIN_PASSWORD: &str = "old-release-admin-pw";

/// A test database: the data dir of its server and its URL; for
/// PostgreSQL, the guard that drops it.
struct Database {
    dir: TempDir,
    url: String,
    backend: &'static str,
    pg: Option<PgScratch>,
}

/// A fresh SQLite database, then a PostgreSQL one when configured.
fn databases() -> Vec<Database> {
    let dir = tempfile::tempdir().unwrap();
    let url = ServerConfig::for_data_dir(dir.path()).database_url.0;
    let mut all = vec![Database {
        dir,
        url,
        backend: "sqlite",
        pg: None,
    }];
    if let Some(pg) = db::postgres_database() {
        all.push(Database {
            dir: tempfile::tempdir().unwrap(),
            url: pg.url.clone(),
            backend: "postgres",
            pg: Some(pg),
        });
    } else {
        assert!(
            !crate::store::postgres_required(),
            "PostgreSQL is required but {} is unset",
            db::POSTGRES_URL_ENV
        );
    }
    all
}

/// One connection outside any pool, as an older release would have made
/// the database (no migrations run on opening).
fn raw_connection(url: &str) -> DbConnection {
    if url.starts_with("postgres") {
        #[cfg(feature = "postgres")]
        return DbConnection::Pg(diesel::PgConnection::establish(url).unwrap());
        #[cfg(not(feature = "postgres"))]
        unreachable!("no PostgreSQL database without the postgres feature");
    }
    DbConnection::Sqlite(diesel::SqliteConnection::establish(url).unwrap())
}

/// The applied migration versions, oldest first.
fn applied(conn: &mut DbConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version")
        .load::<Row>(conn)
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect()
}

/// The text field `key` of every item of a list answer.
fn texts<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap())
        .collect()
}

/// What the old release's rows are made of: ids, times and secrets the
/// checks compare with.
struct OldRows {
    web10: String,
    web2: String,
    group: String,
    schedule: String,
    backup: String,
    check: String,
    snapshot: String,
    /// An API token the old release issued (its hash is stored).
    token: String,
    /// Job times, Unix ms: created, finished.
    created_ms: i64,
    finished_ms: i64,
}

impl OldRows {
    fn new() -> Self {
        let now = store::now_ms();
        OldRows {
            web10: store::new_id(),
            web2: store::new_id(),
            group: store::new_id(),
            schedule: store::new_id(),
            backup: store::new_id(),
            check: store::new_id(),
            snapshot: "4f3c2b1a".repeat(8),
            token: auth::generate_token().unwrap(),
            created_ms: now - 3_600_000,
            finished_ms: now - 3_000_000,
        }
    }

    /// The rows in SQL both backends take (`TRUE`/`FALSE`, no blobs), in
    /// the tables and columns of the schema at [`OLD_SCHEMA`].
    fn sql(&self) -> String {
        let OldRows {
            web10,
            web2,
            group,
            schedule,
            backup,
            check,
            snapshot,
            token,
            created_ms: t0,
            finished_ms: t1,
        } = self;
        let password = auth::hash_password(ADMIN_PASSWORD).unwrap();
        let token = auth::hash_token(token);
        let (agent1, agent2) = (auth::hash_token("agent-1"), auth::hash_token("agent-2"));
        format!(
            r#"
INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at)
    VALUES ('u-admin', 'admin', '{password}', 'admin', FALSE, {t0}, {t0}),
           ('u-olga', 'olga', '{password}', 'viewer', FALSE, {t0}, {t0});
INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, role)
    VALUES ('t-old', 'u-admin', 'old-automation', '{token}', {t0}, 'viewer');
INSERT INTO repositories (id, url, created_at, updated_at)
    VALUES ('r-old', '/srv/restic/web', {t0}, {t0});
INSERT INTO hosts (id, hostname, display_name, labels, os, arch, agent_version,
                   restic_version, capabilities, agent_token_hash, repository_id,
                   online, last_seen_at, enrolled_at, updated_at)
    VALUES ('{web10}', 'web-10', 'Web ten', '{{"env":"prod"}}', 'linux', 'amd64', '0.1.0',
            '0.17.3', '["cancel"]', '{agent1}', 'r-old', FALSE, {t1}, {t0}, {t0}),
           ('{web2}', 'web-2', NULL, '{{"env":"test"}}', 'linux', 'arm64', '0.1.0',
            '0.16.4', '[]', '{agent2}', NULL, FALSE, {t1}, {t0}, {t0});
INSERT INTO source_groups (id, host_id, name, includes, excludes, retention_policy,
                           retry_max, retry_backoff_seconds, created_at, updated_at)
    VALUES ('{group}', '{web10}', 'etc', '["/etc"]', '["*.tmp"]', '{{"keep_daily":7}}',
            2, 60, {t0}, {t0});
INSERT INTO schedules (id, host_id, cron_expr, enabled, created_at, updated_at)
    VALUES ('{schedule}', '{web10}', '0 3 * * *', TRUE, {t0}, {t0});
INSERT INTO schedule_source_groups (schedule_id, source_group_id) VALUES ('{schedule}', '{group}');
INSERT INTO host_schedule_version (host_id, version, pushed_version, acked_version, pushed_at, acked_at)
    VALUES ('{web10}', 3, 3, 3, {t0}, {t0});
INSERT INTO jobs (id, host_id, kind, status, "trigger", source_group_id, tag, includes, excludes,
                  args, schedule_id, scheduled_at, attempt, created_at, dispatched_at,
                  accepted_at, started_at, finished_at, exit_code, stats, last_log_seq)
    VALUES ('{backup}', '{web10}', 'backup', 'succeeded', 'schedule', '{group}', 'etc',
            '["/etc"]', '["*.tmp"]', '[]', '{schedule}', {t0}, 1, {t0}, {t0}, {t0}, {t0}, {t1},
            0, '{{"files_new":3}}', 2);
INSERT INTO jobs (id, host_id, kind, status, "trigger", includes, excludes, args, attempt,
                  created_at, finished_at, exit_code, error, last_log_seq)
    VALUES ('{check}', '{web10}', 'check', 'failed', 'manual', '[]', '[]', '[]', 1,
            {t1}, {t1}, 1, 'repository damaged', 0);
INSERT INTO job_logs (job_id, seq, ts, stream, payload)
    VALUES ('{backup}', 1, {t0}, 'stdout', 'open repository'),
           ('{backup}', 2, {t1}, 'stderr', 'a warning');
INSERT INTO snapshots (host_id, snapshot_id, short_id, time, hostname, paths, tags,
                       size_bytes, file_count, reported_at)
    VALUES ('{web10}', '{snapshot}', '4f3c2b1a', {t1}, 'web-10', '["/etc"]', '["etc"]',
            4096, 3, {t1});
INSERT INTO audit_log (id, at, actor, action, target, detail)
    VALUES ('a-old', {t0}, 'admin', 'host.update', '{web10}', '{{"display_name":"Web ten"}}');
"#
        )
    }
}

/// A database made by the previous release's migrations, with data in it,
/// is migrated when the server starts; every row reads back through the
/// API, the summaries the later migrations backfill count the old jobs,
/// and the old password and API token still work.
#[actix_web::test]
async fn an_older_database_is_upgraded_with_its_data() {
    for database in databases() {
        let Database {
            dir,
            url,
            backend,
            pg,
        } = database;
        let rows = OldRows::new();
        let sql = rows.sql();
        let old_url = url.clone();
        off_thread(move || {
            let mut conn = raw_connection(&old_url);
            let ran = store::run_migrations_until(&mut conn, Some(OLD_SCHEMA)).unwrap();
            assert_eq!(ran, OLD_MIGRATIONS, "{backend}");
            conn.batch_execute(&sql).unwrap();
        })
        .await;

        let mut config = ServerConfig::for_data_dir(dir.path());
        config.database_url = DatabaseUrl(url.clone());
        let mut app = start_in(dir, config).await;
        app.pg = pg;
        let token = app.admin_token.clone();

        let check_url = url.clone();
        let versions = off_thread(move || applied(&mut raw_connection(&check_url))).await;
        assert_eq!(
            versions.last().map(String::as_str),
            Some(store::binary_schema().replace('-', "").as_str()),
            "{backend}: every migration applied"
        );

        // Hosts: natural order (the sort key the server fills at start),
        // labels (the label rows the migration backfills), schedule versions.
        let (status, hosts) = get(&app, &token, "/hosts").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {hosts}");
        assert_eq!(texts(&hosts, "hostname"), ["web-2", "web-10"], "{backend}");
        let (_, prod) = get(&app, &token, "/hosts?label=env=prod").await;
        assert_eq!(prod["total"], 1, "{backend}: {prod}");
        let web10 = &prod["items"][0];
        assert_eq!(web10["id"], json!(rows.web10));
        assert_eq!(web10["display_name"], "Web ten");
        assert_eq!(web10["labels"], json!({"env": "prod"}));
        assert_eq!(web10["restic_version"], "0.17.3");
        assert_eq!(web10["schedule_version"], 3);
        assert_eq!(web10["acked_schedule_version"], 3);

        let (_, repo) = get(&app, &token, &format!("/hosts/{}/repository", rows.web10)).await;
        assert_eq!(repo["url"], "/srv/restic/web", "{backend}: {repo}");
        let (_, groups) = get(
            &app,
            &token,
            &format!("/hosts/{}/source-groups", rows.web10),
        )
        .await;
        let group = &groups["items"][0];
        assert_eq!(group["id"], json!(rows.group), "{backend}: {groups}");
        assert_eq!(group["includes"], json!(["/etc"]));
        assert_eq!(group["excludes"], json!(["*.tmp"]));
        assert_eq!(group["retention_policy"]["keep_daily"], 7);
        assert_eq!(group["retry_max"], 2);
        let (_, schedules) = get(&app, &token, &format!("/hosts/{}/schedules", rows.web10)).await;
        let schedule = &schedules["items"][0];
        assert_eq!(
            schedule["id"],
            json!(rows.schedule),
            "{backend}: {schedules}"
        );
        assert_eq!(schedule["cron_expr"], "0 3 * * *");
        assert_eq!(schedule["source_groups"], json!(["etc"]));

        // Jobs, with the columns later migrations added left empty.
        let (_, jobs) = get(&app, &token, "/jobs").await;
        assert_eq!(jobs["total"], 2, "{backend}: {jobs}");
        let (status, backup) = get(&app, &token, &format!("/jobs/{}", rows.backup)).await;
        assert_eq!(status, StatusCode::OK, "{backend}: {backup}");
        assert_eq!(backup["status"], "succeeded");
        assert_eq!(backup["trigger"], "schedule");
        assert_eq!(backup["schedule_id"], json!(rows.schedule));
        assert_eq!(backup["stats"], json!({"files_new": 3}));
        assert_eq!(backup["last_log_seq"], 2);
        assert_eq!(backup["snapshot_id"], Value::Null);
        let (_, check) = get(&app, &token, &format!("/jobs/{}", rows.check)).await;
        assert_eq!(check["error"], "repository damaged", "{backend}: {check}");
        let (_, logs) = get(&app, &token, &format!("/jobs/{}/logs", rows.backup)).await;
        assert_eq!(
            texts(&logs, "payload"),
            ["open repository", "a warning"],
            "{backend}"
        );

        let (_, snapshots) = get(&app, &token, &format!("/hosts/{}/snapshots", rows.web10)).await;
        assert_eq!(
            snapshots["items"][0]["id"],
            json!(rows.snapshot),
            "{backend}"
        );
        assert_eq!(snapshots["items"][0]["file_count"], 3);
        let (_, audit) = get(&app, &token, "/audit?action=host.update").await;
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == "a-old" && e["detail"]["display_name"] == "Web ten"),
            "{backend}: {audit}"
        );

        // The summaries the fleet-summary migration backfilled from the old jobs.
        let metrics = metrics_text(&app).await;
        for line in [
            "jobs{kind=\"backup\",status=\"succeeded\"} 1\n",
            "jobs{kind=\"check\",status=\"failed\"} 1\n",
        ] {
            assert!(
                metrics.contains(line),
                "{backend}: no {line:?} in {metrics}"
            );
        }
        let last_backup = format!(
            "last_successful_backup_timestamp_seconds{{host_id=\"{}\",group=\"etc\"}} ",
            rows.web10
        );
        let seconds: f64 = metrics
            .lines()
            .find_map(|line| Some(line.split_once(&last_backup)?.1))
            .unwrap_or_else(|| panic!("{backend}: no {last_backup:?} in {metrics}"))
            .parse()
            .unwrap();
        assert_eq!(
            (seconds * 1000.0).round() as i64,
            rows.finished_ms,
            "{backend}"
        );

        // The old credentials: the admin's password, and the old API
        // token with its role cap (a viewer token cannot list users).
        login(&app, "admin", ADMIN_PASSWORD).await;
        let (status, me) = get(&app, &rows.token, "/me").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {me}");
        assert_eq!(me["role"], "viewer");
        let (status, _) = get(&app, &rows.token, "/users").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend}");
        app.stop().await;
        crate::store::announce(&format!("upgrade test: backend={backend} ok"));
    }
}

/// A database with a migration this build does not know is refused at
/// start with a message naming both schemas, and left untouched: the older
/// migrations it lacks are not applied and no admin is created. The server
/// starts on it again once the unknown row is gone.
#[actix_web::test]
async fn a_newer_database_is_refused_untouched() {
    for database in databases() {
        let Database {
            dir,
            url,
            backend,
            pg: _pg,
        } = database;
        let setup_url = url.clone();
        let before = off_thread(move || {
            let mut conn = raw_connection(&setup_url);
            store::run_migrations_until(&mut conn, Some(OLD_SCHEMA)).unwrap();
            conn.batch_execute(&format!(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ('{FUTURE_VERSION}')"
            ))
            .unwrap();
            applied(&mut conn)
        })
        .await;

        let mut config = ServerConfig::for_data_dir(dir.path());
        config.database_url = DatabaseUrl(url.clone());
        let err = match restic_manager::server::start(config.clone()).await {
            Ok(_) => panic!("{backend}: the server started on a newer database"),
            Err(err) => format!("{err:#}"),
        };
        let expected = format!(
            "database schema 2099-12-31-000001 is newer than this restic-manager {} \
             (schema {}) — upgrade restic-manager",
            restic_manager::VERSION,
            store::binary_schema()
        );
        assert!(err.ends_with(&expected), "{backend}: {err}");
        assert!(!err.contains('\n'), "{backend}: one line: {err}");
        assert!(
            !config.key_file.exists(),
            "{backend}: no key file made for a refused database"
        );

        let check_url = url.clone();
        let (after, users) = off_thread(move || {
            let mut conn = raw_connection(&check_url);
            let users = store::users::count(&mut conn).unwrap();
            (applied(&mut conn), users)
        })
        .await;
        assert_eq!(after, before, "{backend}: no migration applied");
        assert_eq!(users, 0, "{backend}: no admin created");

        // Without the unknown migration it is an ordinary older database.
        let fix_url = url.clone();
        off_thread(move || {
            raw_connection(&fix_url)
                .batch_execute(&format!(
                    "DELETE FROM __diesel_schema_migrations WHERE version = '{FUTURE_VERSION}'"
                ))
                .unwrap();
        })
        .await;
        let app = start_in(dir, config).await;
        let (status, _) = get(&app, &app.admin_token, "/hosts").await;
        assert_eq!(status, StatusCode::OK, "{backend}");
        app.stop().await;
        crate::store::announce(&format!("newer database test: backend={backend} ok"));
    }
}

/// `restic-manager migrate` refuses a newer database the same way: one
/// line on stderr naming both schemas, a non-zero exit, nothing applied.
#[test]
fn migrate_refuses_a_newer_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = ServerConfig::for_data_dir(dir.path()).database_url.0;
    let mut conn = raw_connection(&url);
    store::run_migrations_until(&mut conn, Some(OLD_SCHEMA)).unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('{FUTURE_VERSION}')"
    ))
    .unwrap();
    let before = applied(&mut conn);
    drop(conn);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_restic-manager"))
        .env_remove("RESTIC_MANAGER_DATABASE_URL")
        .env_remove("RESTIC_MANAGER_DATA_DIR")
        .env("RESTIC_MANAGER_LOG", "warn")
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot open database "),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "database schema 2099-12-31-000001 is newer than this restic-manager {} (schema {})",
            restic_manager::VERSION,
            store::binary_schema()
        )),
        "{stderr}"
    );
    assert_eq!(
        applied(&mut raw_connection(&url)),
        before,
        "nothing applied"
    );
}
