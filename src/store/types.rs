//! The closed sets of values the store keeps in TEXT columns (user role,
//! job kind, status and trigger, log stream, schedule kind), read and written through
//! diesel, plus [`Page`], the shape of every paginated list.
//!
//! Job kind, job status and log stream are the protocol's own enums
//! ([`crate::protocol::JobKind`], [`crate::protocol::JobStatus`],
//! [`crate::protocol::LogStreamKind`], re-exported here as [`JobKind`],
//! [`JobStatus`] and [`LogStream`]): the store stores their wire spelling, so
//! there is one definition and no conversion. The user role is
//! [`crate::auth::Role`] (re-exported as [`Role`]) the same way; the
//! trigger exists only here. A value in the database that no variant knows
//! is a deserialisation error naming the value, never a panic.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::dsl::AsExprOf;
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Nullable, SingleValue, Text};
use serde::{Deserialize, Serialize};

pub use crate::auth::Role;
pub use crate::protocol::{JobKind, JobStatus, LogStreamKind as LogStream, ScheduleKind};

/// A value that is not one of an enum's spellings (the protocol's error,
/// so that every TEXT enum fails the same way).
pub use crate::protocol::UnknownVariant as UnknownValue;

/// Makes enums with `as_str` and `FromStr` TEXT columns: bound as their
/// spelling (`AsExpression`, `ToSql`) and read back by parsing it
/// (`FromSql`, `Queryable`), which is what `#[derive(AsExpression,
/// FromSqlRow)]` would generate, written out for the protocol's enums,
/// which carry no diesel attributes.
macro_rules! text_column {
    ($($ty:ty),+ $(,)?) => {$(
        impl AsExpression<Text> for $ty {
            type Expression = AsExprOf<Cow<'static, str>, Text>;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Text>::as_expression(Cow::Borrowed(self.as_str()))
            }
        }

        impl AsExpression<Nullable<Text>> for $ty {
            type Expression = AsExprOf<Cow<'static, str>, Nullable<Text>>;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Nullable<Text>>::as_expression(Cow::Borrowed(self.as_str()))
            }
        }

        impl AsExpression<Text> for &$ty {
            type Expression = AsExprOf<Cow<'static, str>, Text>;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Text>::as_expression(Cow::Borrowed(self.as_str()))
            }
        }

        impl AsExpression<Nullable<Text>> for &$ty {
            type Expression = AsExprOf<Cow<'static, str>, Nullable<Text>>;

            fn as_expression(self) -> Self::Expression {
                AsExpression::<Nullable<Text>>::as_expression(Cow::Borrowed(self.as_str()))
            }
        }

        impl<DB> ToSql<Text, DB> for $ty
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> FromSql<Text, DB> for $ty
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                Ok(text.parse::<$ty>()?)
            }
        }

        impl<DB, ST> Queryable<ST, DB> for $ty
        where
            DB: Backend,
            ST: SingleValue,
            Self: FromSql<ST, DB>,
        {
            type Row = Self;

            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }
    )+};
}

text_column!(
    JobKind,
    JobStatus,
    LogStream,
    Role,
    JobTrigger,
    ScheduleKind
);

/// Declares a store-only TEXT enum with its spellings, parsing, display and
/// serde (the diesel side comes from `text_column!`), the way
/// `protocol::wire_enum!` declares the wire's.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling stored in the database and used on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownValue { what: $what, value: other.to_owned() }),
                }
            }
        }
    };
}

text_enum! {
    /// Why a job was created.
    JobTrigger, "job trigger" {
        /// An operator pressed "run now" (UI or API).
        Manual => "manual",
        /// A `schedule.fire` from the agent's cron.
        Schedule => "schedule",
        /// A retry of a failed backup (links to its first attempt).
        Retry => "retry",
        /// The retention `forget` that follows a successful backup.
        Retention => "retention",
        /// A `catalog` job for a snapshot a `snapshots.report` listed.
        Snapshot => "snapshot",
        /// A backup the agent ran on its own while the server was
        /// unreachable (`job.report` with `origin: "agent"`).
        Agent => "agent",
    }
}

/// One page of a list, with the number of rows the filter matches in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The rows of this page, in the list's order.
    pub items: Vec<T>,
    /// How many rows match the filter, ignoring limit and offset.
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every enum value survives text → enum → text, and an unknown text is
    /// a typed error naming it.
    #[test]
    fn spellings_round_trip_and_unknown_is_an_error() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
        }
        for k in JobKind::ALL {
            assert_eq!(k.to_string().parse::<JobKind>(), Ok(*k));
        }
        for k in ScheduleKind::ALL {
            assert_eq!(k.as_str().parse::<ScheduleKind>(), Ok(*k));
        }
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(*s));
        }
        for t in JobTrigger::ALL {
            assert_eq!(t.as_str().parse::<JobTrigger>(), Ok(*t));
        }
        for l in LogStream::ALL {
            assert_eq!(l.as_str().parse::<LogStream>(), Ok(*l));
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown role \"root\": expected one of admin, operator, viewer"
        );
    }

    /// Serde uses the same spellings as the database.
    #[test]
    fn serde_matches_database_spelling() {
        assert_eq!(
            serde_json::to_string(&JobStatus::Cancelled).unwrap(),
            "\"cancelled\""
        );
        assert_eq!(
            serde_json::from_str::<JobTrigger>("\"retention\"").unwrap(),
            JobTrigger::Retention
        );
    }

    /// Terminal statuses are exactly succeeded, failed and cancelled.
    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = JobStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .copied()
            .collect();
        assert_eq!(
            terminal,
            vec![
                JobStatus::Succeeded,
                JobStatus::Failed,
                JobStatus::Cancelled
            ]
        );
    }
}
