//! A host's cron schedules: `GET/POST /hosts/{id}/schedules` and
//! `GET/PUT/DELETE /hosts/{id}/schedules/{sid}`. `cron_expr` is a
//! five-field cron expression (minute hour day-of-month month day-of-week,
//! UTC) in the dialect of [`crate::cron`]: an invalid one is 400
//! `invalid_cron` with the reason. `kind` says what a fire creates
//! (`backup` when absent, as before kinds; see `actors::fire`).
//! `source_groups` names groups that must exist on the host: required
//! for backup, optional for forget and drill (none: every group), refused
//! for prune and check (they act on the whole repository). Every schedule is shown with its next five run times and croner's
//! English description. Changes need the operator role, are audited, and
//! go through `change_host_config` (version bump, `schedule.set`); a PUT
//! checks and writes in `store::schedule_replace` instead (one statement
//! on PostgreSQL's writer), then pushes the same way.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::table::Endpoint;
use super::{audit, change_host_config, List, PageQuery, DEFAULT_LIMIT};
use crate::auth::Role;
use crate::cron::{CronExpr, NEXT_RUNS};
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Body, Time};
use crate::http::AppState;
use crate::ids::{HostId, ScheduleId};
use crate::store::schedule_replace::{Replace, Replaced};
use crate::store::{self, models, DbConnection, ScheduleKind};

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/schedules", |r| r.to(list))
            .summary("List a host's schedules with their next five runs and a description")
            .role(Role::Viewer)
            .paged()
            .ok(200, "ScheduleList"),
        Endpoint::post("/hosts/{id}/schedules", |r| r.to(create))
            .summary("Add a schedule; bumps the version and pushes schedule.set")
            .describe(
                "cron_expr has five fields (minute hour day-of-month month day-of-week, \
                 UTC); a bad one is 400 invalid_cron with the parser's reason. kind is \
                 backup (default), forget, prune, check or drill; another value is 400.",
            )
            .role(Role::Operator)
            .body("ScheduleRequest")
            .ok(201, "Schedule"),
        Endpoint::get("/hosts/{id}/schedules/{sid}", |r| r.to(get))
            .summary("Read a schedule")
            .role(Role::Viewer)
            .ok(200, "Schedule"),
        Endpoint::put("/hosts/{id}/schedules/{sid}", |r| r.to(update))
            .summary("Replace a schedule; bumps the version and pushes schedule.set")
            .role(Role::Operator)
            .body("ScheduleRequest")
            .ok(200, "Schedule"),
        Endpoint::delete("/hosts/{id}/schedules/{sid}", |r| r.to(delete))
            .summary("Delete a schedule; bumps the version and pushes schedule.set")
            .role(Role::Operator)
            .empty(204, "Deleted."),
    ]
}

/// Parses a cron expression of the API (the dialect of [`crate::cron`]);
/// an invalid one is 400 `invalid_cron` with the reason.
fn parse_cron(expr: &str) -> Result<CronExpr, ApiError> {
    CronExpr::parse(expr).map_err(|reason| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_cron",
            format!("cron_expr: {reason}"),
        )
    })
}

/// A schedule as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Schedule)]
pub(super) struct ScheduleDto {
    id: String,
    host_id: String,
    cron_expr: String,
    enabled: bool,
    /// What a fire creates.
    #[schema(schema_with = super::openapi::schedule_kind)]
    kind: String,
    /// Names of the source groups it acts on.
    source_groups: Vec<String>,
    /// croner's English description of `cron_expr`.
    description: String,
    /// The next [`NEXT_RUNS`] run times (UTC); empty when disabled.
    #[schema(value_type = Vec<String>, format = DateTime)]
    next_runs: Vec<Time>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Time,
}

impl ScheduleDto {
    fn from_row(row: models::ScheduleWithGroups, now: DateTime<Utc>) -> Self {
        let models::ScheduleWithGroups { schedule, groups } = row;
        Self::from_parts(schedule, groups.into_iter().map(|g| g.name).collect(), now)
    }

    /// A schedule and its groups' names (ordered by name).
    fn from_parts(schedule: models::Schedule, groups: Vec<String>, now: DateTime<Utc>) -> Self {
        // Stored expressions passed `parse_cron`; one that no longer parses
        // (an older, laxer rule) is shown as such rather than failing the list.
        let (description, next) = match parse_cron(&schedule.cron_expr) {
            Ok(cron) => {
                let next = if schedule.enabled {
                    cron.next_runs(now, NEXT_RUNS)
                        .into_iter()
                        .map(|t| Time(t.timestamp_millis()))
                        .collect()
                } else {
                    Vec::new()
                };
                (cron.describe(), next)
            }
            Err(e) => {
                tracing::warn!(schedule_id = %schedule.id, error = %e, "stored cron expression does not parse");
                (format!("invalid: {}", e.message), Vec::new())
            }
        };
        ScheduleDto {
            id: schedule.id.into(),
            host_id: schedule.host_id.into(),
            cron_expr: schedule.cron_expr,
            enabled: schedule.enabled,
            kind: schedule.kind.as_str().to_owned(),
            source_groups: groups,
            description,
            next_runs: next,
            created_at: Time(schedule.created_at),
            updated_at: Time(schedule.updated_at),
        }
    }
}

