//! Queries on `api_tokens`: bearer tokens for automation. Only the
//! token's SHA-256 is stored; a token is valid while it is neither revoked
//! nor expired and its user is not disabled.

use diesel::prelude::*;

use super::models::{ApiToken, NewApiToken, User};
use super::schema::{api_tokens, users};
use super::types::Role;
use super::DbConnection;

/// Creates an API token.
pub fn insert(conn: &mut DbConnection, new: &NewApiToken) -> QueryResult<ApiToken> {
    diesel::insert_into(api_tokens::table)
        .values(new)
        .returning(api_tokens::all_columns)
        .get_result(conn)
}

/// The token with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ApiToken>> {
    api_tokens::table
        .find(id)
        .select(ApiToken::as_select())
        .first(conn)
        .optional()
}

/// The token with this hash and its user, if it is usable at `now`.
pub fn find_valid(
    conn: &mut DbConnection,
    token_hash: &str,
    now: i64,
) -> QueryResult<Option<(ApiToken, User)>> {
    api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::revoked_at.is_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now)),
        )
        .filter(users::disabled.eq(false))
        .select((ApiToken::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// Records a use of the token. False if it is gone.
pub fn touch(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(api_tokens::table.find(id))
        .set(api_tokens::last_used_at.eq(now))
        .execute(conn)
        .map(|n| n == 1)
}

/// Revokes a token. False if it does not exist or was already revoked.
pub fn revoke(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        api_tokens::table
            .find(id)
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes a token. False if there was none.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(api_tokens::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// Caps what a token may do at `role` (see [`ApiToken::role`]); `None`
/// if there is no such token.
pub fn restrict_role(
    conn: &mut DbConnection,
    id: &str,
    role: Role,
) -> QueryResult<Option<ApiToken>> {
    diesel::update(api_tokens::table.find(id))
        .set(api_tokens::role.eq(Some(role)))
        .returning(api_tokens::all_columns)
        .get_result(conn)
        .optional()
}

/// Tokens, newest first: all of them, or one user's.
pub fn list(conn: &mut DbConnection, user_id: Option<&str>) -> QueryResult<Vec<ApiToken>> {
    let mut query = api_tokens::table
        .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
        .select(ApiToken::as_select())
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(api_tokens::user_id.eq(user_id));
    }
    query.load(conn)
}
