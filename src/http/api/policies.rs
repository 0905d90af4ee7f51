//! Policies by label (issue 12 §1): `GET/POST /policies` and
//! `GET/PUT/DELETE /policies/{id}`; what a host gets from them is
//! `super::effective_config`.
//!
//! A policy's source groups are validated as a host's are, its schedules
//! as a host's are (their `source_groups` name groups of the policy), its
//! `health_checks` as a host's are (`super::health`): every matching host
//! runs them besides its own, its own winning on a name.
//! Writes need the operator role, are audited, and run on the one writer
//! with [`policy_sync::apply_policy`] in the same transaction: the answer
//! (`{"policy", "hosts_affected"}`) comes once the change is stored, and
//! `schedule.set` goes to the affected hosts' sessions afterwards
//! (`Actors::push_configs`). A change that would give a host two source
//! groups of one name is 409 naming the hosts and policies.

use std::collections::{BTreeMap, HashSet};

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::hosts::validate_labels;
use super::schedules::ScheduleRequest;
use super::source_groups::GroupRequest;
use super::table::Endpoint;
use super::{audit, List, PageQuery, DEFAULT_LIMIT};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{Body, Time};
use crate::http::AppState;
use crate::protocol::{HealthCheckSpec, RetentionPolicy, RunOptions};
use crate::store::policies::{Policy, PolicyGroup, PolicySchedule, Selector};
use crate::store::policy_sync::{self, SyncError};
use crate::store::{self, DbConnection};

/// Longest policy name.
const MAX_NAME_LEN: usize = 128;
/// Most source groups or schedules in one policy.
const MAX_ITEMS: usize = 100;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/policies", |r| r.to(list))
            .summary("List policies, by name, each with how many hosts it matches")
            .role(Role::Viewer)
            .paged()
            .ok(200, "PolicyList"),
        Endpoint::post("/policies", |r| r.to(create))
            .summary("Create a policy; its groups and schedules go to every matching host")
            .role(Role::Operator)
            .body("PolicyRequest")
            .ok(201, "PolicyChange")
            .error(409, "The name is taken, or a matching host has a source group of one of its names."),
        Endpoint::get("/policies/{id}", |r| r.to(get))
            .summary("Read a policy and the hosts it matches")
            .role(Role::Viewer)
            .ok(200, "Policy"),
        Endpoint::put("/policies/{id}", |r| r.to(update))
            .summary("Replace a policy; answers once stored, schedule.set follows to the hosts whose configuration changed")
            .role(Role::Operator)
            .body("PolicyRequest")
            .ok(200, "PolicyChange")
            .error(409, "The name is taken, or a matching host has a source group of one of its names."),
        Endpoint::delete("/policies/{id}", |r| r.to(delete))
            .summary("Delete a policy; its groups and schedules leave the hosts")
            .role(Role::Operator)
            .empty(204, "Deleted."),
    ]
}

/// A policy's source group as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PolicySourceGroup)]
pub struct PolicyGroupDto {
    name: String,
    includes: Vec<String>,
    excludes: Vec<String>,
    retention_policy: Option<RetentionPolicy>,
    retry_max: i32,
    retry_backoff_seconds: i32,
    prune_after_forget: bool,
    /// The group's own options (the policy's `options` apply under them).
    #[schema(value_type = Option<RunOptions>)]
    options: Option<RunOptions>,
}

/// A policy's schedule as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PolicySchedule)]
pub struct PolicyScheduleDto {
    cron_expr: String,
    enabled: bool,
    #[schema(schema_with = super::openapi::schedule_kind)]
    kind: String,
    source_groups: Vec<String>,
}

