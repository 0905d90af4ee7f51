//! A host's effective configuration, `GET /hosts/{id}/effective-config`:
//! its own source groups, schedules and health checks plus those of every
//! policy that matches its labels (`super::policies`), each with its
//! `origin` (`host` or `policy:<name>`).

use std::collections::HashMap;

use actix_web::web;
use serde::Serialize;

use super::table::Endpoint;
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::live_host;
use crate::http::AppState;
use crate::protocol::HealthCheckSpec;
use crate::store::{self, policy_sync};

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/effective-config", |r| r.to(effective))
            .summary("A host's own source groups, schedules and health checks plus those of every matching policy, each with its origin")
            .role(Role::Viewer)
            .ok(200, "EffectiveConfig"),
    ]
}

/// A source group in a host's effective configuration: the group's
/// fields and its origin. Its schema (`EffectiveSourceGroup`) is written
/// in `openapi`.
#[derive(Debug, Serialize)]
pub struct EffectiveGroupDto {
    #[serde(flatten)]
    group: super::source_groups::SourceGroupDto,
    /// `host`, or `policy:<name>`.
    origin: String,
}

/// A schedule in a host's effective configuration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EffectiveSchedule)]
pub struct EffectiveScheduleDto {
    id: String,
    cron_expr: String,
    enabled: bool,
    #[schema(schema_with = super::openapi::schedule_kind)]
    kind: String,
    source_groups: Vec<String>,
    /// `host`, or `policy:<name>`.
    origin: String,
}

/// A health check in a host's effective configuration: the check's
/// fields and its origin.
#[derive(Debug, Serialize)]
pub struct EffectiveCheckDto {
    #[serde(flatten)]
    check: HealthCheckSpec,
    /// `host`, or `policy:<name>`.
    origin: String,
}

/// `GET /hosts/{id}/effective-config`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EffectiveConfig)]
pub struct EffectiveDto {
    host_id: String,
    /// Names of the policies that match the host's labels.
    policies: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    source_groups: Vec<EffectiveGroupDto>,
    #[schema(value_type = Vec<EffectiveSchedule>)]
    schedules: Vec<EffectiveScheduleDto>,
    /// Every health check the host runs (`health.set`), its own first.
    #[schema(value_type = Vec<Object>)]
    health_checks: Vec<EffectiveCheckDto>,
    /// The version of the schedule list `schedule.set` carries.
    schedule_version: i64,
}

async fn effective(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<EffectiveDto>, ApiError> {
    who.require(Role::Viewer)?;
    let id = path.into_inner();
    let dto = with_conn(&state.pool, move |conn| {
        let host = live_host(conn, &id)?;
        let origins: HashMap<String, String> = policy_sync::origins(conn, &id)?;
        let origin = |row: &str| {
            origins
                .get(row)
                .map_or_else(|| "host".to_owned(), |p| format!("policy:{p}"))
        };
        let groups = store::source_groups::list_for_host(conn, &id)?
            .into_iter()
            .map(|g| EffectiveGroupDto {
                origin: origin(g.id.as_str()),
                group: super::source_groups::SourceGroupDto::from_row(g),
            })
            .collect();
        let schedules = store::schedules::list_with_groups_for_host(conn, &id)?
            .into_iter()
            .map(|s| EffectiveScheduleDto {
                origin: origin(s.schedule.id.as_str()),
                id: s.schedule.id.to_string(),
                cron_expr: s.schedule.cron_expr,
                enabled: s.schedule.enabled,
                kind: s.schedule.kind.as_str().to_owned(),
                source_groups: s.groups.into_iter().map(|g| g.name).collect(),
            })
            .collect();
        let policies = store::policies::list(conn)?
            .into_iter()
            .filter(|p| p.selector.matches(&host.labels))
            .map(|p| p.name)
            .collect();
        let version = store::schedule_versions::get(conn, &id)?.map_or(0, |v| v.version);
        let health_checks = store::health::effective_checks(conn, &id)?
            .into_iter()
            .map(|c| EffectiveCheckDto {
                check: c.spec,
                origin: c
                    .policy
                    .map_or_else(|| "host".to_owned(), |p| format!("policy:{p}")),
            })
            .collect();
        Ok(EffectiveDto {
            host_id: id,
            policies,
            source_groups: groups,
            schedules,
            health_checks,
            schedule_version: version,
        })
    })
    .await?;
    Ok(web::Json(dto))
}
