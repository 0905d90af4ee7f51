//! Database dumps streamed into restic (issue 13): the dump tool's command
//! line per driver, built without running it, so that its arguments and
//! environment are unit-tested, and the version query that names the
//! database engine in `job.finished`.
//!
//! | driver    | tool (stdout → `restic backup --stdin`)          | password             |
//! |-----------|--------------------------------------------------|----------------------|
//! | postgres  | `pg_dump` (`pg_dumpall` for `all`), plain SQL     | `PGPASSWORD`         |
//! | mysql     | `mysqldump --single-transaction`                  | `MYSQL_PWD`          |
//! | mariadb   | `mariadb-dump` (else `mysqldump`), same flags     | `MYSQL_PWD`          |
//! | mongodb   | `mongodump --archive`                             | YAML on its stdin (`--config /dev/stdin`) |
//! | sqlite    | `sqlite3 FILE "VACUUM INTO '<private temp>'"`, then the file is streamed | none |
//!
//! No password is ever in an argument, on the agent's disk or in a log:
//! PostgreSQL gets every connection setting from `PG*` variables (a
//! database name is then never parsed as a connection string), MySQL and
//! MariaDB get `MYSQL_PWD`, and `mongodump`, which reads no variable, gets
//! a one-line YAML config on its stdin. SQLite cannot write an online
//! backup to a pipe (`.backup` needs a seekable file), so `VACUUM INTO`
//! writes a consistent copy into a folder only the agent can read (0700,
//! under its state directory), which is streamed and deleted.
//!
//! With `container`, the tool runs inside that container through
//! `docker exec -i`; each variable is passed as `-e NAME` (no value), which
//! makes the docker CLI copy it from its own environment.
//!
//! # Layout
//!
//! - this file: [`ToolCommand`], [`DumpPlan`] and [`plan`] (per driver).
//! - `pipe.rs`: runs the plan: the tool's stdout copied into restic's
//!   stdin through a fixed buffer, bytes counted, both exits checked.
//! - `job.rs`: [`job::DumpJob`], the dump as the runner drives it.
//! - `detect.rs`: the `dump:<driver>` and `docker` capabilities.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::config::Secret;
use crate::protocol::{DumpDriver, DumpSpec};

pub mod detect;
pub mod job;
pub mod pipe;

/// One program to run: arguments (never a secret), environment (may hold
/// secrets) and what to write on its stdin (may be a secret). `Debug`
/// shows the variable names only.
#[derive(Clone)]
pub struct ToolCommand {
    /// The executable (looked up on `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it.
    pub env: Vec<(&'static str, Secret)>,
    /// Written to its stdin, which is then closed; stdin is empty otherwise.
    pub stdin: Option<Secret>,
}

impl fmt::Debug for ToolCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(name, _)| *name).collect();
        f.debug_struct("ToolCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &names)
            .field("stdin", &self.stdin.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ToolCommand {
    fn new(program: &str, args: Vec<String>, env: Vec<(&'static str, Secret)>) -> Self {
        Self {
            program: program.to_owned(),
            args,
            env,
            stdin: None,
        }
    }

    /// A `tokio::process::Command` for it (stdio not yet set).
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args);
        for (name, value) in &self.env {
            command.env(name, OsString::from(value.expose()));
        }
        command
    }

    /// The same program run inside `container` with `docker exec -i`; the
    /// variables go through the docker CLI's environment (`-e NAME`).
    fn in_container(self, container: &str) -> Self {
        let mut args = vec!["exec".to_owned(), "-i".to_owned()];
        for (name, _) in &self.env {
            args.push("-e".to_owned());
            args.push((*name).to_owned());
        }
        args.push("--".to_owned());
        args.push(container.to_owned());
        args.push(self.program);
        args.extend(self.args);
        Self {
            program: "docker".to_owned(),
            args,
            env: self.env,
            stdin: self.stdin,
        }
    }

    /// The program's name for messages (`pg_dump`, or the tool run by
    /// `docker exec`).
    pub fn name(&self) -> &str {
        if self.program == "docker" {
            if let Some(at) = self.args.iter().position(|a| a == "--") {
                if let Some(tool) = self.args.get(at + 2) {
                    return tool;
                }
            }
        }
        &self.program
    }
}

/// Where the dump's bytes come from.
#[derive(Debug, Clone)]
pub enum DumpSource {
    /// The tool's stdout.
    Tool(ToolCommand),
    /// SQLite: `vacuum` writes `copy` (a private temp file), which is then
    /// streamed and deleted.
    SqliteCopy {
        /// `sqlite3 … VACUUM INTO`.
        vacuum: ToolCommand,
        /// The copy.
        copy: PathBuf,
    },
}

/// How a dump backup gets its bytes and its engine's version.
#[derive(Debug, Clone)]
pub struct DumpPlan {
    /// The bytes.
    pub source: DumpSource,
    /// Prints the server's version on stdout (`None`: not queried).
    pub version: Option<ToolCommand>,
    /// How `job.finished` names the engine (`PostgreSQL`), before the
    /// version; MySQL and MariaDB are told apart by the version text.
    pub engine: &'static str,
}

/// Why a dump plan cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The spec fails the protocol's checks.
    #[error(transparent)]
    Invalid(#[from] crate::protocol::InvalidDump),
    /// The job id cannot name a file.
    #[error("job id {0:?} cannot name the SQLite copy")]
    BadJobId(String),
}

/// The folder private SQLite copies are written to: `dumps` beside the
/// restic cache in the agent's state directory.
pub fn temp_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("dumps")
}

