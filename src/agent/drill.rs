//! The agent's side of a restore drill (`kind: "drill"`) around the
//! `restic restore --verify` run that `restic::drill_args` builds:
//!
//! - [`prepare`]: the private folder restored into (mode 0700, under the
//!   state directory's `drills/`, one per job; a leftover of a crashed run
//!   is removed first);
//! - [`compare`]: every sampled file's size after the restore against the
//!   catalog's, off the event loop;
//! - [`remove`]: the folder goes away whatever happened;
//! - [`stats`]: the `job.finished` stats (files, bytes, mismatches,
//!   duration) and the error that fails the drill.
//!
//! The folder is found again in the invocation (`--target=`), which the
//! agent built itself, so the runner needs nothing else to know it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::restic::Invocation;
use crate::protocol::{
    DrillSpec, DRILL_BYTES_STAT, DRILL_DURATION_STAT, DRILL_FILES_STAT, DRILL_MISMATCHES_STAT,
};

/// Mismatched files named in the error before it says "and N more".
const NAMED_MISMATCHES: usize = 5;

/// The folder a drill invocation restores into.
pub fn target_of(invocation: &Invocation) -> Option<PathBuf> {
    invocation
        .args
        .iter()
        .find_map(|arg| arg.strip_prefix("--target="))
        .map(PathBuf::from)
}

/// Creates the drill's private folder (and its parent), owner-only.
pub async fn prepare(target: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        if let Some(parent) = target.parent() {
            create_private(parent)?;
        }
        create_private(&target)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(unix)]
fn create_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private(dir: &Path) -> std::io::Result<()> {
    // The state directory's own ACL (service account only) applies.
    std::fs::create_dir_all(dir)
}

/// Removes the drill's folder; a failure is logged (the next drill of the
/// same job id, or none, finds it).
pub async fn remove(target: PathBuf) {
    let shown = target.display().to_string();
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&target) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    })
    .await;
    match removed {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(folder = %shown, "cannot remove the drill folder: {err}"),
        Err(err) => tracing::warn!(folder = %shown, "cannot remove the drill folder: {err}"),
    }
}

/// A file whose restored copy does not match the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Its path inside the snapshot.
    pub path: String,
    /// Its catalog size.
    pub expected: u64,
    /// Its restored size (`None`: not restored).
    pub found: Option<u64>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.found {
            Some(found) => write!(
                f,
                "{} restored with {found} bytes, the catalog says {}",
                self.path, self.expected
            ),
            None => write!(f, "{} was not restored", self.path),
        }
    }
}

/// Compares every sampled file under `target` with its catalog size.
pub async fn compare(spec: &DrillSpec, target: &Path) -> Vec<Mismatch> {
    let files = spec.files.clone();
    let target = target.to_path_buf();
    tokio::task::spawn_blocking(move || compare_now(&files, &target))
        .await
        .unwrap_or_else(|err| {
            vec![Mismatch {
                path: format!("(comparison failed: {err})"),
                expected: 0,
                found: None,
            }]
        })
}

fn compare_now(files: &[crate::protocol::DrillFile], target: &Path) -> Vec<Mismatch> {
    files
        .iter()
        .filter_map(|file| {
            let restored = target.join(file.path.trim_start_matches(['/', '\\']));
            let found = std::fs::symlink_metadata(&restored)
                .ok()
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len());
            (found != Some(file.size)).then(|| Mismatch {
                path: file.path.clone(),
                expected: file.size,
                found,
            })
        })
        .collect()
}

/// The drill's stats, and the error that fails it when files mismatch.
pub fn stats(
    spec: &DrillSpec,
    mismatches: &[Mismatch],
    elapsed: Duration,
) -> (Map<String, Value>, Option<String>) {
    let mut stats = Map::new();
    stats.insert(DRILL_FILES_STAT.to_owned(), spec.files.len().into());
    stats.insert(DRILL_BYTES_STAT.to_owned(), spec.bytes().into());
    stats.insert(DRILL_MISMATCHES_STAT.to_owned(), mismatches.len().into());
    let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    stats.insert(DRILL_DURATION_STAT.to_owned(), millis.into());
    let error = (!mismatches.is_empty()).then(|| {
        let named: Vec<String> = mismatches
            .iter()
            .take(NAMED_MISMATCHES)
            .map(ToString::to_string)
            .collect();
        let more = mismatches.len().saturating_sub(NAMED_MISMATCHES);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(
            "drill failed: {} of {} files do not match the catalog: {}{tail}",
            mismatches.len(),
            spec.files.len(),
            named.join("; ")
        )
    });
    (stats, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DrillFile;

    fn spec() -> DrillSpec {
        DrillSpec {
            files: vec![
                DrillFile {
                    path: "/d/a.txt".to_owned(),
                    size: 3,
                },
                DrillFile {
                    path: "/d/b.txt".to_owned(),
                    size: 5,
                },
                DrillFile {
                    path: "/d/gone.txt".to_owned(),
                    size: 1,
                },
            ],
        }
    }

    /// Sizes are compared per file; wrong and missing files are named.
    #[tokio::test]
    async fn compares_sizes_and_names_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("drills").join("job1");
        prepare(target.clone()).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        std::fs::create_dir_all(target.join("d")).unwrap();
        std::fs::write(target.join("d/a.txt"), b"abc").unwrap();
        std::fs::write(target.join("d/b.txt"), b"abcdefg").unwrap();
        let mismatches = compare(&spec(), &target).await;
        assert_eq!(
            mismatches,
            vec![
                Mismatch {
                    path: "/d/b.txt".to_owned(),
                    expected: 5,
                    found: Some(7)
                },
                Mismatch {
                    path: "/d/gone.txt".to_owned(),
                    expected: 1,
                    found: None
                },
            ]
        );
        let (stats, error) = stats(&spec(), &mismatches, Duration::from_millis(42));
        assert_eq!(stats[DRILL_FILES_STAT], 3);
        assert_eq!(stats[DRILL_BYTES_STAT], 9);
        assert_eq!(stats[DRILL_MISMATCHES_STAT], 2);
        assert_eq!(stats[DRILL_DURATION_STAT], 42);
        let error = error.unwrap();
        assert!(
            error.contains("/d/b.txt restored with 7 bytes, the catalog says 5"),
            "{error}"
        );
        assert!(error.contains("/d/gone.txt was not restored"), "{error}");
        remove(target.clone()).await;
        assert!(!target.exists());
    }

    /// A clean comparison has no error.
    #[test]
    fn no_mismatch_no_error() {
        let (stats, error) = stats(&spec(), &[], Duration::ZERO);
        assert_eq!(stats[DRILL_MISMATCHES_STAT], 0);
        assert_eq!(error, None);
    }
}
