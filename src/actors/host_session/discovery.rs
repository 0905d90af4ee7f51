//! `discovery.report` (issue 13 §2): the Docker containers the agent
//! found. The session bounds it (a report of more than
//! [`protocol::MAX_DISCOVERED_CONTAINERS`] containers is a bad frame and
//! is not stored; env hints past [`protocol::MAX_ENV_HINTS`] per
//! container are cut), removes any secret value an agent left in (the
//! agent removes them, this is the server's own guard), and has the
//! writer replace the host's latest report.

use std::time::Instant;

use actix_web_actors::ws;

use super::HostSession;
use crate::actors::persistence::StoreDiscovery;
use crate::protocol::{self, DiscoveryReport, EnvHint};
use crate::store;

impl HostSession {
    pub(super) fn on_discovery_report(
        &mut self,
        id: String,
        mut report: DiscoveryReport,
        ctx: &mut ws::WebsocketContext<Self>,
        now: Instant,
    ) {
        if !self.has_capability(protocol::CAPABILITY_DISCOVERY) {
            let frame = Self::bad(
                protocol::ERROR_BAD_FRAME,
                "discovery.report from an agent without the discovery capability".to_owned(),
                Some(id),
            );
            self.bad_frame(ctx, frame, now);
            return;
        }
        let count = report.containers.len();
        if count > protocol::MAX_DISCOVERED_CONTAINERS {
            tracing::warn!(host_id = %self.host_id, containers = count, "discovery report refused: too many containers");
            let frame = Self::bad(
                protocol::ERROR_BAD_FRAME,
                format!(
                    "containers: {count} containers, at most {} accepted",
                    protocol::MAX_DISCOVERED_CONTAINERS
                ),
                Some(id),
            );
            self.bad_frame(ctx, frame, now);
            return;
        }
        if sanitize(&mut report) {
            tracing::warn!(host_id = %self.host_id, "discovery report trimmed: secret values or too many env hints");
        }
        self.actors.persistence.do_send(StoreDiscovery {
            host_id: self.host_id.clone(),
            payload: report,
            now: store::now_ms(),
        });
    }
}

/// Cuts each container's env hints to [`protocol::MAX_ENV_HINTS`] and
/// drops the value of every secret variable; whether anything changed.
pub(crate) fn sanitize(report: &mut DiscoveryReport) -> bool {
    let mut changed = false;
    for container in &mut report.containers {
        if container.env.len() > protocol::MAX_ENV_HINTS {
            container.env.truncate(protocol::MAX_ENV_HINTS);
            changed = true;
        }
        for hint in &mut container.env {
            if hint.value.is_some() && protocol::is_secret_name(&hint.name) {
                *hint = EnvHint {
                    name: std::mem::take(&mut hint.name),
                    value: None,
                };
                changed = true;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DiscoveredContainer;

    /// A secret value an agent left in is dropped; hints are bounded.
    #[test]
    fn sanitize_drops_secret_values_and_bounds_hints() {
        let container = DiscoveredContainer {
            id: "a".to_owned(),
            name: "db".to_owned(),
            image: "postgres".to_owned(),
            state: "running".to_owned(),
            networks: vec![],
            ports: vec![],
            database: None,
            env: vec![
                EnvHint {
                    name: "POSTGRES_PASSWORD".to_owned(),
                    value: Some("leaked".to_owned()),
                },
                EnvHint::new("POSTGRES_DB", "shop"),
            ],
        };
        let mut report = DiscoveryReport {
            containers: vec![container.clone()],
        };
        assert!(sanitize(&mut report));
        assert_eq!(report.containers[0].env[0].value, None);
        assert_eq!(report.containers[0].env[1].value.as_deref(), Some("shop"));
        assert!(!sanitize(&mut report), "clean now");

        let mut many = DiscoveryReport {
            containers: vec![DiscoveredContainer {
                env: (0..protocol::MAX_ENV_HINTS + 3)
                    .map(|i| EnvHint::new(&format!("V{i}"), "x"))
                    .collect(),
                ..container
            }],
        };
        assert!(sanitize(&mut many));
        assert_eq!(many.containers[0].env.len(), protocol::MAX_ENV_HINTS);
    }
}
