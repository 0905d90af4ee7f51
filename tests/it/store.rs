//! Store tests: every query module, the idempotent paths, cascades and the
//! migrations, each scenario run on SQLite and on PostgreSQL.
//!
//! PostgreSQL runs when `RESTIC_MANAGER_TEST_POSTGRES_URL` names a server;
//! otherwise each test says it skipped PostgreSQL, or fails when `CI` or
//! `RESTIC_MANAGER_REQUIRE_POSTGRES` is set. Every scenario prints one
//! line per backend (`store test <name>: backend=postgres ok`) straight to
//! stderr, past the test harness's capture, so a run shows which backends
//! were exercised.

// Fixtures outside `#[test]` functions unwrap too: a failed set-up should
// fail the test loudly (clippy's test allowance covers only `#[test]` bodies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod marks;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Barrier};

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Text};

use serde_json::json;

use crate::common::db;

mod hellos;
mod host_state;
mod prepared;
mod schedule_replace;
mod schedule_set;
use restic_manager::ids::{JobId, ScheduleId};
use restic_manager::protocol::{JobProgress, RetentionPolicy};
use restic_manager::store::models::*;
use restic_manager::store::{
    self, api_tokens, audit, enrollment, hosts, job_logs, jobs, missed_runs, repo_stats,
    repositories, schedule_versions, schedules, sessions, snapshots, source_groups, users,
    DbConnection, JobKind, JobStatus, JobTrigger, LogStream, Pool, Role, StoreError,
};

/// A `job.progress` of `job_id` at `percent_done`.
fn progress(job_id: &str, percent_done: f64) -> JobProgress {
    JobProgress {
        job_id: job_id.to_owned(),
        percent_done,
        files_done: 1,
        total_files: 2,
        bytes_done: 10,
        total_bytes: 20,
        eta_seconds: None,
        throughput_bps: 0,
        step: None,
        dumped_bytes: None,
    }
}

/// A fixed "now" so that expiry and ordering do not depend on the clock.
pub(crate) const NOW: i64 = 1_750_000_000_000;
const MINUTE: i64 = 60_000;

// ---------------------------------------------------------------- harness

/// Writes one line to the real stderr, bypassing libtest's capture (which
/// only intercepts the `print!` family), so the backend report always shows.
pub(crate) fn announce(line: &str) {
    let mut err = std::io::stderr().lock();
    // Best effort: a closed stderr must not fail a store test.
    let _ignored = writeln!(err, "{line}");
}

/// True when the environment demands the PostgreSQL run.
pub(crate) fn postgres_required() -> bool {
    ["CI", "RESTIC_MANAGER_REQUIRE_POSTGRES"]
        .iter()
        .any(|name| {
            std::env::var(name)
                .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
                .unwrap_or(false)
        })
}

/// Runs `scenario` on a fresh SQLite database and, when configured, on a
/// fresh PostgreSQL database, reporting each run.
pub(crate) fn for_each_backend(test: &str, scenario: impl Fn(&Pool, &str)) {
    let (_dir, pool) = db::sqlite_pool();
    scenario(&pool, "sqlite");
    announce(&format!("store test {test}: backend=sqlite ok"));

    if !cfg!(feature = "postgres") {
        announce(&format!(
            "store test {test}: postgres skipped: built without the `postgres` feature"
        ));
        return;
    }
    match db::postgres_pool() {
        Some(pg) => {
            scenario(&pg, "postgres");
            announce(&format!("store test {test}: backend=postgres ok"));
        }
        None if postgres_required() => panic!(
            "store test {test}: PostgreSQL is required (CI or RESTIC_MANAGER_REQUIRE_POSTGRES \
             is set) but {} is unset",
            db::POSTGRES_URL_ENV
        ),
        None => announce(&format!(
            "store test {test}: postgres skipped: {} unset",
            db::POSTGRES_URL_ENV
        )),
    }
}

// --------------------------------------------------------------- fixtures

fn add_user(c: &mut DbConnection, username: &str, role: Role) -> User {
    users::insert(
        c,
        &NewUser {
            id: store::new_id(),
            username: username.to_owned(),
            password_hash: format!("$argon2id$v=19$m=65536,t=3,p=4${username}"),
            role,
            disabled: false,
            created_at: NOW,
            updated_at: NOW,
        },
    )
    .unwrap()
}

fn new_host(hostname: &str) -> NewHost {
    NewHost::new(
        store::new_id(),
        hostname,
        format!("agent-{}", store::new_id()),
        NOW,
    )
}

/// The statements `f` sends on `c`, as diesel's instrumentation prints
/// them (the text, then ` -- binds: […]`).
pub(crate) fn statements_of<T>(
    c: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> T,
) -> (T, Vec<String>) {
    use diesel::connection::InstrumentationEvent;
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&sent);
    c.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            seen.lock().unwrap().push(query.to_string());
        }
    });
    let out = f(c);
    c.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    let statements = std::mem::take(&mut *sent.lock().unwrap());
    (out, statements)
}

/// The plan of a captured `statement`, one line per step: SQLite's
/// `EXPLAIN QUERY PLAN` (unbound parameters are NULL to it), PostgreSQL's
/// generic plan (`plan_cache_mode = force_generic_plan`, the server's
/// default) with `params` (`(false, 0)`; empty for none).
pub(crate) fn plan_of(c: &mut DbConnection, statement: &str, params: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct SqlitePlan {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    #[derive(QueryableByName)]
    struct PgPlan {
        #[diesel(sql_type = Text)]
        #[diesel(column_name = "QUERY PLAN")]
        line: String,
    }
    let sql = statement.split(" -- binds:").next().unwrap();
    if store::backend_name(c) == "sqlite" {
        return diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<SqlitePlan>(c)
            .unwrap()
            .into_iter()
            .map(|p| p.detail)
            .collect();
    }
    for setup in [
        "SET plan_cache_mode = force_generic_plan".to_owned(),
        format!("PREPARE planned AS {sql}"),
    ] {
        diesel::sql_query(setup).execute(c).unwrap();
    }
    let plan = diesel::sql_query(format!("EXPLAIN EXECUTE planned{params}"))
        .load::<PgPlan>(c)
        .unwrap();
    for reset in ["DEALLOCATE planned", "RESET plan_cache_mode"] {
        diesel::sql_query(reset).execute(c).unwrap();
    }
    plan.into_iter().map(|p| p.line).collect()
}

pub(crate) fn add_host(c: &mut DbConnection, hostname: &str) -> Host {
    hosts::insert(c, &new_host(hostname)).unwrap()
}

pub(crate) fn add_group(c: &mut DbConnection, host_id: &str, name: &str) -> SourceGroup {
    source_groups::insert(
        c,
        &NewSourceGroup {
            id: store::new_id().into(),
            host_id: host_id.to_owned().into(),
            name: name.to_owned(),
            includes: vec![format!("/{name}")],
            excludes: vec!["*.tmp".to_owned()],
            retention_policy: Some(RetentionPolicy {
                keep_daily: Some(7),
                ..RetentionPolicy::default()
            }),
            retry_max: 2,
            retry_backoff_seconds: 300,
            created_at: NOW,
            updated_at: NOW,
            prune_after_forget: false,
            kind: "files".to_owned(),
            dump: None,
            dump_password_sealed: None,
            options: None,
        },
    )
    .unwrap()
}

pub(crate) fn add_schedule(
    c: &mut DbConnection,
    host_id: &str,
    cron: &str,
    enabled: bool,
) -> Schedule {
    schedules::insert(
        c,
        &NewSchedule {
            id: store::new_id().into(),
            host_id: host_id.to_owned().into(),
            cron_expr: cron.to_owned(),
            enabled,
            created_at: NOW,
            updated_at: NOW,
            kind: restic_manager::store::ScheduleKind::Backup,
        },
    )
    .unwrap()
}

pub(crate) fn add_job(c: &mut DbConnection, host_id: &str, kind: JobKind, created_at: i64) -> Job {
    jobs::insert(
        c,
        &NewJob::new(
            store::new_id(),
            host_id.to_owned(),
            kind,
            JobTrigger::Manual,
            created_at,
        ),
    )
    .unwrap()
}

pub(crate) fn finished(status: JobStatus, at: i64) -> JobFinish {
    JobFinish {
        status,
        finished_at: at,
        exit_code: Some(if status == JobStatus::Succeeded { 0 } else { 1 }),
        error: (status == JobStatus::Failed).then(|| "boom".to_owned()),
        warning: None,
        stats: Some(json!({"files_new": 3})),
    }
}

pub(crate) fn log_line(job_id: &str, seq: i64) -> NewJobLog {
    NewJobLog {
        job_id: job_id.to_owned().into(),
        seq,
        ts: NOW + seq,
        stream: if seq % 2 == 0 {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        },
        payload: format!("line {seq}"),
    }
}

fn is_db_error(err: &DieselError, want: DatabaseErrorKind) -> bool {
    matches!(err, DieselError::DatabaseError(kind, _) if std::mem::discriminant(kind) == std::mem::discriminant(&want))
}

/// The one row of a `SELECT count(*) AS n`.
#[derive(QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

/// How many application tables exist (everything but diesel's own).
fn app_table_count(c: &mut DbConnection) -> i64 {
    let sql = match store::backend_name(c) {
        "sqlite" => {
            // The catalog's FTS5 search index (a virtual table and its
            // shadow tables) has no counterpart table on PostgreSQL (a
            // pg_trgm index there), so it is left out of the count.
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' \
             AND name NOT GLOB 'catalog_fts*'"
        }
        _ => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name <> '__diesel_schema_migrations'"
        }
    };
    diesel::sql_query(sql).get_result::<Count>(c).unwrap().n
}

fn count_rows(c: &mut DbConnection, table: &str) -> i64 {
    diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
        .get_result::<Count>(c)
        .unwrap()
        .n
}

// ------------------------------------------------------------- migrations

/// Both migration folders hold the same migration names, each with an
/// up.sql and a down.sql.
#[test]
fn migration_folders_have_the_same_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |backend: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            for file in ["up.sql", "down.sql"] {
                let path = root.join(backend).join(name).join(file);
                assert!(path.is_file(), "{} is missing", path.display());
            }
        }
        names
    };
    let sqlite = names("sqlite");
    let postgres = names("postgres");
    assert!(!sqlite.is_empty(), "no migrations found");
    assert_eq!(sqlite, postgres, "migration names differ between backends");
    announce(&format!(
        "store test migration_folders_have_the_same_names: {} migration(s) ok",
        sqlite.len()
    ));
}

/// Every migration goes up, down (revert all) and up again, and the schema
/// works afterwards.
#[test]
fn migrations_go_up_down_and_up_again() {
    for_each_backend("migrations_go_up_down_and_up_again", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        assert_eq!(store::backend_name(c), backend);
        // Every table the migrations make (counted, so a new migration's
        // table needs no edit here); the same set comes back below.
        let tables = app_table_count(c);
        assert!(
            tables >= 25,
            "{backend}: only {tables} tables after connect"
        );
        assert_eq!(store::run_migrations(c).unwrap(), 0, "nothing pending");

        let reverted = store::revert_all_migrations(c).unwrap();
        assert!(reverted >= 1);
        assert_eq!(app_table_count(c), 0, "{backend}: tables left after revert");

        assert_eq!(store::run_migrations(c).unwrap(), reverted);
        assert_eq!(app_table_count(c), tables);
        add_user(c, "after-remigration", Role::Admin);
        assert_eq!(users::count(c).unwrap(), 1);
    });
}

