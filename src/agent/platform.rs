//! Everything that differs between Unix and Windows, and the only place with
//! `cfg(unix)` / `cfg(windows)` code in the agent: signals to restic, default
//! paths, boot time, host name, OS and architecture names, durable file
//! writes, the state-directory lock, shutdown signals, finding and stopping
//! a restic left running by a crashed agent ([`ProcessIdentity`],
//! [`stop_orphan`]) and the Windows service entry point.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::protocol::{ARCH_AMD64, ARCH_ARM64, OS_LINUX, OS_WINDOWS};

/// The default `agent.toml` location.
pub fn default_config_path() -> PathBuf {
    #[cfg(windows)]
    {
        program_data().join("restic-manager").join("agent.toml")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/etc/restic-manager/agent.toml")
    }
}

/// The default state directory (journal, outbox, schedule).
pub fn default_state_dir() -> PathBuf {
    #[cfg(windows)]
    {
        program_data().join("restic-manager").join("state")
    }
    #[cfg(not(windows))]
    {
        PathBuf::from("/var/lib/restic-manager")
    }
}

#[cfg(windows)]
fn program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}

/// `hello.os` for this build ([`OS_LINUX`] or [`OS_WINDOWS`]); other Unixes
/// report as `linux`, the closest the protocol has.
pub fn os_name() -> &'static str {
    if cfg!(windows) {
        OS_WINDOWS
    } else {
        OS_LINUX
    }
}

/// `hello.arch` for this build ([`ARCH_AMD64`] or [`ARCH_ARM64`]; other
/// architectures are sent under Rust's own name).
pub fn arch_name() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => ARCH_AMD64,
        "aarch64" => ARCH_ARM64,
        other => other,
    }
}

/// The host's name, or `"unknown"` when it cannot be found.
pub fn hostname() -> String {
    // Linux exposes the kernel's host name as a file; other Unixes keep it
    // in /etc/hostname or the environment.
    #[cfg(unix)]
    let name = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .filter(|name| !name.trim().is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok());
    #[cfg(windows)]
    let name = std::env::var("COMPUTERNAME").ok();
    #[cfg(not(any(unix, windows)))]
    let name: Option<String> = None;
    name.map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// When the host booted, if the platform tells (Linux: `btime` of
/// `/proc/stat`; elsewhere not measured, so not sent).
pub fn boot_time() -> Option<DateTime<Utc>> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        parse_proc_stat_btime(&stat)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The `btime` line of `/proc/stat` as a time.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_proc_stat_btime(stat: &str) -> Option<DateTime<Utc>> {
    let seconds = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse::<i64>()
        .ok()?;
    DateTime::from_timestamp(seconds, 0)
}

/// Host metrics for `heartbeat.metrics`: only what was measured is
/// present (`load1` and `mem_used_bytes` on Linux, `disk_free_bytes` of the
/// file system holding `state_dir` on Unix).
pub fn metrics(state_dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    // Nothing is measured off Unix (Windows would need its API, so `unsafe`).
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut metrics = serde_json::Map::new();
    #[cfg(target_os = "linux")]
    {
        if let Some(load1) = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| parse_loadavg(&text))
        {
            metrics.insert("load1".to_owned(), load1.into());
        }
        if let Some(used) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_meminfo_used(&text))
        {
            metrics.insert("mem_used_bytes".to_owned(), used.into());
        }
    }
    #[cfg(unix)]
    {
        if let Ok(stat) = nix::sys::statvfs::statvfs(state_dir) {
            // The libc types are u32 on some targets: convert on all.
            #[allow(clippy::useless_conversion)]
            let free =
                u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
            metrics.insert("disk_free_bytes".to_owned(), free.into());
        }
    }
    #[cfg(not(unix))]
    let _ = state_dir;
    metrics
}

/// The 1-minute load average of a `/proc/loadavg` text.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Used memory (total − available) in bytes from a `/proc/meminfo` text.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_meminfo_used(text: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(field("MemTotal:")?.saturating_sub(field("MemAvailable:")?))
}

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

