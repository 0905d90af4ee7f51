//! Signals in and out: interrupting restic and giving it a process group
//! of its own, finding and stopping a restic left running by a crashed
//! agent ([`ProcessIdentity`], [`stop_orphan`]), shell-style exit codes,
//! and the agent's own shutdown signal.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Asks a child process to stop the way a terminal's Ctrl-C would (SIGINT
/// on Unix: restic then removes its lock and exits). On Windows there is no
/// such signal for a detached child, so the process is terminated
/// (TerminateProcess).
pub fn interrupt(child: &mut tokio::process::Child) -> io::Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let Some(pid) = child.id() else {
            return Ok(()); // already reaped: nothing to signal
        };
        let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
        match kill(Pid::from_raw(pid), Signal::SIGINT) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(errno) => Err(io::Error::from(errno)),
        }
    }
    #[cfg(not(unix))]
    {
        child.start_kill()
    }
}

/// Kills a child started with [`own_process_group`] together with its
/// process group (SIGKILL to the group on Unix, so an `ssh` or `rclone`
/// backend it started goes too; TerminateProcess elsewhere).
pub fn kill_group(child: &mut tokio::process::Child) -> io::Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        if let Some(pid) = child.id() {
            let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
            match killpg(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(errno) => return Err(io::Error::from(errno)),
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        child.start_kill()
    }
}

/// Puts a child in a process group of its own, so that a Ctrl-C on the
/// agent's terminal reaches the agent only, which then stops restic itself;
/// on Unix also so that a restic left behind by a crashed agent can be
/// stopped with everything it started (an `ssh` or `rclone` backend).
pub fn own_process_group(command: &mut tokio::process::Command) {
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(windows)]
    {
        /// `CREATE_NEW_PROCESS_GROUP` of `CreateProcessW`.
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        command.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
    #[cfg(not(any(unix, windows)))]
    let _ = command;
}

/// A process as recorded in the job journal, precise enough to be found
/// again after the agent restarts without ever mistaking a recycled pid
/// for it: the pid, the boot it ran in, and its start time within that
/// boot (Linux `/proc/<pid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// The process id (also its process group id: see [`own_process_group`]).
    pub pid: u32,
    /// The host's boot time, Unix seconds.
    pub boot_time: i64,
    /// The process's start time in clock ticks after boot.
    pub start_ticks: u64,
}

/// Where a recorded process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// It runs.
    Running,
    /// It exited but its parent (after a crash: init) has not reaped it
    /// yet; restic still counts its lock as held until then.
    Zombie,
    /// It is gone (or the pid now belongs to another process).
    Gone,
}

