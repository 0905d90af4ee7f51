//! In-process metrics and their Prometheus text exposition (format
//! 0.0.4), hand-written over atomics (no metrics crate).
//!
//! [`Metrics`] is built once by `actors::start` and shared through `Arc`
//! (`Actors::metrics`, so also `AppState::actors`): the host sessions count
//! WebSocket sessions and messages in and out by wire type and observe job
//! durations; the persistence actor observes its log batch sizes and
//! flush lag. Everything else `/metrics` shows (hosts online, jobs by kind
//! and status, last successful backup per host and group) is read from
//! the database at scrape time and passed to [`render`] as a [`DbSnapshot`].
//!
//! Labels carry only host ids, source group names, job kinds and statuses
//! and message types: no hostname, no secret.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::protocol::{AgentToServer, ServerToAgent};
use crate::store::{JobKind, JobStatus};

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

/// A histogram with fixed buckets: per-bucket counts (rendered
/// cumulatively), the count and the sum of observations.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket; the last one is `+Inf`.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these (ascending) upper bounds.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation. NaN is ignored.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let index = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut current = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The sum of the observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }

    /// Writes `name_bucket`, `name_sum` and `name_count` with `labels`
    /// (`key="value"` pairs, already escaped, may be empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        // `writeln!` into a String cannot fail; the results are ignored.
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| format_float(*b));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", format_float(self.sum()));
        let _ = writeln!(out, "{name}_count{braces} {}", self.count());
    }
}

/// Counters for a closed set of labels (the message types of one direction).
#[derive(Debug)]
struct LabelledCounters {
    labels: Vec<&'static str>,
    counts: Vec<AtomicU64>,
}

impl LabelledCounters {
    fn new(labels: Vec<&'static str>) -> Self {
        let counts = labels.iter().map(|_| AtomicU64::new(0)).collect();
        LabelledCounters { labels, counts }
    }

