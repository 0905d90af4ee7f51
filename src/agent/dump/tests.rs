//! The dump tools' command lines and environments per driver: every
//! connection setting where the tool reads it, the password never in an
//! argument.

use std::path::Path;

use super::*;

fn spec(json: serde_json::Value) -> DumpSpec {
    serde_json::from_value(json).unwrap()
}

fn tool(plan: &DumpPlan) -> &ToolCommand {
    match &plan.source {
        DumpSource::Tool(tool) => tool,
        DumpSource::SqliteCopy { .. } => panic!("not a tool"),
    }
}

fn env(tool: &ToolCommand) -> Vec<(&str, &str)> {
    tool.env.iter().map(|(k, v)| (*k, v.expose())).collect()
}

fn no_secret_in_args(tool: &ToolCommand, secret: &str) {
    assert!(
        tool.args.iter().all(|a| !a.contains(secret)),
        "{:?}",
        tool.args
    );
    assert!(!format!("{tool:?}").contains(secret));
}

const DIR: &str = "/var/lib/agent/dumps";

/// PostgreSQL: every setting in `PG*`, so the database name is never an
/// argument (nor parsed as a connection string).
#[test]
fn postgres_uses_the_environment() {
    let s = spec(serde_json::json!({
        "driver": "postgres", "database": "host=evil", "host": "db", "port": 5433,
        "user": "backup", "password": "s3cret"
    }));
    let plan = plan(&s, "j1", Path::new(DIR), false).unwrap();
    let dump = tool(&plan);
    assert_eq!(dump.program, "pg_dump");
    assert_eq!(dump.args, ["--no-password"]);
    assert_eq!(
        env(dump),
        [
            ("PGHOST", "db"),
            ("PGPORT", "5433"),
            ("PGUSER", "backup"),
            ("PGDATABASE", "host=evil"),
            ("PGPASSWORD", "s3cret")
        ]
    );
    no_secret_in_args(dump, "s3cret");
    let version = plan.version.as_ref().unwrap();
    assert_eq!(version.program, "psql");
    assert!(version
        .args
        .contains(&"--command=SHOW server_version".to_owned()));
    assert_eq!(plan.engine, "PostgreSQL");

    let all = plan_of(serde_json::json!({"driver": "postgres", "all": true}));
    assert_eq!(tool(&all).program, "pg_dumpall");
    assert!(env(tool(&all)).is_empty());
}

fn plan_of(json: serde_json::Value) -> DumpPlan {
    plan(&spec(json), "j1", Path::new(DIR), true).unwrap()
}

/// MySQL and MariaDB: options as one `--flag=value` argument each, the
/// database after `--`, the password in `MYSQL_PWD`; a host that is a
/// path is the server's socket.
#[test]
fn mysql_and_mariadb() {
    let plan = plan_of(serde_json::json!({
        "driver": "mysql", "database": "shop", "host": "db", "port": 3307,
        "user": "root", "password": "pw!"
    }));
    let dump = tool(&plan);
    assert_eq!(dump.program, "mysqldump");
    assert_eq!(
        dump.args,
        [
            "--host=db",
            "--port=3307",
            "--user=root",
            "--single-transaction",
            "--routines",
            "--events",
            "--",
            "shop"
        ]
    );
    assert_eq!(env(dump), [("MYSQL_PWD", "pw!")]);
    no_secret_in_args(dump, "pw!");
    let version = plan.version.as_ref().unwrap();
    assert_eq!(version.program, "mysql");
    assert!(version
        .args
        .contains(&"--execute=SELECT VERSION()".to_owned()));

    let maria = plan_of(serde_json::json!({
        "driver": "mariadb", "all": true, "host": "/run/mysqld/mysqld.sock"
    }));
    assert_eq!(tool(&maria).program, "mariadb-dump");
    assert_eq!(tool(&maria).args[0], "--socket=/run/mysqld/mysqld.sock");
    assert_eq!(tool(&maria).args.last().unwrap(), "--all-databases");
    assert_eq!(maria.version.as_ref().unwrap().program, "mariadb");
    let fallback = super::plan(
        &spec(serde_json::json!({"driver": "mariadb", "database": "x"})),
        "j1",
        Path::new(DIR),
        false,
    )
    .unwrap();
    assert_eq!(tool(&fallback).program, "mysqldump");
}

