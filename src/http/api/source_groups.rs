//! A host's source groups (what it backs up, how long it keeps it, how it
//! retries): `GET/POST /hosts/{id}/source-groups` and
//! `GET/PUT/DELETE /hosts/{id}/source-groups/{gid}`. Changes need the
//! operator role, are audited, and go through `change_host_config` (the
//! schedule version is bumped in the same write, then pushed).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::table::Endpoint;
use super::{audit, change_host_config, List, PageQuery, DEFAULT_LIMIT};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{live_host, Body, Time};
use crate::http::AppState;
use crate::ids::{HostId, SourceGroupId};
use crate::protocol::{DumpDriver, DumpSpec, RetentionPolicy};
use crate::store::models::{GROUP_KIND_DUMP, GROUP_KIND_FILES};
use crate::store::{self, models, DbConnection};

/// Longest group name (it is also the restic tag of its snapshots).
pub const MAX_NAME_LEN: usize = 64;
/// Most include paths or exclude patterns in one group.
const MAX_PATHS: usize = 1000;
/// Longest include path or exclude pattern.
const MAX_PATH_LEN: usize = 4096;
/// Most retries of a failed backup.
const MAX_RETRIES: u32 = 10;
/// Longest wait before the first retry (a day).
const MAX_BACKOFF_SECONDS: u32 = 86_400;
/// Retry back-off when the request gives none (the column's default).
const DEFAULT_BACKOFF_SECONDS: u32 = 300;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/source-groups", |r| r.to(list))
            .summary("List a host's source groups, by name")
            .role(Role::Viewer)
            .paged()
            .ok(200, "SourceGroupList"),
        Endpoint::post("/hosts/{id}/source-groups", |r| r.to(create))
            .summary("Add a source group; bumps the schedule version")
            .role(Role::Operator)
            .body("SourceGroupRequest")
            .ok(201, "SourceGroup")
            .error(409, "The name is taken on this host."),
        Endpoint::get("/hosts/{id}/source-groups/{gid}", |r| r.to(get))
            .summary("Read a source group")
            .role(Role::Viewer)
            .ok(200, "SourceGroup"),
        Endpoint::put("/hosts/{id}/source-groups/{gid}", |r| r.to(update))
            .summary("Replace a source group; bumps the schedule version")
            .role(Role::Operator)
            .body("SourceGroupRequest")
            .ok(200, "SourceGroup")
            .error(409, "The name is taken on this host."),
        Endpoint::delete("/hosts/{id}/source-groups/{gid}", |r| r.to(delete))
            .summary("Delete a source group; bumps the schedule version")
            .role(Role::Operator)
            .empty(204, "Deleted."),
    ]
}

/// A source group as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SourceGroup)]
pub struct SourceGroupDto {
    pub id: String,
    pub host_id: String,
    pub name: String,
    /// `files` (paths) or `dump` (a database dump streamed into restic).
    #[serde(rename = "type")]
    pub kind: String,
    /// A dump group's database (`null` for a files group).
    pub dump: Option<DumpView>,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// `null`: keep every snapshot.
    pub retention_policy: Option<RetentionPolicy>,
    pub retry_max: i32,
    pub retry_backoff_seconds: i32,
    /// Its `forget` jobs also prune (`restic forget --prune`).
    pub prune_after_forget: bool,
    /// Restic options of its jobs (a policy's group: the policy's options
    /// with the group's own on top); `null`: none.
    #[schema(value_type = Option<RunOptions>)]
    pub options: Option<crate::protocol::RunOptions>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
}

/// A dump group's database as the API shows it: the password is never
/// returned, only whether one is stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DumpView {
    /// `postgres`, `mysql`, `mariadb`, `mongodb` or `sqlite`.
    #[schema(value_type = String)]
    pub driver: DumpDriver,
    pub database: Option<String>,
    pub all: bool,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub container: Option<String>,
    pub path: Option<String>,
    /// A password is stored (sealed).
    pub password_set: bool,
}

impl SourceGroupDto {
    pub fn from_row(g: models::SourceGroup) -> Self {
        let password_set = g.dump_password_sealed.is_some();
        let dump = g.dump_spec().cloned().map(|d| DumpView {
            driver: d.driver,
            database: d.database,
            all: d.all,
            host: d.host,
            port: d.port,
            user: d.user,
            container: d.container,
            path: d.path,
            password_set,
        });
        SourceGroupDto {
            kind: g.kind,
            dump,
            includes: g.includes,
            excludes: g.excludes,
            retention_policy: g.retention_policy,
            id: g.id.into(),
            host_id: g.host_id.into(),
            name: g.name,
            retry_max: g.retry_max,
            retry_backoff_seconds: g.retry_backoff_seconds,
            prune_after_forget: g.prune_after_forget,
            options: g.options,
            created_at: Time(g.created_at),
            updated_at: Time(g.updated_at),
        }
    }
}

