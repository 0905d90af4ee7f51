//! Browser sessions: `POST /auth/login` (argon2 verify off the async
//! threads, a dummy verify for unknown users, the per-account and
//! per-address rate limit, an HttpOnly SameSite=Strict cookie that is
//! Secure under TLS, and the session's CSRF token in the answer),
//! `POST /auth/logout` and `GET /me`. Every login is written to the audit
//! log; failed ones go to `LoginAudit`, which writes one row per account,
//! address and minute with their count (issue 15 B.2), and a refused one is
//! answered 429 with `Retry-After` (B.1).

use std::fmt;
use std::time::Instant;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header::RETRY_AFTER;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::table::{Access, Endpoint};
use super::{audit, audit_as};
use crate::actors::login_audit::FailedLogin;
use crate::auth::{self, Role};
use crate::http::auth::{
    client_addr, session_expiry, AuthMethod, LoginLimiter, Principal, SESSION_COOKIE,
};
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{Body, Time};
use crate::http::AppState;
use crate::store::{self, models};

/// An argon2id hash (same parameters as `auth::hash_password`) of a random
/// password nobody knows. Unknown users are verified against it so that a
/// login for a missing account costs the same time as a wrong password.
const DUMMY_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$1gW6s4HaF7OLag14JDBvxQ$IGE+fj/TapcSARCHHX7tVeQZDcFGMSZwPMyVeMgCNsE";

/// Longest username looked up or written to the audit log.
const MAX_USERNAME_LEN: usize = 128;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::post("/auth/login", |r| r.to(login))
            .summary("Log in: sets the session cookie, answers the CSRF token")
            .describe(
                "Send the CSRF token back in X-CSRF-Token on every state-changing \
                 request made with the cookie. Failed logins are limited per account \
                 and address and per address (429 with Retry-After); failures from \
                 elsewhere only slow an account's owner down, never lock them out.",
            )
            .access(Access::Public)
            .body("LoginRequest")
            .ok(200, "LoginResponse")
            .error(401, "Wrong username or password, or a disabled account.")
            .error(
                429,
                "Too many failed logins from this address; try again after Retry-After seconds.",
            ),
        Endpoint::post("/auth/logout", |r| r.to(logout))
            .summary("Log out: ends the cookie session")
            .empty(204, "Logged out."),
        Endpoint::get("/me", |r| r.to(me))
            .summary("The current user, its role and (for a cookie session) the CSRF token")
            .ok(200, "Me"),
    ]
}

/// `POST /auth/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    username: String,
    #[schema(write_only)]
    password: String,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserDto {
    pub id: String,
    pub username: String,
    #[schema(schema_with = super::openapi::role)]
    pub role: Role,
    /// A disabled user can neither log in nor use sessions or API tokens.
    pub disabled: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Time,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<Time>,
}

impl From<&models::User> for UserDto {
    fn from(u: &models::User) -> Self {
        UserDto {
            id: u.id.clone(),
            username: u.username.clone(),
            role: u.role,
            disabled: u.disabled,
            created_at: Time(u.created_at),
            updated_at: Time(u.updated_at),
            last_login_at: Time::opt(u.last_login_at),
        }
    }
}

/// `POST /auth/login` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct LoginResponse {
    #[schema(value_type = User)]
    user: UserDto,
    /// Send it back in `X-CSRF-Token` on every state-changing request.
    csrf_token: String,
}

/// `GET /me` answer (API.md: "current user and role").
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Me)]
pub(super) struct MeResponse {
    #[schema(value_type = User)]
    user: UserDto,
    /// The role this request acts with: the user's role, or less for an
    /// API token created with a lower role cap.
    #[schema(schema_with = super::openapi::role)]
    role: Role,
    #[schema(schema_with = super::openapi::auth_kind)]
    auth: &'static str,
    /// The session's CSRF token (cookie sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    csrf_token: Option<String>,
}

/// Why a login failed (audit detail; the client always gets one answer).
#[derive(Debug, Clone, Copy)]
enum Failure {
    UnknownUser,
    WrongPassword,
    Disabled,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::UnknownUser => "unknown_user",
            Failure::WrongPassword => "wrong_password",
            Failure::Disabled => "disabled",
        }
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid username or password")
}

/// The text written to the audit log for a username that was tried: at
/// most [`MAX_USERNAME_LEN`] characters.
fn clipped(username: &str) -> String {
    username.chars().take(MAX_USERNAME_LEN).collect()
}

