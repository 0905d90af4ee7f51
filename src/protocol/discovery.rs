//! Docker discovery (issue 13 §2): `discovery.report`, the running
//! containers an agent found through the Docker Engine API, sent only by
//! an agent that declared [`CAPABILITY_DISCOVERY`] (it reached an Engine
//! at start), after `hello` and whenever Docker events change the set.
//!
//! The rules both sides apply live here too: which images are databases
//! ([`DatabaseType::of_image`]) and which environment variables are secret
//! ([`is_secret_name`]: the agent drops their values before sending, the
//! server drops any that still arrive before storing).

use serde::{Deserialize, Serialize};

use super::DumpDriver;

/// The `hello.capabilities` entry of an agent that sends
/// `discovery.report`.
pub const CAPABILITY_DISCOVERY: &str = "discovery";

/// Most containers one report may list; the agent sends the first ones
/// and says so in its log, the server refuses a longer report.
pub const MAX_DISCOVERED_CONTAINERS: usize = 1000;

/// Most env hints kept per container (the server trims the rest).
pub const MAX_ENV_HINTS: usize = 200;

/// Words that make an environment variable's value secret when its name
/// contains one (case-insensitive).
pub const SECRET_NAME_WORDS: [&str; 4] = ["PASSWORD", "SECRET", "TOKEN", "KEY"];

/// `discovery.report` (agent → server): every running container, replacing
/// the previous report of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryReport {
    /// The running containers (required: absence is not "none").
    pub containers: Vec<DiscoveredContainer>,
}

/// One running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveredContainer {
    /// The Engine's container id.
    pub id: String,
    /// The container's name, without Docker's leading `/`.
    pub name: String,
    /// The image reference it runs (`postgres:16`).
    pub image: String,
    /// The Engine's state (`running`, `paused`, …).
    pub state: String,
    /// The names of the networks it is attached to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Its ports (published on the host when `public_port` is set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    /// The database its image runs, if it is one of the known engines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseType>,
    /// Its environment, with the value of every secret variable removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvHint>,
}

/// A container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPort {
    /// The port inside the container.
    pub private_port: u16,
    /// The port published on the host, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    /// The host address it is published on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// An environment variable of a container: the name always, the value
/// only when the name is not secret ([`is_secret_name`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvHint {
    /// The variable's name.
    pub name: String,
    /// Its value; absent for a secret variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl EnvHint {
    /// The hint of one `NAME=value` entry of a container's environment,
    /// the value dropped when the name is secret.
    pub fn of_entry(entry: &str) -> Self {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        Self::new(name, value)
    }

    /// The hint of `name` = `value`, the value dropped when the name is
    /// secret.
    pub fn new(name: &str, value: &str) -> Self {
        EnvHint {
            name: name.to_owned(),
            value: (!is_secret_name(name)).then(|| value.to_owned()),
        }
    }
}

/// Whether a variable named `name` holds a secret: its name contains
/// PASSWORD, SECRET, TOKEN or KEY in any case (`POSTGRES_PASSWORD`,
/// `api_key`, `MYSQL_ROOT_PASSWORD_FILE`).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_WORDS.iter().any(|word| upper.contains(word))
}

/// A database engine recognised from a container's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseType {
    /// PostgreSQL (`postgres`, `postgis/postgis`, `bitnami/postgresql`, …).
    Postgres,
    /// MySQL (`mysql`, `bitnami/mysql`, …).
    Mysql,
    /// MariaDB (`mariadb`, `bitnami/mariadb`, …).
    Mariadb,
    /// MongoDB (`mongo`, `bitnami/mongodb`, …).
    Mongo,
    /// Redis (`redis`, `redis/redis-stack`, …).
    Redis,
}

