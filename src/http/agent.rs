//! The agent's two HTTP routes: enrolment (`POST /api/v1/agent/enroll`)
//! and the WebSocket upgrade (`GET /api/v1/agent/ws`).
//!
//! Enrolment spends a one-time enrolment token and creates the host in one
//! transaction, answering the new agent token once; only its SHA-256 is
//! stored. The upgrade authenticates `Authorization: Bearer <agent token>`
//! before upgrading (a missing, unknown or revoked token gets a 401 JSON
//! error and no WebSocket), then hands the socket to a
//! [`HostSession`](crate::actors::host_session::HostSession) with the
//! configured frame size limit. This file and the session are the only
//! users of `actix_web_actors`.
//!
//! The socket's bytes reach the session through [`FramePaced`], which
//! hands over one WebSocket frame per read. It is still needed:
//! `actix_web_actors` 4.3.1 (the last release; the crate is deprecated)
//! has its frame stream (`WsStream::poll_next`) pull from the payload in
//! a loop until it is `Pending`, appending every chunk to an unbounded
//! buffer, before it decodes one frame. Without pacing, an agent that
//! sends faster than its session works grows the server's memory without
//! bound and the session's back-pressure pause (see `HostSession`) never
//! reaches the TCP socket. It goes away with the move to `actix-ws` (or
//! any transport that decodes from a bounded read buffer).

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use futures_util::Stream;

use super::api::table::{Access, Endpoint};
use super::error::{with_conn, ApiError};
use super::extract::Body;
use crate::auth;
use crate::http::AppState;
use crate::protocol::{self, EnrollRequest, EnrollResponse};
use crate::store::{self, audit, hosts, models};

/// Longest hostname accepted at enrolment.
const MAX_HOSTNAME_LEN: usize = 253;

/// The agent routes, for the API's route table (`api::endpoints`).
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::post("/agent/enroll", |r| r.to(enroll))
            .summary("Enrol a host with a one-time enrolment token")
            .describe("Answers the agent token once; the server keeps its SHA-256.")
            .access(Access::Public)
            .body("EnrollRequest")
            .ok(200, "EnrollResponse")
            .error(
                401,
                "The enrolment token is unknown, used, revoked or expired.",
            ),
        Endpoint::get("/agent/ws", |r| r.to(upgrade))
            .summary("The agent's WebSocket (PROTOCOL.md), with its agent token")
            .access(Access::Agent)
            .empty(101, "Switching to the WebSocket protocol.")
            .error(401, "The agent token is missing, unknown or revoked."),
    ]
}

fn validate(body: &EnrollRequest) -> Result<(), ApiError> {
    let hostname = body.hostname.trim();
    if hostname.is_empty() || hostname.len() > MAX_HOSTNAME_LEN {
        return Err(ApiError::validation(format!(
            "hostname must be 1 to {MAX_HOSTNAME_LEN} characters"
        )));
    }
    if hostname.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "hostname must not contain control characters",
        ));
    }
    if ![protocol::OS_LINUX, protocol::OS_WINDOWS].contains(&body.os.as_str()) {
        return Err(ApiError::validation(format!(
            "os must be \"{}\" or \"{}\"",
            protocol::OS_LINUX,
            protocol::OS_WINDOWS
        )));
    }
    if ![protocol::ARCH_AMD64, protocol::ARCH_ARM64].contains(&body.arch.as_str()) {
        return Err(ApiError::validation(format!(
            "arch must be \"{}\" or \"{}\"",
            protocol::ARCH_AMD64,
            protocol::ARCH_ARM64
        )));
    }
    Ok(())
}

