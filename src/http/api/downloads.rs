//! `GET /hosts/{id}/snapshots/{snapshot_id}/download?path=/etc/nginx`: a
//! file of a snapshot as itself, a folder as a tar, streamed from the
//! host's agent (`restic dump`) through its session to the client.
//!
//! The handler checks the request (operator; the host and the snapshot
//! exist; the path is absolute without `..` or NUL), writes the audit row
//! `snapshot.download`, asks the host's session to start the download and
//! waits for the agent's `download.ready` (up to [`READY_TIMEOUT`]): only
//! then is the status known (a path not in the snapshot is a 404 with the
//! agent's message, a restic failure a 502). The body is a
//! [`DownloadBody`] over the session's bounded channel; each chunk the
//! client takes grants the agent a credit for one more, so the server
//! holds at most `DOWNLOAD_WINDOW` chunks (2 MiB) per download and a slow
//! client slows restic down. When the body is dropped (the stream ended,
//! or the client went away: then the agent is told to stop restic) a
//! second audit row, `snapshot.download.end`, records how it ended and how
//! many bytes the client was given.
//!
//! A stream that does not end complete (`--max-download-bytes` reached,
//! restic failed midway, the agent disconnected) ends with an error, so
//! actix closes the connection without the final chunk (or short of
//! `Content-Length`): clients see an incomplete transfer, never a short
//! file that looks whole.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix::Addr;
use actix_web::http::header::{
    Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::audit_as;
use super::table::Endpoint;
use crate::actors::host_session::{
    ask, AskError, CancelDownload, DownloadEnd, DownloadOutcome, GrantCredit, HostSession,
    StartDownload, StartRefused, DOWNLOAD_WINDOW,
};
use crate::actors::persistence::{Persistence, RunWrite};
use crate::auth::Role;
use crate::http::auth::Principal;
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::live_host;
use crate::http::AppState;
use crate::ids::HostId;
use crate::protocol::{self, DownloadErrorCode, DownloadType};
use crate::store;

/// Longest wait for the agent's first answer (`restic ls` and the start of
/// `restic dump` load the repository index first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::get("/hosts/{id}/snapshots/{snapshot_id}/download", |r| {
            r.to(download)
        })
        .summary("Download a file of a snapshot as itself, or a folder as a tar")
        .describe(
            "Streams `restic dump` from the host's agent with back-pressure. A file answers \
         `application/octet-stream` with its size as Content-Length; a folder (or `/`, the \
         whole snapshot) answers `application/x-tar`, chunked. `Content-Disposition: \
         attachment` names the path's last component (`.tar` added for a folder). A stream \
         past `--max-download-bytes`, or one whose restic fails midway, ends without its \
         final chunk (the connection is closed): the client sees an incomplete transfer. \
         Audited as `snapshot.download` (before) and `snapshot.download.end` (outcome, bytes).",
        )
        .role(Role::Operator)
        .query(
            "path",
            "string",
            "Absolute path in the snapshot (no `..`, no NUL); `/` is the whole snapshot.",
        )
        .stream(
            200,
            "application/octet-stream",
            "The file's bytes, or a tar of the folder (application/x-tar).",
        )
        .error(
            404,
            "The host, the snapshot (of this host) or the path in it does not exist.",
        )
        .error(
            409,
            "`host_offline`: the host's agent is not connected; `agent_lacks_capability`: it did not \
         declare the `download` capability (too old to stream downloads).",
        )
        .error(
            502,
            "`agent_error`: restic failed on the agent before the first byte.",
        )
        .error(
            504,
            "`agent_timeout`: the agent did not start the download in time.",
        ),
    ]
}

#[derive(Debug, Deserialize)]
struct DownloadQuery {
    path: Option<String>,
}

/// The checked `path` parameter: absolute, no `..`, no NUL, without empty
/// or `.` components (`/etc//nginx/` is `/etc/nginx`).
fn download_path(raw: Option<&str>) -> Result<String, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::validation("path: required (an absolute path in the snapshot; / for all of it)")
    })?;
    if raw.is_empty() {
        return Err(ApiError::validation("path: must not be empty"));
    }
    if raw.contains('\0') {
        return Err(ApiError::validation("path: must not contain NUL"));
    }
    if !raw.starts_with('/') {
        return Err(ApiError::validation(
            "path: must be absolute (start with /)",
        ));
    }
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(ApiError::validation("path: must not contain `..`"));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `Content-Disposition: attachment` naming `path`'s last component
/// (`.tar` added for a folder; `snapshot-<short id>.tar` for `/`): a plain
/// ASCII `filename` (anything else replaced by `_`) and, when the name is
/// not plain ASCII, the exact name as RFC 5987 `filename*`.
fn disposition(path: &str, kind: DownloadType, short_id: &str) -> ContentDisposition {
    let last = path.rsplit('/').next().unwrap_or_default();
    let mut name = if last.is_empty() {
        format!("snapshot-{short_id}")
    } else {
        last.to_owned()
    };
    if kind == DownloadType::Dir {
        name.push_str(".tar");
    }
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut parameters = vec![DispositionParam::Filename(ascii.clone())];
    if ascii != name {
        parameters.push(DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".to_owned()),
            language_tag: None,
            value: name.into_bytes(),
        }));
    }
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters,
    }
}

