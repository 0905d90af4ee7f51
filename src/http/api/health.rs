//! A host's service health checks and metrics (issue 14):
//! `GET/PUT /hosts/{id}/health-checks` (the list of checks; a change is
//! pushed to the agent as `health.set`), `GET /hosts/{id}/health` (the
//! latest result per check) and `GET /hosts/{id}/metrics?since=` (the
//! heartbeat metrics' time series). The check list is
//! `protocol::HealthCheckSpec`, validated by `protocol::validate_checks`;
//! its schemas are written here by hand, as the protocol crate has no
//! OpenAPI derive.

use std::collections::BTreeMap;

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::table::Endpoint;
use super::{audit, change_host_config};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, parse_time, Body, Time};
use crate::http::AppState;
use crate::protocol::{self, HealthCheckSpec};
use crate::store::health::HealthResultRow;
use crate::store::host_metrics::{self, MetricPoint};
use crate::store::{self};

/// The fields a check may have (anything else is refused, naming it).
const CHECK_FIELDS: &[&str] = &[
    "name",
    "type",
    "target",
    "interval_seconds",
    "timeout_seconds",
    "expect_status",
];
/// Most metric points one answer carries (24 h of minutes plus 30 days of
/// hours fit).
const MAX_POINTS: i64 = 3_000;
/// `since` when none is given: the last 24 hours.
const DEFAULT_SINCE_MS: i64 = 86_400_000;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/health-checks", |r| r.to(get_checks))
            .summary("A host's service health checks")
            .role(Role::Viewer)
            .ok(200, "HealthCheckList"),
        Endpoint::put("/hosts/{id}/health-checks", |r| r.to(put_checks))
            .summary("Replace a host's service health checks; pushes health.set to its agent")
            .describe(
                "The body is the whole list; an empty list removes every check. The agent \
                 runs them (the server never probes hosts) when it has the health capability.",
            )
            .role(Role::Operator)
            .body("HealthCheckList")
            .ok(200, "HealthCheckList")
            .error(
                409,
                "`agent_lacks_capability`: the host's agent connected without the `health` \
                 capability, so it would never run the checks.",
            ),
        Endpoint::get("/hosts/{id}/health", |r| r.to(get_health))
            .summary("The latest result of each of a host's health checks")
            .role(Role::Viewer)
            .ok(200, "HealthResultList"),
        Endpoint::get("/hosts/{id}/metrics", |r| r.to(get_metrics))
            .summary("A host's heartbeat metrics, oldest first (a time series)")
            .describe(
                "Minute points for the last 24 hours, hourly points (averages; the lowest \
                 free space) for 30 days.",
            )
            .role(Role::Viewer)
            .query_time(
                "since",
                "Only points at or after this time (default: 24 hours ago).",
            )
            .ok(200, "HostMetricsList"),
    ]
}

