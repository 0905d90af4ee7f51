//! The closed sets of values the store keeps in TEXT columns (user role,
//! job kind, status and trigger, log stream), as Rust enums that read and
//! write themselves through diesel, plus [`Page`], the shape of every
//! paginated list.
//!
//! Each enum spells its values exactly as PROTOCOL.md and API.md do
//! (`as_str`, `FromStr`, `Display` and serde agree), so converting to and
//! from the wire types is a string match. A value in the database that no
//! variant knows is a deserialisation error naming the value, never a
//! panic.

use std::fmt;
use std::str::FromStr;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

/// A value that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// Which set was being parsed ("role", "job status", …).
    pub what: &'static str,
    /// The text that matched no variant.
    pub value: String,
}

/// Declares a TEXT-backed enum with its spellings, parsing, display, serde
/// and diesel conversions, so that every enum here behaves the same way.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize,
            AsExpression, FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
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

        impl<DB> ToSql<Text, DB> for $name
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> FromSql<Text, DB> for $name
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}

text_enum! {
    /// A user's role (DESIGN.md "Security"): what the user may change.
    Role, "role" {
        /// Users, tokens, everything.
        Admin => "admin",
        /// Hosts, groups, schedules, run/cancel.
        Operator => "operator",
        /// Read only.
        Viewer => "viewer",
    }
}

text_enum! {
    /// What a job runs (PROTOCOL.md `command.run` `kind`).
    JobKind, "job kind" {
        /// `restic backup`.
        Backup => "backup",
        /// `restic init`.
        Init => "init",
        /// `restic forget` with a retention policy.
        Forget => "forget",
        /// `restic prune`.
        Prune => "prune",
        /// `restic check`.
        Check => "check",
        /// `restic unlock`.
        Unlock => "unlock",
        /// `restic restore` into a target folder.
        Restore => "restore",
        /// `restic ls` of one snapshot into the catalog.
        Catalog => "catalog",
    }
}

text_enum! {
    /// Where a job is in its life (PROTOCOL.md job statuses).
    JobStatus, "job status" {
        /// Created, not yet started by the agent (it may be dispatched and
        /// accepted already: see the job's `dispatched_at` / `accepted_at`).
        Queued => "queued",
        /// The agent reported `job.started`.
        Running => "running",
        /// Finished well (restic exit 0, or 3 with a warning).
        Succeeded => "succeeded",
        /// Finished badly, refused, or lost.
        Failed => "failed",
        /// Cancelled by an operator (queued or running).
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// The statuses a job never leaves.
    pub const TERMINAL: &'static [JobStatus] = &[
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];
    /// The statuses a job can still leave.
    pub const ACTIVE: &'static [JobStatus] = &[JobStatus::Queued, JobStatus::Running];

    /// True for `succeeded`, `failed` and `cancelled`.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self)
    }
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
    }
}

text_enum! {
    /// Which stream a job log line came from (PROTOCOL.md `log.stream`).
    LogStream, "log stream" {
        /// restic's standard output.
        Stdout => "stdout",
        /// restic's standard error.
        Stderr => "stderr",
        /// An event the agent itself logged about the job.
        Event => "event",
    }
}

/// Exhaustive conversions between a store enum and the protocol's or auth's
/// enum of the same values: the store keeps its own TEXT-backed copies (the
/// protocol module stays serde-only), and a variant added on one side only
/// fails to compile here.
macro_rules! same_values {
    ($store:ident, $other:path { $($variant:ident),+ $(,)? }) => {
        impl From<$other> for $store {
            fn from(v: $other) -> Self {
                use $other as O;
                match v { $(O::$variant => $store::$variant),+ }
            }
        }
        impl From<$store> for $other {
            fn from(v: $store) -> Self {
                use $other as O;
                match v { $($store::$variant => O::$variant),+ }
            }
        }
    };
}

same_values!(
    Role,
    crate::auth::Role {
        Admin,
        Operator,
        Viewer
    }
);
same_values!(
    JobKind,
    crate::protocol::JobKind {
        Backup,
        Init,
        Forget,
        Prune,
        Check,
        Unlock,
        Restore,
        Catalog
    }
);
same_values!(
    JobStatus,
    crate::protocol::JobStatus {
        Queued,
        Running,
        Succeeded,
        Failed,
        Cancelled
    }
);
same_values!(
    LogStream,
    crate::protocol::LogStreamKind {
        Stdout,
        Stderr,
        Event
    }
);

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
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        for k in JobKind::ALL {
            assert_eq!(k.to_string().parse::<JobKind>(), Ok(*k));
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
        assert_eq!(err.to_string(), "unknown role \"root\"");
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