/// Who asked for a download and what, for its audit rows.
#[derive(Clone)]
struct AuditInfo {
    persistence: Addr<Persistence>,
    actor: String,
    source_addr: Option<String>,
    host_id: String,
    detail: serde_json::Value,
}

impl AuditInfo {
    /// Writes `snapshot.download.end` with `outcome` (through the writer,
    /// without waiting: it is called from a `Drop`).
    fn end(&self, outcome: &str, bytes: u64, error: Option<&str>) {
        let mut detail = self.detail.clone();
        detail["outcome"] = json!(outcome);
        detail["bytes"] = json!(bytes);
        if let Some(error) = error {
            detail["error"] = json!(error);
        }
        let (actor, source_addr, host_id) = (
            self.actor.clone(),
            self.source_addr.clone(),
            self.host_id.clone(),
        );
        self.persistence.do_send(RunWrite::<(), ApiError>::new(
            "auditing a download's end",
            move |conn| {
                audit_as(
                    conn,
                    &actor,
                    source_addr.as_deref(),
                    "snapshot.download.end",
                    Some(&host_id),
                    Some(detail),
                )
            },
        ));
    }
}

async fn download(
    state: web::Data<AppState>,
    who: Principal,
    params: web::Path<(String, String)>,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(Role::Operator)?;
    let (host_id, snapshot) = params.into_inner();
    let path = download_path(query.path.as_deref())?;
    let (host, wanted) = (HostId::from(host_id.as_str()), snapshot.clone());
    let (snapshot, capable) = with_conn(&state.pool, move |conn| {
        let capable = live_host(conn, &host)?.require_capability(protocol::CAPABILITY_DOWNLOAD);
        let snapshot = store::snapshots::find_for_host(conn, &host, &wanted)?
            .ok_or_else(|| ApiError::not_found(&format!("snapshot {wanted} of host {host}")))?;
        Ok((snapshot, capable))
    })
    .await?;
    let session = state
        .actors
        .sessions
        .get(&host_id)
        .ok_or_else(|| ApiError::host_offline(&host_id, "a download"))?;
    capable.map_err(|e| ApiError::lacks_capability(&e))?;

    let download_id = store::new_id();
    let audit = AuditInfo {
        persistence: state.actors.persistence.clone(),
        actor: who.username.clone(),
        source_addr: who.source_addr.clone(),
        host_id: host_id.clone(),
        detail: json!({
            "download_id": download_id,
            "snapshot_id": snapshot.snapshot_id,
            "path": path,
        }),
    };
    let (actor, source_addr, target, detail) = (
        audit.actor.clone(),
        audit.source_addr.clone(),
        host_id.clone(),
        audit.detail.clone(),
    );
    state
        .actors
        .write("auditing a download", move |conn| {
            audit_as(
                conn,
                &actor,
                source_addr.as_deref(),
                "snapshot.download",
                Some(&target),
                Some(detail),
            )
        })
        .await?;

    let (sink, chunks) = mpsc::channel(DOWNLOAD_WINDOW as usize);
    let end = DownloadEnd::default();
    let answer = ask(&session, READY_TIMEOUT, |ready| StartDownload {
        download_id: download_id.clone(),
        snapshot_id: snapshot.snapshot_id.clone(),
        path: path.clone(),
        limit: state.actors.config.max_download_bytes,
        sink,
        end: end.clone(),
        ready,
    })
    .await;
    let refused = |audit: &AuditInfo, error: ApiError| {
        audit.end("refused", 0, Some(&error.message));
        Err(error)
    };
    let ready = match answer {
        Ok(Ok(ready)) => ready,
        Ok(Err(StartRefused::Agent { code, error })) => {
            let error = match code {
                DownloadErrorCode::NotFound => {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", error)
                }
                DownloadErrorCode::Unsupported => ApiError::validation(format!("path: {error}")),
                DownloadErrorCode::Failed => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "agent_error",
                    format!("restic failed on the agent: {error}"),
                ),
            };
            return refused(&audit, error);
        }
        Ok(Err(StartRefused::Offline)) | Err(AskError::Offline) => {
            return refused(&audit, ApiError::host_offline(&host_id, "a download"));
        }
        Err(AskError::Timeout) => {
            session.do_send(CancelDownload {
                download_id: download_id.clone(),
            });
            let error = ApiError::agent_timeout(format!(
                "the agent did not start the download within {} s",
                READY_TIMEOUT.as_secs()
            ));
            return refused(&audit, error);
        }
    };
    tracing::info!(host_id = %host_id, download_id = %download_id, path = %path, kind = ?ready.kind, "download streaming");
    let limit = state.actors.config.max_download_bytes;
    let mut response = HttpResponse::Ok();
    response
        .content_type(match ready.kind {
            DownloadType::File => "application/octet-stream",
            DownloadType::Dir => "application/x-tar",
        })
        .insert_header(disposition(&path, ready.kind, &snapshot.short_id))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "no-store"));
    if let Some(size) = ready.size.filter(|size| *size <= limit) {
        response.no_chunking(size);
    }
    let body = DownloadBody {
        chunks,
        end,
        session,
        download_id,
        taken: 0,
        bytes: 0,
        finished: false,
        audit,
    };
    Ok(response.streaming(body))
}