/// The retention policy as a request gives it: the fields of
/// [`RetentionPolicy`], but an unknown key (a typo such as `keep_dayly`)
/// is refused instead of silently keeping everything.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RetentionPolicy)]
pub(super) struct RetentionBody {
    keep_last: Option<u32>,
    keep_hourly: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    /// A restic duration such as 30d or 1y2m.
    keep_within: Option<String>,
}

impl From<RetentionBody> for RetentionPolicy {
    fn from(b: RetentionBody) -> Self {
        RetentionPolicy {
            keep_last: b.keep_last,
            keep_hourly: b.keep_hourly,
            keep_daily: b.keep_daily,
            keep_weekly: b.keep_weekly,
            keep_monthly: b.keep_monthly,
            keep_yearly: b.keep_yearly,
            keep_within: b.keep_within,
        }
    }
}

/// A dump group's database as a request gives it (see [`DumpSpec`]);
/// an unknown key or driver is refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DumpSourceRequest)]
pub(crate) struct DumpBody {
    /// `postgres`, `mysql`, `mariadb`, `mongodb` or `sqlite`.
    #[schema(value_type = String)]
    driver: DumpDriver,
    /// Required unless `all` (or the driver is `sqlite`); must not start
    /// with '-'.
    database: Option<String>,
    /// Every database (`pg_dumpall`, `--all-databases`).
    #[serde(default)]
    all: bool,
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    /// Write-only: stored sealed, shown as `password_set`. Omitted on PUT
    /// keeps the stored one; `""` removes it.
    password: Option<String>,
    /// Run the dump tool in this running Docker container.
    container: Option<String>,
    /// `sqlite`: the database file (absolute).
    path: Option<String>,
}

impl From<DumpBody> for DumpSpec {
    fn from(b: DumpBody) -> Self {
        DumpSpec {
            driver: b.driver,
            database: b.database,
            all: b.all,
            host: b.host,
            port: b.port,
            user: b.user,
            password: b.password,
            container: b.container,
            path: b.path,
        }
    }
}

/// What a request does to a dump group's stored password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PasswordChange {
    /// Leave it as stored (none on create).
    Keep,
    /// Store this one (sealed).
    Set(String),
    /// Remove it.
    Clear,
}

/// `POST` and `PUT` body (PUT replaces every field; omitted optional
/// fields take their defaults).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SourceGroupRequest)]
pub(crate) struct GroupRequest {
    /// 1-64 letters, digits, '.', '_' or '-'; the snapshots' tag.
    name: String,
    /// `files` (default) or `dump`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Required for a `files` group, refused for a `dump` group.
    #[serde(default)]
    includes: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    /// Required for a `dump` group, refused for a `files` group.
    #[serde(default)]
    #[schema(value_type = Option<DumpSourceRequest>)]
    dump: Option<DumpBody>,
    #[serde(default)]
    #[schema(value_type = Option<RetentionPolicy>)]
    retention_policy: Option<RetentionBody>,
    #[serde(default)]
    #[schema(maximum = 10)]
    retry_max: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    retry_backoff_seconds: Option<u32>,
    /// Its forgets also prune (`restic forget --prune`); default false.
    /// Needs a retention policy.
    #[serde(default)]
    prune_after_forget: Option<bool>,
    /// Restic options of its jobs (see `RunOptions`); an unknown key is
    /// refused.
    #[serde(default)]
    #[schema(value_type = Option<RunOptions>)]
    options: Option<serde_json::Value>,
}

/// A request that passed validation.
pub(super) struct ValidGroup {
    pub(super) name: String,
    pub(super) kind: &'static str,
    /// A dump group's database, without its password.
    pub(super) dump: Option<DumpSpec>,
    pub(super) password: PasswordChange,
    pub(super) includes: Vec<String>,
    pub(super) excludes: Vec<String>,
    pub(super) retention_policy: Option<RetentionPolicy>,
    pub(super) retry_max: i32,
    pub(super) retry_backoff_seconds: i32,
    pub(super) prune_after_forget: bool,
    pub(super) options: Option<crate::protocol::RunOptions>,
}

