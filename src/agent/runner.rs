//! Runs one job: the pre hook, restic, the post hook, and turns what they
//! print into protocol messages.
//!
//! - Every output line becomes a `log.stream` with the job's own `seq`
//!   (from 1, strictly increasing, shared by hooks, restic and agent
//!   events); restic's status lines (backup, and restore from 0.16) also
//!   become `job.progress`, at most two per second ([`ProgressThrottle`]).
//! - A stop request ([`StopReason`]) interrupts restic (SIGINT, so it
//!   removes its lock), then kills it after [`CANCEL_GRACE`].
//! - A `catalog` job's stdout is not logged: it is the listing, sent as
//!   `catalog.chunk`s ([`CatalogStream`]); its `job.finished` stats hold
//!   the number of entries listed.
//! - The result is the `job.finished` payload; the caller makes it durable.
//!
//! The daemon runs one job at a time; this module does not know about
//! connections or the journal: it only sends on a channel, and a full
//! channel slows restic down rather than growing memory.
//! [`capture`] runs the short report commands (snapshots, stats, locks,
//! version) whose output is parsed, not streamed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use super::catalog::CatalogStream;
use super::config::HooksConfig;
use super::drill;
use super::dump::job::{DumpEvent, DumpJob};
use super::hooks::{self, HookOutcome, HookPhase};
use super::journal::EXIT_CODE_NOT_RUN;
use super::platform;
use super::process::{stop_requested, LineReader};
// Re-exported: callers of the runner name these as `runner::…`.
pub use super::process::{LogSink, StopReason, StopSignal, MAX_LINE_BYTES};
use super::restic::{self, Invocation, OutputDigest, OutputLine};
use crate::protocol::{
    AgentToServer, CommandRun, FinishStatus, JobFinished, JobKind, JobProgress, JobStarted,
    LogStreamKind, ENTRIES_STAT,
};

/// Longest the `restic unlock` after an interrupted job may hold the job's
/// end (it takes a second or two even on a remote repository).
const JOB_UNLOCK_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// Time restic gets to exit after SIGINT before it is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Least time between two `job.progress` messages of a job (2 per second).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Error text of a job stopped because the agent was shutting down.
pub const STOPPED_ERROR: &str = "agent stopped during the job";

/// Error text of a job cancelled by `command.cancel`.
pub const CANCELLED_ERROR: &str = "cancelled on request";

/// Limits `job.progress` to one per [`PROGRESS_INTERVAL`], keeping the
/// latest held-back value so the final state is never lost.
#[derive(Debug, Default)]
pub struct ProgressThrottle {
    last_sent: Option<Instant>,
    held: Option<JobProgress>,
}

impl ProgressThrottle {
    /// Offers a progress value at `now`; returns what to send now, if any.
    pub fn offer(&mut self, progress: JobProgress, now: Instant) -> Option<JobProgress> {
        let due = self
            .last_sent
            .is_none_or(|last| now.duration_since(last) >= PROGRESS_INTERVAL);
        if due {
            self.last_sent = Some(now);
            self.held = None;
            Some(progress)
        } else {
            self.held = Some(progress);
            None
        }
    }

    /// The held-back value, to send when the job ends.
    pub fn flush(&mut self) -> Option<JobProgress> {
        self.held.take()
    }
}

/// Everything needed to run one job.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// The `command.run`.
    pub command: CommandRun,
    /// The restic run (arguments and credentials).
    pub invocation: Invocation,
    /// The hooks from `agent.toml`.
    pub hooks: HooksConfig,
    /// The shell for hooks (`config.update.hook_shell` or the platform's).
    pub hook_shell: String,
    /// Time restic gets after SIGINT before SIGKILL.
    pub cancel_grace: Duration,
}

/// Runs a job to its end and returns its `job.finished` payload. Sends
/// `job.started`, `log.stream` and `job.progress` through `sink`.
pub async fn run_job(plan: JobPlan, sink: &mut LogSink, stop: &mut StopSignal) -> JobFinished {
    run_job_observed(plan, sink, stop, &mut |_| {}).await
}

