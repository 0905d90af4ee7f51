//! `hello`s, group-committed (issue 19: fewer writer turns per greeting).
//!
//! A hello used to be a writer turn of its own and a transaction of its
//! own: on PostgreSQL `BEGIN`, the host's `UPDATE … RETURNING`, the read
//! of its `host.offline` condition and `COMMIT`, four round trips, for
//! each of 10,000 agents coming back at once. Now [`RecordHello`] only
//! queues the hello and answers with a [`HelloReceipt`]; the queue is
//! written as **one transaction** by the next writer turn of any kind:
//!
//! - the first hello queued sends the writer a [`WriteHellos`] nudge,
//!   which lands behind every message already in the mailbox, so the
//!   hellos that arrived meanwhile go with it (group commit, no timer);
//! - every other write (and the [`Flush`](super::Flush) tick) writes the
//!   queue first, so a host's `MarkOffline` sent after its hello is never
//!   overtaken by it (the mailbox stays the order of writes);
//! - at [`MAX_HELLO_BATCH`] queued hellos the queue is written at once.
//!
//! A receipt is answered only after the commit (nothing is acknowledged
//! before it is durable). If the database refuses the batch, each hello
//! is retried in a transaction of its own, so that one bad row fails its
//! own session only; without a connection, all of them fail at once.
//!
//! On SQLite each hello is one `UPDATE`; the batch adds `BEGIN`, one read
//! of the hosts' open `host.offline` conditions and `COMMIT`. On
//! PostgreSQL the whole batch is `BEGIN`, one `UPDATE … FROM unnest(…)`,
//! one read of the updated rows, the conditions' read and `COMMIT`
//! ([`hosts::update_from_hellos`]), whatever its size.

use std::collections::HashSet;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{PersistError, PersistResult, Persistence};
use crate::ids::HostId;
use crate::notify;
use crate::protocol;
use crate::store::models::{Host, HostHello};
use crate::store::{self, hosts, notifications, DbConnection};

/// Queued hellos that are written at once, without waiting for the nudge
/// (bounds a batch's transaction and its reply latency).
pub const MAX_HELLO_BATCH: usize = 1_000;

/// `hello`: the reported facts, online, last seen. Queued; the receipt
/// resolves to the host (`None` if it is gone or revoked) once written.
#[derive(Message)]
#[rtype(result = "HelloReceipt")]
pub struct RecordHello {
    pub host_id: HostId,
    pub payload: protocol::Hello,
    pub now: i64,
}

/// Resolves when the hello is durable (or failed).
pub struct HelloReceipt(oneshot::Receiver<PersistResult<Option<Host>>>);

impl HelloReceipt {
    /// Waits for the commit of the hello's batch.
    pub async fn written(self) -> PersistResult<Option<Host>> {
        self.0.await.unwrap_or_else(|_| {
            // The writer dropped the queue without answering: it stopped.
            Err(PersistError::Unavailable("the writer stopped".into()))
        })
    }
}

/// A queued hello and who waits for it.
pub(super) struct PendingHello {
    host_id: String,
    hello: HostHello,
    now: i64,
    reply: oneshot::Sender<PersistResult<Option<Host>>>,
}

impl Handler<RecordHello> for Persistence {
    type Result = MessageResult<RecordHello>;

    fn handle(&mut self, msg: RecordHello, ctx: &mut Self::Context) -> Self::Result {
        let hello = HostHello {
            hostname: msg.payload.hostname,
            os: msg.payload.os,
            arch: msg.payload.arch,
            agent_version: Some(msg.payload.agent_version),
            restic_version: Some(msg.payload.restic_version),
            boot_time: msg.payload.boot_time.map(|t| t.timestamp_millis()),
            // Absent: protocol 1's set, so every check reads one list.
            capabilities: Some(protocol::effective_capabilities(
                msg.payload.capabilities.as_deref(),
            )),
        };
        let (reply, receipt) = oneshot::channel();
        if self.hellos.is_empty() {
            ctx.address().do_send(WriteHellos);
        }
        self.hellos.push(PendingHello {
            host_id: msg.host_id.into_string(),
            hello,
            now: msg.now,
            reply,
        });
        if self.hellos.len() >= MAX_HELLO_BATCH {
            self.flush_hellos();
        }
        MessageResult(HelloReceipt(receipt))
    }
}

/// Writes the queued hellos (sent by the first one queued).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct WriteHellos;

impl Handler<WriteHellos> for Persistence {
    type Result = ();

    fn handle(&mut self, _msg: WriteHellos, _ctx: &mut Self::Context) {
        self.flush_hellos();
    }
}

impl Persistence {
    /// Writes the queued hellos as one transaction and answers each.
    pub(super) fn flush_hellos(&mut self) {
        if self.hellos.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.hellos);
        let t = std::time::Instant::now();
        let together = self
            .db
            .run(|c| Ok::<_, PersistError>(store::write_transaction(c, |c| write(c, &batch))?));
        super::turn_took("recording hellos", t);
        match together {
            Ok(hosts) => {
                for (pending, host) in batch.into_iter().zip(hosts) {
                    // A session that went away does not wait for its answer.
                    let _ = pending.reply.send(Ok(host));
                }
            }
            // Alone, or no connection at all: retrying one by one would
            // only wait for the pool again per hello.
            Err(e) if batch.len() == 1 || matches!(e, PersistError::Unavailable(_)) => {
                answer_failed(batch, e);
            }
            Err(e) => {
                tracing::warn!(error = %e, hellos = batch.len(), "a batch of hellos failed; writing them one by one");
                for pending in batch {
                    let one = std::slice::from_ref(&pending);
                    let result = self.db.run(|c| {
                        Ok::<_, PersistError>(store::write_transaction(c, |c| write(c, one))?)
                    });
                    match result {
                        Ok(mut host) => {
                            // As above: the session may have gone.
                            let _ = pending.reply.send(Ok(host.pop().flatten()));
                        }
                        Err(e) => answer_failed(vec![pending], e),
                    }
                }
            }
        }
    }
}

