//! What the agent says about the host and where it keeps its files by
//! default: config and state paths (and on Windows the agent directory
//! under `%ProgramData%` and the service log), OS and architecture names,
//! host name, boot time, and the shell hooks run under.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

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

/// The shell hooks run under when `config.update` set no `hook_shell`.
pub fn default_hook_shell() -> &'static str {
    if cfg!(windows) {
        "cmd.exe"
    } else {
        "/bin/sh"
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

    /// The machine this runs on has a name, an OS and an architecture.
    #[test]
    fn host_facts() {
        assert!(!hostname().is_empty());
        assert!([OS_LINUX, OS_WINDOWS].contains(&os_name()));
        assert!(!arch_name().is_empty());
        #[cfg(target_os = "linux")]
        assert!(boot_time().unwrap() < Utc::now());
    }
}
