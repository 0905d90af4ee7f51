//! In-process metrics and the `/metrics` exposition, on the Prometheus
//! org's `prometheus-client` crate.
//!
//! [`Metrics`] is built once by `actors::start` and shared through `Arc`
//! (`Actors::metrics`, so also `AppState::actors`): the host sessions count
//! WebSocket sessions and messages in and out by wire type and observe job
//! durations; the persistence actor observes its log batch sizes and
//! flush lag. Each of those is an atomic update on a handle taken once at
//! start (a message counter is found by a scan of its few wire types, as
//! before, never through the registry's map); a histogram observation takes
//! the histogram's own uncontended lock, once per finished job or written
//! batch, never per message. The sessions also set the fleet gauges of
//! `fleet.rs` ([`FleetGauges`]: each health check's state and latency,
//! each host's latest load, memory and free disk) as reports arrive.
//! Everything else `/metrics` shows (hosts
//! online, jobs by kind and status, last successful backup per host and
//! group) (and the newest succeeded drill per host and group, and each host's
//! check coverage) is read from the database at scrape time and encoded by
//! [`DbSnapshot`]'s `Collector` impl.
//!
//! # Exposition format
//!
//! `prometheus-client` writes the OpenMetrics 1.0 text format only, so
//! `/metrics` is served as [`CONTENT_TYPE`]
//! (`application/openmetrics-text; version=1.0.0`) and ends with `# EOF`;
//! Prometheus chooses its parser by that content type. Every sample keeps
//! the name and labels of the earlier hand-written 0.0.4 text:
//!
//! - counters are registered under their family name
//!   (`restic_manager_messages_received`, which `# HELP` and `# TYPE` show,
//!   as OpenMetrics asks) and the encoder appends `_total` to each sample,
//!   so the series is still `restic_manager_messages_received_total{type=…}`;
//! - no metric is registered with a unit (the `_seconds` is part of the
//!   name), so there are no `# UNIT` lines and no doubled suffixes;
//! - histogram bucket bounds are written as floats (`le="60.0"`, was
//!   `le="60"`): OpenMetrics' canonical form, and what Prometheus 3 stores
//!   whichever format it scraped. Sample values are formatted by the crate
//!   too (`1767323045.0` for a whole-second gauge).
//!
//! Labels carry only host ids, source group names, job kinds and statuses
//! and message types: no hostname, no secret.

use std::fmt::{self, Write as _};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    text, DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::protocol::{AgentToServer, ServerToAgent};

mod fleet;
use crate::store::{JobKind, JobStatus};
pub use fleet::FleetGauges;

/// The prefix of every metric name.
pub const PREFIX: &str = "restic_manager";
/// The content type `/metrics` is served with (see the module doc).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the job duration histogram's buckets.
pub const JOB_DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];
/// Upper bounds (rows) of the persistence batch size histogram's buckets.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0];
/// Upper bounds (seconds) of the persistence flush lag histogram's buckets.
pub const FLUSH_LAG_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The `type` label of frames that did not decode.
pub const INVALID_TYPE: &str = "invalid";

/// A label set of one `name="value"` pair (`type`, `kind`).
type OneLabel = [(&'static str, &'static str); 1];