/// [`run_job`], calling `on_spawn` with restic's pid right after it
/// started and before any of its output is read (the daemon journals it, so
/// that a restarted agent can stop a restic its crash left behind).
pub async fn run_job_observed(
    plan: JobPlan,
    sink: &mut LogSink,
    stop: &mut StopSignal,
    on_spawn: &mut (dyn FnMut(u32) + Send),
) -> JobFinished {
    let kind = plan.command.kind;
    sink.send(AgentToServer::from(JobStarted {
        job_id: sink.job_id().to_owned(),
        kind,
        started_at: Utc::now(),
    }))
    .await;
    if let Err(reason) = super::preflight::check(&plan.invocation).await {
        return finished(
            sink,
            FinishStatus::Failed,
            EXIT_CODE_NOT_RUN,
            None,
            Some(reason),
        );
    }
    let hooks_apply = plan.hooks.applies_to(kind);

    if let (true, Some(script)) = (hooks_apply, plan.hooks.pre.as_deref()) {
        let outcome = hooks::run_hook(
            HookPhase::Pre,
            &plan.hook_shell,
            script,
            &hook_env(&plan.command, None),
            Duration::from_secs(plan.hooks.timeout_seconds),
            sink,
            stop,
        )
        .await;
        match outcome {
            HookOutcome::Succeeded => {}
            HookOutcome::Failed(reason) => {
                return finished(
                    sink,
                    FinishStatus::Failed,
                    EXIT_CODE_NOT_RUN,
                    None,
                    Some(reason),
                );
            }
            HookOutcome::Stopped(reason) => {
                let (status, error) = stopped_outcome(reason);
                return finished(
                    sink,
                    status,
                    EXIT_CODE_NOT_RUN,
                    None,
                    Some(error.to_owned()),
                );
            }
        }
    }

    let mut catalog = (kind == JobKind::Catalog)
        .then(|| CatalogStream::new(plan.command.snapshot_id.clone().unwrap_or_default()));
    let drill_started = std::time::Instant::now();
    let drill_dir = (kind == JobKind::Drill)
        .then(|| drill::target_of(&plan.invocation))
        .flatten();
    if let Some(dir) = &drill_dir {
        if let Err(err) = drill::prepare(dir.clone()).await {
            drill::remove(dir.clone()).await;
            return finished(
                sink,
                FinishStatus::Failed,
                EXIT_CODE_NOT_RUN,
                None,
                Some(format!("drill: cannot create its private folder: {err}")),
            );
        }
    }
    let mut dump = match DumpJob::prepare(&plan.command, &plan.invocation, sink).await {
        Some(Ok(dump)) => Some(dump),
        Some(Err(error)) => {
            sink.event(error.clone()).await;
            return finished(
                sink,
                FinishStatus::Failed,
                EXIT_CODE_NOT_RUN,
                None,
                Some(error),
            );
        }
        None => None,
    };
    let (exit_code, digest, stopped) =
        run_restic(&plan, sink, stop, on_spawn, catalog.as_mut(), dump.as_mut()).await;

    let (mut status, mut error) = match stopped {
        Some(reason) => {
            let (status, error) = stopped_outcome(reason);
            (status, Some(error.to_owned()))
        }
        None => match exit_code {
            Ok(code) => (restic::finish_status(code), digest.error_text(code)),
            Err(ref message) => (FinishStatus::Failed, Some(message.clone())),
        },
    };
    // A failed dump fails the job whatever restic said (restic was
    // interrupted before the end of its input: no snapshot).
    let dump_error = match dump.as_mut() {
        Some(dump) => dump.finish(sink).await,
        None => None,
    };
    if let (Some(dump_error), None) = (dump_error, stopped) {
        status = FinishStatus::Failed;
        error = Some(dump_error);
    }
    let mut catalog_stats = None;
    if let Some(catalog) = catalog.as_mut() {
        match catalog.finish(sink).await {
            Ok(entries) => catalog_stats = Some(entries),
            Err(reason) if status == FinishStatus::Succeeded => {
                status = FinishStatus::Failed;
                error = Some(reason);
            }
            Err(_) => {}
        }
    }
    let exit_code = exit_code.unwrap_or(EXIT_CODE_NOT_RUN);
    let mut drill_stats = None;
    if let Some(dir) = drill_dir {
        if let (FinishStatus::Succeeded, Some(spec)) = (status, plan.command.drill.as_deref()) {
            let mismatches = drill::compare(spec, &dir).await;
            let (stats, failure) = drill::stats(spec, &mismatches, drill_started.elapsed());
            if failure.is_some() {
                status = FinishStatus::Failed;
                error = failure;
            }
            drill_stats = Some(stats);
        } else if status != FinishStatus::Cancelled {
            // restic failed (a damaged pack, a --verify mismatch): the
            // drill fails with restic's words.
            error = Some(format!(
                "drill failed: the restore did not complete: {}",
                error.unwrap_or_else(|| format!("restic exited with {exit_code}"))
            ));
            status = FinishStatus::Failed;
        }
        drill::remove(dir).await;
    }

    if let (true, Some(script)) = (hooks_apply, plan.hooks.post.as_deref()) {
        // The post hook runs whatever happened (it usually cleans up), with
        // the outcome in its environment; a stop request no longer applies.
        let (_keep, mut no_stop) = watch::channel(None);
        let outcome = hooks::run_hook(
            HookPhase::Post,
            &plan.hook_shell,
            script,
            &hook_env(&plan.command, Some((status, exit_code))),
            Duration::from_secs(plan.hooks.timeout_seconds),
            sink,
            &mut no_stop,
        )
        .await;
        let failure = match outcome {
            HookOutcome::Succeeded => None,
            HookOutcome::Failed(reason) => Some(reason),
            HookOutcome::Stopped(_) => Some("post hook stopped".to_owned()),
        };
        if let Some(reason) = failure {
            let warning = format!("warning: {reason}");
            error = Some(match error {
                Some(error) => format!("{error}; {warning}"),
                None => warning,
            });
        }
    }
    let stats = match kind {
        _ if status == FinishStatus::Cancelled => None,
        JobKind::Backup => {
            let mut stats = digest.summary().cloned();
            if let (Some(dump), Some(stats)) = (&dump, stats.as_mut()) {
                dump.add_stats(stats);
            }
            stats
        }
        JobKind::Restore => super::restore::stats(&plan.command, &digest, exit_code).await,
        JobKind::Drill => drill_stats,
        // How many entries were listed: the server checks it stored them all.
        JobKind::Catalog if status == FinishStatus::Succeeded => catalog_stats.map(|entries| {
            let mut stats = serde_json::Map::new();
            stats.insert(ENTRIES_STAT.to_owned(), entries.into());
            stats
        }),
        _ => None,
    };
    finished(sink, status, exit_code, stats, error)
}

