//! Database dumps: the `dump` part of a source group and of `command.run`
//! ([`DumpSpec`]: which tool, which database, how to reach it) and the
//! checks both sides apply to it (the API answers 400 naming the field,
//! the agent refuses a bad `command.run` with the same words).
//!
//! The password travels in `command.run` only (the server opens it from
//! the source group when it sends the job); `Debug` masks it, and the
//! agent takes it out before it journals the command
//! ([`DumpSpec::without_password`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Masked;

/// Prefix of the capability an agent declares per dump tool it has
/// (`dump:postgres`).
pub const CAPABILITY_DUMP_PREFIX: &str = "dump:";

/// The capability of an agent that reaches a Docker Engine (dumps inside
/// a container with `docker exec`).
pub const CAPABILITY_DOCKER: &str = "docker";

/// `job.finished.stats` key: the database engine and its version as the
/// database server reports it (`PostgreSQL 15.4`).
pub const DUMP_ENGINE_STAT: &str = "database_engine";

/// `job.finished.stats` key: bytes the dump tool wrote.
pub const DUMP_BYTES_STAT: &str = "dump_bytes";

/// Longest database name, user, host or container name accepted.
const MAX_NAME_LEN: usize = 255;

/// Longest SQLite path accepted.
const MAX_PATH_LEN: usize = 4096;

/// The dump tool family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpDriver {
    /// `pg_dump` / `pg_dumpall`.
    Postgres,
    /// `mysqldump`.
    Mysql,
    /// `mariadb-dump` (or `mysqldump`).
    Mariadb,
    /// `mongodump --archive`.
    Mongodb,
    /// `sqlite3 … VACUUM INTO`.
    Sqlite,
}

impl DumpDriver {
    /// Every driver, in the order the UI lists them.
    pub const ALL: [DumpDriver; 5] = [
        DumpDriver::Postgres,
        DumpDriver::Mysql,
        DumpDriver::Mariadb,
        DumpDriver::Mongodb,
        DumpDriver::Sqlite,
    ];

    /// The wire name (`postgres`).
    pub fn as_str(self) -> &'static str {
        match self {
            DumpDriver::Postgres => "postgres",
            DumpDriver::Mysql => "mysql",
            DumpDriver::Mariadb => "mariadb",
            DumpDriver::Mongodb => "mongodb",
            DumpDriver::Sqlite => "sqlite",
        }
    }

    /// The capability an agent declares when it has this driver's tool.
    pub fn capability(self) -> String {
        format!("{CAPABILITY_DUMP_PREFIX}{}", self.as_str())
    }

    /// The extension of the file in the snapshot.
    pub fn extension(self) -> &'static str {
        match self {
            DumpDriver::Postgres | DumpDriver::Mysql | DumpDriver::Mariadb => "sql",
            DumpDriver::Mongodb => "archive",
            DumpDriver::Sqlite => "db",
        }
    }
}

impl fmt::Display for DumpDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to dump and how to reach it. `Debug` masks the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpSpec {
    /// The tool family.
    pub driver: DumpDriver,
    /// The database (the SQLite file's stem when absent for `sqlite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Every database (`pg_dumpall`, `--all-databases`, or `mongodump`
    /// without `--db`) instead of `database`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Server host name or socket folder; the tool's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Server port; the tool's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// User to connect as; the tool's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password (secret): given to the tool through its environment or
    /// stdin, never its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Run the tool inside this running Docker container (`docker exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// SQLite: the database file (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl fmt::Debug for DumpSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpSpec")
            .field("driver", &self.driver)
            .field("database", &self.database)
            .field("all", &self.all)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &Masked(self.password.as_deref()))
            .field("container", &self.container)
            .field("path", &self.path)
            .finish()
    }
}

