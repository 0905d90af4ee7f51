//! What the load generator reads about processes from `/proc` (Linux):
//! resident memory (`VmRSS` of `/proc/<pid>/status`), CPU time
//! (`utime + stime` of `/proc/<pid>/stat`), open descriptors, and the
//! descriptor limit (`RLIMIT_NOFILE`), which it raises for itself and the
//! processes it starts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Clock ticks per second of `/proc/<pid>/stat` times. The kernel reports
/// them in `USER_HZ`, which is 100 on every Linux architecture (it is part
/// of the ABI, unlike the kernel's internal `HZ`).
const USER_HZ: f64 = 100.0;

/// Resident set size of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
}

/// The `VmRSS:  1234 kB` line of a status file, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time `pid` has used (user + system).
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_stat_ticks(&stat).with_context(|| format!("cannot parse {path}"))?;
    Ok(Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// `utime + stime` (fields 14 and 15) of a stat line. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted
/// from the last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first; utime is field 14.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Open descriptors of `pid`.
pub fn open_fds(pid: u32) -> anyhow::Result<usize> {
    let path = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&path)
        .with_context(|| format!("cannot list {path}"))?
        .count())
}

/// CPU use of one process over a window, as a percentage of one core.
pub struct CpuMeter {
    pid: u32,
    start_cpu: Duration,
    start: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid` now.
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        Ok(CpuMeter {
            pid,
            start_cpu: cpu_time(pid)?,
            start: Instant::now(),
        })
    }

    /// CPU % of one core since [`CpuMeter::start`].
    pub fn percent(&self) -> anyhow::Result<f64> {
        let used = cpu_time(self.pid)?.saturating_sub(self.start_cpu);
        let wall = self.start.elapsed().as_secs_f64();
        if wall <= 0.0 {
            bail!("no time has passed");
        }
        Ok(used.as_secs_f64() / wall * 100.0)
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (children
/// inherit it) and returns the limit now in force.
pub fn raise_nofile_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).context("cannot read the descriptor limit")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            .context("cannot raise the descriptor limit")?;
    }
    let (soft, _) =
        getrlimit(Resource::RLIMIT_NOFILE).context("cannot read the descriptor limit")?;
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VmRSS is read in KiB from a status file.
    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tx\nVmPeak:\t  9999 kB\nVmRSS:\t   51234 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(51234));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    /// utime + stime are fields 14 and 15, counted after a command name
    /// that contains spaces and parentheses.
    #[test]
    fn reads_stat_ticks_after_odd_command_names() {
        let stat = "4242 (we ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 1000 100";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    /// Our own process has a readable RSS and CPU time.
    #[test]
    fn own_process_is_measurable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        cpu_time(pid).unwrap();
        assert!(open_fds(pid).unwrap() > 0);
    }
}
