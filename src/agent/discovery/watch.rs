//! The watcher task: one Engine connection, its event stream, and the
//! listings the [`Debounce`] lets through; a report goes to the daemon
//! only when the set differs from the one sent last.

use std::collections::HashMap;

use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptions};
use bollard::Docker;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    changes_report, report_of, Debounce, EVENTS_RETRY, LIST_TIMEOUT, MIN_REPORT_GAP, PING_TIMEOUT,
};
use crate::agent::runner::sleep_until_opt;
use crate::protocol::{DiscoveryReport, MAX_DISCOVERED_CONTAINERS};

type Events = BoxStream<'static, Result<bollard::models::EventMessage, bollard::errors::Error>>;

/// The Engine at `host` (a `unix://`, `npipe://`, `tcp://` or `http://`
/// URL), else at `DOCKER_HOST`, else at the platform's default socket or
/// pipe, if it answers a ping within [`PING_TIMEOUT`].
pub async fn connect(host: Option<&str>) -> Option<Docker> {
    let docker = match host {
        Some(host) => Docker::connect_with_host(host),
        None => Docker::connect_with_defaults(),
    };
    let docker = match docker {
        Ok(docker) => docker,
        Err(err) => {
            tracing::debug!("no Docker Engine: {err}");
            return None;
        }
    };
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Some(docker),
        Ok(Err(err)) => {
            tracing::debug!("the Docker Engine does not answer: {err}");
            None
        }
        Err(_) => {
            tracing::debug!("the Docker Engine did not answer within {PING_TIMEOUT:?}");
            None
        }
    }
}

/// Watches the Engine until the daemon drops the receiver.
pub(super) async fn run(docker: Docker, reports: mpsc::Sender<DiscoveryReport>) {
    let mut debounce = Debounce::new(MIN_REPORT_GAP);
    let mut sent: Option<DiscoveryReport> = None;
    let mut events: Option<Events> = None;
    let mut subscribe_at = Some(Instant::now());
    let mut subscribed_before = false;
    loop {
        let due = debounce.due(Instant::now());
        tokio::select! {
            () = sleep_until_opt(subscribe_at) => {
                subscribe_at = None;
                events = Some(subscribe(&docker));
                if subscribed_before {
                    // Changes while no stream was open went unseen.
                    debounce.mark();
                }
                subscribed_before = true;
            }
            event = next_event(&mut events) => match event {
                Some(Ok(event)) => {
                    if changes_report(&event) {
                        debounce.mark();
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!("Docker events failed: {err}; subscribing again in {EVENTS_RETRY:?}");
                    events = None;
                    subscribe_at = Some(Instant::now() + EVENTS_RETRY);
                }
                None => {
                    tracing::info!("Docker events ended; subscribing again in {EVENTS_RETRY:?}");
                    events = None;
                    subscribe_at = Some(Instant::now() + EVENTS_RETRY);
                }
            },
            () = sleep_until_opt(due) => {
                debounce.ran(Instant::now());
                let report = match tokio::time::timeout(LIST_TIMEOUT, list(&docker)).await {
                    Ok(Ok(report)) => report,
                    Ok(Err(err)) => {
                        tracing::warn!("cannot list Docker containers: {err}");
                        debounce.mark();
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!("listing Docker containers took over {LIST_TIMEOUT:?}");
                        debounce.mark();
                        continue;
                    }
                };
                if sent.as_ref() == Some(&report) {
                    continue;
                }
                tracing::info!(containers = report.containers.len(), "Docker containers discovered");
                if reports.send(report.clone()).await.is_err() {
                    return;
                }
                sent = Some(report);
            }
        }
    }
}

fn subscribe(docker: &Docker) -> Events {
    let filters = HashMap::from([("type", vec!["container", "network"])]);
    let options = EventsOptionsBuilder::default().filters(&filters).build();
    docker.events(Some(options)).boxed()
}

async fn next_event(
    events: &mut Option<Events>,
) -> Option<Result<bollard::models::EventMessage, bollard::errors::Error>> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// The running containers, each inspected for its environment.
async fn list(docker: &Docker) -> Result<DiscoveryReport, bollard::errors::Error> {
    let summaries = docker
        .list_containers(None::<ListContainersOptions>)
        .await?;
    if summaries.len() > MAX_DISCOVERED_CONTAINERS {
        tracing::warn!(
            containers = summaries.len(),
            "more running containers than a report holds; the first {MAX_DISCOVERED_CONTAINERS} by name are sent"
        );
    }
    let mut containers = Vec::with_capacity(summaries.len());
    for summary in summaries {
        let env = match summary.id.as_deref() {
            Some(id) if !id.is_empty() => match docker.inspect_container(id, None).await {
                Ok(inspect) => inspect.config.and_then(|c| c.env).unwrap_or_default(),
                // Gone since the list: the next event lists again.
                Err(err) => {
                    tracing::debug!(container = id, "cannot inspect a container: {err}");
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        containers.push((summary, env));
    }
    Ok(report_of(containers))
}
