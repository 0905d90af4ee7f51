//! The session's part of the snapshot catalog: `catalog.chunk`s go to the
//! writer in batches (counted into the shared backlog, so a fast agent is
//! slowed by TCP back-pressure rather than growing memory), a
//! `snapshots.report`'s new `catalog` jobs join the queue, and a `catalog`
//! job in flight yields to other work: it is re-queued as a new job (the
//! writer creates it) and stopped with `command.cancel`.

use actix::prelude::*;
use actix_web_actors::ws;

use super::{HostSession, QueuedJob};
use crate::actors::events::Event;
use crate::actors::persistence::{AppendCatalog, YieldCatalog};
use crate::protocol;
use crate::store;
use crate::store::models::Job;

impl HostSession {
    /// `catalog.chunk`: handed to the writer (buffered there).
    pub(super) fn on_catalog_chunk(
        &mut self,
        chunk: protocol::CatalogChunk,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.actors.log_backlog.add(chunk.entries.len());
        self.actors.persistence.do_send(AppendCatalog {
            host_id: self.host_id.clone(),
            chunk,
        });
        self.pause_if_backlogged(ctx);
    }

    /// `catalog` jobs a `snapshots.report` created: published and queued
    /// (they go out only when nothing else waits).
    pub(super) fn queue_catalog_jobs(&mut self, jobs: Vec<Job>) {
        for job in jobs {
            tracing::info!(host_id = %self.host_id, job_id = %job.id, snapshot_id = job.snapshot_id.as_deref().unwrap_or(""), "catalog job queued");
            self.publish(Event::JobStatus {
                host_id: job.host_id.clone(),
                job_id: job.id.clone(),
                status: job.status,
                message: None,
            });
            self.queue.enqueue(QueuedJob::of(&job));
        }
    }

    /// If a `catalog` job is in flight while other work waits: stop it
    /// (`command.cancel`) and have the writer queue it again.
    /// An agent without `cancel` cannot stop it: the other work waits.
    pub(super) fn yield_catalog_if_needed(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.has_capability(protocol::CAPABILITY_CANCEL) {
            return;
        }
        let Some(job_id) = self.queue.to_yield() else {
            return;
        };
        tracing::info!(host_id = %self.host_id, job_id = %job_id, "catalog job yields to other work");
        self.send(
            ctx,
            protocol::CommandCancel {
                job_id: job_id.clone(),
            },
        );
        let requeue = self.actors.persistence.send(YieldCatalog {
            host_id: self.host_id.clone(),
            job_id: job_id.into(),
            now: store::now_ms(),
        });
        ctx.spawn(requeue.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(Some(job))) => {
                act.queue_catalog_jobs(vec![job]);
                act.dispatch_next(ctx);
            }
            Ok(Ok(None)) => {}
            Ok(Err(_)) => {} // logged by the writer; the next report queues it again
            Err(e) => tracing::error!(host_id = %act.host_id, error = %e, "persistence unavailable"),
        }));
    }
}
