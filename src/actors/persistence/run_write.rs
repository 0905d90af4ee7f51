//! [`RunWrite`]: the REST API's writes on the one writer, a closure run
//! in one write transaction whose result is the reply (or, for a write
//! that is one statement on PostgreSQL, without `BEGIN`/`COMMIT` there:
//! [`RunWrite::one_statement_on_pg`]).

use actix::prelude::*;

use super::{PersistError, Persistence};
use crate::store;

/// A write of the REST API (or another caller outside the agent channel):
/// `f` runs on the writer's connection inside one write transaction, and
/// its result (or its error) is the reply. Build it with [`RunWrite::new`]
/// or use `Actors::write`. `what` names the write in the error log.
///
/// The closure must not block on anything but the database (hash passwords
/// before sending it): every other write waits behind it.
pub struct RunWrite<T, E> {
    pub what: &'static str,
    /// Whether `f` runs without `BEGIN`/`COMMIT` on PostgreSQL
    /// ([`RunWrite::one_statement_on_pg`]).
    bare_on_pg: bool,
    #[allow(clippy::type_complexity)] // the boxed closure is the message
    f: Box<dyn FnOnce(&mut store::DbConnection) -> Result<T, E> + Send>,
}

impl<T, E> RunWrite<T, E> {
    /// A write named `what` that runs `f` in one transaction.
    pub fn new(
        what: &'static str,
        f: impl FnOnce(&mut store::DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Self {
        RunWrite {
            what,
            bare_on_pg: false,
            f: Box::new(f),
        }
    }

    /// A write named `what` whose `f`, on PostgreSQL, writes in one
    /// statement (atomic by itself) and otherwise only reads: it runs
    /// without a transaction there, two round trips fewer on the one
    /// writer. On SQLite it runs in a write transaction as with
    /// [`RunWrite::new`]. (`store::schedule_replace` is such a write.)
    pub fn one_statement_on_pg(
        what: &'static str,
        f: impl FnOnce(&mut store::DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Self {
        RunWrite {
            bare_on_pg: true,
            ..Self::new(what, f)
        }
    }
}

impl<T: 'static, E: 'static> Message for RunWrite<T, E> {
    type Result = Result<T, E>;
}

impl<T, E> Handler<RunWrite<T, E>> for Persistence
where
    T: Send + 'static,
    E: From<PersistError> + From<diesel::result::Error> + std::fmt::Display + Send + 'static,
{
    type Result = Result<T, E>;

    fn handle(&mut self, msg: RunWrite<T, E>, _ctx: &mut Self::Context) -> Self::Result {
        // No flush first: these writes do not depend on buffered log lines
        // or progress, and the next tick writes those anyway.
        let t = std::time::Instant::now();
        let what = msg.what;
        let (bare_on_pg, f) = (msg.bare_on_pg, msg.f);
        let result = self.db.run(|c| {
            if bare_on_pg && store::backend_name(c) == "postgres" {
                f(c)
            } else {
                store::write_transaction(c, f)
            }
        });
        super::turn_took(what, t);
        if let Err(e) = &result {
            tracing::debug!(error = %e, "{what} was refused or failed");
        }
        result
    }
}