/// SQLite connections carry WAL, foreign keys, busy timeout and
/// synchronous=NORMAL on every pooled connection.
#[test]
fn sqlite_pragmas_are_set_on_every_connection() {
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Fk {
        #[diesel(sql_type = BigInt)]
        foreign_keys: i64,
    }
    #[derive(QueryableByName)]
    struct Busy {
        #[diesel(sql_type = BigInt)]
        timeout: i64,
    }
    #[derive(QueryableByName)]
    struct Sync {
        #[diesel(sql_type = BigInt)]
        synchronous: i64,
    }
    let (_dir, pool) = db::sqlite_pool();
    // Hold several connections at once so that they are distinct.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.get().unwrap());
    }
    for conn in &mut held {
        let c = &mut **conn;
        let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
            .get_result(&mut **c)
            .unwrap();
        assert_eq!(mode.journal_mode, "wal");
        let fk: Fk = diesel::sql_query("PRAGMA foreign_keys")
            .get_result(&mut **c)
            .unwrap();
        assert_eq!(fk.foreign_keys, 1);
        let busy: Busy = diesel::sql_query("PRAGMA busy_timeout")
            .get_result(&mut **c)
            .unwrap();
        assert_eq!(busy.timeout, 5000);
        let sync: Sync = diesel::sql_query("PRAGMA synchronous")
            .get_result(&mut **c)
            .unwrap();
        assert_eq!(sync.synchronous, 1, "NORMAL");
    }
    announce("store test sqlite_pragmas_are_set_on_every_connection: backend=sqlite ok");
}

/// PostgreSQL's session settings are on every pooled connection: the
/// application name, the statement timeout and the plan cache mode, the
/// defaults and as configured.
#[test]
fn postgres_session_settings_are_set_on_every_connection() {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        setting: String,
    }
    let show = |c: &mut DbConnection, name: &str| -> String {
        diesel::sql_query(format!("SELECT current_setting('{name}') AS setting"))
            .get_result::<Setting>(c)
            .unwrap()
            .setting
    };
    let Some(pg) = db::postgres_database() else {
        assert!(
            !postgres_required() || !cfg!(feature = "postgres"),
            "PostgreSQL is required but {} is unset",
            db::POSTGRES_URL_ENV
        );
        announce("store test postgres_session_settings_are_set_on_every_connection: skipped");
        return;
    };
    let defaults = store::connect(&pg.url, 2).unwrap();
    let mut held: Vec<_> = (0..2).map(|_| defaults.get().unwrap()).collect();
    for conn in &mut held {
        let c: &mut DbConnection = conn;
        assert_eq!(show(c, "application_name"), "restic-manager");
        assert_eq!(show(c, "plan_cache_mode"), "force_generic_plan");
        assert_eq!(show(c, "statement_timeout"), "0");
    }
    drop(held);
    drop(defaults);
    let mut settings = store::PoolSettings::with_size(2);
    settings.application_name = "rm it".into();
    settings.statement_timeout = Some(std::time::Duration::from_secs(7));
    settings.plan_cache_mode = store::PlanCacheMode::Auto;
    let configured = store::connect_with(&pg.url, &settings).unwrap();
    let mut held: Vec<_> = (0..2).map(|_| configured.get().unwrap()).collect();
    for conn in &mut held {
        let c: &mut DbConnection = conn;
        assert_eq!(show(c, "application_name"), "rm it");
        assert_eq!(show(c, "plan_cache_mode"), "auto");
        assert_eq!(show(c, "statement_timeout"), "7s");
    }
    announce(
        "store test postgres_session_settings_are_set_on_every_connection: backend=postgres ok",
    );
}

/// The offline sweep (`notifications::newly_offline`, on the one writer
/// every ten seconds) finds the hosts whose `host.offline` has not
/// started and starts them in bulk (`notifications::start_new`), queuing
/// the event for the channels that want it. Its reads are single-table,
/// one pass each whatever the statistics say: once SQLite scanned every
/// condition for every offline host (6.1 s a sweep at 10,000 hosts), and
/// PostgreSQL's generic plan made over an empty, analysed table did the
/// same with its anti-join (783 ms a sweep at 10,000 hosts).
#[test]
fn offline_sweep_reads_each_table_once() {
    use restic_manager::store::notifications::{self, ChannelRow};

    for_each_backend("offline_sweep_reads_each_table_once", |pool, backend| {
        let mut conn = pool.get().unwrap();
        let c: &mut DbConnection = &mut conn;
        let seen = store::now_ms() - 3_600_000;
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            let id = store::new_id();
            hosts::insert(c, &NewHost::new(id.clone(), name, id.clone(), seen)).unwrap();
            hosts::set_online(c, &id, false, seen).unwrap();
            ids.push(id);
        }
        // The statements as the sweep sends them, planned while the
        // conditions are empty and analysed.
        if backend == "postgres" {
            diesel::sql_query("ANALYZE notification_conditions")
                .execute(c)
                .unwrap();
        }
        let (first, statements) = statements_of(c, |c| {
            store::notifications::newly_offline(c, store::now_ms()).unwrap()
        });
        assert_eq!(first.len(), 3, "{backend}");
        assert_eq!(statements.len(), 2, "{statements:#?}");
        for statement in statements {
            // The hosts' read binds `online` and the cutoff, the
            // conditions' read the event.
            let params = if statement.contains("$2") {
                "(false, 0)"
            } else {
                "('host.offline')"
            };
            let text = plan_of(c, &statement, params);
            // One table each: no join, no subquery run per row.
            for bad in ["Join", "Nested Loop", "SubPlan", "CORRELATED", "SUBQUERY"] {
                assert!(
                    !text.iter().any(|l| l.contains(bad)),
                    "{backend}: {bad} in {statement}: {text:#?}"
                );
            }
        }

        // A channel for host.offline of the hosts labelled env=prod: only
        // host b has the label.
        let prod = restic_manager::store::models::HostPatch {
            display_name: None,
            labels: Some([("env".to_owned(), "prod".to_owned())].into()),
        };
        hosts::patch(c, &ids[1], &prod, seen).unwrap().unwrap();
        notifications::insert(
            c,
            &ChannelRow {
                id: store::new_id(),
                name: "ops".to_owned(),
                kind: "webhook".to_owned(),
                url: Some("https://ops.example/hook".to_owned()),
                secret_sealed: None,
                recipients: Vec::new(),
                events: vec!["host.offline".to_owned()],
                selector: Some([("env".to_owned(), "prod".to_owned())].into()),
                created_at: seen,
                updated_at: seen,
            },
        )
        .unwrap();
        // Host a's condition started already (one by one).
        store::notifications::emit(c, &restic_manager::notify::host_event(&ids[0], true, seen))
            .unwrap();
        let mut found: Vec<String> = store::notifications::newly_offline(c, store::now_ms())
            .unwrap()
            .into_iter()
            .map(|(id, at)| {
                assert_eq!(at, seen, "{backend}");
                id
            })
            .collect();
        found.sort();
        let mut want = vec![ids[1].clone(), ids[2].clone()];
        want.sort();
        assert_eq!(found, want, "{backend}: the started one is left out");

        // The sweep starts the rest in bulk; the channel gets host b's.
        let now = store::now_ms();
        let events: Vec<_> = found
            .iter()
            .map(|h| restic_manager::notify::host_event(h, true, now))
            .collect();
        let outbox_before = notifications::due(c, i64::MAX, 100).unwrap().len();
        assert_eq!(
            notifications::start_new(c, &events).unwrap(),
            1,
            "{backend}"
        );
        let due = notifications::due(c, i64::MAX, 100).unwrap();
        assert_eq!(due.len(), outbox_before + 1, "{backend}");
        let queued = due.last().unwrap();
        assert_eq!(queued.event, "host.offline");
        assert!(
            queued.payload.contains(ids[1].as_str()),
            "{}",
            queued.payload
        );
        assert!(
            store::notifications::newly_offline(c, store::now_ms())
                .unwrap()
                .is_empty(),
            "{backend}: every condition started"
        );
        // Their ends find the conditions started in bulk.
        for id in &ids {
            assert_eq!(
                store::notifications::open_conditions(
                    c,
                    &[restic_manager::notify::host_event(id, false, now)
                        .condition
                        .as_str()]
                )
                .unwrap()
                .len(),
                1,
                "{backend}"
            );
        }
    });
}

/// Bad URLs and unreachable servers give one-line errors without the password.
#[test]
fn connect_errors_are_clear() {
    let err = store::connect(":memory:", 2).err().unwrap();
    assert!(err.to_string().contains("in-memory SQLite"), "{err}");

    let err = store::connect("mysql://root:hunter2@db/x", 2)
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::InvalidUrl { .. }));
    assert!(!err.to_string().contains("hunter2"), "{err}");

    // A directory that cannot be created: its parent is a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let url = file.join("sub").join("db.sqlite");
    let err = store::connect(url.to_str().unwrap(), 2).err().unwrap();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");

    let err = store::connect("postgres://rm:hunter2@127.0.0.1:1/rm", 2)
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    if cfg!(feature = "postgres") {
        assert!(matches!(err, StoreError::Connect { .. }), "{message}");
        assert!(
            message.contains("postgres://rm:***@127.0.0.1:1/rm"),
            "{message}"
        );
    } else {
        assert!(matches!(err, StoreError::PostgresUnsupported), "{message}");
    }
    announce("store test connect_errors_are_clear: ok");
}

// ------------------------------------------------------------------ users

/// Users: insert, look up, count, list, change role / disabled / password,
/// duplicate usernames refused.
#[test]
fn users_queries() {
    for_each_backend("users_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        assert_eq!(users::count(c).unwrap(), 0);
        let admin = add_user(c, "admin", Role::Admin);
        let bob = add_user(c, "bob", Role::Viewer);
        assert_eq!(users::count(c).unwrap(), 2);

        assert_eq!(users::by_username(c, "admin").unwrap(), Some(admin.clone()));
        assert_eq!(users::by_id(c, &bob.id).unwrap(), Some(bob.clone()));
        assert_eq!(users::by_username(c, "nobody").unwrap(), None);

        let dup = users::insert(
            c,
            &NewUser {
                id: store::new_id(),
                username: "bob".to_owned(),
                password_hash: "x".to_owned(),
                role: Role::Admin,
                disabled: false,
                created_at: NOW,
                updated_at: NOW,
            },
        )
        .unwrap_err();
        assert!(
            is_db_error(&dup, DatabaseErrorKind::UniqueViolation),
            "{dup:?}"
        );

        let page = users::list(c, 1, 1).unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].username, "bob");

        let bob2 = users::update_role(c, &bob.id, Role::Operator, NOW + 1)
            .unwrap()
            .unwrap();
        assert_eq!(bob2.role, Role::Operator);
        assert_eq!(bob2.updated_at, NOW + 1);
        let bob3 = users::set_disabled(c, &bob.id, true, NOW + 2)
            .unwrap()
            .unwrap();
        assert!(bob3.disabled);
        let bob4 = users::update_password(c, &bob.id, "$argon2id$new", NOW + 3)
            .unwrap()
            .unwrap();
        assert_eq!(bob4.password_hash, "$argon2id$new");
        assert!(users::touch_login(c, &bob.id, NOW + 4).unwrap());
        assert_eq!(
            users::by_id(c, &bob.id).unwrap().unwrap().last_login_at,
            Some(NOW + 4)
        );
        assert_eq!(
            users::update_role(c, "missing", Role::Admin, NOW).unwrap(),
            None
        );

        // Debug never shows the password hash.
        assert!(!format!("{bob4:?}").contains("argon2id"));

        assert!(users::delete(c, &bob.id).unwrap());
        assert!(!users::delete(c, &bob.id).unwrap());
        assert_eq!(users::count(c).unwrap(), 1);
    });
}