/// Whether `name` is usable as a group name and restic tag: 1-64 ASCII
/// letters, digits, `.`, `_` or `-` (a comma would split the tag).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_paths(field: &str, paths: &[String]) -> Result<(), ApiError> {
    if paths.len() > MAX_PATHS {
        return Err(ApiError::validation(format!(
            "{field}: at most {MAX_PATHS} entries"
        )));
    }
    for (i, path) in paths.iter().enumerate() {
        if path.trim().is_empty() {
            return Err(ApiError::validation(format!(
                "{field}[{i}]: must not be empty"
            )));
        }
        if path.len() > MAX_PATH_LEN || path.contains('\0') || path.contains('\n') {
            return Err(ApiError::validation(format!(
                "{field}[{i}]: at most {MAX_PATH_LEN} bytes, no NUL or newline"
            )));
        }
    }
    Ok(())
}

impl GroupRequest {
    pub(super) fn validate(self) -> Result<ValidGroup, ApiError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(ApiError::validation("name: must not be empty"));
        }
        if !valid_name(&name) {
            return Err(ApiError::validation(format!(
                "name: use 1-{MAX_NAME_LEN} letters, digits, '.', '_' or '-' (it is the snapshots' restic tag)"
            )));
        }
        let (kind, dump, password) = match (self.kind.as_deref(), self.dump) {
            (None | Some(GROUP_KIND_FILES), None) => (GROUP_KIND_FILES, None, PasswordChange::Keep),
            (None | Some(GROUP_KIND_FILES), Some(_)) => {
                return Err(ApiError::validation(
                    "dump: only a group of \"type\": \"dump\" has a dump",
                ))
            }
            (Some(GROUP_KIND_DUMP), None) => {
                return Err(ApiError::validation(
                    "dump: required for a group of \"type\": \"dump\"",
                ))
            }
            (Some(GROUP_KIND_DUMP), Some(body)) => {
                let spec = DumpSpec::from(body);
                spec.validate()
                    .map_err(|e| ApiError::validation(e.to_string()))?;
                let password = match spec.password.as_deref() {
                    None => PasswordChange::Keep,
                    Some("") => PasswordChange::Clear,
                    Some(p) => PasswordChange::Set(p.to_owned()),
                };
                (GROUP_KIND_DUMP, Some(spec.without_password()), password)
            }
            (Some(other), _) => {
                return Err(ApiError::validation(format!(
                    "type: {other:?} is not a source group type; use \"files\" or \"dump\""
                )))
            }
        };
        if kind == GROUP_KIND_DUMP && !(self.includes.is_empty() && self.excludes.is_empty()) {
            return Err(ApiError::validation(
                "includes: a dump group backs up its dump, not paths; leave includes and excludes out",
            ));
        }
        if kind == GROUP_KIND_FILES && self.includes.is_empty() {
            return Err(ApiError::validation(
                "includes: at least one path to back up is needed",
            ));
        }
        check_paths("includes", &self.includes)?;
        check_paths("excludes", &self.excludes)?;
        let retention_policy = match self.retention_policy {
            None => None,
            Some(body) => {
                let policy = RetentionPolicy::from(body);
                if policy.is_empty() {
                    return Err(ApiError::validation(
                        "retention_policy: set at least one keep_* option, or null to keep every snapshot",
                    ));
                }
                policy
                    .validate()
                    .map_err(|e| ApiError::validation(format!("retention_policy: {e}")))?;
                Some(policy)
            }
        };
        let retry_max = self.retry_max.unwrap_or(0);
        if retry_max > MAX_RETRIES {
            return Err(ApiError::validation(format!(
                "retry_max: at most {MAX_RETRIES}"
            )));
        }
        let backoff = self
            .retry_backoff_seconds
            .unwrap_or(DEFAULT_BACKOFF_SECONDS);
        if !(1..=MAX_BACKOFF_SECONDS).contains(&backoff) {
            return Err(ApiError::validation(format!(
                "retry_backoff_seconds: must be between 1 and {MAX_BACKOFF_SECONDS}"
            )));
        }
        let prune_after_forget = self.prune_after_forget.unwrap_or(false);
        if prune_after_forget && retention_policy.is_none() {
            return Err(ApiError::validation(
                "prune_after_forget: needs a retention_policy (without one the group is never forgotten)",
            ));
        }
        let options = super::options::parse("options", self.options)?;
        if let (GROUP_KIND_DUMP, Some(o)) = (kind, &options) {
            super::options::check_for_dump("options", o)?;
        }
        Ok(ValidGroup {
            options,
            name,
            kind,
            dump,
            password,
            prune_after_forget,
            includes: self.includes,
            excludes: self.excludes,
            retention_policy,
            // Both are bounded above, so they fit.
            retry_max: i32::try_from(retry_max).map_err(ApiError::internal)?,
            retry_backoff_seconds: i32::try_from(backoff).map_err(ApiError::internal)?,
        })
    }
}