/// The selector as the API shows and takes it.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PolicySelector)]
pub struct SelectorDto {
    /// Every label must match; none: every host.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A policy as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Policy)]
pub struct PolicyDto {
    id: String,
    name: String,
    #[schema(value_type = PolicySelector)]
    selector: SelectorDto,
    #[schema(value_type = Vec<PolicySourceGroup>)]
    source_groups: Vec<PolicyGroupDto>,
    #[schema(value_type = Vec<PolicySchedule>)]
    schedules: Vec<PolicyScheduleDto>,
    repository_id: Option<String>,
    /// Restic options of every group of the policy (a group's own win).
    #[schema(value_type = Option<RunOptions>)]
    options: Option<RunOptions>,
    /// Health checks every matching host runs (its own of the same name
    /// win).
    #[schema(schema_with = super::health::check_list)]
    health_checks: Vec<HealthCheckSpec>,
    /// How many hosts the selector matches now.
    hosts_matched: usize,
    /// The ids of the hosts it matches (`GET /policies/{id}` only; null
    /// in lists and change answers).
    host_ids: Option<Vec<String>>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Time,
}

impl PolicyDto {
    fn from_row(p: Policy, matched: Vec<String>, with_hosts: bool) -> Self {
        PolicyDto {
            id: p.id,
            name: p.name,
            selector: SelectorDto {
                labels: p.selector.labels,
            },
            source_groups: p
                .source_groups
                .into_iter()
                .map(|g| PolicyGroupDto {
                    name: g.name,
                    includes: g.includes,
                    excludes: g.excludes,
                    retention_policy: g.retention_policy,
                    retry_max: g.retry_max,
                    retry_backoff_seconds: g.retry_backoff_seconds,
                    prune_after_forget: g.prune_after_forget,
                    options: g.options,
                })
                .collect(),
            schedules: p
                .schedules
                .into_iter()
                .map(|s| PolicyScheduleDto {
                    cron_expr: s.cron_expr,
                    enabled: s.enabled,
                    kind: s.kind.as_str().to_owned(),
                    source_groups: s.source_groups,
                })
                .collect(),
            repository_id: p.repository_id,
            options: p.options,
            health_checks: p.health_checks,
            hosts_matched: matched.len(),
            host_ids: with_hosts.then_some(matched),
            created_at: Time(p.created_at),
            updated_at: Time(p.updated_at),
        }
    }
}

/// What a create or update answers: the policy (its fields also at the
/// top, so a client may read `id` there) and how many hosts' effective
/// configuration changed. Its schema (`PolicyChange`) is written in
/// `openapi`.
#[derive(Debug, Serialize)]
pub struct ChangeDto {
    policy: PolicyDto,
    hosts_affected: usize,
    #[serde(flatten)]
    top: serde_json::Map<String, serde_json::Value>,
}

/// `POST` and `PUT` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PolicyRequest)]
pub(crate) struct PolicyRequest {
    name: String,
    #[serde(default)]
    #[schema(value_type = Option<PolicySelector>)]
    selector: Option<SelectorDto>,
    #[serde(default)]
    #[schema(value_type = Vec<SourceGroupRequest>)]
    source_groups: Vec<GroupRequest>,
    #[serde(default)]
    schedules: Vec<ScheduleRequest>,
    #[serde(default)]
    repository_id: Option<String>,
    /// Restic options of every group of the policy; an unknown key is
    /// refused.
    #[serde(default)]
    #[schema(value_type = Option<RunOptions>)]
    options: Option<serde_json::Value>,
    /// Checked as `PUT /hosts/{id}/health-checks`' body is.
    #[serde(default)]
    #[schema(schema_with = super::health::check_list)]
    health_checks: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Prefixes a field error with where it sits (`source_groups[1].`).
fn at(prefix: String) -> impl FnOnce(ApiError) -> ApiError {
    move |mut e| {
        e.message = format!("{prefix}{}", e.message);
        e
    }
}

impl PolicyRequest {
    /// A request from a configuration file's policy
    /// (`crate::config_as_code`): the same rules apply to it.
    pub(crate) fn from_parts(
        name: String,
        labels: BTreeMap<String, String>,
        source_groups: Vec<GroupRequest>,
        schedules: Vec<ScheduleRequest>,
        options: Option<serde_json::Value>,
        health_checks: Vec<serde_json::Map<String, serde_json::Value>>,
    ) -> Self {
        PolicyRequest {
            name,
            selector: Some(SelectorDto { labels }),
            source_groups,
            schedules,
            repository_id: None,
            options,
            health_checks,
        }
    }

    /// [`Self::validate`] for the configuration file.
    pub(crate) fn into_policy(
        self,
        id: String,
        created_at: i64,
        now: i64,
    ) -> Result<Policy, ApiError> {
        self.validate(id, created_at, now, crate::protocol::MIN_INTERVAL_SECONDS)
    }

