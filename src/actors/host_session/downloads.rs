//! The session's part of snapshot downloads: it relays between the HTTP
//! response of `GET /hosts/{id}/snapshots/{snapshot_id}/download` and the
//! agent (PROTOCOL.md "Downloads").
//!
//! [`StartDownload`] carries the HTTP side's ends: a bounded channel for
//! the bytes, a [`DownloadEnd`] slot saying how the stream ended, and a
//! oneshot answered by `download.ready` (or by a `download.end` that comes
//! first, or by the session's end). The session then puts each binary data
//! frame into the channel with `try_send`: the agent may only send as many
//! frames as it was granted credits ([`DOWNLOAD_WINDOW`] at the start,
//! then one per frame the HTTP client took, see [`GrantCredit`]), so a full
//! channel is the agent's fault and fails the download. The bytes past the
//! server's `--max-download-bytes` are not relayed: the download is cut
//! (`download.cancel` to the agent, [`DownloadOutcome::Cut`] for the HTTP
//! side). A client that goes away sends [`CancelDownload`].
//!
//! So the server holds at most [`DOWNLOAD_WINDOW`] × 64 KiB (2 MiB) of
//! data per download, however slow the client.

use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_web_actors::ws;
use tokio::sync::mpsc;

use super::requests::{InFlight, Reply, Waiting};
use super::{HostSession, Phase};
use crate::protocol::{self, DownloadErrorCode};

/// Data frames the agent may send ahead of the client (the channel's
/// capacity): 32 × 64 KiB = 2 MiB per download.
pub const DOWNLOAD_WINDOW: u32 = 32;

/// How a download's byte stream ended, set once by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadOutcome {
    /// Every byte was relayed.
    Complete,
    /// The agent (restic) failed after the first byte.
    Failed(String),
    /// `--max-download-bytes` was reached.
    Cut,
    /// The agent's connection ended.
    AgentGone,
}

/// The slot the session fills when a download's stream ends.
pub type DownloadEnd = Arc<OnceLock<DownloadOutcome>>;

/// Why a download did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRefused {
    /// The session is not (or no longer) ready for requests.
    Offline,
    /// The agent refused or failed before the first byte.
    Agent {
        code: DownloadErrorCode,
        error: String,
    },
}

/// The answer to [`StartDownload`]: the agent's `download.ready`.
pub type ReadyReply = Result<protocol::DownloadReady, StartRefused>;

/// Start streaming `path` of `snapshot_id` into `sink`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartDownload {
    pub download_id: String,
    pub snapshot_id: String,
    pub path: String,
    /// Bytes relayed at most (`--max-download-bytes`).
    pub limit: u64,
    /// Capacity [`DOWNLOAD_WINDOW`].
    pub sink: mpsc::Sender<Bytes>,
    pub end: DownloadEnd,
    pub ready: Reply<ReadyReply>,
}

/// The HTTP client took `chunks` data frames: the agent may send as many.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GrantCredit {
    pub download_id: String,
    pub chunks: u32,
}

/// The HTTP side is gone: stop the download.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelDownload {
    pub download_id: String,
}

/// A download in flight.
struct Relay {
    sink: mpsc::Sender<Bytes>,
    end: DownloadEnd,
    /// Until `download.ready` (or the end) answers it.
    ready: Option<Reply<ReadyReply>>,
    bytes: u64,
    limit: u64,
}

/// A download ends explicitly ([`CancelDownload`], `download.end`, the
/// session's end), never by being forgotten: the agent must be told.
impl Waiting for Relay {}

/// The session's downloads by id.
#[derive(Default)]
pub struct Relays(InFlight<Relay>);

impl Relays {
    /// Ends every download: the agent's connection is gone.
    pub fn agent_gone(&mut self) {
        for relay in self.0.drain() {
            if let Some(ready) = relay.ready {
                // Err: the HTTP side stopped waiting; nothing to tell.
                let _ = ready.send(Err(StartRefused::Offline));
            }
            // Err: already set; the first outcome stands.
            let _ = relay.end.set(DownloadOutcome::AgentGone);
        }
    }
}

impl HostSession {
    fn cancel_download(&mut self, download_id: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if self.relays.0.remove(download_id).is_some() {
            self.send(
                ctx,
                protocol::DownloadCancel {
                    download_id: download_id.to_owned(),
                },
            );
        }
    }

    /// `download.ready`: answer the waiting HTTP request.
    pub(super) fn on_download_ready(
        &mut self,
        ready: protocol::DownloadReady,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let id = ready.download_id.clone();
        let Some(waiting) = self.relays.0.get_mut(&id).and_then(|r| r.ready.take()) else {
            return;
        };
        if waiting.send(Ok(ready)).is_err() {
            // The request gave up waiting (timed out, or the client left).
            self.cancel_download(&id, ctx);
        }
    }

