//! Downloads on the agent: `download.start` runs `restic dump` and streams
//! its standard output to the server as binary data frames, never to disk,
//! only as fast as the server grants credits (`download.credit`), so a slow
//! HTTP client slows restic down.
//!
//! One download, in order:
//!
//! 1. Unless the path is `/` (the whole snapshot, a folder), `restic ls
//!    --json --no-lock <snapshot> <path>` says what the path is: its first
//!    entry is the path itself (a folder's children follow; `ls` is
//!    stopped once it has been read). No entry: `download.end` with code
//!    `not_found`. A symlink or device: `unsupported`.
//! 2. `restic dump` (with `--archive tar` for a folder) runs in a process
//!    group of its own. Once its first bytes are read (or it ended cleanly
//!    with none), `download.ready {type, size}` goes out; if it fails
//!    before printing anything, only `download.end` with its error does.
//! 3. Each data frame carries at most [`DOWNLOAD_CHUNK_BYTES`] and costs
//!    one credit; `download.start.window` is the first grant.
//! 4. At restic's end: `download.end {bytes}` (with `code: failed` and
//!    restic's error when it exited non-zero).
//!
//! `download.cancel` (or the connection's end, or the agent's shutdown)
//! interrupts restic (SIGINT, so it removes its lock) while its output is
//! drained and dropped, and kills its process group after
//! [`CANCEL_GRACE`]; a cancelled download sends nothing more.
//!
//! The downloads are futures polled by the daemon's one `select!` loop
//! ([`Downloads::next`]), like its job: no spawned task, and dropping the
//! daemon drops them (restic has `kill_on_drop`).

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdout};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Bytes;

use super::platform;
use super::process::LineReader;
use super::restic::{RepoSettings, ResticHost};
use super::runner::{self, CANCEL_GRACE};
use probe::probe_path;

mod probe;
use crate::protocol::{
    data_frame_header, AgentToServer, DownloadCredit, DownloadEnd, DownloadErrorCode,
    DownloadReady, DownloadStart, DownloadType, DOWNLOAD_CHUNK_BYTES,
};

/// Downloads running at once; a `download.start` beyond this is refused
/// with `download.end` (code `failed`).
pub const MAX_DOWNLOADS: usize = 8;

/// Most credits a download may hold (a larger grant is capped).
pub const MAX_CREDITS: usize = 1024;

/// Longest the `restic ls` probe may take (it loads the repository index).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// restic's last stderr lines kept for `download.end.error`.
pub(super) const STDERR_LINES: usize = 8;

/// Outgoing items buffered between the downloads and the socket.
const OUT_BUFFER: usize = 16;

/// What the downloads have for the socket.
#[derive(Debug)]
pub enum Outgoing {
    /// A JSON message (`download.ready`, `download.end`).
    Message(AgentToServer),
    /// A complete binary data frame.
    Data(Bytes),
}

/// What [`Downloads::next`] yields to the daemon.
#[derive(Debug)]
pub enum DownloadEvent {
    /// Send this.
    Send(Outgoing),
    /// This download ended (its state is dropped).
    Done(String),
}

/// The controls of one running download.
struct Control {
    credit: Arc<Semaphore>,
    cancel: watch::Sender<bool>,
}

/// Every running download, owned by the daemon.
pub struct Downloads {
    running: HashMap<String, Control>,
    work: FuturesUnordered<BoxFuture<'static, String>>,
    out_tx: mpsc::Sender<Outgoing>,
    out_rx: mpsc::Receiver<Outgoing>,
}

impl Default for Downloads {
    fn default() -> Self {
        let (out_tx, out_rx) = mpsc::channel(OUT_BUFFER);
        Self {
            running: HashMap::new(),
            work: FuturesUnordered::new(),
            out_tx,
            out_rx,
        }
    }
}

