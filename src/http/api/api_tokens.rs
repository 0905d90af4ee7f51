//! API tokens for automation (admin only, API.md: "admin manages API
//! tokens"): `POST /api-tokens` makes a token for the calling user
//! (`tokens::insert_api_token`, the same code as
//! `restic-manager api-token create`) and answers it once;
//! `GET /api-tokens` lists every user's tokens that are not revoked (never
//! the secret or its hash); `DELETE /api-tokens/{id}` revokes one.
//!
//! A token may carry a `role` at most its creator's role; it then acts
//! with the lower of that role and its user's current role (so demoting a
//! user demotes its tokens). Without `role` it acts with its user's role.
//! Every change is audited.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::table::Endpoint;
use super::{audit, List, PageQuery, DEFAULT_LIMIT};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{Body, Time};
use crate::http::AppState;
use crate::store::{self, models};
use crate::tokens;

/// Longest token name.
pub const MAX_NAME_LEN: usize = 100;
/// Shortest token life.
pub const MIN_TTL_SECONDS: u64 = 60;
/// Longest token life (5 years); without `ttl_seconds` a token lives until revoked.
pub const MAX_TTL_SECONDS: u64 = 5 * 365 * 24 * 60 * 60;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::post("/api-tokens", |r| r.to(create))
            .summary("Create an API token for the calling user")
            .describe(
                "The token is in this answer only. `role` (default: the user's role) may \
                 not exceed the creator's; the token never acts above its user's current \
                 role. Without `ttl_seconds` (60 to 157680000) it lives until revoked.",
            )
            .role(Role::Admin)
            .body("ApiTokenCreate")
            .ok(201, "ApiTokenCreated"),
        Endpoint::get("/api-tokens", |r| r.to(list))
            .summary("List API tokens that are not revoked, newest first")
            .role(Role::Admin)
            .paged()
            .ok(200, "ApiTokenList"),
        Endpoint::delete("/api-tokens/{id}", |r| r.to(revoke))
            .summary("Revoke an API token")
            .role(Role::Admin)
            .empty(204, "Revoked."),
    ]
}

/// `POST /api-tokens` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiTokenCreate)]
pub(super) struct CreateRequest {
    /// 1-100 characters.
    name: String,
    #[schema(minimum = 60, maximum = 157_680_000)]
    ttl_seconds: Option<u64>,
    #[schema(schema_with = super::openapi::role)]
    role: Option<String>,
}

/// An API token as the API lists it (no secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ApiToken)]
pub(super) struct ApiTokenDto {
    id: String,
    name: String,
    user_id: String,
    username: String,
    /// The cap the token was made with; `null`: its user's role.
    #[schema(schema_with = super::openapi::role_or_null)]
    role: Option<Role>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Time,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<Time>,
    /// `null`: never expires.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Time>,
    expired: bool,
}

impl ApiTokenDto {
    fn new(t: models::ApiToken, username: String, now: i64) -> Self {
        ApiTokenDto {
            expired: t.expires_at.is_some_and(|at| at <= now),
            id: t.id,
            name: t.name,
            user_id: t.user_id,
            username,
            role: t.role,
            created_at: Time(t.created_at),
            last_used_at: Time::opt(t.last_used_at),
            expires_at: Time::opt(t.expires_at),
        }
    }
}

/// The answer to a create: the only time the token is shown.
#[derive(Serialize)]
struct CreatedDto {
    #[serde(flatten)]
    info: ApiTokenDto,
    token: String,
}

impl CreateRequest {
    /// The trimmed name, the ttl and the role cap, checked against `who`.
    fn validate(self, who: &Principal) -> Result<(String, Option<u64>, Option<Role>), ApiError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
            return Err(ApiError::validation(format!(
                "name: 1 to {MAX_NAME_LEN} characters"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(ApiError::validation(
                "name: must not contain control characters",
            ));
        }
        if let Some(ttl) = self.ttl_seconds {
            if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
                return Err(ApiError::validation(format!(
                    "ttl_seconds: must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}"
                )));
            }
        }
        let role = self
            .role
            .as_deref()
            .map(|r| {
                r.trim()
                    .parse::<Role>()
                    .map_err(|e| ApiError::validation(format!("role: {e}")))
            })
            .transpose()?;
        if let Some(role) = role {
            if role > who.role {
                return Err(ApiError::forbidden(format!(
                    "role: a token cannot have more than your role ({})",
                    who.role
                )));
            }
        }
        Ok((name, self.ttl_seconds, role))
    }
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let (name, ttl, role) = body.into_inner().validate(&who)?;
    let username = who.username.clone();
    let created = state
        .actors
        .write("creating an API token", move |conn| {
            let created = tokens::insert_api_token(
                conn,
                &who.user_id,
                &name,
                ttl.map(Duration::from_secs),
                role,
            )?;
            audit(
                conn,
                &who,
                "api_token.create",
                Some(&created.row.id),
                Some(json!({"name": name, "role": role, "ttl_seconds": ttl})),
            )?;
            Ok::<_, ApiError>(created)
        })
        .await?;
    let info = ApiTokenDto::new(created.row, username, store::now_ms());
    Ok(HttpResponse::Created().json(CreatedDto {
        info,
        token: created.token,
    }))
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<PageQuery>,
) -> Result<web::Json<List<ApiTokenDto>>, ApiError> {
    who.require(Role::Admin)?;
    let (limit, offset) = query.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let page = with_conn(&state.pool, move |conn| {
        Ok(store::admin_queries::active_api_tokens(
            conn, limit, offset,
        )?)
    })
    .await?;
    let now = store::now_ms();
    Ok(web::Json(List {
        items: page
            .items
            .into_iter()
            .map(|(token, user)| ApiTokenDto::new(token, user.username, now))
            .collect(),
        total: page.total,
    }))
}

async fn revoke(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    state
        .actors
        .write("revoking an API token", move |conn| {
            let token = store::api_tokens::get(conn, &id)?
                .filter(|t| t.revoked_at.is_none())
                .ok_or_else(|| ApiError::not_found(&format!("API token {id}")))?;
            store::api_tokens::revoke(conn, &id, store::now_ms())?;
            audit(
                conn,
                &who,
                "api_token.revoke",
                Some(&id),
                Some(json!({"name": token.name, "user_id": token.user_id})),
            )
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
