//! Everything that differs between Unix and Windows, and the only place with
//! `cfg(unix)` / `cfg(windows)` code in the agent: signals to restic, default
//! paths, boot time, host name, OS and architecture names, durable file
//! writes, the state-directory lock, shutdown signals, finding and stopping
//! a restic left running by a crashed agent ([`ProcessIdentity`],
//! [`stop_orphan`]), and on Windows the native service (`service`: SCM
//! entry point, install, uninstall), its log file ([`RotatingLogFile`]) and
//! the ACL that stands in for mode 0600 (`protect_agent_files`).

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
        default_agent_dir().join("agent.toml")
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
        default_agent_dir().join("state")
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
/// content: a temp file beside it (mode 0600 on Unix; on Windows it takes
/// the directory's inherited ACL, which `service install` restricts through
/// `protect_agent_files`), fsync, rename over `path`, fsync of the directory.
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
    /// Takes the lock file `path`; fails at once (`WouldBlock`) if another
    /// process holds it.
    pub fn acquire(path: &Path) -> io::Result<Self> {
        /// `ERROR_SHARING_VIOLATION` (Windows): another handle has the file open.
        const ERROR_SHARING_VIOLATION: i32 = 32;
        let held = || {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another restic-manager-agent uses this state directory",
            )
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(windows)]
        {
            // Opened with no sharing, the file cannot be opened again until
            // this handle is closed (also when the process dies): the lock.
            use std::os::windows::fs::OpenOptionsExt;
            options.share_mode(0);
        }
        let file = options.open(path).map_err(|err| {
            if cfg!(windows) && err.raw_os_error() == Some(ERROR_SHARING_VIOLATION) {
                held()
            } else {
                err
            }
        })?;
        #[cfg(unix)]
        {
            use nix::fcntl::{Flock, FlockArg};
            let lock =
                Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                    if errno == nix::errno::Errno::EWOULDBLOCK {
                        held()
                    } else {
                        io::Error::from(errno)
                    }
                })?;
            Ok(Self { _lock: lock })
        }
        #[cfg(not(unix))]
        {
            Ok(Self { _file: file })
        }
    }
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

/// The agent's directory under `%ProgramData%` on Windows, holding the
/// default config, state directory and service log.
#[cfg(windows)]
pub fn default_agent_dir() -> PathBuf {
    program_data().join("restic-manager")
}

/// Where the Windows service writes its log (a service has no console):
/// `%ProgramData%\restic-manager\agent.log`, moved aside to `agent.log.1`
/// at [`SERVICE_LOG_MAX_BYTES`].
#[cfg(windows)]
pub fn default_service_log_path() -> PathBuf {
    default_agent_dir().join("agent.log")
}

/// Size at which the service log is moved aside (one old file is kept).
pub const SERVICE_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// An append-only log file for a process without a terminal (the Windows
/// service), bounded in size: a write that would take it past `max_bytes`
/// first moves it to `<name>.1` (replacing the previous one) and starts a
/// new file. Each tracing event is one write, so events are never split.
#[derive(Debug)]
pub struct RotatingLogFile {
    path: PathBuf,
    max_bytes: u64,
    /// The open file (None after a failed reopen: retried on the next
    /// write) and its length.
    state: std::sync::Mutex<(Option<std::fs::File>, u64)>,
}

impl RotatingLogFile {
    /// Opens (creating it and its directory) the log file `path` for appending.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = Self::open_append(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            state: std::sync::Mutex::new((Some(file), len)),
        })
    }

    fn open_append(path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Appends one record, rotating first if it would pass the limit.
    fn append(&self, record: &[u8]) -> io::Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        let (file, len) = &mut *state;
        let grows = u64::try_from(record.len()).unwrap_or(u64::MAX);
        if *len > 0 && len.saturating_add(grows) > self.max_bytes {
            *file = None; // closed before the rename (Windows)
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, &old)?;
            *len = 0;
        }
        if file.is_none() {
            let opened = Self::open_append(&self.path)?;
            *len = opened.metadata()?.len();
            *file = Some(opened);
        }
        if let Some(file) = file.as_mut() {
            file.write_all(record)?;
            *len = len.saturating_add(grows);
        }
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingLogFile {
    type Writer = RotatingLogWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        RotatingLogWriter(self)
    }
}

/// One event's writer into a [`RotatingLogFile`].
#[derive(Debug)]
pub struct RotatingLogWriter<'a>(&'a RotatingLogFile);

