//! The report commands' output: the snapshot list, repository stats and
//! the lock list, parsed into their protocol payloads.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::protocol::{LockState, SnapshotInfo};

/// Why a report command's output could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not the JSON shape expected.
    #[error("unexpected restic output: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct RawSnapshot {
    id: String,
    #[serde(default)]
    short_id: Option<String>,
    time: DateTime<Utc>,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    summary: Option<RawSnapshotSummary>,
}

#[derive(Deserialize)]
struct RawSnapshotSummary {
    #[serde(default)]
    total_bytes_processed: Option<u64>,
    #[serde(default)]
    total_files_processed: Option<u64>,
}

/// Parses `restic snapshots --json` (a JSON array; restic 0.17+ adds a
/// `summary` with sizes, older versions leave them absent; `tags` may be
/// absent or null; `short_id` is derived when missing).
pub fn parse_snapshots(stdout: &str) -> Result<Vec<SnapshotInfo>, ParseError> {
    let json = stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with('['))
        .unwrap_or_else(|| stdout.trim());
    // The array may also be pretty-printed over several lines.
    let raw: Vec<RawSnapshot> = match serde_json::from_str(json) {
        Ok(raw) => raw,
        Err(_) => serde_json::from_str(stdout.trim())?,
    };
    Ok(raw
        .into_iter()
        .map(|snapshot| {
            let short_id = snapshot
                .short_id
                .unwrap_or_else(|| snapshot.id.chars().take(8).collect());
            SnapshotInfo {
                short_id,
                id: snapshot.id,
                time: snapshot.time,
                hostname: snapshot.hostname,
                paths: snapshot.paths.unwrap_or_default(),
                tags: snapshot.tags.unwrap_or_default(),
                size_bytes: snapshot
                    .summary
                    .as_ref()
                    .and_then(|summary| summary.total_bytes_processed),
                file_count: snapshot
                    .summary
                    .as_ref()
                    .and_then(|summary| summary.total_files_processed),
            }
        })
        .collect())
}

/// `restic stats --json` output (either mode; fields omitted when zero).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RepoStatsOutput {
    /// Bytes: stored (raw-data) or restorable (restore-size).
    #[serde(default)]
    pub total_size: u64,
    /// Bytes before compression (raw-data, repository format 2).
    #[serde(default)]
    pub total_uncompressed_size: Option<u64>,
    /// Snapshots counted.
    #[serde(default)]
    pub snapshots_count: Option<u64>,
}

/// Parses the JSON line of `restic stats --json`.
pub fn parse_stats(stdout: &str) -> Result<RepoStatsOutput, ParseError> {
    let json = stdout
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with('{'))
        .unwrap_or_else(|| stdout.trim());
    Ok(serde_json::from_str(json)?)
}

/// Logical size over stored size; 1.0 for an empty repository.
pub fn dedup_ratio(restore_size: u64, raw_size: u64) -> f64 {
    if raw_size == 0 {
        1.0
    } else {
        restore_size as f64 / raw_size as f64
    }
}

