//! Host metrics for `heartbeat.metrics`: load, used and total memory, free
//! disk of the state directory and of each source group's include root,
//! each sent only where the platform measures it. Linux reads `/proc` and
//! `statvfs`; other Unix systems `statvfs`; Windows asks the system
//! through `sysinfo` (memory, and the free space of the volume holding
//! each path). Windows has no load average.

use std::path::{Path, PathBuf};

/// Host metrics for `heartbeat.metrics`: only what was measured is present
/// (`load1`, `mem_used_bytes`, `mem_total_bytes`, `disk_free_bytes` of the
/// file system holding `state_dir`, and `source_disk_free_bytes`, an object
/// of source group name → free bytes of the file system of its first
/// include, for the `sources` given).
pub fn metrics(
    state_dir: &Path,
    sources: &[(String, PathBuf)],
) -> serde_json::Map<String, serde_json::Value> {
    let mut metrics = serde_json::Map::new();
    #[cfg(target_os = "linux")]
    {
        if let Some(load1) = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| parse_loadavg(&text))
        {
            metrics.insert("load1".to_owned(), load1.into());
        }
        if let Some((used, total)) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_meminfo(&text))
        {
            metrics.insert("mem_used_bytes".to_owned(), used.into());
            metrics.insert("mem_total_bytes".to_owned(), total.into());
        }
    }
    #[cfg(windows)]
    let free_space = {
        let memory = windows::memory();
        if let Some((used, total)) = memory {
            metrics.insert("mem_used_bytes".to_owned(), used.into());
            metrics.insert("mem_total_bytes".to_owned(), total.into());
        }
        windows::Volumes::new()
    };
    #[cfg(windows)]
    let free = |path: &Path| free_space.free_bytes(path);
    #[cfg(unix)]
    let free = unix_free_bytes;
    if let Some(bytes) = free(state_dir) {
        metrics.insert("disk_free_bytes".to_owned(), bytes.into());
    }
    let groups: serde_json::Map<String, serde_json::Value> = sources
        .iter()
        .filter_map(|(name, path)| Some((name.clone(), free(path.as_path())?.into())))
        .collect();
    if !groups.is_empty() {
        metrics.insert("source_disk_free_bytes".to_owned(), groups.into());
    }
    metrics
}

/// Free bytes (for an unprivileged user) of the file system holding `path`.
#[cfg(unix)]
fn unix_free_bytes(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    // The libc types are u32 on some targets: convert on all.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
    Some(free)
}

#[cfg(windows)]
mod windows {
    //! Memory and volume free space through `sysinfo` (safe wrappers of
    //! the Win32 calls; this crate forbids `unsafe`).

    use std::path::Path;

    /// `(used, total)` physical memory in bytes.
    pub fn memory() -> Option<(u64, u64)> {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        let total = system.total_memory();
        (total > 0).then(|| (system.used_memory(), total))
    }

    /// The mounted volumes, read once per heartbeat.
    pub struct Volumes(sysinfo::Disks);

    impl Volumes {
        pub fn new() -> Self {
            Volumes(sysinfo::Disks::new_with_refreshed_list())
        }

        /// Free bytes of the volume whose mount point is the longest
        /// prefix of `path`.
        pub fn free_bytes(&self, path: &Path) -> Option<u64> {
            self.0
                .list()
                .iter()
                .filter(|disk| path.starts_with(disk.mount_point()))
                .max_by_key(|disk| disk.mount_point().as_os_str().len())
                .map(|disk| disk.available_space())
        }
    }
}

/// The 1-minute load average of a `/proc/loadavg` text.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `(used, total)` memory in bytes (used = total − available) from a
/// `/proc/meminfo` text.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    let total = field("MemTotal:")?;
    Some((total.saturating_sub(field("MemAvailable:")?), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// loadavg and meminfo texts parse; missing fields give nothing; the
    /// state directory's and each source's free space are measured.
    #[test]
    fn proc_metrics_parse() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/389 12345\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        let meminfo = "MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:   6000 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some((10000 * 1024, 16000 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        let sources = [
            ("root".to_owned(), PathBuf::from("/")),
            ("gone".to_owned(), PathBuf::from("/no/such/path/here")),
        ];
        let measured = metrics(Path::new("/"), &sources);
        #[cfg(target_os = "linux")]
        assert!(
            measured.contains_key("load1")
                && measured.contains_key("mem_used_bytes")
                && measured.contains_key("mem_total_bytes")
        );
        #[cfg(unix)]
        {
            assert!(measured["disk_free_bytes"].as_u64().is_some());
            let groups = measured["source_disk_free_bytes"].as_object().unwrap();
            assert!(groups["root"].as_u64().is_some());
            assert!(!groups.contains_key("gone"));
        }
    }
}