    /// Checks every field (health checks' intervals against
    /// `min_interval`); the policy keeps `id` and `created_at`.
    fn validate(
        self,
        id: String,
        created_at: i64,
        now: i64,
        min_interval: u32,
    ) -> Result<Policy, ApiError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(ApiError::validation("name: must not be empty"));
        }
        if name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(ApiError::validation(format!(
                "name: at most {MAX_NAME_LEN} bytes, no control characters"
            )));
        }
        let labels = self.selector.unwrap_or_default().labels;
        validate_labels(&labels).map_err(at("selector.".to_owned()))?;
        if self.source_groups.len() > MAX_ITEMS || self.schedules.len() > MAX_ITEMS {
            return Err(ApiError::validation(format!(
                "source_groups: at most {MAX_ITEMS} source groups and {MAX_ITEMS} schedules"
            )));
        }
        let mut groups = Vec::new();
        let mut names = HashSet::new();
        for (i, g) in self.source_groups.into_iter().enumerate() {
            let v = g.validate().map_err(at(format!("source_groups[{i}].")))?;
            // A dump group's password is sealed per group row; policies
            // carry file groups only (for now: say so rather than drop it).
            if v.kind != "files" {
                return Err(ApiError::validation(format!(
                    "source_groups[{i}].type: a policy's groups are file groups; add dump groups to each host"
                )));
            }
            if !names.insert(v.name.clone()) {
                return Err(ApiError::validation(format!(
                    "source_groups[{i}].name: {:?} appears twice in this policy",
                    v.name
                )));
            }
            groups.push(PolicyGroup {
                name: v.name,
                includes: v.includes,
                excludes: v.excludes,
                retention_policy: v.retention_policy,
                retry_max: v.retry_max,
                retry_backoff_seconds: v.retry_backoff_seconds,
                prune_after_forget: v.prune_after_forget,
                options: v.options,
            });
        }
        let mut schedules = Vec::new();
        for (i, s) in self.schedules.into_iter().enumerate() {
            let v = s.validate().map_err(at(format!("schedules[{i}].")))?;
            if let Some(unknown) = v.source_groups.iter().find(|n| !names.contains(*n)) {
                return Err(ApiError::validation(format!(
                    "schedules[{i}].source_groups: no source group named {unknown:?} in this policy"
                )));
            }
            schedules.push(PolicySchedule {
                cron_expr: v.cron_expr,
                enabled: v.enabled,
                kind: v.kind,
                source_groups: v.source_groups,
            });
        }
        let options = super::options::parse("options", self.options)?;
        let health_checks =
            super::health::parse_checks(self.health_checks, min_interval).map_err(|mut e| {
                // `[1].name: …` names a check, `checks: …` the list.
                e.message = match e.message.strip_prefix("checks") {
                    Some(rest) => format!("health_checks{rest}"),
                    None => format!("health_checks{}", e.message),
                };
                e
            })?;
        let repository_id = self
            .repository_id
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        Ok(Policy {
            id,
            name,
            selector: Selector { labels },
            source_groups: groups,
            schedules,
            repository_id,
            options,
            created_at,
            updated_at: now,
            health_checks,
        })
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Conflict(c) => ApiError::conflict(policy_sync::describe(&c)),
            e @ SyncError::RepositoryConflict(_) => ApiError::conflict(e.to_string()),
            SyncError::Db(e) => ApiError::from(e),
        }
    }
}

/// Checks what the database must agree with: a free name and an existing
/// repository.
fn check_refs(conn: &mut DbConnection, p: &Policy) -> Result<(), ApiError> {
    if let Some(other) = store::policies::by_name(conn, &p.name)? {
        if other.id != p.id {
            return Err(ApiError::conflict(format!(
                "name: a policy named {:?} exists already",
                p.name
            )));
        }
    }
    if let Some(repo) = &p.repository_id {
        if store::repositories::get(conn, repo)?.is_none() {
            return Err(ApiError::validation(format!(
                "repository_id: no repository {repo:?}"
            )));
        }
    }
    Ok(())
}

