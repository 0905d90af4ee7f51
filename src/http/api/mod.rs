//! The management REST API under `/api/v1` (docs/API.md): one module per
//! resource, each with its own request and response DTOs (store rows are
//! never serialised directly, and no DTO has a secret field).
//!
//! Every route is one [`table::Endpoint`] in its module's `endpoints()`:
//! [`routes`] registers them and [`openapi`] documents them from the same
//! table. This module also holds what the resources share: list paging
//! ([`PageQuery`], [`List`]), the audit-log writer ([`audit`]), host
//! configuration changes ([`change_host_config`]), the JSON 404 of unknown
//! API paths ([`unknown_routes`]) and the mapping of the actors' errors
//! onto [`ApiError`]. What the UI shares with the API (the JSON body,
//! query parameters, RFC 3339 times, stored JSON, the live-host lookup) is
//! in [`crate::http::extract`].
//!
//! Reads run in `web::block` ([`with_conn`](crate::http::error::with_conn));
//! every write, audit rows included, goes through the one writer
//! (`Actors::write`), in one transaction with its audit row.
//!
//! # Layout
//!
//! - `table`: [`table::Endpoint`], the route table's entries and builder.
//! - `openapi`: `GET /openapi.json`, built from [`endpoints`].
//! - `session`: `POST /auth/login`, `POST /auth/logout`, `GET /me`.
//! - `hosts`: `GET /hosts`, `GET/PATCH/DELETE /hosts/{id}`.
//! - `health`: `GET/PUT /hosts/{id}/health-checks`, `GET /hosts/{id}/health`
//!   and `GET /hosts/{id}/metrics` (issue 14).
//! - `discovery`: `GET /hosts/{id}/discovery`, the host's Docker
//!   containers and their databases (issue 13 §2).
//! - `repository`: `GET/PUT /hosts/{id}/repository` (inline, or attach
//!   a shared repository).
//! - `repositories`: shared repositories, `/repositories[/{id}]`.
//! - `source_groups`: `/hosts/{id}/source-groups[/{gid}]`.
//! - `options`: the `options` object of a group or policy, read naming
//!   the key at fault.
//! - `schedules`: `/hosts/{id}/schedules[/{sid}]`, cron validation and
//!   description.
//! - `policies`: `/policies[/{id}]` (policies by label).
//! - `effective_config`: `GET /hosts/{id}/effective-config` (a host's own
//!   configuration plus its policies', each with its origin).
//! - `config`: `GET /config/export`, `POST /config/apply` (configuration
//!   as code, `crate::config_as_code`).
//! - `bulk`: `POST /jobs/bulk` and `POST /jobs/bulk-cancel`.
//! - `jobs`: `POST /hosts/{id}/jobs`, `GET /jobs`, `GET /jobs/{id}`,
//!   `GET /jobs/{id}/logs`, `POST /jobs/{id}/cancel`.
//! - `snapshots`, `repo_stats`, `missed_runs`: the read-only reports.
//! - `catalog`: a snapshot's folders (`/hosts/{id}/snapshots/{sid}/tree`)
//!   and the fleet-wide path search (`/catalog/search`).
//! - `downloads`: `GET /hosts/{id}/snapshots/{snapshot_id}/download`, a
//!   file or folder of a snapshot streamed from the agent.
//! - `enrollment_tokens`, `users`, `api_tokens`: administration (admin).
//! - `audit_log`: `GET /audit` (admin).
//! - `events`: `GET /jobs/{id}/events`, Server-Sent Events of one job.
//! - `version`: `GET /version`, the server's version, commit and protocol.

use actix_web::http::StatusCode;
use actix_web::web;
use serde::{Deserialize, Serialize};

use crate::actors::persistence::PersistError;
use crate::actors::ActorError;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::extract::{int_param, live_host};
use crate::http::AppState;
use crate::store::{self, DbConnection};

