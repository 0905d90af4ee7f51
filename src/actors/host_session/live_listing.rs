//! Live listing of one directory of a snapshot that is not catalogued:
//! the REST handler sends the session [`ListDirectory`] with a reply
//! channel, the session sends `catalog.list` with a fresh request id, and
//! the agent's `catalog.listing` frames (one or more, the last `done`)
//! are gathered here and answered through the channel.
//!
//! Bounded: at most [`MAX_PENDING_LISTINGS`] listings per session and
//! [`MAX_LIVE_ENTRIES`] entries per listing. A requester that gave up
//! (its channel closed after the API's deadline) is forgotten at the next
//! frame of its listing; a session that ends drops every channel, which
//! the requester sees as the host going offline. The plumbing (requests
//! by id, waiting with a deadline) is [`super::requests`].

use actix::prelude::*;

use super::requests::{InFlight, Reply, Waiting};
use super::{HostSession, Phase};
use crate::protocol::{self, CatalogEntry, CatalogListing};

/// Live listings one session has in flight at most.
pub const MAX_PENDING_LISTINGS: usize = 16;

/// Entries one live listing may hold (a bigger folder is refused: the
/// catalog shows it once made).
pub const MAX_LIVE_ENTRIES: usize = 100_000;

/// Why a live listing gave no entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// The host has no ready session.
    #[error("the host is not connected")]
    Offline,
    /// Too many listings in flight on this host.
    #[error("{MAX_PENDING_LISTINGS} live listings are already running on this host; try again")]
    Busy,
    /// The folder is larger than [`MAX_LIVE_ENTRIES`].
    #[error("the folder has more than {MAX_LIVE_ENTRIES} entries; browse it once the snapshot is catalogued")]
    TooLarge,
    /// The agent could not list it (unknown snapshot, restic error).
    #[error("{0}")]
    Agent(String),
    /// The agent did not declare `catalog` (it would not answer).
    #[error(transparent)]
    LacksCapability(#[from] crate::store::models::LacksCapability),
}

/// Where a listing's answer goes.
pub type ListingReply = Reply<Result<Vec<CatalogEntry>, ListingError>>;

struct Pending {
    reply: ListingReply,
    entries: Vec<CatalogEntry>,
}

impl Waiting for Pending {
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The session's listings in flight, by request id.
pub struct PendingListings(InFlight<Pending>);

impl Default for PendingListings {
    fn default() -> Self {
        Self(InFlight::with_limit(MAX_PENDING_LISTINGS))
    }
}

impl PendingListings {
    /// Registers a listing; returns its request id, or gives the reply
    /// back with the error when too many are in flight.
    pub fn start(&mut self, reply: ListingReply) -> Result<String, (ListingReply, ListingError)> {
        let request_id = protocol::new_message_id();
        let pending = Pending {
            reply,
            entries: Vec::new(),
        };
        match self.0.insert(request_id.clone(), pending) {
            Ok(()) => Ok(request_id),
            Err(pending) => Err((pending.reply, ListingError::Busy)),
        }
    }

    /// One `catalog.listing` frame: gathered, and answered when done (or
    /// failed, or too large). Frames of unknown or abandoned requests are
    /// dropped.
    pub fn on_listing(&mut self, listing: CatalogListing) {
        let CatalogListing {
            request_id,
            entries,
            done,
            error,
        } = listing;
        let Some(pending) = self.0.get_mut(&request_id) else {
            return;
        };
        let outcome = if let Some(error) = error {
            Some(Err(ListingError::Agent(error)))
        } else if pending.entries.len() + entries.len() > MAX_LIVE_ENTRIES {
            Some(Err(ListingError::TooLarge))
        } else {
            pending.entries.extend(entries);
            done.then(|| Ok(std::mem::take(&mut pending.entries)))
        };
        if let Some(outcome) = outcome {
            if let Some(pending) = self.0.remove(&request_id) {
                // The requester may have given up just now; nothing to do.
                let _ = pending.reply.send(outcome);
            }
        }
    }