/// `POST /api/v1/agent/enroll`: enrolment token → host id + agent token.
async fn enroll(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body<EnrollRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate(&body)?;
    let agent_token = auth::generate_token().map_err(ApiError::internal)?;
    let now = store::now_ms();
    let new = models::NewHost {
        os: body.os.clone(),
        arch: body.arch.clone(),
        ..models::NewHost::new(
            store::new_id(),
            body.hostname.trim(),
            auth::hash_token(&agent_token),
            now,
        )
    };
    let token_hash = auth::hash_token(&body.token);
    let source_addr = req.peer_addr().map(|a| a.ip().to_string());
    let host = state
        .actors
        .write("enrolling a host", move |conn| {
            let Some(host) = hosts::enroll_with_token(conn, &token_hash, &new, now)? else {
                return Ok(None);
            };
            // The policies that match the new host give it their groups
            // and schedules now; its first `hello` gets them.
            store::policy_sync::sync_host(
                conn,
                &host.id,
                &host.labels,
                store::policy_sync::OnConflict::Skip,
                now,
            )?;
            audit::record(
                conn,
                now,
                &format!("agent:{}", host.id),
                source_addr.as_deref(),
                "host.enroll",
                Some(&host.id),
                Some(serde_json::json!({"hostname": host.hostname, "os": host.os, "arch": host.arch})),
            )?;
            Ok::<_, ApiError>(Some(host))
        })
        .await?;
    let Some(host) = host else {
        tracing::info!(addr = ?req.peer_addr(), "enrolment with an unknown, used or expired token");
        return Err(ApiError::unauthorized(
            "the enrolment token is unknown, already used or expired",
        ));
    };
    tracing::info!(host_id = %host.id, hostname = %host.hostname, "host enrolled");
    Ok(HttpResponse::Ok().json(EnrollResponse {
        host_id: host.id.into(),
        agent_token,
    }))
}

/// The bearer token of a request, if it has one.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// `GET /api/v1/agent/ws`: authenticate, then upgrade to a host session.
async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let Some(token) = bearer(&req) else {
        return Err(
            ApiError::unauthorized("an agent token is required (Authorization: Bearer …)").into(),
        );
    };
    let token_hash = auth::hash_token(token);
    let host = with_conn(&state.pool, move |conn| {
        Ok(hosts::find_by_agent_token(conn, &token_hash)?)
    })
    .await?;
    let Some(host) = host else {
        tracing::info!(addr = ?req.peer_addr(), "WebSocket upgrade with an unknown or revoked agent token");
        return Err(ApiError::unauthorized("the agent token is unknown or revoked").into());
    };
    let actors = &state.actors;
    ws::WsResponseBuilder::new(actors.new_session(host.id), &req, FramePaced::new(stream))
        .frame_size(actors.max_frame_bytes())
        .start()
}

/// The wire length of the WebSocket frame that starts `buf` (header and
/// payload, RFC 6455 §5.2), or `None` while its header is incomplete. A
/// declared length that does not fit is `usize::MAX`: the codec refuses
/// such a frame as soon as it sees the header.
fn frame_wire_len(buf: &[u8]) -> Option<usize> {
    let second = *buf.get(1)?;
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    let (ext, len) = match second & 0x7f {
        126 => (
            2,
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (8, u64::from_be_bytes(bytes))
        }
        n => (0, u64::from(n)),
    };
    let header = 2 + ext + mask;
    if buf.len() < header {
        return None;
    }
    Some(
        usize::try_from(len)
            .ok()
            .and_then(|len| len.checked_add(header))
            .unwrap_or(usize::MAX),
    )
}

/// The request payload, paced to one frame per round: each time the frame
/// decoder reads, it gets the bytes up to the end of the next frame (or
/// what has arrived of it), then `Pending` until it asks again. Bytes not
/// handed over wait here (at most one chunk the connection read, up to
/// its 32 KiB payload limit); while the session does not read, nothing is
/// taken from the connection, so TCP pushes back on the agent.
pub struct FramePaced<S> {
    inner: S,
    /// Received, not yet handed over.
    buf: BytesMut,
    /// Bytes of the current frame not yet handed over (0: at a frame start).
    frame_left: usize,
    /// A piece was handed over in this round.
    gave: bool,
    /// The inner stream ended.
    ended: bool,
}