fn push_opt(args: &mut Vec<String>, flag: &str, value: Option<&str>) {
    if let Some(value) = value {
        args.push(format!("{flag}={value}"));
    }
}

/// The plan of `spec` (validated here again: the agent trusts no
/// `command.run`). `dump_dir` is [`temp_dir`]; `mariadb_dump` says whether
/// `mariadb-dump` is on PATH (else `mysqldump` serves MariaDB too).
pub fn plan(
    spec: &DumpSpec,
    job_id: &str,
    dump_dir: &Path,
    mariadb_dump: bool,
) -> Result<DumpPlan, PlanError> {
    spec.validate()?;
    let password = spec.password.as_deref().filter(|p| !p.is_empty());
    let port = spec.port.map(|p| p.to_string());
    let (source, version, engine) = match spec.driver {
        DumpDriver::Postgres => {
            let mut env = Vec::new();
            let mut set = |name, value: Option<&str>| {
                if let Some(value) = value {
                    env.push((name, Secret::new(value)));
                }
            };
            set("PGHOST", spec.host.as_deref());
            set("PGPORT", port.as_deref());
            set("PGUSER", spec.user.as_deref());
            set("PGDATABASE", spec.database.as_deref());
            set("PGPASSWORD", password);
            let no_password = "--no-password".to_owned();
            let dump = if spec.all {
                ToolCommand::new("pg_dumpall", vec![no_password.clone()], env.clone())
            } else {
                ToolCommand::new("pg_dump", vec![no_password.clone()], env.clone())
            };
            let version = ToolCommand::new(
                "psql",
                vec![
                    no_password,
                    "--no-psqlrc".to_owned(),
                    "--tuples-only".to_owned(),
                    "--no-align".to_owned(),
                    "--command=SHOW server_version".to_owned(),
                ],
                env,
            );
            (DumpSource::Tool(dump), Some(version), "PostgreSQL")
        }
        DumpDriver::Mysql | DumpDriver::Mariadb => {
            let mut connect = Vec::new();
            match spec.host.as_deref() {
                Some(socket) if socket.starts_with('/') => {
                    push_opt(&mut connect, "--socket", Some(socket));
                }
                host => push_opt(&mut connect, "--host", host),
            }
            push_opt(&mut connect, "--port", port.as_deref());
            push_opt(&mut connect, "--user", spec.user.as_deref());
            let env: Vec<(&'static str, Secret)> = password
                .map(|p| vec![("MYSQL_PWD", Secret::new(p))])
                .unwrap_or_default();
            let (dump_tool, client) = if spec.driver == DumpDriver::Mariadb && mariadb_dump {
                ("mariadb-dump", "mariadb")
            } else {
                ("mysqldump", "mysql")
            };
            let mut args = connect.clone();
            args.extend(["--single-transaction", "--routines", "--events"].map(str::to_owned));
            match &spec.database {
                Some(database) => {
                    args.push("--".to_owned());
                    args.push(database.clone());
                }
                None => args.push("--all-databases".to_owned()),
            }
            let mut query = connect;
            query.extend(
                [
                    "--batch",
                    "--skip-column-names",
                    "--execute=SELECT VERSION()",
                ]
                .map(str::to_owned),
            );
            let engine = if spec.driver == DumpDriver::Mariadb {
                "MariaDB"
            } else {
                "MySQL"
            };
            (
                DumpSource::Tool(ToolCommand::new(dump_tool, args, env.clone())),
                Some(ToolCommand::new(client, query, env)),
                engine,
            )
        }
        DumpDriver::Mongodb => {
            let mut args = vec!["--archive".to_owned(), "--quiet".to_owned()];
            push_opt(&mut args, "--host", spec.host.as_deref());
            push_opt(&mut args, "--port", port.as_deref());
            push_opt(&mut args, "--username", spec.user.as_deref());
            push_opt(&mut args, "--db", spec.database.as_deref());
            let mut tool = ToolCommand::new("mongodump", args, Vec::new());
            if let Some(password) = password {
                tool.args.push("--config=/dev/stdin".to_owned());
                tool.stdin = Some(Secret::new(format!(
                    "password: {}\n",
                    serde_json::Value::from(password)
                )));
            }
            // mongosh would need the password in its arguments: not queried.
            (DumpSource::Tool(tool), None, "MongoDB")
        }
        DumpDriver::Sqlite => {
            if !super::restic::is_file_safe_id(job_id) {
                return Err(PlanError::BadJobId(job_id.chars().take(100).collect()));
            }
            let copy = dump_dir.join(format!("{job_id}.db"));
            let literal = copy.to_string_lossy().replace('\'', "''");
            let path = spec.path.clone().unwrap_or_default();
            let vacuum = ToolCommand::new(
                "sqlite3",
                vec![
                    "-batch".to_owned(),
                    "-bail".to_owned(),
                    "-cmd".to_owned(),
                    ".timeout 30000".to_owned(),
                    path,
                    format!("VACUUM INTO '{literal}'"),
                ],
                Vec::new(),
            );
            let version = ToolCommand::new("sqlite3", vec!["-version".to_owned()], Vec::new());
            (
                DumpSource::SqliteCopy { vacuum, copy },
                Some(version),
                "SQLite",
            )
        }
    };
    let wrap = |tool: ToolCommand| match &spec.container {
        Some(container) => tool.in_container(container),
        None => tool,
    };
    let source = match source {
        DumpSource::Tool(tool) => DumpSource::Tool(wrap(tool)),
        other => other,
    };
    Ok(DumpPlan {
        source,
        version: version.map(wrap),
        engine,
    })
}

/// `job.finished`'s engine text from what the version query printed:
/// `PostgreSQL 15.4`, `MariaDB 10.11.6`, `MySQL 8.0.36`, `SQLite 3.40.1`
/// (the first word of the output; `-MariaDB…` suffixes name the engine).
pub fn engine_text(engine: &str, output: &str) -> Option<String> {
    let first = output.split_whitespace().next()?;
    let (engine, version) = match engine {
        "MariaDB" | "MySQL" => {
            let engine = if first.contains("MariaDB") {
                "MariaDB"
            } else {
                "MySQL"
            };
            (engine, first.split('-').next().unwrap_or(first))
        }
        other => (other, first),
    };
    Some(format!("{engine} {version}"))
}

#[cfg(test)]
mod tests;
