//! Typed ids ([`HostId`], [`JobId`], [`SourceGroupId`], [`ScheduleId`]), so
//! that a function that wants a host cannot be handed a job's id or any
//! other string.
//!
//! Each is the UUID v7 text the store makes ([`crate::store::new_id`]):
//! serde-transparent (the JSON is the bare string, as PROTOCOL.md and
//! API.md spell it), a diesel TEXT column both ways, `Display` for logs and
//! URLs. An id reads as `&str` ([`Deref`]) wherever text is wanted (a log
//! field, a URL, a query that is not yet typed); the protection is one way:
//! what takes a `HostId` accepts nothing else. Make one from text with
//! `From` at the edge (a path segment, a wire message).
//!
//! # Where they are used
//!
//! The rule: **any signature with two kinds of id is typed** — a function,
//! or an actor message, that takes a host and a job (or a schedule, a
//! source group) takes them as these types, so that a swap does not
//! compile. Today that is the store's host-scoped queries
//! (`store::channel`, `jobs::finish_for_host`, `leases::acquire`,
//! `schedules`/`source_groups::get_for_host`, `verification`, the
//! catalog), the writer's job messages and finish path
//! (`actors::persistence`), the host session (`HostSession::host_id` and
//! every message it sends), live `Event`s, `fire_jobs`, and the store's
//! row structs. A function with one id may keep `&str`; so may a second
//! id that has no type here (a restic snapshot id, a repository id) when
//! the other ids beside it are typed, since then no swap compiles either.
//! Wire structs (`protocol`) stay `String`: that module depends on serde
//! alone; convert where the message is handled.
//!
//! A swapped host and job id is refused at compile time:
//!
//! ```compile_fail
//! use restic_manager::ids::{HostId, JobId};
//! use restic_manager::store::{channel, DbConnection};
//!
//! fn lookup(conn: &mut DbConnection, host: &HostId, job: &JobId) {
//!     let _ = channel::job_of_host(conn, job, host); // expected `&HostId`, found `&JobId`
//! }
//! ```
//!
//! while the right order compiles:
//!
//! ```
//! use restic_manager::ids::{HostId, JobId};
//! use restic_manager::store::{channel, DbConnection};
//!
//! fn lookup(conn: &mut DbConnection, host: &HostId, job: &JobId) {
//!     let _ = channel::job_of_host(conn, host, job);
//! }
//! ```

use std::fmt;
use std::ops::Deref;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

/// Declares one id type with the traits the module doc lists.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
            Serialize, Deserialize, AsExpression, FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = Text)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl<DB> ToSql<Text, DB> for $name
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.0.as_str().to_sql(out)
            }
        }

        impl<DB> FromSql<Text, DB> for $name
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                String::from_sql(bytes).map($name)
            }
        }
    };
}

id_type! {
    /// An enrolled host (`hosts.id`, the agent's identity).
    HostId
}

id_type! {
    /// A job (`jobs.id`, `job_id` on the wire).
    JobId
}

id_type! {
    /// A source group of a host (`source_groups.id`).
    SourceGroupId
}

id_type! {
    /// A schedule of a host (`schedules.id`).
    ScheduleId
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of an id is the bare string, both ways.
    #[test]
    fn serde_is_the_bare_string() {
        let id = HostId::from("0193-abc");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0193-abc\"");
        let back: JobId = serde_json::from_str("\"0193-def\"").unwrap();
        assert_eq!(back.as_str(), "0193-def");
        assert!(serde_json::from_str::<JobId>("7").is_err());
    }

    /// Display, `as_str`, comparison with text and the conversions agree.
    #[test]
    fn reads_as_its_text() {
        let id = SourceGroupId::from("g1".to_owned());
        assert_eq!(id.to_string(), "g1");
        assert_eq!(id, "g1");
        assert_eq!(&*id, "g1");
        assert_eq!(String::from(id.clone()), "g1");
        assert_eq!(id.into_string(), "g1");
        assert_eq!(
            format!("/schedules/{}", ScheduleId::from("s1")),
            "/schedules/s1"
        );
    }
}