// ---------------------------------------------------- sessions and tokens

/// Sessions: valid lookup, expiry, disabled users, touch, logout, cleanup.
#[test]
fn sessions_queries() {
    for_each_backend("sessions_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let alice = add_user(c, "alice", Role::Operator);
        let new_session = |hash: &str, expires_at: i64| NewSession {
            id: store::new_id(),
            token_hash: hash.to_owned(),
            user_id: alice.id.clone(),
            csrf_token: "csrf".to_owned(),
            created_at: NOW,
            expires_at,
            last_seen_at: NOW,
            source_addr: Some("192.0.2.1".to_owned()),
        };
        let live = sessions::insert(c, &new_session("hash-live", NOW + 60 * MINUTE)).unwrap();
        sessions::insert(c, &new_session("hash-old", NOW - MINUTE)).unwrap();

        let (found, user) = sessions::find_valid(c, "hash-live", NOW).unwrap().unwrap();
        assert_eq!(found, live);
        assert_eq!(user.id, alice.id);
        assert_eq!(sessions::find_valid(c, "hash-old", NOW).unwrap(), None);
        assert_eq!(sessions::find_valid(c, "hash-unknown", NOW).unwrap(), None);
        assert_eq!(
            sessions::find_valid(c, "hash-live", NOW + 60 * MINUTE).unwrap(),
            None,
            "expires_at itself is expired"
        );

        assert!(sessions::touch(c, &live.id, NOW + 5, None).unwrap());
        assert!(sessions::touch(c, &live.id, NOW + 6, Some(NOW + 120 * MINUTE)).unwrap());
        let (touched, _) = sessions::find_valid(c, "hash-live", NOW + 90 * MINUTE)
            .unwrap()
            .unwrap();
        assert_eq!(touched.last_seen_at, NOW + 6);
        assert_eq!(touched.expires_at, NOW + 120 * MINUTE);

        users::set_disabled(c, &alice.id, true, NOW).unwrap();
        assert_eq!(sessions::find_valid(c, "hash-live", NOW).unwrap(), None);
        users::set_disabled(c, &alice.id, false, NOW).unwrap();

        assert_eq!(sessions::list_for_user(c, &alice.id).unwrap().len(), 2);
        assert_eq!(sessions::delete_expired(c, NOW).unwrap(), 1);
        assert!(sessions::delete_by_token_hash(c, "hash-live").unwrap());
        assert!(!sessions::delete_by_token_hash(c, "hash-live").unwrap());
        sessions::insert(c, &new_session("a", NOW + MINUTE)).unwrap();
        let b = sessions::insert(c, &new_session("b", NOW + MINUTE)).unwrap();
        assert!(sessions::delete(c, &b.id).unwrap());
        assert_eq!(sessions::delete_for_user(c, &alice.id).unwrap(), 1);
        assert!(sessions::list_for_user(c, &alice.id).unwrap().is_empty());
    });
}

/// API tokens: valid lookup (no expiry, expiry, revoked, disabled user),
/// touch, revoke once, list, delete.
#[test]
fn api_tokens_queries() {
    for_each_backend("api_tokens_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let alice = add_user(c, "alice", Role::Admin);
        let bob = add_user(c, "bob", Role::Viewer);
        let token = |user: &User, name: &str, hash: &str, expires_at: Option<i64>| NewApiToken {
            id: store::new_id(),
            user_id: user.id.clone(),
            name: name.to_owned(),
            token_hash: hash.to_owned(),
            created_at: NOW,
            expires_at,
        };
        let forever = api_tokens::insert(c, &token(&alice, "ci", "h-forever", None)).unwrap();
        let short =
            api_tokens::insert(c, &token(&alice, "tmp", "h-short", Some(NOW + MINUTE))).unwrap();
        api_tokens::insert(c, &token(&bob, "bob", "h-bob", None)).unwrap();

        let (found, user) = api_tokens::find_valid(c, "h-forever", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id.as_str(), user.id.as_str()),
            (forever.id.as_str(), alice.id.as_str())
        );
        assert!(api_tokens::find_valid(c, "h-short", NOW).unwrap().is_some());
        assert!(api_tokens::find_valid(c, "h-short", NOW + MINUTE)
            .unwrap()
            .is_none());

        assert!(api_tokens::touch(c, &forever.id, NOW + 7).unwrap());
        assert_eq!(
            api_tokens::get(c, &forever.id)
                .unwrap()
                .unwrap()
                .last_used_at,
            Some(NOW + 7)
        );

        assert!(api_tokens::revoke(c, &forever.id, NOW).unwrap());
        assert!(
            !api_tokens::revoke(c, &forever.id, NOW).unwrap(),
            "revoked once"
        );
        assert!(api_tokens::find_valid(c, "h-forever", NOW)
            .unwrap()
            .is_none());

        users::set_disabled(c, &bob.id, true, NOW).unwrap();
        assert!(api_tokens::find_valid(c, "h-bob", NOW).unwrap().is_none());

        assert_eq!(api_tokens::list(c, None).unwrap().len(), 3);
        assert_eq!(api_tokens::list(c, Some(&alice.id)).unwrap().len(), 2);
        assert!(api_tokens::delete(c, &short.id).unwrap());
        assert_eq!(api_tokens::list(c, Some(&alice.id)).unwrap().len(), 1);
    });
}

// ------------------------------------------------------------- enrolment

fn new_enrollment(hash: &str, expires_at: i64, created_by: Option<&str>) -> NewEnrollmentToken {
    NewEnrollmentToken {
        id: store::new_id(),
        token_hash: hash.to_owned(),
        created_by: created_by.map(str::to_owned),
        created_at: NOW,
        expires_at,
    }
}

/// Enrolment tokens: listed while usable, consumed exactly once, expired
/// and revoked ones refused, and enrolment creates the host atomically.
#[test]
fn enrollment_tokens_are_consumed_once() {
    for_each_backend("enrollment_tokens_are_consumed_once", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let admin = add_user(c, "admin", Role::Admin);
        let good = enrollment::insert(c, &new_enrollment("e-good", NOW + MINUTE, Some(&admin.id)))
            .unwrap();
        enrollment::insert(c, &new_enrollment("e-expired", NOW - 1, None)).unwrap();
        let revoked =
            enrollment::insert(c, &new_enrollment("e-revoked", NOW + MINUTE, None)).unwrap();
        let spare = enrollment::insert(c, &new_enrollment("e-spare", NOW + MINUTE, None)).unwrap();
        assert!(enrollment::revoke(c, &revoked.id, NOW).unwrap());
        assert!(!enrollment::revoke(c, &revoked.id, NOW).unwrap());

        let unused: Vec<String> = enrollment::list_unused(c, NOW)
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(unused.len(), 2);
        assert!(unused.contains(&good.id) && unused.contains(&spare.id));

        // Enrolment with the good token: host created, token spent.
        let host = hosts::enroll_with_token(c, "e-good", &new_host("web-01"), NOW)
            .unwrap()
            .unwrap();
        let spent = enrollment::get(c, &good.id).unwrap().unwrap();
        assert_eq!(spent.used_at, Some(NOW));
        assert_eq!(spent.used_by_host_id.as_deref(), Some(host.id.as_str()));
        assert!(schedule_versions::get(c, &host.id).unwrap().is_some());

        // The same token again, an expired one, a revoked one, an unknown
        // one: refused, and no host is left behind.
        for hash in ["e-good", "e-expired", "e-revoked", "e-unknown"] {
            let refused = hosts::enroll_with_token(c, hash, &new_host("intruder"), NOW).unwrap();
            assert!(refused.is_none(), "{hash} must be refused");
        }
        let all = hosts::list(
            c,
            &hosts::HostFilter {
                include_revoked: true,
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.total, 1, "refused enrolments leave no host");

        // consume() directly: once only; a used token cannot be revoked.
        let other = add_host(c, "web-02");
        assert!(enrollment::consume(c, "e-spare", &other.id, NOW)
            .unwrap()
            .is_some());
        assert!(enrollment::consume(c, "e-spare", &other.id, NOW)
            .unwrap()
            .is_none());
        assert!(!enrollment::revoke(c, &spare.id, NOW).unwrap());
        assert!(enrollment::list_unused(c, NOW).unwrap().is_empty());

        // Clean-up of tokens that can no longer be used.
        assert_eq!(enrollment::delete_stale(c, NOW, NOW + 1).unwrap(), 4);
    });
}

/// Eight threads race to spend one enrolment token: exactly one wins.
#[test]
fn enrollment_token_race_has_one_winner() {
    for_each_backend("enrollment_token_race_has_one_winner", |pool, _| {
        {
            let mut conn = pool.get().unwrap();
            enrollment::insert(&mut conn, &new_enrollment("e-race", NOW + MINUTE, None)).unwrap();
        }
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let pool = pool.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let mut conn = pool.get().unwrap();
                    barrier.wait();
                    hosts::enroll_with_token(
                        &mut conn,
                        "e-race",
                        &new_host(&format!("racer-{i}")),
                        NOW,
                    )
                    .unwrap()
                    .is_some()
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1);
        let mut conn = pool.get().unwrap();
        assert_eq!(count_rows(&mut conn, "hosts"), 1);
    });
}

// ------------------------------------------------------------------ hosts