async fn login(
    state: web::Data<AppState>,
    limiter: web::Data<LoginLimiter>,
    req: HttpRequest,
    body: Body<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let addr = client_addr(&req);
    let limiter_addr = addr.clone().unwrap_or_default();
    let account = clipped(&username);

    let failed = |reason: &'static str| FailedLogin {
        account: account.clone(),
        source_addr: addr.clone(),
        reason,
        at: store::now_ms(),
    };
    let admitted = match limiter.begin(&account, &limiter_addr, Instant::now()) {
        Ok(admitted) => admitted,
        Err(limited) => {
            state.actors.login_audit.do_send(failed("rate_limited"));
            let seconds = limited.retry_after.as_secs().max(1);
            let mut answer = ApiError::rate_limited(format!(
                "too many failed logins; try again in {seconds} seconds"
            ))
            .error_response();
            answer.headers_mut().insert(RETRY_AFTER, seconds.into());
            return Ok(answer);
        }
    };
    if let Some(delay) = admitted.delay {
        // An account with many failures from elsewhere: slowed, not refused.
        actix_web::rt::time::sleep(delay).await;
    }

    // 1. Look the user up (a name too long to exist is simply unknown).
    let lookup = account.clone();
    let user = if username.chars().count() > MAX_USERNAME_LEN {
        None
    } else {
        with_conn(&state.pool, move |conn| {
            Ok(store::users::by_username(conn, &lookup)?)
        })
        .await?
    };

    // 2. Verify on the blocking pool; unknown users against the dummy hash.
    let phc = user
        .as_ref()
        .map_or(DUMMY_PASSWORD_HASH.to_owned(), |u| u.password_hash.clone());
    let verified = web::block(move || auth::verify_password(&password, &phc)).await?;
    let outcome = match (user, verified) {
        (None, _) => Err(Failure::UnknownUser),
        (Some(_), Ok(false)) => Err(Failure::WrongPassword),
        (Some(u), Ok(true)) if u.disabled => Err(Failure::Disabled),
        (Some(u), Ok(true)) => Ok(u),
        (Some(u), Err(e)) => {
            // A corrupt stored hash: nobody can log in as this user.
            tracing::error!(user_id = %u.id, error = %e, "stored password hash is unusable");
            Err(Failure::WrongPassword)
        }
    };

    let user = match outcome {
        Ok(user) => user,
        Err(failure) => {
            state.actors.login_audit.do_send(failed(failure.as_str()));
            return Err(invalid_credentials());
        }
    };
    limiter.succeeded(&account, &limiter_addr);

    // 3. Create the session.
    let token = auth::generate_token().map_err(ApiError::internal)?;
    let csrf_token = auth::generate_token().map_err(ApiError::internal)?;
    let now = store::now_ms();
    let (idle, lifetime) = (state.config.session_idle, state.config.session_lifetime);
    let new_session = models::NewSession {
        id: store::new_id(),
        token_hash: auth::hash_token(&token),
        user_id: user.id.clone(),
        csrf_token: csrf_token.clone(),
        created_at: now,
        expires_at: session_expiry(now, now, idle, lifetime),
        last_seen_at: now,
        source_addr: addr.clone(),
    };
    let user = state
        .actors
        .write("starting a session", move |conn| {
            let session = store::sessions::insert(conn, &new_session)?;
            store::users::touch_login(conn, &user.id, now)?;
            audit_as(
                conn,
                &user.username,
                addr.as_deref(),
                "login",
                Some(&user.id),
                Some(json!({"session_id": session.id})),
            )?;
            Ok::<_, ApiError>(models::User {
                last_login_at: Some(now),
                ..user
            })
        })
        .await?;

    let cookie = Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.tls.is_some())
        .max_age(CookieDuration::seconds(
            i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(LoginResponse {
        user: UserDto::from(&user),
        csrf_token,
    }))
}

async fn logout(state: web::Data<AppState>, who: Principal) -> Result<HttpResponse, ApiError> {
    let session_id = match &who.method {
        AuthMethod::Session { session_id, .. } => Some(session_id.clone()),
        AuthMethod::ApiToken { .. } => None,
    };
    state
        .actors
        .write("ending a session", move |conn| {
            if let Some(id) = &session_id {
                store::sessions::delete(conn, id)?;
            }
            audit(
                conn,
                &who,
                "logout",
                Some(&who.user_id),
                session_id.map(|id| json!({"session_id": id})),
            )
        })
        .await?;
    let mut removal = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.tls.is_some())
        .finish();
    removal.make_removal();
    Ok(HttpResponse::NoContent().cookie(removal).finish())
}

async fn me(state: web::Data<AppState>, who: Principal) -> Result<web::Json<MeResponse>, ApiError> {
    let user_id = who.user_id.clone();
    let user = with_conn(&state.pool, move |conn| {
        store::users::by_id(conn, &user_id)?.ok_or_else(|| ApiError::unauthorized("user is gone"))
    })
    .await?;
    let (auth, csrf_token) = match who.method {
        AuthMethod::Session { csrf_token, .. } => ("session", Some(csrf_token)),
        AuthMethod::ApiToken { .. } => ("api_token", None),
    };
    Ok(web::Json(MeResponse {
        user: UserDto::from(&user),
        role: who.role,
        auth,
        csrf_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dummy hash is a valid argon2id hash with the server's parameters that no short password opens.
    #[test]
    fn dummy_hash_is_usable() {
        assert!(DUMMY_PASSWORD_HASH.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"));
        assert_eq!(
            auth::verify_password("admin", DUMMY_PASSWORD_HASH).ok(),
            Some(false)
        );
    }

    /// A login body prints its password as ***.
    #[test]
    fn login_request_debug_hides_password() {
        let body: LoginRequest =
            serde_json::from_str(r#"{"username":"u","password":"hunter2"}"#).unwrap();
        let text = format!("{body:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
