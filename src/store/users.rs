//! Queries on `users`: accounts, their role, password and disabled flag.
//! A duplicate username is diesel's `UniqueViolation` (the API's 409).

use diesel::prelude::*;

use super::models::{NewUser, User};
use super::paged::PagedDsl;
use super::schema::users;
use super::types::{Page, Role};
use super::{clamp_limit, DbConnection, MAX_PAGE};

/// Creates a user.
pub fn insert(conn: &mut DbConnection, new: &NewUser) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(users::all_columns)
        .get_result(conn)
}

/// The user with this username.
pub fn by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(username))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The user with this id.
pub fn by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// How many users exist (0 on a fresh database: create the first admin).
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

/// Users ordered by username.
pub fn list(conn: &mut DbConnection, limit: i64, offset: i64) -> QueryResult<Page<User>> {
    let items = users::table
        .order(users::username.asc())
        .select(User::as_select())
        .paged(clamp_limit(limit, MAX_PAGE), offset.max(0))
        .load(conn)?;
    let total = count(conn)?;
    Ok(Page { items, total })
}

/// Changes a user's role; `None` if there is no such user.
pub fn update_role(
    conn: &mut DbConnection,
    id: &str,
    role: Role,
    now: i64,
) -> QueryResult<Option<User>> {
    diesel::update(users::table.find(id))
        .set((users::role.eq(role), users::updated_at.eq(now)))
        .returning(users::all_columns)
        .get_result(conn)
        .optional()
}

/// Disables or re-enables a user; `None` if there is no such user.
/// Disabling does not delete sessions: call `sessions::delete_for_user`.
pub fn set_disabled(
    conn: &mut DbConnection,
    id: &str,
    disabled: bool,
    now: i64,
) -> QueryResult<Option<User>> {
    diesel::update(users::table.find(id))
        .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
        .returning(users::all_columns)
        .get_result(conn)
        .optional()
}

/// Replaces a user's password hash; `None` if there is no such user.
pub fn update_password(
    conn: &mut DbConnection,
    id: &str,
    password_hash: &str,
    now: i64,
) -> QueryResult<Option<User>> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(now),
        ))
        .returning(users::all_columns)
        .get_result(conn)
        .optional()
}

/// Records a successful login.
pub fn touch_login(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(now))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes a user; their sessions and API tokens go with them (cascade),
/// enrolment tokens they created lose their creator. False if none.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(users::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}
