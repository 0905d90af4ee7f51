//! Queries on `enrollment_tokens`: one-time tokens that let a new host
//! enrol. Only the token's SHA-256 is stored. A token is usable while it is
//! unused, unrevoked and unexpired; [`consume`] spends it exactly once.

use diesel::prelude::*;

use super::models::{EnrollmentToken, NewEnrollmentToken};
use super::schema::enrollment_tokens as et;
use super::DbConnection;

/// Creates an enrolment token.
pub fn insert(conn: &mut DbConnection, new: &NewEnrollmentToken) -> QueryResult<EnrollmentToken> {
    diesel::insert_into(et::table)
        .values(new)
        .returning(et::all_columns)
        .get_result(conn)
}

/// The token with this id.
pub fn get(conn: &mut DbConnection, id: &str) -> QueryResult<Option<EnrollmentToken>> {
    et::table
        .find(id)
        .select(EnrollmentToken::as_select())
        .first(conn)
        .optional()
}

/// Tokens still usable at `now` (unused, unrevoked, unexpired), newest first.
pub fn list_unused(conn: &mut DbConnection, now: i64) -> QueryResult<Vec<EnrollmentToken>> {
    et::table
        .filter(et::used_at.is_null())
        .filter(et::revoked_at.is_null())
        .filter(et::expires_at.gt(now))
        .order((et::created_at.desc(), et::id.desc()))
        .select(EnrollmentToken::as_select())
        .load(conn)
}

/// Revokes a token that has not been used. False if it does not exist, was
/// used, or was already revoked.
pub fn revoke(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        et::table
            .find(id)
            .filter(et::used_at.is_null())
            .filter(et::revoked_at.is_null()),
    )
    .set(et::revoked_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Spends the token with this hash for `host_id` if it is usable at `now`,
/// returning the spent row; `None` if it is unknown, used, revoked or
/// expired. The check and the mark are one conditional `UPDATE … RETURNING`
/// inside a transaction, so two concurrent enrolments with the same token
/// cannot both succeed. `host_id` must name an existing host (foreign key):
/// see `hosts::enroll_with_token`, which creates the host and consumes the
/// token in one transaction.
pub fn consume(
    conn: &mut DbConnection,
    token_hash: &str,
    host_id: &str,
    now: i64,
) -> QueryResult<Option<EnrollmentToken>> {
    super::write_transaction(conn, |conn| {
        diesel::update(
            et::table
                .filter(et::token_hash.eq(token_hash))
                .filter(et::used_at.is_null())
                .filter(et::revoked_at.is_null())
                .filter(et::expires_at.gt(now)),
        )
        .set((et::used_at.eq(now), et::used_by_host_id.eq(host_id)))
        .returning(et::all_columns)
        .get_result(conn)
        .optional()
    })
}

/// Deletes tokens that can no longer be used (used, revoked or expired)
/// and were created before `before`; returns how many.
pub fn delete_stale(conn: &mut DbConnection, now: i64, before: i64) -> QueryResult<usize> {
    diesel::delete(
        et::table.filter(et::created_at.lt(before)).filter(
            et::used_at
                .is_not_null()
                .or(et::revoked_at.is_not_null())
                .or(et::expires_at.le(now)),
        ),
    )
    .execute(conn)
}
