//! The restore drill part of `command.run` ([`DrillSpec`]: which files of
//! the snapshot to restore and the size the catalog holds for each) and the
//! names of the stats a drill reports in `job.finished`.
//!
//! A drill (`kind: "drill"`, issue 11 §4) restores a sample of one snapshot
//! (`command.run.snapshot_id`) with `--verify` into a private temporary
//! folder on the agent, compares every restored file's size with the
//! catalog's, removes the folder and reports what it found. The server
//! picks the sample; the agent only restores and compares.

use serde::{Deserialize, Serialize};

/// `job.finished.stats` of a drill: files restored and compared.
pub const DRILL_FILES_STAT: &str = "files";
/// `job.finished.stats` of a drill: bytes of the sample (catalog sizes).
pub const DRILL_BYTES_STAT: &str = "bytes";
/// `job.finished.stats` of a drill: files whose size differed or that were
/// missing after the restore.
pub const DRILL_MISMATCHES_STAT: &str = "mismatches";
/// `job.finished.stats` of a drill: milliseconds from the start of the
/// restore to the end of the comparison.
pub const DRILL_DURATION_STAT: &str = "duration_ms";

/// `command.run.drill`: the sample to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillSpec {
    /// The files to restore, with the sizes the catalog expects.
    pub files: Vec<DrillFile>,
}

/// One file of a drill's sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillFile {
    /// Its absolute path inside the snapshot.
    pub path: String,
    /// Its size in bytes as catalogued.
    pub size: u64,
}

impl DrillSpec {
    /// Bytes of the whole sample.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The drill object's JSON is pinned.
    #[test]
    fn drill_spec_json() {
        let spec = DrillSpec {
            files: vec![DrillFile {
                path: "/data/a.txt".to_owned(),
                size: 12,
            }],
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"files": [{"path": "/data/a.txt", "size": 12}]})
        );
        assert_eq!(serde_json::from_value::<DrillSpec>(json).unwrap(), spec);
        assert_eq!(spec.bytes(), 12);
    }
}