mod api_tokens;
mod audit_log;
mod bulk;
pub(crate) mod catalog;
mod config;
pub(crate) mod discovery;
pub(crate) mod downloads;
mod effective_config;
mod enrollment_tokens;
mod events;
mod health;
mod hosts;
mod jobs;
mod missed_runs;
pub(crate) mod notifications;
pub mod openapi;
mod options;
mod policies;
mod repo_stats;
mod repositories;
mod repository;
pub(crate) mod schedules;
mod session;
mod snapshots;
mod source_groups;
pub mod table;
mod users;
mod version;

use table::Endpoint;

// The API's rules, shared with the configuration file
// (`crate::config_as_code`), which checks what it reads exactly as the
// routes check a request.
pub(crate) use hosts::validate_labels;
pub(crate) use policies::PolicyRequest;
pub(crate) use repositories::check_name as check_repository_name;
pub(crate) use repository::{check_secret, check_url};
pub(crate) use schedules::ScheduleRequest;
pub(crate) use source_groups::GroupRequest;

/// The path prefix of every route here.
pub const PREFIX: &str = "/api/v1";

/// Page size when a list request gives no `limit`.
pub const DEFAULT_LIMIT: i64 = 50;

/// Every endpoint of `/api/v1`, in registration order: the one route table
/// that [`routes`] registers and [`openapi`] documents. A new endpoint is
/// added to its module's `endpoints()` and nowhere else.
pub fn endpoints() -> Vec<Endpoint> {
    [
        session::endpoints(),
        crate::http::agent::endpoints(),
        hosts::endpoints(),
        health::endpoints(),
        discovery::endpoints(),
        repository::endpoints(),
        repositories::endpoints(),
        source_groups::endpoints(),
        schedules::endpoints(),
        policies::endpoints(),
        effective_config::endpoints(),
        config::endpoints(),
        bulk::endpoints(),
        jobs::endpoints(),
        snapshots::endpoints(),
        catalog::endpoints(),
        downloads::endpoints(),
        repo_stats::endpoints(),
        missed_runs::endpoints(),
        events::endpoints(),
        enrollment_tokens::endpoints(),
        users::endpoints(),
        api_tokens::endpoints(),
        audit_log::endpoints(),
        notifications::endpoints(),
        version::endpoints(),
        openapi::endpoints(),
    ]
    .concat()
}

/// Registers every endpoint of [`endpoints`]: one resource per path (its
/// other methods get a JSON 405), its methods in table order.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let all = endpoints();
    let mut paths: Vec<&'static str> = Vec::new();
    for e in &all {
        if !paths.contains(&e.path) {
            paths.push(e.path);
        }
    }
    for path in paths {
        let mut res = resource(path);
        for e in all.iter().filter(|e| e.path == path) {
            res = res.route((e.register)(web::method(e.verb.method())));
        }
        cfg.service(res);
    }
}

/// Registers the JSON 404 for every other path under `/api/v1`. It must
/// be registered after every API route (it matches any path there), and
/// covers `/api/v1` only: other unknown paths are the UI's.
pub fn unknown_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource([PREFIX.to_owned(), format!("{PREFIX}/{{tail:.*}}")])
            .route(web::route().to(unknown_route)),
    );
}

/// The `message` of the JSON 404 for a path no API route has.
pub const NO_ROUTE_MESSAGE: &str = "no such API route; see /api/v1/openapi.json";

async fn unknown_route() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        NO_ROUTE_MESSAGE,
    ))
}

/// A resource at `PREFIX + path` whose unknown methods get a JSON 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(format!("{PREFIX}{path}")).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this resource",
    ))
}

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> Self {
        match e {
            ActorError::NotFound(what) => ApiError::not_found(&what),
            ActorError::Invalid(message) => ApiError::validation(message),
            ActorError::Conflict(message) => ApiError::conflict(message),
            ActorError::LacksCapability(e) => ApiError::lacks_capability(&e),
            ActorError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl From<PersistError> for ApiError {
    fn from(e: PersistError) -> Self {
        match e {
            PersistError::Unavailable(cause) => {
                tracing::error!(error = %cause, "database writer unavailable");
                ApiError::unavailable("database unavailable")
            }
            PersistError::Database(cause) => ApiError::internal(cause),
        }
    }
}

/// `?limit=&offset=` of a list request, as text so that a bad value is a
/// 400 that names the parameter.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub offset: Option<String>,
}

impl PageQuery {
    /// `(limit, offset)` after checking them: limit 1..=`max` (default
    /// `default`), offset ≥ 0 (default 0).
    pub fn resolve(&self, default: i64, max: i64) -> Result<(i64, i64), ApiError> {
        let limit = int_param("limit", self.limit.as_deref())?.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(ApiError::validation(format!(
                "limit: must be between 1 and {max}"
            )));
        }
        let offset = int_param("offset", self.offset.as_deref())?.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::validation("offset: must not be negative"));
        }
        Ok((limit, offset))
    }
}