fn stopped_outcome(reason: StopReason) -> (FinishStatus, &'static str) {
    match reason {
        StopReason::Cancelled => (FinishStatus::Cancelled, CANCELLED_ERROR),
        StopReason::Shutdown => (FinishStatus::Failed, STOPPED_ERROR),
    }
}

fn finished(
    sink: &LogSink,
    status: FinishStatus,
    exit_code: i32,
    stats: Option<serde_json::Map<String, serde_json::Value>>,
    error: Option<String>,
) -> JobFinished {
    JobFinished {
        job_id: sink.job_id().to_owned(),
        status,
        exit_code,
        finished_at: Utc::now(),
        stats,
        error,
    }
}

/// The environment of a hook: which job, and for the post hook its outcome.
/// No repository secret is passed.
fn hook_env(command: &CommandRun, outcome: Option<(FinishStatus, i32)>) -> Vec<(String, String)> {
    let mut env = vec![
        ("RESTIC_MANAGER_JOB_ID".to_owned(), command.job_id.clone()),
        (
            "RESTIC_MANAGER_JOB_KIND".to_owned(),
            command.kind.to_string(),
        ),
    ];
    if let Some(tag) = &command.tag {
        env.push(("RESTIC_MANAGER_TAG".to_owned(), tag.clone()));
    }
    if let Some((status, exit_code)) = outcome {
        env.push(("RESTIC_MANAGER_JOB_STATUS".to_owned(), status.to_string()));
        env.push(("RESTIC_MANAGER_EXIT_CODE".to_owned(), exit_code.to_string()));
    }
    env
}