impl Downloads {
    /// How many downloads run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// True when none runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// `download.start`: starts the download (a refusal is its
    /// `download.end`, sent through [`Self::next`] like everything else).
    pub fn start(&mut self, start: DownloadStart, restic: &ResticHost, repo: &RepoSettings) {
        if self.running.contains_key(&start.download_id) {
            tracing::warn!(download_id = %start.download_id, "download.start for a running download; ignored");
            return;
        }
        let refusal = if self.running.len() >= MAX_DOWNLOADS {
            Some(format!(
                "this agent already runs {MAX_DOWNLOADS} downloads; try again later"
            ))
        } else {
            check_request(&start).err()
        };
        let credit = Arc::new(Semaphore::new(
            usize::try_from(start.window)
                .unwrap_or(MAX_CREDITS)
                .min(MAX_CREDITS),
        ));
        let (cancel, cancel_rx) = watch::channel(false);
        let id = start.download_id.clone();
        tracing::info!(download_id = %id, snapshot_id = %start.snapshot_id, path = %start.path, "download started");
        let job = Download {
            start,
            restic: restic.clone(),
            repo: repo.clone(),
            credit: credit.clone(),
            cancel: cancel_rx,
            out: self.out_tx.clone(),
        };
        let work = match refusal {
            Some(error) => async move {
                job.end(0, Some((DownloadErrorCode::Failed, error))).await;
                job.start.download_id
            }
            .boxed(),
            None => job.run().boxed(),
        };
        self.running.insert(id, Control { credit, cancel });
        self.work.push(work);
    }

    /// `download.credit`: more data frames allowed.
    pub fn credit(&mut self, credit: &DownloadCredit) {
        if let Some(control) = self.running.get(&credit.download_id) {
            let room = MAX_CREDITS.saturating_sub(control.credit.available_permits());
            let chunks = usize::try_from(credit.chunks).unwrap_or(room).min(room);
            control.credit.add_permits(chunks);
        }
    }

    /// `download.cancel`: stops the download's restic.
    pub fn cancel(&mut self, download_id: &str) {
        if let Some(control) = self.running.get(download_id) {
            tracing::info!(download_id, "download cancelled by the server");
            // Err only if the download already ended.
            let _ = control.cancel.send(true);
        }
    }

    /// Stops every download (the connection ended: nobody reads them).
    pub fn cancel_all(&mut self) {
        for (download_id, control) in &self.running {
            tracing::info!(download_id = %download_id, "download stopped: the connection ended");
            // Err only if the download already ended.
            let _ = control.cancel.send(true);
        }
    }

    /// The next thing to send, or a download that ended; pending while
    /// nothing runs.
    pub async fn next(&mut self) -> DownloadEvent {
        tokio::select! {
            Some(out) = self.out_rx.recv() => DownloadEvent::Send(out),
            Some(id) = self.work.next(), if !self.work.is_empty() => {
                self.running.remove(&id);
                DownloadEvent::Done(id)
            }
            else => std::future::pending().await,
        }
    }

    /// Cancels every download and waits for them to stop (bounded by
    /// [`CANCEL_GRACE`] each), dropping what they would send.
    pub async fn shutdown(&mut self) {
        self.cancel_all();
        while !self.work.is_empty() {
            tokio::select! {
                _ = self.work.next() => {}
                _ = self.out_rx.recv() => {}
            }
        }
        self.running.clear();
    }
}

/// Refuses a request the agent must not run: a snapshot id that is not
/// hex, a path that is not absolute or holds `..` or NUL. (The server
/// checks the same; the agent does not trust it.)
fn check_request(start: &DownloadStart) -> Result<(), String> {
    let id = &start.snapshot_id;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("snapshot_id: must be restic's hex snapshot id".to_owned());
    }
    let path = &start.path;
    if !path.starts_with('/') || path.contains('\0') || path.split('/').any(|part| part == "..") {
        return Err("path: must be absolute, without `..` or NUL".to_owned());
    }
    if data_frame_header(&start.download_id).is_none() {
        return Err("download_id: must be 1 to 255 bytes".to_owned());
    }
    Ok(())
}

/// Why a download did not stream.
pub(super) type Failure = (DownloadErrorCode, String);

/// One running download.
struct Download {
    start: DownloadStart,
    restic: ResticHost,
    repo: RepoSettings,
    credit: Arc<Semaphore>,
    cancel: watch::Receiver<bool>,
    out: mpsc::Sender<Outgoing>,
}

/// What a step of the streaming loop saw.
enum Step {
    Cancelled,
    Stderr(Option<String>),
    Filled(std::io::Result<bool>),
    Credit,
}

impl Download {
    /// Runs the download to its end; resolves to its id.
    async fn run(mut self) -> String {
        let outcome = self.stream().await;
        match outcome {
            Ok(None) => {}
            Ok(Some(bytes)) => self.end(bytes, None).await,
            Err((bytes, failure)) => {
                tracing::info!(download_id = %self.start.download_id, error = %failure.1, "download failed");
                self.end(bytes, Some(failure)).await;
            }
        }
        self.start.download_id
    }

