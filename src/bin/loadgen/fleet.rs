//! A fleet of simulated agents in this process: their credentials, the
//! state they share with the scenario (atomics, so thousands of agents
//! never wait on each other), and launching / stopping them.
//!
//! Agent `i` connects from loopback address `127.0.0.(1 + i % k)`, so the
//! ephemeral ports of one source address never run out. First connections
//! pass a semaphore of `connect_concurrency` permits held until the agent
//! is greeted, so a cold start measures the server rather than the
//! kernel's SYN retry timers; reconnections do not (a restart's herd is
//! part of what `reconnect` measures).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::agent::{self, AgentConfig};

/// How often waits poll the shared counters.
const POLL: Duration = Duration::from_millis(10);

/// An enrolled host's id and agent token.
#[derive(Clone)]
pub struct Credentials {
    pub host_id: String,
    pub token: String,
}

/// Parses `host_id<TAB>agent_token` lines (`restic-manager host
/// bulk-enroll --output`); blank lines are skipped.
pub fn parse_hosts_file(text: &str) -> anyhow::Result<Vec<Credentials>> {
    let mut hosts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((host_id, token)) = line.split_once('\t') else {
            bail!("line {}: expected host_id<TAB>agent_token", n + 1);
        };
        if host_id.is_empty() || token.trim().is_empty() {
            bail!("line {}: empty host id or token", n + 1);
        }
        hosts.push(Credentials {
            host_id: host_id.to_owned(),
            token: token.trim().to_owned(),
        });
    }
    Ok(hosts)
}

/// Per-agent state the scenario reads.
#[derive(Default)]
pub struct Slot {
    /// Greeted on its current connection (or, against the bare baseline,
    /// connected and `hello` sent).
    pub online: AtomicBool,
    /// Latest `schedule.set` version received.
    pub schedule_version: AtomicU64,
    /// When it arrived, µs since [`Shared::epoch`].
    pub schedule_at_us: AtomicU64,
    /// Latest version this agent answered with `schedule.ack`.
    pub acked_version: AtomicU64,
    /// Log lines of the current streaming job flushed to the socket.
    pub stream_seq: AtomicU64,
    /// The job being streamed (for lag samples).
    pub stream_job: Mutex<Option<String>>,
    /// `job.finished` frames waiting for the server's `ack`.
    pub outbox: AtomicUsize,
    /// Connections that reached the greeting.
    pub sessions: AtomicU64,
}

/// State shared by all agents and the scenario.
pub struct Shared {
    /// Time base of the `*_us` fields.
    pub epoch: Instant,
    pub slots: Vec<Slot>,
    /// Agents online now.
    pub online: AtomicUsize,
    /// Failed connection attempts (refused, timed out, HTTP error).
    pub connect_errors: AtomicU64,
    /// Sessions that ended without being asked to stop.
    pub sessions_lost: AtomicU64,
    /// `error` frames received from the server.
    pub error_frames: AtomicU64,
    /// `command.run` frames received.
    pub runs_received: AtomicU64,
    /// `log.stream` frames flushed to sockets.
    pub lines_sent: AtomicU64,
    /// When the first and the latest log line were flushed, µs since
    /// [`Shared::epoch`] (0: none yet).
    pub first_line_us: AtomicU64,
    pub last_line_us: AtomicU64,
    /// `job.finished` results created, and how many the server acked.
    pub results_created: AtomicU64,
    pub results_acked: AtomicU64,
    /// Results created while the agent had no connection (outbox only).
    pub results_offline: AtomicU64,
    /// When set, each `command.run` is recorded with its arrival time.
    pub record_runs: AtomicBool,
    pub runs: Mutex<Vec<(String, Instant)>>,
    /// Connect → greeted, of each agent's first connection.
    pub first_online: Mutex<Vec<Duration>>,
    /// Gates first connections (see the module documentation).
    pub connect_gate: Arc<Semaphore>,
}

