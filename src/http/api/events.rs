//! `GET /jobs/{id}/events`: one job's log, progress and status as
//! Server-Sent Events, live from the `Events` actor; readable by every
//! role. The SSE framing is `http::sse`'s, shared with the UI's presence
//! stream (`ui::live`).
//!
//! 1. `retry: 3000` (the browser's reconnect delay).
//! 2. The stored log lines after the resume point: the `Last-Event-ID`
//!    header an `EventSource` sends when it reconnects, else `?after_seq=`,
//!    else 0. The subscription is taken *before* this read and the writer's
//!    buffer is flushed, so no line falls between the replay and the live
//!    part.
//! 3. The job's current `status` (and its latest `progress` while it runs).
//! 4. Live events: `log` (a line whose seq is not above the last one sent
//!    is a replay and skipped; a gap is filled from the database first),
//!    `progress`, `status`. A `: keep-alive` comment every
//!    [`KEEP_ALIVE`](crate::http::sse::KEEP_ALIVE) keeps proxies from closing an idle stream.
//! 5. After a terminal status (sent after a last catch-up of stored lines)
//!    the stream ends; the page closes its `EventSource` on it.
//!
//! Frames (one JSON object per `data:` line):
//!
//! ```text
//! event: log
//! id: 12
//! data: {"seq":12,"ts":"2026-01-02T03:04:05.678Z","stream":"stdout","payload":"…"}
//!
//! event: progress
//! data: {"percent_done":0.5,"files_done":1,"total_files":2,"bytes_done":…,"total_bytes":…,"eta_seconds":4,"throughput_bps":…}
//!
//! event: status
//! data: {"status":"succeeded","message":null,"attempt":1,"started_at":"…","finished_at":"…","exit_code":0,"error":null,"warning":null,"stats":{…}}
//! ```
//!
//! Only log lines carry an `id:`, so the browser's last event id is always
//! the last log seq it saw. A subscriber the `Events` actor drops as too
//! slow sees its stream end and resumes from that id.
//!
use std::sync::Arc;

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::table::Endpoint;
use crate::actors::events::{Event, EventFilter};
use crate::actors::persistence::Flush;
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::{int_param, Time};
use crate::http::sse::{self, event_stream, json_frame, keep_alive, retry, Gone, OUT_BUFFER};
use crate::http::AppState;
use crate::protocol::{JobProgress, LogStreamKind};
use crate::store::{self, models, JobStatus};

/// Stored log lines read per query while replaying.
const REPLAY_PAGE: i64 = 1000;

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![Endpoint::get("/jobs/{id}/events", |r| r.to(job_events))
        .summary("Follow a job live: Server-Sent Events of its log, progress and status")
        .describe(
            "Answers `text/event-stream`. First the stored log lines after the resume point \
             (the `Last-Event-ID` header of a reconnecting EventSource, else `after_seq`), \
             then the job's current `status` (and `progress` while it runs), then live \
             events until a terminal `status`, after which the stream ends. Frames: \
             `event: log` with `id: <seq>` and data `{seq, ts, stream, payload}`; \
             `event: progress` with data `{percent_done, files_done, total_files, \
             bytes_done, total_bytes, eta_seconds, throughput_bps}`; `event: status` with \
             data `{status, message, attempt, started_at, finished_at, exit_code, error, \
             warning, stats}`. A `: keep-alive` comment comes every 15 seconds. At most \
             32 live streams per user and 64 per client address (429 past them).",
        )
        .role(Role::Viewer)
        .query(
            "after_seq",
            "integer",
            "Replay stored lines after this seq (default 0); Last-Event-ID wins.",
        )
        .event_stream("Log, progress and status events.")]
}

/// Where a job stream resumes: the `Last-Event-ID` header (a reconnect)
/// wins over `?after_seq=`; both default to 0 (from the first line).
pub fn resume_point(last_event_id: Option<&str>, after_seq: Option<&str>) -> Result<i64, ApiError> {
    let from_header = last_event_id
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::validation(format!("Last-Event-ID: expected a log seq, got {v:?}"))
            })
        })
        .transpose()?;
    let seq = match from_header {
        Some(seq) => seq,
        None => int_param("after_seq", after_seq)?.unwrap_or(0),
    };
    if seq < 0 {
        return Err(ApiError::validation("after_seq: must not be negative"));
    }
    Ok(seq)
}

/// A log line frame's data.
#[derive(Debug, Serialize)]
struct LogDto<'a> {
    seq: i64,
    ts: Time,
    stream: &'a str,
    payload: &'a str,
}

