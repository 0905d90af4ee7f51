//! `GET /hosts/{id}/discovery` (issue 13 §2): the latest Docker discovery
//! report of a host (the running containers its agent found, secret
//! environment values removed), with a suggested dump group for each
//! database container ([`suggested_dump`], which the host page's "Add
//! dump group" buttons use too). A host whose agent sent no report yet
//! answers an empty list with `received_at: null`.

use actix_web::web;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::table::Endpoint;
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Time};
use crate::http::AppState;
use crate::protocol::{DatabaseType, DiscoveredContainer, DumpDriver};
use crate::store;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/discovery", |r| r.to(get_discovery))
            .summary("The Docker containers a host's agent discovered, and their databases")
            .describe(
                "The latest discovery.report of the host's agent (sent when its Docker Engine \
                 answers: on connect and when containers change, at most every 10 s). Values of \
                 environment variables whose names contain PASSWORD, SECRET, TOKEN or KEY are \
                 never stored. Empty, with received_at null, until a report arrives.",
            )
            .role(Role::Viewer)
            .ok(200, "Discovery"),
    ]
}

/// A dump group the discovered database container suggests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SuggestedDump {
    pub driver: DumpDriver,
    pub container: String,
    /// From the container's environment (`POSTGRES_DB`, `MYSQL_DATABASE`,
    /// …); `None` when it names none (then every database: `all`).
    pub database: Option<String>,
}

/// The dump group of a database container: its driver, the container,
/// and the database its image's environment creates; `None` when the
/// container is no database or one without a dump driver (Redis).
pub(crate) fn suggested_dump(container: &DiscoveredContainer) -> Option<SuggestedDump> {
    let database = container.database?;
    let driver = database.dump_driver()?;
    let env = |name: &str| {
        container
            .env
            .iter()
            .find(|hint| hint.name == name)
            .and_then(|hint| hint.value.clone())
            .filter(|value| !value.is_empty())
    };
    let named = match database {
        DatabaseType::Postgres => env("POSTGRES_DB").or_else(|| env("POSTGRES_USER")),
        DatabaseType::Mysql => env("MYSQL_DATABASE"),
        DatabaseType::Mariadb => env("MARIADB_DATABASE").or_else(|| env("MYSQL_DATABASE")),
        DatabaseType::Mongo => env("MONGO_INITDB_DATABASE"),
        DatabaseType::Redis => None,
    };
    // The official postgres image's default database.
    let database_name = match (database, named) {
        (_, Some(name)) => Some(name),
        (DatabaseType::Postgres, None) => Some("postgres".to_owned()),
        _ => None,
    };
    Some(SuggestedDump {
        driver,
        container: container.name.clone(),
        database: database_name,
    })
}

/// One container of the answer: the report's fields and the suggestion.
#[derive(Debug, Serialize)]
struct ContainerDto {
    #[serde(flatten)]
    container: DiscoveredContainer,
    suggested_dump: Option<SuggestedDump>,
}

#[derive(Debug, Serialize)]
struct DiscoveryDto {
    host_id: String,
    received_at: Option<Time>,
    containers: Vec<ContainerDto>,
}

async fn get_discovery(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<DiscoveryDto>, ApiError> {
    who.require(Role::Viewer)?;
    let host_id = path.into_inner();
    let row = with_conn(&state.pool, {
        let host_id = host_id.clone();
        move |conn| {
            live_host(conn, &host_id)?;
            Ok(store::discovery::get(conn, &host_id)?)
        }
    })
    .await?;
    let (received_at, containers) = match row {
        Some(row) => (Some(Time(row.received_at)), row.containers),
        None => (None, Vec::new()),
    };
    Ok(web::Json(DiscoveryDto {
        host_id,
        received_at,
        containers: containers
            .into_iter()
            .map(|container| ContainerDto {
                suggested_dump: suggested_dump(&container),
                container,
            })
            .collect(),
    }))
}

/// The hand-written schemas of the answer (the protocol types have no
/// OpenAPI derive).
pub(super) fn schemas() -> Map<String, Value> {
    let string = json!({"type": "string"});
    let schemas = json!({
        "Discovery": {
            "type": "object",
            "properties": {
                "host_id": string,
                "received_at": {"type": "string", "format": "date-time", "nullable": true, "description": "When the report arrived; null when none has."},
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/DiscoveredContainer"}},
            },
            "required": ["host_id", "received_at", "containers"],
            "additionalProperties": false,
        },
        "DiscoveredContainer": {
            "type": "object",
            "properties": {
                "id": string,
                "name": string,
                "image": string,
                "state": string,
                "networks": {"type": "array", "items": string},
                "ports": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "private_port": {"type": "integer"},
                        "public_port": {"type": "integer"},
                        "ip": string,
                        "protocol": string,
                    },
                    "required": ["private_port", "protocol"],
                }},
                "database": {"type": "string", "enum": ["postgres", "mysql", "mariadb", "mongo", "redis"], "description": "The engine its image runs; absent for other images."},
                "env": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "name": string,
                        "value": {"type": "string", "description": "Absent for names containing PASSWORD, SECRET, TOKEN or KEY."},
                    },
                    "required": ["name"],
                }},
                "suggested_dump": {
                    "type": "object",
                    "nullable": true,
                    "description": "The dump group the host page's \"Add dump group\" pre-fills; null for no database or Redis.",
                    "properties": {
                        "driver": {"type": "string", "enum": ["postgres", "mysql", "mariadb", "mongodb"]},
                        "container": string,
                        "database": {"type": "string", "nullable": true, "description": "null: every database (all)."},
                    },
                    "required": ["driver", "container", "database"],
                },
            },
            "required": ["id", "name", "image", "state", "suggested_dump"],
        },
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EnvHint;

    fn container(image: &str, env: &[(&str, &str)]) -> DiscoveredContainer {
        DiscoveredContainer {
            id: "id".to_owned(),
            name: "shop-db".to_owned(),
            image: image.to_owned(),
            state: "running".to_owned(),
            networks: vec![],
            ports: vec![],
            database: DatabaseType::of_image(image),
            env: env.iter().map(|(n, v)| EnvHint::new(n, v)).collect(),
        }
    }

    /// The suggestion takes the database from the image's environment,
    /// PostgreSQL's default otherwise; none for Redis or a web server.
    #[test]
    fn suggestions_from_the_environment() {
        let pg = suggested_dump(&container("postgres:16", &[("POSTGRES_DB", "shop")])).unwrap();
        assert_eq!(pg.driver, DumpDriver::Postgres);
        assert_eq!(pg.container, "shop-db");
        assert_eq!(pg.database.as_deref(), Some("shop"));
        let pg = suggested_dump(&container("postgres", &[])).unwrap();
        assert_eq!(pg.database.as_deref(), Some("postgres"));
        let maria =
            suggested_dump(&container("mariadb:11", &[("MYSQL_DATABASE", "wiki")])).unwrap();
        assert_eq!(
            (maria.driver, maria.database.as_deref()),
            (DumpDriver::Mariadb, Some("wiki"))
        );
        let mongo = suggested_dump(&container("mongo:7", &[])).unwrap();
        assert_eq!((mongo.driver, mongo.database), (DumpDriver::Mongodb, None));
        assert_eq!(suggested_dump(&container("redis:7", &[])), None);
        assert_eq!(suggested_dump(&container("nginx", &[])), None);
    }
}