/// The identity of the running process `pid`; `None` when it is gone or
/// the platform cannot tell one process from a later one with the same pid
/// (only Linux can: elsewhere nothing is recorded and nothing is killed).
pub fn process_identity(pid: u32) -> Option<ProcessIdentity> {
    #[cfg(target_os = "linux")]
    {
        let boot_time = super::boot_time()?.timestamp();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, start_ticks) = parse_proc_pid_stat(&stat)?;
        Some(ProcessIdentity {
            pid,
            boot_time,
            start_ticks,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Whether the process `identity` names still runs.
pub fn process_state(identity: &ProcessIdentity) -> ProcessState {
    #[cfg(target_os = "linux")]
    {
        if super::boot_time().map(|boot| boot.timestamp()) != Some(identity.boot_time) {
            return ProcessState::Gone;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", identity.pid)) else {
            return ProcessState::Gone;
        };
        match parse_proc_pid_stat(&stat) {
            Some((_, start)) if start != identity.start_ticks => ProcessState::Gone,
            Some(('Z' | 'X', _)) => ProcessState::Zombie,
            Some(_) => ProcessState::Running,
            None => ProcessState::Gone,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = identity;
        ProcessState::Gone
    }
}

/// The state letter and start time (field 22) of a `/proc/<pid>/stat`
/// text. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from its closing parenthesis.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_proc_pid_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; field 22 is 19 fields after it.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// How a process left running by a crashed agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanOutcome {
    /// It was no longer running.
    AlreadyGone,
    /// It stopped after SIGINT (restic then removes its own lock).
    Interrupted,
    /// It ignored SIGINT for the grace period and was killed.
    Killed,
    /// It could not be stopped, or is still not reaped: its lock may stay.
    StillThere,
}

/// Stops a restic left running by a previous agent process: SIGINT (restic
/// removes its lock and exits), SIGKILL to its process group after
/// `grace`, then waits up to `reap_wait` for it to be reaped, because
/// until then `restic unlock` considers its lock live. Polls every 100 ms;
/// the process is not this agent's child, so it cannot be waited for.
pub async fn stop_orphan(
    identity: &ProcessIdentity,
    grace: Duration,
    reap_wait: Duration,
) -> OrphanOutcome {
    const POLL: Duration = Duration::from_millis(100);
    let deadline = tokio::time::Instant::now() + grace;
    let mut outcome = match process_state(identity) {
        ProcessState::Gone => return OrphanOutcome::AlreadyGone,
        ProcessState::Zombie => OrphanOutcome::AlreadyGone,
        ProcessState::Running => {
            if let Err(err) = signal_orphan(identity, false) {
                tracing::warn!(
                    pid = identity.pid,
                    "cannot interrupt the leftover restic: {err}"
                );
            }
            OrphanOutcome::Interrupted
        }
    };
    while process_state(identity) == ProcessState::Running {
        if tokio::time::Instant::now() >= deadline {
            if let Err(err) = signal_orphan(identity, true) {
                tracing::warn!(pid = identity.pid, "cannot kill the leftover restic: {err}");
            }
            outcome = OrphanOutcome::Killed;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let reaped_by = tokio::time::Instant::now() + reap_wait;
    while process_state(identity) != ProcessState::Gone {
        if tokio::time::Instant::now() >= reaped_by {
            return OrphanOutcome::StillThere;
        }
        tokio::time::sleep(POLL).await;
    }
    outcome
}

/// SIGINT to the process, or SIGKILL to its whole process group (falling
/// back to the process alone if it leads no group).
fn signal_orphan(identity: &ProcessIdentity, kill: bool) -> io::Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::signal::{self, Signal};
        use nix::unistd::Pid;
        let pid = i32::try_from(identity.pid).map_err(|_| io::Error::other("pid out of range"))?;
        let pid = Pid::from_raw(pid);
        let result = if kill {
            match signal::killpg(pid, Signal::SIGKILL) {
                Err(nix::errno::Errno::ESRCH) => signal::kill(pid, Signal::SIGKILL),
                other => other,
            }
        } else {
            signal::kill(pid, Signal::SIGINT)
        };
        match result {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(errno) => Err(io::Error::from(errno)),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (identity, kill);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "stopping a process by id is not built for this platform",
        ))
    }
}

/// A process's exit code, with Unix deaths by signal reported the way
/// shells do (128 + signal number); -1 when neither is known.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    -1
}

/// Resolves when the process is asked to stop: SIGTERM or SIGINT on Unix,
/// Ctrl-C, Ctrl-Break or the console closing on Windows (a service gets its
/// stop from `service::run` instead). If the handlers cannot be installed the
/// future never resolves (the process is then stopped by the OS).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install the SIGTERM/SIGINT handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
        let (Ok(mut int), Ok(mut brk), Ok(mut close)) = (ctrl_c(), ctrl_break(), ctrl_close())
        else {
            tracing::error!("cannot install the Ctrl-C/Ctrl-Break/close handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => tracing::info!("Ctrl-C received"),
            _ = brk.recv() => tracing::info!("Ctrl-Break received"),
            _ = close.recv() => tracing::info!("console closed"),
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            tracing::error!("cannot install the Ctrl-C handler");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state and start time are read after the command name, even a
    /// name with spaces and parentheses.
    #[test]
    fn proc_pid_stat_parses() {
        let stat = "4242 (rest ic) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    10 5 0 0 20 0 12 0 987654 1234567 890 18446744073709551615";
        assert_eq!(parse_proc_pid_stat(stat), Some(('S', 987_654)));
        assert_eq!(parse_proc_pid_stat("1 (init) Z 0"), None);
        assert_eq!(parse_proc_pid_stat("garbage"), None);
    }

    /// A child is found by its identity while it runs, seen as a zombie
    /// once it exited unreaped, and gone once reaped; a made-up start time
    /// never matches.
    #[cfg(target_os = "linux")]
    #[test]
    fn process_identity_follows_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let identity = process_identity(child.id()).unwrap();
        assert_eq!(process_state(&identity), ProcessState::Running);
        let other = ProcessIdentity {
            start_ticks: identity.start_ticks + 1,
            ..identity
        };
        assert_eq!(process_state(&other), ProcessState::Gone);
        child.kill().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while process_state(&identity) == ProcessState::Running {
            assert!(std::time::Instant::now() < deadline, "still running");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(process_state(&identity), ProcessState::Zombie);
        child.wait().unwrap();
        assert_eq!(process_state(&identity), ProcessState::Gone);
    }

    /// A leftover process that ignores SIGINT is killed after the grace
    /// period, with the whole process group it leads.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn orphan_ignoring_sigint_is_killed() {
        use tokio::io::AsyncBufReadExt;
        let mut command = tokio::process::Command::new("sh");
        command
            .args(["-c", "trap '' INT; echo ready; sleep 30 & wait"])
            .stdout(std::process::Stdio::piped());
        own_process_group(&mut command);
        let mut child = command.spawn().unwrap();
        let identity = process_identity(child.id().unwrap()).unwrap();
        // SIGINT must not arrive before the shell has set its trap.
        let stdout = child.stdout.take().unwrap();
        let mut ready = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut ready)
            .await
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        // Reap concurrently, as init does for a real orphan.
        let reaper = tokio::spawn(async move { child.wait().await });
        let outcome = stop_orphan(
            &identity,
            Duration::from_millis(300),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(outcome, OrphanOutcome::Killed);
        assert_eq!(process_state(&identity), ProcessState::Gone);
        reaper.await.unwrap().unwrap();
        let gone = stop_orphan(&identity, Duration::ZERO, Duration::ZERO).await;
        assert_eq!(gone, OrphanOutcome::AlreadyGone);
    }

    /// Exit codes and signal deaths map to shell-style numbers.
    #[cfg(unix)]
    #[test]
    fn exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }
}
