//! Service health checks on the agent (issue 14 §1): the checks of the
//! last `health.set`, each probed on its own timer, the probes running
//! beside everything else (a [`JoinSet`] the daemon's `select!` polls;
//! nothing here blocks the loop), and the `health.report`s to send: a
//! result that changed goes out at once, all results at least every
//! [`REPORT_EVERY_SECONDS`] and after each `health.set` (so a server that
//! just greeted the agent learns the state without waiting).
//!
//! `http` checks `GET` their URL with the agent's HTTP client (redirects
//! not followed, so a 3xx counts as the answer); `tcp` checks connect.
//! Both give up after `timeout_seconds`.

use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::protocol::{
    status_ok, HealthCheckResult, HealthCheckSpec, HealthCheckType, HealthReport, HealthSet,
    REPORT_EVERY_SECONDS,
};

/// Longest error text reported.
const MAX_ERROR_LEN: usize = 300;

/// One configured check and its state.
#[derive(Debug)]
struct Check {
    spec: HealthCheckSpec,
    /// When the next probe starts (while not running).
    next_due: Instant,
    /// A probe is running.
    running: bool,
    /// The latest result.
    last: Option<HealthCheckResult>,
}

/// A finished probe: the generation of the check list it ran for, the
/// check's name and its result.
pub type ProbeDone = (u64, HealthCheckResult);

/// The agent's health checks.
#[derive(Debug)]
pub struct HealthChecks {
    checks: Vec<Check>,
    /// Probes in flight.
    probes: JoinSet<ProbeDone>,
    /// Bumped by each `health.set`; results of older lists are dropped.
    generation: u64,
    /// Built at the first http check.
    client: Option<reqwest::Client>,
    /// When all results go out again, changed or not.
    next_full_report: Instant,
}

impl Default for HealthChecks {
    fn default() -> Self {
        HealthChecks {
            checks: Vec::new(),
            probes: JoinSet::new(),
            generation: 0,
            client: None,
            next_full_report: Instant::now() + Duration::from_secs(REPORT_EVERY_SECONDS),
        }
    }
}

impl HealthChecks {
    /// Replaces the checks with `set`'s (a check whose spec is unchanged
    /// keeps its last result and timer; the others are probed now).
    /// Returns the report of the results kept, if any.
    pub fn apply(&mut self, set: &HealthSet, now: Instant) -> Option<HealthReport> {
        self.generation += 1;
        self.probes.abort_all();
        let mut old = std::mem::take(&mut self.checks);
        self.checks = set
            .checks
            .iter()
            .map(|spec| {
                let kept = old
                    .iter()
                    .position(|c| c.spec == *spec)
                    .map(|i| old.swap_remove(i));
                Check {
                    spec: spec.clone(),
                    next_due: now,
                    running: false,
                    last: kept.and_then(|c| c.last),
                }
            })
            .collect();
        tracing::info!(checks = self.checks.len(), "health checks applied");
        self.next_full_report = now + Duration::from_secs(REPORT_EVERY_SECONDS);
        self.report(|_| true)
    }