/// Hosts: agent-token lookup, hello, presence, filters and search,
/// patch, revoke, counts.
#[test]
fn hosts_queries() {
    for_each_backend("hosts_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let web = add_host(c, "Web-01");
        let db_host = add_host(c, "db_01");
        let _other = add_host(c, "dbx01");

        let v = schedule_versions::get(c, &web.id).unwrap().unwrap();
        assert_eq!((v.version, v.pushed_version, v.acked_version), (1, 0, 0));

        assert_eq!(
            hosts::find_by_agent_token(c, &web.agent_token_hash).unwrap(),
            Some(web.clone())
        );
        assert!(hosts::find_by_agent_token(c, "nope").unwrap().is_none());

        let hello = HostHello {
            hostname: "web-01.example".to_owned(),
            os: "linux".to_owned(),
            arch: "arm64".to_owned(),
            agent_version: Some("0.1.0".to_owned()),
            restic_version: Some("0.14.0".to_owned()),
            boot_time: Some(NOW - 3_600_000),
            capabilities: Some(vec!["outbox".to_owned()]),
        };
        let updated = hosts::update_from_hello(c, &web.id, &hello, NOW + 10)
            .unwrap()
            .unwrap();
        assert_eq!(updated.hostname, "web-01.example");
        assert_eq!(updated.arch, "arm64");
        assert_eq!(updated.restic_version.as_deref(), Some("0.14.0"));
        assert_eq!(updated.capabilities, ["outbox"]);
        assert!(updated.online);
        assert_eq!(updated.last_seen_at, Some(NOW + 10));

        let online_only = |c: &mut DbConnection, online: bool| {
            hosts::list(
                c,
                &hosts::HostFilter {
                    online: Some(online),
                    limit: 50,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let online = online_only(c, true);
        assert_eq!(online.total, 1);
        assert_eq!(online.items[0].host.id, web.id);
        assert_eq!(online.items[0].schedule.as_ref().unwrap().version, 1);
        assert_eq!(online_only(c, false).total, 2);

        // Search: case-insensitive, and `_` is a literal, not a wildcard.
        let search = |c: &mut DbConnection, q: &str| {
            hosts::list(
                c,
                &hosts::HostFilter {
                    query: Some(q.to_owned()),
                    limit: 50,
                    ..Default::default()
                },
            )
            .unwrap()
            .items
            .into_iter()
            .map(|h| h.host.hostname)
            .collect::<Vec<_>>()
        };
        assert_eq!(search(c, "WEB"), vec!["web-01.example"]);
        assert_eq!(search(c, "db_"), vec!["db_01"]);
        assert_eq!(search(c, "db"), vec!["db_01", "dbx01"]);

        // Paging keeps the total.
        let page = hosts::list(
            c,
            &hosts::HostFilter {
                limit: 1,
                offset: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((page.items.len(), page.total), (1, 3));
        assert_eq!(page.items[0].host.hostname, "dbx01");

        let patched = hosts::patch(
            c,
            &db_host.id,
            &HostPatch {
                display_name: Some(Some("Primary DB".to_owned())),
                labels: Some([("env".to_owned(), "prod".to_owned())].into()),
            },
            NOW + 20,
        )
        .unwrap()
        .unwrap();
        assert_eq!(patched.display_name.as_deref(), Some("Primary DB"));
        assert_eq!(
            search(c, "primary"),
            vec!["db_01"],
            "search sees display names"
        );
        let cleared = hosts::patch(
            c,
            &db_host.id,
            &HostPatch {
                display_name: Some(None),
                labels: None,
            },
            NOW + 21,
        )
        .unwrap()
        .unwrap();
        assert_eq!(cleared.display_name, None);
        assert_eq!(cleared.labels["env"], "prod");

        assert!(hosts::set_online(c, &db_host.id, true, NOW + 30).unwrap());
        assert_eq!(
            hosts::counts(c).unwrap(),
            hosts::HostCounts {
                online: 2,
                offline: 1
            }
        );
        assert_eq!(
            hosts::touch_last_seen(c, &[web.id.to_string(), db_host.id.to_string()], NOW + 40)
                .unwrap(),
            2
        );
        assert_eq!(
            hosts::get(c, &db_host.id).unwrap().unwrap().last_seen_at,
            Some(NOW + 40)
        );
        assert_eq!(hosts::set_offline_all(c).unwrap(), 2);
        assert_eq!(hosts::counts(c).unwrap().online, 0);

        // Revoke: token dead, hello refused, hidden from the default list.
        assert!(hosts::set_online(c, &web.id, true, NOW).unwrap());
        assert!(hosts::revoke(c, &web.id, NOW + 50).unwrap());
        assert!(!hosts::revoke(c, &web.id, NOW + 51).unwrap());
        let revoked = hosts::get(c, &web.id).unwrap().unwrap();
        assert!(!revoked.online);
        assert_eq!(revoked.revoked_at, Some(NOW + 50));
        assert!(hosts::find_by_agent_token(c, &web.agent_token_hash)
            .unwrap()
            .is_none());
        assert!(hosts::update_from_hello(c, &web.id, &hello, NOW + 60)
            .unwrap()
            .is_none());
        assert!(!hosts::set_online(c, &web.id, true, NOW + 60).unwrap());
        assert_eq!(search(c, "web"), Vec::<String>::new());
        assert_eq!(hosts::counts(c).unwrap().offline, 2);
        let with_version = hosts::get_with_version(c, &web.id).unwrap().unwrap();
        assert_eq!(with_version.schedule.unwrap().host_id, web.id);
        assert!(!format!("{revoked:?}").contains(&web.agent_token_hash));
    });
}

// ----------------------------------------------------------- repositories

/// The live-host count the host list's unfiltered total reads follows
/// every insert, revocation and delete (triggers, both backends), and the
/// list's total is the count's whether it reads that row or counts.
#[test]
fn live_host_count_follows_inserts_revocations_and_deletes() {
    for_each_backend("live_host_count_follows", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let counted =
            |c: &mut DbConnection| hosts::count(c, &hosts::HostFilter::default()).unwrap();
        assert_eq!(hosts::live_count(c).unwrap(), 0);
        let ids: Vec<String> = (0..5)
            .map(|i| add_host(c, &format!("live-{i}")).id.to_string())
            .collect();
        assert_eq!(hosts::live_count(c).unwrap(), 5);
        assert!(hosts::revoke(c, &ids[0], NOW).unwrap());
        assert!(!hosts::revoke(c, &ids[0], NOW + 1).unwrap(), "revoked once");
        assert_eq!(hosts::live_count(c).unwrap(), 4);
        // Deleting a revoked host leaves the live count; a live one lowers it.
        assert!(hosts::delete(c, &ids[0]).unwrap());
        assert!(hosts::delete(c, &ids[1]).unwrap());
        assert_eq!(hosts::live_count(c).unwrap(), 3);
        assert_eq!(counted(c), 3);
        // A full page of the unfiltered list (total from the row), and a
        // filtered one (counted), agree with the count.
        let page = hosts::list(
            c,
            &hosts::HostFilter {
                limit: 2,
                ..hosts::HostFilter::default()
            },
        )
        .unwrap();
        assert_eq!((page.items.len(), page.total), (2, 3));
        let page = hosts::list(
            c,
            &hosts::HostFilter {
                online: Some(false),
                limit: 1,
                ..hosts::HostFilter::default()
            },
        )
        .unwrap();
        assert_eq!((page.items.len(), page.total), (1, 3));
    });
}

/// A repository password sealed as bytes is stored exactly as given (every
/// byte value), secrets left out keep their value, and a write sealed for
/// the wrong repository id is refused.
#[test]
fn repository_secrets_are_stored_as_given() {
    for_each_backend("repository_secrets_are_stored_as_given", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web-01");
        assert!(repositories::get_for_host(c, &host.id).unwrap().is_none());

        let sealed_password: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
        let sealed_credential = vec![0xde, 0xad, 0xbe, 0xef];
        let repo_id = store::new_id();
        let created = repositories::upsert_for_host(
            c,
            &host.id,
            &RepositoryUpsert {
                id: repo_id.clone(),
                url: "rest:https://backup.example/web-01".to_owned(),
                username: Some(Some("web".to_owned())),
                password_sealed: Some(Some(sealed_password.clone())),
                credential_sealed: Some(Some(sealed_credential.clone())),
                hook_shell: None,
            },
            NOW,
        )
        .unwrap()
        .unwrap();
        assert_eq!(created.id, repo_id);
        assert_eq!(
            created.password_sealed.as_deref(),
            Some(&sealed_password[..])
        );
        assert!(created.password_set() && created.credential_set());
        assert_eq!(created.hook_shell, None);
        assert_eq!(
            hosts::get(c, &host.id).unwrap().unwrap().repository_id,
            Some(repo_id.clone())
        );
        // Debug shows "set", never the bytes.
        assert!(format!("{created:?}").contains("password_set: true"));

        let read = repositories::get_for_host(c, &host.id).unwrap().unwrap();
        assert_eq!(read.password_sealed, Some(sealed_password.clone()));
        assert_eq!(read.credential_sealed, Some(sealed_credential));
        assert_eq!(repositories::get(c, &repo_id).unwrap(), Some(read));

        // Change the URL only: secrets stay; then clear the credential.
        let updated = repositories::upsert_for_host(
            c,
            &host.id,
            &RepositoryUpsert {
                id: repo_id.clone(),
                url: "s3:s3.example/bucket".to_owned(),
                credential_sealed: Some(None),
                ..Default::default()
            },
            NOW + 1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(updated.url, "s3:s3.example/bucket");
        assert_eq!(updated.username.as_deref(), Some("web"));
        assert_eq!(updated.password_sealed, Some(sealed_password));
        assert!(!updated.credential_set());
        assert_eq!((updated.created_at, updated.updated_at), (NOW, NOW + 1));

        let wrong = repositories::upsert_for_host(
            c,
            &host.id,
            &RepositoryUpsert {
                id: store::new_id(),
                url: "elsewhere".to_owned(),
                ..Default::default()
            },
            NOW + 2,
        )
        .unwrap_err();
        assert!(
            is_db_error(&wrong, DatabaseErrorKind::CheckViolation),
            "{wrong:?}"
        );
        assert_eq!(
            repositories::get(c, &repo_id).unwrap().unwrap().url,
            "s3:s3.example/bucket"
        );

        assert!(repositories::upsert_for_host(
            c,
            "no-such-host",
            &RepositoryUpsert {
                id: store::new_id(),
                url: "x".to_owned(),
                ..Default::default()
            },
            NOW
        )
        .unwrap()
        .is_none());
    });
}

// ------------------------------------------------- groups and schedules

/// Source groups: unique name per host, scoped lookups, update (clearing
/// the policy), delete.
#[test]
fn source_groups_queries() {
    for_each_backend("source_groups_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let a = add_host(c, "a");
        let b = add_host(c, "b");
        let etc = add_group(c, &a.id, "etc");
        let home = add_group(c, &a.id, "home");
        add_group(c, &b.id, "etc"); // the same name on another host is fine

        let dup = source_groups::insert(
            c,
            &NewSourceGroup {
                id: store::new_id().into(),
                host_id: a.id.clone(),
                name: "etc".to_owned(),
                includes: Vec::new(),
                excludes: Vec::new(),
                retention_policy: None,
                retry_max: 0,
                retry_backoff_seconds: 60,
                created_at: NOW,
                updated_at: NOW,
                prune_after_forget: false,
                kind: "files".to_owned(),
                dump: None,
                dump_password_sealed: None,
                options: None,
            },
        )
        .unwrap_err();
        assert!(
            is_db_error(&dup, DatabaseErrorKind::UniqueViolation),
            "{dup:?}"
        );

        assert_eq!(source_groups::get(c, &etc.id).unwrap(), Some(etc.clone()));
        assert_eq!(
            source_groups::get_for_host(c, &a.id, &etc.id).unwrap(),
            Some(etc.clone())
        );
        assert_eq!(
            source_groups::get_for_host(c, &b.id, &etc.id).unwrap(),
            None
        );
        assert_eq!(
            source_groups::by_name(c, &a.id, "home").unwrap(),
            Some(home.clone())
        );
        let names: Vec<String> = source_groups::list_for_host(c, &a.id)
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, vec!["etc", "home"]);

        let changed = source_groups::update(
            c,
            &home.id,
            &SourceGroupChanges {
                excludes: Some(vec!["cache".to_owned()]),
                retention_policy: Some(None),
                retry_max: Some(5),
                ..Default::default()
            },
            NOW + 1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(changed.excludes, ["cache"]);
        assert_eq!(changed.retention_policy, None);
        assert_eq!(changed.retry_max, 5);
        assert_eq!(changed.includes, home.includes);
        assert_eq!(changed.updated_at, NOW + 1);

        let rename_clash = source_groups::update(
            c,
            &home.id,
            &SourceGroupChanges {
                name: Some("etc".to_owned()),
                ..Default::default()
            },
            NOW,
        )
        .unwrap_err();
        assert!(is_db_error(
            &rename_clash,
            DatabaseErrorKind::UniqueViolation
        ));

        assert!(source_groups::delete(c, &home.id).unwrap());
        assert!(!source_groups::delete(c, &home.id).unwrap());
        assert!(
            source_groups::update(c, &home.id, &SourceGroupChanges::default(), NOW)
                .unwrap()
                .is_none()
        );
    });
}

/// Schedules: CRUD, setting groups (same host only), the schedule.set
/// shape, enabled schedules of live hosts, link cascades.
#[test]
fn schedules_queries() {
    for_each_backend("schedules_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "other");
        let etc = add_group(c, &host.id, "etc");
        let home = add_group(c, &host.id, "home");
        let foreign = add_group(c, &other.id, "foreign");

        let nightly = add_schedule(c, &host.id, "0 2 * * *", true);
        let weekly = add_schedule(c, &host.id, "0 3 * * 0", false);
        let other_sched = add_schedule(c, &other.id, "*/5 * * * *", true);

        schedules::set_groups(
            c,
            &nightly.id,
            &[home.id.to_string(), etc.id.to_string(), etc.id.to_string()],
        )
        .unwrap();
        let names: Vec<String> = schedules::groups_of(c, &nightly.id)
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, vec!["etc", "home"]);

        // A group of another host is refused and nothing changes.
        let err = schedules::set_groups(c, &nightly.id, &[foreign.id.to_string()]).unwrap_err();
        assert!(
            is_db_error(&err, DatabaseErrorKind::ForeignKeyViolation),
            "{err:?}"
        );
        assert_eq!(schedules::groups_of(c, &nightly.id).unwrap().len(), 2);
        let missing = schedules::set_groups(c, &"no-such-schedule".into(), &[]).unwrap_err();
        assert!(matches!(missing, DieselError::NotFound));

        schedules::set_groups(c, &weekly.id, &[etc.id.to_string()]).unwrap();
        let canonical = schedules::list_with_groups_for_host(c, &host.id).unwrap();
        assert_eq!(canonical.len(), 2);
        assert_eq!(canonical[0].schedule.id, nightly.id);
        let names: Vec<&str> = canonical[0]
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, ["etc", "home"]);
        assert_eq!(canonical[1].schedule.id, weekly.id);
        assert_eq!(canonical[1].groups, vec![etc.clone()]);
        // A schedule without groups is listed once, with none.
        let bare = schedules::list_with_groups_for_host(c, &other.id).unwrap();
        assert_eq!(bare.len(), 1);
        assert_eq!(bare[0].schedule.id, other_sched.id);
        assert!(bare[0].groups.is_empty());

        assert_eq!(schedules::get(c, &weekly.id).unwrap(), Some(weekly.clone()));
        assert_eq!(
            schedules::get_for_host(c, &other.id, &weekly.id).unwrap(),
            None
        );
        let mut exprs = schedules::enabled_cron_exprs(c).unwrap();
        exprs.sort();
        assert_eq!(exprs, vec!["*/5 * * * *", "0 2 * * *"]);
        let enabled = |c: &mut _, expr: &str, before: i64| -> Vec<ScheduleId> {
            schedules::list_enabled_with_cron(c, expr, before)
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect()
        };
        assert_eq!(
            enabled(c, "*/5 * * * *", i64::MAX),
            vec![other_sched.id.clone()]
        );
        assert_eq!(enabled(c, "0 2 * * *", i64::MAX), vec![nightly.id.clone()]);
        // Changed at or after the bound: no cron time left to miss.
        assert!(enabled(c, "0 2 * * *", nightly.updated_at).is_empty());
        assert_eq!(enabled(c, "0 3 * * 0", i64::MAX), Vec::<ScheduleId>::new());
        hosts::revoke(c, &other.id, NOW).unwrap();
        assert!(enabled(c, "*/5 * * * *", i64::MAX).is_empty());
        assert_eq!(
            schedules::list_enabled_with_cron(c, "0 2 * * *", i64::MAX).unwrap(),
            vec![nightly.clone()]
        );

        let changed = schedules::update(
            c,
            &weekly.id,
            &ScheduleChanges {
                cron_expr: Some("0 4 * * 0".to_owned()),
                enabled: Some(true),
                kind: None,
            },
            NOW + 1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (changed.cron_expr.as_str(), changed.enabled),
            ("0 4 * * 0", true)
        );

        // Deleting a group drops its links; deleting a schedule drops its own.
        source_groups::delete(c, &etc.id).unwrap();
        assert!(schedules::groups_of(c, &weekly.id).unwrap().is_empty());
        assert!(schedules::delete(c, &nightly.id).unwrap());
        assert_eq!(count_rows(c, "schedule_source_groups"), 0);
        schedules::set_groups(c, &weekly.id, &[]).unwrap();
        assert_eq!(
            schedules::list_for_host(c, &host.id).unwrap(),
            vec![changed]
        );
    });
}