/// A status frame's data: the job's state after the change.
#[derive(Debug, Serialize)]
struct StatusDto {
    status: JobStatus,
    /// The error (failed) or warning (succeeded with warnings).
    message: Option<String>,
    attempt: i32,
    started_at: Option<Time>,
    finished_at: Option<Time>,
    exit_code: Option<i32>,
    error: Option<String>,
    warning: Option<String>,
    /// restic's summary once finished.
    stats: Option<Value>,
}

impl StatusDto {
    fn from_job(job: &models::Job) -> StatusDto {
        let stats = job.stats.clone();
        StatusDto {
            status: job.status,
            message: job.error.clone().or_else(|| job.warning.clone()),
            attempt: job.attempt,
            started_at: Time::opt(job.started_at),
            finished_at: Time::opt(job.finished_at),
            exit_code: job.exit_code,
            error: job.error.clone(),
            warning: job.warning.clone(),
            stats,
        }
    }
}

fn stored_line(line: &models::JobLog) -> Bytes {
    json_frame(
        "log",
        Some(line.seq),
        &LogDto {
            seq: line.seq,
            ts: Time(line.ts),
            stream: line.stream.as_str(),
            payload: &line.payload,
        },
    )
}

fn live_stream_name(kind: LogStreamKind) -> &'static str {
    kind.as_str()
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    after_seq: Option<String>,
}

async fn job_events(
    state: web::Data<AppState>,
    who: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Viewer)?;
    let job_id = path.into_inner();
    let last_event_id = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok());
    let after = resume_point(last_event_id, query.after_seq.as_deref())?;
    let check = job_id.clone();
    with_conn(&state.pool, move |conn| {
        store::jobs::get(conn, &check)?
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found(&format!("job {check}")))
    })
    .await?;
    // Subscribe before reading the stored lines, so that a line arriving
    // in between is in the live part (and de-duplicated by seq).
    let events = sse::subscribe(&state, &who, &req, EventFilter::Job(job_id.clone())).await?;
    let (tx, rx) = mpsc::channel(OUT_BUFFER);
    actix_web::rt::spawn(
        JobStream {
            state: state.into_inner(),
            job_id,
            last_seq: after,
            out: tx,
        }
        .run(events),
    );
    Ok(event_stream(rx))
}

/// The task behind one job stream.
struct JobStream {
    state: Arc<AppState>,
    job_id: String,
    /// The highest log seq sent (or the resume point).
    last_seq: i64,
    out: mpsc::Sender<Bytes>,
}

impl JobStream {
    async fn send(&self, bytes: Bytes) -> Result<(), Gone> {
        sse::send(&self.out, bytes).await
    }

    /// Makes the writer store what it has buffered, so a read sees every
    /// line received so far.
    async fn flush(&self) {
        if let Err(e) = self.state.actors.persistence.send(Flush).await {
            tracing::warn!(job_id = %self.job_id, error = %e, "cannot flush before a log read");
        }
    }

    async fn job(&self) -> Result<Option<models::Job>, ApiError> {
        let id = self.job_id.clone();
        with_conn(&self.state.pool, move |conn| {
            Ok(store::jobs::get(conn, &id)?)
        })
        .await
    }

