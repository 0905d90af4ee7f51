//! User management (admin only): `GET/POST /users`,
//! `GET/PATCH/DELETE /users/{id}`.
//!
//! A new user needs a valid username (`auth::validate_username`) and a
//! password that passes `auth::check_password_policy`; passwords are
//! hashed with argon2id off the async threads (`web::block`) before the
//! write. `PATCH` changes the role, disables or re-enables the account, or
//! resets the password; a reset or a disable ends the user's sessions.
//! The last enabled admin can be neither demoted, disabled nor deleted
//! (409 `last_admin`): the check and the change run in one write
//! transaction on the one writer, so two admins cannot demote each other
//! at once. A taken username is 409 `conflict`. No answer ever holds a
//! password or its hash; every change is audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::session::UserDto;
use super::table::Endpoint;
use super::{audit, List, PageQuery, DEFAULT_LIMIT};
use crate::auth::{self, PolicyError, Role};
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::Body;
use crate::http::AppState;
use crate::store::{self, models, DbConnection};

/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_LEN: usize = 1024;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/users", |r| r.to(list))
            .summary("List users, by username")
            .role(Role::Admin)
            .paged()
            .ok(200, "UserList"),
        Endpoint::post("/users", |r| r.to(create))
            .summary("Add a user")
            .describe("The password must have at least 8 characters (at most 1024).")
            .role(Role::Admin)
            .body("UserCreate")
            .ok(201, "User")
            .error(409, "The username is taken."),
        Endpoint::get("/users/{id}", |r| r.to(get))
            .summary("Read a user")
            .role(Role::Admin)
            .ok(200, "User"),
        Endpoint::patch("/users/{id}", |r| r.to(patch))
            .summary("Change a user's role, disable or enable it, or reset its password")
            .describe(
                "Absent fields are left as they are. A password reset or a disable ends \
                 the user's sessions. The last enabled admin cannot be demoted or disabled.",
            )
            .role(Role::Admin)
            .body("UserPatch")
            .ok(200, "User")
            .error(409, "The last enabled admin cannot be demoted or disabled."),
        Endpoint::delete("/users/{id}", |r| r.to(delete))
            .summary("Delete a user (its sessions and API tokens go with it)")
            .role(Role::Admin)
            .empty(204, "Deleted.")
            .error(409, "The last enabled admin cannot be deleted."),
    ]
}

/// `POST /users` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserCreate)]
pub(super) struct CreateRequest {
    /// 1-64 letters, digits, '.', '_', '-' or '@'.
    username: String,
    /// At least 8 characters.
    #[schema(write_only)]
    password: String,
    #[schema(schema_with = super::openapi::role)]
    role: String,
}

impl std::fmt::Debug for CreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRequest")
            .field("username", &self.username)
            .field("password", &"***")
            .field("role", &self.role)
            .finish()
    }
}

/// `PATCH /users/{id}` body: absent fields are left as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserPatch)]
pub(super) struct PatchRequest {
    #[schema(schema_with = super::openapi::role)]
    role: Option<String>,
    disabled: Option<bool>,
    /// A new password; ends the user's sessions.
    #[schema(write_only)]
    password: Option<String>,
}

impl std::fmt::Debug for PatchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchRequest")
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Parses a role name; the error names the field and the valid roles.
fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.trim()
        .parse::<Role>()
        .map_err(|e| ApiError::validation(format!("role: {e}")))
}

/// A refused username or password: 400 `validation_failed`, the message
/// after the field's name.
impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        let field = match e {
            PolicyError::PasswordTooShort => "password",
            PolicyError::InvalidUsername { .. } => "username",
        };
        ApiError::validation(format!("{field}: {e}"))
    }
}