/// The hand-written schemas of this module's bodies and answers.
pub(super) fn schemas() -> Map<String, Value> {
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_int = json!({"type": "integer", "format": "int64", "nullable": true});
    let schemas = json!({
        "HealthCheck": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Unique on the host: letters, digits, spaces and - _ . : / @."},
                "type": {"type": "string", "enum": ["http", "tcp"]},
                "target": {"type": "string", "description": "An http:// or https:// URL, or host:port."},
                "interval_seconds": {"type": "integer", "minimum": protocol::MIN_INTERVAL_SECONDS},
                "timeout_seconds": {"type": "integer", "minimum": 1, "description": "Below interval_seconds."},
                "expect_status": {"type": "integer", "description": "http only: the one status that passes (default 200-399)."},
            },
            "required": ["name", "type", "target", "interval_seconds", "timeout_seconds"],
            "additionalProperties": false,
        },
        "HealthCheckList": {"type": "array", "items": {"$ref": "#/components/schemas/HealthCheck"}},
        "HealthResult": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "ok": {"type": "boolean"},
                "latency_ms": nullable_int,
                "status_code": {"type": "integer", "nullable": true},
                "error": {"type": "string", "nullable": true},
                "checked_at": time,
            },
            "required": ["name", "ok", "latency_ms", "status_code", "error", "checked_at"],
            "additionalProperties": false,
        },
        "HealthResultList": {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/HealthResult"}}},
            "required": ["items"],
            "additionalProperties": false,
        },
        "HostMetricsPoint": {
            "type": "object",
            "properties": {
                "at": time,
                "resolution_seconds": {"type": "integer", "enum": [host_metrics::MINUTE, host_metrics::HOUR]},
                "load1": {"type": "number", "nullable": true},
                "mem_used_bytes": nullable_int,
                "mem_total_bytes": nullable_int,
                "disk_free_bytes": nullable_int,
                "source_disk_free_bytes": {"type": "object", "additionalProperties": {"type": "integer", "format": "int64"}},
            },
            "required": ["at", "resolution_seconds", "load1", "mem_used_bytes", "mem_total_bytes", "disk_free_bytes", "source_disk_free_bytes"],
            "additionalProperties": false,
        },
        "HostMetricsList": {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/HostMetricsPoint"}}},
            "required": ["items"],
            "additionalProperties": false,
        },
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The OpenAPI schema of a list of checks (a policy's `health_checks`).
pub(super) fn check_list() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::Array::new(utoipa::openapi::Ref::from_schema_name("HealthCheck"))
}

/// The checks of a `PUT` body (or a policy's `health_checks`), each field
/// checked (400 naming it: `[1].interval_seconds`).
pub(super) fn parse_checks(
    body: Vec<Map<String, Value>>,
    min_interval: u32,
) -> Result<Vec<HealthCheckSpec>, ApiError> {
    for (i, check) in body.iter().enumerate() {
        if let Some(unknown) = check.keys().find(|k| !CHECK_FIELDS.contains(&k.as_str())) {
            return Err(ApiError::validation(format!(
                "[{i}].{unknown}: unknown field"
            )));
        }
    }
    let value = Value::Array(body.into_iter().map(Value::Object).collect());
    let checks: Vec<HealthCheckSpec> = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::validation(format!("{path}: {}", e.into_inner()))
    })?;
    protocol::validate_checks(&checks, min_interval)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    Ok(checks)
}

async fn get_checks(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<Vec<HealthCheckSpec>>, ApiError> {
    who.require(Role::Viewer)?;
    let host_id = path.into_inner();
    let checks = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        Ok(store::health::get_checks(conn, &host_id)?)
    })
    .await?;
    Ok(web::Json(checks))
}

async fn put_checks(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<Vec<Map<String, Value>>>,
) -> Result<web::Json<Vec<HealthCheckSpec>>, ApiError> {
    who.require(Role::Operator)?;
    let host_id = path.into_inner();
    let checks = parse_checks(body.into_inner(), state.config.health_min_interval_seconds)?;
    if !checks.is_empty() {
        let id = host_id.clone();
        let host = with_conn(&state.pool, move |conn| live_host(conn, &id)).await?;
        require_health(&host)?;
    }
    let stored = checks.clone();
    let id = host_id.clone();
    change_host_config(&state, &host_id, "setting health checks", move |conn| {
        store::health::set_checks(conn, &id, &stored, store::now_ms())?;
        let names: Vec<&str> = stored.iter().map(|c| c.name.as_str()).collect();
        audit(
            conn,
            &who,
            "host.health_checks.set",
            Some(&id),
            Some(json!({"checks": names})),
        )
    })
    .await?;
    Ok(web::Json(checks))
}

/// Checks are refused (409 `agent_lacks_capability`) for a host whose
/// agent has said `hello` without the `health` capability: it would never
/// run them. A host that has not connected yet takes them (pushed when its
/// agent connects, if it can run them).
fn require_health(host: &store::models::Host) -> Result<(), ApiError> {
    if host.agent_version.is_none() {
        return Ok(());
    }
    host.require_capability(protocol::CAPABILITY_HEALTH)
        .map_err(|e| ApiError::lacks_capability(&e))
}

