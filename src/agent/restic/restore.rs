//! `restic restore`, without running it: the argument list of a restore
//! job (snapshot, `--target`, `--include` per path with glob characters
//! escaped, `--overwrite` where the version has it, `--verify`), the
//! snapshot paths named in 0.14's "restoring <Snapshot …>" line, and the
//! `job.finished` stats of a restore.
//!
//! Stats: restic 0.16 and later print a JSON `summary` (`files_restored`,
//! `bytes_restored`, …), which is used as is (`"counted_by": "restic"`).
//! 0.14 prints text only, so the agent counts the regular files and their
//! bytes under the target for each restored path after the run
//! (`"counted_by": "target"`; files that were there already and are not in
//! the snapshot count too). Errors are restic's per-file errors; `verified`
//! is true when `--verify` was asked and restic exited 0 (restic fails the
//! run when a restored file does not match).

use serde_json::{Map, Value};

use super::ResticVersion;
use crate::protocol::{CommandRun, RestoreOverwrite, RestoreSpec};

/// The restic release that brought `restore --overwrite`.
pub const OVERWRITE_SINCE: (u32, u32, u32) = (0, 17, 0);

/// What a restore `command.run` cannot be built from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// No `restore` object.
    #[error(
        "a restore job needs its restore parameters (target, paths); a drill its sample of files"
    )]
    NoSpec,
    /// No snapshot id, or one that is not hexadecimal.
    #[error("snapshot_id {0:?} is not a restic snapshot id")]
    BadSnapshot(String),
    /// A target or path the server should not have sent.
    #[error(transparent)]
    Invalid(#[from] crate::protocol::InvalidRestore),
    /// An overwrite mode this restic does not have.
    #[error("overwrite mode \"{mode}\" needs restic 0.17 or newer; this host has restic {found}")]
    NeedsNewerRestic {
        /// The mode asked for.
        mode: RestoreOverwrite,
        /// The version found.
        found: String,
    },
}

/// The arguments after `restore --json` for `run`.
pub fn restore_args(
    run: &CommandRun,
    version: Option<&ResticVersion>,
) -> Result<Vec<String>, RestoreError> {
    let spec = run.restore.as_ref().ok_or(RestoreError::NoSpec)?;
    spec.validate()?;
    let snapshot = run.snapshot_id.as_deref().unwrap_or_default();
    if snapshot.is_empty() || !snapshot.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RestoreError::BadSnapshot(
            snapshot.chars().take(100).collect(),
        ));
    }
    let mut args = vec![format!("--target={}", spec.target)];
    for path in &spec.paths {
        args.push(format!("--include={}", escape_pattern(path)));
    }
    if spec.overwrite != RestoreOverwrite::Always {
        if let Some(version) = version.filter(|v| v.numbers < OVERWRITE_SINCE) {
            return Err(RestoreError::NeedsNewerRestic {
                mode: spec.overwrite,
                found: version.text.clone(),
            });
        }
        args.push(format!("--overwrite={}", spec.overwrite));
    }
    if spec.verify {
        args.push("--verify".to_owned());
    }
    args.push(snapshot.to_owned());
    Ok(args)
}

/// The arguments after `restore --json` for a drill (`run.drill`):
/// the sampled files as `--include`s, `--verify`, into `target` (the
/// agent's private drill folder). The same checks as a restore's apply.
pub fn drill_args(
    run: &CommandRun,
    target: &str,
    version: Option<&ResticVersion>,
) -> Result<Vec<String>, RestoreError> {
    let drill = run.drill.as_ref().ok_or(RestoreError::NoSpec)?;
    if drill.files.is_empty() {
        return Err(RestoreError::NoSpec);
    }
    let mut as_restore = run.clone();
    as_restore.drill = None;
    as_restore.restore = Some(Box::new(RestoreSpec {
        paths: drill.files.iter().map(|file| file.path.clone()).collect(),
        target: target.to_owned(),
        overwrite: RestoreOverwrite::Always,
        verify: true,
        source_host_id: None,
        repository: None,
    }));
    restore_args(&as_restore, version)
}