/// A list answer: `{"items": [...], "total": N}`.
#[derive(Debug, Serialize)]
pub struct List<T> {
    pub items: Vec<T>,
    /// How many items match, ignoring limit and offset.
    pub total: i64,
}

impl<T> List<T> {
    /// One page of a list that was loaded whole (the short per-host lists:
    /// source groups, schedules).
    pub fn slice(items: Vec<T>, limit: i64, offset: i64) -> Self {
        let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(0);
        List {
            items: items.into_iter().skip(skip).take(take).collect(),
            total,
        }
    }
}

/// A change to a host's configuration (repository, source groups,
/// schedules): on the one writer, in one transaction, checks the host is
/// live, runs `change` (the write and its audit row) and bumps the host's
/// schedule version; then pushes `config.update` + `schedule.set` to its
/// live session. The shared shape of every such handler.
pub async fn change_host_config<T, F>(
    state: &AppState,
    host_id: &str,
    what: &'static str,
    change: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let host = host_id.to_owned();
    let value = state
        .actors
        .write(what, move |conn| {
            live_host(conn, &host)?;
            let value = change(conn)?;
            store::schedule_versions::bump(conn, &host)?;
            Ok::<_, ApiError>(value)
        })
        .await?;
    state.actors.push_config(host_id).await?;
    Ok(value)
}

/// Writes one audit-log row for `who`: `action` (dotted verb) on
/// `target`, with a detail object that must never hold a secret.
pub fn audit(
    conn: &mut DbConnection,
    who: &Principal,
    action: &str,
    target: Option<&str>,
    detail: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    audit_as(
        conn,
        &who.username,
        who.source_addr.as_deref(),
        action,
        target,
        detail,
    )
}

/// [`audit`] for an actor that is not an authenticated principal (a failed
/// login names the account that was tried).
pub fn audit_as(
    conn: &mut DbConnection,
    actor: &str,
    source_addr: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    store::audit::record(
        conn,
        store::now_ms(),
        actor,
        source_addr,
        action,
        target,
        detail,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Limits outside 1..=max and negative offsets are refused; defaults apply.
    #[test]
    fn page_query_bounds() {
        let q = |limit: Option<&str>, offset: Option<&str>| PageQuery {
            limit: limit.map(str::to_owned),
            offset: offset.map(str::to_owned),
        };
        assert_eq!(q(None, None).resolve(50, 1000).unwrap(), (50, 0));
        assert_eq!(q(Some("7"), Some("3")).resolve(50, 1000).unwrap(), (7, 3));
        assert!(q(Some("0"), None).resolve(50, 1000).is_err());
        assert!(q(Some("1001"), None).resolve(50, 1000).is_err());
        assert!(q(None, Some("-1")).resolve(50, 1000).is_err());
        let err = q(Some("ten"), None).resolve(50, 1000).unwrap_err();
        assert!(err.message.starts_with("limit:"), "{}", err.message);
    }

    /// Each actor error maps to its status code.
    #[test]
    fn actor_errors_map_to_statuses() {
        let cases = [
            (ActorError::NotFound("job x".into()), StatusCode::NOT_FOUND),
            (ActorError::Invalid("bad".into()), StatusCode::BAD_REQUEST),
            (ActorError::Conflict("busy".into()), StatusCode::CONFLICT),
            (
                ActorError::Internal("boom".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status, status);
        }
    }
}
