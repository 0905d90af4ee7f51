//! The fleet-wide path search: every entry of a complete catalog whose
//! path contains a text, case-insensitively, optionally on one host.
//!
//! SQLite answers from the contentless FTS5 `trigram` index (a quoted
//! phrase of trigrams is exactly a substring match; case folded by the
//! tokenizer); PostgreSQL from the `pg_trgm` GIN index on
//! `parent || name` with `ILIKE`. Both need at least [`MIN_QUERY_CHARS`]
//! characters (a trigram index cannot narrow a shorter text). Results come
//! in catalogue order (older catalogs first, paths in restic's order).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::store::{DbConnection, Page};

/// The shortest text the trigram indexes can search.
pub const MIN_QUERY_CHARS: usize = 3;

/// One match.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Hit {
    #[diesel(sql_type = Text)]
    pub host_id: String,
    #[diesel(sql_type = Text)]
    pub snapshot_id: String,
    /// Unix ms.
    #[diesel(sql_type = BigInt)]
    pub snapshot_time: i64,
    #[diesel(sql_type = Text)]
    pub parent: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub size: Option<i64>,
    /// Unix ms.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub mtime: Option<i64>,
}

impl Hit {
    /// The entry's absolute path.
    pub fn path(&self) -> String {
        format!("{}{}", self.parent, self.name)
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const SQLITE_FROM: &str = "FROM catalog_fts \
     JOIN catalog_entries e ON e.id = catalog_fts.rowid \
     JOIN catalog_snapshots c ON c.id = e.catalog_id \
     WHERE catalog_fts MATCH ? AND c.state = 'complete' AND (? IS NULL OR c.host_id = ?)";

#[cfg(feature = "postgres")]
const PG_FROM: &str = "FROM catalog_entries e \
     JOIN catalog_snapshots c ON c.id = e.catalog_id \
     WHERE (e.parent || e.name) ILIKE $1 AND c.state = 'complete' \
     AND ($2::text IS NULL OR c.host_id = $2)";

const SELECT: &str =
    "SELECT c.host_id, c.snapshot_id, c.snapshot_time, e.parent, e.name, e.kind, e.size, e.mtime ";

/// One page of the entries whose path contains `text` (at least
/// [`MIN_QUERY_CHARS`] characters; shorter text matches nothing).
pub fn search(
    conn: &mut DbConnection,
    text: &str,
    host_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> QueryResult<Page<Hit>> {
    if text.chars().count() < MIN_QUERY_CHARS {
        return Ok(Page {
            items: Vec::new(),
            total: 0,
        });
    }
    match conn {
        DbConnection::Sqlite(c) => {
            let phrase = format!("\"{}\"", text.replace('"', "\"\""));
            let total = diesel::sql_query(format!("SELECT count(*) AS n {SQLITE_FROM}"))
                .bind::<Text, _>(&phrase)
                .bind::<Nullable<Text>, _>(host_id)
                .bind::<Nullable<Text>, _>(host_id)
                .get_result::<Count>(c)?
                .n;
            let items = diesel::sql_query(format!(
                "{SELECT}{SQLITE_FROM} ORDER BY catalog_fts.rowid LIMIT ? OFFSET ?"
            ))
            .bind::<Text, _>(&phrase)
            .bind::<Nullable<Text>, _>(host_id)
            .bind::<Nullable<Text>, _>(host_id)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<Hit>(c)?;
            Ok(Page { items, total })
        }
        #[cfg(feature = "postgres")]
        DbConnection::Pg(c) => {
            let pattern = format!("%{}%", like_escape(text));
            let total = diesel::sql_query(format!("SELECT count(*) AS n {PG_FROM}"))
                .bind::<Text, _>(&pattern)
                .bind::<Nullable<Text>, _>(host_id)
                .get_result::<Count>(c)?
                .n;
            let items = diesel::sql_query(format!(
                "{SELECT}{PG_FROM} ORDER BY e.id LIMIT $3 OFFSET $4"
            ))
            .bind::<Text, _>(&pattern)
            .bind::<Nullable<Text>, _>(host_id)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load::<Hit>(c)?;
            Ok(Page { items, total })
        }
    }
}

/// `text` with LIKE's wildcards and escape character escaped (backslash
/// is PostgreSQL's default LIKE escape).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LIKE wildcards in the search text are literal.
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(like_escape("nginx"), "nginx");
    }
}