/// A dump that must not run; `Display` starts with the field
/// (`"dump.database: …"`), the way the REST API names fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dump.{field}: {reason}")]
pub struct InvalidDump {
    /// The field at fault (`database`).
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidDump {
    InvalidDump {
        field,
        reason: reason.into(),
    }
}

/// A value that becomes one argument of the dump tool: not empty, not
/// starting with `-` (it would be read as an option), no NUL or newline.
fn check_arg(field: &'static str, value: &str) -> Result<(), InvalidDump> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.starts_with('-') {
        return Err(invalid(
            field,
            "must not start with '-' (the dump tool would read it as an option)",
        ));
    }
    if value.contains('\0') || value.contains('\n') || value.contains('\r') {
        return Err(invalid(field, "must not contain NUL or a line break"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(invalid(field, format!("at most {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

impl DumpSpec {
    /// Checks every field against the driver: a database (or `all`) for
    /// the servers, an absolute `path` for SQLite, and no value the tool
    /// could take for an option.
    pub fn validate(&self) -> Result<(), InvalidDump> {
        if let Some(database) = &self.database {
            check_arg("database", database)?;
        }
        if let Some(user) = &self.user {
            check_arg("user", user)?;
        }
        if let Some(host) = &self.host {
            check_arg("host", host)?;
        }
        if let Some(container) = &self.container {
            check_arg("container", container)?;
        }
        if let Some(password) = &self.password {
            if password.contains('\0') || password.contains('\n') {
                return Err(invalid("password", "must not contain NUL or a line break"));
            }
        }
        if self.port == Some(0) {
            return Err(invalid("port", "must be between 1 and 65535"));
        }
        if self.driver == DumpDriver::Sqlite {
            let path = self
                .path
                .as_deref()
                .ok_or_else(|| invalid("path", "required for the sqlite driver"))?;
            if !path.starts_with('/') || path.contains('\0') || path.len() > MAX_PATH_LEN {
                return Err(invalid(
                    "path",
                    format!("must be an absolute path of at most {MAX_PATH_LEN} bytes, no NUL"),
                ));
            }
            if self.all {
                return Err(invalid("all", "a SQLite file is one database"));
            }
            if self.container.is_some() {
                return Err(invalid(
                    "container",
                    "the sqlite driver reads a file on the host; back up the container's volume",
                ));
            }
            return Ok(());
        }
        if self.path.is_some() {
            return Err(invalid("path", "only the sqlite driver reads a file"));
        }
        match (&self.database, self.all) {
            (None, false) => Err(invalid(
                "database",
                "required (or set \"all\": true to dump every database)",
            )),
            (Some(_), true) => Err(invalid("all", "give either database or all, not both")),
            _ => Ok(()),
        }
    }

    /// The spec without its password: what is stored and journaled.
    pub fn without_password(&self) -> Self {
        Self {
            password: None,
            ..self.clone()
        }
    }

    /// The name of the dump in the snapshot (`--stdin-filename`):
    /// `<database>.<sql|archive|db>`, `all.sql` for every database, the
    /// file's own name for SQLite; `/` and `\` become `_`.
    pub fn file_name(&self) -> String {
        let stem = match (&self.database, self.all, self.driver) {
            (Some(database), _, _) => database.clone(),
            (None, true, _) => "all".to_owned(),
            (None, false, DumpDriver::Sqlite) => self
                .path
                .as_deref()
                .and_then(|p| p.rsplit('/').next())
                .map(|name| name.rsplit_once('.').map_or(name, |(stem, _)| stem))
                .filter(|stem| !stem.is_empty())
                .unwrap_or("sqlite")
                .to_owned(),
            (None, false, _) => "dump".to_owned(),
        };
        let stem: String = stem
            .chars()
            .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
            .collect();
        format!("{stem}.{}", self.driver.extension())
    }

    /// The capability the agent needs to run this dump: `docker` when it
    /// runs in a container, else the driver's `dump:<driver>`.
    pub fn required_capability(&self) -> String {
        if self.container.is_some() {
            CAPABILITY_DOCKER.to_owned()
        } else {
            self.driver.capability()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> DumpSpec {
        serde_json::from_value(json).unwrap()
    }

    /// The wire shape: lowercase driver, absent optional fields left out.
    #[test]
    fn dump_spec_golden() {
        let text = r#"{"driver":"postgres","database":"shop","host":"db","port":5432,"user":"backup","password":"pw"}"#;
        let parsed: DumpSpec = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.driver, DumpDriver::Postgres);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
        assert!(!format!("{parsed:?}").contains("pw\""), "password masked");
        let bare = parsed.without_password();
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"driver":"postgres","database":"shop","host":"db","port":5432,"user":"backup"}"#
        );
        let err = serde_json::from_str::<DumpSpec>(r#"{"driver":"oracle","database":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `oracle`"), "{err}");
    }

    /// Each bad field is refused with its name, argument injection first.
    #[test]
    fn invalid_specs_name_the_field() {
        let cases = [
            (
                serde_json::json!({"driver": "postgres", "database": "--help"}),
                "dump.database: must not start with '-'",
            ),
            (
                serde_json::json!({"driver": "postgres", "database": "a\u{0}b"}),
                "dump.database: must not contain NUL",
            ),
            (
                serde_json::json!({"driver": "mysql", "database": "x", "user": "-uroot"}),
                "dump.user: must not start with '-'",
            ),
            (
                serde_json::json!({"driver": "mysql", "database": "x", "user": "r\u{0}"}),
                "dump.user: must not contain NUL",
            ),
            (
                serde_json::json!({"driver": "postgres"}),
                "dump.database: required",
            ),
            (
                serde_json::json!({"driver": "postgres", "database": "x", "all": true}),
                "dump.all:",
            ),
            (
                serde_json::json!({"driver": "sqlite"}),
                "dump.path: required",
            ),
            (
                serde_json::json!({"driver": "sqlite", "path": "rel.db"}),
                "dump.path: must be an absolute",
            ),
            (
                serde_json::json!({"driver": "postgres", "database": "x", "container": "-it"}),
                "dump.container:",
            ),
            (
                serde_json::json!({"driver": "postgres", "database": "x", "port": 0}),
                "dump.port:",
            ),
        ];
        for (json, prefix) in cases {
            let err = spec(json.clone()).validate().unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{json}: {err}");
        }
        spec(serde_json::json!({"driver": "postgres", "all": true}))
            .validate()
            .unwrap();
        spec(serde_json::json!({"driver": "sqlite", "path": "/var/lib/app.db"}))
            .validate()
            .unwrap();
    }

    /// The file in the snapshot is named after the database and format.
    #[test]
    fn file_names() {
        let name = |json| spec(json).file_name();
        assert_eq!(
            name(serde_json::json!({"driver": "postgres", "database": "shop"})),
            "shop.sql"
        );
        assert_eq!(
            name(serde_json::json!({"driver": "mysql", "all": true})),
            "all.sql"
        );
        assert_eq!(
            name(serde_json::json!({"driver": "mongodb", "database": "a/b"})),
            "a_b.archive"
        );
        assert_eq!(
            name(serde_json::json!({"driver": "sqlite", "path": "/srv/app.sqlite3"})),
            "app.db"
        );
        let docker =
            spec(serde_json::json!({"driver": "postgres", "database": "x", "container": "pg"}));
        assert_eq!(docker.required_capability(), "docker");
        let local = spec(serde_json::json!({"driver": "mariadb", "database": "x"}));
        assert_eq!(local.required_capability(), "dump:mariadb");
    }
}