/// The policy `id` or 404.
fn load(conn: &mut DbConnection, id: &str) -> Result<Policy, ApiError> {
    store::policies::get(conn, id)?.ok_or_else(|| ApiError::not_found(&format!("policy {id}")))
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<PageQuery>,
) -> Result<web::Json<List<PolicyDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let (limit, offset) = query.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let items = with_conn(&state.pool, move |conn| {
        let mut items = Vec::new();
        for p in store::policies::list(conn)? {
            let matched = policy_sync::matching_hosts(conn, &p.selector)?;
            items.push(PolicyDto::from_row(p, matched, false));
        }
        Ok(items)
    })
    .await?;
    Ok(web::Json(List::slice(items, limit, offset)))
}

async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<PolicyDto>, ApiError> {
    who.require(Role::Viewer)?;
    let id = path.into_inner();
    let dto = with_conn(&state.pool, move |conn| {
        let p = load(conn, &id)?;
        let matched = policy_sync::matching_hosts(conn, &p.selector)?;
        Ok(PolicyDto::from_row(p, matched, true))
    })
    .await?;
    Ok(web::Json(dto))
}

/// The answer of a create or update.
fn change(p: Policy, matched: Vec<String>, affected: usize) -> Result<ChangeDto, ApiError> {
    let policy = PolicyDto::from_row(p, matched, false);
    let top = match serde_json::to_value(&policy).map_err(ApiError::internal)? {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Ok(ChangeDto {
        policy,
        hosts_affected: affected,
        top,
    })
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<PolicyRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let now = store::now_ms();
    let min_interval = state.config.health_min_interval_seconds;
    let policy = body
        .into_inner()
        .validate(store::new_id(), now, now, min_interval)?;
    let (row, affected, matched) = state
        .actors
        .write("creating a policy", move |conn| {
            check_refs(conn, &policy)?;
            let row = store::policies::insert(conn, &policy)?;
            let affected = policy_sync::apply_policy(conn, None, Some(&row), now)?;
            audit(
                conn,
                &who,
                "policy.create",
                Some(&row.id),
                Some(json!({"name": row.name, "hosts_affected": affected.hosts_affected()})),
            )?;
            let matched = policy_sync::matching_hosts(conn, &row.selector)?;
            Ok::<_, ApiError>((row, affected, matched))
        })
        .await?;
    let n = affected.hosts_affected();
    state.actors.push_configs(affected);
    Ok(HttpResponse::Created().json(change(row, matched, n)?))
}

async fn update(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<PolicyRequest>,
) -> Result<web::Json<ChangeDto>, ApiError> {
    who.require(Role::Operator)?;
    let id = path.into_inner();
    let request = body.into_inner();
    let now = store::now_ms();
    let min_interval = state.config.health_min_interval_seconds;
    let (row, affected, matched) = state
        .actors
        .write("changing a policy", move |conn| {
            let old = load(conn, &id)?;
            let policy = request.validate(id.clone(), old.created_at, now, min_interval)?;
            check_refs(conn, &policy)?;
            let row = store::policies::update(conn, &policy)?
                .ok_or_else(|| ApiError::not_found(&format!("policy {id}")))?;
            let affected = policy_sync::apply_policy(conn, Some(&old), Some(&row), now)?;
            audit(
                conn,
                &who,
                "policy.update",
                Some(&row.id),
                Some(json!({"name": row.name, "hosts_affected": affected.hosts_affected()})),
            )?;
            let matched = policy_sync::matching_hosts(conn, &row.selector)?;
            Ok::<_, ApiError>((row, affected, matched))
        })
        .await?;
    let n = affected.hosts_affected();
    state.actors.push_configs(affected);
    Ok(web::Json(change(row, matched, n)?))
}

async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let id = path.into_inner();
    let affected = state
        .actors
        .write("deleting a policy", move |conn| {
            let old = load(conn, &id)?;
            let affected = policy_sync::apply_policy(conn, Some(&old), None, store::now_ms())?;
            store::policies::delete(conn, &id)?;
            audit(
                conn,
                &who,
                "policy.delete",
                Some(&id),
                Some(json!({"name": old.name, "hosts_affected": affected.hosts_affected()})),
            )?;
            Ok::<_, ApiError>(affected)
        })
        .await?;
    state.actors.push_configs(affected);
    Ok(HttpResponse::NoContent().finish())
}