/// Runs restic, streaming its output. Returns its exit code (or why it
/// could not run), what its output said, and the stop request, if any.
async fn run_restic(
    plan: &JobPlan,
    sink: &mut LogSink,
    stop: &mut StopSignal,
    on_spawn: &mut (dyn FnMut(u32) + Send),
    mut catalog: Option<&mut CatalogStream>,
    mut dump: Option<&mut DumpJob>,
) -> (Result<i32, String>, OutputDigest, Option<StopReason>) {
    let mut digest = OutputDigest::default();
    let mut command = plan.invocation.command();
    command
        .stdin(if dump.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    platform::own_process_group(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let message = spawn_error(&plan.invocation.program, &err);
            sink.event(message.clone()).await;
            return (Err(message), digest, None);
        }
    };
    if let Some(pid) = child.id() {
        on_spawn(pid);
    }
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let message = "restic started without output pipes".to_owned();
        return (Err(message), digest, None);
    };
    if let (Some(dump), Some(stdin)) = (dump.as_mut(), child.stdin.take()) {
        dump.start(stdin);
    }
    let mut out = LineReader::new(stdout);
    let mut err = LineReader::new(stderr);
    let (mut out_open, mut err_open) = (true, true);
    let mut throttle = ProgressThrottle::default();
    let mut stopped: Option<StopReason> = None;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut interrupted = false;

    while out_open || err_open {
        tokio::select! {
            line = out.next_line(), if out_open => match line {
                // A catalog job's stdout is the listing: chunks, not log lines.
                Some(line) if catalog.is_some() => {
                    if let Some(catalog) = catalog.as_mut() {
                        catalog.line(&line, sink).await;
                    }
                }
                Some(line) => {
                    let parsed = restic::parse_line(&line);
                    if let OutputLine::Status(status) = &parsed {
                        let mut progress = status.to_progress(sink.job_id());
                        if let Some(dump) = dump.as_mut() {
                            dump.decorate(&mut progress, sink).await;
                        }
                        if let Some(progress) = throttle.offer(progress, Instant::now()) {
                            sink.send(AgentToServer::from(progress)).await;
                        }
                    }
                    if matches!(parsed, OutputLine::Text) {
                        digest.stdout_text(&line);
                    }
                    digest.stdout(&parsed);
                    sink.line(LogStreamKind::Stdout, line).await;
                }
                None => out_open = false,
            },
            line = err.next_line(), if err_open => match line {
                Some(line) => {
                    digest.stderr(&line, &restic::parse_line(&line));
                    sink.line(LogStreamKind::Stderr, line).await;
                }
                None => err_open = false,
            },
            event = next_dump_event(dump.as_deref_mut()), if dump.as_ref().is_some_and(|d| d.active()) => {
                let failed = match dump.as_mut() {
                    Some(dump) => dump.on_event(event, sink).await,
                    None => false,
                };
                if failed && kill_at.is_none() {
                    interrupted = true;
                    if let Err(err) = platform::interrupt(&mut child) {
                        tracing::warn!(job_id = %sink.job_id(), "cannot interrupt restic: {err}");
                    }
                    kill_at = Some(tokio::time::Instant::now() + plan.cancel_grace);
                }
            },
            reason = stop_requested(stop), if stopped.is_none() => {
                stopped = Some(reason);
                tracing::info!(job_id = %sink.job_id(), ?reason, "stopping restic (SIGINT)");
                sink.event(format!("stopping restic: {}", match reason {
                    StopReason::Cancelled => "cancel requested",
                    StopReason::Shutdown => "agent shutting down",
                })).await;
                interrupted = true;
                if let Err(err) = platform::interrupt(&mut child) {
                    tracing::warn!(job_id = %sink.job_id(), "cannot interrupt restic: {err}");
                }
                kill_at = Some(tokio::time::Instant::now() + plan.cancel_grace);
            },
            () = sleep_until_opt(kill_at) => {
                tracing::warn!(job_id = %sink.job_id(), "restic ignored SIGINT; killing it");
                sink.event("restic did not stop in time: killed").await;
                if let Err(err) = child.start_kill() {
                    tracing::warn!(job_id = %sink.job_id(), "cannot kill restic: {err}");
                }
                kill_at = None;
            },
        }
    }
    if let Some(progress) = throttle.flush() {
        sink.send(AgentToServer::from(progress)).await;
    }
    let exit = match child.wait().await {
        Ok(status) => Ok(platform::exit_code(status)),
        Err(err) => Err(format!("cannot wait for restic: {err}")),
    };
    if let Ok(code) = exit {
        sink.event(format!("restic exited with code {code}")).await;
    }
    if interrupted {
        // The agent stopping waits for this (its service manager gives it
        // little time): then the unlock gets the grace restic got.
        let limit = match stopped {
            Some(StopReason::Shutdown) => plan.cancel_grace,
            _ => JOB_UNLOCK_TIMEOUT,
        };
        remove_stale_lock(&plan.invocation, limit, sink).await;
    }
    (exit, digest, stopped)
}

