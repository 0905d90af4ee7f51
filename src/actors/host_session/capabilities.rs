//! What this session may send its agent (issue 14 §4): the capabilities
//! of its `hello` (protocol 1's set when it declared none), the gate every
//! outgoing message passes, the refusal of a queued job the agent cannot
//! run, and the one `agent.update_available` of the session.

use std::sync::{Arc, Mutex};

use actix_web_actors::ws;

use super::{HostSession, QueuedJob};
use crate::agent_release::AgentAge;
use crate::protocol::{self, ServerToAgent};

impl HostSession {
    /// Takes the capabilities and the version of `hello`: what the session
    /// may send from now on, and whether an update notice is due.
    pub(super) fn take_hello_facts(&mut self, hello: &protocol::Hello) {
        self.capabilities = interned(protocol::effective_capabilities(
            hello.capabilities.as_deref(),
        ));
        self.health.capable = self.has_capability(protocol::CAPABILITY_HEALTH);
        let release = &self.actors.config.agent_release;
        self.update_notice = match release.age(&hello.agent_version) {
            AgentAge::Older => Some(Box::new(release.notice())),
            AgentAge::Current => None,
            AgentAge::Unparsable(e) => {
                tracing::warn!(host_id = %self.host_id, agent_version = %hello.agent_version, error = %e,
                    "agent version is not a semantic version; no update notice");
                None
            }
        };
    }

    /// Whether the agent declared `capability`.
    pub(super) fn has_capability(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// The capability `message` needs that the agent lacks, if any: such a
    /// message is never sent (callers refuse earlier; this is the last
    /// guard).
    pub(super) fn missing_for(&self, message: &ServerToAgent) -> Option<String> {
        let required = protocol::message_capabilities(message);
        protocol::first_missing(&self.capabilities, &required).map(str::to_owned)
    }

    /// Why a queued job is not sent: its kind or an option needs a
    /// capability the agent lacks (a catalog job of an agent without
    /// `catalog`, a job queued before the agent was replaced by an older
    /// one). The job fails with this reason.
    pub(super) fn capability_refusal(&self, job: &QueuedJob) -> Option<String> {
        let required = protocol::run_capabilities(&job.run);
        protocol::first_missing(&self.capabilities, &required).map(|missing| {
            format!(
                "agent_lacks_capability: the agent of host {} lacks capability {missing:?} \
                 (not in its hello.capabilities); a {} job was not sent",
                self.host_id, job.run.kind
            )
        })
    }

    /// Sends the session's `agent.update_available`, once.
    pub(super) fn send_update_notice(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(notice) = self.update_notice.take() {
            tracing::info!(host_id = %self.host_id, latest_version = %notice.latest_version, "telling the agent an update is available");
            self.send(ctx, *notice);
        }
    }
}

/// Distinct capability lists kept for sharing; past this many, a list is
/// held by its session alone.
const INTERNED_LISTS: usize = 64;

/// `list`, shared with every other session that declared the same one.
/// A fleet's agents declare a handful of distinct lists between them;
/// held per session, a list is a vector and a string per capability, a few
/// hundred bytes of every idle connection (issue 10 §8). The lock is held
/// for a comparison of short lists, never across an await or I/O.
pub(super) fn interned(list: Vec<String>) -> Arc<[String]> {
    static LISTS: Mutex<Vec<Arc<[String]>>> = Mutex::new(Vec::new());
    let mut lists = LISTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(shared) = lists.iter().find(|shared| ***shared == *list) {
        return Arc::clone(shared);
    }
    let shared: Arc<[String]> = list.into();
    if lists.len() < INTERNED_LISTS {
        lists.push(Arc::clone(&shared));
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_lists_are_shared_and_different_ones_are_not() {
        let list = |items: &[&str]| items.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        let a = interned(list(&["cancel", "test-interned-a"]));
        let b = interned(list(&["cancel", "test-interned-a"]));
        let c = interned(list(&["test-interned-a", "cancel"]));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c), "order is kept as declared");
        assert_eq!(&*c, &list(&["test-interned-a", "cancel"])[..]);
    }
}