    /// Adds one to `label`; an unknown label counts as the last one.
    fn inc(&self, label: &str) {
        let index = self
            .labels
            .iter()
            .position(|l| *l == label)
            .unwrap_or(self.labels.len().saturating_sub(1));
        if let Some(counter) = self.counts.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self, label: &str) -> u64 {
        self.labels
            .iter()
            .position(|l| *l == label)
            .and_then(|i| self.counts.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// The server's in-process metrics. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    /// Open agent WebSocket sessions (upgraded, not yet stopped).
    ws_sessions: AtomicI64,
    /// Frames received from agents by wire type (and [`INVALID_TYPE`]).
    messages_in: LabelledCounters,
    /// Frames sent to agents by wire type.
    messages_out: LabelledCounters,
    /// Run time (started → finished) of jobs that finished, per kind.
    job_duration: Vec<(JobKind, Histogram)>,
    /// Log lines written per persistence batch.
    batch_rows: Histogram,
    /// Time from a batch's first buffered line to its durable write.
    flush_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut incoming: Vec<&'static str> = AgentToServer::TYPES.to_vec();
        incoming.push(INVALID_TYPE);
        Metrics {
            ws_sessions: AtomicI64::new(0),
            messages_in: LabelledCounters::new(incoming),
            messages_out: LabelledCounters::new(ServerToAgent::TYPES.to_vec()),
            job_duration: JobKind::ALL
                .iter()
                .map(|k| (*k, Histogram::new(JOB_DURATION_BUCKETS)))
                .collect(),
            batch_rows: Histogram::new(BATCH_SIZE_BUCKETS),
            flush_lag: Histogram::new(FLUSH_LAG_BUCKETS),
        }
    }

    /// A session was upgraded.
    pub fn session_opened(&self) {
        self.ws_sessions.fetch_add(1, Ordering::Relaxed);
    }

    /// A session stopped.
    pub fn session_closed(&self) {
        self.ws_sessions.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open sessions now.
    pub fn ws_sessions(&self) -> i64 {
        self.ws_sessions.load(Ordering::Relaxed)
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

/// What `/metrics` reads from the database at scrape time.
#[derive(Debug, Clone, Default)]
pub struct DbSnapshot {
    pub hosts_online: i64,
    /// Jobs per (kind, status); missing pairs are 0.
    pub jobs: Vec<(JobKind, JobStatus, i64)>,
    /// (host id, source group name, finish time in Unix ms) of the latest
    /// succeeded backup.
    pub last_backups: Vec<(String, String, i64)>,
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A float as Prometheus writes it (`+Inf`, integers without a fraction).
fn format_float(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{value}")
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // `writeln!` into a String cannot fail; the results are ignored.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text of `metrics` and `db`.
pub fn render(metrics: &Metrics, db: &DbSnapshot) -> String {
    // `writeln!` into a String cannot fail; the results are ignored.
    let mut out = String::with_capacity(8 * 1024);

    let name = "restic_manager_hosts_online";
    header(&mut out, name, "gauge", "Hosts whose agent is connected.");
    let _ = writeln!(out, "{name} {}", db.hosts_online);

    let name = "restic_manager_jobs";
    header(
        &mut out,
        name,
        "gauge",
        "Jobs in the database by kind and status.",
    );
    for kind in JobKind::ALL {
        for status in JobStatus::ALL {
            let n = db
                .jobs
                .iter()
                .find(|(k, s, _)| k == kind && s == status)
                .map_or(0, |(_, _, n)| *n);
            let _ = writeln!(out, "{name}{{kind=\"{kind}\",status=\"{status}\"}} {n}");
        }
    }

    let name = "restic_manager_job_duration_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "Run time of jobs that finished since the server started, by kind.",
    );
    for (kind, h) in &metrics.job_duration {
        h.render(&mut out, name, &format!("kind=\"{kind}\""));
    }

    let name = "restic_manager_last_successful_backup_timestamp_seconds";
    header(
        &mut out,
        name,
        "gauge",
        "Unix time of the latest succeeded backup per host and source group.",
    );
    for (host_id, group, at_ms) in &db.last_backups {
        let _ = writeln!(
            out,
            "{name}{{host_id=\"{}\",group=\"{}\"}} {}",
            escape(host_id),
            escape(group),
            format_float(*at_ms as f64 / 1000.0)
        );
    }

    let name = "restic_manager_websocket_sessions";
    header(&mut out, name, "gauge", "Open agent WebSocket sessions.");
    let _ = writeln!(out, "{name} {}", metrics.ws_sessions());

    let name = "restic_manager_messages_received_total";
    header(
        &mut out,
        name,
        "counter",
        "Frames received from agents by message type (invalid: did not decode).",
    );
    for (label, count) in metrics
        .messages_in
        .labels
        .iter()
        .zip(&metrics.messages_in.counts)
    {
        let _ = writeln!(
            out,
            "{name}{{type=\"{label}\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }

    let name = "restic_manager_messages_sent_total";
    header(
        &mut out,
        name,
        "counter",
        "Frames sent to agents by message type.",
    );
    for (label, count) in metrics
        .messages_out
        .labels
        .iter()
        .zip(&metrics.messages_out.counts)
    {
        let _ = writeln!(
            out,
            "{name}{{type=\"{label}\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }

    let name = "restic_manager_persistence_batch_rows";
    header(
        &mut out,
        name,
        "histogram",
        "Log lines written per persistence batch.",
    );
    metrics.batch_rows.render(&mut out, name, "");

    let name = "restic_manager_persistence_flush_lag_seconds";
    header(
        &mut out,
        name,
        "histogram",
        "Time from a batch's first buffered log line to its durable write.",
    );
    metrics.flush_lag.render(&mut out, name, "");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets render cumulatively with +Inf, then sum and count.
    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 2.0, 3.0, 100.0] {
            h.observe(v);
        }
        h.observe(f64::NAN);
        let mut out = String::new();
        h.render(&mut out, "x", "k=\"v\"");
        assert_eq!(
            out,
            "x_bucket{k=\"v\",le=\"1\"} 1\nx_bucket{k=\"v\",le=\"10\"} 3\n\
             x_bucket{k=\"v\",le=\"+Inf\"} 4\nx_sum{k=\"v\"} 105.5\nx_count{k=\"v\"} 4\n"
        );
        let mut out = String::new();
        Histogram::new(&[1.0]).render(&mut out, "y", "");
        assert!(
            out.contains("y_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n"),
            "{out}"
        );
    }

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

    /// The rendered text has HELP and TYPE for every family, zeros for missing job pairs, and escaped labels.
    #[test]
    fn render_families_and_escaping() {
        let m = Metrics::new();
        m.session_opened();
        m.job_finished(JobKind::Backup, Duration::from_secs(42));
        m.batch_written(120, Duration::from_millis(30));
        let db = DbSnapshot {
            hosts_online: 2,
            jobs: vec![(JobKind::Backup, JobStatus::Succeeded, 3)],
            last_backups: vec![("h1".into(), "we\"ird".into(), 1_767_323_045_678)],
        };
        let text = render(&m, &db);
        assert!(text.contains("restic_manager_hosts_online 2\n"));
        assert!(text.contains("restic_manager_jobs{kind=\"backup\",status=\"succeeded\"} 3\n"));
        assert!(text.contains("restic_manager_jobs{kind=\"prune\",status=\"failed\"} 0\n"));
        assert!(text
            .contains("restic_manager_job_duration_seconds_bucket{kind=\"backup\",le=\"60\"} 1\n"));
        assert!(text.contains(
            "restic_manager_last_successful_backup_timestamp_seconds{host_id=\"h1\",group=\"we\\\"ird\"} 1767323045.678\n"
        ));
        assert!(text.contains("restic_manager_websocket_sessions 1\n"));
        assert!(text.contains("restic_manager_persistence_batch_rows_bucket{le=\"500\"} 1\n"));
        for family in [
            "hosts_online",
            "jobs",
            "job_duration_seconds",
            "last_successful_backup_timestamp_seconds",
            "websocket_sessions",
            "messages_received_total",
            "messages_sent_total",
            "persistence_batch_rows",
            "persistence_flush_lag_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE restic_manager_{family} ")),
                "{family}"
            );
            assert!(
                text.contains(&format!("# HELP restic_manager_{family} ")),
                "{family}"
            );
        }
    }
}