/// A path as an `--include` pattern matching only itself: restic matches
/// with Go's `filepath.Match`, where `*`, `?`, `[` and `\` are special and
/// a backslash escapes (not on Windows, where it separates).
fn escape_pattern(path: &str) -> String {
    if cfg!(windows) {
        return path.to_owned();
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The snapshot's paths from restic 0.14's first output line,
/// `restoring <Snapshot 9b8cd4d5 of [/srv/a /srv/b] at … by …> to /target`
/// (Go prints the list space-separated, so a path holding " /" splits).
pub fn header_paths(line: &str) -> Option<Vec<String>> {
    let rest = line.trim().strip_prefix("restoring <Snapshot ")?;
    let open = rest.find(" of [")? + " of [".len();
    let close = open + rest[open..].find("] at ")?;
    let list = &rest[open..close];
    let mut paths = Vec::new();
    for (i, part) in list.split(" /").enumerate() {
        if i == 0 {
            paths.push(part.to_owned());
        } else {
            paths.push(format!("/{part}"));
        }
    }
    Some(paths.into_iter().filter(|p| !p.is_empty()).collect())
}

/// Files and bytes counted under the target (0.14, which has no summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Regular files.
    pub files: u64,
    /// Their sizes.
    pub bytes: u64,
}

/// The `job.finished` stats of a restore: restic's summary (without its
/// `message_type`) when it printed one, else the counts, plus `errors`,
/// `verified` and `counted_by`.
pub fn restore_stats(
    spec: &RestoreSpec,
    summary: Option<&Map<String, Value>>,
    counted: Option<Counted>,
    errors: usize,
    exit_code: i32,
) -> Map<String, Value> {
    let mut stats = Map::new();
    match (summary, counted) {
        (Some(summary), _) => {
            stats.extend(
                summary
                    .iter()
                    .filter(|(key, _)| key.as_str() != "message_type")
                    .map(|(key, value)| (key.clone(), value.clone())),
            );
            stats.insert("counted_by".into(), "restic".into());
        }
        (None, Some(counted)) => {
            stats.insert("files_restored".into(), counted.files.into());
            stats.insert("bytes_restored".into(), counted.bytes.into());
            stats.insert("counted_by".into(), "target".into());
        }
        (None, None) => {}
    }
    stats.insert("errors".into(), errors.into());
    stats.insert("verified".into(), (spec.verify && exit_code == 0).into());
    stats
}

#[cfg(test)]
mod tests {
    use super::super::parse_version;
    use super::*;
    use crate::protocol::JobKind;

    fn run(spec: RestoreSpec) -> CommandRun {
        CommandRun {
            job_id: "j".to_owned(),
            kind: JobKind::Restore,
            args: Vec::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: None,
            retention_policy: None,
            snapshot_id: Some("af4db64e47b173d8".to_owned()),
            restore: Some(Box::new(spec)),
            drill: None,
            dump: None,
        }
    }

    fn spec(paths: &[&str], overwrite: RestoreOverwrite, verify: bool) -> RestoreSpec {
        RestoreSpec {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            target: "/tmp/r".to_owned(),
            overwrite,
            verify,
            source_host_id: None,
            repository: None,
        }
    }

    /// Target, escaped includes, overwrite on 0.17+, verify, snapshot last.
    #[test]
    fn arguments() {
        let v18 = parse_version("restic 0.18.0 compiled with go1.24").unwrap();
        let args = restore_args(
            &run(spec(
                &["/etc/nginx", "/srv/a*b?[c]\\d"],
                RestoreOverwrite::IfNewer,
                true,
            )),
            Some(&v18),
        )
        .unwrap();
        assert_eq!(
            args,
            [
                "--target=/tmp/r",
                "--include=/etc/nginx",
                "--include=/srv/a\\*b\\?\\[c]\\\\d",
                "--overwrite=if-newer",
                "--verify",
                "af4db64e47b173d8",
            ]
        );
        let whole = restore_args(&run(spec(&[], RestoreOverwrite::Always, false)), None).unwrap();
        assert_eq!(whole, ["--target=/tmp/r", "af4db64e47b173d8"]);
    }

    /// restic 0.14 has no `--overwrite`: any mode but "always" is refused
    /// naming the version needed; a bad snapshot id or spec is refused.
    #[test]
    fn refusals() {
        let v14 = parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64").unwrap();
        let err = restore_args(
            &run(spec(&[], RestoreOverwrite::IfNewer, false)),
            Some(&v14),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "overwrite mode \"if-newer\" needs restic 0.17 or newer; this host has restic 0.14.0"
        );
        assert!(restore_args(&run(spec(&[], RestoreOverwrite::Always, true)), Some(&v14)).is_ok());
        let mut bad = run(spec(&[], RestoreOverwrite::Always, false));
        bad.snapshot_id = Some("--help".to_owned());
        assert!(matches!(
            restore_args(&bad, None),
            Err(RestoreError::BadSnapshot(_))
        ));
        bad.snapshot_id = None;
        assert!(matches!(
            restore_args(&bad, None),
            Err(RestoreError::BadSnapshot(_))
        ));
        let mut relative = run(spec(&["etc"], RestoreOverwrite::Always, false));
        assert!(matches!(
            restore_args(&relative, None),
            Err(RestoreError::Invalid(_))
        ));
        relative.restore = None;
        assert_eq!(restore_args(&relative, None), Err(RestoreError::NoSpec));
    }

    /// 0.14's header line names the snapshot's paths.
    #[test]
    fn header() {
        let line = "restoring <Snapshot 9b8cd4d5 of [/srv/restic-test/data] at 2026-11-23 04:10:01.085109054 +0000 UTC by root@hostA> to /srv/restic-test/restore";
        assert_eq!(header_paths(line).unwrap(), ["/srv/restic-test/data"]);
        let two = "restoring <Snapshot 9b8cd4d5 of [/srv/a /home/b c] at 2026-11-23 by r@h> to /t";
        assert_eq!(header_paths(two).unwrap(), ["/srv/a", "/home/b c"]);
        assert_eq!(header_paths("{\"message_type\":\"status\"}"), None);
    }

    /// A summary is used as restic printed it; else the counts.
    #[test]
    fn stats() {
        let summary: Map<String, Value> = serde_json::from_str(
            r#"{"message_type":"summary","seconds_elapsed":0,"total_files":2,"files_restored":2,"files_skipped":0,"total_bytes":12,"bytes_restored":12,"bytes_skipped":0}"#,
        )
        .unwrap();
        let s = spec(&[], RestoreOverwrite::Always, true);
        let stats = restore_stats(&s, Some(&summary), None, 0, 0);
        assert_eq!(stats["files_restored"], 2);
        assert_eq!(stats["bytes_restored"], 12);
        assert_eq!(stats["counted_by"], "restic");
        assert_eq!(stats["verified"], true);
        assert!(!stats.contains_key("message_type"));
        let counted = Counted {
            files: 3,
            bytes: 70,
        };
        let stats = restore_stats(&s, None, Some(counted), 2, 1);
        assert_eq!(stats["files_restored"], 3);
        assert_eq!(stats["bytes_restored"], 70);
        assert_eq!(stats["errors"], 2);
        assert_eq!(stats["verified"], false);
        assert_eq!(stats["counted_by"], "target");
    }

    /// A drill restores its sample with --verify into the given folder;
    /// one without files is refused.
    #[test]
    fn drill_arguments() {
        let mut command = run(RestoreSpec {
            paths: Vec::new(),
            target: "/unused".to_owned(),
            overwrite: RestoreOverwrite::Always,
            verify: false,
            source_host_id: None,
            repository: None,
        });
        command.kind = JobKind::Drill;
        command.restore = None;
        command.drill = Some(Box::new(crate::protocol::DrillSpec {
            files: vec![crate::protocol::DrillFile {
                path: "/d/a*.txt".to_owned(),
                size: 3,
            }],
        }));
        let args = drill_args(&command, "/var/lib/rm/drills/j", None).unwrap();
        assert_eq!(
            args,
            [
                "--target=/var/lib/rm/drills/j",
                "--include=/d/a\\*.txt",
                "--verify",
                "af4db64e47b173d8"
            ]
        );
        command.drill = Some(Box::new(crate::protocol::DrillSpec { files: Vec::new() }));
        assert_eq!(drill_args(&command, "/t", None), Err(RestoreError::NoSpec));
    }
}