/// `POST` and `PUT` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleRequest {
    /// Five fields, UTC: minute hour day-of-month month day-of-week.
    cron_expr: String,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    /// What a fire creates (default "backup").
    #[schema(schema_with = super::openapi::schedule_kind)]
    kind: Option<String>,
    /// Group names on this host: required for backup; optional for forget
    /// and drill (none: every group); must be empty for prune and check.
    #[serde(default)]
    source_groups: Vec<String>,
}

/// A request that passed validation (not yet against the host).
#[derive(Debug)]
pub(super) struct ValidSchedule {
    pub(super) cron_expr: String,
    pub(super) enabled: bool,
    pub(super) kind: ScheduleKind,
    /// Distinct, sorted.
    pub(super) source_groups: Vec<String>,
}

/// Parses a schedule kind; the error names the field and the valid ones.
fn parse_kind(text: Option<&str>) -> Result<ScheduleKind, ApiError> {
    let Some(text) = text else {
        return Ok(ScheduleKind::default());
    };
    text.trim().parse().map_err(|_| {
        let valid: Vec<&str> = ScheduleKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::validation(format!(
            "kind: unknown schedule kind {:?}; expected one of {}",
            text.chars().take(64).collect::<String>(),
            valid.join(", ")
        ))
    })
}

fn enabled_by_default() -> bool {
    true
}

impl ScheduleRequest {
    /// A request from a configuration file's schedule
    /// (`crate::config_as_code`): the same rules apply to it.
    pub(crate) fn from_parts(
        cron_expr: String,
        enabled: bool,
        kind: Option<String>,
        source_groups: Vec<String>,
    ) -> Self {
        ScheduleRequest {
            cron_expr,
            enabled,
            kind,
            source_groups,
        }
    }

    /// Checks the cron expression, the kind and the group list against
    /// the kind (not yet against the host).
    pub(super) fn validate(self) -> Result<ValidSchedule, ApiError> {
        let expr = self.cron_expr.trim().to_owned();
        parse_cron(&expr)?;
        let kind = parse_kind(self.kind.as_deref())?;
        match kind {
            ScheduleKind::Backup if self.source_groups.is_empty() => {
                return Err(ApiError::validation(
                    "source_groups: name at least one source group for a backup schedule",
                ))
            }
            ScheduleKind::Prune | ScheduleKind::Check if !self.source_groups.is_empty() => {
                return Err(ApiError::validation(format!(
                    "source_groups: a {kind} schedule acts on the whole repository; leave source_groups empty"
                )))
            }
            _ => {}
        }
        let names: BTreeSet<String> = self.source_groups.into_iter().collect();
        Ok(ValidSchedule {
            cron_expr: expr,
            enabled: self.enabled,
            kind,
            source_groups: names.into_iter().collect(),
        })
    }
}

/// The host's groups with these names (ordered by name); an unknown name
/// is 400. One read, inside the change's transaction.
fn groups_named(
    conn: &mut DbConnection,
    host_id: &str,
    names: &[String],
) -> Result<Vec<models::SourceGroup>, ApiError> {
    let groups = store::source_groups::by_names(conn, host_id, names)?;
    let found: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    match unknown_group(names, &found) {
        Some(refused) => Err(refused),
        None => Ok(groups),
    }
}

/// 400 naming the first of `names` that is not among the host's groups
/// `found`, if one is not.
fn unknown_group(names: &[String], found: &[&str]) -> Option<ApiError> {
    let name = names.iter().find(|n| !found.contains(&n.as_str()))?;
    Some(ApiError::validation(format!(
        "source_groups: no source group named {name:?} on this host"
    )))
}

/// 409 for schedule `sid`, which policy `policy_id` manages, naming the
/// policy (or the database error reading its name).
fn managed(conn: &mut DbConnection, sid: &str, policy_id: String) -> ApiError {
    match store::policy_sync::policy_name(conn, Some(policy_id)) {
        Ok(policy) => ApiError::conflict(format!(
            "schedule {sid} comes from policy {:?}; change the policy instead",
            policy.unwrap_or_default()
        )),
        Err(e) => e.into(),
    }
}

