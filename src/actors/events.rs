//! `Events`: live fan-out of what happens in the fleet (hosts coming and
//! going, job status, progress and log lines, missed runs) to subscribers
//! such as the UI's Server-Sent Events stream.
//!
//! Subscribers get a bounded channel ([`SUBSCRIBER_BUFFER`] events). A
//! publish uses `try_send`: a subscriber whose buffer is full is dropped
//! (it reconnects and reloads from the database) rather than making the
//! fleet wait or memory grow. Nothing here is durable; the database is the
//! record, events are only a live view of it.
//!
//! Browsers' streams subscribe with [`SubscribeAs`]: at most
//! [`MAX_PER_USER`] per user and [`MAX_PER_ADDRESS`] per client address, so
//! one viewer cannot take the whole [`MAX_SUBSCRIBERS`] (issue 15 B.5). A
//! subscriber whose stream went away is dropped on the next publish or
//! [`SWEEP_INTERVAL`] sweep, whichever comes first, so it stops counting
//! at once (the streams end as soon as their client does: `http::sse`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::ids::{HostId, JobId, ScheduleId};
use crate::protocol;
use crate::store::JobStatus;

/// Events buffered per subscriber before it is dropped as too slow.
pub const SUBSCRIBER_BUFFER: usize = 1024;

/// At most this many subscribers at once; more are refused (their
/// receiver is closed at once).
pub const MAX_SUBSCRIBERS: usize = 4096;
/// Live streams one user may hold at once.
pub const MAX_PER_USER: usize = 32;
/// Live streams one client address may hold at once (several users may
/// share a NAT address).
pub const MAX_PER_ADDRESS: usize = 64;
/// How often subscribers that went away are dropped without a publish.
pub const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// One live event. Serialises as `{"type": "job_status", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A host's session said `hello`.
    HostOnline { host_id: HostId },
    /// A host's session ended.
    HostOffline { host_id: HostId },
    /// A job moved to `status`.
    JobStatus {
        host_id: HostId,
        job_id: JobId,
        status: JobStatus,
        /// The error (failed) or warning (succeeded with warnings).
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The latest progress of a running job.
    JobProgress {
        host_id: HostId,
        job_id: JobId,
        progress: protocol::JobProgress,
    },
    /// One log line of a job (may repeat after an agent's replay; the
    /// `seq` tells duplicates apart).
    JobLog {
        host_id: HostId,
        job_id: JobId,
        seq: u64,
        ts: chrono::DateTime<chrono::Utc>,
        stream: protocol::LogStreamKind,
        payload: String,
    },
    /// A schedule time passed without a fire.
    MissedRun {
        host_id: HostId,
        schedule_id: ScheduleId,
        /// Unix ms.
        scheduled_at: i64,
    },
}

impl Event {
    /// The host the event is about.
    pub fn host_id(&self) -> &str {
        match self {
            Event::HostOnline { host_id }
            | Event::HostOffline { host_id }
            | Event::JobStatus { host_id, .. }
            | Event::JobProgress { host_id, .. }
            | Event::JobLog { host_id, .. }
            | Event::MissedRun { host_id, .. } => host_id,
        }
    }

    /// The job the event is about, if any.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Event::JobStatus { job_id, .. }
            | Event::JobProgress { job_id, .. }
            | Event::JobLog { job_id, .. } => Some(job_id),
            _ => None,
        }
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Everything.
    All,
    /// Events about one host (and its jobs).
    Host(String),
    /// Events about one job.
    Job(String),
    /// The fleet's state changes: hosts going online/offline, job status
    /// changes and missed runs — no log lines or progress, so a dashboard
    /// on a busy fleet is not dropped as a slow reader.
    Fleet,
}

impl EventFilter {
    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Host(host_id) => event.host_id() == host_id,
            EventFilter::Job(job_id) => event.job_id() == Some(job_id.as_str()),
            EventFilter::Fleet => {
                !matches!(event, Event::JobLog { .. } | Event::JobProgress { .. })
            }
        }
    }
}

struct Subscriber {
    filter: EventFilter,
    tx: mpsc::Sender<Arc<Event>>,
    /// Who subscribed (browsers' streams), for the per-user and
    /// per-address limits; `None` for the server's own subscribers.
    owner: Option<Owner>,
}

/// The user and client address of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user_id: String,
    pub addr: Option<String>,
}

/// The fan-out actor.
#[derive(Default)]
pub struct Events {
    /// Live subscribers; a full or closed one is removed on the next
    /// publish that concerns it.
    subscribers: Vec<Subscriber>,
    /// `subscribers.len()`, readable from other threads: sessions skip
    /// building high-rate events (log lines, progress) nobody receives.
    /// It may lag behind a subscriber that went away (it is updated when
    /// the list is), never behind one that came.
    listeners: Arc<AtomicUsize>,
}