    /// `download.end`: the stream is complete, or failed.
    pub(super) fn on_download_end(&mut self, end: protocol::DownloadEnd) {
        let Some(relay) = self.relays.0.remove(&end.download_id) else {
            return;
        };
        tracing::info!(host_id = %self.host_id, download_id = %end.download_id, bytes = end.bytes, error = end.error.as_deref().unwrap_or(""), "download ended");
        let failure = end.code.map(|code| {
            let error = end
                .error
                .unwrap_or_else(|| "the agent gave no reason".to_owned());
            (code, error)
        });
        match (relay.ready, failure) {
            (Some(ready), Some((code, error))) => {
                // Err: the HTTP side stopped waiting; nothing to tell.
                let _ = ready.send(Err(StartRefused::Agent { code, error }));
            }
            (_, Some((_, error))) => {
                let _ = relay.end.set(DownloadOutcome::Failed(error));
            }
            (ready, None) => {
                if let Some(ready) = ready {
                    // An agent that ends without `download.ready` sent
                    // nothing: an empty stream.
                    let _ = ready.send(Err(StartRefused::Agent {
                        code: DownloadErrorCode::Failed,
                        error: "the agent ended the download before it started".to_owned(),
                    }));
                }
                // Err: already set; the first outcome stands.
                let _ = relay.end.set(DownloadOutcome::Complete);
            }
        }
    }

    /// A binary frame: a download's data.
    pub(super) fn on_download_data(&mut self, frame: Bytes, ctx: &mut ws::WebsocketContext<Self>) {
        let (id, start) = match protocol::parse_data_frame(&frame) {
            Ok((id, start)) => (id.to_owned(), start),
            Err(err) => {
                let now = std::time::Instant::now();
                self.last_frame = now;
                let bad = Self::bad(protocol::ERROR_BAD_FRAME, err.to_string(), None);
                self.bad_frame(ctx, bad, now);
                return;
            }
        };
        self.last_frame = std::time::Instant::now();
        let Some(relay) = self.relays.0.get_mut(&id) else {
            return; // data still in flight after a cancel
        };
        let mut data = frame.slice(start..);
        let room = relay.limit.saturating_sub(relay.bytes);
        let cut = data.len() as u64 > room;
        if cut {
            data.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        }
        relay.bytes += data.len() as u64;
        let failed = match relay.sink.try_send(data) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(_)) => Some(DownloadOutcome::Failed(
                "the agent sent more than its credits allow".to_owned(),
            )),
            // The client went away; its CancelDownload may be on its way.
            Err(mpsc::error::TrySendError::Closed(_)) => Some(DownloadOutcome::AgentGone),
        };
        let outcome = match (failed, cut) {
            (Some(outcome), _) => Some(outcome),
            (None, true) => Some(DownloadOutcome::Cut),
            (None, false) => None,
        };
        if let Some(outcome) = outcome {
            tracing::info!(host_id = %self.host_id, download_id = %id, ?outcome, "download stopped by the server");
            // Err: already set; the first outcome stands.
            let _ = relay.end.set(outcome);
            self.cancel_download(&id, ctx);
        }
    }
}

impl Handler<StartDownload> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: StartDownload, ctx: &mut Self::Context) {
        if self.phase != Phase::Ready {
            // Err: the HTTP side stopped waiting; nothing to tell.
            let _ = msg.ready.send(Err(StartRefused::Offline));
            return;
        }
        let relay = Relay {
            sink: msg.sink,
            end: msg.end,
            ready: Some(msg.ready),
            bytes: 0,
            limit: msg.limit,
        };
        if let Err(relay) = self.relays.0.insert(msg.download_id.clone(), relay) {
            // Not with today's unbounded relays; answered all the same.
            if let Some(ready) = relay.ready {
                let _ = ready.send(Err(StartRefused::Agent {
                    code: DownloadErrorCode::Failed,
                    error: "too many downloads in flight on this host".to_owned(),
                }));
            }
            return;
        }
        self.send(
            ctx,
            protocol::DownloadStart {
                download_id: msg.download_id,
                snapshot_id: msg.snapshot_id,
                path: msg.path,
                window: DOWNLOAD_WINDOW,
            },
        );
    }
}

impl Handler<GrantCredit> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: GrantCredit, ctx: &mut Self::Context) {
        if self.relays.0.contains(&msg.download_id) {
            self.send(
                ctx,
                protocol::DownloadCredit {
                    download_id: msg.download_id,
                    chunks: msg.chunks,
                },
            );
        }
    }
}

impl Handler<CancelDownload> for HostSession {
    type Result = ();

    fn handle(&mut self, msg: CancelDownload, ctx: &mut Self::Context) {
        self.cancel_download(&msg.download_id, ctx);
    }
}
