//! Requests that a REST handler puts to a host's agent through its
//! session, answered later by the agent's own frames: live listings
//! (`catalog.list` → `catalog.listing`) and downloads (`download.start` →
//! `download.ready`). One piece of plumbing serves both:
//!
//! - on the HTTP side, [`ask`] sends the session a message carrying a
//!   [`Reply`] channel and waits a bounded time for the answer; a session
//!   that is gone, or that ends before answering (it drops the channel),
//!   is [`AskError::Offline`], no answer in time is [`AskError::Timeout`];
//! - on the session side, [`InFlight`] keeps the requests waiting for the
//!   agent by request id, at most a given number, and routes each answer
//!   frame to its request by that id.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::HostSession;

/// Where a request's answer goes.
pub type Reply<T> = oneshot::Sender<T>;

/// Why [`ask`] got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskError {
    /// The host has no session, or it ended before answering.
    Offline,
    /// No answer within the time given.
    Timeout,
}

/// Sends `session` the message `request` builds around a reply channel,
/// and waits at most `timeout` for the answer.
pub async fn ask<M, T>(
    session: &Addr<HostSession>,
    timeout: Duration,
    request: impl FnOnce(Reply<T>) -> M,
) -> Result<T, AskError>
where
    M: Message<Result = ()> + Send + 'static,
    HostSession: Handler<M>,
{
    let (reply, answer) = oneshot::channel();
    session
        .send(request(reply))
        .await
        .map_err(|_| AskError::Offline)?;
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(answer)) => Ok(answer),
        // The session ended and dropped the channel.
        Ok(Err(_)) => Err(AskError::Offline),
        Err(_elapsed) => Err(AskError::Timeout),
    }
}

/// A request waiting in [`InFlight`].
pub trait Waiting {
    /// Whether nobody waits for it any more, so that it may be forgotten
    /// to make room (default: never; such requests end explicitly).
    fn abandoned(&self) -> bool {
        false
    }
}

/// The session's requests in flight, by request id, at most `limit`
/// (the default has no limit of its own: downloads are bounded by the
/// HTTP connections that wait for them).
pub struct InFlight<S> {
    by_id: HashMap<String, S>,
    limit: usize,
}

impl<S> Default for InFlight<S> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            limit: usize::MAX,
        }
    }
}

impl<S: Waiting> InFlight<S> {
    /// At most `limit` requests at once.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            by_id: HashMap::new(),
            limit,
        }
    }

    /// Registers a request under `id` after forgetting abandoned ones;
    /// gives the state back when `limit` are still in flight.
    pub fn insert(&mut self, id: String, state: S) -> Result<(), S> {
        self.by_id.retain(|_, waiting| !waiting.abandoned());
        if self.by_id.len() >= self.limit {
            return Err(state);
        }
        self.by_id.insert(id, state);
        Ok(())
    }

    /// The request an answer frame names (`None`: unknown, finished, or
    /// abandoned; an abandoned one is forgotten here).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut S> {
        if self.by_id.get(id).is_some_and(Waiting::abandoned) {
            self.by_id.remove(id);
        }
        self.by_id.get_mut(id)
    }

    /// Whether `id` is in flight.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Ends a request.
    pub fn remove(&mut self, id: &str) -> Option<S> {
        self.by_id.remove(id)
    }

    /// Ends every request (the agent's connection is gone).
    pub fn drain(&mut self) -> impl Iterator<Item = S> + '_ {
        self.by_id.drain().map(|(_, waiting)| waiting)
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe(Reply<()>);

    impl Waiting for Probe {
        fn abandoned(&self) -> bool {
            self.0.is_closed()
        }
    }

    /// The limit holds; an abandoned request frees its place and is not
    /// routed to.
    #[test]
    fn limit_and_abandoned_requests() {
        let mut in_flight = InFlight::with_limit(2);
        let (a, a_rx) = oneshot::channel();
        let (b, _b_rx) = oneshot::channel();
        let (c, _c_rx) = oneshot::channel();
        assert!(in_flight.insert("a".into(), Probe(a)).is_ok());
        assert!(in_flight.insert("b".into(), Probe(b)).is_ok());
        let Err(Probe(c)) = in_flight.insert("c".into(), Probe(c)) else {
            panic!("a third request was accepted");
        };
        drop(a_rx);
        assert!(in_flight.get_mut("a").is_none(), "abandoned");
        assert!(in_flight.insert("c".into(), Probe(c)).is_ok());
        assert_eq!(in_flight.len(), 2);
        assert!(in_flight.contains("b") && in_flight.contains("c"));
        assert_eq!(in_flight.drain().count(), 2);
        assert!(in_flight.is_empty());
    }
}