    /// Sends the stored lines after `last_seq`, up to `until` (inclusive)
    /// if given.
    async fn catch_up(&mut self, until: Option<i64>) -> Result<(), Gone> {
        loop {
            let id = self.job_id.clone();
            let after = self.last_seq;
            let lines = match with_conn(&self.state.pool, move |conn| {
                Ok(store::job_logs::list_after(conn, &id, after, REPLAY_PAGE)?)
            })
            .await
            {
                Ok(lines) => lines,
                Err(e) => {
                    tracing::warn!(job_id = %self.job_id, error = %e, "cannot read job log");
                    return Ok(());
                }
            };
            let full = i64::try_from(lines.len()).unwrap_or(i64::MAX) >= REPLAY_PAGE;
            for line in &lines {
                if until.is_some_and(|u| line.seq > u) {
                    return Ok(());
                }
                self.send(stored_line(line)).await?;
                self.last_seq = line.seq;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends the lines of a job that ended: its session handed them to
    /// the writer before its end, so they are stored once it is flushed.
    async fn catch_up_to_the_end(&mut self) -> Result<(), Gone> {
        self.flush().await;
        self.catch_up(None).await
    }

    async fn send_status(&self, job: &models::Job) -> Result<(), Gone> {
        self.send(json_frame("status", None, &StatusDto::from_job(job)))
            .await
    }

    async fn run(mut self, events: mpsc::Receiver<Arc<Event>>) {
        // Gone: the client disconnected; nothing to clean up.
        let _ = self.stream(events).await;
    }

    async fn stream(&mut self, mut events: mpsc::Receiver<Arc<Event>>) -> Result<(), Gone> {
        self.send(retry()).await?;
        self.flush().await;
        self.catch_up(None).await?;
        let job = match self.job().await {
            Ok(Some(job)) => job,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(job_id = %self.job_id, error = %e, "cannot read job");
                return Ok(());
            }
        };
        if job.status.is_terminal() {
            // It ended after the catch-up above.
            self.catch_up_to_the_end().await?;
            self.send_status(&job).await?;
            return Ok(());
        }
        self.send_status(&job).await?;
        if let Some(progress) = job.progress.clone() {
            self.send(json_frame("progress", None, &ProgressDto::from(&progress)))
                .await?;
        }
        let mut tick = sse::keep_alive_interval();
        let out = self.out.clone();
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else {
                        // Dropped by the Events actor (too slow, or too
                        // many subscribers): end; the browser resumes.
                        return Ok(());
                    };
                    if self.on_event(&event).await? {
                        return Ok(());
                    }
                }
                _ = tick.tick() => self.send(keep_alive()).await?,
                // The client left: drop the subscription now.
                () = sse::gone(&out) => return Err(Gone),
            }
        }
    }

    /// Forwards one live event; `true` when the stream is over.
    async fn on_event(&mut self, event: &Event) -> Result<bool, Gone> {
        match event {
            Event::JobLog {
                seq,
                ts,
                stream,
                payload,
                ..
            } => {
                let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
                if seq <= self.last_seq {
                    return Ok(false);
                }
                if seq > self.last_seq + 1 {
                    // Lines between arrived before the subscription:
                    // they are (or are about to be) stored.
                    self.flush().await;
                    self.catch_up(Some(seq - 1)).await?;
                }
                self.send(json_frame(
                    "log",
                    Some(seq),
                    &LogDto {
                        seq,
                        ts: Time(ts.timestamp_millis()),
                        stream: live_stream_name(*stream),
                        payload,
                    },
                ))
                .await?;
                self.last_seq = seq;
                Ok(false)
            }
            Event::JobProgress { progress, .. } => {
                self.send(json_frame("progress", None, &ProgressDto::from(progress)))
                    .await?;
                Ok(false)
            }
            Event::JobStatus { status, .. } => {
                if status.is_terminal() {
                    self.catch_up_to_the_end().await?;
                }
                match self.job().await {
                    Ok(Some(job)) => {
                        self.send_status(&job).await?;
                        Ok(job.status.is_terminal())
                    }
                    Ok(None) => Ok(true),
                    Err(e) => {
                        tracing::warn!(job_id = %self.job_id, error = %e, "cannot read job");
                        Ok(status.is_terminal())
                    }
                }
            }
            _ => Ok(false),
        }
    }
}

/// A progress frame's data (the wire payload without the job id).
#[derive(Debug, Serialize)]
struct ProgressDto {
    percent_done: f64,
    files_done: u64,
    total_files: u64,
    bytes_done: u64,
    total_bytes: u64,
    eta_seconds: Option<u64>,
    throughput_bps: u64,
}

impl From<&JobProgress> for ProgressDto {
    fn from(p: &JobProgress) -> Self {
        ProgressDto {
            percent_done: p.percent_done,
            files_done: p.files_done,
            total_files: p.total_files,
            bytes_done: p.bytes_done,
            total_bytes: p.total_bytes,
            eta_seconds: p.eta_seconds,
            throughput_bps: p.throughput_bps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reconnect's Last-Event-ID wins over after_seq; bad or negative values are 400.
    #[test]
    fn resume_points() {
        assert_eq!(resume_point(None, None).unwrap(), 0);
        assert_eq!(resume_point(None, Some("7")).unwrap(), 7);
        assert_eq!(resume_point(Some("12"), Some("7")).unwrap(), 12);
        assert_eq!(resume_point(Some(" "), Some("7")).unwrap(), 7);
        assert!(resume_point(Some("abc"), None).is_err());
        assert!(resume_point(None, Some("-1")).is_err());
        assert!(resume_point(None, Some("x"))
            .unwrap_err()
            .message
            .starts_with("after_seq:"));
    }

    /// Log payloads with newlines stay one JSON data line (JSON escapes them).
    #[test]
    fn log_frames_are_single_line() {
        let f = json_frame(
            "log",
            Some(3),
            &LogDto {
                seq: 3,
                ts: Time(1_767_323_045_678),
                stream: "stderr",
                payload: "line one\nline two",
            },
        );
        let text = std::str::from_utf8(&f).unwrap();
        assert_eq!(text.matches("data: ").count(), 1, "{text}");
        assert!(text.contains(r#""payload":"line one\nline two""#));
        assert!(text.contains(r#""ts":"2026-01-02T03:04:05.678Z""#));
    }
}
