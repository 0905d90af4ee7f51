//! The host's config version on this connection: which `config.update`
//! went out (envelope id and version), what the agent holds, and the
//! rules of when it is (re)sent.
//!
//! - **Greeting**: `config.update` is left out only when
//!   `hello.last_known_config_version` is the current version. The agent
//!   reports a version only for settings it holds (in memory, or restored
//!   from its sealed file, which keeps the version with them); an agent
//!   that lost them (no sealed file, a file that does not open, an agent
//!   before config versions) reports none and gets the whole update, so no
//!   agent is ever left without its secrets after a restart. A version
//!   ahead of the server's (a restored database) is "not current" too.
//! - **Heartbeat**: a `config_version` other than the current one
//!   re-pushes the update, unless the current version already went out on
//!   this connection (its `ack` is on the way, or the agent refused it:
//!   sending it again every 30 s would change nothing).
//! - **Ack**: the agent's `ack` of the last update sent (matched by
//!   envelope id) is recorded by the writer; an ack of an older push or a
//!   refusal records nothing (a refusal is logged with its reason).

use actix::prelude::*;
use actix_web_actors::ws;

use super::HostSession;
use crate::actors::blocking_read;
use crate::actors::persistence::RecordConfigAck;
use crate::protocol::{self, Envelope, ServerToAgent, WireMessage};
use crate::store;

/// What this connection knows of the host's config version.
#[derive(Debug, Default)]
pub(super) struct ConfigVersion {
    /// The newest version this session loaded (greeting and every push).
    current: u64,
    /// The last `config.update` sent here: envelope id and version.
    sent: Option<(String, u64)>,
    /// Whether a re-push is being loaded (one at a time).
    loading: bool,
    /// `hello.last_known_config_version`.
    at_hello: Option<u64>,
}

impl ConfigVersion {
    /// Learns the current version from a load.
    pub(super) fn loaded(&mut self, version: u64) {
        self.current = self.current.max(version);
    }

    /// Keeps `hello.last_known_config_version` for the greeting.
    pub(super) fn hello(&mut self, reported: Option<u64>) {
        self.at_hello = reported;
    }

    /// Whether the greeting, loaded at `current`, may leave
    /// `config.update` out.
    pub(super) fn greeting_skips(&self, current: u64) -> bool {
        Self::agent_holds(self.at_hello, current)
    }

    /// Whether the greeting may leave `config.update` out: the agent
    /// holds the current version.
    fn agent_holds(reported: Option<u64>, current: u64) -> bool {
        reported == Some(current)
    }

    /// Whether `update` is to go out: not older than the last one sent.
    fn should_send(&self, update: &protocol::ConfigUpdate) -> bool {
        match (&self.sent, update.version) {
            (Some((_, sent)), Some(version)) => version >= *sent,
            _ => true,
        }
    }

    /// Whether a heartbeat's `config_version` asks for a re-push.
    pub(super) fn heartbeat_wants_push(&self, reported: Option<u64>) -> bool {
        let Some(reported) = reported else {
            return false; // an agent before config versions
        };
        let current_sent = self.sent.as_ref().is_some_and(|(_, v)| *v == self.current);
        reported != self.current && !current_sent && !self.loading
    }

    /// The version of the update whose envelope id is `correlation_id`,
    /// if it is the last one sent.
    fn acked(&self, correlation_id: &str) -> Option<u64> {
        self.sent
            .as_ref()
            .filter(|(id, _)| id == correlation_id)
            .map(|(_, version)| *version)
    }
}

impl HostSession {
    /// Sends `update` unless a newer one went out already; remembers its
    /// envelope id for the agent's `ack`.
    pub(super) fn send_config(
        &mut self,
        update: protocol::ConfigUpdate,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        // `hook_shell` only to an agent with `hooks` (issue 14 §4).
        let update = protocol::strip_config(&self.capabilities, update);
        if !self.config_version.should_send(&update) {
            tracing::debug!(host_id = %self.host_id, version = update.version, "an older config.update is not sent");
            return;
        }
        if let Some(version) = update.version {
            self.config_version.loaded(version);
        }
        let envelope = Envelope::new(ServerToAgent::from(update));
        if let ServerToAgent::ConfigUpdate(update) = &envelope.message {
            if let Some(version) = update.version {
                self.config_version.sent = Some((envelope.id.clone(), version));
            }
        }
        self.actors
            .metrics
            .message_out(envelope.message.type_name());
        ctx.text(envelope.encode());
    }

