//! `GET /ui/events`: the pages' presence stream, Server-Sent Events of
//! hosts coming online and going offline and of job status changes, so
//! the dashboard and host badges follow the fleet without a reload. It is
//! part of the UI rather than the REST API (no replay, no paging: the page
//! was just rendered from the database); readable by every role.
//!
//! Frames: `event: host` `{"host_id":"…","status":"online"}` and
//! `event: job` `{"host_id":"…","job_id":"…","status":"running"}`, plus a
//! `: keep-alive` comment every [`KEEP_ALIVE`](crate::http::sse::KEEP_ALIVE).

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::actors::events::{Event, EventFilter};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::http::sse::{self, event_stream, json_frame, keep_alive, retry, OUT_BUFFER};
use crate::http::AppState;
use crate::store::JobStatus;

/// A `host` frame's data.
#[derive(Debug, Serialize)]
struct HostDto<'a> {
    host_id: &'a str,
    status: &'static str,
}

/// A `job` frame's data.
#[derive(Debug, Serialize)]
struct JobDto<'a> {
    host_id: &'a str,
    job_id: &'a str,
    status: JobStatus,
}

/// The frame for an event, if the presence stream carries it (not log
/// lines or progress).
fn presence_frame(event: &Event) -> Option<Bytes> {
    match event {
        Event::HostOnline { host_id } => Some(json_frame(
            "host",
            None,
            &HostDto {
                host_id,
                status: "online",
            },
        )),
        Event::HostOffline { host_id } => Some(json_frame(
            "host",
            None,
            &HostDto {
                host_id,
                status: "offline",
            },
        )),
        Event::JobStatus {
            host_id,
            job_id,
            status,
            ..
        } => Some(json_frame(
            "job",
            None,
            &JobDto {
                host_id,
                job_id,
                status: *status,
            },
        )),
        _ => None,
    }
}

/// `GET /ui/events`.
pub(super) async fn stream(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Viewer)?;
    let mut events = sse::subscribe(&state, &who, &req, EventFilter::Fleet).await?;
    let (tx, rx) = mpsc::channel(OUT_BUFFER);
    actix_web::rt::spawn(async move {
        if tx.send(retry()).await.is_err() {
            return;
        }
        let mut tick = sse::keep_alive_interval();
        loop {
            let bytes = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => match presence_frame(&event) {
                        Some(bytes) => bytes,
                        None => continue,
                    },
                    // Dropped by the Events actor: end; the browser reconnects.
                    None => return,
                },
                _ = tick.tick() => keep_alive(),
                // The client left: drop the subscription now.
                () = sse::gone(&tx) => return,
            };
            if sse::send(&tx, bytes).await.is_err() {
                return;
            }
        }
    });
    Ok(event_stream(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::LogStreamKind;

    /// The presence stream carries presence and job status, not logs or progress.
    #[test]
    fn presence_frames() {
        let online = presence_frame(&Event::HostOnline {
            host_id: "h1".into(),
        })
        .unwrap();
        assert_eq!(
            &online[..],
            b"event: host\ndata: {\"host_id\":\"h1\",\"status\":\"online\"}\n\n"
        );
        let job = presence_frame(&Event::JobStatus {
            host_id: "h1".into(),
            job_id: "j1".into(),
            status: JobStatus::Running,
            message: None,
        })
        .unwrap();
        assert!(std::str::from_utf8(&job)
            .unwrap()
            .contains("\"status\":\"running\""));
        assert!(presence_frame(&Event::JobLog {
            host_id: "h".into(),
            job_id: "j".into(),
            seq: 1,
            ts: chrono::Utc::now(),
            stream: LogStreamKind::Stdout,
            payload: "x".into(),
        })
        .is_none());
    }
}
