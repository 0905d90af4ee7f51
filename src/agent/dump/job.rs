//! A dump backup as the runner sees it ([`DumpJob`]): prepared before
//! restic starts (plan, engine version), fed into restic's stdin while it
//! runs ([`DumpJob::start`], then the runner's `select!` polls
//! [`DumpJob::next`]), and folded into the job's outcome at the end
//! ([`DumpJob::finish`]). The runner stays one loop over restic's output;
//! everything dump-specific is here.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::process::ChildStdin;

use super::pipe::{self, Feed, FeedOutcome};
use super::{detect, engine_text, plan, temp_dir, DumpSource};
use crate::agent::process::LogSink;
use crate::agent::restic::Invocation;
use crate::protocol::{CommandRun, JobProgress, LogStreamKind, DUMP_BYTES_STAT, DUMP_ENGINE_STAT};

/// `job.progress.step` while the dump tool runs.
pub const STEP_DUMPING: &str = "dumping";
/// `job.progress.step` once the dump ended and restic finishes.
pub const STEP_UPLOADING: &str = "uploading";

/// Least time between two "dumping: N bytes" log lines.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long the feed gets to report after restic ended.
const FEED_END_WAIT: Duration = Duration::from_secs(5);

/// What the runner's loop gets from a running dump.
pub enum DumpEvent {
    /// A line of the tool's stderr.
    Line(String),
    /// The feed ended; with an error, restic must be interrupted before
    /// its stdin closes (no snapshot of a partial dump).
    Ended(Option<String>),
}

/// One dump backup.
pub struct DumpJob {
    source: Option<DumpSource>,
    feed: Option<Feed>,
    /// The database engine and version, when the server told it.
    engine: Option<String>,
    /// The feed's outcome, once known.
    ended: Option<Option<String>>,
    lines_open: bool,
    /// Restic's stdin after a failed dump, kept open until restic is gone.
    held_stdin: Option<ChildStdin>,
    last_log: Instant,
    /// The bytes dumped, kept once the feed is dropped.
    total: u64,
}

impl DumpJob {
    /// Builds the dump of `command` (none for other jobs) and asks the
    /// database server for its version. `Err`: the job fails before restic.
    pub async fn prepare(
        command: &CommandRun,
        invocation: &Invocation,
        sink: &mut LogSink,
    ) -> Option<Result<Self, String>> {
        let spec = command.dump.as_deref()?;
        let state_dir = invocation
            .env_value("RESTIC_CACHE_DIR")
            .map(std::path::Path::new)
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let built = plan(
            spec,
            &command.job_id,
            &temp_dir(&state_dir),
            detect::on_path("mariadb-dump"),
        );
        let plan = match built {
            Ok(plan) => plan,
            Err(err) => return Some(Err(format!("dump: {err}"))),
        };
        let engine = match &plan.version {
            Some(query) => match pipe::query_version(query).await {
                Ok(output) => engine_text(plan.engine, &output),
                Err(err) => {
                    sink.event(format!("cannot ask the database for its version: {err}"))
                        .await;
                    None
                }
            },
            None => None,
        };
        sink.event(format!(
            "dumping {} ({}) into {}",
            spec.database
                .as_deref()
                .or(spec.path.as_deref())
                .unwrap_or("all databases"),
            engine.as_deref().unwrap_or(plan.engine),
            spec.file_name()
        ))
        .await;
        Some(Ok(Self {
            source: Some(plan.source),
            feed: None,
            engine,
            ended: None,
            lines_open: true,
            held_stdin: None,
            last_log: Instant::now(),
            total: 0,
        }))
    }

    /// Starts feeding restic's stdin.
    pub fn start(&mut self, stdin: ChildStdin) {
        if let Some(source) = self.source.take() {
            self.feed = Some(pipe::start(source, stdin));
        }
    }

    /// Whether [`next`](Self::next) has anything left to give.
    pub fn active(&self) -> bool {
        self.feed.is_some() && (self.lines_open || self.ended.is_none())
    }

    /// The next line or the end of the feed.
    pub async fn next(&mut self) -> DumpEvent {
        let Some(feed) = self.feed.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                line = feed.lines.recv(), if self.lines_open => match line {
                    Some(line) => return DumpEvent::Line(line),
                    None => self.lines_open = false,
                },
                outcome = &mut feed.task, if self.ended.is_none() => {
                    let outcome = outcome.unwrap_or_else(|err| FeedOutcome {
                        error: Some(format!("the dump task failed: {err}")),
                        held_stdin: None,
                    });
                    self.held_stdin = outcome.held_stdin;
                    self.ended = Some(outcome.error.clone());
                    return DumpEvent::Ended(outcome.error);
                },
                else => return std::future::pending().await,
            }
        }
    }

    /// Logs an event of the feed and says whether restic must now be
    /// interrupted (the dump failed).
    pub async fn on_event(&mut self, event: DumpEvent, sink: &mut LogSink) -> bool {
        match event {
            DumpEvent::Line(line) => {
                sink.line(LogStreamKind::Stderr, line).await;
                false
            }
            DumpEvent::Ended(None) => {
                sink.event(format!("dump complete: {} bytes; uploading", self.bytes()))
                    .await;
                false
            }
            DumpEvent::Ended(Some(error)) => {
                sink.event(format!(
                    "{error}; stopping restic so that no snapshot is saved"
                ))
                .await;
                true
            }
        }
    }

    /// Bytes dumped so far.
    pub fn bytes(&self) -> u64 {
        self.feed
            .as_ref()
            .map_or(self.total, |feed| feed.bytes.load(Ordering::Relaxed))
    }

    /// Adds the step and the bytes dumped to restic's progress, and logs
    /// them every [`LOG_INTERVAL`].
    pub async fn decorate(&mut self, progress: &mut JobProgress, sink: &mut LogSink) {
        let step = if self.ended.is_some() {
            STEP_UPLOADING
        } else {
            STEP_DUMPING
        };
        progress.step = Some(step.to_owned());
        progress.dumped_bytes = Some(self.bytes());
        if step == STEP_DUMPING && self.last_log.elapsed() >= LOG_INTERVAL {
            self.last_log = Instant::now();
            sink.event(format!("dumping: {} bytes so far", self.bytes()))
                .await;
        }
    }

    /// After restic ended: the feed's error, if any (waiting briefly for
    /// a feed whose end the loop did not see yet), and the stdin released.
    pub async fn finish(&mut self, sink: &mut LogSink) -> Option<String> {
        if self.ended.is_none() && self.feed.is_some() {
            match tokio::time::timeout(FEED_END_WAIT, self.next_end()).await {
                Ok(error) => {
                    if let Some(error) = &error {
                        sink.event(error.clone()).await;
                    }
                    self.ended = Some(error);
                }
                Err(_) => self.ended = Some(Some("restic ended before the dump".to_owned())),
            }
        }
        self.held_stdin = None;
        self.total = self.bytes();
        self.feed = None; // kills a tool still running
        self.ended.clone().flatten()
    }

    async fn next_end(&mut self) -> Option<String> {
        loop {
            if let DumpEvent::Ended(error) = self.next().await {
                return error;
            }
            // Lines after restic ended are dropped: the error says enough.
        }
    }

    /// Adds the engine and the bytes dumped to a backup's stats.
    pub fn add_stats(&self, stats: &mut serde_json::Map<String, serde_json::Value>) {
        if let Some(engine) = &self.engine {
            stats.insert(DUMP_ENGINE_STAT.to_owned(), engine.clone().into());
        }
        stats.insert(DUMP_BYTES_STAT.to_owned(), self.bytes().into());
    }
}