/// MongoDB: the password as YAML on stdin (`--config=/dev/stdin`).
#[test]
fn mongodb_password_on_stdin() {
    let plan = plan_of(serde_json::json!({
        "driver": "mongodb", "database": "app", "user": "u", "password": "p\"w"
    }));
    let dump = tool(&plan);
    assert_eq!(
        dump.args,
        [
            "--archive",
            "--quiet",
            "--username=u",
            "--db=app",
            "--config=/dev/stdin"
        ]
    );
    assert_eq!(
        dump.stdin.as_ref().unwrap().expose(),
        "password: \"p\\\"w\"\n"
    );
    no_secret_in_args(dump, "p\"w");
    assert!(plan.version.is_none());
}

/// Inside a container: `docker exec -i -e NAME… -- CONTAINER tool`, the
/// values in the docker CLI's environment.
#[test]
fn container_wraps_with_docker_exec() {
    let plan = plan_of(serde_json::json!({
        "driver": "postgres", "database": "shop", "user": "postgres",
        "password": "pw", "container": "pg-1"
    }));
    let dump = tool(&plan);
    assert_eq!(dump.program, "docker");
    assert_eq!(
        dump.args,
        [
            "exec",
            "-i",
            "-e",
            "PGUSER",
            "-e",
            "PGDATABASE",
            "-e",
            "PGPASSWORD",
            "--",
            "pg-1",
            "pg_dump",
            "--no-password"
        ]
    );
    assert_eq!(dump.name(), "pg_dump");
    no_secret_in_args(dump, "pw");
    assert_eq!(plan.version.as_ref().unwrap().program, "docker");
}

/// SQLite: `VACUUM INTO` a copy named after the job in the private
/// folder; an unsafe job id is refused.
#[test]
fn sqlite_vacuums_into_a_private_copy() {
    let plan = plan_of(serde_json::json!({"driver": "sqlite", "path": "/srv/app.db"}));
    let DumpSource::SqliteCopy { vacuum, copy } = &plan.source else {
        panic!("not a copy");
    };
    assert_eq!(copy, &Path::new(DIR).join("j1.db"));
    assert_eq!(vacuum.program, "sqlite3");
    assert_eq!(
        vacuum.args,
        [
            "-batch",
            "-bail",
            "-cmd",
            ".timeout 30000",
            "/srv/app.db",
            "VACUUM INTO '/var/lib/agent/dumps/j1.db'"
        ]
    );
    let bad = super::plan(
        &spec(serde_json::json!({"driver": "sqlite", "path": "/srv/app.db"})),
        "../x",
        Path::new(DIR),
        true,
    );
    assert!(matches!(bad, Err(PlanError::BadJobId(_))));
    let invalid = super::plan(
        &spec(serde_json::json!({"driver": "postgres", "database": "-x"})),
        "j1",
        Path::new(DIR),
        true,
    );
    assert!(matches!(invalid, Err(PlanError::Invalid(_))));
}

/// The engine's name and version from the query's output.
#[test]
fn engine_texts() {
    assert_eq!(
        engine_text("PostgreSQL", "15.4 (Debian 15.4-1.pgdg120+1)\n").as_deref(),
        Some("PostgreSQL 15.4")
    );
    assert_eq!(
        engine_text("MySQL", "10.11.6-MariaDB-0+deb12u1").as_deref(),
        Some("MariaDB 10.11.6")
    );
    assert_eq!(
        engine_text("MariaDB", "8.0.36").as_deref(),
        Some("MySQL 8.0.36")
    );
    assert_eq!(
        engine_text("SQLite", "3.40.1 2022-12-28 14:03:47 df5c…").as_deref(),
        Some("SQLite 3.40.1")
    );
    assert_eq!(engine_text("PostgreSQL", "  "), None);
}