    /// Listings in flight.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// List one directory of a snapshot through the agent (`catalog.list`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ListDirectory {
    /// restic's full snapshot id.
    pub snapshot_id: String,
    /// The directory, absolute.
    pub path: String,
    pub reply: ListingReply,
}

impl Handler<ListDirectory> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: ListDirectory, ctx: &mut Self::Context) {
        if self.phase != Phase::Ready {
            // The requester may have given up already.
            let _ = msg.reply.send(Err(ListingError::Offline));
            return;
        }
        if !self.has_capability(protocol::CAPABILITY_CATALOG) {
            let lacks = crate::store::models::LacksCapability {
                host_id: self.host_id.to_string(),
                capability: protocol::CAPABILITY_CATALOG.to_owned(),
            };
            // The requester may have given up already.
            let _ = msg.reply.send(Err(lacks.into()));
            return;
        }
        match self.listings.start(msg.reply) {
            Ok(request_id) => {
                tracing::debug!(host_id = %self.host_id, request_id = %request_id, snapshot_id = %msg.snapshot_id, "live listing");
                self.send(
                    ctx,
                    protocol::CatalogList {
                        request_id,
                        snapshot_id: msg.snapshot_id,
                        path: msg.path,
                    },
                );
            }
            Err((reply, error)) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    fn entry(path: &str) -> CatalogEntry {
        CatalogEntry {
            path: path.to_owned(),
            kind: "file".to_owned(),
            size: Some(1),
            mtime: None,
            mode: None,
        }
    }

    fn listing(id: &str, entries: Vec<CatalogEntry>, done: bool) -> CatalogListing {
        CatalogListing {
            request_id: id.to_owned(),
            entries,
            done,
            error: None,
        }
    }

    /// Frames of one listing are gathered until `done`, then answered.
    #[test]
    fn frames_are_gathered_until_done() {
        let mut listings = PendingListings::default();
        let (tx, mut rx) = oneshot::channel();
        let id = listings.start(tx).unwrap();
        listings.on_listing(listing(&id, vec![entry("/a")], false));
        assert!(rx.try_recv().is_err(), "not done yet");
        listings.on_listing(listing("other", vec![entry("/x")], true));
        listings.on_listing(listing(&id, vec![entry("/b")], true));
        let got = rx.try_recv().unwrap().unwrap();
        assert_eq!(got, vec![entry("/a"), entry("/b")]);
        assert!(listings.is_empty());
    }

    /// An agent error is answered as such.
    #[test]
    fn agent_error_is_answered() {
        let mut listings = PendingListings::default();
        let (tx, mut rx) = oneshot::channel();
        let id = listings.start(tx).unwrap();
        listings.on_listing(CatalogListing {
            error: Some("snapshot x not found".to_owned()),
            ..listing(&id, vec![], true)
        });
        assert_eq!(
            rx.try_recv().unwrap(),
            Err(ListingError::Agent("snapshot x not found".to_owned()))
        );
    }

    /// At most [`MAX_PENDING_LISTINGS`] at once; abandoned ones free
    /// their place.
    #[test]
    fn listings_are_bounded() {
        let mut listings = PendingListings::default();
        let mut receivers = Vec::new();
        for _ in 0..MAX_PENDING_LISTINGS {
            let (tx, rx) = oneshot::channel();
            listings.start(tx).unwrap();
            receivers.push(rx);
        }
        let (tx, _rx) = oneshot::channel();
        let Err((_, error)) = listings.start(tx) else {
            panic!("one too many was accepted");
        };
        assert_eq!(error, ListingError::Busy);
        receivers.pop(); // a requester gives up
        let (tx, _rx) = oneshot::channel();
        assert!(listings.start(tx).is_ok());
        assert_eq!(listings.len(), MAX_PENDING_LISTINGS);
    }

    /// A folder past [`MAX_LIVE_ENTRIES`] is refused, not held.
    #[test]
    fn oversized_listing_is_refused() {
        let mut listings = PendingListings::default();
        let (tx, mut rx) = oneshot::channel();
        let id = listings.start(tx).unwrap();
        let many = (0..=MAX_LIVE_ENTRIES)
            .map(|i| entry(&format!("/f{i}")))
            .collect();
        listings.on_listing(listing(&id, many, false));
        assert_eq!(rx.try_recv().unwrap(), Err(ListingError::TooLarge));
        assert!(listings.is_empty());
    }
}
