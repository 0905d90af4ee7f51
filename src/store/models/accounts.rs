//! Rows and forms of who may log in and how: users, browser sessions,
//! API tokens and one-time enrolment tokens. Each row that holds a
//! token's hash or a password hash prints it as `***` in `Debug`.

use std::fmt;

use diesel::prelude::*;

use super::REDACTED;
use crate::store::schema::{api_tokens, enrollment_tokens, sessions, users};
use crate::store::types::Role;

/// A user account.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    /// The argon2id PHC string (never logged).
    pub password_hash: String,
    pub role: Role,
    /// A disabled user can neither log in nor use sessions or API tokens.
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &REDACTED)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// A user to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A browser login session; the cookie holds the token, the row its hash.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    /// The session's CSRF token, compared with the one each form sends.
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub source_addr: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("token_hash", &REDACTED)
            .field("user_id", &self.user_id)
            .field("csrf_token", &REDACTED)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("source_addr", &self.source_addr)
            .finish()
    }
}

/// A session to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub source_addr: Option<String>,
}

/// An API token for automation (`Authorization: Bearer …`).
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The most the token may do (it never exceeds its user's current
    /// role); `None`: the user's role.
    pub role: Option<Role>,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("token_hash", &REDACTED)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("role", &self.role)
            .finish()
    }
}

/// An API token to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A one-time enrolment token.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = enrollment_tokens)]
pub struct EnrollmentToken {
    pub id: String,
    pub token_hash: String,
    /// The user who created it; `None` for the CLI or a deleted user.
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by_host_id: Option<String>,
    pub revoked_at: Option<i64>,
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("id", &self.id)
            .field("token_hash", &REDACTED)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .field("used_by_host_id", &self.used_by_host_id)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// An enrolment token to create.
#[derive(Clone, Insertable)]
#[diesel(table_name = enrollment_tokens)]
pub struct NewEnrollmentToken {
    pub id: String,
    pub token_hash: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}