impl Events {
    /// The subscriber count, shared (see the field's documentation).
    pub fn listeners(&self) -> Arc<AtomicUsize> {
        self.listeners.clone()
    }

    fn count_listeners(&self) {
        self.listeners
            .store(self.subscribers.len(), Ordering::Relaxed);
    }

    /// Adds a subscriber unless the server holds too many; the receiver
    /// of a refused one is closed at once.
    fn add(&mut self, filter: EventFilter, owner: Option<Owner>) -> mpsc::Receiver<Arc<Event>> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers.retain(|s| !s.tx.is_closed());
        if self.subscribers.len() >= MAX_SUBSCRIBERS {
            tracing::warn!(
                limit = MAX_SUBSCRIBERS,
                "too many event subscribers; refusing one"
            );
            // `tx` drops here: the receiver reports closed at once.
            return rx;
        }
        self.subscribers.push(Subscriber { filter, tx, owner });
        self.count_listeners();
        rx
    }
}

impl Actor for Events {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_INTERVAL, |_act, ctx| ctx.notify(Sweep));
    }
}

/// Drops the subscribers whose stream went away.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "usize")]
pub struct Sweep;

impl Handler<Sweep> for Events {
    type Result = usize;

    fn handle(&mut self, _msg: Sweep, _ctx: &mut Self::Context) -> usize {
        self.subscribers.retain(|s| !s.tx.is_closed());
        self.count_listeners();
        self.subscribers.len()
    }
}

/// Subscribe to the events that match `filter`. The receiver closes when
/// the subscriber is dropped (too slow, or too many subscribers).
#[derive(Message)]
#[rtype(result = "mpsc::Receiver<Arc<Event>>")]
pub struct Subscribe {
    pub filter: EventFilter,
}

impl Handler<Subscribe> for Events {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.add(msg.filter, None))
    }
}

/// A browser's stream subscribes for `owner`: refused past
/// [`MAX_PER_USER`] streams of the user or [`MAX_PER_ADDRESS`] of the
/// address.
#[derive(Message)]
#[rtype(result = "Result<mpsc::Receiver<Arc<Event>>, TooManyStreams>")]
pub struct SubscribeAs {
    pub filter: EventFilter,
    pub owner: Owner,
}

/// A [`SubscribeAs`] refused; the text says which limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TooManyStreams {
    #[error("this user has {MAX_PER_USER} live event streams open already; close some")]
    User,
    #[error("this address has {MAX_PER_ADDRESS} live event streams open already; close some")]
    Address,
}

impl Handler<SubscribeAs> for Events {
    type Result = Result<mpsc::Receiver<Arc<Event>>, TooManyStreams>;

    fn handle(&mut self, msg: SubscribeAs, _ctx: &mut Self::Context) -> Self::Result {
        self.subscribers.retain(|s| !s.tx.is_closed());
        let owners = || self.subscribers.iter().filter_map(|s| s.owner.as_ref());
        if owners().filter(|o| o.user_id == msg.owner.user_id).count() >= MAX_PER_USER {
            return Err(TooManyStreams::User);
        }
        if msg.owner.addr.is_some()
            && owners().filter(|o| o.addr == msg.owner.addr).count() >= MAX_PER_ADDRESS
        {
            return Err(TooManyStreams::Address);
        }
        Ok(self.add(msg.filter, Some(msg.owner)))
    }
}

/// Publish one event to every matching subscriber.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