impl DatabaseType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseType::Postgres => "postgres",
            DatabaseType::Mysql => "mysql",
            DatabaseType::Mariadb => "mariadb",
            DatabaseType::Mongo => "mongo",
            DatabaseType::Redis => "redis",
        }
    }

    /// The dump driver that backs this engine up (none for Redis).
    pub fn dump_driver(self) -> Option<DumpDriver> {
        match self {
            DatabaseType::Postgres => Some(DumpDriver::Postgres),
            DatabaseType::Mysql => Some(DumpDriver::Mysql),
            DatabaseType::Mariadb => Some(DumpDriver::Mariadb),
            DatabaseType::Mongo => Some(DumpDriver::Mongodb),
            DatabaseType::Redis => None,
        }
    }

    /// The engine an image runs, from the last path segment of its
    /// repository (registry, namespace, tag and digest ignored):
    /// `postgres:16-alpine`, `registry.example:5000/library/mariadb@sha256:…`
    /// and `bitnami/postgresql` are databases, `postgres-exporter` and
    /// `my-postgres-backup` are not.
    pub fn of_image(image: &str) -> Option<DatabaseType> {
        let without_digest = image.split('@').next().unwrap_or(image);
        let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
        let repository = last.split(':').next().unwrap_or(last).to_ascii_lowercase();
        match repository.as_str() {
            "postgres" | "postgresql" | "postgis" | "timescaledb" | "timescaledb-ha" => {
                Some(DatabaseType::Postgres)
            }
            "mysql" | "mysql-server" | "percona-server" => Some(DatabaseType::Mysql),
            "mariadb" => Some(DatabaseType::Mariadb),
            "mongo" | "mongodb" | "mongodb-community-server" => Some(DatabaseType::Mongo),
            "redis" | "redis-stack" | "redis-stack-server" => Some(DatabaseType::Redis),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::AgentToServer;

    /// The literal frame of PROTOCOL.md's example.
    #[test]
    fn golden_discovery_report() {
        golden_a2s(
            r#"{"type":"discovery.report","id":"dr1","data":{"containers":[{"id":"4f1c","name":"shop-db","image":"postgres:16","state":"running","networks":["shop"],"ports":[{"private_port":5432,"public_port":15432,"ip":"127.0.0.1","protocol":"tcp"}],"database":"postgres","env":[{"name":"POSTGRES_DB","value":"shop"},{"name":"POSTGRES_PASSWORD"}]},{"id":"9a0b","name":"web","image":"nginx","state":"running"}]}}"#,
            "dr1",
            AgentToServer::DiscoveryReport(DiscoveryReport {
                containers: vec![
                    DiscoveredContainer {
                        id: "4f1c".to_owned(),
                        name: "shop-db".to_owned(),
                        image: "postgres:16".to_owned(),
                        state: "running".to_owned(),
                        networks: vec!["shop".to_owned()],
                        ports: vec![ContainerPort {
                            private_port: 5432,
                            public_port: Some(15432),
                            ip: Some("127.0.0.1".to_owned()),
                            protocol: "tcp".to_owned(),
                        }],
                        database: Some(DatabaseType::Postgres),
                        env: vec![
                            EnvHint::new("POSTGRES_DB", "shop"),
                            EnvHint::new("POSTGRES_PASSWORD", "hunter2"),
                        ],
                    },
                    DiscoveredContainer {
                        id: "9a0b".to_owned(),
                        name: "web".to_owned(),
                        image: "nginx".to_owned(),
                        state: "running".to_owned(),
                        networks: vec![],
                        ports: vec![],
                        database: None,
                        env: vec![],
                    },
                ],
            }),
        );
    }

    /// The container list is required; a container lacks none of its
    /// identity fields.
    #[test]
    fn required_fields() {
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"discovery.report","id":"x","data":{}}"#,
        ));
        assert_eq!(detail, "missing field `containers`");
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"discovery.report","id":"x","data":{"containers":[{"id":"a","name":"n","state":"running"}]}}"#,
        ));
        assert_eq!(detail, "containers[0]: missing field `image`");
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"discovery.report","id":"x","data":{"containers":[{"id":"a","name":"n","image":"i","state":"s","database":"oracle"}]}}"#,
        ));
        assert!(
            detail.starts_with("containers[0].database: unknown variant `oracle`"),
            "{detail}"
        );
    }

    /// Image references name their engine whatever the registry, tag or
    /// digest; look-alikes do not.
    #[test]
    fn database_type_from_image() {
        let cases = [
            ("postgres", Some(DatabaseType::Postgres)),
            ("postgres:16-alpine", Some(DatabaseType::Postgres)),
            (
                "docker.io/library/postgres:16",
                Some(DatabaseType::Postgres),
            ),
            ("bitnami/postgresql:15", Some(DatabaseType::Postgres)),
            ("postgis/postgis:16-3.4", Some(DatabaseType::Postgres)),
            ("mysql:8.4", Some(DatabaseType::Mysql)),
            (
                "registry.example:5000/team/mysql",
                Some(DatabaseType::Mysql),
            ),
            ("mariadb:11", Some(DatabaseType::Mariadb)),
            ("MariaDB@sha256:0123abcd", Some(DatabaseType::Mariadb)),
            ("mongo:7", Some(DatabaseType::Mongo)),
            ("bitnami/mongodb", Some(DatabaseType::Mongo)),
            ("redis:7-alpine", Some(DatabaseType::Redis)),
            ("redis/redis-stack-server", Some(DatabaseType::Redis)),
            ("nginx:1.27", None),
            ("prometheuscommunity/postgres-exporter", None),
            ("my-postgres-backup:1", None),
            ("postgres/custom-app", None),
            ("", None),
        ];
        for (image, expected) in cases {
            assert_eq!(DatabaseType::of_image(image), expected, "{image}");
        }
        assert_eq!(DatabaseType::Mongo.dump_driver(), Some(DumpDriver::Mongodb));
        assert_eq!(DatabaseType::Redis.dump_driver(), None);
    }

    /// Values of variables whose names hold PASSWORD, SECRET, TOKEN or KEY
    /// (any case) are dropped; the name stays.
    #[test]
    fn secret_env_values_are_stripped() {
        for secret in [
            "POSTGRES_PASSWORD=hunter2",
            "MYSQL_ROOT_PASSWORD=hunter2",
            "db_password_file=/run/secrets/x",
            "AWS_SECRET_ACCESS_KEY=hunter2",
            "GITHUB_TOKEN=hunter2",
            "api_key=hunter2",
            "MONGO_INITDB_ROOT_PASSWORD=a=b=c",
        ] {
            let hint = EnvHint::of_entry(secret);
            assert_eq!(hint.value, None, "{secret}");
            assert_eq!(Some(hint.name.as_str()), secret.split('=').next());
            let json = serde_json::to_string(&hint).unwrap();
            assert!(!json.contains("hunter2") && !json.contains("a=b"), "{json}");
        }
        assert_eq!(
            EnvHint::of_entry("POSTGRES_DB=shop=1"),
            EnvHint {
                name: "POSTGRES_DB".to_owned(),
                value: Some("shop=1".to_owned())
            }
        );
        assert_eq!(EnvHint::of_entry("EMPTY").value, Some(String::new()));
        assert!(!is_secret_name("POSTGRES_USER"));
        assert!(
            is_secret_name("Monkey"),
            "KEY inside a word counts: err on the safe side"
        );
    }
}