/// Checks a new password against the policy; the error names the field.
fn check_password(password: &str) -> Result<(), ApiError> {
    auth::check_password_policy(password)?;
    if password.chars().count() > MAX_PASSWORD_LEN {
        return Err(ApiError::validation(format!(
            "password: at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// Hashes a password on the blocking pool (argon2id costs 64 MiB and tens
/// of milliseconds).
async fn hash(password: String) -> Result<String, ApiError> {
    web::block(move || auth::hash_password(&password))
        .await?
        .map_err(ApiError::internal)
}

/// 409 `last_admin`.
fn last_admin(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "last_admin",
        format!("{what} the last enabled admin; make another user admin first"),
    )
}

fn load(conn: &mut DbConnection, id: &str) -> Result<models::User, ApiError> {
    store::users::by_id(conn, id)?.ok_or_else(|| ApiError::not_found(&format!("user {id}")))
}

/// Whether `user` is an enabled admin and no other enabled admin exists.
fn is_last_admin(conn: &mut DbConnection, user: &models::User) -> Result<bool, ApiError> {
    let admin = user.role == Role::Admin && !user.disabled;
    Ok(admin && store::admin_queries::enabled_admins(conn)? <= 1)
}

async fn list(
    state: web::Data<AppState>,
    who: Principal,
    query: web::Query<PageQuery>,
) -> Result<web::Json<List<UserDto>>, ApiError> {
    who.require(Role::Admin)?;
    let (limit, offset) = query.resolve(DEFAULT_LIMIT, store::MAX_PAGE)?;
    let page = with_conn(&state.pool, move |conn| {
        Ok(store::users::list(conn, limit, offset)?)
    })
    .await?;
    Ok(web::Json(List {
        items: page.items.iter().map(UserDto::from).collect(),
        total: page.total,
    }))
}

async fn get(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<web::Json<UserDto>, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    let user = with_conn(&state.pool, move |conn| load(conn, &id)).await?;
    Ok(web::Json(UserDto::from(&user)))
}

async fn create(
    state: web::Data<AppState>,
    who: Principal,
    body: Body<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let CreateRequest {
        username,
        password,
        role,
    } = body.into_inner();
    let username = username.trim().to_owned();
    auth::validate_username(&username)?;
    let role = parse_role(&role)?;
    check_password(&password)?;
    let password_hash = hash(password).await?;
    let user = state
        .actors
        .write("adding a user", move |conn| {
            if store::users::by_username(conn, &username)?.is_some() {
                return Err(taken(&username));
            }
            let now = store::now_ms();
            let user = store::users::insert(
                conn,
                &models::NewUser {
                    id: store::new_id(),
                    username: username.clone(),
                    password_hash,
                    role,
                    disabled: false,
                    created_at: now,
                    updated_at: now,
                },
            )
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => taken(&username),
                other => ApiError::from(other),
            })?;
            audit(
                conn,
                &who,
                "user.create",
                Some(&user.id),
                Some(json!({"username": user.username, "role": role})),
            )?;
            Ok(user)
        })
        .await?;
    Ok(HttpResponse::Created().json(UserDto::from(&user)))
}

fn taken(username: &str) -> ApiError {
    ApiError::conflict(format!("username: {username:?} is taken"))
}

async fn patch(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
    body: Body<PatchRequest>,
) -> Result<web::Json<UserDto>, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    let PatchRequest {
        role,
        disabled,
        password,
    } = body.into_inner();
    if role.is_none() && disabled.is_none() && password.is_none() {
        return Err(ApiError::validation(
            "body: give at least one of role, disabled, password",
        ));
    }
    let role = role.as_deref().map(parse_role).transpose()?;
    let password_hash = match password {
        Some(password) => {
            check_password(&password)?;
            Some(hash(password).await?)
        }
        None => None,
    };
    let user = state
        .actors
        .write("changing a user", move |conn| {
            let before = load(conn, &id)?;
            let demoted = role.is_some_and(|r| r != Role::Admin);
            let disabling = disabled == Some(true);
            if (demoted || disabling) && is_last_admin(conn, &before)? {
                return Err(last_admin(if demoted {
                    "cannot demote"
                } else {
                    "cannot disable"
                }));
            }
            let now = store::now_ms();
            let mut detail = serde_json::Map::new();
            if let Some(role) = role {
                store::users::update_role(conn, &id, role, now)?;
                detail.insert("role".into(), json!({"from": before.role, "to": role}));
            }
            if let Some(disabled) = disabled {
                store::users::set_disabled(conn, &id, disabled, now)?;
                detail.insert("disabled".into(), json!(disabled));
            }
            let reset = password_hash.is_some();
            if let Some(hash) = &password_hash {
                store::users::update_password(conn, &id, hash, now)?;
                detail.insert("password_reset".into(), json!(true));
            }
            if reset || disabled == Some(true) {
                let ended = store::sessions::delete_for_user(conn, &id)?;
                detail.insert("sessions_ended".into(), json!(ended));
            }
            detail.insert("username".into(), json!(before.username));
            audit(
                conn,
                &who,
                "user.update",
                Some(&id),
                Some(serde_json::Value::Object(detail)),
            )?;
            load(conn, &id)
        })
        .await?;
    Ok(web::Json(UserDto::from(&user)))
}

async fn delete(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Admin)?;
    let id = path.into_inner();
    state
        .actors
        .write("deleting a user", move |conn| {
            let user = load(conn, &id)?;
            if is_last_admin(conn, &user)? {
                return Err(last_admin("cannot delete"));
            }
            store::users::delete(conn, &id)?;
            audit(
                conn,
                &who,
                "user.delete",
                Some(&id),
                Some(json!({"username": user.username})),
            )
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Role names parse case-insensitively; others are 400 naming the field.
    #[test]
    fn roles_parse_or_name_the_field() {
        assert_eq!(parse_role("Operator").unwrap(), Role::Operator);
        let err = parse_role("root").unwrap_err();
        assert!(err.message.starts_with("role:"), "{}", err.message);
    }

    /// Short and overlong passwords are refused naming the field; Debug hides passwords.
    #[test]
    fn password_policy_and_debug() {
        assert!(check_password("short")
            .unwrap_err()
            .message
            .starts_with("password:"));
        assert!(check_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        assert!(check_password("long enough").is_ok());
        let body: PatchRequest = serde_json::from_str(r#"{"password":"hunter2hunter2"}"#).unwrap();
        assert!(!format!("{body:?}").contains("hunter2"));
        let body: CreateRequest =
            serde_json::from_str(r#"{"username":"u","password":"hunter2hunter2","role":"viewer"}"#)
                .unwrap();
        assert!(!format!("{body:?}").contains("hunter2"));
    }
}
