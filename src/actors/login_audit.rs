//! `LoginAudit`: failed logins, counted in memory and written to the audit
//! log in aggregate (issue 15 B.2). One client hammering `POST
//! /auth/login` used to cost one audit row, and one turn of the single
//! writer, per attempt (about 1,500 rows/s); now each failure is a
//! [`FailedLogin`] message counted here, and every [`WINDOW`] the counts go
//! to the writer in one transaction: one `login.failed` row per account
//! and address, whose detail holds the `count`, the count per `reasons`,
//! the most frequent one as `reason`, and the window's first and last
//! failure (`at` is the first).
//!
//! At most [`MAX_KEYS`] accounts and addresses are kept per window; the
//! failures past it are counted in one row of actor `*` (no address), so
//! memory stays bounded and nothing goes unrecorded. [`FlushLoginAudit`]
//! writes what is pending now (the timer, the graceful stop, tests).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use super::persistence::{Persistence, RunWrite};
use super::ActorError;
use crate::store;

/// How often the counted failures are written.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Account and address pairs counted per window at most.
pub const MAX_KEYS: usize = 10_000;
/// The actor of the row that counts failures past [`MAX_KEYS`].
pub const OVERFLOW_ACTOR: &str = "*";

/// What is counted for one account and address in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tally {
    count: u64,
    reasons: BTreeMap<&'static str, u64>,
    /// Unix ms of the first and the last failure.
    first_at: i64,
    last_at: i64,
}

impl Tally {
    fn add(&mut self, reason: &'static str, at: i64) {
        if self.count == 0 {
            self.first_at = at;
        }
        self.count += 1;
        *self.reasons.entry(reason).or_default() += 1;
        self.first_at = self.first_at.min(at);
        self.last_at = self.last_at.max(at);
    }

    /// The most frequent reason (the first by name on a tie).
    fn main_reason(&self) -> &'static str {
        let mut best = ("", 0);
        for (reason, n) in &self.reasons {
            if *n > best.1 {
                best = (reason, *n);
            }
        }
        best.0
    }

    fn detail(&self) -> serde_json::Value {
        json!({
            "reason": self.main_reason(),
            "count": self.count,
            "reasons": self.reasons,
            "first_at": self.first_at,
            "last_at": self.last_at,
        })
    }
}

/// (account as typed, clipped; client address).
type Key = (String, Option<String>);

/// The failures of the current window.
#[derive(Debug, Default)]
struct Counts {
    pending: HashMap<Key, Tally>,
    /// Failures past [`MAX_KEYS`] in this window.
    overflow: Tally,
}

/// The aggregating actor.
pub struct LoginAudit {
    persistence: Addr<Persistence>,
    counts: Counts,
}

impl LoginAudit {
    pub fn new(persistence: Addr<Persistence>) -> Self {
        LoginAudit {
            persistence,
            counts: Counts::default(),
        }
    }
}

impl Counts {
    fn count(&mut self, failed: FailedLogin) {
        let key = (failed.account, failed.source_addr);
        if let Some(tally) = self.pending.get_mut(&key) {
            tally.add(failed.reason, failed.at);
        } else if self.pending.len() < MAX_KEYS {
            self.pending
                .entry(key)
                .or_default()
                .add(failed.reason, failed.at);
        } else {
            self.overflow.add(failed.reason, failed.at);
        }
    }

    /// The rows to write now; the counts start afresh.
    fn take_rows(&mut self) -> Vec<(Key, Tally)> {
        let mut rows: Vec<(Key, Tally)> = self.pending.drain().collect();
        let overflow = std::mem::take(&mut self.overflow);
        if overflow.count > 0 {
            rows.push(((OVERFLOW_ACTOR.to_owned(), None), overflow));
        }
        rows.sort_by_key(|(_, tally)| tally.first_at);
        rows
    }
}

impl Actor for LoginAudit {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(WINDOW, |_act, ctx| ctx.notify(FlushLoginAudit));
    }
}

/// A login failed (`reason`: `unknown_user`, `wrong_password`,
/// `disabled`, `rate_limited`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FailedLogin {
    pub account: String,
    pub source_addr: Option<String>,
    pub reason: &'static str,
    /// Unix ms.
    pub at: i64,
}

impl Handler<FailedLogin> for LoginAudit {
    type Result = ();

    fn handle(&mut self, msg: FailedLogin, _ctx: &mut Self::Context) {
        self.counts.count(msg);
    }
}

/// Writes the counted failures now, in one transaction; replies with the
/// number of rows written.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<usize, ActorError>")]
pub struct FlushLoginAudit;

impl Handler<FlushLoginAudit> for LoginAudit {
    type Result = ResponseFuture<Result<usize, ActorError>>;

    fn handle(&mut self, _msg: FlushLoginAudit, _ctx: &mut Self::Context) -> Self::Result {
        let rows = self.counts.take_rows();
        let persistence = self.persistence.clone();
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(0);
            }
            let n = rows.len();
            let write = RunWrite::new("auditing failed logins", move |conn| {
                for ((account, addr), tally) in &rows {
                    store::audit::record(
                        conn,
                        tally.first_at,
                        account,
                        addr.as_deref(),
                        "login.failed",
                        None,
                        Some(tally.detail()),
                    )?;
                }
                Ok::<_, ActorError>(n)
            });
            let written = persistence.send(write).await.map_err(ActorError::mailbox)?;
            if let Err(e) = &written {
                tracing::error!(error = %e, rows = n, "cannot write failed logins to the audit log");
            }
            written
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(account: &str, addr: &str, reason: &'static str, at: i64) -> FailedLogin {
        FailedLogin {
            account: account.to_owned(),
            source_addr: Some(addr.to_owned()),
            reason,
            at,
        }
    }

    /// Thousands of failures of one account and address are one row with
    /// their count; another address is another row; past MAX_KEYS they
    /// land in the overflow row.
    #[test]
    fn failures_are_aggregated() {
        let mut audit = Counts::default();
        for i in 0..1500 {
            audit.count(failed("admin", "203.0.113.9", "rate_limited", 1000 + i));
        }
        audit.count(failed("admin", "203.0.113.9", "wrong_password", 900));
        audit.count(failed("admin", "192.0.2.1", "wrong_password", 2000));
        let rows = audit.take_rows();
        assert_eq!(rows.len(), 2);
        let (key, tally) = &rows[0];
        assert_eq!(key.1.as_deref(), Some("203.0.113.9"));
        assert_eq!(tally.count, 1501);
        assert_eq!(tally.first_at, 900);
        assert_eq!(tally.last_at, 2499);
        let detail = tally.detail();
        assert_eq!(detail["reason"], "rate_limited");
        assert_eq!(detail["reasons"]["wrong_password"], 1);
        assert!(audit.take_rows().is_empty(), "counts start afresh");

        for i in 0..=MAX_KEYS {
            audit.count(failed(&format!("u{i}"), "198.51.100.1", "unknown_user", 5));
        }
        let rows = audit.take_rows();
        assert_eq!(rows.len(), MAX_KEYS + 1);
        assert!(rows
            .iter()
            .any(|((actor, _), tally)| actor == OVERFLOW_ACTOR && tally.count == 1));
    }
}