    /// A heartbeat's `config_version`: re-push when the agent is behind
    /// (module doc).
    pub(super) fn check_config_version(
        &mut self,
        reported: Option<u64>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if !self.config_version.heartbeat_wants_push(reported) {
            return;
        }
        tracing::info!(host_id = %self.host_id, reported, current = self.config_version.current, "agent reports another config version; pushing config.update again");
        self.config_version.loading = true;
        let pool = self.actors.pool.clone();
        let key = self.actors.key.clone();
        let host_id = self.host_id.clone();
        let load = async move {
            blocking_read(&pool, move |c| super::load_config(c, &key, &host_id)).await
        };
        ctx.spawn(load.into_actor(self).map(|result, act, ctx| {
            act.config_version.loading = false;
            match result {
                Ok(config) => {
                    act.config_version.loaded(config.config_version);
                    if let Some(update) = config.config {
                        act.send_config(update, ctx);
                    }
                }
                Err(e) => {
                    tracing::error!(host_id = %act.host_id, error = %e, "cannot load the configuration to push again");
                }
            }
        }));
    }

    /// The agent's `ack`: only of a `config.update` (the only frame an
    /// agent acks).
    pub(super) fn on_agent_ack(&mut self, ack: protocol::Ack) {
        let Some(version) = self.config_version.acked(&ack.correlation_id) else {
            tracing::debug!(host_id = %self.host_id, correlation_id = %ack.correlation_id, "ack of no pending config.update (an older push)");
            return;
        };
        if !ack.accepted {
            tracing::warn!(host_id = %self.host_id, version, reason = ack.reason.as_deref().unwrap_or(""), "the agent refused its config.update");
            return;
        }
        let Ok(version) = i64::try_from(version) else {
            return; // never sent: versions come from an i64 column
        };
        self.actors.persistence.do_send(RecordConfigAck {
            host_id: self.host_id.clone(),
            version,
            now: store::now_ms(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(version: u64) -> protocol::ConfigUpdate {
        protocol::ConfigUpdate {
            version: Some(version),
            ..protocol::ConfigUpdate::default()
        }
    }

    /// The greeting leaves the update out only for an agent that holds
    /// the current version: none, an older and a newer one get it.
    #[test]
    fn greeting_skips_only_the_current_version() {
        assert!(ConfigVersion::agent_holds(Some(4), 4));
        assert!(!ConfigVersion::agent_holds(None, 4));
        assert!(!ConfigVersion::agent_holds(Some(3), 4));
        assert!(!ConfigVersion::agent_holds(Some(5), 4));
    }

    /// A heartbeat behind the current version re-pushes once: not when
    /// current, not from an old agent, not again once the current version
    /// went out on this connection, not while a re-push loads.
    #[test]
    fn heartbeat_repushes_when_behind_and_not_sent() {
        let mut state = ConfigVersion::default();
        state.loaded(4);
        assert!(!state.heartbeat_wants_push(None));
        assert!(!state.heartbeat_wants_push(Some(4)));
        assert!(state.heartbeat_wants_push(Some(3)));
        state.loading = true;
        assert!(!state.heartbeat_wants_push(Some(3)));
        state.loading = false;
        state.sent = Some(("e1".to_owned(), 4));
        assert!(!state.heartbeat_wants_push(Some(3)));
        state.loaded(5);
        assert!(state.heartbeat_wants_push(Some(4)));
    }

    /// An older update is not sent over a newer one; an unversioned one
    /// always goes; versions only grow.
    #[test]
    fn older_updates_are_not_sent() {
        let mut state = ConfigVersion::default();
        assert!(state.should_send(&update(3)));
        state.sent = Some(("e1".to_owned(), 3));
        assert!(state.should_send(&update(3)));
        assert!(state.should_send(&update(4)));
        assert!(!state.should_send(&update(2)));
        assert!(state.should_send(&protocol::ConfigUpdate::default()));
        state.loaded(7);
        state.loaded(5);
        assert_eq!(state.current, 7);
    }

    /// Only an ack of the last update sent names a version.
    #[test]
    fn ack_matches_the_last_update_sent() {
        let mut state = ConfigVersion::default();
        assert_eq!(state.acked("e1"), None);
        state.sent = Some(("e2".to_owned(), 6));
        assert_eq!(state.acked("e1"), None);
        assert_eq!(state.acked("e2"), Some(6));
    }
}