/// Schedule versions: bump is monotonic, pushes are recorded, an ack
/// counts only for the current version.
#[test]
fn schedule_versions_queries() {
    for_each_backend("schedule_versions_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        assert_eq!(schedule_versions::bump(c, &host.id).unwrap(), 2);
        assert_eq!(schedule_versions::bump(c, &host.id).unwrap(), 3);
        assert!(schedule_versions::mark_pushed(c, &host.id, 3, NOW).unwrap());
        assert!(
            !schedule_versions::ack(c, &host.id, 2, NOW + 1).unwrap(),
            "stale ack"
        );
        assert!(schedule_versions::ack(c, &host.id, 3, NOW + 2).unwrap());
        let v = schedule_versions::get(c, &host.id).unwrap().unwrap();
        assert_eq!(
            (
                v.version,
                v.pushed_version,
                v.acked_version,
                v.pushed_at,
                v.acked_at
            ),
            (3, 3, 3, Some(NOW), Some(NOW + 2))
        );
        assert_eq!(schedule_versions::bump(c, &host.id).unwrap(), 4);
        assert!(!schedule_versions::ack(c, &host.id, 3, NOW + 3).unwrap());
        assert_eq!(
            schedule_versions::get(c, &host.id)
                .unwrap()
                .unwrap()
                .acked_version,
            3
        );
        assert!(schedule_versions::get(c, "nope").unwrap().is_none());
        assert!(!schedule_versions::mark_pushed(c, "nope", 1, NOW).unwrap());

        // A host row without a version row (made outside hosts::insert)
        // still bumps: a missing row counts as 0.
        let bare = new_host("bare");
        diesel::insert_into(store::schema::hosts::table)
            .values(bare.clone())
            .execute(&mut **c)
            .unwrap();
        assert_eq!(schedule_versions::bump(c, &bare.id).unwrap(), 1);
    });
}

// ------------------------------------------------------------------- jobs

