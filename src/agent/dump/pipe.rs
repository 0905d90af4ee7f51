//! Runs a [`DumpPlan`]'s source into restic's stdin: the tool's stdout is
//! copied through one fixed buffer ([`COPY_BUFFER`]), so the agent's
//! memory stays flat whatever the database's size, and the bytes are
//! counted for `job.progress`.
//!
//! The feed runs as its own task ([`start`]) beside the runner's loop over
//! restic's output. It sends the tool's stderr lines on a channel (the
//! runner logs them) and ends with a [`FeedOutcome`]. Restic's stdin is
//! closed (EOF, so restic saves the snapshot) only once the tool has
//! exited with status 0; after a failure the stdin is handed back still
//! open, and the runner interrupts restic before it ever sees the end of
//! its input: a failed dump leaves no snapshot behind. Dropping the task
//! (a cancelled job) kills the tool.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DumpSource, ToolCommand};
use crate::agent::platform;
use crate::agent::process::LineReader;

/// The copy buffer between the dump and restic.
pub const COPY_BUFFER: usize = 64 * 1024;

/// Stderr lines of the tool kept for the job's error message.
const ERROR_TAIL_LINES: usize = 5;

/// Longest stderr line kept for the error message.
const ERROR_LINE_CHARS: usize = 400;

/// How a feed ended.
#[derive(Debug)]
pub struct FeedOutcome {
    /// Why the dump failed; `None`: the tool exited 0 and restic's stdin
    /// was closed.
    pub error: Option<String>,
    /// Restic's stdin, still open, after a failure: the caller interrupts
    /// restic before dropping it.
    pub held_stdin: Option<ChildStdin>,
}

/// A running feed.
pub struct Feed {
    /// Bytes copied so far.
    pub bytes: Arc<AtomicU64>,
    /// The tool's stderr lines.
    pub lines: mpsc::Receiver<String>,
    /// The task; dropping it kills the tool.
    pub task: JoinHandle<FeedOutcome>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts copying `source` into `stdin`.
pub fn start(source: DumpSource, stdin: ChildStdin) -> Feed {
    let bytes = Arc::new(AtomicU64::new(0));
    let (tx, lines) = mpsc::channel(64);
    let counter = bytes.clone();
    let task = tokio::spawn(async move {
        match source {
            DumpSource::Tool(tool) => run_tool(&tool, stdin, &counter, &tx).await,
            DumpSource::SqliteCopy { vacuum, copy } => {
                let outcome = sqlite_copy(&vacuum, &copy, stdin, &counter, &tx).await;
                if let Err(err) = tokio::fs::remove_file(&copy).await {
                    if err.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %copy.display(), "cannot remove the SQLite copy: {err}");
                    }
                }
                outcome
            }
        }
    });
    Feed { bytes, lines, task }
}

fn failed(error: String, stdin: ChildStdin) -> FeedOutcome {
    FeedOutcome {
        error: Some(error),
        held_stdin: Some(stdin),
    }
}

/// Runs `tool` with piped stdio, feeding its stdout to `stdin`.
async fn run_tool(
    tool: &ToolCommand,
    mut stdin: ChildStdin,
    counter: &AtomicU64,
    lines: &mpsc::Sender<String>,
) -> FeedOutcome {
    let mut command = tool.command();
    command
        .stdin(if tool.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    platform::own_process_group(&mut command);
    let name = tool.name().to_owned();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return failed(format!("cannot run {name}: {err}"), stdin),
    };
    if let (Some(text), Some(mut input)) = (&tool.stdin, child.stdin.take()) {
        // A few bytes into an empty pipe: this does not block.
        if let Err(err) = input.write_all(text.expose().as_bytes()).await {
            tracing::warn!("cannot write {name}'s config to its stdin: {err}");
        }
    }
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return failed(format!("{name} started without output pipes"), stdin);
    };
    let errors = tokio::spawn(forward_lines(stderr, lines.clone()));
    let copied = copy(stdout, &mut stdin, counter).await;
    if copied.is_err() {
        // Restic stopped reading: the tool would block on a full pipe.
        if let Err(err) = child.start_kill() {
            tracing::debug!("cannot kill {name}: {err}");
        }
    }
    let status = child.wait().await;
    // The tail of stderr (the reader ends when the tool's stderr closes).
    let tail = errors.await.unwrap_or_default();
    let detail = if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" | "))
    };
    match (status, copied) {
        (Ok(status), Ok(())) if status.success() => {
            drop(stdin); // EOF: restic saves the snapshot
            FeedOutcome {
                error: None,
                held_stdin: None,
            }
        }
        (Ok(status), Ok(())) => failed(
            format!(
                "{name} failed (exit code {}){detail}",
                platform::exit_code(status)
            ),
            stdin,
        ),
        (Ok(_), Err(err)) => failed(format!("dump not fully passed to restic: {err}"), stdin),
        (Err(err), _) => failed(format!("cannot wait for {name}: {err}"), stdin),
    }
}

