//! The writer's health and host-metric writes (issue 14): `health.report`
//! results and heartbeat metric points, both `do_send` and buffered like
//! the other high-rate writes. Health results go out on the next tick,
//! one transaction for all hosts, with their `health.down`/`health.up`
//! notifications; metric points (at most one per host per minute, the
//! session sees to it) go out every [`METRICS_FLUSH_INTERVAL`] or at
//! [`METRICS_FLUSH_POINTS`], as multi-row inserts.
//!
//! On PostgreSQL the points are written beside the writer, by a thread of
//! their own ([`PointWriter`]) on a pooled connection: a flush of 10,000
//! agents' points took the writer 11-15 ms every two seconds there (about
//! 10 µs a row, half of it the foreign key's check), and every run-now and
//! ack behind it waited (issue 19: the dispatch p99). PostgreSQL takes
//! concurrent writers, and the points are independent rows, kept or
//! ignored as they come. On SQLite, which has one writer, a second one
//! would only wait for the write lock, so the writer writes them itself.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{PersistError, Persistence};
use crate::ids::HostId;
use crate::notify;
use crate::protocol;
use crate::store::health::{self, HealthResultRow};
use crate::store::host_metrics::{self, MetricPoint};
use crate::store::{self, notifications, Pool};

/// How often buffered metric points are written.
pub const METRICS_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// Buffered points that trigger a write without waiting for the interval.
pub const METRICS_FLUSH_POINTS: usize = 2_000;
/// Buffered health results past which new ones are dropped (logged) while
/// the database is failing.
const MAX_BUFFERED_RESULTS: usize = 50_000;
/// Batches of points the [`PointWriter`] holds while it writes one; past
/// them the writer writes a batch itself (the database is behind).
const POINT_BATCHES_QUEUED: usize = 4;

/// The writer's buffers of this file.
#[derive(Debug)]
pub(super) struct HealthBuffers {
    /// `health.report` results, in arrival order, per host.
    results: Vec<(String, Vec<protocol::HealthCheckResult>)>,
    /// Results buffered in `results`.
    result_count: usize,
    /// Metric points waiting.
    points: Vec<MetricPoint>,
    /// When points were last written.
    last_points_write: Instant,
    /// Who writes the points.
    point_writer: PointSink,
}

/// Who writes the metric points.
#[derive(Debug)]
enum PointSink {
    /// Not known yet: the backend is read from the writer's connection at
    /// the first flush.
    Undecided,
    /// The writer, in its turn (SQLite, or when the thread failed to start).
    Writer,
    /// The [`PointWriter`] thread (PostgreSQL).
    Thread(PointWriter),
}

impl Default for HealthBuffers {
    fn default() -> Self {
        HealthBuffers {
            results: Vec::new(),
            result_count: 0,
            points: Vec::new(),
            last_points_write: Instant::now(),
            point_writer: PointSink::Undecided,
        }
    }
}

impl Persistence {
    /// Writes buffered health results (every tick) and metric points
    /// (when due; `force` for every one).
    pub(super) fn flush_health(&mut self, force: bool) {
        self.flush_health_results();
        let due = self.health.points.len() >= METRICS_FLUSH_POINTS
            || self.health.last_points_write.elapsed() >= METRICS_FLUSH_INTERVAL;
        if !self.health.points.is_empty() && (force || due) {
            self.flush_points();
        }
    }