/// Jobs: queue order, retry gating, status moves, progress, listing with
/// filters and totals, metrics counts.
#[test]
fn jobs_queries() {
    for_each_backend("jobs_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "other");
        let group = add_group(c, &host.id, "etc");

        let first = jobs::insert(
            c,
            &NewJob {
                source_group_id: Some(group.id.clone()),
                tag: Some("etc".to_owned()),
                includes: vec!["/etc".to_owned()],
                ..NewJob::new(
                    store::new_id(),
                    host.id.clone(),
                    JobKind::Backup,
                    JobTrigger::Manual,
                    NOW,
                )
            },
        )
        .unwrap();
        assert_eq!(first.status, JobStatus::Queued);
        assert_eq!(first.attempt, 1);
        assert_eq!(first.last_log_seq, 0);
        let second = add_job(c, &host.id, JobKind::Check, NOW + 1);
        let retry = jobs::insert(
            c,
            &NewJob {
                attempt: 2,
                first_attempt_id: Some(first.id.clone()),
                retry_at: Some(NOW + 10 * MINUTE),
                ..NewJob::new(
                    store::new_id(),
                    host.id.clone(),
                    JobKind::Backup,
                    JobTrigger::Retry,
                    NOW + 2,
                )
            },
        )
        .unwrap();
        let elsewhere = add_job(c, &other.id, JobKind::Prune, NOW + 3);

        let queued = |c: &mut DbConnection, now: i64| -> Vec<JobId> {
            jobs::queued_for_host(c, &host.id, now)
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect()
        };
        assert_eq!(queued(c, NOW), vec![first.id.clone(), second.id.clone()]);
        assert_eq!(
            queued(c, NOW + 10 * MINUTE),
            vec![first.id.clone(), second.id.clone(), retry.id.clone()]
        );
        assert!(jobs::due_retries(c, NOW, 10).unwrap().is_empty());
        assert_eq!(
            jobs::due_retries(c, NOW + 10 * MINUTE, 10).unwrap()[0].id,
            retry.id
        );
        let chain: Vec<i32> = jobs::attempts(c, &first.id)
            .unwrap()
            .into_iter()
            .map(|j| j.attempt)
            .collect();
        assert_eq!(chain, vec![1, 2]);
        // The same chain from either attempt in one statement, with the
        // host's name; a job never retried is its own chain.
        for from in [&first.id, &retry.id] {
            let (chain, label) = jobs::chain_with_host_label(c, from).unwrap();
            let ids: Vec<&str> = chain.iter().map(|j| j.id.as_str()).collect();
            assert_eq!(ids, vec![first.id.as_str(), retry.id.as_str()]);
            assert_eq!(label.as_deref(), Some("web"));
        }
        let (alone, _) = jobs::chain_with_host_label(c, &second.id).unwrap();
        assert_eq!(alone.len(), 1);
        assert!(jobs::chain_with_host_label(c, "nope").unwrap().0.is_empty());

        // dispatched → accepted → running → progress.
        assert!(jobs::mark_dispatched(c, &first.id, NOW + 5).unwrap());
        assert!(jobs::mark_accepted(c, &first.id, NOW + 6).unwrap());
        assert!(
            !jobs::mark_accepted(c, &first.id, NOW + 7).unwrap(),
            "accepted once"
        );
        assert!(jobs::mark_started(c, &first.id, NOW + 8).unwrap());
        assert!(
            !jobs::mark_started(c, &first.id, NOW + 9).unwrap(),
            "started once"
        );
        assert!(jobs::update_progress(c, &progress(&first.id, 0.5)).unwrap());
        let running = jobs::running_for_host(c, &host.id).unwrap();
        assert_eq!(running.len(), 1);
        let job = &running[0];
        assert_eq!(job.status, JobStatus::Running);
        assert_eq!(
            (job.dispatched_at, job.accepted_at, job.started_at),
            (Some(NOW + 5), Some(NOW + 6), Some(NOW + 8))
        );
        assert_eq!(job.progress, Some(progress(&first.id, 0.5)));
        assert_eq!(queued(c, NOW), vec![second.id.clone()]);

        // A dispatched retry is no longer "due".
        assert!(jobs::mark_dispatched(c, &retry.id, NOW + 10 * MINUTE).unwrap());
        assert!(jobs::due_retries(c, NOW + 10 * MINUTE, 10)
            .unwrap()
            .is_empty());

        // Finishing is in finish_is_idempotent; here: progress after the end.
        jobs::finish(c, &first.id, &finished(JobStatus::Succeeded, NOW + 20)).unwrap();
        assert!(!jobs::update_progress(c, &progress(&first.id, 0.9)).unwrap());
        assert!(!jobs::mark_dispatched(c, &first.id, NOW + 21).unwrap());

        // Listing: filters, newest first, totals with paging.
        let all = jobs::list(
            c,
            &jobs::JobFilter {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.total, 4);
        assert_eq!(
            all.items.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            vec![elsewhere.id.clone(), retry.id.clone()]
        );
        let mut list = |f: jobs::JobFilter| {
            jobs::list(c, &jobs::JobFilter { limit: 50, ..f })
                .unwrap()
                .items
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            list(jobs::JobFilter {
                host_id: Some(host.id.to_string()),
                kind: Some(JobKind::Backup),
                ..Default::default()
            }),
            vec![retry.id.clone(), first.id.clone()]
        );
        assert_eq!(
            list(jobs::JobFilter {
                status: Some(JobStatus::Succeeded),
                ..Default::default()
            }),
            vec![first.id.clone()]
        );
        assert_eq!(
            list(jobs::JobFilter {
                source_group_id: Some(group.id.to_string()),
                ..Default::default()
            }),
            vec![first.id.clone()]
        );
        assert_eq!(
            list(jobs::JobFilter {
                since: Some(NOW + 1),
                until: Some(NOW + 3),
                ..Default::default()
            }),
            vec![retry.id.clone(), second.id.clone()]
        );

        let counts = jobs::count_by_kind_status(c).unwrap();
        assert!(counts.contains(&(JobKind::Backup, JobStatus::Succeeded, 1)));
        assert!(counts.contains(&(JobKind::Backup, JobStatus::Queued, 1)));
        assert!(counts.contains(&(JobKind::Check, JobStatus::Queued, 1)));
        assert!(counts.contains(&(JobKind::Prune, JobStatus::Queued, 1)));
        assert_eq!(counts.iter().map(|(_, _, n)| n).sum::<i64>(), 4);
        // A full page filtered by kind and status alone takes its total
        // from those summary rows: the same as a count.
        for (kind, status, want) in [
            (None, Some(JobStatus::Queued), 3),
            (Some(JobKind::Backup), None, 2),
            (Some(JobKind::Backup), Some(JobStatus::Queued), 1),
            (None, None, 4),
        ] {
            let page = jobs::list(
                c,
                &jobs::JobFilter {
                    kind,
                    status,
                    limit: 1,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(page.total, want, "{kind:?} {status:?}");
        }

        // Scheduled runs are found by (schedule, time).
        let sched = add_schedule(c, &host.id, "0 2 * * *", true);
        let fired = jobs::insert(
            c,
            &NewJob {
                schedule_id: Some(sched.id.clone()),
                scheduled_at: Some(NOW - MINUTE),
                ..NewJob::new(
                    store::new_id(),
                    host.id.clone(),
                    JobKind::Backup,
                    JobTrigger::Schedule,
                    NOW,
                )
            },
        )
        .unwrap();
        assert_eq!(
            jobs::for_schedule_run(c, &sched.id, NOW - MINUTE).unwrap(),
            vec![fired.clone()]
        );
        assert!(jobs::for_schedule_run(c, &sched.id, NOW)
            .unwrap()
            .is_empty());
        assert!(jobs::delete(c, &fired.id).unwrap());
        assert!(jobs::get(c, &fired.id).unwrap().is_none());
    });
}

/// The same job.finished twice applies once; a report after a cancel
/// changes nothing; non-terminal statuses and unknown jobs are handled.
#[test]
fn finish_is_idempotent() {
    for_each_backend("finish_is_idempotent", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let job = add_job(c, &host.id, JobKind::Backup, NOW);
        jobs::mark_started(c, &job.id, NOW + 1).unwrap();

        let first = jobs::finish(c, &job.id, &finished(JobStatus::Failed, NOW + 2)).unwrap();
        let jobs::FinishOutcome::Applied(done) = &first else {
            panic!("first finish must apply: {first:?}");
        };
        assert!(first.applied());
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.error.as_deref(), Some("boom"));
        assert_eq!(done.finished_at, Some(NOW + 2));
        assert_eq!(done.exit_code, Some(1));

        // Re-delivery (even with a different body) changes nothing.
        let again = jobs::finish(c, &job.id, &finished(JobStatus::Succeeded, NOW + 9)).unwrap();
        assert_eq!(again, jobs::FinishOutcome::AlreadyFinished(done.clone()));
        assert!(!again.applied());
        assert_eq!(jobs::get(c, &job.id).unwrap().as_ref(), Some(done));
        assert!(!jobs::mark_started(c, &job.id, NOW + 10).unwrap());

        // Cancel a queued job directly; the agent's late report is ignored.
        let queued = jobs::insert(
            c,
            &NewJob {
                retry_at: Some(NOW + MINUTE),
                ..NewJob::new(
                    store::new_id(),
                    host.id.clone(),
                    JobKind::Backup,
                    JobTrigger::Retry,
                    NOW,
                )
            },
        )
        .unwrap();
        let cancel = JobFinish {
            status: JobStatus::Cancelled,
            finished_at: NOW + 3,
            exit_code: None,
            error: Some("cancelled by admin".to_owned()),
            warning: None,
            stats: None,
        };
        let cancelled = jobs::finish(c, &queued.id, &cancel).unwrap();
        assert!(cancelled.applied());
        let late = jobs::finish(c, &queued.id, &finished(JobStatus::Succeeded, NOW + 4)).unwrap();
        let jobs::FinishOutcome::AlreadyFinished(row) = late else {
            panic!("late report must not apply");
        };
        assert_eq!(row.status, JobStatus::Cancelled);
        assert_eq!(row.retry_at, None, "finishing clears a pending retry");

        assert_eq!(
            jobs::finish(c, "no-such-job", &finished(JobStatus::Failed, NOW)).unwrap(),
            jobs::FinishOutcome::NotFound
        );
        let running = add_job(c, &host.id, JobKind::Check, NOW);
        let bad = jobs::finish(
            c,
            &running.id,
            &JobFinish {
                status: JobStatus::Running,
                ..finished(JobStatus::Failed, NOW)
            },
        )
        .unwrap_err();
        assert!(matches!(bad, DieselError::QueryBuilderError(_)));
        assert_eq!(
            jobs::get(c, &running.id).unwrap().unwrap().status,
            JobStatus::Queued
        );
    });
}

// ------------------------------------------------------------------- logs

/// Log lines: stored once per (job, seq), duplicates and unknown jobs
/// counted and skipped, last_log_seq follows, paging after a seq.
#[test]
fn job_logs_are_stored_once() {
    for_each_backend("job_logs_are_stored_once", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let a = add_job(c, &host.id, JobKind::Backup, NOW);
        let b = add_job(c, &host.id, JobKind::Backup, NOW + 1);

        let batch: Vec<NewJobLog> = (1..=3)
            .map(|s| log_line(&a.id, s))
            .chain([log_line(&b.id, 1)])
            .collect();
        let outcome = job_logs::insert_batch(c, &batch).unwrap();
        assert_eq!(
            outcome,
            job_logs::LogBatchOutcome {
                inserted: 4,
                duplicates: 0,
                unknown_job: 0
            }
        );

        // Replay with one new line, one line of an unknown job, and a
        // duplicate inside the batch itself.
        let replay: Vec<NewJobLog> = (1..=4)
            .map(|s| log_line(&a.id, s))
            .chain([log_line("ghost-job", 1), log_line(&a.id, 4)])
            .collect();
        let outcome = job_logs::insert_batch(c, &replay).unwrap();
        assert_eq!(
            outcome,
            job_logs::LogBatchOutcome {
                inserted: 1,
                duplicates: 4,
                unknown_job: 1
            }
        );
        assert_eq!(job_logs::insert_batch(c, &[]).unwrap(), Default::default());

        let lines = job_logs::list_after(c, &a.id, 0, 100).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(lines[1].stream, LogStream::Stderr);
        assert_eq!(lines[1].payload, "line 2");
        assert_eq!(lines[1].ts, NOW + 2);
        let tail = job_logs::list_after(c, &a.id, 2, 1).unwrap();
        assert_eq!(tail.iter().map(|l| l.seq).collect::<Vec<_>>(), vec![3]);
        // The newest lines, in order (a job page's tail).
        let seqs =
            |lines: Vec<store::models::JobLog>| lines.iter().map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(seqs(job_logs::tail(c, &a.id, 2).unwrap()), vec![3, 4]);
        assert_eq!(
            seqs(job_logs::tail(c, &a.id, 100).unwrap()),
            vec![1, 2, 3, 4]
        );
        assert!(job_logs::tail(c, "nope", 10).unwrap().is_empty());
        assert_eq!(jobs::get(c, &a.id).unwrap().unwrap().last_log_seq, 4);
        assert_eq!(jobs::get(c, &b.id).unwrap().unwrap().last_log_seq, 1);

        // An old line arriving late does not lower last_log_seq.
        let mut late = log_line(&b.id, 3);
        late.payload = "late".to_owned();
        job_logs::insert_batch(c, &[log_line(&b.id, 5), late]).unwrap();
        assert_eq!(jobs::get(c, &b.id).unwrap().unwrap().last_log_seq, 5);

        // A batch larger than one INSERT chunk.
        let big: Vec<NewJobLog> = (10..1_310).map(|s| log_line(&b.id, s)).collect();
        let outcome = job_logs::insert_batch(c, &big).unwrap();
        assert_eq!(outcome.inserted, 1_300);
        assert_eq!(job_logs::insert_batch(c, &big).unwrap().duplicates, 1_300);
        assert_eq!(jobs::get(c, &b.id).unwrap().unwrap().last_log_seq, 1_309);
        assert_eq!(
            job_logs::list_after(c, &b.id, 0, 100_000).unwrap().len(),
            1_303
        );
    });
}

/// Four writers insert log batches at once without "database is locked".
#[test]
fn concurrent_log_writers_all_land() {
    for_each_backend("concurrent_log_writers_all_land", |pool, _| {
        let job_ids: Vec<JobId> = {
            let mut conn = pool.get().unwrap();
            let host = add_host(&mut conn, "busy");
            (0..4)
                .map(|i| add_job(&mut conn, &host.id, JobKind::Backup, NOW + i).id)
                .collect()
        };
        let handles: Vec<_> = job_ids
            .iter()
            .cloned()
            .map(|job_id| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let mut conn = pool.get().unwrap();
                    for start in (1..=200).step_by(20) {
                        let batch: Vec<NewJobLog> =
                            (start..start + 20).map(|s| log_line(&job_id, s)).collect();
                        job_logs::insert_batch(&mut conn, &batch).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut conn = pool.get().unwrap();
        assert_eq!(count_rows(&mut conn, "job_logs"), 800);
        for id in &job_ids {
            assert_eq!(jobs::get(&mut conn, id).unwrap().unwrap().last_log_seq, 200);
        }
    });
}

// ---------------------------------------------- snapshots, stats, misses

fn snap(id: &str, time: i64) -> NewSnapshot {
    NewSnapshot {
        snapshot_id: format!("{id}{}", "0".repeat(56)),
        short_id: id.to_owned(),
        time,
        hostname: "web".to_owned(),
        paths: vec!["/etc".to_owned()],
        tags: vec!["etc".to_owned()],
        size_bytes: Some(1024),
        file_count: None,
    }
}

/// Snapshot reports replace the host's projection as a whole; duplicates
/// in a report are stored once; other hosts are untouched.
#[test]
fn snapshots_are_replaced_per_report() {
    for_each_backend("snapshots_are_replaced_per_report", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "other");
        snapshots::replace_for_host(c, &other.id, &[snap("ffff0000", NOW)], NOW).unwrap();

        let report = [snap("aaaa0000", NOW - 2), snap("bbbb0000", NOW - 1)];
        assert_eq!(
            snapshots::replace_for_host(c, &host.id, &report, NOW).unwrap(),
            2
        );
        let listed = snapshots::list_for_host(c, &host.id).unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|s| s.short_id.as_str())
                .collect::<Vec<_>>(),
            vec!["bbbb0000", "aaaa0000"]
        );
        assert_eq!(listed[0].size_bytes, Some(1024));
        assert_eq!(listed[0].file_count, None);
        assert_eq!(listed[0].reported_at, NOW);

        // The same report again (at-least-once) gives the same rows.
        snapshots::replace_for_host(c, &host.id, &report, NOW).unwrap();
        assert_eq!(snapshots::list_for_host(c, &host.id).unwrap(), listed);

        let next = [
            snap("cccc0000", NOW + 1),
            snap("cccc0000", NOW + 1),
            snap("bbbb0000", NOW - 1),
        ];
        assert_eq!(
            snapshots::replace_for_host(c, &host.id, &next, NOW + 5).unwrap(),
            2
        );
        assert_eq!(
            snapshots::list_for_host(c, &host.id)
                .unwrap()
                .iter()
                .map(|s| s.short_id.as_str())
                .collect::<Vec<_>>(),
            vec!["cccc0000", "bbbb0000"]
        );
        assert_eq!(
            snapshots::replace_for_host(c, &host.id, &[], NOW + 6).unwrap(),
            0
        );
        assert!(snapshots::list_for_host(c, &host.id).unwrap().is_empty());
        assert_eq!(snapshots::list_for_host(c, &other.id).unwrap().len(), 1);
    });
}