/// Why a stream did not end complete (the connection is then closed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StreamCut(String);

/// The response body of a download: the session's channel, granting a
/// credit for every chunk the client takes, and telling the session to
/// stop the download if dropped before its end.
struct DownloadBody {
    chunks: mpsc::Receiver<Bytes>,
    end: DownloadEnd,
    session: Addr<HostSession>,
    download_id: String,
    /// Chunks taken since the last grant.
    taken: u32,
    /// Bytes handed to the client.
    bytes: u64,
    /// The stream reached its end (complete or not).
    finished: bool,
    audit: AuditInfo,
}

impl Stream for DownloadBody {
    type Item = Result<Bytes, StreamCut>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        match this.chunks.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                this.bytes += chunk.len() as u64;
                this.taken += 1;
                if this.taken >= DOWNLOAD_WINDOW / 2 {
                    this.session.do_send(GrantCredit {
                        download_id: this.download_id.clone(),
                        chunks: this.taken,
                    });
                    this.taken = 0;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.finished = true;
                match this.end.get() {
                    Some(DownloadOutcome::Complete) => Poll::Ready(None),
                    Some(outcome) => Poll::Ready(Some(Err(StreamCut(format!(
                        "download {} stopped: {outcome:?}",
                        this.download_id
                    ))))),
                    None => Poll::Ready(Some(Err(StreamCut(format!(
                        "download {} ended without an outcome",
                        this.download_id
                    ))))),
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for DownloadBody {
    fn drop(&mut self) {
        let outcome = if self.finished {
            self.end.get().cloned()
        } else {
            self.session.do_send(CancelDownload {
                download_id: self.download_id.clone(),
            });
            None
        };
        let (name, error) = match &outcome {
            Some(DownloadOutcome::Complete) => ("complete", None),
            Some(DownloadOutcome::Cut) => ("cut", Some("--max-download-bytes reached")),
            Some(DownloadOutcome::Failed(error)) => ("failed", Some(error.as_str())),
            Some(DownloadOutcome::AgentGone) => ("failed", Some("the agent disconnected")),
            None if self.finished => ("failed", Some("no outcome")),
            None => ("client_gone", None),
        };
        tracing::info!(download_id = %self.download_id, outcome = name, bytes = self.bytes, "download ended");
        self.audit.end(name, self.bytes, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths are normalised; relative, empty, NUL and `..` are refused
    /// naming the field.
    #[test]
    fn paths_are_checked() {
        assert_eq!(download_path(Some("/etc/nginx")).unwrap(), "/etc/nginx");
        assert_eq!(download_path(Some("/etc//nginx/./")).unwrap(), "/etc/nginx");
        assert_eq!(download_path(Some("/")).unwrap(), "/");
        for bad in [
            None,
            Some(""),
            Some("etc"),
            Some("/etc/../root"),
            Some("/a\0b"),
        ] {
            let err = download_path(bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.starts_with("path: "), "{}", err.message);
        }
    }

    /// File names: the last component, `.tar` for folders, non-ASCII and
    /// quotes made safe with the exact name in `filename*`.
    #[test]
    fn dispositions_are_safe() {
        let shown = |path, kind| disposition(path, kind, "4cf8eed2").to_string();
        assert_eq!(
            shown("/etc/nginx", DownloadType::Dir),
            "attachment; filename=\"nginx.tar\""
        );
        assert_eq!(
            shown("/etc/hosts", DownloadType::File),
            "attachment; filename=\"hosts\""
        );
        assert_eq!(
            shown("/", DownloadType::Dir),
            "attachment; filename=\"snapshot-4cf8eed2.tar\""
        );
        let odd = shown("/x/a\"b\\c\r\nd", DownloadType::File);
        assert!(
            odd.starts_with("attachment; filename=\"a_b_c__d\""),
            "{odd}"
        );
        assert!(!odd.contains('\r') && !odd.contains('\n'), "{odd}");
        let utf8 = shown("/x/résumé.txt", DownloadType::File);
        assert_eq!(
            utf8,
            "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
        );
    }
}
