//! Pre/post job hooks: the commands of `agent.toml`'s `[hooks]` run under
//! the `hook_shell` of `config.update` (or the platform's shell), their
//! output streamed into the job's log like restic's.
//!
//! A pre hook that exits non-zero, times out or cannot start fails the job
//! before restic runs, with the reason in `job.finished.error` and its
//! output in the log. A post hook runs after restic whatever happened; its
//! failure is a warning on the job. Hooks get the job id, kind, tag and
//! (post) outcome in `RESTIC_MANAGER_*` variables, never a repository
//! secret.

use std::process::Stdio;
use std::time::Duration;

use crate::protocol::LogStreamKind;

use super::platform;
use super::process::{stop_requested, LineReader, LogSink, StopReason, StopSignal};

/// Which hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    /// Before restic.
    Pre,
    /// After restic.
    Post,
}

impl HookPhase {
    fn name(self) -> &'static str {
        match self {
            Self::Pre => "pre hook",
            Self::Post => "post hook",
        }
    }
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit, time-out or failure to start; the text says which.
    Failed(String),
    /// Killed because the job was stopped.
    Stopped(StopReason),
}

/// The program and arguments that run `script` under `shell`: `/C` for
/// cmd, `-Command` for PowerShell, `-c` for POSIX shells.
pub fn shell_command(shell: &str, script: &str) -> (String, Vec<String>) {
    // Both separators: a Windows path must be recognised on any build.
    let file = shell.rsplit(['/', '\\']).next().unwrap_or(shell);
    let name = file
        .strip_suffix(".exe")
        .or_else(|| file.strip_suffix(".EXE"))
        .unwrap_or(file)
        .to_ascii_lowercase();
    let args = match name.as_str() {
        "cmd" => vec!["/C".to_owned(), script.to_owned()],
        "powershell" | "pwsh" => vec![
            "-NoProfile".to_owned(),
            "-NonInteractive".to_owned(),
            "-Command".to_owned(),
            script.to_owned(),
        ],
        _ => vec!["-c".to_owned(), script.to_owned()],
    };
    (shell.to_owned(), args)
}

