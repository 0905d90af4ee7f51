//! Token issuance: enrolment tokens and API tokens are made here, the one
//! implementation behind both the CLI (`token create`, `api-token create`,
//! through [`crate::admin`]) and the REST API (`POST /enrollment-tokens`,
//! `POST /api-tokens`). Each function writes the token's row on the
//! caller's connection (the API passes the writer's transaction) and
//! returns the secret, shown once; the caller checks who asks and writes
//! its own audit row.

use std::time::Duration;

use crate::auth::{self, Role};
use crate::store::{self, models};

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The ttl does not fit in the time columns.
    #[error("the ttl is too long")]
    TtlTooLong,
    /// No random token could be drawn.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The database refused the row.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// `now + ttl` in Unix milliseconds, if it fits.
fn expiry(now: i64, ttl: Duration) -> Result<i64, TokenError> {
    let ttl_ms = i64::try_from(ttl.as_millis()).map_err(|_| TokenError::TtlTooLong)?;
    now.checked_add(ttl_ms).ok_or(TokenError::TtlTooLong)
}

/// A freshly created enrolment token: the secret (shown once) and its row.
pub struct CreatedEnrollmentToken {
    pub id: String,
    pub token: String,
    pub expires_at: i64,
}

/// Creates a one-time enrolment token valid for `ttl`, made by the user
/// `creator_id` (`None`: the CLI). The one implementation behind
/// `token create` and `POST /api/v1/enrollment-tokens`; the caller writes
/// its own audit row (in the same transaction, for the API).
pub fn insert_enrollment_token(
    conn: &mut store::DbConnection,
    ttl: Duration,
    creator_id: Option<String>,
) -> Result<CreatedEnrollmentToken, TokenError> {
    let now = store::now_ms();
    let expires_at = expiry(now, ttl)?;
    let token = auth::generate_token()?;
    let id = store::new_id();
    store::enrollment::insert(
        conn,
        &models::NewEnrollmentToken {
            id: id.clone(),
            token_hash: auth::hash_token(&token),
            created_by: creator_id,
            created_at: now,
            expires_at,
        },
    )?;
    Ok(CreatedEnrollmentToken {
        id,
        token,
        expires_at,
    })
}

/// A freshly created API token: the secret (shown once) and its row.
pub struct CreatedApiToken {
    pub token: String,
    pub row: models::ApiToken,
}

/// Creates an API token for the user `user_id`, valid for `ttl` (`None`:
/// until revoked), acting with at most `role` (`None`: the user's role,
/// whatever it is at each use). The one implementation behind
/// `api-token create` and `POST /api/v1/api-tokens`; the caller checks the
/// user and writes its own audit row.
pub fn insert_api_token(
    conn: &mut store::DbConnection,
    user_id: &str,
    name: &str,
    ttl: Option<Duration>,
    role: Option<Role>,
) -> Result<CreatedApiToken, TokenError> {
    let now = store::now_ms();
    let expires_at = ttl.map(|ttl| expiry(now, ttl)).transpose()?;
    let token = auth::generate_token()?;
    let mut row = store::api_tokens::insert(
        conn,
        &models::NewApiToken {
            id: store::new_id(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            token_hash: auth::hash_token(&token),
            created_at: now,
            expires_at,
        },
    )?;
    if let Some(role) = role {
        row = store::api_tokens::restrict_role(conn, &row.id, role)?
            .ok_or(diesel::result::Error::NotFound)?;
    }
    Ok(CreatedApiToken { token, row })
}