    /// When [`HealthChecks::tick`] has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        let probes = self
            .checks
            .iter()
            .filter(|c| !c.running)
            .map(|c| c.next_due)
            .min();
        let report = self
            .checks
            .iter()
            .any(|c| c.last.is_some())
            .then_some(self.next_full_report);
        probes.into_iter().chain(report).min()
    }

    /// Starts the probes that are due; returns the periodic full report
    /// when it is due.
    pub fn tick(&mut self, now: Instant) -> Option<HealthReport> {
        for i in 0..self.checks.len() {
            let check = &self.checks[i];
            if check.running || check.next_due > now {
                continue;
            }
            let spec = check.spec.clone();
            let client = match spec.kind {
                HealthCheckType::Http => self.client().ok(),
                HealthCheckType::Tcp => None,
            };
            let generation = self.generation;
            self.probes
                .spawn(async move { (generation, probe(spec, client).await) });
            self.checks[i].running = true;
        }
        if now < self.next_full_report {
            return None;
        }
        self.next_full_report = now + Duration::from_secs(REPORT_EVERY_SECONDS);
        self.report(|_| true)
    }

    /// The next finished probe (pending while none runs).
    pub async fn next_done(&mut self) -> Option<ProbeDone> {
        loop {
            match self.probes.join_next().await {
                None => return std::future::pending().await,
                Some(Ok(done)) => return Some(done),
                // Aborted by a new `health.set`: nothing to report.
                Some(Err(err)) if err.is_cancelled() => continue,
                Some(Err(err)) => {
                    tracing::error!("a health probe failed: {err}");
                    return None;
                }
            }
        }
    }

    /// A probe ended: its check waits `interval_seconds` for the next one.
    /// Returns the report to send when the result changed.
    pub fn on_done(&mut self, done: ProbeDone, now: Instant) -> Option<HealthReport> {
        let (generation, result) = done;
        if generation != self.generation {
            return None;
        }
        let check = self
            .checks
            .iter_mut()
            .find(|c| c.spec.name == result.name)?;
        check.running = false;
        check.next_due = now + Duration::from_secs(u64::from(check.spec.interval_seconds.max(1)));
        let changed = check.last.as_ref().is_none_or(|last| last.differs(&result));
        if changed {
            tracing::info!(check = %result.name, ok = result.ok, error = result.error.as_deref().unwrap_or(""), "health check result changed");
        }
        check.last = Some(result);
        let name = check.spec.name.clone();
        changed
            .then(|| self.report(|c| c.spec.name == name))
            .flatten()
    }

    /// The latest results of the checks `pick` selects, if any.
    fn report(&self, pick: impl Fn(&Check) -> bool) -> Option<HealthReport> {
        let results: Vec<HealthCheckResult> = self
            .checks
            .iter()
            .filter(|c| pick(c))
            .filter_map(|c| c.last.clone())
            .collect();
        (!results.is_empty()).then_some(HealthReport { results })
    }

    fn client(&mut self) -> Result<reqwest::Client, String> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // The services are the host's own: no proxy of the environment.
            .no_proxy()
            .user_agent(concat!(
                "restic-manager-agent/",
                env!("CARGO_PKG_VERSION"),
                " health"
            ))
            .build()
            .map_err(|e| e.to_string())?;
        self.client = Some(client.clone());
        Ok(client)
    }
}

/// Runs one probe.
async fn probe(spec: HealthCheckSpec, client: Option<reqwest::Client>) -> HealthCheckResult {
    let checked_at = Utc::now();
    let started = std::time::Instant::now();
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds.max(1)));
    let elapsed_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let outcome: Result<Option<u16>, String> = match spec.kind {
        HealthCheckType::Http => match client {
            None => Err("no HTTP client could be built".to_owned()),
            Some(client) => {
                match tokio::time::timeout(timeout, client.get(&spec.target).send()).await {
                    Err(_) => Err(format!("timed out after {} s", timeout.as_secs())),
                    // The URL may hold credentials: never in the error.
                    Ok(Err(err)) => Err(err.without_url().to_string()),
                    Ok(Ok(response)) => Ok(Some(response.status().as_u16())),
                }
            }
        },
        HealthCheckType::Tcp => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&spec.target)).await
            {
                Err(_) => Err(format!("timed out after {} s", timeout.as_secs())),
                Ok(Err(err)) => Err(err.to_string()),
                Ok(Ok(_stream)) => Ok(None),
            }
        }
    };
    let latency_ms = Some(elapsed_ms()).filter(|ms| *ms < timeout.as_millis() as u64);
    let (ok, status_code, error) = match outcome {
        Ok(None) => (true, None, None),
        Ok(Some(status)) if status_ok(spec.expect_status, status) => (true, Some(status), None),
        Ok(Some(status)) => (
            false,
            Some(status),
            Some(match spec.expect_status {
                Some(expected) => format!("HTTP status {status}, expected {expected}"),
                None => format!("HTTP status {status}, expected 200-399"),
            }),
        ),
        Err(error) => (false, None, Some(clip(error))),
    };
    HealthCheckResult {
        name: spec.name,
        ok,
        latency_ms,
        status_code,
        error,
        checked_at,
    }
}

