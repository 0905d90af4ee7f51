//! [`Json<T>`]: a TEXT column that holds a `T` as JSON, so that rows carry
//! `Vec<String>`, `Option<RetentionPolicy>` or a label map instead of the
//! text, and no caller parses a column by hand.
//!
//! Row structs keep the plain type and name the column type on the field:
//!
//! ```ignore
//! #[diesel(deserialize_as = Json<Vec<String>>, serialize_as = Json<Vec<String>>)]
//! pub includes: Vec<String>,
//! #[diesel(deserialize_as = Json<Option<RetentionPolicy>>, serialize_as = Json<Option<RetentionPolicy>>)]
//! pub retention_policy: Option<RetentionPolicy>,
//! ```
//!
//! `Json<T>` reads and writes `Text`; `Json<Option<T>>` reads and writes
//! `Nullable<Text>` (SQL NULL is `None`). A stored value that is not valid
//! JSON for `T` is a deserialisation error that names the type, and diesel
//! adds the column's name on top; it never panics. The columns stay TEXT
//! on both backends, so no migration is involved.

use std::any::type_name;
use std::convert::Infallible;
use std::fmt::Debug;
#[cfg(feature = "postgres")]
use std::io::Write;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
// What `#[derive(AsExpression)]` expands to; written by hand here because
// the derive would also claim `Nullable<Text>` for every `Json<T>`, which
// `Json<Option<T>>` needs for itself (NULL for `None`).
use diesel::internal::derives::as_expression::Bound;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Nullable, Text};
use diesel::sqlite::Sqlite;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::MultiBackend;

/// A value stored as JSON text (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The value. Named `try_into` because diesel's `deserialize_as` calls
    /// `.try_into()` on the column type to get the field (a `From<Json<T>>
    /// for T` is not allowed by the orphan rule); it cannot fail, the
    /// parsing happened in `from_sql`.
    pub fn try_into(self) -> Result<T, Infallible> {
        Ok(self.0)
    }
}

impl<T> From<T> for Json<T> {
    fn from(value: T) -> Self {
        Json(value)
    }
}

/// Parses stored JSON text; the error names the type it should have been.
fn parse<T: DeserializeOwned>(text: &str) -> deserialize::Result<T> {
    serde_json::from_str(text)
        .map_err(|e| format!("stored JSON is not a valid {}: {e}", type_name::<T>()).into())
}

/// Writes a value as JSON text; the error names the type.
fn to_text<T: Serialize>(value: &T) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    serde_json::to_string(value)
        .map_err(|e| format!("cannot write {} as JSON: {e}", type_name::<T>()).into())
}

impl<T, DB> FromSql<Text, DB> for Json<T>
where
    T: DeserializeOwned,
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        parse(&String::from_sql(bytes)?).map(Json)
    }
}

impl<T, DB> FromSql<Nullable<Text>, DB> for Json<Option<T>>
where
    T: DeserializeOwned,
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        parse(&String::from_sql(bytes)?).map(|v| Json(Some(v)))
    }

    fn from_nullable_sql(bytes: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match bytes {
            Some(bytes) => <Self as FromSql<Nullable<Text>, DB>>::from_sql(bytes),
            None => Ok(Json(None)),
        }
    }
}

impl<T, DB> Queryable<Text, DB> for Json<T>
where
    DB: Backend,
    Self: FromSql<Text, DB>,
{
    type Row = Self;

    fn build(row: Self) -> deserialize::Result<Self> {
        Ok(row)
    }
}

impl<T, DB> Queryable<Nullable<Text>, DB> for Json<Option<T>>
where
    DB: Backend,
    Self: FromSql<Nullable<Text>, DB>,
{
    type Row = Self;

    fn build(row: Self) -> deserialize::Result<Self> {
        Ok(row)
    }
}

impl<T: Serialize> AsExpression<Text> for Json<T> {
    type Expression = Bound<Text, Self>;

    fn as_expression(self) -> Self::Expression {
        Bound::new(self)
    }
}

/// For inserts of borrowed rows (multi-row `VALUES` over a slice).
impl<T: Serialize> AsExpression<Text> for &Json<T> {
    type Expression = Bound<Text, Self>;

    fn as_expression(self) -> Self::Expression {
        Bound::new(self)
    }
}

impl<T: Serialize> AsExpression<Nullable<Text>> for Json<Option<T>> {
    type Expression = Bound<Nullable<Text>, Self>;

    fn as_expression(self) -> Self::Expression {
        Bound::new(self)
    }
}

impl<T: Serialize + Debug> ToSql<Text, Sqlite> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(to_text(&self.0)?);
        Ok(IsNull::No)
    }
}

impl<T: Serialize + Debug> ToSql<Nullable<Text>, Sqlite> for Json<Option<T>> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(value) => {
                out.set_value(to_text(value)?);
                Ok(IsNull::No)
            }
        }
    }
}

#[cfg(feature = "postgres")]
impl<T: Serialize + Debug> ToSql<Text, diesel::pg::Pg> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
        out.write_all(to_text(&self.0)?.as_bytes())?;
        Ok(IsNull::No)
    }
}

#[cfg(feature = "postgres")]
impl<T: Serialize + Debug> ToSql<Nullable<Text>, diesel::pg::Pg> for Json<Option<T>> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(value) => {
                out.write_all(to_text(value)?.as_bytes())?;
                Ok(IsNull::No)
            }
        }
    }
}

/// The run-time backend hands the value to the concrete backend's impl
/// above (the pattern diesel documents for `MultiConnection`).
impl<T: Serialize + Debug + Send + Sync + 'static> ToSql<Text, MultiBackend> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        out.set_value((Text, self));
        Ok(IsNull::No)
    }
}

/// `None` is SQL NULL; `Some` is written as its JSON text.
impl<T: Serialize + Debug + Send + Sync + 'static> ToSql<Nullable<Text>, MultiBackend>
    for Json<Option<T>>
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
        match self.0 {
            None => Ok(IsNull::Yes),
            Some(_) => {
                out.set_value((Text, self));
                Ok(IsNull::No)
            }
        }
    }
}
