//! The fleet gauges of `/metrics` that sessions set as reports arrive
//! (issue 14): each health check's state and latency from `health.report`,
//! and each host's latest heartbeat metrics. In memory: they show what the
//! connected agents said last (empty after a restart until they report
//! again), and a check removed from a host leaves with its next push.
//!
//! Label values are host ids (UUIDs) and check names, which the API limits
//! to letters, digits and `-_.:/@ ` (no quote or backslash to escape).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};

use crate::protocol::HealthCheckResult;
use crate::store::host_metrics::{DISK_FREE, LOAD1, MEM_TOTAL, MEM_USED};

/// `{host_id, check}`.
type CheckLabels = [(&'static str, String); 2];
/// `{host_id}`.
type HostLabels = [(&'static str, String); 1];
type FloatGauge = Gauge<f64, AtomicU64>;

/// The gauges; registered once with the other in-process metrics.
#[derive(Debug, Default)]
pub struct FleetGauges {
    check_up: Family<CheckLabels, Gauge>,
    check_latency: Family<CheckLabels, FloatGauge>,
    load1: Family<HostLabels, FloatGauge>,
    mem_used: Family<HostLabels, Gauge>,
    mem_total: Family<HostLabels, Gauge>,
    disk_free: Family<HostLabels, Gauge>,
}

fn check_labels(host_id: &str, check: &str) -> CheckLabels {
    [("host_id", host_id.to_owned()), ("check", check.to_owned())]
}

impl FleetGauges {
    /// Registers every family in `registry` (prefixed `restic_manager_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "health_check_up",
            "Whether the host's service health check passed at its last probe (1) or not (0)",
            self.check_up.clone(),
        );
        registry.register(
            "health_check_latency_seconds",
            "How long the host's service health check took at its last probe",
            self.check_latency.clone(),
        );
        registry.register(
            "host_load1",
            "The host's 1-minute load average at its last heartbeat",
            self.load1.clone(),
        );
        registry.register(
            "host_memory_used_bytes",
            "The host's used memory at its last heartbeat",
            self.mem_used.clone(),
        );
        registry.register(
            "host_memory_total_bytes",
            "The host's total memory at its last heartbeat",
            self.mem_total.clone(),
        );
        registry.register(
            "host_disk_free_bytes",
            "Free bytes on the file system of the agent's state directory at its last heartbeat",
            self.disk_free.clone(),
        );
    }

    /// Results of a `health.report`.
    pub fn health_results(&self, host_id: &str, results: &[HealthCheckResult]) {
        for result in results {
            let labels = check_labels(host_id, &result.name);
            self.check_up
                .get_or_create(&labels)
                .set(i64::from(result.ok));
            match result.latency_ms {
                Some(ms) => {
                    self.check_latency
                        .get_or_create(&labels)
                        .set(ms as f64 / 1000.0);
                }
                None => {
                    self.check_latency.remove(&labels);
                }
            }
        }
    }

    /// The host's checks are now `names`: the others' gauges go.
    pub fn keep_checks(&self, host_id: &str, old: &[String], names: &[String]) {
        for gone in old.iter().filter(|n| !names.contains(n)) {
            let labels = check_labels(host_id, gone);
            self.check_up.remove(&labels);
            self.check_latency.remove(&labels);
        }
    }

    /// A heartbeat's `metrics`.
    pub fn host_metrics(&self, host_id: &str, metrics: &Map<String, Value>) {
        let labels = [("host_id", host_id.to_owned())];
        if let Some(load) = metrics.get(LOAD1).and_then(Value::as_f64) {
            self.load1.get_or_create(&labels).set(load);
        }
        let ints = [
            (MEM_USED, &self.mem_used),
            (MEM_TOTAL, &self.mem_total),
            (DISK_FREE, &self.disk_free),
        ];
        for (key, family) in ints {
            if let Some(value) = metrics
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|v| i64::try_from(v).ok())
            {
                family.get_or_create(&labels).set(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use prometheus_client::encoding::text;
    use serde_json::json;

    /// Reports and heartbeats show as labelled samples; a removed check goes.
    #[test]
    fn gauges_follow_reports() {
        let gauges = FleetGauges::default();
        let mut registry = Registry::with_prefix("restic_manager");
        gauges.register(&mut registry);
        let result = |name: &str, ok: bool| HealthCheckResult {
            name: name.to_owned(),
            ok,
            latency_ms: Some(250),
            status_code: None,
            error: None,
            checked_at: Utc::now(),
        };
        gauges.health_results("h1", &[result("web", true), result("db", false)]);
        let metrics = json!({"disk_free_bytes": 42, "load1": 0.5});
        gauges.host_metrics("h1", metrics.as_object().unwrap());
        let mut out = String::new();
        text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(r#"restic_manager_health_check_up{host_id="h1",check="web"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"restic_manager_health_check_up{host_id="h1",check="db"} 0"#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"restic_manager_health_check_latency_seconds{host_id="h1",check="web"} 0.25"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"restic_manager_host_disk_free_bytes{host_id="h1"} 42"#),
            "{out}"
        );
        assert!(
            out.contains(r#"restic_manager_host_load1{host_id="h1"} 0.5"#),
            "{out}"
        );
        gauges.keep_checks(
            "h1",
            &["web".to_owned(), "db".to_owned()],
            &["web".to_owned()],
        );
        let mut out = String::new();
        text::encode(&mut out, &registry).unwrap();
        assert!(!out.contains(r#"check="db""#), "{out}");
    }
}