/// Counters for a closed set of `type` labels (the message types of one
/// direction), each handle shared with the registered family.
#[derive(Debug)]
struct TypeCounters(Vec<(&'static str, Counter)>);

impl TypeCounters {
    /// Registers the family `name` with one counter per label, all shown
    /// from the start (at 0).
    fn register(
        registry: &mut Registry,
        name: &str,
        help: &str,
        labels: Vec<&'static str>,
    ) -> Self {
        let family = Family::<OneLabel, Counter>::default();
        let counters = labels
            .into_iter()
            .map(|label| {
                let counter = Counter::clone(&family.get_or_create(&[("type", label)]));
                (label, counter)
            })
            .collect();
        registry.register(name, help, family);
        TypeCounters(counters)
    }

    fn find(&self, label: &str) -> Option<&Counter> {
        self.0.iter().find(|(l, _)| *l == label).map(|(_, c)| c)
    }

    /// Adds one to `label`; an unknown label counts as the last one.
    fn inc(&self, label: &str) {
        if let Some(counter) = self.find(label).or(self.0.last().map(|(_, c)| c)) {
            counter.inc();
        }
    }

    fn get(&self, label: &str) -> u64 {
        self.find(label).map_or(0, Counter::get)
    }
}

/// The server's in-process metrics. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    /// Every family below, registered once; [`render`] encodes it.
    registry: Registry,
    /// Open agent WebSocket sessions (upgraded, not yet stopped).
    ws_sessions: Gauge,
    /// Frames received from agents by wire type (and [`INVALID_TYPE`]).
    messages_in: TypeCounters,
    /// Frames sent to agents by wire type.
    messages_out: TypeCounters,
    /// Run time (started → finished) of jobs that finished, per kind.
    job_duration: Vec<(JobKind, Histogram)>,
    /// Log lines written per persistence batch.
    batch_rows: Histogram,
    /// Time from a batch's first buffered line to its durable write.
    flush_lag: Histogram,
    /// Health checks and host metrics as the agents report them.
    pub fleet: FleetGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn job_duration_histogram() -> Histogram {
    Histogram::new(JOB_DURATION_BUCKETS.iter().copied())
}

impl Metrics {
    pub fn new() -> Self {
        // The registry appends the full stop to each help text.
        let mut registry = Registry::with_prefix(PREFIX);

        let durations = Family::<OneLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            job_duration_histogram,
        );
        let job_duration = JobKind::ALL
            .iter()
            .map(|kind| {
                let histogram =
                    Histogram::clone(&durations.get_or_create(&[("kind", kind.as_str())]));
                (*kind, histogram)
            })
            .collect();
        registry.register(
            "job_duration_seconds",
            "Run time of jobs that finished since the server started, by kind",
            durations,
        );

        let ws_sessions = Gauge::default();
        registry.register(
            "websocket_sessions",
            "Open agent WebSocket sessions",
            ws_sessions.clone(),
        );

        let mut incoming: Vec<&'static str> = AgentToServer::TYPES.to_vec();
        incoming.push(INVALID_TYPE);
        let messages_in = TypeCounters::register(
            &mut registry,
            "messages_received",
            "Frames received from agents by message type (invalid: did not decode)",
            incoming,
        );
        let messages_out = TypeCounters::register(
            &mut registry,
            "messages_sent",
            "Frames sent to agents by message type",
            ServerToAgent::TYPES.to_vec(),
        );

        let batch_rows = Histogram::new(BATCH_SIZE_BUCKETS.iter().copied());
        registry.register(
            "persistence_batch_rows",
            "Log lines written per persistence batch",
            batch_rows.clone(),
        );
        let flush_lag = Histogram::new(FLUSH_LAG_BUCKETS.iter().copied());
        registry.register(
            "persistence_flush_lag_seconds",
            "Time from a batch's first buffered log line to its durable write",
            flush_lag.clone(),
        );

        let fleet = FleetGauges::default();
        fleet.register(&mut registry);

        Metrics {
            fleet,
            registry,
            ws_sessions,
            messages_in,
            messages_out,
            job_duration,
            batch_rows,
            flush_lag,
        }
    }

    /// A session was upgraded.
    pub fn session_opened(&self) {
        self.ws_sessions.inc();
    }

    /// A session stopped.
    pub fn session_closed(&self) {
        self.ws_sessions.dec();
    }

    /// Open sessions now.
    pub fn ws_sessions(&self) -> i64 {
        self.ws_sessions.get()
    }

    /// A frame of this wire type arrived (`INVALID_TYPE`: it did not decode).
    pub fn message_in(&self, message_type: &str) {
        self.messages_in.inc(message_type);
    }

    /// A frame of this wire type went out.
    pub fn message_out(&self, message_type: &str) {
        self.messages_out.inc(message_type);
    }

    /// Frames of this type received so far.
    pub fn messages_in(&self, message_type: &str) -> u64 {
        self.messages_in.get(message_type)
    }

    /// Frames of this type sent so far.
    pub fn messages_out(&self, message_type: &str) -> u64 {
        self.messages_out.get(message_type)
    }

    /// A job of `kind` finished after running `ran`.
    pub fn job_finished(&self, kind: JobKind, ran: Duration) {
        if let Some((_, h)) = self.job_duration.iter().find(|(k, _)| *k == kind) {
            h.observe(ran.as_secs_f64());
        }
    }

    /// The persistence actor wrote a batch of `rows` log lines, `lag` after
    /// the first of them was buffered.
    pub fn batch_written(&self, rows: usize, lag: Duration) {
        self.batch_rows.observe(rows as f64);
        self.flush_lag.observe(lag.as_secs_f64());
    }
}

/// A label value from the database, written with the text format's
/// escapes (`\\`, `\"`, `\n`): the crate writes label values as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// What `/metrics` reads from the database at scrape time; its `Collector`
/// impl encodes it as three gauge families.
#[derive(Debug, Clone, Default)]
pub struct DbSnapshot {
    pub hosts_online: i64,
    /// Jobs per (kind, status); missing pairs are 0.
    pub jobs: Vec<(JobKind, JobStatus, i64)>,
    /// (host id, source group name, finish time in Unix ms) of the latest
    /// succeeded backup.
    pub last_backups: Vec<(String, String, i64)>,
    /// (host id, source group name, finish time in Unix ms) of the newest
    /// succeeded restore drill.
    pub last_drills: Vec<(String, String, i64)>,
    /// (host id, fraction of the data read by the last n rotating checks).
    pub check_coverage: Vec<(String, f64)>,
}

impl Collector for DbSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // A collector's help is written as given, full stop included.
        let hosts = ConstGauge::new(self.hosts_online);
        hosts.encode(encoder.encode_descriptor(
            "hosts_online",
            "Hosts whose agent is connected.",
            None,
            hosts.metric_type(),
        )?)?;

        let mut jobs = encoder.encode_descriptor(
            "jobs",
            "Jobs in the database by kind and status.",
            None,
            MetricType::Gauge,
        )?;
        for kind in JobKind::ALL {
            for status in JobStatus::ALL {
                let n = self
                    .jobs
                    .iter()
                    .find(|(k, s, _)| k == kind && s == status)
                    .map_or(0, |(_, _, n)| *n);
                let labels = [("kind", kind.as_str()), ("status", status.as_str())];
                ConstGauge::new(n).encode(jobs.encode_family(&labels)?)?;
            }
        }

        let mut last = encoder.encode_descriptor(
            "last_successful_backup_timestamp_seconds",
            "Unix time of the latest succeeded backup per host and source group.",
            None,
            MetricType::Gauge,
        )?;
        for (host_id, group, at_ms) in &self.last_backups {
            let labels = [("host_id", Escaped(host_id)), ("group", Escaped(group))];
            ConstGauge::new(*at_ms as f64 / 1000.0).encode(last.encode_family(&labels)?)?;
        }

        let mut drills = encoder.encode_descriptor(
            "last_verified_restore_timestamp_seconds",
            "Unix time of the newest succeeded restore drill per host and source group.",
            None,
            MetricType::Gauge,
        )?;
        for (host_id, group, at_ms) in &self.last_drills {
            let labels = [
                ("host_id", Escaped(host_id)),
                ("source_group", Escaped(group)),
            ];
            ConstGauge::new(*at_ms as f64 / 1000.0).encode(drills.encode_family(&labels)?)?;
        }

        let mut coverage = encoder.encode_descriptor(
            "check_coverage_ratio",
            "Fraction of the repository's data subsets read by the host's last n rotating checks.",
            None,
            MetricType::Gauge,
        )?;
        for (host_id, ratio) in &self.check_coverage {
            let labels = [("host_id", Escaped(host_id))];
            ConstGauge::new(*ratio).encode(coverage.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The exposition text of `metrics` and `db`: the database's families,
/// the in-process ones, then `# EOF`. Writing to a `String` does not fail;
/// the error is the encoder's signature.
pub fn render(metrics: &Metrics, db: DbSnapshot) -> Result<String, fmt::Error> {
    let mut scrape = Registry::with_prefix(PREFIX);
    scrape.register_collector(Box::new(db));
    let mut out = String::with_capacity(8 * 1024);
    text::encode_registry(&mut out, &scrape)?;
    text::encode_registry(&mut out, &metrics.registry)?;
    text::encode_eof(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Message counters count known types by name and anything else as invalid.
    #[test]
    fn message_counters() {
        let m = Metrics::new();
        m.message_in("hello");
        m.message_in("hello");
        m.message_in("no.such.type");
        m.message_in(INVALID_TYPE);
        m.message_out("command.run");
        assert_eq!(m.messages_in("hello"), 2);
        assert_eq!(m.messages_in(INVALID_TYPE), 2);
        assert_eq!(m.messages_out("command.run"), 1);
        assert_eq!(m.messages_out("ack"), 0);
    }

    /// Sessions count up and down.
    #[test]
    fn session_gauge() {
        let m = Metrics::new();
        m.session_opened();
        m.session_opened();
        m.session_closed();
        assert_eq!(m.ws_sessions(), 1);
    }

    /// The text has HELP and TYPE for every family under today's names, zeros for missing job pairs, cumulative buckets, `_total` counter samples, escaped labels and the closing `# EOF`.
    #[test]
    fn render_families_and_escaping() {
        let m = Metrics::new();
        m.session_opened();
        m.message_in("hello");
        m.job_finished(JobKind::Backup, Duration::from_secs(42));
        m.job_finished(JobKind::Backup, Duration::from_secs(2));
        m.batch_written(120, Duration::from_millis(30));
        let db = DbSnapshot {
            hosts_online: 2,
            jobs: vec![(JobKind::Backup, JobStatus::Succeeded, 3)],
            last_backups: vec![("h1".into(), "we\"i\\r\nd".into(), 1_767_323_045_678)],
            last_drills: vec![("h1".into(), "etc".into(), 1_767_323_045_000)],
            check_coverage: vec![("h1".into(), 0.5)],
        };
        let text = render(&m, db).unwrap();
        for line in [
            "restic_manager_hosts_online 2\n",
            "restic_manager_jobs{kind=\"backup\",status=\"succeeded\"} 3\n",
            "restic_manager_jobs{kind=\"prune\",status=\"failed\"} 0\n",
            "restic_manager_job_duration_seconds_bucket{le=\"1.0\",kind=\"backup\"} 0\n",
            "restic_manager_job_duration_seconds_bucket{le=\"5.0\",kind=\"backup\"} 1\n",
            "restic_manager_job_duration_seconds_bucket{le=\"60.0\",kind=\"backup\"} 2\n",
            "restic_manager_job_duration_seconds_bucket{le=\"+Inf\",kind=\"backup\"} 2\n",
            "restic_manager_job_duration_seconds_sum{kind=\"backup\"} 44.0\n",
            "restic_manager_job_duration_seconds_count{kind=\"backup\"} 2\n",
            "restic_manager_job_duration_seconds_count{kind=\"check\"} 0\n",
            "restic_manager_last_successful_backup_timestamp_seconds{host_id=\"h1\",group=\"we\\\"i\\\\r\\nd\"} 1767323045.678\n",
            "restic_manager_last_verified_restore_timestamp_seconds{host_id=\"h1\",source_group=\"etc\"} 1767323045.0\n",
            "restic_manager_check_coverage_ratio{host_id=\"h1\"} 0.5\n",
            "restic_manager_websocket_sessions 1\n",
            "restic_manager_messages_received_total{type=\"hello\"} 1\n",
            "restic_manager_messages_received_total{type=\"invalid\"} 0\n",
            "restic_manager_messages_sent_total{type=\"command.run\"} 0\n",
            "restic_manager_persistence_batch_rows_bucket{le=\"500.0\"} 1\n",
            "restic_manager_persistence_flush_lag_seconds_count 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(text.ends_with("\n# EOF\n"), "{text}");
        for (family, kind) in [
            ("hosts_online", "gauge"),
            ("jobs", "gauge"),
            ("job_duration_seconds", "histogram"),
            ("last_successful_backup_timestamp_seconds", "gauge"),
            ("last_verified_restore_timestamp_seconds", "gauge"),
            ("check_coverage_ratio", "gauge"),
            ("websocket_sessions", "gauge"),
            ("messages_received", "counter"),
            ("messages_sent", "counter"),
            ("persistence_batch_rows", "histogram"),
            ("persistence_flush_lag_seconds", "histogram"),
        ] {
            let help = format!("# HELP restic_manager_{family} ");
            let at = text.find(&help).unwrap_or_else(|| panic!("no {help}"));
            let line = text[at..].lines().next().unwrap_or_default();
            assert!(line.ends_with('.') && !line.ends_with(".."), "{line}");
            assert!(
                text.contains(&format!("# TYPE restic_manager_{family} {kind}\n")),
                "{family}"
            );
        }
        assert!(!text.contains("# UNIT"), "{text}");
    }
}