    /// Sends `download.end`.
    async fn end(&self, bytes: u64, failure: Option<Failure>) {
        let (code, error) = failure.map_or((None, None), |(code, error)| (Some(code), Some(error)));
        self.send(Outgoing::Message(AgentToServer::from(DownloadEnd {
            download_id: self.start.download_id.clone(),
            bytes,
            code,
            error,
        })))
        .await;
    }

    async fn send(&self, out: Outgoing) {
        // Err only when the daemon is gone (shutting down).
        let _ = self.out.send(out).await;
    }

    /// Probes, dumps and streams. `Ok(Some(bytes))`: all sent;
    /// `Ok(None)`: cancelled; `Err`: failed after `bytes`.
    async fn stream(&mut self) -> Result<Option<u64>, (u64, Failure)> {
        let (kind, size) = if self.start.path == "/" {
            (DownloadType::Dir, None)
        } else {
            let probe = self
                .restic
                .ls_path(&self.repo, &self.start.snapshot_id, &self.start.path)
                .map_err(|err| (0, (DownloadErrorCode::Failed, err.to_string())))?;
            let found = tokio::select! {
                found = probe_path(&probe, &self.start.path, &self.start.snapshot_id) => found,
                () = cancelled(&mut self.cancel) => return Ok(None),
            };
            found.map_err(|failure| (0, failure))?
        };
        let dump = self
            .restic
            .dump(
                &self.repo,
                &self.start.snapshot_id,
                &self.start.path,
                kind == DownloadType::Dir,
            )
            .map_err(|err| (0, (DownloadErrorCode::Failed, err.to_string())))?;
        let mut command = dump.command();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        platform::own_process_group(&mut command);
        let mut child = command.spawn().map_err(|err| {
            let error = runner::spawn_error(&dump.program, &err);
            (0, (DownloadErrorCode::Failed, error))
        })?;
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let error = "restic started without output pipes".to_owned();
            return Err((0, (DownloadErrorCode::Failed, error)));
        };
        let mut stderr = LineReader::new(stderr);
        let mut stderr_tail: VecDeque<String> = VecDeque::new();
        let mut stderr_open = true;
        let Some(header) = data_frame_header(&self.start.download_id) else {
            let error = "download_id: must be 1 to 255 bytes".to_owned();
            return Err((0, (DownloadErrorCode::Failed, error)));
        };
        let mut frame = header.clone();
        let mut eof = false;
        let mut ready = false;
        let mut sent: u64 = 0;
        let mut read_error = None;
        loop {
            let has_data = frame.len() > header.len();
            let want_fill = !eof && frame.len() < header.len() + DOWNLOAD_CHUNK_BYTES;
            if !want_fill && !has_data {
                break;
            }
            if !want_fill && !ready {
                self.ready(kind, size).await;
                ready = true;
            }
            let step = tokio::select! {
                biased;
                () = cancelled(&mut self.cancel) => Step::Cancelled,
                line = stderr.next_line(), if stderr_open => Step::Stderr(line),
                filled = fill(&mut stdout, &mut frame, header.len()), if want_fill => Step::Filled(filled),
                permit = self.credit.acquire(), if !want_fill => match permit {
                    Ok(permit) => {
                        permit.forget();
                        Step::Credit
                    }
                    Err(_) => Step::Cancelled,
                },
            };
            match step {
                Step::Cancelled => {
                    stop_dump(&mut child, stdout, &mut stderr, &self.start.download_id).await;
                    return Ok(None);
                }
                Step::Stderr(Some(line)) => {
                    if stderr_tail.len() == STDERR_LINES {
                        stderr_tail.pop_front();
                    }
                    stderr_tail.push_back(line);
                }
                Step::Stderr(None) => stderr_open = false,
                Step::Filled(Ok(at_end)) => eof = at_end,
                Step::Filled(Err(err)) => {
                    read_error = Some(format!("cannot read restic's output: {err}"));
                    eof = true;
                }
                Step::Credit => {
                    let mut next = Vec::with_capacity(header.len() + DOWNLOAD_CHUNK_BYTES);
                    next.extend_from_slice(&header);
                    let data = std::mem::replace(&mut frame, next);
                    sent += (data.len() - header.len()) as u64;
                    self.send(Outgoing::Data(Bytes::from(data))).await;
                }
            }
        }
        while let Some(line) = stderr.next_line().await {
            if stderr_tail.len() == STDERR_LINES {
                stderr_tail.pop_front();
            }
            stderr_tail.push_back(line);
        }
        let status = child.wait().await;
        let failure = match (status, read_error) {
            (_, Some(error)) => Some(error),
            (Ok(status), None) if status.success() => None,
            (Ok(status), None) => {
                let code = platform::exit_code(status);
                let text = Vec::from(stderr_tail).join("\n");
                Some(if text.is_empty() {
                    format!("restic dump exited with code {code}")
                } else {
                    text
                })
            }
            (Err(err), None) => Some(format!("cannot wait for restic: {err}")),
        };
        match failure {
            Some(error) => Err((sent, (DownloadErrorCode::Failed, error))),
            None => {
                if !ready {
                    self.ready(kind, size).await;
                }
                Ok(Some(sent))
            }
        }
    }

    async fn ready(&self, kind: DownloadType, size: Option<u64>) {
        self.send(Outgoing::Message(AgentToServer::from(DownloadReady {
            download_id: self.start.download_id.clone(),
            kind,
            size,
        })))
        .await;
    }
}