impl Write for RotatingLogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `icacls` arguments that give SYSTEM and the Administrators group
/// (well-known SIDs, so any Windows language works) full control of `path`
/// and nobody else any access: inherited entries are removed and the
/// existing explicit ones replaced. With `tree`, `path` is a directory whose
/// current contents get the same, and whose future contents inherit it.
#[cfg_attr(not(windows), allow(dead_code))]
fn icacls_arguments(path: &Path, tree: bool) -> Vec<std::ffi::OsString> {
    let grant = |sid: &str| {
        if tree {
            format!("*{sid}:(OI)(CI)F")
        } else {
            format!("*{sid}:F")
        }
    };
    let mut args: Vec<std::ffi::OsString> = vec![
        path.as_os_str().to_owned(),
        "/inheritance:r".into(),
        "/grant:r".into(),
        grant("S-1-5-18").into(),     // NT AUTHORITY\SYSTEM
        grant("S-1-5-32-544").into(), // BUILTIN\Administrators
    ];
    if tree {
        args.push("/T".into());
    }
    args.push("/Q".into());
    args
}

/// Whether `path` lies inside `dir` (component-wise, as given: a path
/// spelled differently is treated as outside, the safe answer here).
#[cfg_attr(not(windows), allow(dead_code))]
fn is_inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

/// Restricts the agent's secrets to SYSTEM (the service's account) and
/// Administrators, which the 0600 mode does on Unix: the agent directory
/// under `%ProgramData%` as a whole (its default config, state and log,
/// and whatever is created there later) when the config or the state
/// directory lies in it, and the config file itself when it lies elsewhere.
/// A state directory elsewhere is left alone (the administrator who chose
/// it owns its permissions). Returns the paths whose ACL was replaced.
#[cfg(windows)]
pub fn protect_agent_files(config_path: &Path, state_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let agent_dir = default_agent_dir();
    let mut protected = Vec::new();
    if is_inside(config_path, &agent_dir) || is_inside(state_dir, &agent_dir) {
        std::fs::create_dir_all(&agent_dir)?;
        icacls(&agent_dir, true)?;
        protected.push(agent_dir.clone());
    }
    if !is_inside(config_path, &agent_dir) {
        icacls(config_path, false)?;
        protected.push(config_path.to_owned());
    }
    Ok(protected)
}

/// Runs `icacls` (from `%SystemRoot%\System32`, not from `PATH`).
#[cfg(windows)]
fn icacls(path: &Path, tree: bool) -> io::Result<()> {
    let program = std::env::var_os("SystemRoot")
        .map(|root| PathBuf::from(root).join("System32").join("icacls.exe"))
        .unwrap_or_else(|| PathBuf::from("icacls.exe"));
    let output = std::process::Command::new(program)
        .args(icacls_arguments(path, tree))
        .stdin(std::process::Stdio::null())
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = if said.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout)
    } else {
        said
    };
    Err(io::Error::other(format!(
        "icacls could not restrict {} ({}): {}",
        path.display(),
        output.status,
        said.trim()
    )))
}

/// The agent as a native Windows service: the Service Control Manager
/// starts `restic-manager-agent.exe service run --config …` ([`install`]
/// registers that), [`run`] connects to it, reports Running, turns its Stop
/// and Shutdown controls into the daemon's shutdown future, reports
/// StopPending while the daemon stops restic and flushes its outbox, and
/// Stopped with the daemon's result (a failure makes the SCM restart it).
#[cfg(windows)]
pub mod service {
    use std::ffi::{OsStr, OsString};
    use std::future::Future;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::time::Duration;