/// A unique-name violation becomes 409 naming the group; anything else
/// keeps its usual mapping.
fn name_taken(name: &str) -> impl FnOnce(diesel::result::Error) -> ApiError + '_ {
    move |e| match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => ApiError::conflict(format!(
            "name: a source group named {name:?} exists on this host already"
        )),
        other => ApiError::from(other),
    }
}

/// Seals a dump password bound to its group's id, as repository secrets.
fn seal_password(
    key: &crate::crypto::SecretKey,
    password: &str,
    group_id: &str,
) -> Result<Vec<u8>, ApiError> {
    crate::crypto::seal_str(key, password, group_id.as_bytes()).map_err(ApiError::internal)
}

/// 409 when a policy gave the host a group of this name (the unique
/// index would refuse it too, without naming the policy).
fn policy_name_taken(conn: &mut DbConnection, host_id: &str, name: &str) -> Result<(), ApiError> {
    let Some(group) = store::source_groups::by_name(conn, host_id, name)? else {
        return Ok(());
    };
    match store::policy_sync::owner_of_group(conn, group.id.as_str())? {
        Some(policy) => Err(ApiError::conflict(format!(
            "name: host {host_id} has source group {name:?} from policy {policy:?}; choose another name or change the policy"
        ))),
        None => Ok(()),
    }
}

/// 409 for a group a policy manages: change the policy instead.
fn not_from_policy(conn: &mut DbConnection, gid: &str) -> Result<(), ApiError> {
    match store::policy_sync::owner_of_group(conn, gid)? {
        Some(policy) => Err(ApiError::conflict(format!(
            "source group {gid} comes from policy {policy:?}; change the policy instead"
        ))),
        None => Ok(()),
    }
}

