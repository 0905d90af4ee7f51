//! Enrolment tokens (admin only): `POST /enrollment-tokens` creates a
//! one-time token (`tokens::insert_enrollment_token`, the same code as
//! `restic-manager token create`) and answers it once;
//! `GET /enrollment-tokens` lists the usable ones (unused, unrevoked,
//! unexpired; never the secret); `DELETE /enrollment-tokens/{id}` revokes
//! one. Every change is audited.

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
use crate::tokens::{self, TokenError};

/// Token life when the request gives none (as `token create`).
pub const DEFAULT_TTL_SECONDS: u64 = 24 * 60 * 60;
/// Shortest token life.
pub const MIN_TTL_SECONDS: u64 = 60;
/// Longest token life (30 days).
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 60 * 60;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::post("/enrollment-tokens", |r| r.to(create))
            .summary("Create a one-time enrolment token")
            .describe(
                "The token is in this answer only; the server keeps its SHA-256. \
                 `ttl_seconds` is 60 to 2592000 (default 86400).",
            )
            .role(Role::Admin)
            .body("EnrollmentTokenCreate")
            .ok(201, "EnrollmentTokenCreated"),
        Endpoint::get("/enrollment-tokens", |r| r.to(list))
            .summary("List usable enrolment tokens (unused, unrevoked, unexpired)")
            .role(Role::Admin)
            .paged()
            .ok(200, "EnrollmentTokenList"),
        Endpoint::delete("/enrollment-tokens/{id}", |r| r.to(revoke))
            .summary("Revoke an unused enrolment token")
            .role(Role::Admin)
            .empty(204, "Revoked."),
    ]
}

/// `POST /enrollment-tokens` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EnrollmentTokenCreate)]
pub(super) struct CreateRequest {
    #[schema(minimum = 60, maximum = 2_592_000, default = 86_400)]
    ttl_seconds: Option<u64>,
}

/// The answer to a create: the only time the token is shown.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EnrollmentTokenCreated)]
pub(super) struct CreatedDto {
    id: String,
    /// The one-time token; shown only here.
    token: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Time,
}

/// A usable enrolment token as the API lists it (no secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = EnrollmentToken)]
pub(super) struct EnrollmentTokenDto {
    id: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Time,
    /// Username of its creator; `null` for the CLI or a deleted user.
    created_by: Option<String>,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::TtlTooLong => ApiError::validation("ttl_seconds: too long"),
            TokenError::Auth(e) => ApiError::internal(e),
            TokenError::Db(e) => ApiError::from(e),
        }
    }
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::validation(format!(
            "ttl_seconds: must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}"
        )));
    }
    let created = state
        .actors
        .write("creating an enrolment token", move |conn| {
            let created = tokens::insert_enrollment_token(
                conn,
                Duration::from_secs(ttl),
                Some(who.user_id.clone()),
            )?;
            audit(
                conn,
                &who,
                "enrollment_token.create",
                Some(&created.id),
                Some(json!({ "ttl_seconds": ttl })),
            )?;
            Ok::<_, ApiError>(created)
        })
        .await?;
    Ok(HttpResponse::Created().json(CreatedDto {
        id: created.id,
        token: created.token,
        expires_at: Time(created.expires_at),
    }))
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<PageQuery>,
) -> Result<web::Json<List<EnrollmentTokenDto>>, ApiError> {
    who.require(Role::Admin)?;
    let (limit, offset) = query.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let (page, names) = with_conn(&state.pool, move |conn| {
        let page =
            store::admin_queries::usable_enrollment_tokens(conn, store::now_ms(), limit, offset)?;
        let creators: Vec<String> = page
            .items
            .iter()
            .filter_map(|t| t.created_by.clone())
            .collect();
        let names = store::admin_queries::usernames(conn, &creators)?;
        Ok((page, names))
    })
    .await?;
    let items = page
        .items
        .into_iter()
        .map(|t: models::EnrollmentToken| EnrollmentTokenDto {
            created_by: t.created_by.as_ref().and_then(|id| names.get(id).cloned()),
            id: t.id,
            created_at: Time(t.created_at),
            expires_at: Time(t.expires_at),
        })
        .collect();
    Ok(web::Json(List {
        items,
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
        .write("revoking an enrolment token", move |conn| {
            let token = store::enrollment::get(conn, &id)?
                .ok_or_else(|| ApiError::not_found(&format!("enrolment token {id}")))?;
            if token.used_at.is_some() {
                return Err(ApiError::conflict(format!(
                    "enrolment token {id} was used already; revoke the host it enrolled instead"
                )));
            }
            if !store::enrollment::revoke(conn, &id, store::now_ms())? {
                return Err(ApiError::not_found(&format!("enrolment token {id}")));
            }
            audit(conn, &who, "enrollment_token.revoke", Some(&id), None)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
