//! Queries on `sessions`: browser logins. The cookie carries a random
//! token; the row keeps only its SHA-256 (`token_hash`) and the session's
//! CSRF token.

use diesel::prelude::*;

use super::models::{NewSession, Session, User};
use super::schema::{sessions, users};
use super::DbConnection;

/// Creates a session.
pub fn insert(conn: &mut DbConnection, new: &NewSession) -> QueryResult<Session> {
    diesel::insert_into(sessions::table)
        .values(new)
        .returning(sessions::all_columns)
        .get_result(conn)
}

/// The session with this token hash and its user, if the session has not
/// expired at `now` and the user is not disabled.
pub fn find_valid(
    conn: &mut DbConnection,
    token_hash: &str,
    now: i64,
) -> QueryResult<Option<(Session, User)>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(now))
        .filter(users::disabled.eq(false))
        .select((Session::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Records activity on a session and, with `expires_at`, moves its expiry
/// (sliding sessions). False if the session is gone.
pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    now: i64,
    expires_at: Option<i64>,
) -> QueryResult<bool> {
    let target = sessions::table.find(id);
    let n = match expires_at {
        Some(at) => diesel::update(target)
            .set((sessions::last_seen_at.eq(now), sessions::expires_at.eq(at)))
            .execute(conn)?,
        None => diesel::update(target)
            .set(sessions::last_seen_at.eq(now))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Logs a session out by its token hash. False if there was none.
pub fn delete_by_token_hash(conn: &mut DbConnection, token_hash: &str) -> QueryResult<bool> {
    diesel::delete(sessions::table.filter(sessions::token_hash.eq(token_hash)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes a session by id. False if there was none.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(sessions::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// Ends every session of a user (disable, password reset); returns how many.
pub fn delete_for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Removes sessions that expired at or before `now`; returns how many.
pub fn delete_expired(conn: &mut DbConnection, now: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)
}

/// A user's sessions, newest first.
pub fn list_for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(Session::as_select())
        .load(conn)
}