/// Logs a failed hello with its host and answers it with the error.
fn answer_failed(batch: Vec<PendingHello>, e: PersistError) {
    for pending in batch {
        tracing::error!(error = %e, host_id = %pending.host_id, "recording hello failed");
        // The session may have gone; the error is logged above.
        let _ = pending.reply.send(Err(e.clone()));
    }
}

/// The hellos' rows, inside the caller's transaction: each host's update,
/// then one read of which of them have a `host.offline` condition going
/// on, and its end for those (usually none).
fn write(
    conn: &mut DbConnection,
    batch: &[PendingHello],
) -> diesel::QueryResult<Vec<Option<Host>>> {
    let hellos: Vec<(&str, &HostHello, i64)> = batch
        .iter()
        .map(|p| (p.host_id.as_str(), &p.hello, p.now))
        .collect();
    let written = hosts::update_from_hellos(conn, &hellos)?;
    let ends: Vec<notifications::Event> = batch
        .iter()
        .zip(&written)
        .filter(|(_, host)| host.is_some())
        .map(|(p, _)| notify::host_event(&p.host_id, false, p.now))
        .collect();
    let keys: Vec<&str> = ends.iter().map(|e| e.condition.as_str()).collect();
    let open: HashSet<String> = notifications::open_conditions(conn, &keys)?;
    for event in ends.iter().filter(|e| open.contains(&e.condition)) {
        // Ends the host's `host.offline` condition.
        notifications::emit(conn, event)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::store::models::NewHost;
    use crate::store::Pool;

    fn hello(hostname: &str) -> protocol::Hello {
        protocol::Hello {
            protocol_version: protocol::PROTOCOL_VERSION,
            agent_version: "1.0.0".into(),
            restic_version: "0.16.0".into(),
            hostname: hostname.into(),
            os: protocol::OS_LINUX.into(),
            arch: protocol::ARCH_AMD64.into(),
            boot_time: None,
            capabilities: None,
            last_known_config_version: None,
        }
    }

    fn pool_with_hosts(dir: &tempfile::TempDir, ids: &[&str]) -> Pool {
        let url = dir.path().join("t.db").display().to_string();
        let pool = store::connect(&url, 4).unwrap();
        let mut c = pool.get().unwrap();
        for id in ids {
            hosts::insert(&mut c, &NewHost::new(*id, *id, format!("hash-{id}"), 1)).unwrap();
        }
        pool
    }

    fn record(host_id: &str, now: i64) -> RecordHello {
        RecordHello {
            host_id: host_id.into(),
            payload: hello(&format!("{host_id}.example")),
            now,
        }
    }

    /// Hellos queued together are written together: every receipt
    /// resolves to its own host, online, with the reported hostname; a
    /// hello of an unknown host resolves to `None` without failing the
    /// others of its batch.
    #[actix_web::test]
    async fn queued_hellos_are_written_together_and_each_answered() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_with_hosts(&dir, &["h1", "h2", "h3"]);
        let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
        let mut receipts = Vec::new();
        for id in ["h1", "gone", "h2", "h3"] {
            receipts.push(writer.send(record(id, 5)).await.unwrap());
        }
        let mut answers = Vec::new();
        for receipt in receipts {
            answers.push(receipt.written().await.unwrap().map(|h| h.hostname));
        }
        assert_eq!(
            answers,
            vec![
                Some("h1.example".to_owned()),
                None,
                Some("h2.example".to_owned()),
                Some("h3.example".to_owned()),
            ]
        );
        let mut c = pool.get().unwrap();
        for id in ["h1", "h2", "h3"] {
            let host = hosts::get(&mut c, id).unwrap().unwrap();
            assert!(host.online, "{id} online");
            assert_eq!(host.last_seen_at, Some(5));
        }
    }

    /// A session's end sent after its hello is written after it, even
    /// while the hello waits in the queue: the host ends offline.
    #[actix_web::test]
    async fn an_offline_mark_is_never_overtaken_by_the_queued_hello() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_with_hosts(&dir, &["h1"]);
        let writer = Persistence::start(pool.clone(), Arc::new(Metrics::new()));
        let receipt = writer.send(record("h1", 5)).await.unwrap();
        let offline = writer
            .send(super::super::MarkOffline {
                host_id: "h1".into(),
                now: 6,
            })
            .await
            .unwrap();
        assert!(offline.unwrap());
        assert!(receipt.written().await.unwrap().is_some());
        let mut c = pool.get().unwrap();
        let host = hosts::get(&mut c, "h1").unwrap().unwrap();
        assert!(!host.online, "offline, written after the hello");
        assert_eq!(host.last_seen_at, Some(6));
    }
}
