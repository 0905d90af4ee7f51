//! The writer's catalog writes: `catalog.chunk`s buffered and written in
//! batches ([`AppendCatalog`], one transaction per flush, like log lines
//! and counted into the same backlog), a `catalog` job's completion in the
//! transaction that finishes it ([`complete_job`]), the re-queue of a job
//! that yielded to other work ([`YieldCatalog`]), and the bound
//! `--catalog-keep` ([`ConfigureCatalog`]).

use actix::prelude::*;
use diesel::QueryResult;

use super::{PersistError, PersistResult, Persistence, FLUSH_MAX_ROWS, MAX_FLUSH_ATTEMPTS};
use crate::ids::{HostId, JobId};
use crate::protocol::{self, ENTRIES_STAT};
use crate::store::catalog::ingest::{self, Chunk, Completion};
use crate::store::catalog::lifecycle;
use crate::store::models::{Job, JobFinish};
use crate::store::{self, jobs, DbConnection, JobKind, JobStatus};

/// A `catalog.chunk` from a host's session (buffered). The sender has
/// already counted its entries into the backlog.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppendCatalog {
    pub host_id: HostId,
    pub chunk: protocol::CatalogChunk,
}

impl Handler<AppendCatalog> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: AppendCatalog, _ctx: &mut Self::Context) {
        let protocol::CatalogChunk {
            job_id,
            snapshot_id,
            entries,
            ..
        } = msg.chunk;
        self.catalog_buffered += entries.len();
        self.catalog.push(Chunk {
            host_id: msg.host_id,
            job_id: job_id.into(),
            snapshot_id,
            entries,
        });
        if self.catalog_buffered >= FLUSH_MAX_ROWS {
            self.flush_catalog();
        }
    }
}

impl Persistence {
    /// Writes the buffered chunks in one transaction.
    pub(super) fn flush_catalog(&mut self) {
        if self.catalog.is_empty() {
            return;
        }
        let now = store::now_ms();
        let result = self
            .db
            .run(|c| Ok::<_, PersistError>(ingest::append_chunks(c, &self.catalog, now)?));
        match result {
            Ok(outcome) => {
                if outcome.ignored > 0 {
                    tracing::debug!(ignored = outcome.ignored, "catalog entries ignored");
                }
                self.drop_catalog_buffer();
            }
            Err(e) => {
                self.catalog_attempts += 1;
                if self.catalog_attempts >= MAX_FLUSH_ATTEMPTS {
                    // The job's completion sees the missing entries and
                    // drops the partial catalog; the next report queues
                    // the snapshot again.
                    tracing::error!(error = %e, entries = self.catalog_buffered, "dropping catalog entries after repeated write failures");
                    self.drop_catalog_buffer();
                } else {
                    tracing::warn!(error = %e, entries = self.catalog_buffered, "writing catalog entries failed; will retry");
                }
            }
        }
    }

    fn drop_catalog_buffer(&mut self) {
        self.backlog_done(self.catalog_buffered);
        self.catalog.clear();
        self.catalog_buffered = 0;
        self.catalog_attempts = 0;
    }
}

/// The entry count a `catalog` job reported in its stats.
fn reported_entries(finish: &JobFinish) -> Option<u64> {
    finish.stats.as_ref()?.get(ENTRIES_STAT)?.as_u64()
}

/// A job just made terminal: a succeeded `catalog` job completes its
/// catalog (dropping the group's catalogs past `keep`). Call inside the
/// transaction that finished it.
pub(super) fn complete_job(
    conn: &mut DbConnection,
    job: &Job,
    finish: &JobFinish,
    keep: usize,
    now: i64,
) -> QueryResult<()> {
    if job.kind != JobKind::Catalog || job.status != JobStatus::Succeeded {
        return Ok(());
    }
    let Some(snapshot_id) = &job.snapshot_id else {
        return Ok(());
    };
    let reported = reported_entries(finish);
    match ingest::complete(
        conn,
        &job.host_id,
        snapshot_id,
        &job.id,
        reported,
        keep,
        now,
    )? {
        Completion::Complete { dropped } => {
            tracing::info!(host_id = %job.host_id, job_id = %job.id, snapshot_id = %snapshot_id, dropped = dropped.len(), "snapshot catalogued");
        }
        Completion::Incomplete { stored, reported } => {
            tracing::warn!(host_id = %job.host_id, job_id = %job.id, snapshot_id = %snapshot_id, stored, reported, "catalog incomplete (entries lost on the way); dropped");
        }
        Completion::NotFilled => {
            tracing::debug!(host_id = %job.host_id, job_id = %job.id, "catalog job stored nothing of its own");
        }
    }
    Ok(())
}

/// Sets `--catalog-keep` (sent once at start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigureCatalog {
    pub keep: usize,
}

impl Handler<ConfigureCatalog> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: ConfigureCatalog, _ctx: &mut Self::Context) {
        self.catalog_keep = msg.keep.max(1);
    }
}

/// A running `catalog` job yields to other work: a new `catalog` job for
/// its snapshot is queued (the yielding one is cancelled by the agent).
/// Replies with the new job, `None` when none is needed.
#[derive(Message)]
#[rtype(result = "PersistResult<Option<Job>>")]
pub struct YieldCatalog {
    pub host_id: HostId,
    pub job_id: JobId,
    pub now: i64,
}

impl Handler<YieldCatalog> for Persistence {
    type Result = PersistResult<Option<Job>>;

    fn handle(&mut self, msg: YieldCatalog, _ctx: &mut Self::Context) -> Self::Result {
        self.write(
            "re-queueing a yielding catalog job",
            &msg.host_id,
            Some(&msg.job_id),
            |c| {
                store::write_transaction(c, |c| match jobs::get(c, &msg.job_id)? {
                    Some(job) if job.host_id == msg.host_id => lifecycle::requeue(c, &job, msg.now),
                    _ => Ok(None),
                })
            },
        )
    }
}