/// Links `groups` (just read from the schedule's host by [`groups_named`])
/// to the schedule and returns the schedule with them: the response
/// without reading back what was written.
fn link_groups(
    conn: &mut DbConnection,
    schedule: models::Schedule,
    groups: Vec<models::SourceGroup>,
) -> Result<models::ScheduleWithGroups, ApiError> {
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_ref()).collect();
    store::schedules::replace_groups(conn, &schedule.id, &ids)?;
    Ok(models::ScheduleWithGroups { schedule, groups })
}

/// 404 unless the host has schedule `sid`; 409 for one a policy manages
/// (change the policy instead). One read, two for a managed one. Returns
/// the schedule's cron expression as it is (for the audit row).
fn editable(conn: &mut DbConnection, host_id: &str, sid: &str) -> Result<String, ApiError> {
    let (policy, cron_expr) = store::schedules::policy_of(conn, host_id, sid)?
        .ok_or_else(|| ApiError::not_found(&format!("schedule {sid}")))?;
    match policy {
        Some(policy) => Err(managed(conn, sid, policy)),
        None => Ok(cron_expr),
    }
}

/// The host's schedule `sid` with its groups, or 404.
fn load(
    conn: &mut DbConnection,
    host_id: &HostId,
    sid: &ScheduleId,
) -> Result<models::ScheduleWithGroups, ApiError> {
    live_host(conn, host_id)?;
    let schedule = store::schedules::get_for_host(conn, host_id, sid)?
        .ok_or_else(|| ApiError::not_found(&format!("schedule {sid}")))?;
    let groups = store::schedules::groups_of(conn, sid)?;
    Ok(models::ScheduleWithGroups { schedule, groups })
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<List<ScheduleDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let (limit, offset) = query.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let host_id = path.into_inner();
    let rows = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        Ok(store::schedules::list_with_groups_for_host(conn, &host_id)?)
    })
    .await?;
    let now = Utc::now();
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(0);
    // Only the page's schedules compute their next runs.
    let items = rows
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|r| ScheduleDto::from_row(r, now))
        .collect();
    Ok(web::Json(List { items, total }))
}

async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<web::Json<ScheduleDto>, ApiError> {
    who.require(Role::Viewer)?;
    let (host_id, sid) = path.into_inner();
    let (host_id, sid) = (HostId::from(host_id), ScheduleId::from(sid));
    let row = with_conn(&state.pool, move |conn| load(conn, &host_id, &sid)).await?;
    Ok(web::Json(ScheduleDto::from_row(row, Utc::now())))
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<ScheduleRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let host_id = path.into_inner();
    let valid = body.into_inner().validate()?;
    let target = HostId::from(host_id.as_str());
    let row = change_host_config(&state, &host_id, "adding a schedule", move |conn| {
        let groups = groups_named(conn, &target, &valid.source_groups)?;
        let now = store::now_ms();
        let schedule = store::schedules::insert(
            conn,
            &models::NewSchedule {
                id: store::new_id().into(),
                host_id: target.clone(),
                cron_expr: valid.cron_expr,
                enabled: valid.enabled,
                created_at: now,
                updated_at: now,
                kind: valid.kind,
            },
        )?;
        audit(
            conn,
            &who,
            "schedule.create",
            Some(&schedule.id),
            Some(json!({
                "host_id": target,
                "cron_expr": schedule.cron_expr,
                "enabled": schedule.enabled,
                "kind": schedule.kind,
                "source_groups": valid.source_groups,
            })),
        )?;
        link_groups(conn, schedule, groups)
    })
    .await?;
    Ok(HttpResponse::Created().json(ScheduleDto::from_row(row, Utc::now())))
}

/// Checks and writes in `store::schedule_replace` (one statement on
/// PostgreSQL, without a transaction around it), then the push.
async fn update(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
    body: Body<ScheduleRequest>,
) -> Result<web::Json<ScheduleDto>, ApiError> {
    who.require(Role::Operator)?;
    let (host_id, sid) = path.into_inner();
    let (host_id, sid) = (HostId::from(host_id), ScheduleId::from(sid));
    let valid = body.into_inner().validate()?;
    let target = host_id.clone();
    let (schedule, groups) = state
        .actors
        .write_one_statement_on_pg("changing a schedule", move |conn| {
            let change = Replace {
                host_id: &target,
                schedule_id: &sid,
                cron_expr: &valid.cron_expr,
                enabled: valid.enabled,
                kind: valid.kind,
                group_names: &valid.source_groups,
                now: store::now_ms(),
                actor: &who.username,
                source_addr: who.source_addr.as_deref(),
                detail: json!({
                    "host_id": target,
                    "cron_expr": valid.cron_expr,
                    "enabled": valid.enabled,
                    "kind": valid.kind,
                    "source_groups": valid.source_groups,
                }),
            };
            match store::schedule_replace::replace(conn, &change)? {
                Replaced::Done(schedule, groups) => Ok((schedule, groups)),
                Replaced::NoHost => Err(ApiError::not_found(&format!("host {target}"))),
                Replaced::NoSchedule => Err(ApiError::not_found(&format!("schedule {sid}"))),
                Replaced::Managed(policy) => Err(managed(conn, &sid, policy)),
                Replaced::MissingGroups(found) => {
                    let found: Vec<&str> = found.iter().map(String::as_str).collect();
                    Err(unknown_group(&valid.source_groups, &found)
                        .unwrap_or_else(|| ApiError::not_found(&format!("schedule {sid}"))))
                }
            }
        })
        .await?;
    state.actors.push_config(&host_id).await?;
    Ok(web::Json(ScheduleDto::from_parts(
        schedule,
        groups,
        Utc::now(),
    )))
}