fn clip(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(name: &str, target: String) -> HealthCheckSpec {
        HealthCheckSpec {
            name: name.to_owned(),
            kind: HealthCheckType::Tcp,
            target,
            interval_seconds: 10,
            timeout_seconds: 2,
            expect_status: None,
        }
    }

    /// The generation-current result of check `name` failing with `error`.
    fn failed(checks: &HealthChecks, name: &str, error: &str) -> ProbeDone {
        let result = HealthCheckResult {
            name: name.to_owned(),
            ok: false,
            latency_ms: None,
            status_code: None,
            error: Some(error.to_owned()),
            checked_at: Utc::now(),
        };
        (checks.generation, result)
    }

    /// A closed port: bound, then released (never connected to).
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        addr
    }

    /// A tcp check passes while something listens; only a change is
    /// reported, then the probe waits its interval; a new list drops
    /// results of the old one.
    ///
    /// The listener stays up and accepts: CI once saw a connect succeed
    /// right after a listener holding unaccepted connections was dropped,
    /// so the failing result here is fed in, and a closed port is probed
    /// on its own below.
    #[tokio::test]
    async fn tcp_check_reports_changes_only() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap().to_string();
        let acceptor = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let mut checks = HealthChecks::default();
        let now = Instant::now();
        let set = HealthSet {
            checks: vec![tcp("db", target)],
        };
        assert_eq!(checks.apply(&set, now), None);
        assert_eq!(checks.next_wake(), Some(now));
        assert_eq!(checks.tick(now), None);
        let done = checks.next_done().await.unwrap();
        let report = checks.on_done(done, now).unwrap();
        assert!(report.results[0].ok, "{report:?}");
        assert!(report.results[0].latency_ms.is_some());
        assert_eq!(checks.next_wake(), Some(now + Duration::from_secs(10)));

        // Same result again: nothing to report.
        let later = now + Duration::from_secs(10);
        checks.tick(later);
        let done = checks.next_done().await.unwrap();
        assert_eq!(checks.on_done(done, later), None);

        // A failure is a change: reported once, not again while it lasts.
        let later = later + Duration::from_secs(10);
        let report = checks
            .on_done(failed(&checks, "db", "connection refused"), later)
            .unwrap();
        assert!(!report.results[0].ok);
        assert_eq!(checks.next_wake(), Some(later + Duration::from_secs(10)));
        assert_eq!(
            checks.on_done(failed(&checks, "db", "connection refused"), later),
            None
        );

        // The same list again keeps the result (and reports it).
        let kept = checks.apply(&set, later).unwrap();
        assert_eq!(kept.results.len(), 1);
        assert!(!kept.results[0].ok);
        // A stale probe (an older generation) is ignored.
        let stale = (0, kept.results[0].clone());
        assert_eq!(checks.on_done(stale, later), None);
        acceptor.abort();
    }

    /// A tcp check against a closed port fails with the error.
    #[tokio::test]
    async fn tcp_check_fails_on_a_closed_port() {
        let result = probe(tcp("db", closed_port()), None).await;
        assert!(!result.ok, "{result:?}");
        assert_eq!(result.status_code, None);
        assert!(result.error.is_some());
    }

    /// An http check against a closed port fails without a status; the
    /// error never carries the URL (it may hold credentials).
    #[tokio::test]
    async fn http_error_hides_the_url() {
        let spec = HealthCheckSpec {
            name: "web".to_owned(),
            kind: HealthCheckType::Http,
            target: format!("http://user:s3cret@{}/health", closed_port()),
            interval_seconds: 10,
            timeout_seconds: 2,
            expect_status: None,
        };
        let mut checks = HealthChecks::default();
        let client = checks.client().ok();
        let result = probe(spec, client).await;
        assert!(!result.ok);
        assert_eq!(result.status_code, None);
        let error = result.error.unwrap();
        assert!(!error.contains("s3cret"), "{error}");
    }
}
