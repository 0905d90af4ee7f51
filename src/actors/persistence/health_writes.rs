//! The writer's health and host-metric writes (issue 14): `health.report`
//! results and heartbeat metric points, both `do_send` and buffered like
//! the other high-rate writes. Health results go out on the next tick,
//! one transaction for all hosts, with their `health.down`/`health.up`
//! notifications; metric points (at most one per host per minute, the
//! session sees to it) go out every [`METRICS_FLUSH_INTERVAL`] or at
//! [`METRICS_FLUSH_POINTS`], as multi-row inserts.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::{PersistError, Persistence};
use crate::ids::HostId;
use crate::notify;
use crate::protocol;
use crate::store::health::{self, HealthResultRow};
use crate::store::host_metrics::{self, MetricPoint};
use crate::store::{self, notifications};

/// How often buffered metric points are written.
pub const METRICS_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// Buffered points that trigger a write without waiting for the interval.
pub const METRICS_FLUSH_POINTS: usize = 2_000;
/// Buffered health results past which new ones are dropped (logged) while
/// the database is failing.
const MAX_BUFFERED_RESULTS: usize = 50_000;

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
}

impl Default for HealthBuffers {
    fn default() -> Self {
        HealthBuffers {
            results: Vec::new(),
            result_count: 0,
            points: Vec::new(),
            last_points_write: Instant::now(),
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
        let result = self
            .db
            .run(|c| Ok::<_, PersistError>(host_metrics::insert_batch(c, &points)?));
        if let Err(e) = result {
            // A gap in a chart, not a lost fact: the next minute's point
            // comes anyway.
            tracing::warn!(error = %e, points = points.len(), "writing host metrics failed");
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
