//! The session's part of issue 14: `health.set` goes only to an agent that
//! declared the `health` capability; `health.report` results of the
//! configured checks go to the writer (buffered) and to the `/metrics`
//! gauges; a heartbeat's `metrics` go to the gauges at once and to the
//! writer as at most one point per host and minute (15,000 agents
//! heartbeating every 30 s make 250 rows/s, not 500).

use actix_web_actors::ws;
use serde_json::{Map, Value};

use super::HostSession;
use crate::actors::persistence::{RecordHealth, RecordHostMetrics};
use crate::protocol;
use crate::store::host_metrics::MetricPoint;

/// What a session knows of its host's checks and metrics.
#[derive(Debug, Default)]
pub(super) struct HealthState {
    /// The agent declared `health` in its `hello`.
    pub(super) capable: bool,
    /// The names of the checks last pushed (reports of others are dropped).
    checks: Vec<String>,
    /// The minute (Unix ms / 60,000) of the last metric point sent to the
    /// writer.
    last_minute: Option<i64>,
}

impl HostSession {
    /// Sends `health.set` to a capable agent (always, even empty: that
    /// stops the checks it runs).
    pub(super) fn push_health(
        &mut self,
        set: protocol::HealthSet,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let names: Vec<String> = set.checks.iter().map(|c| c.name.clone()).collect();
        self.actors
            .metrics
            .fleet
            .keep_checks(&self.host_id, &self.health.checks, &names);
        self.health.checks = names;
        if self.health.capable {
            self.send(ctx, set);
        }
    }

    /// `health.report`: the results of checks the host has.
    pub(super) fn on_health_report(&mut self, mut report: protocol::HealthReport) {
        let checks = &self.health.checks;
        let before = report.results.len();
        report.results.retain(|r| checks.contains(&r.name));
        if report.results.len() < before {
            tracing::debug!(host_id = %self.host_id, dropped = before - report.results.len(), "health results of checks the host does not have");
        }
        if report.results.is_empty() {
            return;
        }
        self.actors
            .metrics
            .fleet
            .health_results(&self.host_id, &report.results);
        self.actors.persistence.do_send(RecordHealth {
            host_id: self.host_id.clone(),
            payload: report,
        });
    }

    /// A heartbeat's `metrics`, received at `now` (Unix ms).
    pub(super) fn on_host_metrics(&mut self, metrics: &Map<String, Value>, now: i64) {
        if metrics.is_empty() {
            return;
        }
        self.actors
            .metrics
            .fleet
            .host_metrics(&self.host_id, metrics);
        let minute = now.div_euclid(60_000);
        if self.health.last_minute == Some(minute) {
            return;
        }
        if let Some(point) = MetricPoint::of_heartbeat(&self.host_id, metrics, now) {
            self.health.last_minute = Some(minute);
            self.actors.persistence.do_send(RecordHostMetrics(point));
        }
    }
}