/// The host's group `gid`, or 404.
fn group_of(
    conn: &mut DbConnection,
    host_id: &HostId,
    gid: &SourceGroupId,
) -> Result<models::SourceGroup, ApiError> {
    live_host(conn, host_id)?;
    store::source_groups::get_for_host(conn, host_id, gid)?
        .ok_or_else(|| ApiError::not_found(&format!("source group {gid}")))
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<List<SourceGroupDto>>, ApiError> {
    who.require(Role::Viewer)?;
    let (limit, offset) = query.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let host_id = path.into_inner();
    let rows = with_conn(&state.pool, move |conn| {
        live_host(conn, &host_id)?;
        Ok(store::source_groups::list_for_host(conn, &host_id)?)
    })
    .await?;
    let items = rows.into_iter().map(SourceGroupDto::from_row).collect();
    Ok(web::Json(List::slice(items, limit, offset)))
}

async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<web::Json<SourceGroupDto>, ApiError> {
    who.require(Role::Viewer)?;
    let (host_id, gid) = path.into_inner();
    let (host_id, gid) = (HostId::from(host_id), SourceGroupId::from(gid));
    let row = with_conn(&state.pool, move |conn| group_of(conn, &host_id, &gid)).await?;
    Ok(web::Json(SourceGroupDto::from_row(row)))
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<GroupRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let host_id = path.into_inner();
    let valid = body.into_inner().validate()?;
    let target = host_id.clone();
    let key = state.key.clone();
    let row = change_host_config(&state, &host_id, "adding a source group", move |conn| {
        policy_name_taken(conn, &target, &valid.name)?;
        let now = store::now_ms();
        let id = store::new_id();
        let sealed = match &valid.password {
            PasswordChange::Set(p) => Some(seal_password(&key, p, &id)?),
            PasswordChange::Keep | PasswordChange::Clear => None,
        };
        let row = store::source_groups::insert(
            conn,
            &models::NewSourceGroup {
                id: id.clone().into(),
                kind: valid.kind.to_owned(),
                dump: valid.dump,
                dump_password_sealed: sealed,
                host_id: target.clone().into(),
                name: valid.name.clone(),
                includes: valid.includes,
                excludes: valid.excludes,
                retention_policy: valid.retention_policy,
                retry_max: valid.retry_max,
                retry_backoff_seconds: valid.retry_backoff_seconds,
                created_at: now,
                updated_at: now,
                prune_after_forget: valid.prune_after_forget,
                options: valid.options,
            },
        )
        .map_err(name_taken(&valid.name))?;
        audit(
            conn,
            &who,
            "source_group.create",
            Some(&row.id),
            Some(json!({"host_id": target, "name": row.name, "type": row.kind})),
        )?;
        Ok(row)
    })
    .await?;
    Ok(HttpResponse::Created().json(SourceGroupDto::from_row(row)))
}

async fn update(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
    body: Body<GroupRequest>,
) -> Result<web::Json<SourceGroupDto>, ApiError> {
    who.require(Role::Operator)?;
    let (host_id, gid) = path.into_inner();
    let (host_id, gid) = (HostId::from(host_id), SourceGroupId::from(gid));
    let valid = body.into_inner().validate()?;
    let target = host_id.clone();
    let key = state.key.clone();
    let row = change_host_config(&state, &host_id, "changing a source group", move |conn| {
        group_of(conn, &target, &gid)?;
        not_from_policy(conn, &gid)?;
        let password = match (&valid.password, valid.kind) {
            // A files group keeps no dump password.
            (_, GROUP_KIND_FILES) | (PasswordChange::Clear, _) => Some(None),
            (PasswordChange::Set(p), _) => Some(Some(seal_password(&key, p, &gid)?)),
            (PasswordChange::Keep, _) => None,
        };
        let changes = models::SourceGroupChanges {
            kind: Some(valid.kind.to_owned()),
            dump: Some(valid.dump),
            dump_password_sealed: password,
            name: Some(valid.name.clone()),
            includes: Some(valid.includes),
            excludes: Some(valid.excludes),
            retention_policy: Some(valid.retention_policy),
            retry_max: Some(valid.retry_max),
            retry_backoff_seconds: Some(valid.retry_backoff_seconds),
            prune_after_forget: Some(valid.prune_after_forget),
            options: Some(valid.options),
        };
        let row = store::source_groups::update(conn, &gid, &changes, store::now_ms())
            .map_err(name_taken(&valid.name))?
            .ok_or_else(|| ApiError::not_found(&format!("source group {gid}")))?;
        audit(
            conn,
            &who,
            "source_group.update",
            Some(&gid),
            Some(json!({"host_id": target, "name": row.name})),
        )?;
        Ok(row)
    })
    .await?;
    Ok(web::Json(SourceGroupDto::from_row(row)))
}

async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let (host_id, gid) = path.into_inner();
    let (host_id, gid) = (HostId::from(host_id), SourceGroupId::from(gid));
    let target = host_id.clone();
    change_host_config(&state, &host_id, "deleting a source group", move |conn| {
        let group = group_of(conn, &target, &gid)?;
        not_from_policy(conn, &gid)?;
        store::source_groups::delete(conn, &gid)?;
        audit(
            conn,
            &who,
            "source_group.delete",
            Some(&gid),
            Some(json!({"host_id": target, "name": group.name})),
        )
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: serde_json::Value) -> Result<ValidGroup, ApiError> {
        serde_json::from_value::<GroupRequest>(body)
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .validate()
    }

    /// A full request validates; defaults apply to omitted fields.
    #[test]
    fn valid_group_keeps_the_request() {
        let v = request(json!({
            "name": "etc",
            "includes": ["/etc"],
            "retention_policy": {"keep_daily": 7, "keep_within": "30d"}
        }))
        .unwrap();
        assert_eq!(v.includes, ["/etc"]);
        assert!(v.excludes.is_empty());
        assert_eq!(
            v.retention_policy,
            Some(RetentionPolicy {
                keep_daily: Some(7),
                keep_within: Some("30d".to_owned()),
                ..RetentionPolicy::default()
            })
        );
        assert_eq!((v.retry_max, v.retry_backoff_seconds), (0, 300));
        assert!(!v.prune_after_forget, "off unless asked");
        let v = request(json!({
            "name": "etc",
            "includes": ["/etc"],
            "retention_policy": {"keep_last": 3},
            "prune_after_forget": true
        }))
        .unwrap();
        assert!(v.prune_after_forget);
    }

    /// A dump group: its spec is kept without the password, which is a
    /// separate change; `""` removes it, omitted keeps it.
    #[test]
    fn dump_group_keeps_the_password_apart() {
        let v = request(json!({
            "name": "shop-db", "type": "dump",
            "dump": {"driver": "postgres", "database": "shop", "password": "pw"}
        }))
        .unwrap();
        assert_eq!(v.kind, GROUP_KIND_DUMP);
        let dump = v.dump.unwrap();
        assert_eq!(dump.password, None);
        assert_eq!(dump.database.as_deref(), Some("shop"));
        assert_eq!(v.password, PasswordChange::Set("pw".to_owned()));
        let clear = request(json!({
            "name": "d", "type": "dump", "dump": {"driver": "postgres", "all": true, "password": ""}
        }))
        .unwrap();
        assert_eq!(clear.password, PasswordChange::Clear);
        let files = request(json!({"name": "etc", "includes": ["/etc"]})).unwrap();
        assert_eq!(
            (files.kind, files.password),
            (GROUP_KIND_FILES, PasswordChange::Keep)
        );
    }

    /// Bad dump groups: an unknown driver, argument injection through the
    /// database or user (leading '-', NUL), a dump with paths, a type
    /// without its dump.
    #[test]
    fn invalid_dump_groups_are_refused() {
        let driver = request(json!({
            "name": "d", "type": "dump", "dump": {"driver": "oracle", "database": "x"}
        }))
        .err()
        .unwrap();
        assert_eq!(driver.status, actix_web::http::StatusCode::BAD_REQUEST);
        assert!(driver.message.contains("oracle"), "{}", driver.message);
        let cases = [
            (
                json!({"driver": "postgres", "database": "--help"}),
                "dump.database:",
            ),
            (
                json!({"driver": "postgres", "database": "a\u{0}"}),
                "dump.database:",
            ),
            (
                json!({"driver": "mysql", "database": "x", "user": "-uroot"}),
                "dump.user:",
            ),
            (
                json!({"driver": "mysql", "database": "x", "user": "r\u{0}t"}),
                "dump.user:",
            ),
            (json!({"driver": "postgres"}), "dump.database:"),
        ];
        for (dump, prefix) in cases {
            let err = request(json!({"name": "d", "type": "dump", "dump": dump.clone()}))
                .err()
                .unwrap();
            assert_eq!(err.status, actix_web::http::StatusCode::BAD_REQUEST);
            assert!(err.message.starts_with(prefix), "{dump}: {}", err.message);
        }
        let other = [
            (json!({"name": "d", "type": "dump"}), "dump:"),
            (
                json!({"name": "d", "includes": ["/"], "dump": {"driver": "sqlite", "path": "/a.db"}}),
                "dump:",
            ),
            (
                json!({"name": "d", "type": "dump", "includes": ["/"], "dump": {"driver": "sqlite", "path": "/a.db"}}),
                "includes:",
            ),
            (
                json!({"name": "d", "type": "tape", "includes": ["/"]}),
                "type:",
            ),
        ];
        for (body, prefix) in other {
            let err = request(body.clone()).err().unwrap();
            assert!(err.message.starts_with(prefix), "{body}: {}", err.message);
        }
    }

    /// Each invalid field is refused with its name first in the message.
    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            (json!({"name": "", "includes": ["/"]}), "name:"),
            (json!({"name": "a,b", "includes": ["/"]}), "name:"),
            (json!({"name": "x", "includes": []}), "includes:"),
            (json!({"name": "x", "includes": [" "]}), "includes[0]:"),
            (
                json!({"name": "x", "includes": ["/"], "excludes": ["ok", ""]}),
                "excludes[1]:",
            ),
            (
                json!({"name": "x", "includes": ["/"], "retention_policy": {}}),
                "retention_policy:",
            ),
            (
                json!({"name": "x", "includes": ["/"], "retention_policy": {"keep_within": "--all"}}),
                "retention_policy:",
            ),
            (
                json!({"name": "x", "includes": ["/"], "retry_max": 11}),
                "retry_max:",
            ),
            (
                json!({"name": "x", "includes": ["/"], "retry_backoff_seconds": 0}),
                "retry_backoff_seconds:",
            ),
            (
                json!({"name": "x", "includes": ["/"], "prune_after_forget": true}),
                "prune_after_forget:",
            ),
        ];
        for (body, prefix) in cases {
            let err = request(body.clone()).err().unwrap();
            assert!(err.message.starts_with(prefix), "{body}: {}", err.message);
        }
        let typo =
            request(json!({"name": "x", "includes": ["/"], "retention_policy": {"keep_dayly": 7}}));
        assert!(typo.err().unwrap().message.contains("keep_dayly"));
    }
}
