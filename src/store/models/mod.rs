//! Row structs (what a query returns) and, apart from them, the forms that
//! insert or change rows (`New*` are `Insertable`, `*Changes` / `*Patch`
//! are `AsChangeset`: a `None` field is left as it is, `Some(None)` sets
//! NULL).
//!
//! Rows that carry a secret or a credential's hash (users, sessions, API,
//! agent and enrolment tokens, repositories) print it as `***` in `Debug`
//! so that logging a row never leaks it. None of these types is
//! `Serialize`: the HTTP layer builds its own answers and chooses what to
//! show.
//!
//! The types are grouped by what they describe (`accounts`, `hosts`,
//! `schedules`, `jobs`, `history`) and all re-exported here, so
//! `store::models::X` names every one of them.

mod accounts;
mod history;
mod hosts;
mod jobs;
mod schedules;

pub use accounts::*;
pub use history::*;
pub use hosts::*;
pub use jobs::*;
pub use schedules::*;

/// How a redacted field prints in `Debug`.
const REDACTED: &str = "***";
