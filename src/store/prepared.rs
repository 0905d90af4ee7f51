//! Statements of the hot paths, prepared once per connection instead of
//! parsed and planned anew on every execution.
//!
//! diesel prepares and caches the statements it can tell are always the
//! same text: most `SELECT`s. It marks every `UPDATE`, every raw
//! `sql_query`, and inserts and upserts of rows with optional columns as
//! unsafe to cache, since their text may differ from one value to the
//! next (a changeset leaves out its `None` fields, an insert writes
//! `DEFAULT`, a raw query may be built at run time). Such a statement
//! goes out unprepared: PostgreSQL parses, analyses and plans it every
//! time, and SQLite compiles it every time. For the writes of the hot
//! paths (a batch of hellos, a schedule PUT, the push and ack marks, a
//! run-now's job and audit rows, a job's status changes) that was most of
//! their cost on PostgreSQL: during `fanout --agents 10000` the writer's
//! backend used 80 % of a core while `pg_stat_statements` counted a
//! quarter of that as execution (BENCHMARKS.md, "Prepared once per
//! connection").
//!
//! [`Prepared`] declares such a statement safe to cache and gives it no
//! static query id, so diesel keys its statement cache on the **text and
//! the bind types**: each distinct text is prepared once per connection
//! (a changeset that leaves out a field is another text, so another
//! statement, never a wrong one). Use it only where the texts a call site
//! can produce are few (not for inserts of a variable number of rows, nor
//! for `IN` lists), since every distinct text stays prepared for the
//! connection's life.
//!
//! **Run it with a load** (`load`, `get_result`; a write with
//! `RETURNING`), not with `execute`: diesel 2.3's `execute` hands the
//! statement on by reference, and its `QueryFragment` for `&T` does not
//! forward [`QueryFragment::is_safe_to_cache_prepared`], so an executed
//! `Prepared` still goes out unprepared (seen in `pg_prepared_statements`:
//! tests/it/store/prepared.rs). A raw PostgreSQL write that returns
//! nothing is written `WITH w AS (… RETURNING 1) SELECT count(*) AS n
//! FROM w` and loaded as [`Affected`].

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, QueryableByName, RunQueryDsl};

/// The rows a raw write changed, as `SELECT count(*) AS n` reports them.
#[derive(Debug, QueryableByName)]
pub struct Affected {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// A statement whose texts are few: prepared once per connection.
#[derive(Debug, Clone, Copy)]
#[must_use = "a statement does nothing until it is run"]
pub struct Prepared<Q>(Q);

/// `.prepared()` on any diesel statement.
pub trait PrepareOnce: Sized {
    /// This statement, prepared once per connection and text (module doc).
    fn prepared(self) -> Prepared<Self> {
        Prepared(self)
    }
}

impl<Q> PrepareOnce for Q {}

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        // Safe because the cache is keyed on the text (no static id).
        Ok(true)
    }
}