/// Resolves once the download is cancelled (or its controls are gone).
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    // Err: the sender is gone, which also means stop.
    let _ = cancel.wait_for(|stop| *stop).await;
}

/// Reads into `frame` until it holds a full chunk after `header_len`
/// bytes of header; true at the end of the output. Cancel-safe: bytes
/// read before a cancelled call stay in `frame`.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame: &mut Vec<u8>,
    header_len: usize,
) -> std::io::Result<bool> {
    let full = header_len + DOWNLOAD_CHUNK_BYTES;
    while frame.len() < full {
        let mut limited = (&mut *reader).take((full - frame.len()) as u64);
        if limited.read_buf(frame).await? == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stops a cancelled dump: SIGINT (restic removes its lock) while its
/// output is drained and dropped, SIGKILL to its process group after
/// [`CANCEL_GRACE`], then reaps it.
async fn stop_dump(
    child: &mut Child,
    mut stdout: ChildStdout,
    stderr: &mut LineReader<tokio::process::ChildStderr>,
    download_id: &str,
) {
    if let Err(err) = platform::interrupt(child) {
        tracing::warn!(download_id, "cannot interrupt restic dump: {err}");
    }
    let drain = async {
        let mut sink = vec![0u8; DOWNLOAD_CHUNK_BYTES];
        while let Ok(n) = stdout.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
        while stderr.next_line().await.is_some() {}
        child.wait().await
    };
    let status = tokio::time::timeout(CANCEL_GRACE, drain).await;
    let exited = matches!(status, Ok(Ok(_)));
    if !exited {
        tracing::warn!(
            download_id,
            "restic dump ignored SIGINT; killing its process group"
        );
        if let Err(err) = platform::kill_group(child) {
            tracing::warn!(download_id, "cannot kill restic dump: {err}");
        }
        // Reap it; it was just killed, so this is quick.
        let _ = child.wait().await;
    }
    tracing::info!(download_id, "restic dump stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(snapshot_id: &str, path: &str) -> DownloadStart {
        DownloadStart {
            download_id: "d1".to_owned(),
            snapshot_id: snapshot_id.to_owned(),
            path: path.to_owned(),
            window: 4,
        }
    }

    /// The agent refuses what the server should never send.
    #[test]
    fn requests_are_checked() {
        assert!(check_request(&start("4cf8eed2", "/etc/nginx")).is_ok());
        assert!(check_request(&start("4cf8eed2", "/")).is_ok());
        for (snapshot, path, field) in [
            ("", "/etc", "snapshot_id"),
            ("latest", "/etc", "snapshot_id"),
            ("4cf8", "etc", "path"),
            ("4cf8", "/etc/../root", "path"),
            ("4cf8", "/etc\0x", "path"),
        ] {
            let err = check_request(&start(snapshot, path)).unwrap_err();
            assert!(err.starts_with(field), "{snapshot} {path}: {err}");
        }
    }

    /// `fill` reads whole chunks, keeps a short last one, and reports the
    /// end.
    #[tokio::test]
    async fn fill_makes_whole_chunks() {
        let data: Vec<u8> = (0..DOWNLOAD_CHUNK_BYTES + 10).map(|i| i as u8).collect();
        let mut reader = &data[..];
        let mut frame = vec![9, 9];
        assert!(!fill(&mut reader, &mut frame, 2).await.unwrap());
        assert_eq!(frame.len(), 2 + DOWNLOAD_CHUNK_BYTES);
        assert_eq!(&frame[2..], &data[..DOWNLOAD_CHUNK_BYTES]);
        let mut frame = vec![9, 9];
        assert!(fill(&mut reader, &mut frame, 2).await.unwrap());
        assert_eq!(&frame[2..], &data[DOWNLOAD_CHUNK_BYTES..]);
    }
}
