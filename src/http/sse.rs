//! Server-Sent Events framing, shared by the API's job stream
//! (`api::events`) and the UI's presence stream (`ui::live`): frames
//! ([`frame`], [`json_frame`]), the `retry:` field, the keep-alive comment
//! and the `text/event-stream` answer fed by a channel ([`event_stream`]),
//! and how a stream subscribes and sends (issue 15 B.5): [`subscribe`]
//! under the caller's user and address limits, [`send`] that gives up on a
//! client that has not read for [`SEND_TIMEOUT`], [`gone`] that completes
//! as soon as the client disconnects, so an idle stream's subscription is
//! dropped at once instead of lingering until its next frame.

use std::time::Duration;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::actors::events::{Event, EventFilter, Owner, SubscribeAs};
use crate::http::auth::{client_addr, Principal};
use crate::http::error::ApiError;
use crate::http::AppState;

/// Time between keep-alive comments on an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The reconnect delay sent to the browser, in milliseconds.
pub const RETRY_MS: u64 = 3000;
/// Frames buffered toward one client before the stream task waits.
pub const OUT_BUFFER: usize = 64;
/// A client that takes no frame for this long (its buffer full) is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Subscribes a browser's or API client's stream to `filter` under its
/// user's and address's limits: 429 `rate_limited` past them.
pub async fn subscribe(
    state: &AppState,
    who: &Principal,
    req: &HttpRequest,
    filter: EventFilter,
) -> Result<mpsc::Receiver<Arc<Event>>, ApiError> {
    let owner = Owner {
        user_id: who.user_id.clone(),
        addr: client_addr(req),
    };
    state
        .actors
        .events
        .send(SubscribeAs { filter, owner })
        .await
        .map_err(|e| ApiError::internal(format!("events actor unavailable: {e}")))?
        .map_err(|too_many| ApiError::rate_limited(too_many.to_string()))
}

/// The client is gone or stopped reading.
#[derive(Debug)]
pub struct Gone;

/// Queues `bytes` for the client; [`Gone`] if it disconnected or took no
/// frame for [`SEND_TIMEOUT`].
pub async fn send(out: &mpsc::Sender<Bytes>, bytes: Bytes) -> Result<(), Gone> {
    send_within(out, bytes, SEND_TIMEOUT).await
}

async fn send_within(out: &mpsc::Sender<Bytes>, bytes: Bytes, limit: Duration) -> Result<(), Gone> {
    match tokio::time::timeout(limit, out.send(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(Gone),
    }
}

/// Completes when the client disconnected (its answer's body was dropped).
pub async fn gone(out: &mpsc::Sender<Bytes>) {
    out.closed().await;
}

/// One SSE frame: `event:`, optional `id:`, one `data:` line per line of
/// `data`, and the blank line that ends it.
pub fn frame(event: &str, id: Option<i64>, data: &str) -> Bytes {
    let mut out = format!("event: {event}\n");
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A frame of `value` as JSON.
pub fn json_frame<T: Serialize>(event: &str, id: Option<i64>, value: &T) -> Bytes {
    match serde_json::to_string(value) {
        Ok(text) => frame(event, id, &text),
        Err(e) => {
            tracing::error!(error = %e, event, "cannot encode an event");
            keep_alive()
        }
    }
}

/// A comment line: ignored by the browser, keeps the connection busy.
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

/// Ticks every [`KEEP_ALIVE`], the first one a period from now: when a
/// stream sends [`keep_alive`].
pub fn keep_alive_interval() -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE)
}

/// The `retry:` field that sets the browser's reconnect delay.
pub fn retry() -> Bytes {
    Bytes::from(format!("retry: {RETRY_MS}\n\n"))
}

/// The answer that carries a stream fed by `rx`.
pub fn event_stream(rx: mpsc::Receiver<Bytes>) -> HttpResponse {
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<Bytes, std::convert::Infallible>(bytes), rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Tells nginx-style proxies not to buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames have the event name, an optional id, one data line per line and a blank line.
    #[test]
    fn frame_format() {
        let f = frame("log", Some(12), r#"{"seq":12}"#);
        assert_eq!(&f[..], b"event: log\nid: 12\ndata: {\"seq\":12}\n\n");
        let f = frame("status", None, "a\nb\r\nc");
        assert_eq!(&f[..], b"event: status\ndata: a\ndata: b\ndata: c\n\n");
        assert_eq!(&keep_alive()[..], b": keep-alive\n\n");
    }

    /// A client that disconnects is noticed at once, one that stops
    /// reading after the send timeout.
    #[tokio::test]
    async fn gone_clients_are_noticed() {
        let (tx, rx) = mpsc::channel(1);
        send(&tx, keep_alive()).await.unwrap();
        let limit = Duration::from_millis(50);
        assert!(
            send_within(&tx, keep_alive(), limit).await.is_err(),
            "never read"
        );
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), gone(&tx))
            .await
            .unwrap();
    }
}