/// Lock state from `restic list locks` (one lock id per line).
pub fn lock_state(stdout: &str) -> LockState {
    if stdout.lines().any(|line| !line.trim().is_empty()) {
        LockState::Locked
    } else {
        LockState::Unlocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0.14's snapshot list: tags absent or present, no sizes.
    #[test]
    fn snapshots_014() {
        let stdout = r#"[{"time":"2026-11-23T04:09:48.372463347Z","tree":"3938bc1d14d85a37fb4548511973e8809760dcf9a483d470011b9e733844e7ec","paths":["/srv/restic-test/data"],"hostname":"hostA","username":"root","tags":["t1"],"id":"f535d3c775cd290daff62276003c6e7048eadd3d4f1df3338ac078e467b27f6d","short_id":"f535d3c7"},{"time":"2026-11-23T04:09:49.299849038Z","parent":"f535d3c775cd290daff62276003c6e7048eadd3d4f1df3338ac078e467b27f6d","tree":"c122cd7904e5d0cfbd8dfe589832b7b5a3a591db074cbe1e5f4fcd744f098791","paths":["/srv/restic-test/data"],"hostname":"hostA","username":"root","id":"61d3c64f1369cec700e632306c2b5e75ea3f833ce5370bcc9c52c4494fbe9e61","short_id":"61d3c64f"}]
"#;
        let snapshots = parse_snapshots(stdout).unwrap();
        assert_eq!(snapshots.len(), 2);
        assert_eq!(snapshots[0].short_id, "f535d3c7");
        assert_eq!(snapshots[0].tags, ["t1"]);
        assert_eq!(snapshots[0].hostname, "hostA");
        assert_eq!(snapshots[0].paths, ["/srv/restic-test/data"]);
        assert_eq!(snapshots[0].size_bytes, None);
        assert_eq!(
            snapshots[0].time.to_rfc3339(),
            "2026-11-23T04:09:48.372463347+00:00"
        );
        assert!(snapshots[1].tags.is_empty());
    }

    /// 0.18's pretty-printed list with a summary gives sizes; a missing
    /// short id is derived; an empty list is empty.
    #[test]
    fn snapshots_018() {
        let stdout = r#"[
    {
        "time": "2026-11-23T04:13:12.752854159Z",
        "parent": "6410cd5fbd4ad694e85a6b5e526505d39cdba7d639e046fe27460ebff5ddfc3e",
        "tree": "1f9804d4f0ba55fe9b6a9d3591fa73252ae92015a47221806b416d1f3365283a",
        "paths": [
            "/srv/restic-test/data"
        ],
        "hostname": "hostA",
        "username": "root",
        "program_version": "restic 0.18.0",
        "summary": {
            "backup_start": "2026-11-23T04:13:12.752854159Z",
            "backup_end": "2026-11-23T04:13:13.498921633Z",
            "files_new": 0,
            "total_files_processed": 4,
            "total_bytes_processed": 3000027
        },
        "id": "7134e1c027c22fc6df53beccba2e8dcc1943caba557739d30f043728b028c93f"
    }
]"#;
        let snapshots = parse_snapshots(stdout).unwrap();
        assert_eq!(snapshots[0].short_id, "7134e1c0");
        assert_eq!(snapshots[0].size_bytes, Some(3_000_027));
        assert_eq!(snapshots[0].file_count, Some(4));
        assert!(parse_snapshots("[]\n").unwrap().is_empty());
        assert!(parse_snapshots("Fatal: wrong password").is_err());
    }

    /// Stats of 0.14 (restore-size, raw-data) and 0.18 (raw-data).
    #[test]
    fn stats_outputs() {
        let restore =
            parse_stats(r#"{"total_size":6,"total_file_count":3,"snapshots_count":1}"#).unwrap();
        assert_eq!(restore.total_size, 6);
        assert_eq!(restore.snapshots_count, Some(1));
        let raw14 = parse_stats(
            r#"{"total_size":799,"total_file_count":0,"total_blob_count":4,"snapshots_count":1}"#,
        )
        .unwrap();
        assert_eq!(raw14.total_size, 799);
        let raw18 = parse_stats(r#"{"total_size":3002358,"total_uncompressed_size":3004361,"compression_ratio":1.0006671422928246,"compression_progress":100,"compression_space_saving":0.06666975107185724,"total_blob_count":13,"snapshots_count":3}"#).unwrap();
        assert_eq!(raw18.total_uncompressed_size, Some(3_004_361));
        assert_eq!(raw18.snapshots_count, Some(3));
        assert!((dedup_ratio(6_000, 3_000) - 2.0).abs() < 1e-12);
        assert!((dedup_ratio(0, 0) - 1.0).abs() < 1e-12);
        assert!(parse_stats("").is_err());
    }

    /// Any lock id listed means locked.
    #[test]
    fn lock_states() {
        assert_eq!(lock_state(""), LockState::Unlocked);
        assert_eq!(lock_state("\n"), LockState::Unlocked);
        assert_eq!(
            lock_state("61bfd1365e1e8b1ae4c2fb6a0b8f0a2c3b5c3e1d4f5a6b7c8d9e0f1a2b3c4d5e\n"),
            LockState::Locked
        );
    }
}