impl<S> FramePaced<S> {
    pub fn new(inner: S) -> Self {
        FramePaced {
            inner,
            buf: BytesMut::new(),
            frame_left: 0,
            gave: false,
            ended: false,
        }
    }
}

impl<S, E> Stream for FramePaced<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.gave {
            // End of the round: the decoder decodes what it got. Wake up
            // in case it needs more of a frame to make progress.
            this.gave = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            if this.frame_left == 0 && !this.buf.is_empty() {
                if let Some(len) = frame_wire_len(&this.buf) {
                    this.frame_left = len;
                }
            }
            let header_incomplete = this.frame_left == 0;
            if !this.buf.is_empty() && (!header_incomplete || this.ended) {
                let n = if header_incomplete {
                    this.buf.len()
                } else {
                    this.frame_left.min(this.buf.len())
                };
                this.frame_left = this.frame_left.saturating_sub(n);
                this.gave = true;
                let piece = if n == this.buf.len() {
                    // Hand the whole buffer over: an idle session keeps
                    // no allocation here.
                    std::mem::take(&mut this.buf)
                } else {
                    this.buf.split_to(n)
                };
                return Poll::Ready(Some(Ok(piece.freeze())));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.buf.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A masked client frame with `payload`, length encoded minimally.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x81];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend_from_slice(payload);
        out
    }

    /// Header lengths: 7-bit, 16-bit and 64-bit lengths, mask or not,
    /// incomplete headers, and a length too large to address.
    #[test]
    fn frame_lengths() {
        assert_eq!(frame_wire_len(&frame(b"hi")), Some(2 + 4 + 2));
        assert_eq!(frame_wire_len(&frame(&[0; 300])), Some(4 + 4 + 300));
        assert_eq!(frame_wire_len(&frame(&[0; 70_000])), Some(10 + 4 + 70_000));
        assert_eq!(frame_wire_len(&[0x89, 0x00]), Some(2));
        assert_eq!(frame_wire_len(&[0x81]), None);
        assert_eq!(frame_wire_len(&[0x81, 0x80 | 126, 0x01]), None);
        assert_eq!(frame_wire_len(&[0x81, 0x80 | 5, 1, 2]), None);
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(frame_wire_len(&huge), Some(usize::MAX));
    }

    /// Several frames arriving in one chunk (and one split across two
    /// chunks) come out one frame per round, byte for byte, with a
    /// `Pending` after each; then the end.
    #[actix_web::test]
    async fn one_frame_per_round() {
        let (a, b, c) = (frame(b"first"), frame(&[7; 200]), frame(b"third"));
        let mut joined = a.clone();
        joined.extend_from_slice(&b);
        joined.extend_from_slice(&c[..3]);
        let chunks: Vec<Result<Bytes, ()>> =
            vec![Ok(Bytes::from(joined)), Ok(Bytes::copy_from_slice(&c[3..]))];
        let mut paced = FramePaced::new(futures_util::stream::iter(chunks));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut pieces = Vec::new();
        let mut pendings = 0;
        loop {
            match Pin::new(&mut paced).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(piece))) => pieces.push(piece.to_vec()),
                Poll::Ready(Some(Err(()))) => panic!("no errors here"),
                Poll::Ready(None) => break,
                Poll::Pending => pendings += 1,
            }
        }
        assert_eq!(pieces, vec![a, b, c]);
        assert_eq!(pendings, 3);
        assert!(paced.next().await.is_none());
    }

    /// Bytes that never form a header are still handed over at the end,
    /// so the decoder can report the truncated frame.
    #[actix_web::test]
    async fn trailing_partial_header_is_handed_over() {
        let chunks: Vec<Result<Bytes, ()>> = vec![Ok(Bytes::from_static(&[0x81]))];
        let mut paced = FramePaced::new(futures_util::stream::iter(chunks));
        let first = paced.next().await;
        assert_eq!(
            first.map(|r| r.ok().map(|b| b.to_vec())),
            Some(Some(vec![0x81]))
        );
    }
}