impl Shared {
    fn new(agents: usize, connect_concurrency: usize) -> Self {
        Shared {
            epoch: Instant::now(),
            slots: (0..agents).map(|_| Slot::default()).collect(),
            online: AtomicUsize::new(0),
            connect_errors: AtomicU64::new(0),
            sessions_lost: AtomicU64::new(0),
            error_frames: AtomicU64::new(0),
            runs_received: AtomicU64::new(0),
            lines_sent: AtomicU64::new(0),
            first_line_us: AtomicU64::new(0),
            last_line_us: AtomicU64::new(0),
            results_created: AtomicU64::new(0),
            results_acked: AtomicU64::new(0),
            results_offline: AtomicU64::new(0),
            record_runs: AtomicBool::new(false),
            runs: Mutex::new(Vec::new()),
            first_online: Mutex::new(Vec::new()),
            connect_gate: Arc::new(Semaphore::new(connect_concurrency.max(1))),
        }
    }

    /// µs since [`Shared::epoch`].
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant `us` µs after the epoch.
    pub fn instant_at(&self, us: u64) -> Instant {
        self.epoch + Duration::from_micros(us)
    }

    /// Pending outbox entries over all agents.
    pub fn outbox_total(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.outbox.load(Ordering::Relaxed))
            .sum()
    }

    /// Takes the recorded `command.run` arrivals.
    pub fn take_runs(&self) -> Vec<(String, Instant)> {
        match self.runs.lock() {
            Ok(mut runs) => std::mem::take(&mut *runs),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// First-connection latencies so far.
    pub fn first_online_latencies(&self) -> Vec<Duration> {
        match self.first_online.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Running agents.
pub struct Fleet {
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Starts one task per host; they connect at once (through the gate).
    pub fn launch(
        hosts: Vec<Credentials>,
        config: AgentConfig,
        source_addresses: usize,
        connect_concurrency: usize,
    ) -> Fleet {
        let shared = Arc::new(Shared::new(hosts.len(), connect_concurrency));
        let hosts = Arc::new(hosts);
        let config = Arc::new(config);
        let (stop, stop_rx) = watch::channel(false);
        let k = source_addresses.clamp(1, 250);
        let tasks = (0..hosts.len())
            .map(|i| {
                let source = Ipv4Addr::new(127, 0, 0, 1 + (i % k) as u8);
                tokio::spawn(agent::run(
                    i,
                    hosts.clone(),
                    source,
                    config.clone(),
                    shared.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        Fleet {
            shared,
            stop,
            tasks,
        }
    }

    /// Agents online now.
    pub fn online(&self) -> usize {
        self.shared.online.load(Ordering::Relaxed)
    }

    /// Waits until `pred` holds (polled), or fails after `timeout`;
    /// returns how long it took.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Shared) -> bool,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if pred(&self.shared) {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= timeout {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `n` agents are online.
    pub async fn wait_online(&self, n: usize, timeout: Duration) -> anyhow::Result<Duration> {
        self.wait_for(&format!("{n} agents online"), timeout, |s| {
            s.online.load(Ordering::Relaxed) >= n
        })
        .await
        .with_context(|| {
            format!(
                "{} online, {} connection errors",
                self.online(),
                self.shared.connect_errors.load(Ordering::Relaxed)
            )
        })
    }

    /// Asks every agent to close its connection and waits for them.
    pub async fn stop(self) {
        // Err: every receiver is gone, i.e. every agent already ended.
        let _ = self.stop.send(true);
        for task in self.tasks {
            // A panicked agent task has nothing left to clean up.
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bulk-enrol file parses into credentials; blank lines are
    /// skipped and a malformed line is an error naming it.
    #[test]
    fn parses_hosts_file() {
        let hosts = parse_hosts_file("h1\tt1\n\nh2\tt2\r\n").unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[1].host_id, "h2");
        assert_eq!(hosts[1].token, "t2");
        let err = parse_hosts_file("h1\tt1\nnot-a-pair\n").err().unwrap();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse_hosts_file("\tt\n").is_err());
    }
}