    fn flush_health_results(&mut self) {
        if self.health.results.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.health.results);
        let count = std::mem::take(&mut self.health.result_count);
        let result = self.db.run(|c| {
            Ok::<_, PersistError>(store::write_transaction(c, |c| {
                let policies = health::policies_with_checks(c)?;
                for (host_id, results) in &batch {
                    let configured: Vec<protocol::HealthCheckSpec> =
                        health::effective_checks_with(c, host_id, &policies)?
                            .into_iter()
                            .map(|check| check.spec)
                            .collect();
                    for result in results {
                        let row = HealthResultRow::of(host_id, result);
                        if health::record_result(c, &row, &configured)? {
                            let event =
                                notify::health_event(host_id, &row.name, !row.ok, row.checked_at);
                            notifications::emit(c, &event)?;
                        }
                    }
                }
                Ok::<_, diesel::result::Error>(())
            })?)
        });
        if let Err(e) = result {
            // The agent reports again on the next change and within 5
            // minutes anyway; keep the batch for the next tick meanwhile.
            tracing::warn!(error = %e, results = count, "writing health results failed; will retry");
            if count < MAX_BUFFERED_RESULTS {
                let newer = std::mem::replace(&mut self.health.results, batch);
                self.health.results.extend(newer);
                self.health.result_count += count;
            }
        }
    }

    fn flush_points(&mut self) {
        let points = std::mem::take(&mut self.health.points);
        self.health.last_points_write = Instant::now();
        if matches!(self.health.point_writer, PointSink::Undecided) {
            self.start_point_writer();
        }
        let points = match &self.health.point_writer {
            PointSink::Thread(thread) => match thread.send(points) {
                Ok(()) => return,
                Err(points) => points,
            },
            PointSink::Undecided | PointSink::Writer => points,
        };
        let result = self
            .db
            .run(|c| Ok::<_, PersistError>(host_metrics::insert_batch(c, &points)?));
        if let Err(e) = result {
            warn_points_lost(&e, points.len());
        }
    }

    /// Starts the [`PointWriter`] on PostgreSQL (see the module's
    /// documentation), once the writer's connection tells the backend; on
    /// SQLite the writer keeps writing the points.
    fn start_point_writer(&mut self) {
        let concurrent = self
            .db
            .run(|c| Ok::<_, PersistError>(store::writes_concurrently(c)));
        match concurrent {
            Ok(false) => self.health.point_writer = PointSink::Writer,
            Ok(true) => match PointWriter::start(self.pool.clone()) {
                Ok(thread) => self.health.point_writer = PointSink::Thread(thread),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the host-metrics thread; the writer writes the points");
                    self.health.point_writer = PointSink::Writer;
                }
            },
            // No connection: asked again at the next flush.
            Err(_) => {}
        }
    }

    /// Stops the [`PointWriter`] after it has written what it was handed.
    pub(super) fn stop_point_writer(&mut self) {
        self.health.point_writer = PointSink::Writer;
    }
}

/// A failed write of points: a gap in a chart, not a lost fact (the next
/// minute's point comes anyway).
fn warn_points_lost(error: &dyn std::fmt::Display, points: usize) {
    tracing::warn!(error = %error, points, "writing host metrics failed");
}

/// The thread that writes metric points beside the writer (PostgreSQL).
/// Dropping it stops the thread once it has written every batch handed
/// to it.
#[derive(Debug)]
pub(super) struct PointWriter {
    batches: Option<SyncSender<Vec<MetricPoint>>>,
    thread: Option<JoinHandle<()>>,
}

impl PointWriter {
    fn start(pool: Pool) -> std::io::Result<PointWriter> {
        let (batches, received) = mpsc::sync_channel::<Vec<MetricPoint>>(POINT_BATCHES_QUEUED);
        let thread = std::thread::Builder::new()
            .name("host-metrics".into())
            .spawn(move || {
                for points in received.iter() {
                    let mut conn = match pool.get() {
                        Ok(conn) => conn,
                        Err(e) => {
                            // No connection within the pool's timeout: the
                            // batches waiting are dropped with this one,
                            // so that a stop while the database is away
                            // waits for one timeout, not one per batch.
                            let waiting: usize = received.try_iter().map(|b| b.len()).sum();
                            warn_points_lost(&e, points.len() + waiting);
                            continue;
                        }
                    };
                    if let Err(e) = host_metrics::insert_batch(&mut conn, &points) {
                        warn_points_lost(&e, points.len());
                    }
                }
            })?;
        Ok(PointWriter {
            batches: Some(batches),
            thread: Some(thread),
        })
    }

    /// Hands `points` to the thread; gives them back when it holds
    /// [`POINT_BATCHES_QUEUED`] batches already (or has stopped).
    fn send(&self, points: Vec<MetricPoint>) -> Result<(), Vec<MetricPoint>> {
        let Some(batches) = &self.batches else {
            return Err(points);
        };
        batches.try_send(points).map_err(|e| match e {
            TrySendError::Full(points) | TrySendError::Disconnected(points) => points,
        })
    }
}

impl Drop for PointWriter {
    fn drop(&mut self) {
        self.batches.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the host-metrics thread panicked");
            }
        }
    }
}

/// `health.report` from a host's session (buffered).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordHealth {
    pub host_id: HostId,
    pub payload: protocol::HealthReport,
}

impl Handler<RecordHealth> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordHealth, _ctx: &mut Self::Context) {
        if self.health.result_count >= MAX_BUFFERED_RESULTS {
            tracing::warn!(host_id = %msg.host_id, "health results dropped: the writer is behind");
            return;
        }
        self.health.result_count += msg.payload.results.len();
        self.health
            .results
            .push((msg.host_id.into_string(), msg.payload.results));
    }
}

/// A host's metric point of one minute (buffered).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordHostMetrics(pub MetricPoint);

impl Handler<RecordHostMetrics> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: RecordHostMetrics, _ctx: &mut Self::Context) {
        self.health.points.push(msg.0);
        if self.health.points.len() >= METRICS_FLUSH_POINTS {
            self.flush_points();
        }
    }
}