impl Handler<Publish> for Events {
    type Result = ();

    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) {
        if self.subscribers.is_empty() {
            return;
        }
        let event = Arc::new(msg.0);
        self.subscribers.retain(|s| {
            if !s.filter.matches(&event) {
                return !s.tx.is_closed();
            }
            match s.tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!("dropping an event subscriber that is not keeping up");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.count_listeners();
    }
}

/// How many subscribers are live.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSubscribers;

impl Handler<CountSubscribers> for Events {
    type Result = usize;

    fn handle(&mut self, _msg: CountSubscribers, _ctx: &mut Self::Context) -> usize {
        self.subscribers.retain(|s| !s.tx.is_closed());
        self.count_listeners();
        self.subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(host: &str) -> Event {
        Event::HostOnline {
            host_id: host.into(),
        }
    }

    /// A subscriber gets the events its filter matches, in order.
    #[actix_web::test]
    async fn filtered_fan_out() {
        let events = Events::default().start();
        let mut all = events
            .send(Subscribe {
                filter: EventFilter::All,
            })
            .await
            .unwrap();
        let mut h2 = events
            .send(Subscribe {
                filter: EventFilter::Host("h2".into()),
            })
            .await
            .unwrap();
        events.send(Publish(online("h1"))).await.unwrap();
        events.send(Publish(online("h2"))).await.unwrap();
        assert_eq!(*all.recv().await.unwrap(), online("h1"));
        assert_eq!(*all.recv().await.unwrap(), online("h2"));
        assert_eq!(*h2.recv().await.unwrap(), online("h2"));
        assert!(h2.try_recv().is_err());
    }

    /// A subscriber that does not read is dropped once its buffer is full;
    /// the others keep receiving.
    #[actix_web::test]
    async fn slow_subscriber_is_dropped() {
        let events = Events::default().start();
        let mut slow = events
            .send(Subscribe {
                filter: EventFilter::All,
            })
            .await
            .unwrap();
        for _ in 0..=SUBSCRIBER_BUFFER {
            events.send(Publish(online("h"))).await.unwrap();
        }
        assert_eq!(events.send(CountSubscribers).await.unwrap(), 0);
        let mut received = 0;
        while slow.recv().await.is_some() {
            received += 1;
        }
        assert_eq!(received, SUBSCRIBER_BUFFER);
    }

    /// The shared listener count follows subscribers in and out, so
    /// sessions can skip events nobody would receive.
    #[actix_web::test]
    async fn listener_count_follows_subscribers() {
        let actor = Events::default();
        let listeners = actor.listeners();
        let events = actor.start();
        assert_eq!(listeners.load(Ordering::Relaxed), 0);
        let rx = events
            .send(Subscribe {
                filter: EventFilter::All,
            })
            .await
            .unwrap();
        assert_eq!(listeners.load(Ordering::Relaxed), 1);
        drop(rx);
        events.send(Publish(online("h"))).await.unwrap();
        assert_eq!(listeners.load(Ordering::Relaxed), 0);
    }

    fn owner(user: &str, addr: &str) -> Owner {
        Owner {
            user_id: user.to_owned(),
            addr: Some(addr.to_owned()),
        }
    }

    async fn subscribe_as(
        events: &Addr<Events>,
        owner: Owner,
    ) -> Result<mpsc::Receiver<Arc<Event>>, TooManyStreams> {
        events
            .send(SubscribeAs {
                filter: EventFilter::Fleet,
                owner,
            })
            .await
            .unwrap()
    }

    /// One user cannot hold more than MAX_PER_USER streams, one address
    /// more than MAX_PER_ADDRESS; a stream that went away is swept without
    /// a publish and frees its place (issue 15 B.5).
    #[actix_web::test]
    async fn streams_are_limited_per_user_and_address() {
        let events = Events::default().start();
        let mut held = Vec::new();
        for _ in 0..MAX_PER_USER {
            held.push(
                subscribe_as(&events, owner("eve", "192.0.2.1"))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            subscribe_as(&events, owner("eve", "192.0.2.2"))
                .await
                .unwrap_err(),
            TooManyStreams::User
        );
        for i in 0..(MAX_PER_ADDRESS - MAX_PER_USER) {
            let user = format!("u{i}");
            held.push(
                subscribe_as(&events, owner(&user, "192.0.2.1"))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            subscribe_as(&events, owner("zed", "192.0.2.1"))
                .await
                .unwrap_err(),
            TooManyStreams::Address
        );
        assert!(subscribe_as(&events, owner("zed", "192.0.2.9"))
            .await
            .is_ok());
        // Eve closes one stream: it is swept and she may open another.
        drop(held.remove(0));
        assert_eq!(events.send(Sweep).await.unwrap(), MAX_PER_ADDRESS - 1);
        assert!(subscribe_as(&events, owner("eve", "192.0.2.3"))
            .await
            .is_ok());
    }

    /// The job filter matches job events only.
    #[test]
    fn job_filter() {
        let filter = EventFilter::Job("j1".into());
        assert!(!filter.matches(&online("h")));
        assert!(filter.matches(&Event::JobStatus {
            host_id: "h".into(),
            job_id: "j1".into(),
            status: JobStatus::Running,
            message: None,
        }));
    }

    /// The fleet filter passes presence and status, not logs or progress.
    #[test]
    fn fleet_filter() {
        let filter = EventFilter::Fleet;
        assert!(filter.matches(&online("h")));
        assert!(filter.matches(&Event::JobStatus {
            host_id: "h".into(),
            job_id: "j1".into(),
            status: JobStatus::Failed,
            message: None,
        }));
        assert!(!filter.matches(&Event::JobLog {
            host_id: "h".into(),
            job_id: "j1".into(),
            seq: 1,
            ts: chrono::Utc::now(),
            stream: protocol::LogStreamKind::Stdout,
            payload: "x".into(),
        }));
    }
}