/// A host's snapshot is found by its full id or its short id, never
/// another host's, and an ambiguous short id finds nothing.
#[test]
fn snapshots_are_found_per_host() {
    for_each_backend("snapshots_are_found_per_host", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "other");
        snapshots::replace_for_host(c, &other.id, &[snap("ffff0000", NOW)], NOW).unwrap();
        let mut twin = snap("dddd0000", NOW - 2);
        twin.snapshot_id = format!("dddd0000{}", "1".repeat(56));
        let report = [snap("aaaa0000", NOW - 1), snap("dddd0000", NOW), twin];
        snapshots::replace_for_host(c, &host.id, &report, NOW).unwrap();
        let full = format!("aaaa0000{}", "0".repeat(56));
        let by_full = snapshots::find_for_host(c, &host.id, &full)
            .unwrap()
            .unwrap();
        assert_eq!(by_full.short_id, "aaaa0000");
        let by_short = snapshots::find_for_host(c, &host.id, "aaaa0000")
            .unwrap()
            .unwrap();
        assert_eq!(by_short.snapshot_id, full);
        assert!(snapshots::find_for_host(c, &host.id, "ffff0000")
            .unwrap()
            .is_none());
        assert!(snapshots::find_for_host(c, &host.id, "dddd0000")
            .unwrap()
            .is_none());
        let exact = format!("dddd0000{}", "1".repeat(56));
        let found = snapshots::find_for_host(c, &host.id, &exact)
            .unwrap()
            .unwrap();
        assert_eq!(found.snapshot_id, exact);
    });
}

/// restic < 0.17 reports snapshots without size or file count: they come
/// from the summary of the backup job that made each one (short or full
/// id), then stay across reports; figures restic gave are kept.
#[test]
fn snapshot_sizes_come_from_backup_summaries() {
    for_each_backend("snapshot_sizes_come_from_backup_summaries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "other");
        let summary = |id: &str, bytes: u64, files: u64| JobFinish {
            stats: Some(json!({"message_type": "summary", "snapshot_id": id,
                "total_bytes_processed": bytes, "total_files_processed": files})),
            ..finished(JobStatus::Succeeded, NOW)
        };
        let full_b = format!("bbbb0000{}", "0".repeat(56));
        for (h, id, bytes, files) in [
            (&host.id, "aaaa0000", 3_000_012, 3), // restic 0.14: the short id
            (&host.id, full_b.as_str(), 7, 1),    // 0.17+: the full id
            (&other.id, "cccc0000", 99, 99),      // another host's backup
        ] {
            let job = add_job(c, h, JobKind::Backup, NOW - 10);
            jobs::finish(c, &job.id, &summary(id, bytes, files)).unwrap();
        }
        let bare = |id: &str| NewSnapshot {
            size_bytes: None,
            ..snap(id, NOW - 5)
        };
        let mut given = snap("dddd0000", NOW - 5);
        given.file_count = Some(8);
        let mut report = vec![bare("aaaa0000"), bare("bbbb0000"), bare("cccc0000"), given];
        snapshots::fill_from_backups(c, &host.id, &mut report).unwrap();
        let figures: Vec<_> = report
            .iter()
            .map(|s| (s.size_bytes, s.file_count))
            .collect();
        assert_eq!(
            figures,
            vec![
                (Some(3_000_012), Some(3)),
                (Some(7), Some(1)),
                (None, None),
                (Some(1024), Some(8)),
            ]
        );
        // The next report (the jobs gone from the window) keeps them from the stored rows.
        snapshots::replace_for_host(c, &host.id, &report, NOW).unwrap();
        let mut next = vec![NewSnapshot {
            time: NOW + 10 * 86_400_000,
            ..bare("aaaa0000")
        }];
        snapshots::fill_from_backups(c, &host.id, &mut next).unwrap();
        assert_eq!(
            (next[0].size_bytes, next[0].file_count),
            (Some(3_000_012), Some(3))
        );
    });
}

/// Repository stats: a time series per host, since / limit, latest.
#[test]
fn repo_stats_queries() {
    for_each_backend("repo_stats_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        for i in 0..5 {
            repo_stats::insert(
                c,
                &NewRepoStats {
                    id: store::new_id(),
                    host_id: host.id.to_string(),
                    recorded_at: NOW + i * MINUTE,
                    size_bytes: Some(1_000 * (i + 1)),
                    snapshot_count: Some(i),
                    dedup_ratio: Some(1.5 + i as f64 / 4.0),
                    last_check_at: (i == 4).then_some(NOW),
                    last_check_status: (i == 4).then(|| "ok".to_owned()),
                    lock_state: Some("unlocked".to_owned()),
                },
            )
            .unwrap();
        }
        let all = repo_stats::list_for_host(c, &host.id, None, 100).unwrap();
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0].recorded_at < w[1].recorded_at));
        let since = repo_stats::list_for_host(c, &host.id, Some(NOW + 2 * MINUTE), 100).unwrap();
        assert_eq!(since.len(), 3);
        let recent = repo_stats::list_for_host(c, &host.id, None, 2).unwrap();
        assert_eq!(
            recent.iter().map(|r| r.snapshot_count).collect::<Vec<_>>(),
            vec![Some(3), Some(4)]
        );
        let latest = repo_stats::latest_for_host(c, &host.id).unwrap().unwrap();
        assert_eq!(latest.dedup_ratio, Some(2.5));
        assert_eq!(latest.last_check_status.as_deref(), Some("ok"));
        assert!(repo_stats::latest_for_host(c, "nope").unwrap().is_none());
    });
}

