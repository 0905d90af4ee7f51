//! Host metrics for `heartbeat.metrics`: load, used memory and free disk,
//! each sent only where the platform measures it.

use std::path::Path;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