impl<Q> QueryId for Prepared<Q> {
    // No static id: diesel keys the cache on the text and the bind types.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Prepared<Q> {}

impl<Q> Prepared<Q> {
    /// Runs a write that returns a column of each row it changed
    /// (`RETURNING id`, of type `T`) and tells whether it changed exactly
    /// one: `execute`'s `n == 1`, for a statement that must be loaded to
    /// stay prepared (module doc).
    pub fn changed_one<'q, T>(self, conn: &mut super::DbConnection) -> QueryResult<bool>
    where
        Self: diesel::query_dsl::LoadQuery<'q, super::DbConnection, T>,
    {
        self.load::<T>(conn).map(|rows| rows.len() == 1)
    }
}

/// One of a closed set of text values (an enum's name) written into the
/// SQL as a literal, not bound: PostgreSQL then plans the statement with
/// the value's own frequency, once per connection and value, where the
/// generic plan of a bound value (`plan_cache_mode = force_generic_plan`)
/// assumes every value as common as the average. Unlike diesel's `sql()`
/// it leaves the statement safe to cache (one text per value).
#[derive(Debug, Clone, Copy)]
pub struct TextLiteral(&'static str);

impl TextLiteral {
    /// `value` as a literal; it must be one of a closed set of names
    /// without quotes (an enum's `as_str`).
    pub fn of(value: &'static str) -> Self {
        assert!(
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
            "not a plain name: {value:?}"
        );
        TextLiteral(value)
    }
}

impl diesel::expression::Expression for TextLiteral {
    type SqlType = diesel::sql_types::Text;
}

impl<QS> diesel::expression::AppearsOnTable<QS> for TextLiteral {}

impl<QS> diesel::expression::SelectableExpression<QS> for TextLiteral {}

impl diesel::expression::ValidGrouping<()> for TextLiteral {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl QueryId for TextLiteral {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> QueryFragment<DB> for TextLiteral {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("'");
        out.push_sql(self.0);
        out.push_sql("'");
        Ok(())
    }
}

/// A write that returns nothing, as a part of [`with_writes`]' statement.
pub type BoxedWrite<'a, DB> = Box<dyn QueryFragment<DB> + 'a>;

/// `WITH w0 AS (<write>), w1 AS (<write>) … <then>`: writes that return
/// nothing run in the same statement as `then`, whose rows are the
/// statement's. One round trip where there were one per write, and atomic
/// without a transaction (PostgreSQL runs each data-modifying `WITH` once
/// and to completion, all in the statement's snapshot: no part sees
/// another's rows; SQLite has no such `WITH`, so only PostgreSQL's
/// connections run it).
pub struct WithWrites<'a, DB, Q> {
    writes: Vec<BoxedWrite<'a, DB>>,
    then: Q,
}

/// `writes`, then `then`, in one statement ([`WithWrites`]), [`Prepared`]
/// once per connection and text.
pub fn with_writes<DB, Q>(
    writes: Vec<BoxedWrite<'_, DB>>,
    then: Q,
) -> Prepared<WithWrites<'_, DB, Q>> {
    WithWrites { writes, then }.prepared()
}

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for WithWrites<'_, DB, Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        for (i, write) in self.writes.iter().enumerate() {
            out.push_sql(if i == 0 { "WITH " } else { ", " });
            out.push_sql(&format!("w{i} AS ("));
            write.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        out.push_sql(" ");
        self.then.walk_ast(out.reborrow())
    }
}

impl<DB, Q: Query> Query for WithWrites<'_, DB, Q> {
    type SqlType = Q::SqlType;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::jobs;
    use diesel::prelude::*;
    use diesel::sqlite::Sqlite;

    /// An `UPDATE`, which diesel never caches, is safe to cache once
    /// prepared, and its text is the statement's own.
    #[test]
    fn an_update_becomes_safe_to_cache_with_its_own_text() {
        let update = || diesel::update(jobs::table.find("j1")).set(jobs::dispatched_at.eq(5_i64));
        assert!(!QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&update(), &Sqlite).unwrap());
        let prepared = update().prepared();
        assert!(QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&prepared, &Sqlite).unwrap());
        const { assert!(!<Prepared<()> as QueryId>::HAS_STATIC_QUERY_ID) };
        assert_eq!(
            diesel::debug_query::<Sqlite, _>(&prepared).to_string(),
            diesel::debug_query::<Sqlite, _>(&update()).to_string()
        );
    }

    /// A closed set's value is written into the text, and the statement
    /// stays safe to cache (diesel's `sql()` would make it unsafe).
    #[test]
    fn a_text_literal_is_written_out_and_cacheable() {
        let query = jobs::table
            .filter(jobs::status.eq(TextLiteral::of("running")))
            .select(jobs::id);
        let text = diesel::debug_query::<Sqlite, _>(&query).to_string();
        assert!(text.contains("= 'running'"), "{text}");
        assert!(text.ends_with("-- binds: []"), "{text}");
        assert!(QueryFragment::<Sqlite>::is_safe_to_cache_prepared(&query, &Sqlite).unwrap());
    }

    #[test]
    #[should_panic(expected = "not a plain name")]
    fn a_text_literal_refuses_a_quote() {
        let _ = TextLiteral::of("x' OR '1'='1");
    }
}