async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let (host_id, sid) = path.into_inner();
    let (host_id, sid) = (HostId::from(host_id), ScheduleId::from(sid));
    let target = host_id.clone();
    change_host_config(&state, &host_id, "deleting a schedule", move |conn| {
        let cron_expr = editable(conn, &target, &sid)?;
        store::schedules::delete(conn, &sid)?;
        audit(
            conn,
            &who,
            "schedule.delete",
            Some(&sid),
            Some(json!({"host_id": target, "cron_expr": cron_expr})),
        )
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bad expressions are 400 invalid_cron with the reason; seconds and never-matching dates are refused.
    #[test]
    fn invalid_expressions() {
        for expr in [
            "",
            "* * *",
            "61 * * * *",
            "0 25 * * *",
            "*/0 * * * *",
            "0 0 * * * *",
            "0 0 31 2 *",
            "hello",
        ] {
            let err = parse_cron(expr)
                .err()
                .unwrap_or_else(|| panic!("{expr:?} parsed"));
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.code, "invalid_cron");
            assert!(err.message.starts_with("cron_expr: "), "{}", err.message);
            assert!(
                err.message.len() > "cron_expr: ".len(),
                "{expr:?}: no reason"
            );
        }
        for expr in ["*/15 * * * *", "0 3 * * MON-FRI", "30 1 1 * *", "@daily"] {
            assert!(parse_cron(expr).is_ok(), "{expr}");
        }
    }

    fn request(body: serde_json::Value) -> Result<ValidSchedule, ApiError> {
        serde_json::from_value::<ScheduleRequest>(body)
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .validate()
    }

    /// Group names are required for a backup and de-duplicated; a body
    /// without `kind` (as before kinds) is a backup schedule.
    #[test]
    fn request_groups() {
        let err = request(json!({"cron_expr": "0 2 * * *", "source_groups": []})).unwrap_err();
        assert!(err.message.starts_with("source_groups:"), "{}", err.message);
        let err = request(json!({"cron_expr": "0 2 * * *"})).unwrap_err();
        assert!(err.message.starts_with("source_groups:"), "{}", err.message);
        let v =
            request(json!({"cron_expr": " 0 2 * * * ", "source_groups": ["b", "a", "b"]})).unwrap();
        assert_eq!(v.cron_expr, "0 2 * * *");
        assert!(v.enabled);
        assert_eq!(v.kind, ScheduleKind::Backup);
        assert_eq!(v.source_groups, ["a", "b"]);
    }

    /// Each kind parses; an unknown one is a 400 naming the field and
    /// listing the kinds; prune and check take no groups, forget and
    /// drill may name some or none.
    #[test]
    fn request_kinds() {
        for kind in ScheduleKind::ALL {
            let groups = match kind {
                ScheduleKind::Backup => json!(["etc"]),
                _ => json!([]),
            };
            let v = request(
                json!({"cron_expr": "@daily", "kind": kind.as_str(), "source_groups": groups}),
            )
            .unwrap();
            assert_eq!(v.kind, *kind);
        }
        let err = request(json!({"cron_expr": "@daily", "kind": "restore"})).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with("kind: "), "{}", err.message);
        assert!(
            err.message.contains("backup, forget, prune, check, drill"),
            "{}",
            err.message
        );
        for kind in ["prune", "check"] {
            let err =
                request(json!({"cron_expr": "@daily", "kind": kind, "source_groups": ["etc"]}))
                    .unwrap_err();
            assert!(
                err.message.starts_with("source_groups: "),
                "{}",
                err.message
            );
        }
        for kind in ["forget", "drill"] {
            let v = request(json!({"cron_expr": "@daily", "kind": kind, "source_groups": ["etc"]}))
                .unwrap();
            assert_eq!(v.source_groups, ["etc"]);
            let v = request(json!({"cron_expr": "@daily", "kind": kind})).unwrap();
            assert!(v.source_groups.is_empty());
        }
    }
}
