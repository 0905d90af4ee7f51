//! A page of a query with its `LIMIT` written into the SQL: [`PagedDsl::paged`].
//!
//! Diesel binds `.limit(n)` and `.offset(n)` as parameters. On PostgreSQL
//! a parameter in `LIMIT` hides the page size from the planner of a
//! prepared statement's generic plan: it assumes a tenth of the rows
//! will be wanted. So it either re-plans the statement at every execution
//! with the value (a custom plan: 0.1–0.2 ms each, on every list of every
//! page; issue 19, BENCHMARKS.md), or, under the server's
//! `plan_cache_mode = force_generic_plan` (`PoolSettings::postgres_setup`),
//! plans it once for the wrong size: the host list filtered by a label
//! sorted all 2,000 matching hosts for a page of 100 (3.4 ms, against
//! 0.9 ms with the size known).
//!
//! A literal `LIMIT 100` fixes both, but every distinct SQL text is one more
//! prepared statement in each connection's cache, which is never emptied.
//! So only the page sizes in [`LITERAL_LIMITS`] (the server's own, and
//! the round numbers clients ask for) are written out; any other is bound,
//! and a client cycling through sizes cannot grow the cache past a few
//! statements per query. `OFFSET` is bound when it is not 0 (and left out
//! when it is). SQLite plans the same either way (its plans never depend
//! on a bound value: `sqlite_build`).

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::BigInt;
use diesel::{QueryResult, RunQueryDsl};

/// Page sizes written into the SQL as they are; any other is bound.
pub const LITERAL_LIMITS: [i64; 12] = [1, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 5000];

/// `query` and its page: `LIMIT limit` and `OFFSET offset`.
#[derive(Debug, Clone)]
pub struct Paged<Q> {
    query: Q,
    limit: i64,
    offset: i64,
}

/// Adds [`PagedDsl::paged`] to every query.
pub trait PagedDsl: Sized {
    /// The page of `limit` rows from `offset` (a negative offset is 0),
    /// the query's `ORDER BY` and all else as it is. In place of diesel's
    /// `.limit(limit).offset(offset)`, after `.select(…)`.
    fn paged(self, limit: i64, offset: i64) -> Paged<Self> {
        Paged {
            query: self,
            limit,
            offset: offset.max(0),
        }
    }
}

impl<Q: Query> PagedDsl for Q {}

impl<Q: Query> Query for Paged<Q> {
    type SqlType = Q::SqlType;
}

// The SQL text depends on the values, so the statement cache must key it
// by its text, not by its type.
impl<Q> QueryId for Paged<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, Conn> RunQueryDsl<Conn> for Paged<Q> {}

impl<Q, DB> QueryFragment<DB> for Paged<Q>
where
    DB: Backend,
    Q: QueryFragment<DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(" LIMIT ");
        if LITERAL_LIMITS.contains(&self.limit) {
            out.push_sql(&self.limit.to_string());
        } else {
            out.push_bind_param::<BigInt, _>(&self.limit)?;
        }
        if self.offset != 0 {
            out.push_sql(" OFFSET ");
            out.push_bind_param::<BigInt, _>(&self.offset)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sqlite::Sqlite;

    use super::*;

    diesel::table! {
        items (id) {
            id -> BigInt,
        }
    }

    fn sql(limit: i64, offset: i64) -> String {
        let query = items::table
            .order(items::id.asc())
            .select(items::id)
            .into_boxed::<Sqlite>()
            .paged(limit, offset);
        diesel::debug_query::<Sqlite, _>(&query).to_string()
    }

    /// A known page size is written out, any other bound; an offset is
    /// bound, and left out when 0 (or negative).
    #[test]
    fn known_sizes_are_literal_and_the_rest_bound() {
        assert!(sql(100, 0).contains("LIMIT 100 --"), "{}", sql(100, 0));
        assert!(!sql(100, 0).contains("OFFSET"));
        assert!(sql(37, 0).contains("LIMIT ? --"), "{}", sql(37, 0));
        let with_offset = sql(50, 150);
        assert!(with_offset.contains("LIMIT 50 OFFSET ?"), "{with_offset}");
        assert!(with_offset.ends_with("binds: [150]"), "{with_offset}");
        assert!(!sql(50, -3).contains("OFFSET"));
    }

    /// The rows are the same as diesel's `.limit().offset()` gives.
    #[test]
    fn pages_hold_the_same_rows() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        diesel::sql_query("CREATE TABLE items (id BIGINT PRIMARY KEY)")
            .execute(&mut conn)
            .unwrap();
        diesel::insert_into(items::table)
            .values((1..=120).map(|id| items::id.eq(id)).collect::<Vec<_>>())
            .execute(&mut conn)
            .unwrap();
        for (limit, offset) in [(100, 0), (37, 0), (50, 100), (7, 115), (25, 200)] {
            let ours: Vec<i64> = items::table
                .order(items::id.asc())
                .select(items::id)
                .paged(limit, offset)
                .load(&mut conn)
                .unwrap();
            let diesels: Vec<i64> = items::table
                .order(items::id.asc())
                .select(items::id)
                .limit(limit)
                .offset(offset)
                .load(&mut conn)
                .unwrap();
            assert_eq!(ours, diesels, "limit {limit} offset {offset}");
        }
    }
}
