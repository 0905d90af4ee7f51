//! What every child process of a job shares: the job's stop request, the
//! [`LogSink`] that numbers its log lines, and the bounded [`LineReader`]
//! over a child's pipes. [`super::runner`] (restic) and [`super::hooks`]
//! (pre/post hooks) both build on these, and neither imports the other.

use std::pin::Pin;

use chrono::Utc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::protocol::{AgentToServer, LogStream, LogStreamKind};

/// Longest log line kept, in bytes; the rest of a longer line is cut.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Why a running job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `command.cancel`: the job ends `cancelled`.
    Cancelled,
    /// The agent is shutting down: the job ends `failed`.
    Shutdown,
}

/// The receiving side of a job's stop request (`None` until stopped).
pub type StopSignal = watch::Receiver<Option<StopReason>>;

/// Resolves when a stop is requested; never if the sender is gone.
pub async fn stop_requested(signal: &mut StopSignal) -> StopReason {
    let reason = signal
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|reason| *reason);
    match reason {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

/// Emits a job's live messages, numbering its log lines.
#[derive(Debug)]
pub struct LogSink {
    job_id: String,
    next_seq: u64,
    tx: mpsc::Sender<AgentToServer>,
}

impl LogSink {
    /// A sink for `job_id`, numbering from 1.
    pub fn new(job_id: impl Into<String>, tx: mpsc::Sender<AgentToServer>) -> Self {
        Self {
            job_id: job_id.into(),
            next_seq: 1,
            tx,
        }
    }

    /// The job id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Sends one `log.stream` line.
    pub async fn line(&mut self, stream: LogStreamKind, payload: String) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.send(AgentToServer::from(LogStream {
            job_id: self.job_id.clone(),
            seq,
            ts: Utc::now(),
            stream,
            payload,
        }))
        .await;
    }

    /// Sends an agent event line (`stream: event`).
    pub async fn event(&mut self, text: impl Into<String>) {
        self.line(LogStreamKind::Event, text.into()).await;
    }

    /// Sends any live message. A closed channel (the daemon is gone) drops
    /// it: live messages are best effort by protocol.
    pub async fn send(&self, message: AgentToServer) {
        // Err only when the receiver is dropped, i.e. the agent is stopping.
        let _ = self.tx.send(message).await;
    }
}

/// Reads lines from a pipe without ever holding more than
/// [`MAX_LINE_BYTES`] of one line, and safely inside `select!` (bytes read
/// before a cancelled call are kept for the next one).
pub struct LineReader<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    truncated: bool,
    done: bool,
}

impl<R: tokio::io::AsyncRead + Unpin> LineReader<R> {
    /// Wraps a pipe.
    pub fn new(reader: R) -> Self {
        Self {
            reader: BufReader::new(reader),
            buf: Vec::new(),
            truncated: false,
            done: false,
        }
    }

    /// The next line without its line ending (lossy UTF-8), `None` at the
    /// end of the stream or on a read error.
    pub async fn next_line(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(available) => available,
                Err(err) => {
                    tracing::debug!("pipe read failed: {err}");
                    self.done = true;
                    return self.take_partial();
                }
            };
            if available.is_empty() {
                self.done = true;
                return self.take_partial();
            }
            let (chunk, consumed, complete) = match available.iter().position(|b| *b == b'\n') {
                Some(end) => (&available[..end], end + 1, true),
                None => (available, available.len(), false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.buf.len());
            if chunk.len() > room {
                self.truncated = true;
            }
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            Pin::new(&mut self.reader).consume(consumed);
            if complete {
                return Some(self.take_line());
            }
        }
    }

    fn take_partial(&mut self) -> Option<String> {
        (!self.buf.is_empty() || self.truncated).then(|| self.take_line())
    }

    fn take_line(&mut self) -> String {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let mut line = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            line.push_str(" …[line cut]");
        }
        self.buf.clear();
        self.truncated = false;
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all_lines(reader: &[u8]) -> Vec<String> {
        let mut reader = LineReader::new(reader);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await {
            lines.push(line);
        }
        lines
    }

    /// Lines are split on \n and \r\n, a last line without newline is
    /// kept, invalid UTF-8 is replaced, and an endless line is cut.
    #[tokio::test]
    async fn line_reader_splits_and_bounds() {
        let input = b"one\r\ntwo\n\xff\xfethree\nlast".to_vec();
        let lines = read_all_lines(&input[..]).await;
        assert_eq!(lines, vec!["one", "two", "\u{fffd}\u{fffd}three", "last"]);

        let mut long = vec![b'a'; MAX_LINE_BYTES * 3];
        long.extend_from_slice(b"\nnext\n");
        let lines = read_all_lines(&long[..]).await;
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("aaaa"));
        assert!(lines[0].ends_with("…[line cut]"));
        assert!(lines[0].len() < MAX_LINE_BYTES + 32);
        assert_eq!(lines[1], "next");
        assert!(read_all_lines(&b""[..]).await.is_empty());
    }

    /// Log lines are numbered from 1 per sink.
    #[tokio::test]
    async fn sink_numbers_lines() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut sink = LogSink::new("j9", tx);
        sink.line(LogStreamKind::Stdout, "a".to_owned()).await;
        sink.event("b").await;
        drop(sink);
        let mut seqs = Vec::new();
        while let Some(message) = rx.recv().await {
            let AgentToServer::LogStream(line) = message else {
                panic!("expected log.stream")
            };
            assert_eq!(line.job_id, "j9");
            seqs.push((line.seq, line.stream, line.payload));
        }
        assert_eq!(
            seqs,
            vec![
                (1, LogStreamKind::Stdout, "a".to_owned()),
                (2, LogStreamKind::Event, "b".to_owned())
            ]
        );
    }
}
