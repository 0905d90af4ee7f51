//! What a job's source group options need from the repository, checked
//! before restic runs: `--compression=max|off` needs a repository of
//! format version 2. restic itself (0.14) silently stores a version 1
//! repository's data uncompressed; a backup asked to compress is refused
//! instead, naming the fix (`restic migrate upgrade_repo_v2`).
//!
//! `restic cat config --no-lock` reads one small file, so the check is
//! cheap, and it runs only for jobs that carry such a flag.

use std::time::Duration;

use serde::Deserialize;

use super::restic::Invocation;
use super::runner::capture;
use crate::protocol::FLAG_COMPRESSION;

/// Longest wait for `restic cat config`.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(120);

/// The repository format that stores compressed data.
const COMPRESSED_FORMAT: u32 = 2;

/// Whether the job asks restic to compress in a way only a version 2
/// repository honours.
pub fn needs_compressed_format(invocation: &Invocation) -> bool {
    invocation
        .args
        .iter()
        .filter_map(|a| a.strip_prefix(FLAG_COMPRESSION))
        .any(|mode| mode != "auto")
}

/// The repository format version from `restic cat config` output.
fn format_version(stdout: &str) -> Option<u32> {
    #[derive(Deserialize)]
    struct Config {
        version: u32,
    }
    serde_json::from_str::<Config>(stdout.trim())
        .ok()
        .map(|c| c.version)
}

/// Checks the repository when the job needs it; the error is the job's
/// failure message.
pub async fn check(invocation: &Invocation) -> Result<(), String> {
    if !needs_compressed_format(invocation) {
        return Ok(());
    }
    let mut config = invocation.clone();
    config.args = ["cat", "config", "--no-lock"]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    let captured = capture(&config, CONFIG_TIMEOUT)
        .await
        .map_err(|e| format!("options.compression: cannot read the repository's format: {e}"))?;
    match format_version(&captured.stdout) {
        Some(v) if v >= COMPRESSED_FORMAT => Ok(()),
        Some(v) => Err(format!(
            "options.compression needs a repository of format version 2; this one is version {v} (upgrade it with `restic migrate upgrade_repo_v2`, or set compression to auto)"
        )),
        None => Err("options.compression: the repository's format version is unreadable".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only `max` and `off` need the version 2 format.
    #[test]
    fn which_jobs_need_the_check() {
        let with = |args: &[&str]| Invocation {
            program: "restic".into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Vec::new(),
            env_remove: &[],
        };
        assert!(needs_compressed_format(&with(&[
            "backup",
            "--compression=max"
        ])));
        assert!(needs_compressed_format(&with(&[
            "backup",
            "--compression=off"
        ])));
        assert!(!needs_compressed_format(&with(&[
            "backup",
            "--compression=auto"
        ])));
        assert!(!needs_compressed_format(&with(&[
            "backup",
            "--one-file-system"
        ])));
    }

    /// `restic cat config` prints the config object.
    #[test]
    fn reads_the_format_version() {
        let out = r#"{"version":2,"id":"abc","chunker_polynomial":"3da3358b4dc173"}"#;
        assert_eq!(format_version(out), Some(2));
        assert_eq!(format_version("{\"version\":1}\n"), Some(1));
        assert_eq!(format_version("garbage"), None);
    }
}