/// SQLite: `VACUUM INTO` the private copy, then stream it.
async fn sqlite_copy(
    vacuum: &ToolCommand,
    copy_path: &std::path::Path,
    mut stdin: ChildStdin,
    counter: &AtomicU64,
    lines: &mpsc::Sender<String>,
) -> FeedOutcome {
    if let Some(dir) = copy_path.parent() {
        if let Err(err) = private_dir(dir).await {
            return failed(
                format!("cannot create the private folder {}: {err}", dir.display()),
                stdin,
            );
        }
    }
    // A copy left by a crashed run would make VACUUM INTO fail.
    let _ = tokio::fs::remove_file(copy_path).await; // absent is the normal case
    let mut command = vacuum.command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match command.output().await {
        Ok(output) => output,
        Err(err) => return failed(format!("cannot run sqlite3: {err}"), stdin),
    };
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        // Err only if the runner stopped listening (job ending).
        let _ = lines.send(line.to_owned()).await;
    }
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        return failed(
            format!(
                "sqlite3 failed (exit code {}): {}",
                platform::exit_code(output.status),
                text.trim()
            ),
            stdin,
        );
    }
    let file = match tokio::fs::File::open(copy_path).await {
        Ok(file) => file,
        Err(err) => return failed(format!("cannot open the SQLite copy: {err}"), stdin),
    };
    match copy(file, &mut stdin, counter).await {
        Ok(()) => {
            drop(stdin);
            FeedOutcome {
                error: None,
                held_stdin: None,
            }
        }
        Err(err) => failed(format!("dump not fully passed to restic: {err}"), stdin),
    }
}

/// Creates `dir` readable by the agent's user only.
async fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
    }
    Ok(())
}

/// Copies `from` into `to` through one [`COPY_BUFFER`], counting bytes.
async fn copy(
    mut from: impl AsyncRead + Unpin,
    to: &mut ChildStdin,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    to.flush().await
}

/// Sends each line of `stderr` on `lines`; returns the last few (clipped).
async fn forward_lines(stderr: impl AsyncRead + Unpin, lines: mpsc::Sender<String>) -> Vec<String> {
    let mut reader = LineReader::new(stderr);
    let mut tail: Vec<String> = Vec::new();
    while let Some(line) = reader.next_line().await {
        if !line.trim().is_empty() {
            if tail.len() == ERROR_TAIL_LINES {
                tail.remove(0);
            }
            tail.push(line.trim().chars().take(ERROR_LINE_CHARS).collect());
        }
        // Err only if the runner stopped listening (job ending).
        let _ = lines.send(line).await;
    }
    tail
}

/// Runs a version query: its trimmed stdout, or `None` (logged by the
/// caller) when it fails.
pub async fn query_version(tool: &ToolCommand) -> Result<String, String> {
    let mut command = tool.command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = tokio::time::timeout(std::time::Duration::from_secs(30), command.output());
    let output = match run.await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(format!("cannot run {}: {err}", tool.name())),
        Err(_) => return Err(format!("{} did not answer within 30 s", tool.name())),
    };
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            tool.name(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
