//! `Registry`: which host has a live session, and its address.
//!
//! HTTP handlers and the scheduler find a host's session here. Each
//! session carries a serial number: a second session for the same host
//! replaces the first (which is told it was [`Superseded`]), and the
//! first session's later `Unregister` is ignored because its serial no
//! longer matches, so it cannot mark the host offline under the new one.
//! Presence is decided here: only the current session's end marks the
//! host offline.
//!
//! The map itself is a [`Directory`]: only this actor changes it, and
//! anyone holding a clone (`Actors`, the scheduler) reads it in place, so
//! finding a host's session costs a read lock, not a round trip through
//! this actor's mailbox (a thread hop on the system arbiter per run-now).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use actix::prelude::*;

use super::events::{Event, Events, Publish};
use super::host_session::{CheckIdle, HostSession, ShuttingDown, Superseded};
use super::persistence::{MarkOffline, Persistence};
use crate::ids::HostId;

/// Host id → (session serial, session address), shared read-only with
/// whoever needs a host's session; written only by the [`Registry`].
/// Lock sections are a map lookup or update, never an await.
#[derive(Clone, Default)]
pub struct Directory(Arc<RwLock<Sessions>>);

/// Host id → (session serial, session address).
type Sessions = HashMap<String, (u64, Addr<HostSession>)>;

impl Directory {
    /// The live session of a host, if any.
    pub fn get(&self, host_id: &str) -> Option<Addr<HostSession>> {
        // A panic elsewhere cannot leave the map half-changed (each change
        // is one insert or remove), so a poisoned lock is still good.
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(host_id).map(|(_, addr)| addr.clone())
    }

    /// Whether the host has a live session.
    pub fn is_online(&self, host_id: &str) -> bool {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.contains_key(host_id)
    }

    /// How many hosts have a live session.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True when no host has a live session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (u64, Addr<HostSession>)>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every live session's address.
    fn all(&self) -> Vec<Addr<HostSession>> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.values().map(|(_, addr)| addr.clone()).collect()
    }
}

/// The session directory's owner.
pub struct Registry {
    /// host id → (session serial, session address).
    sessions: Directory,
    persistence: Addr<Persistence>,
    events: Addr<Events>,
}

impl Registry {
    pub fn new(persistence: Addr<Persistence>, events: Addr<Events>) -> Self {
        Registry {
            sessions: Directory::default(),
            persistence,
            events,
        }
    }

    /// A reader's handle on the map this registry keeps.
    pub fn directory(&self) -> Directory {
        self.sessions.clone()
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

/// A session said `hello` for `host_id`; it becomes the host's session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub host_id: HostId,
    pub serial: u64,
    pub addr: Addr<HostSession>,
}

impl Handler<Register> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Register, _ctx: &mut Self::Context) {
        let replaced = self
            .sessions
            .map()
            .insert(msg.host_id.to_string(), (msg.serial, msg.addr));
        if let Some((old_serial, old)) = replaced {
            if old_serial != msg.serial {
                tracing::info!(host_id = %msg.host_id, "a new session supersedes the old one");
                old.do_send(Superseded);
            }
        }
    }
}

/// A session ended. Ignored unless it is still the host's current session;
/// otherwise the host is marked offline.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub host_id: HostId,
    pub serial: u64,
}

impl Handler<Unregister> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _ctx: &mut Self::Context) {
        {
            let mut map = self.sessions.map();
            let current =
                matches!(map.get(msg.host_id.as_str()), Some((serial, _)) if *serial == msg.serial);
            if !current {
                return;
            }
            map.remove(msg.host_id.as_str());
        }
        // Sent from here, before any later Register of this host is
        // handled, so the new session's hello write comes after it.
        self.persistence.do_send(MarkOffline {
            host_id: msg.host_id.clone(),
            now: crate::store::now_ms(),
        });
        self.events.do_send(Publish(Event::HostOffline {
            host_id: msg.host_id,
        }));
    }
}

/// How many hosts have a live session (presence count).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountOnline;

impl Handler<CountOnline> for Registry {
    type Result = usize;

    fn handle(&mut self, _msg: CountOnline, _ctx: &mut Self::Context) -> usize {
        self.sessions.len()
    }
}

/// Ask every live session to check its heartbeat deadline against `now`
/// (sessions also check on their own timer; this lets tests drive time).
/// Replies with the number of sessions asked.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SweepIdle {
    pub now: Instant,
}

impl Handler<SweepIdle> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: SweepIdle, _ctx: &mut Self::Context) -> usize {
        let sessions = self.sessions.all();
        for addr in &sessions {
            addr.do_send(CheckIdle { now: msg.now });
        }
        sessions.len()
    }
}

/// The server is stopping: every registered session closes with 1001.
/// Replies with the number of sessions told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

impl Handler<CloseAll> for Registry {
    type Result = usize;

    fn handle(&mut self, _msg: CloseAll, _ctx: &mut Self::Context) -> usize {
        let sessions = self.sessions.all();
        for addr in &sessions {
            addr.do_send(ShuttingDown);
        }
        sessions.len()
    }
}