/// One check's latest result as the API shows it.
#[derive(Debug, Serialize)]
struct HealthResultDto {
    name: String,
    ok: bool,
    latency_ms: Option<i64>,
    status_code: Option<i32>,
    error: Option<String>,
    checked_at: Time,
}

impl From<HealthResultRow> for HealthResultDto {
    fn from(r: HealthResultRow) -> Self {
        HealthResultDto {
            name: r.name,
            ok: r.ok,
            latency_ms: r.latency_ms,
            status_code: r.status_code,
            error: r.error,
            checked_at: Time(r.checked_at),
        }
    }
}

/// `{"items": [...]}`.
#[derive(Debug, Serialize)]
struct Items<T> {
    items: Vec<T>,
}

async fn get_health(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<Items<HealthResultDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let host_id = path.into_inner();
    let rows = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        Ok(store::health::latest_for_host(conn, &host_id)?)
    })
    .await?;
    Ok(web::Json(Items {
        items: rows.into_iter().map(HealthResultDto::from).collect(),
    }))
}

/// One metric point as the API shows it.
#[derive(Debug, Serialize)]
struct MetricPointDto {
    at: Time,
    resolution_seconds: i32,
    load1: Option<f64>,
    mem_used_bytes: Option<i64>,
    mem_total_bytes: Option<i64>,
    disk_free_bytes: Option<i64>,
    source_disk_free_bytes: BTreeMap<String, u64>,
}

impl From<MetricPoint> for MetricPointDto {
    fn from(p: MetricPoint) -> Self {
        MetricPointDto {
            source_disk_free_bytes: p.sources(),
            at: Time(p.at),
            resolution_seconds: p.resolution,
            load1: p.load1,
            mem_used_bytes: p.mem_used_bytes,
            mem_total_bytes: p.mem_total_bytes,
            disk_free_bytes: p.disk_free_bytes,
        }
    }
}

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    since: Option<String>,
}

async fn get_metrics(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<MetricsQuery>,
) -> Result<web::Json<Items<MetricPointDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let host_id = path.into_inner();
    let since = match query.into_inner().since.filter(|s| !s.trim().is_empty()) {
        Some(text) => parse_time("since", &text)?,
        None => store::now_ms() - DEFAULT_SINCE_MS,
    };
    let points = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        Ok(host_metrics::list_for_host(
            conn, &host_id, since, MAX_POINTS,
        )?)
    })
    .await?;
    Ok(web::Json(Items {
        items: points.into_iter().map(MetricPointDto::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    /// Unknown fields, wrong types and broken rules are refused naming
    /// the field and the check's index.
    #[test]
    fn put_body_errors_name_the_field() {
        let good = json!({"name": "web", "type": "http", "target": "http://127.0.0.1:80/", "interval_seconds": 30, "timeout_seconds": 5});
        assert_eq!(
            parse_checks(vec![check(good.clone())], 10).unwrap().len(),
            1
        );
        let message = |v: Value| {
            parse_checks(vec![check(good.clone()), check(v)], 10)
                .unwrap_err()
                .message
        };
        let mut unknown = good.clone();
        unknown["intervl"] = json!(3);
        assert_eq!(message(unknown), "[1].intervl: unknown field");
        let mut wrong = good.clone();
        wrong["name"] = json!("other");
        wrong["interval_seconds"] = json!("often");
        assert!(message(wrong).starts_with("[1].interval_seconds: invalid type"));
        let mut short = good.clone();
        short["name"] = json!("other");
        short["interval_seconds"] = json!(5);
        assert!(message(short).starts_with("[1].interval_seconds: must be between 10"));
        let mut kind = good.clone();
        kind["type"] = json!("icmp");
        assert!(message(kind).starts_with("[1].type: unknown variant"));
    }
}