/// Runs `restic unlock` after the agent interrupted restic (a stop request,
/// a failed dump). restic removes its lock when SIGINT finds it holding
/// one, but it registers the lock for that only after taking it: 0.14
/// writes the lock file, waits 200 ms, checks for other locks and only
/// then registers it. A SIGINT in that window (a dump that fails at once,
/// a cancel right after the start), or the SIGKILL after the grace, leaves
/// the lock file behind, and the next prune or check fails on it.
/// `restic unlock` without `--remove-all` removes stale locks only (made on
/// this host by a process that is gone, as the reaped restic now is, or
/// older than 30 minutes), never the lock of a restic that still runs.
async fn remove_stale_lock(invocation: &Invocation, limit: Duration, sink: &mut LogSink) {
    let unlock = invocation.with_args(vec!["unlock".to_owned()]);
    let failure = match capture(&unlock, limit).await {
        Ok(captured) if captured.exit_code == 0 => None,
        Ok(captured) => Some(format!(
            "exited with {}: {}",
            captured.exit_code,
            captured.stderr.trim()
        )),
        Err(err) => Some(err.to_string()),
    };
    match failure {
        None => tracing::debug!(job_id = %sink.job_id(), "restic unlock after the interrupt"),
        Some(failure) => {
            tracing::warn!(job_id = %sink.job_id(), "restic unlock after the interrupt failed: {failure}");
            sink.event(format!(
                "warning: restic unlock after the interrupt failed ({failure}); a stale lock may be left"
            ))
            .await;
        }
    }
}

/// The next event of a running dump (never, without one).
async fn next_dump_event(dump: Option<&mut DumpJob>) -> DumpEvent {
    match dump {
        Some(dump) => dump.next().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one (a `select!` branch
/// that is off).
pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The complete output of a short restic command.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Exit code (128 + signal for a Unix signal death).
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Why a short restic command gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// It could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran longer than allowed and was killed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// It failed; the text is its best error line.
    #[error("exit code {exit_code}: {message}")]
    Failed {
        /// The exit code.
        exit_code: i32,
        /// Restic's error.
        message: String,
    },
}

/// Runs a short command to completion with a time limit, keeping its
/// output (report commands print little: a snapshot list, one stats line).
pub async fn capture(invocation: &Invocation, limit: Duration) -> Result<Captured, CaptureError> {
    let mut command = invocation.command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|source| CaptureError::Spawn {
        program: invocation.program.display().to_string(),
        source,
    })?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| CaptureError::Timeout(limit))?
        .map_err(|source| CaptureError::Spawn {
            program: invocation.program.display().to_string(),
            source,
        })?;
    let captured = Captured {
        exit_code: platform::exit_code(output.status),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    if captured.exit_code != 0 {
        let mut digest = OutputDigest::default();
        for line in captured.stderr.lines() {
            digest.stderr(line, &restic::parse_line(line));
        }
        return Err(CaptureError::Failed {
            exit_code: captured.exit_code,
            message: digest.error_text(captured.exit_code).unwrap_or_default(),
        });
    }
    Ok(captured)
}

/// Why restic could not start, for the job's error: "restic not found" and
/// where it was looked for when the program is missing (not installed, or
/// a wrong `restic_binary`/`--restic`), the OS error otherwise.
pub fn spawn_error(program: &std::path::Path, err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::NotFound {
        format!(
            "restic not found ({}): install restic, or set restic_binary in agent.toml (or --restic)",
            program.display()
        )
    } else {
        format!("cannot start restic ({}): {err}", program.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(percent: f64) -> JobProgress {
        JobProgress {
            job_id: "j".to_owned(),
            percent_done: percent,
            files_done: 0,
            total_files: 0,
            bytes_done: 0,
            total_bytes: 0,
            eta_seconds: None,
            throughput_bps: 0,
            step: None,
            dumped_bytes: None,
        }
    }

    /// A missing restic says "restic not found" and where it was looked
    /// for; any other failure to start keeps the OS error.
    #[test]
    fn spawn_errors_name_a_missing_restic() {
        let program = std::path::Path::new("restic");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let message = spawn_error(program, &missing);
        assert!(
            message.starts_with("restic not found (restic): "),
            "{message}"
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let message = spawn_error(program, &denied);
        assert!(
            message.starts_with("cannot start restic (restic): "),
            "{message}"
        );
    }

    /// At most one progress per 500 ms; the held-back latest is flushed.
    #[test]
    fn progress_is_throttled() {
        let start = Instant::now();
        let mut throttle = ProgressThrottle::default();
        assert_eq!(
            throttle.offer(progress(0.1), start).unwrap().percent_done,
            0.1
        );
        assert!(throttle
            .offer(progress(0.2), start + Duration::from_millis(100))
            .is_none());
        assert!(throttle
            .offer(progress(0.3), start + Duration::from_millis(499))
            .is_none());
        assert_eq!(
            throttle
                .offer(progress(0.4), start + Duration::from_millis(500))
                .unwrap()
                .percent_done,
            0.4
        );
        assert!(throttle.flush().is_none());
        assert!(throttle
            .offer(progress(0.9), start + Duration::from_millis(600))
            .is_none());
        assert_eq!(throttle.flush().unwrap().percent_done, 0.9);
        assert!(throttle.flush().is_none());
    }
}