/// Runs one hook to its end, streaming its output into `sink`.
pub async fn run_hook(
    phase: HookPhase,
    shell: &str,
    script: &str,
    env: &[(String, String)],
    timeout: Duration,
    sink: &mut LogSink,
    stop: &mut StopSignal,
) -> HookOutcome {
    let name = phase.name();
    let (program, args) = shell_command(shell, script);
    sink.event(format!("{name}: running with {program}")).await;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let reason = format!("{name} could not start ({program}): {err}");
            sink.event(reason.clone()).await;
            return HookOutcome::Failed(reason);
        }
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return HookOutcome::Failed(format!("{name} started without output pipes"));
    };
    let mut out = LineReader::new(stdout);
    let mut err = LineReader::new(stderr);
    let (mut out_open, mut err_open) = (true, true);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut ended_early: Option<HookOutcome> = None;

    while (out_open || err_open) && ended_early.is_none() {
        tokio::select! {
            line = out.next_line(), if out_open => match line {
                Some(line) => sink.line(LogStreamKind::Stdout, line).await,
                None => out_open = false,
            },
            line = err.next_line(), if err_open => match line {
                Some(line) => sink.line(LogStreamKind::Stderr, line).await,
                None => err_open = false,
            },
            () = &mut deadline => {
                ended_early = Some(HookOutcome::Failed(format!(
                    "{name} timed out after {} s and was killed",
                    timeout.as_secs()
                )));
            },
            reason = stop_requested(stop) => ended_early = Some(HookOutcome::Stopped(reason)),
        }
    }
    if let Some(outcome) = ended_early {
        // The hook's own children may keep the pipes open; kill and stop
        // reading rather than wait for them.
        if let Err(err) = child.start_kill() {
            tracing::warn!(job_id = %sink.job_id(), "cannot kill the {name}: {err}");
        }
        // Reap it so no zombie is left; the kill makes this quick.
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        if let HookOutcome::Failed(reason) = &outcome {
            sink.event(reason.clone()).await;
        }
        return outcome;
    }
    match child.wait().await {
        Ok(status) if status.success() => {
            sink.event(format!("{name}: succeeded")).await;
            HookOutcome::Succeeded
        }
        Ok(status) => {
            let reason = format!(
                "{name} failed with exit code {}",
                platform::exit_code(status)
            );
            sink.event(reason.clone()).await;
            HookOutcome::Failed(reason)
        }
        Err(err) => HookOutcome::Failed(format!("{name}: cannot wait for it: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AgentToServer;
    use tokio::sync::{mpsc, watch};

    /// Shells get their own "run this" flag.
    #[test]
    fn shell_flags() {
        assert_eq!(shell_command("/bin/sh", "true").1, ["-c", "true"]);
        assert_eq!(shell_command("/usr/bin/bash", "x").1, ["-c", "x"]);
        assert_eq!(shell_command("cmd.exe", "dir").1, ["/C", "dir"]);
        assert_eq!(
            shell_command(
                r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                "ls"
            )
            .1[2],
            "-Command"
        );
        assert_eq!(shell_command("pwsh", "ls").1.len(), 4);
    }

    async fn hook(script: &str, timeout: Duration) -> (HookOutcome, Vec<(LogStreamKind, String)>) {
        let (tx, mut rx) = mpsc::channel(64);
        let mut sink = LogSink::new("j", tx);
        let (_keep, mut stop) = watch::channel(None);
        let env = vec![("RESTIC_MANAGER_JOB_ID".to_owned(), "j-42".to_owned())];
        let outcome = run_hook(
            HookPhase::Pre,
            platform::default_hook_shell(),
            script,
            &env,
            timeout,
            &mut sink,
            &mut stop,
        )
        .await;
        drop(sink);
        let mut lines = Vec::new();
        while let Some(AgentToServer::LogStream(line)) = rx.recv().await {
            lines.push((line.stream, line.payload));
        }
        (outcome, lines)
    }

    /// A succeeding hook streams its stdout and stderr and sees the job id.
    #[cfg(unix)]
    #[tokio::test]
    async fn succeeding_hook() {
        let (outcome, lines) = hook(
            "echo out $RESTIC_MANAGER_JOB_ID; echo err >&2",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(outcome, HookOutcome::Succeeded);
        assert!(
            lines.contains(&(LogStreamKind::Stdout, "out j-42".to_owned())),
            "{lines:?}"
        );
        assert!(
            lines.contains(&(LogStreamKind::Stderr, "err".to_owned())),
            "{lines:?}"
        );
    }

    /// A failing hook reports its exit code, with its output in the log.
    #[cfg(unix)]
    #[tokio::test]
    async fn failing_hook() {
        let (outcome, lines) = hook("echo dump failed >&2; exit 4", Duration::from_secs(10)).await;
        assert_eq!(
            outcome,
            HookOutcome::Failed("pre hook failed with exit code 4".to_owned())
        );
        assert!(lines.contains(&(LogStreamKind::Stderr, "dump failed".to_owned())));
    }

    /// A hook running past its time-out is killed and fails.
    #[cfg(unix)]
    #[tokio::test]
    async fn hook_timeout() {
        let started = std::time::Instant::now();
        let (outcome, _) = hook("sleep 30", Duration::from_millis(300)).await;
        assert!(
            matches!(outcome, HookOutcome::Failed(ref r) if r.contains("timed out")),
            "{outcome:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// A missing shell is a failure to start, not a panic.
    #[tokio::test]
    async fn missing_shell() {
        let (tx, _rx) = mpsc::channel(64);
        let mut sink = LogSink::new("j", tx);
        let (_keep, mut stop) = watch::channel(None);
        let outcome = run_hook(
            HookPhase::Post,
            "/nonexistent/shell",
            "true",
            &[],
            Duration::from_secs(1),
            &mut sink,
            &mut stop,
        )
        .await;
        assert!(matches!(outcome, HookOutcome::Failed(ref r) if r.contains("could not start")));
    }
}