/// Puts a child in a process group of its own (Unix), so that a restic
/// left behind by a crashed agent can be stopped with everything it
/// started (an `ssh` or `rclone` backend), and a Ctrl-C on the agent's
/// terminal reaches the agent only, which then stops restic itself.
pub fn own_process_group(command: &mut tokio::process::Command) {
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(not(unix))]
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
        let boot_time = boot_time()?.timestamp();
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
        if boot_time().map(|boot| boot.timestamp()) != Some(identity.boot_time) {
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

/// The shell hooks run under when `config.update` set no `hook_shell`.
pub fn default_hook_shell() -> &'static str {
    if cfg!(windows) {
        "cmd.exe"
    } else {
        "/bin/sh"
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new
/// content: a temp file beside it (mode 0600 on Unix), fsync, rename over
/// `path`, fsync of the directory.
pub fn write_private_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(TEMP_PREFIX);
    tmp_name.push(name);
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is also swept at start-up.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Prefix of the temp files [`write_private_file_atomically`] leaves behind
/// if the process dies mid-write; start-up code deletes them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Makes a rename or delete inside `dir` durable (fsync of the directory).
/// Windows cannot open a directory for syncing; NTFS journals renames.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// An exclusive lock on the state directory, held while the agent runs, so
/// that two agents never share a journal. Released on drop.
#[derive(Debug)]
pub struct StateLock {
    #[cfg(unix)]
    _lock: nix::fcntl::Flock<std::fs::File>,
    #[cfg(not(unix))]
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the lock file `lock` in `dir`; fails at once if another
    /// process holds it.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        #[cfg(unix)]
        {
            use nix::fcntl::{Flock, FlockArg};
            let lock =
                Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                    if errno == nix::errno::Errno::EWOULDBLOCK {
                        io::Error::new(
                            io::ErrorKind::WouldBlock,
                            "another restic-manager-agent uses this state directory",
                        )
                    } else {
                        io::Error::from(errno)
                    }
                })?;
            Ok(Self { _lock: lock })
        }
        #[cfg(not(unix))]
        {
            // Windows opens files share-exclusive only on request; one
            // service instance per host is enforced by the service manager.
            Ok(Self { _file: file })
        }
    }
}

/// Resolves when the process is asked to stop: SIGTERM or SIGINT on Unix,
/// Ctrl-C / Ctrl-Break on Windows. If the handlers cannot be installed the
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
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            tracing::error!("cannot install the Ctrl-C handler");
            std::future::pending::<()>().await;
        }
    }
}

/// Windows service entry point.
///
/// The agent runs as a console program under the Service Control Manager
/// through a service wrapper (`sc.exe create … binPath= "…\restic-manager-agent.exe run"`
/// with a wrapper such as WinSW, or NSSM): the wrapper turns the service
/// stop request into Ctrl-Break, which [`shutdown_signal`] handles. Native
/// SCM integration (`StartServiceCtrlDispatcher`) needs a Windows API crate
/// this build does not carry; this function says so instead of pretending.
#[cfg(windows)]
pub fn run_as_windows_service() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "native Windows service mode is not built in: run `restic-manager-agent run` under a service wrapper",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `btime` is read from a /proc/stat text.
    #[test]
    fn proc_stat_btime() {
        let stat = "cpu  1 2 3\nintr 5\nbtime 1763884800\nprocesses 9\n";
        assert_eq!(
            parse_proc_stat_btime(stat).unwrap().to_rfc3339(),
            "2025-11-23T08:00:00+00:00"
        );
        assert_eq!(parse_proc_stat_btime("cpu 1\n"), None);
        assert_eq!(parse_proc_stat_btime("btime x\n"), None);
    }

    /// loadavg and meminfo texts parse; missing fields give nothing.
    #[test]
    fn proc_metrics_parse() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/389 12345\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        let meminfo = "MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:   6000 kB\n";
        assert_eq!(parse_meminfo_used(meminfo), Some(10000 * 1024));
        assert_eq!(parse_meminfo_used("MemTotal: 5 kB\n"), None);
        let measured = metrics(Path::new("/"));
        #[cfg(target_os = "linux")]
        assert!(measured.contains_key("load1") && measured.contains_key("mem_used_bytes"));
        #[cfg(unix)]
        assert!(measured["disk_free_bytes"].as_u64().is_some());
    }

    /// The machine this runs on has a name, an OS and an architecture.
    #[test]
    fn host_facts() {
        assert!(!hostname().is_empty());
        assert!([OS_LINUX, OS_WINDOWS].contains(&os_name()));
        assert!(!arch_name().is_empty());
        #[cfg(target_os = "linux")]
        assert!(boot_time().unwrap() < Utc::now());
    }

    /// An atomic write replaces the file and leaves no temp file behind.
    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_private_file_atomically(&path, b"one").unwrap();
        write_private_file_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
    }

    /// A second lock on the same state directory is refused while the first
    /// is held, and granted after it is dropped.
    #[cfg(unix)]
    #[test]
    fn state_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.lock");
        let first = StateLock::acquire(&path).unwrap();
        let err = StateLock::acquire(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        StateLock::acquire(&path).unwrap();
    }

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
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "trap '' INT; sleep 30 & wait"]);
        own_process_group(&mut command);
        let mut child = command.spawn().unwrap();
        let identity = process_identity(child.id().unwrap()).unwrap();
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
