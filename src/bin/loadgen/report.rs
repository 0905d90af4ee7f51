//! The figures a scenario ends with: latency summaries (nearest-rank
//! percentiles) and the one output line of `key=value` pairs that starts
//! with `scenario=<name> agents=<N>`. Pure code, no I/O.

use std::fmt::Write as _;
use std::time::Duration;

/// One value of the output line.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A measured quantity, printed with a fixed number of decimals.
    Float { value: f64, decimals: usize },
    /// A word (scenario name, signal, …); must not contain spaces.
    Text(String),
}

/// The output line, built field by field in the order they are added.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    fields: Vec<(String, Value)>,
}

impl Report {
    /// A line starting `scenario=<name> agents=<agents>`.
    pub fn new(scenario: &str, agents: usize) -> Self {
        let mut report = Report { fields: Vec::new() };
        report.text("scenario", scenario);
        report.int("agents", agents as u64);
        report
    }

    /// Adds a count.
    pub fn int(&mut self, key: &str, value: u64) -> &mut Self {
        self.fields.push((key.to_owned(), Value::Int(value)));
        self
    }

    /// Adds a quantity with `decimals` decimals.
    pub fn float(&mut self, key: &str, value: f64, decimals: usize) -> &mut Self {
        self.fields
            .push((key.to_owned(), Value::Float { value, decimals }));
        self
    }

    /// Adds seconds with three decimals.
    pub fn seconds(&mut self, key: &str, value: Duration) -> &mut Self {
        self.float(key, value.as_secs_f64(), 3)
    }

    /// Adds a word; spaces become `_` so the line stays splittable.
    pub fn text(&mut self, key: &str, value: &str) -> &mut Self {
        self.fields.push((
            key.to_owned(),
            Value::Text(value.replace(char::is_whitespace, "_")),
        ));
        self
    }

    /// Adds `<prefix>_p50_ms`, `<prefix>_p99_ms`, `<prefix>_max_ms` (and
    /// the sample count as `<prefix>_n`); nothing but the count when there
    /// are no samples.
    pub fn latency(&mut self, prefix: &str, summary: Option<&Summary>) -> &mut Self {
        match summary {
            Some(s) => {
                self.int(&format!("{prefix}_n"), s.count as u64);
                self.float(&format!("{prefix}_p50_ms"), ms(s.p50), 2);
                self.float(&format!("{prefix}_p99_ms"), ms(s.p99), 2);
                self.float(&format!("{prefix}_max_ms"), ms(s.max), 2);
            }
            None => {
                self.int(&format!("{prefix}_n"), 0);
            }
        }
        self
    }

    /// The line: `key=value` pairs separated by single spaces.
    pub fn line(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            // Writing to a String cannot fail.
            let _ = match value {
                Value::Int(v) => write!(out, "{key}={v}"),
                Value::Float { value, decimals } if value.is_finite() => {
                    write!(out, "{key}={value:.decimals$}")
                }
                Value::Float { .. } => write!(out, "{key}=nan"),
                Value::Text(v) => write!(out, "{key}={v}"),
            };
        }
        out
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 / p99 / max of a set of latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Summarises `samples` (any order); `None` when empty.
pub fn summarize(samples: &mut [Duration]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some(Summary {
        count: samples.len(),
        p50: percentile(samples, 50.0)?,
        p99: percentile(samples, 99.0)?,
        max: *samples.last()?,
    })
}

/// The nearest-rank `p`-th percentile of `sorted` (ascending): the
/// smallest sample such that at least `p` % of the samples are at or
/// below it. `None` for no samples or `p` outside `(0, 100]`.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest rank: p50 of 1..=10 is 5, p99 is 10, p10 is 1; of one
    /// sample every percentile is that sample; out-of-range p is refused.
    #[test]
    fn nearest_rank_percentiles() {
        let data: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&data, 50.0), Some(5));
        assert_eq!(percentile(&data, 99.0), Some(10));
        assert_eq!(percentile(&data, 10.0), Some(1));
        assert_eq!(percentile(&data, 100.0), Some(10));
        assert_eq!(percentile(&[7], 1.0), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        assert_eq!(percentile(&data, 0.0), None);
        assert_eq!(percentile(&data, 101.0), None);
        let hundred: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&hundred, 99.0), Some(990));
    }

    /// A summary sorts its input and reports count, p50, p99 and max.
    #[test]
    fn summary_of_unsorted_samples() {
        let mut samples: Vec<Duration> = [30, 10, 20, 40]
            .iter()
            .map(|&m| Duration::from_millis(m))
            .collect();
        let s = summarize(&mut samples).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!(s.p50, Duration::from_millis(20));
        assert_eq!(s.p99, Duration::from_millis(40));
        assert_eq!(s.max, Duration::from_millis(40));
        assert_eq!(summarize(&mut []), None);
    }

    /// The line starts with scenario and agents, keeps the order fields
    /// were added in, prints fixed decimals and never contains a space
    /// inside a value.
    #[test]
    fn output_line_format() {
        let mut r = Report::new("connect", 1000);
        r.int("online", 1000)
            .seconds("seconds", Duration::from_millis(1234))
            .float("rss_per_agent_kib", 45.678, 1)
            .text("note", "two words")
            .float("bad", f64::NAN, 2);
        assert_eq!(
            r.line(),
            "scenario=connect agents=1000 online=1000 seconds=1.234 rss_per_agent_kib=45.7 note=two_words bad=nan"
        );
        let mut lat = Report::new("dispatch", 10);
        let mut samples = vec![Duration::from_micros(1500), Duration::from_micros(2500)];
        lat.latency("latency", summarize(&mut samples).as_ref())
            .latency("empty", None);
        assert_eq!(
            lat.line(),
            "scenario=dispatch agents=10 latency_n=2 latency_p50_ms=1.50 latency_p99_ms=2.50 latency_max_ms=2.50 empty_n=0"
        );
    }
}