    use windows_service::service::{
        ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
        ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
        ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{
        self, ServiceControlHandlerResult, ServiceStatusHandle,
    };
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    use windows_service::{define_windows_service, service_dispatcher};

    use super::{default_service_log_path, RotatingLogFile, SERVICE_LOG_MAX_BYTES};

    /// The service's name (`sc.exe query restic-manager-agent`).
    pub const SERVICE_NAME: &str = "restic-manager-agent";
    /// The name shown in services.msc.
    pub const SERVICE_DISPLAY_NAME: &str = "restic-manager agent";
    const SERVICE_DESCRIPTION: &str =
        "Runs restic on this host for the restic-manager server (backups, retention, checks).";
    /// Time announced for a stop: restic's cancel grace, a post hook and
    /// the outbox flush fit in it (the systemd unit allows 90 s too).
    const STOP_WAIT_HINT: Duration = Duration::from_secs(90);
    /// Wait before the SCM restarts a failed agent (systemd: RestartSec=5).
    const RESTART_DELAY: Duration = Duration::from_secs(5);
    /// Failures older than this no longer count towards the restart actions.
    const FAILURE_RESET: Duration = Duration::from_secs(24 * 60 * 60);
    /// How long `uninstall` waits for the running service to stop.
    const UNINSTALL_STOP_WAIT: Duration = Duration::from_secs(120);
    /// Service-specific exit code reported when the daemon failed.
    const EXIT_AGENT_FAILED: u32 = 1;

    /// `ERROR_ACCESS_DENIED`.
    const ERROR_ACCESS_DENIED: i32 = 5;
    /// `ERROR_FAILED_SERVICE_CONTROLLER_CONNECT`: not started by the SCM.
    const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
    /// `ERROR_SERVICE_DOES_NOT_EXIST`.
    const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
    /// `ERROR_SERVICE_NOT_ACTIVE`: a stop sent to a stopped service.
    const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;

    /// The future the daemon runs until: resolves on the SCM's Stop or
    /// Shutdown.
    pub type ShutdownFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

    /// What the service runs: the daemon, until the future it is given
    /// resolves; blocks (it starts its own async runtime).
    pub type ServiceBody = Box<dyn FnOnce(ShutdownFuture) -> Result<(), String> + Send>;

    /// The body handed from [`run`] (main thread) to the service's main
    /// function (a thread the SCM starts): the FFI entry point cannot carry it.
    static BODY: Mutex<Option<ServiceBody>> = Mutex::new(None);

    /// Errors of the service commands.
    #[derive(Debug, thiserror::Error)]
    pub enum ServiceError {
        /// `service run` was started from a console, not by the SCM.
        #[error(
            "not started by the Windows Service Control Manager: use `restic-manager-agent run` \
             in a console, or `service install` and then `sc.exe start {SERVICE_NAME}`"
        )]
        NotUnderServiceManager,
        /// `uninstall` found no such service.
        #[error("the service {SERVICE_NAME} is not installed")]
        NotInstalled,
        /// A Service Control Manager call failed.
        #[error("{action}: {message}")]
        Windows {
            /// What was being done.
            action: &'static str,
            /// The system's reason.
            message: String,
        },
        /// `run` was called twice in one process.
        #[error("the service body was already taken")]
        BodyTaken,
    }

    /// A [`ServiceError::Windows`] maker for `map_err`; the crate's own
    /// message hides the OS error, so it is spelled out (with a hint when
    /// the cause is a missing elevation).
    fn windows(action: &'static str) -> impl FnOnce(windows_service::Error) -> ServiceError {
        move |err| {
            let message = match &err {
                windows_service::Error::Winapi(io)
                    if io.raw_os_error() == Some(ERROR_ACCESS_DENIED) =>
                {
                    format!("{io} (run it from an elevated prompt, as an administrator)")
                }
                windows_service::Error::Winapi(io) => io.to_string(),
                other => other.to_string(),
            };
            ServiceError::Windows { action, message }
        }
    }

    fn os_error(err: &windows_service::Error) -> Option<i32> {
        match err {
            windows_service::Error::Winapi(io) => io.raw_os_error(),
            _ => None,
        }
    }

    /// Runs `body` as the service: logs go to the service log file (a
    /// service has no console), then this thread becomes the SCM's control
    /// dispatcher until the service has stopped. Fails at once with
    /// [`ServiceError::NotUnderServiceManager`] from a console.
    pub fn run(body: ServiceBody) -> Result<(), ServiceError> {
        init_service_tracing();
        *BODY.lock().map_err(|_| ServiceError::BodyTaken)? = Some(body);
        service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|err| {
            if os_error(&err) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
                ServiceError::NotUnderServiceManager
            } else {
                windows("cannot start the service control dispatcher")(err)
            }
        })
    }

    /// Tracing into the service log, filtered like the console
    /// (`RESTIC_MANAGER_LOG`, default `info`). Without a log file the
    /// service still runs: backups matter more than their log.
    fn init_service_tracing() {
        let filter = tracing_subscriber::EnvFilter::try_from_env("RESTIC_MANAGER_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false);
        // Err only if a subscriber is already set: keep that one.
        let _ = match RotatingLogFile::open(&default_service_log_path(), SERVICE_LOG_MAX_BYTES) {
            Ok(file) => builder.with_writer(file).try_init(),
            Err(_) => builder.with_writer(std::io::stderr).try_init(),
        };
    }

    define_windows_service!(ffi_service_main, service_main);

    /// The service's main function, on a thread the SCM starts.
    fn service_main(_arguments: Vec<OsString>) {
        if let Err(err) = serve() {
            tracing::error!("the Windows service failed: {err}");
        }
    }

    fn serve() -> Result<(), ServiceError> {
        let body = BODY
            .lock()
            .ok()
            .and_then(|mut body| body.take())
            .ok_or(ServiceError::BodyTaken)?;
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let handle =
            service_control_handler::register(SERVICE_NAME, move |control| match control {
                ServiceControl::Stop | ServiceControl::Shutdown => {
                    stop_tx.send_replace(true);
                    ServiceControlHandlerResult::NoError
                }
                ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
                _ => ServiceControlHandlerResult::NotImplemented,
            })
            .map_err(windows("cannot register the service control handler"))?;
        set_status(handle, ServiceState::Running, ServiceExitCode::NO_ERROR)?;
        tracing::info!(service = SERVICE_NAME, "running as a Windows service");
        let shutdown: ShutdownFuture = Box::pin(async move {
            // Err: the handler, and with it the sender, is gone; that only
            // happens as the service ends, so stopping is right then too.
            let _ = stop_rx.wait_for(|stop| *stop).await;
            tracing::info!("stop requested by the Service Control Manager");
            if let Err(err) =
                set_status(handle, ServiceState::StopPending, ServiceExitCode::NO_ERROR)
            {
                tracing::warn!("{err}");
            }
        });
        let exit_code = match body(shutdown) {
            Ok(()) => ServiceExitCode::NO_ERROR,
            Err(message) => {
                tracing::error!("the agent stopped: {message}");
                ServiceExitCode::ServiceSpecific(EXIT_AGENT_FAILED)
            }
        };
        set_status(handle, ServiceState::Stopped, exit_code)
    }

    /// Reports `state` to the SCM: Running accepts Stop and Shutdown;
    /// StopPending announces [`STOP_WAIT_HINT`].
    fn set_status(
        handle: ServiceStatusHandle,
        state: ServiceState,
        exit_code: ServiceExitCode,
    ) -> Result<(), ServiceError> {
        let (controls_accepted, checkpoint, wait_hint) = match state {
            ServiceState::Running => (
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
                0,
                Duration::ZERO,
            ),
            ServiceState::StopPending => (ServiceControlAccept::empty(), 1, STOP_WAIT_HINT),
            _ => (ServiceControlAccept::empty(), 0, Duration::ZERO),
        };
        handle
            .set_service_status(ServiceStatus {
                service_type: ServiceType::OWN_PROCESS,
                current_state: state,
                controls_accepted,
                exit_code,
                checkpoint,
                wait_hint,
                process_id: None,
            })
            .map_err(windows("cannot report the service status"))
    }

    /// What [`install`] did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Installed {
        /// The service was registered.
        Created,
        /// It existed; its command line and settings were replaced.
        Updated,
    }

    /// Registers (or updates) the service: own process, started
    /// automatically at boot as LocalSystem (so restic can read every
    /// file), running `executable launch_arguments…`, restarted 5 s after
    /// any failure. Needs an elevated prompt. Does not start it.
    pub fn install(
        executable: PathBuf,
        launch_arguments: Vec<OsString>,
    ) -> Result<Installed, ServiceError> {
        let manager = ServiceManager::local_computer(
            None::<&str>,
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        )
        .map_err(windows("cannot open the Service Control Manager"))?;
        let info = ServiceInfo {
            name: OsString::from(SERVICE_NAME),
            display_name: OsString::from(SERVICE_DISPLAY_NAME),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: executable,
            launch_arguments,
            dependencies: vec![],
            account_name: None, // LocalSystem
            account_password: None,
        };
        // START: restart failure actions need it on the handle.
        let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::START;
        let (service, installed) = match manager.open_service(SERVICE_NAME, access) {
            Ok(service) => {
                service
                    .change_config(&info)
                    .map_err(windows("cannot update the service"))?;
                (service, Installed::Updated)
            }
            Err(err) if os_error(&err) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
                let service = manager
                    .create_service(&info, access)
                    .map_err(windows("cannot create the service"))?;
                (service, Installed::Created)
            }
            Err(err) => return Err(windows("cannot open the service")(err)),
        };
        service
            .set_description(OsStr::new(SERVICE_DESCRIPTION))
            .map_err(windows("cannot set the service description"))?;
        let restart = ServiceAction {
            action_type: ServiceActionType::Restart,
            delay: RESTART_DELAY,
        };
        service
            .update_failure_actions(ServiceFailureActions {
                reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET),
                reboot_msg: None,
                command: None,
                actions: Some(vec![restart.clone(), restart.clone(), restart]),
            })
            .map_err(windows("cannot set the service's restart on failure"))?;
        // A stop with a non-zero exit code (the agent failed) counts too.
        service
            .set_failure_actions_on_non_crash_failures(true)
            .map_err(windows("cannot set the service's restart on failure"))?;
        Ok(installed)
    }

    /// Stops the service (waiting up to 2 minutes for the agent to stop
    /// restic and flush its outbox) and removes it. Needs an elevated
    /// prompt.
    pub fn uninstall() -> Result<(), ServiceError> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .map_err(windows("cannot open the Service Control Manager"))?;
        let service = manager
            .open_service(
                SERVICE_NAME,
                ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
            )
            .map_err(|err| {
                if os_error(&err) == Some(ERROR_SERVICE_DOES_NOT_EXIST) {
                    ServiceError::NotInstalled
                } else {
                    windows("cannot open the service")(err)
                }
            })?;
        let status = service
            .query_status()
            .map_err(windows("cannot query the service"))?;
        if status.current_state != ServiceState::Stopped {
            match service.stop() {
                Ok(_) => {}
                Err(err) if os_error(&err) == Some(ERROR_SERVICE_NOT_ACTIVE) => {}
                Err(err) => return Err(windows("cannot stop the service")(err)),
            }
            let deadline = std::time::Instant::now() + UNINSTALL_STOP_WAIT;
            while service
                .query_status()
                .map_err(windows("cannot query the service"))?
                .current_state
                != ServiceState::Stopped
            {
                if std::time::Instant::now() >= deadline {
                    // DeleteService still marks it; it goes once stopped.
                    tracing::warn!("the service did not stop in time; it is removed once it stops");
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        service
            .delete()
            .map_err(windows("cannot delete the service"))
    }
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

    /// The service log appends, and a write that would pass the limit
    /// first moves the file to `.1` (replacing the older one), keeping
    /// every record whole.
    #[test]
    fn rotating_log_file_moves_aside_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("agent.log");
        let old = dir.path().join("logs").join("agent.log.1");
        let log = RotatingLogFile::open(&path, 10).unwrap();
        let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&log);
        writer.write_all(b"aaaa\n").unwrap();
        writer.write_all(b"bbbb\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"aaaa\nbbbb\n");
        assert!(!old.exists());
        writer.write_all(b"cc\n").unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"aaaa\nbbbb\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"cc\n");
        // A record larger than the limit still goes whole into a new file.
        writer.write_all(b"0123456789abc\n").unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"cc\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789abc\n");
        drop(log);
        // Reopened, it counts what the file already holds.
        let log = RotatingLogFile::open(&path, 20).unwrap();
        tracing_subscriber::fmt::MakeWriter::make_writer(&log)
            .write_all(b"dddddd\n")
            .unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"0123456789abc\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"dddddd\n");
    }

    /// icacls replaces the ACL with SYSTEM and Administrators only, by SID,
    /// inheritable and recursive for a directory tree.
    #[test]
    fn icacls_arguments_restrict_to_system_and_administrators() {
        let args = |path: &str, tree: bool| -> Vec<String> {
            icacls_arguments(Path::new(path), tree)
                .into_iter()
                .map(|arg| arg.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            args(r"C:\ProgramData\restic-manager", true),
            [
                r"C:\ProgramData\restic-manager",
                "/inheritance:r",
                "/grant:r",
                "*S-1-5-18:(OI)(CI)F",
                "*S-1-5-32-544:(OI)(CI)F",
                "/T",
                "/Q"
            ]
        );
        assert_eq!(
            args(r"D:\agent.toml", false),
            [
                r"D:\agent.toml",
                "/inheritance:r",
                "/grant:r",
                "*S-1-5-18:F",
                "*S-1-5-32-544:F",
                "/Q"
            ]
        );
    }

    /// Only paths inside the agent's directory count as its own.
    #[test]
    fn inside_the_agent_directory() {
        let dir = Path::new("/data/restic-manager");
        assert!(is_inside(Path::new("/data/restic-manager/agent.toml"), dir));
        assert!(is_inside(Path::new("/data/restic-manager/state"), dir));
        assert!(!is_inside(Path::new("/data/restic-manager-other/x"), dir));
        assert!(!is_inside(Path::new("/etc/agent.toml"), dir));
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
