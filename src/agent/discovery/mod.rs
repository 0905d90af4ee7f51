//! Docker discovery (issue 13 §2): where a Docker Engine answers (the Unix
//! socket `/var/run/docker.sock`, `docker_host` / `DOCKER_HOST`, or on
//! Windows the named pipe), the agent lists the running containers through
//! the Engine API (bollard) and sends `discovery.report`: on connect, and
//! whenever Docker events change the set, at most once every
//! [`MIN_REPORT_GAP`].
//!
//! Nothing here runs on the daemon's `select!` loop: a watcher task
//! ([`Discovery::start`], aborted when the daemon drops it) holds the
//! Engine connection and its event stream, and hands finished reports to
//! the loop through a channel ([`Discovery::next`]). The loop keeps the
//! latest one and sends it after each `hello`.
//!
//! Secret values never leave the watcher: every environment variable whose
//! name holds PASSWORD, SECRET, TOKEN or KEY loses its value
//! ([`crate::protocol::EnvHint`]) before the report is built; nothing of
//! a container's environment is logged.
//!
//! # Layout
//!
//! - this file: the daemon's handle, the [`Debounce`] rule and the
//!   conversion of the Engine's answers into the report;
//! - `watch.rs`: the watcher task (connect, ping, list, events).

use std::time::Duration;

use bollard::models::{ContainerSummary, EventMessage, EventMessageTypeEnum};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::protocol::{
    ContainerPort, DatabaseType, DiscoveredContainer, DiscoveryReport, EnvHint,
    MAX_DISCOVERED_CONTAINERS, MAX_ENV_HINTS,
};

mod watch;

pub use watch::connect;

/// Shortest time between two listings (and so two reports).
pub const MIN_REPORT_GAP: Duration = Duration::from_secs(10);

/// Wait before subscribing to the Engine's events again after the stream
/// ended or failed (the Engine restarted).
pub const EVENTS_RETRY: Duration = Duration::from_secs(10);

/// Longest one listing (the list and each container's inspection) may take.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the Engine gets to answer the ping at start.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Container event actions that can change the set of running containers
/// or what the report says of one.
const CONTAINER_ACTIONS: &[&str] = &[
    "start", "restart", "die", "stop", "kill", "destroy", "rename", "pause", "unpause", "update",
    "oom",
];

/// Network event actions that change a container's networks.
const NETWORK_ACTIONS: &[&str] = &["connect", "disconnect"];

/// The daemon's side of discovery: the watcher task, if the Engine
/// answered at start, and the latest report.
#[derive(Default)]
pub struct Discovery {
    /// Reports from the watcher; `None` when discovery is off.
    reports: Option<mpsc::Receiver<DiscoveryReport>>,
    /// The latest report, sent again after every `hello`.
    latest: Option<DiscoveryReport>,
    /// The watcher; dropping the set aborts it.
    task: tokio::task::JoinSet<()>,
}

impl Discovery {
    /// Starts the watcher on a connected Engine.
    pub fn start(docker: bollard::Docker) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let mut task = tokio::task::JoinSet::new();
        task.spawn(watch::run(docker, tx));
        Discovery {
            reports: Some(rx),
            latest: None,
            task,
        }
    }

    /// The next report of the watcher (kept as the latest); pending
    /// forever when discovery is off or the watcher ended.
    pub async fn next(&mut self) -> DiscoveryReport {
        let Some(rx) = self.reports.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Some(report) => {
                self.latest = Some(report.clone());
                report
            }
            None => {
                self.reports = None;
                std::future::pending().await
            }
        }
    }

    /// The latest report, if any (sent after `hello`).
    pub fn latest(&self) -> Option<&DiscoveryReport> {
        self.latest.as_ref()
    }

    /// Whether the watcher runs.
    pub fn is_on(&self) -> bool {
        !self.task.is_empty()
    }
}

/// At most one listing every `gap`: a change seen at any time is listed
/// at once if the last listing is `gap` old, else when it will be; many
/// changes within the gap make one listing.
#[derive(Debug, Clone)]
pub struct Debounce {
    gap: Duration,
    /// When the last listing started.
    last: Option<Instant>,
    /// A change was seen since the last listing (true at start).
    dirty: bool,
}

impl Debounce {
    /// A debounce whose first listing is due at once.
    pub fn new(gap: Duration) -> Self {
        Debounce {
            gap,
            last: None,
            dirty: true,
        }
    }

    /// A change was seen.
    pub fn mark(&mut self) {
        self.dirty = true;
    }

    /// When the next listing is due: `None` while nothing changed.
    pub fn due(&self, now: Instant) -> Option<Instant> {
        if !self.dirty {
            return None;
        }
        Some(self.last.map_or(now, |last| (last + self.gap).max(now)))
    }

    /// A listing started at `now`.
    pub fn ran(&mut self, now: Instant) {
        self.dirty = false;
        self.last = Some(now);
    }
}

/// Whether an Engine event can change the report.
pub fn changes_report(event: &EventMessage) -> bool {
    let action = event.action.as_deref().unwrap_or_default();
    match event.typ {
        Some(EventMessageTypeEnum::CONTAINER) => CONTAINER_ACTIONS.contains(&action),
        Some(EventMessageTypeEnum::NETWORK) => NETWORK_ACTIONS.contains(&action),
        _ => false,
    }
}

/// A report of `containers` (each with its environment), sorted by name
/// so that two listings of the same set compare equal, and cut at
/// [`MAX_DISCOVERED_CONTAINERS`].
pub fn report_of(containers: Vec<(ContainerSummary, Vec<String>)>) -> DiscoveryReport {
    let mut containers: Vec<DiscoveredContainer> = containers
        .into_iter()
        .filter_map(|(summary, env)| container_of(summary, &env))
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    containers.truncate(MAX_DISCOVERED_CONTAINERS);
    DiscoveryReport { containers }
}

/// One container of the report; `None` without an id. `env` is the
/// container's `NAME=value` list; secret values are dropped here.
pub fn container_of(summary: ContainerSummary, env: &[String]) -> Option<DiscoveredContainer> {
    let id = summary.id.filter(|id| !id.is_empty())?;
    let name = summary
        .names
        .and_then(|names| names.into_iter().next())
        .map(|name| name.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id.chars().take(12).collect());
    let image = summary.image.unwrap_or_default();
    let mut networks: Vec<String> = summary
        .network_settings
        .and_then(|settings| settings.networks)
        .map(|networks| networks.into_keys().collect())
        .unwrap_or_default();
    networks.sort();
    let mut ports: Vec<ContainerPort> = summary
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|port| ContainerPort {
            private_port: port.private_port,
            public_port: port.public_port,
            ip: port.ip.filter(|ip| !ip.is_empty()),
            protocol: port
                .typ
                .map_or_else(|| "tcp".to_owned(), |typ| typ.to_string()),
        })
        .collect();
    ports.sort_by(|a, b| {
        (a.private_port, a.public_port, &a.ip, &a.protocol).cmp(&(
            b.private_port,
            b.public_port,
            &b.ip,
            &b.protocol,
        ))
    });
    ports.dedup();
    Some(DiscoveredContainer {
        database: DatabaseType::of_image(&image),
        id,
        name,
        image,
        state: summary
            .state
            .map_or_else(|| "running".to_owned(), |state| state.to_string()),
        networks,
        ports,
        env: env
            .iter()
            .take(MAX_ENV_HINTS)
            .map(|entry| EnvHint::of_entry(entry))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