/// Missed runs are recorded once per (schedule, time) and listed newest
/// first with filters.
#[test]
fn missed_runs_are_recorded_once() {
    for_each_backend("missed_runs_are_recorded_once", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let host = add_host(c, "web");
        let other = add_host(c, "other");
        let s1 = add_schedule(c, &host.id, "0 2 * * *", true);
        let s2 = add_schedule(c, &other.id, "0 3 * * *", true);
        let miss = |host_id: &str, schedule_id: &str, at: i64| NewMissedRun {
            id: store::new_id(),
            host_id: host_id.to_owned(),
            schedule_id: schedule_id.to_owned(),
            scheduled_at: at,
            detected_at: at + 10 * MINUTE,
        };
        assert!(missed_runs::insert_ignore(c, &miss(&host.id, &s1.id, NOW)).unwrap());
        assert!(!missed_runs::insert_ignore(c, &miss(&host.id, &s1.id, NOW)).unwrap());
        assert!(missed_runs::insert_ignore(c, &miss(&host.id, &s1.id, NOW + 60 * MINUTE)).unwrap());
        assert!(missed_runs::insert_ignore(c, &miss(&other.id, &s2.id, NOW)).unwrap());

        let all = missed_runs::list(
            c,
            &missed_runs::MissedRunFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.total, 3);
        assert_eq!(all.items[0].scheduled_at, NOW + 60 * MINUTE);
        let for_host = missed_runs::list(
            c,
            &missed_runs::MissedRunFilter {
                host_id: Some(host.id.to_string()),
                since: Some(NOW + 1),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((for_host.total, for_host.items.len()), (1, 1));
        let by_schedule = missed_runs::list(
            c,
            &missed_runs::MissedRunFilter {
                schedule_id: Some(s2.id.to_string()),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(by_schedule.items[0].host_id, other.id);
    });
}

/// Audit entries: written and listed newest first, filtered by actor,
/// action, target and time, with totals.
#[test]
fn audit_log_queries() {
    for_each_backend("audit_log_queries", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let entry = |at: i64, actor: &str, action: &str, target: Option<&str>| NewAuditEntry {
            id: store::new_id(),
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            detail: Some(json!({"k": 1})),
            source_addr: Some("198.51.100.7".to_owned()),
        };
        let first = audit::insert(c, &entry(NOW, "admin", "login", None)).unwrap();
        assert_eq!(first.detail, Some(json!({"k": 1})));
        audit::insert(c, &entry(NOW + 1, "admin", "host.revoke", Some("h1"))).unwrap();
        audit::insert(c, &entry(NOW + 2, "bob", "login.failed", None)).unwrap();
        audit::insert(c, &entry(NOW + 3, "admin", "host.patch", Some("h1"))).unwrap();

        let list = |c: &mut DbConnection, f: audit::AuditFilter| {
            audit::list(c, &audit::AuditFilter { limit: 10, ..f }).unwrap()
        };
        let all = list(c, Default::default());
        assert_eq!(all.total, 4);
        assert_eq!(
            all.items.iter().map(|e| e.at).collect::<Vec<_>>(),
            vec![NOW + 3, NOW + 2, NOW + 1, NOW]
        );
        let admin = list(
            c,
            audit::AuditFilter {
                actor: Some("admin".to_owned()),
                ..Default::default()
            },
        );
        assert_eq!(admin.total, 3);
        let on_h1 = list(
            c,
            audit::AuditFilter {
                target: Some("h1".to_owned()),
                since: Some(NOW + 2),
                ..Default::default()
            },
        );
        assert_eq!(on_h1.items.len(), 1);
        assert_eq!(on_h1.items[0].action, "host.patch");
        let logins = list(
            c,
            audit::AuditFilter {
                action: Some("login".to_owned()),
                until: Some(NOW + 1),
                ..Default::default()
            },
        );
        assert_eq!(logins.items, vec![first]);
        let paged = audit::list(
            c,
            &audit::AuditFilter {
                limit: 1,
                offset: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((paged.total, paged.items[0].at), (4, NOW));
    });
}

// --------------------------------------------------------------- cascades

/// Deleting a host removes everything that belongs to it and its unshared
/// repository; deleting a user removes their sessions and tokens; deleting
/// a source group keeps its jobs.
#[test]
fn deletes_cascade() {
    for_each_backend("deletes_cascade", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let admin = add_user(c, "admin", Role::Admin);
        let token =
            enrollment::insert(c, &new_enrollment("e-1", NOW + MINUTE, Some(&admin.id))).unwrap();
        let host = hosts::enroll_with_token(c, "e-1", &new_host("doomed"), NOW)
            .unwrap()
            .unwrap();
        let survivor = add_host(c, "survivor");
        repositories::upsert_for_host(
            c,
            &host.id,
            &RepositoryUpsert {
                id: store::new_id(),
                url: "/srv/restic".to_owned(),
                password_sealed: Some(Some(vec![1, 2, 3])),
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
        let group = add_group(c, &host.id, "etc");
        let kept_group = add_group(c, &host.id, "home");
        let schedule = add_schedule(c, &host.id, "0 2 * * *", true);
        schedules::set_groups(
            c,
            &schedule.id,
            &[group.id.to_string(), kept_group.id.to_string()],
        )
        .unwrap();
        let job = jobs::insert(
            c,
            &NewJob {
                source_group_id: Some(group.id.clone()),
                schedule_id: Some(schedule.id.clone()),
                ..NewJob::new(
                    store::new_id(),
                    host.id.clone(),
                    JobKind::Backup,
                    JobTrigger::Schedule,
                    NOW,
                )
            },
        )
        .unwrap();
        job_logs::insert_batch(c, &[log_line(&job.id, 1), log_line(&job.id, 2)]).unwrap();
        snapshots::replace_for_host(c, &host.id, &[snap("aaaa0000", NOW)], NOW).unwrap();
        repo_stats::insert(
            c,
            &NewRepoStats {
                id: store::new_id(),
                host_id: host.id.to_string(),
                recorded_at: NOW,
                size_bytes: None,
                snapshot_count: None,
                dedup_ratio: None,
                last_check_at: None,
                last_check_status: None,
                lock_state: None,
            },
        )
        .unwrap();
        missed_runs::insert_ignore(
            c,
            &NewMissedRun {
                id: store::new_id(),
                host_id: host.id.to_string(),
                schedule_id: schedule.id.to_string(),
                scheduled_at: NOW,
                detected_at: NOW,
            },
        )
        .unwrap();
        let survivor_job = add_job(c, &survivor.id, JobKind::Check, NOW);

        // Deleting a group: its job stays, unlinked; its schedule link goes.
        source_groups::delete(c, &group.id).unwrap();
        assert_eq!(
            jobs::get(c, &job.id).unwrap().unwrap().source_group_id,
            None
        );
        assert_eq!(
            schedules::groups_of(c, &schedule.id).unwrap(),
            vec![kept_group]
        );

        assert!(hosts::delete(c, &host.id).unwrap());
        assert!(!hosts::delete(c, &host.id).unwrap());
        for table in [
            "source_groups",
            "schedules",
            "schedule_source_groups",
            "job_logs",
            "snapshots",
            "repo_stats",
            "missed_runs",
            "repositories",
        ] {
            assert_eq!(count_rows(c, table), 0, "{table} after host delete");
        }
        assert_eq!(count_rows(c, "host_schedule_version"), 1, "the survivor's");
        assert_eq!(count_rows(c, "jobs"), 1);
        assert!(jobs::get(c, &survivor_job.id).unwrap().is_some());
        let spent = enrollment::get(c, &token.id).unwrap().unwrap();
        assert_eq!(spent.used_by_host_id, None);
        assert_eq!(spent.used_at, Some(NOW));

        // Deleting a user: sessions and API tokens go, enrolment tokens stay.
        sessions::insert(
            c,
            &NewSession {
                id: store::new_id(),
                token_hash: "s".to_owned(),
                user_id: admin.id.clone(),
                csrf_token: "c".to_owned(),
                created_at: NOW,
                expires_at: NOW + MINUTE,
                last_seen_at: NOW,
                source_addr: None,
            },
        )
        .unwrap();
        api_tokens::insert(
            c,
            &NewApiToken {
                id: store::new_id(),
                user_id: admin.id.clone(),
                name: "ci".to_owned(),
                token_hash: "t".to_owned(),
                created_at: NOW,
                expires_at: None,
            },
        )
        .unwrap();
        assert!(users::delete(c, &admin.id).unwrap());
        assert_eq!(count_rows(c, "sessions"), 0);
        assert_eq!(count_rows(c, "api_tokens"), 0);
        assert_eq!(
            enrollment::get(c, &token.id).unwrap().unwrap().created_by,
            None
        );

        // Foreign keys are enforced: a job for a missing host is refused.
        let orphan = jobs::insert(
            c,
            &NewJob::new(
                store::new_id(),
                "no-such-host".to_owned(),
                JobKind::Backup,
                JobTrigger::Manual,
                NOW,
            ),
        )
        .unwrap_err();
        assert!(
            is_db_error(&orphan, DatabaseErrorKind::ForeignKeyViolation),
            "{orphan:?}"
        );
    });
}

/// A repository shared by two hosts survives the deletion of one of them.
#[test]
fn shared_repository_survives_one_host_delete() {
    for_each_backend("shared_repository_survives_one_host_delete", |pool, _| {
        let mut conn = pool.get().unwrap();
        let c = &mut *conn;
        let a = add_host(c, "a");
        let b = add_host(c, "b");
        let repo = repositories::upsert_for_host(
            c,
            &a.id,
            &RepositoryUpsert {
                id: store::new_id(),
                url: "/srv/shared".to_owned(),
                ..Default::default()
            },
            NOW,
        )
        .unwrap()
        .unwrap();
        diesel::update(store::schema::hosts::table.find(&b.id))
            .set(store::schema::hosts::repository_id.eq(&repo.id))
            .execute(&mut **c)
            .unwrap();
        hosts::delete(c, &a.id).unwrap();
        assert_eq!(
            repositories::get_for_host(c, &b.id).unwrap(),
            Some(repo.clone())
        );
        hosts::delete(c, &b.id).unwrap();
        assert!(repositories::get(c, &repo.id).unwrap().is_none());
    });
}

/// Ids made by new_id are unique across many calls.
#[test]
fn new_ids_are_unique() {
    let ids: HashSet<String> = (0..10_000).map(|_| store::new_id()).collect();
    assert_eq!(ids.len(), 10_000);
}

/// A job status, kind, log stream or user role in the database that no
/// variant knows (written by hand, or by a newer server) is a
/// deserialisation error naming the value, never a panic.
#[test]
fn unknown_enum_values_in_the_database_are_clear_errors() {
    for_each_backend(
        "unknown_enum_values_in_the_database_are_clear_errors",
        |pool, backend| {
            let c = &mut pool.get().unwrap();
            let host = add_host(c, "web-1");
            let job = add_job(c, &host.id, JobKind::Check, NOW);
            job_logs::insert_batch(c, &[log_line(&job.id, 1)]).unwrap();

            execute(
                c,
                format!("UPDATE jobs SET status = 'bogus' WHERE id = '{}'", job.id),
            );
            let err = jobs::get(c, &job.id).unwrap_err();
            assert!(
                matches!(err, DieselError::DeserializationError(_)),
                "{backend}: {err:?}"
            );
            assert!(
                error_chain(&err).contains("unknown job status \"bogus\""),
                "{backend}: {}",
                error_chain(&err)
            );

            execute(
                c,
                format!(
                    "UPDATE jobs SET status = 'queued', kind = 'Backup' WHERE id = '{}'",
                    job.id
                ),
            );
            let err = jobs::get(c, &job.id).unwrap_err();
            assert!(
                error_chain(&err).contains("unknown job kind \"Backup\""),
                "{backend}: {}",
                error_chain(&err)
            );

            execute(
                c,
                format!(
                    "UPDATE job_logs SET stream = 'stdin' WHERE job_id = '{}'",
                    job.id
                ),
            );
            use restic_manager::store::schema::job_logs as logs;
            let err = logs::table
                .select(logs::stream)
                .filter(logs::job_id.eq(&job.id))
                .load::<LogStream>(&mut ***c)
                .unwrap_err();
            assert!(
                error_chain(&err).contains("unknown log stream \"stdin\""),
                "{backend}: {}",
                error_chain(&err)
            );

            let user = add_user(c, "ann", Role::Operator);
            assert_eq!(
                users::by_id(c, &user.id).unwrap().map(|u| u.role),
                Some(Role::Operator)
            );
            execute(
                c,
                format!("UPDATE users SET role = 'root' WHERE id = '{}'", user.id),
            );
            let err = users::by_id(c, &user.id).unwrap_err();
            assert!(
                error_chain(&err).contains("unknown role \"root\""),
                "{backend}: {}",
                error_chain(&err)
            );
        },
    );
}

/// Runs raw SQL: how these tests store what the server itself never
/// would write.
fn execute(c: &mut DbConnection, sql: String) {
    diesel::sql_query(sql).execute(c).unwrap();
}

/// An error and its sources, one per line: diesel names the field on top
/// and the value in the source.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        text.push('\n');
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

/// JSON columns read back as the values written (lists, a policy, a label
/// map, NULL for none), stored as plain JSON text; a stored value that is
/// not JSON of the column's type is a deserialisation error naming the
/// column and the type, never a panic.
#[test]
fn json_columns_round_trip_and_malformed_values_are_clear_errors() {
    for_each_backend(
        "json_columns_round_trip_and_malformed_values_are_clear_errors",
        |pool, backend| {
            let c = &mut pool.get().unwrap();
            let host = add_host(c, "web-1");
            let group = add_group(c, &host.id, "etc");
            let read = source_groups::get(c, &group.id).unwrap().unwrap();
            assert_eq!(read.includes, ["/etc"], "{backend}");
            assert_eq!(read.excludes, ["*.tmp"], "{backend}");
            assert_eq!(read.retention_policy.unwrap().keep_daily, Some(7));
            let job = add_job(c, &host.id, JobKind::Check, NOW);
            assert_eq!(
                (job.retention_policy, job.stats, job.progress),
                (None, None, None)
            );

            use restic_manager::store::schema::source_groups as sg;
            let text: (String, Option<String>) = sg::table
                .find(&group.id)
                .select((sg::includes, sg::retention_policy))
                .first(&mut ***c)
                .unwrap();
            assert_eq!(
                text,
                (
                    r#"["/etc"]"#.to_owned(),
                    Some(r#"{"keep_daily":7}"#.to_owned())
                ),
                "{backend}: plain JSON text, as the triggers and loadgen's seed expect"
            );
            let null: Option<String> = restic_manager::store::schema::jobs::table
                .find(&job.id)
                .select(restic_manager::store::schema::jobs::retention_policy)
                .first(&mut ***c)
                .unwrap();
            assert_eq!(null, None, "{backend}: no policy is SQL NULL, not \"null\"");

            execute(
                c,
                format!(
                    "UPDATE source_groups SET includes = 'not json' WHERE id = '{}'",
                    group.id
                ),
            );
            let err = source_groups::get(c, &group.id).unwrap_err();
            assert!(
                matches!(err, DieselError::DeserializationError(_)),
                "{backend}: {err:?}"
            );
            let chain = error_chain(&err);
            assert!(chain.contains("'includes'"), "{backend}: {chain}");
            assert!(
                chain.contains("Vec<alloc::string::String>"),
                "{backend}: {chain}"
            );

            execute(
                c,
                format!(
                    "UPDATE source_groups SET includes = '[]', \
                     retention_policy = '{{\"keep_daily\":\"seven\"}}' WHERE id = '{}'",
                    group.id
                ),
            );
            let chain = error_chain(&source_groups::get(c, &group.id).unwrap_err());
            assert!(chain.contains("'retention_policy'"), "{backend}: {chain}");
            assert!(chain.contains("RetentionPolicy"), "{backend}: {chain}");

            execute(
                c,
                format!(
                    "UPDATE hosts SET labels = '{{\"env\":1}}' WHERE id = '{}'",
                    host.id
                ),
            );
            let chain = error_chain(&hosts::get(c, &host.id).unwrap_err());
            assert!(chain.contains("'labels'"), "{backend}: {chain}");
            assert!(chain.contains("BTreeMap"), "{backend}: {chain}");
        },
    );
}
