//! The `restic` command lines the agent runs, built without running them:
//! the argument lists of the job kinds (restore's in `restore`) and of the
//! report commands, validated against what the server may ask for. The
//! environment each run gets is `invocation`'s.

use std::path::{Path, PathBuf};

use super::invocation::{Invocation, SCRUBBED_ENV};
use super::{RepoSettings, ResticVersion};
use crate::protocol::{
    check_option_arg, CommandRun, JobKind, FLAG_COMPRESSION, FLAG_USE_FS_SNAPSHOT,
};

/// What a job cannot be built from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No repository URL or password has been pushed yet.
    #[error("no repository is configured for this host")]
    NotConfigured,
    /// A backup without paths.
    #[error("a backup needs at least one include path")]
    NoIncludes,
    /// A dump that must not run.
    #[error(transparent)]
    Dump(#[from] crate::protocol::InvalidDump),
    /// A dump backup that also names paths.
    #[error("a dump backup reads its dump only; it takes no include or exclude")]
    DumpWithPaths,
    /// An include path or exclude pattern that is empty.
    #[error("empty include path or exclude pattern")]
    EmptyPath,
    /// A tag restic would split or mangle.
    #[error("tag {0:?} must be non-empty and contain no comma")]
    BadTag(String),
    /// A forget without any keep rule.
    #[error("a forget job needs a retention policy with at least one keep rule")]
    NoRetention,
    /// A retention policy restic would refuse.
    #[error(transparent)]
    BadRetention(#[from] crate::protocol::InvalidRetention),
    /// A restore that cannot run here (bad parameters, or an overwrite
    /// mode this restic lacks).
    #[error(transparent)]
    Restore(#[from] super::restore::RestoreError),
    /// A snapshot id that is not restic's hexadecimal id (or none).
    #[error("snapshot_id {0:?} is not a restic snapshot id (8 to 64 hexadecimal digits)")]
    BadSnapshotId(String),
    /// A directory to list that is not an absolute path.
    #[error("path {0:?} must be absolute and contain no NUL")]
    BadPath(String),
    /// A source group option whose value is not what the server may send.
    #[error(transparent)]
    BadOption(#[from] crate::protocol::InvalidOption),
    /// A source group option this host cannot honour (its restic is too
    /// old, or the option exists on another operating system only).
    #[error("{0}")]
    Unsupported(String),
    /// An extra argument outside the allow-list for the kind.
    #[error("argument {arg:?} is not allowed for {kind} jobs")]
    ArgNotAllowed {
        /// The job kind.
        kind: JobKind,
        /// The refused argument.
        arg: String,
    },
}

/// Where restic finds its binary and keeps its cache, and which version it
/// is: the parts of an invocation that come from the host, not the server.
#[derive(Debug, Clone)]
pub struct ResticHost {
    /// The restic executable.
    pub binary: PathBuf,
    /// `RESTIC_CACHE_DIR` (inside the agent's state directory, so restic has
    /// a cache even when the service has no `$HOME`).
    pub cache_dir: PathBuf,
    /// The version found at start-up or on the last connect, if any.
    pub version: Option<ResticVersion>,
    /// The host name snapshots are made and looked up under (`--host`
    /// on backup, forget and snapshots), if set: hosts that share a
    /// repository then see only their own snapshots.
    pub hostname: Option<String>,
}

impl ResticHost {
    /// A host description for `binary`, caching under `state_dir/cache`.
    pub fn new(binary: impl Into<PathBuf>, state_dir: &Path) -> Self {
        Self {
            binary: binary.into(),
            cache_dir: state_dir.join("cache"),
            version: None,
            hostname: None,
        }
    }

    /// `restic version --json`, which 0.14 answers in text.
    pub fn version_invocation(&self) -> Invocation {
        Invocation {
            program: self.binary.clone(),
            args: vec!["version".to_owned(), "--json".to_owned()],
            env: Vec::new(),
            env_remove: SCRUBBED_ENV,
        }
    }

    /// The invocation of a job. Validates everything the server sent, so a
    /// bad `command.run` is refused in `command.result`, not run.
    pub fn job(&self, run: &CommandRun, repo: &RepoSettings) -> Result<Invocation, BuildError> {
        let mut args = vec![run.kind.as_str().to_owned(), "--json".to_owned()];
        match run.kind {
            JobKind::Backup if run.dump.is_some() => {
                // A dump group: the dump tool's stdout is restic's stdin.
                let dump = run.dump.as_deref().ok_or(BuildError::NoIncludes)?;
                dump.validate()?;
                if !run.includes.is_empty() || !run.excludes.is_empty() {
                    return Err(BuildError::DumpWithPaths);
                }
                if let Some(tag) = &run.tag {
                    args.push("--tag".to_owned());
                    args.push(checked_tag(tag)?);
                }
                push_extra_args(&mut args, run)?;
                args.push("--stdin".to_owned());
                args.push(format!("--stdin-filename={}", dump.file_name()));
            }
            JobKind::Backup => {
                if run.includes.is_empty() {
                    return Err(BuildError::NoIncludes);
                }
                if let Some(tag) = &run.tag {
                    args.push("--tag".to_owned());
                    args.push(checked_tag(tag)?);
                }
                for exclude in &run.excludes {
                    if exclude.is_empty() {
                        return Err(BuildError::EmptyPath);
                    }
                    args.push(format!("--exclude={exclude}"));
                }
                push_extra_args(&mut args, run)?;
                self.push_host(&mut args);
                // `--` so that an include beginning with '-' is a path.
                args.push("--".to_owned());
                for include in &run.includes {
                    if include.is_empty() {
                        return Err(BuildError::EmptyPath);
                    }
                    args.push(include.clone());
                }
            }
            JobKind::Forget => {
                let policy = run
                    .retention_policy
                    .as_ref()
                    .filter(|policy| !policy.is_empty())
                    .ok_or(BuildError::NoRetention)?;
                policy.validate()?;
                if let Some(tag) = &run.tag {
                    args.push("--tag".to_owned());
                    args.push(checked_tag(tag)?);
                }
                args.extend(policy.keep_flags());
                push_extra_args(&mut args, run)?;
                self.push_host(&mut args);
            }
            JobKind::Init | JobKind::Prune | JobKind::Check | JobKind::Unlock => {
                push_extra_args(&mut args, run)?;
            }
            JobKind::Catalog => {
                // `restic ls --json -- <snapshot>`: every node, streamed.
                let snapshot = checked_snapshot_id(run.snapshot_id.as_deref().unwrap_or(""))?;
                push_extra_args(&mut args, run)?;
                args[0] = "ls".to_owned();
                args.push("--".to_owned());
                args.push(snapshot);
            }
            JobKind::Restore => {
                push_extra_args(&mut args, run)?;
                args.extend(super::restore::restore_args(run, self.version.as_ref())?);
            }
            JobKind::Drill => {
                push_extra_args(&mut args, run)?;
                args[0] = "restore".to_owned();
                let target = self.drill_dir(&run.job_id)?;
                let target = target.to_string_lossy();
                args.extend(super::restore::drill_args(
                    run,
                    &target,
                    self.version.as_ref(),
                )?);
            }
        }
        self.check_supported(&args)?;
        self.with_repo(args, repo)
    }

    /// Refuses the source group options this host cannot honour, rather
    /// than let restic fail on an unknown flag or silently ignore one:
    /// `--compression` needs restic 0.14, `--use-fs-snapshot` Windows.
    fn check_supported(&self, args: &[String]) -> Result<(), BuildError> {
        if args.iter().any(|a| a.starts_with(FLAG_COMPRESSION)) {
            if let Some(version) = self.version.as_ref().filter(|v| v.numbers < (0, 14, 0)) {
                return Err(BuildError::Unsupported(format!(
                    "options.compression needs restic 0.14 or newer (and a repository of format version 2); this host runs restic {}",
                    version.text
                )));
            }
        }
        if !cfg!(windows) && args.iter().any(|a| a == FLAG_USE_FS_SNAPSHOT) {
            return Err(BuildError::Unsupported(format!(
                "options.use_fs_snapshot (Windows VSS) exists on Windows agents only; this agent runs on {}",
                std::env::consts::OS
            )));
        }
        Ok(())
    }

    /// The private folder a drill job restores into: `drills/<job id>`
    /// beside the cache, inside the agent's state directory.
    pub fn drill_dir(&self, job_id: &str) -> Result<PathBuf, BuildError> {
        if !is_file_safe_id(job_id) {
            return Err(BuildError::BadPath(job_id.chars().take(100).collect()));
        }
        Ok(self.cache_dir.with_file_name("drills").join(job_id))
    }

    /// `restic ls --json --no-lock <snapshot> <dir>`: one folder, for a
    /// live listing (no lock: it only reads, and may run beside a job).
    pub fn ls_dir(
        &self,
        repo: &RepoSettings,
        snapshot_id: &str,
        dir: &str,
    ) -> Result<Invocation, BuildError> {
        let snapshot = checked_snapshot_id(snapshot_id)?;
        if !dir.starts_with('/') || dir.contains('\0') {
            return Err(BuildError::BadPath(dir.chars().take(100).collect()));
        }
        self.with_repo(
            strings(&["ls", "--json", "--no-lock", "--", &snapshot, dir]),
            repo,
        )
    }

    /// `restic snapshots --json` (no lock: it only reads), this host's
    /// snapshots only when the host name is set.
    pub fn snapshots(&self, repo: &RepoSettings) -> Result<Invocation, BuildError> {
        let mut args = strings(&["snapshots", "--json", "--no-lock"]);
        self.push_host(&mut args);
        self.with_repo(args, repo)
    }

    /// `--host=<name>` when the host name is set and the server's extra
    /// arguments did not name one.
    fn push_host(&self, args: &mut Vec<String>) {
        if let Some(name) = &self.hostname {
            if !args.iter().any(|arg| arg.starts_with("--host=")) {
                args.push(format!("--host={name}"));
            }
        }
    }

    /// `restic stats --json --mode <mode>` (`raw-data` or `restore-size`).
    pub fn stats(&self, repo: &RepoSettings, mode: &str) -> Result<Invocation, BuildError> {
        self.with_repo(
            strings(&["stats", "--json", "--no-lock", "--mode", mode]),
            repo,
        )
    }

    /// `restic unlock`: removes stale locks only (those older than 30
    /// minutes, or made on this host by a process that no longer exists),
    /// never the lock of a restic that still runs.
    pub fn unlock_stale(&self, repo: &RepoSettings) -> Result<Invocation, BuildError> {
        self.with_repo(strings(&["unlock"]), repo)
    }

    /// `restic ls --json --no-lock <snapshot> <path>`: the entry at `path`
    /// first (a download asks whether it is a file or a folder).
    pub fn ls_path(
        &self,
        repo: &RepoSettings,
        snapshot_id: &str,
        path: &str,
    ) -> Result<Invocation, BuildError> {
        let args = strings(&["ls", "--json", "--no-lock", "--", snapshot_id, path]);
        self.with_repo(args, repo)
    }

    /// `restic dump <snapshot> <path>`, with `--archive tar` for a folder
    /// (a file is printed as itself). It takes restic's shared lock.
    pub fn dump(
        &self,
        repo: &RepoSettings,
        snapshot_id: &str,
        path: &str,
        folder: bool,
    ) -> Result<Invocation, BuildError> {
        let mut args = strings(&["dump"]);
        if folder {
            args.extend(strings(&["--archive", "tar"]));
        }
        args.extend(strings(&["--", snapshot_id, path]));
        self.with_repo(args, repo)
    }

    /// `restic list locks` (no lock of its own, or it would see itself).
    pub fn list_locks(&self, repo: &RepoSettings) -> Result<Invocation, BuildError> {
        self.with_repo(strings(&["list", "locks", "--no-lock"]), repo)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// A snapshot id as restic prints it (full or short): hexadecimal only,
/// so it can never be read as a flag.
fn checked_snapshot_id(id: &str) -> Result<String, BuildError> {
    if (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_owned())
    } else {
        Err(BuildError::BadSnapshotId(id.chars().take(100).collect()))
    }
}

fn checked_tag(tag: &str) -> Result<String, BuildError> {
    if tag.is_empty() || tag.contains(',') {
        return Err(BuildError::BadTag(tag.chars().take(100).collect()));
    }
    Ok(tag.to_owned())
}

/// Flags a `command.run` may add through `args`, per kind: `--flag` alone,
/// or `--flag=` followed by a value. Anything else is refused, so the
/// server cannot make restic read a password file or run a command.
fn allowed_flags(kind: JobKind) -> &'static [&'static str] {
    match kind {
        JobKind::Backup => &[
            "--one-file-system",
            "--exclude-caches",
            "--exclude-if-present=",
            "--exclude-larger-than=",
            "--host=",
            "--with-atime",
            "--force",
            "--limit-upload=",
            "--limit-download=",
            "--compression=",
            "--use-fs-snapshot",
        ],
        JobKind::Init => &["--repository-version="],
        JobKind::Forget => &[
            "--dry-run",
            "--group-by=",
            "--host=",
            "--prune",
            "--limit-upload=",
            "--limit-download=",
        ],
        JobKind::Prune => &[
            "--dry-run",
            "--max-unused=",
            "--max-repack-size=",
            "--repack-cacheable-only",
        ],
        JobKind::Check => &["--read-data", "--read-data-subset=", "--with-cache"],
        JobKind::Unlock => &["--remove-all"],
        JobKind::Restore | JobKind::Catalog | JobKind::Drill => &[],
    }
}

/// Whether a job id can name a file or folder as is: 1-64 ASCII letters,
/// digits, '-' or '_' (no separator, no `..`).
pub fn is_file_safe_id(job_id: &str) -> bool {
    !job_id.is_empty()
        && job_id.len() <= 64
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn push_extra_args(args: &mut Vec<String>, run: &CommandRun) -> Result<(), BuildError> {
    let allowed = allowed_flags(run.kind);
    for arg in &run.args {
        let ok = allowed.iter().any(|flag| match flag.strip_suffix('=') {
            Some(_) => arg.len() > flag.len() && arg.starts_with(flag),
            None => arg == flag,
        });
        if !ok {
            return Err(BuildError::ArgNotAllowed {
                kind: run.kind,
                arg: arg.chars().take(100).collect(),
            });
        }
        // A source group option's value is checked as the server did.
        check_option_arg(arg)?;
        args.push(arg.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::settings::tests::repo;
    use super::*;
    use crate::protocol::RetentionPolicy;

    fn host() -> ResticHost {
        ResticHost::new("/usr/bin/restic", Path::new("/var/lib/rm"))
    }

    fn run(kind: JobKind) -> CommandRun {
        CommandRun {
            job_id: "j1".to_owned(),
            kind,
            args: Vec::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: None,
            retention_policy: None,
            snapshot_id: None,
            restore: None,
            drill: None,
            dump: None,
        }
    }

    /// A dump backup reads restic's stdin into `<database>.sql`; a bad
    /// dump or one with paths is refused.
    #[test]
    fn dump_backup_arguments() {
        let mut command = run(JobKind::Backup);
        command.tag = Some("db".to_owned());
        command.dump = Some(Box::new(
            serde_json::from_value(serde_json::json!({"driver": "postgres", "database": "shop"}))
                .unwrap(),
        ));
        let invocation = host().job(&command, &repo()).unwrap();
        assert_eq!(
            invocation.args,
            [
                "backup",
                "--json",
                "--tag",
                "db",
                "--stdin",
                "--stdin-filename=shop.sql"
            ]
        );
        command.includes = vec!["/etc".to_owned()];
        assert_eq!(
            host().job(&command, &repo()).unwrap_err(),
            BuildError::DumpWithPaths
        );
        command.includes.clear();
        if let Some(dump) = command.dump.as_mut() {
            dump.database = Some("--help".to_owned());
        }
        let err = host().job(&command, &repo()).unwrap_err().to_string();
        assert!(err.starts_with("dump.database:"), "{err}");
    }

    /// A backup passes tag, excludes and includes as arguments and the
    /// repository and password only through the environment.
    #[test]
    fn backup_arguments() {
        let mut command = run(JobKind::Backup);
        command.includes = vec!["/etc".to_owned(), "-odd dir".to_owned()];
        command.excludes = vec!["*.tmp".to_owned(), "/etc/ssl".to_owned()];
        command.tag = Some("etc".to_owned());
        let invocation = host().job(&command, &repo()).unwrap();
        assert_eq!(
            invocation.args,
            [
                "backup",
                "--json",
                "--tag",
                "etc",
                "--exclude=*.tmp",
                "--exclude=/etc/ssl",
                "--",
                "/etc",
                "-odd dir"
            ]
        );
        assert_eq!(
            invocation.env_value("RESTIC_REPOSITORY"),
            Some("/srv/restic-test/repo")
        );
        assert_eq!(invocation.env_value("RESTIC_PASSWORD"), Some("pw-123"));
        assert_eq!(invocation.env_value("RESTIC_PROGRESS_FPS"), Some("2"));
        assert_eq!(
            invocation.env_value("RESTIC_CACHE_DIR"),
            Some("/var/lib/rm/cache")
        );
        assert!(!invocation.args.iter().any(|arg| arg.contains("pw-123")));
        assert!(invocation.env_remove.contains(&"RESTIC_PASSWORD_COMMAND"));
    }

    /// Forget turns the retention policy into keep flags with the tag filter.
    #[test]
    fn forget_arguments() {
        let mut command = run(JobKind::Forget);
        command.tag = Some("etc".to_owned());
        command.retention_policy = Some(RetentionPolicy {
            keep_daily: Some(7),
            keep_within: Some("30d".to_owned()),
            ..RetentionPolicy::default()
        });
        let invocation = host().job(&command, &repo()).unwrap();
        assert_eq!(
            invocation.args,
            [
                "forget",
                "--json",
                "--tag",
                "etc",
                "--keep-daily",
                "7",
                "--keep-within",
                "30d"
            ]
        );
    }

    /// The other four kinds are the bare subcommand with `--json`.
    #[test]
    fn simple_kind_arguments() {
        for kind in [
            JobKind::Init,
            JobKind::Prune,
            JobKind::Check,
            JobKind::Unlock,
        ] {
            let invocation = host().job(&run(kind), &repo()).unwrap();
            assert_eq!(invocation.args, [kind.as_str(), "--json"]);
        }
        let mut check = run(JobKind::Check);
        check.args = vec!["--read-data-subset=5%".to_owned()];
        let invocation = host().job(&check, &repo()).unwrap();
        assert_eq!(
            invocation.args,
            ["check", "--json", "--read-data-subset=5%"]
        );
    }

    /// Invalid jobs are refused with a reason.
    #[test]
    fn invalid_jobs_are_refused() {
        assert_eq!(
            host()
                .job(&run(JobKind::Check), &RepoSettings::default())
                .unwrap_err(),
            BuildError::NotConfigured
        );
        assert_eq!(
            host().job(&run(JobKind::Backup), &repo()).unwrap_err(),
            BuildError::NoIncludes
        );
        assert_eq!(
            host().job(&run(JobKind::Forget), &repo()).unwrap_err(),
            BuildError::NoRetention
        );
        let mut forget = run(JobKind::Forget);
        forget.retention_policy = Some(RetentionPolicy {
            keep_within: Some("--prune".to_owned()),
            ..RetentionPolicy::default()
        });
        assert!(matches!(
            host().job(&forget, &repo()).unwrap_err(),
            BuildError::BadRetention(_)
        ));
        let mut backup = run(JobKind::Backup);
        backup.includes = vec!["/etc".to_owned()];
        backup.tag = Some("a,b".to_owned());
        assert!(matches!(
            host().job(&backup, &repo()).unwrap_err(),
            BuildError::BadTag(_)
        ));
        backup.tag = None;
        backup.excludes = vec![String::new()];
        assert_eq!(
            host().job(&backup, &repo()).unwrap_err(),
            BuildError::EmptyPath
        );
        for bad in [
            "--password-command=sh",
            "--read-data-subset=",
            "x",
            "--read-datax",
        ] {
            let mut check = run(JobKind::Check);
            check.args = vec![bad.to_owned()];
            assert!(
                matches!(
                    host().job(&check, &repo()).unwrap_err(),
                    BuildError::ArgNotAllowed { .. }
                ),
                "{bad}"
            );
        }
    }

    /// A group's options arrive as flags: accepted with good values,
    /// refused with bad ones, on the wrong kind, or when this host cannot
    /// honour them (old restic for compression, VSS off Windows).
    #[test]
    fn option_flags() {
        let mut backup = run(JobKind::Backup);
        backup.includes = vec!["/srv".to_owned()];
        backup.args = vec![
            "--limit-upload=100".to_owned(),
            "--limit-download=200".to_owned(),
            "--one-file-system".to_owned(),
            "--exclude-caches".to_owned(),
            "--exclude-larger-than=500M".to_owned(),
            "--compression=max".to_owned(),
        ];
        let args = host().job(&backup, &repo()).unwrap().args;
        assert_eq!(args[2..8], backup.args[..]);
        assert_eq!(args[8..], ["--", "/srv"]);
        for bad in [
            "--limit-upload=0",
            "--exclude-larger-than=big",
            "--compression=fastest",
        ] {
            let mut b = backup.clone();
            b.args = vec![bad.to_owned()];
            let err = host().job(&b, &repo()).unwrap_err();
            assert!(matches!(err, BuildError::BadOption(_)), "{bad}: {err}");
            assert!(err.to_string().starts_with("options."), "{err}");
        }
        let mut forget = run(JobKind::Forget);
        forget.retention_policy = Some(RetentionPolicy {
            keep_last: Some(1),
            ..RetentionPolicy::default()
        });
        forget.args = vec!["--limit-upload=100".to_owned()];
        host().job(&forget, &repo()).unwrap();
        forget.args = vec!["--compression=max".to_owned()];
        assert!(matches!(
            host().job(&forget, &repo()).unwrap_err(),
            BuildError::ArgNotAllowed { .. }
        ));
        let mut old = host();
        old.version = Some(ResticVersion {
            text: "0.13.1".to_owned(),
            numbers: (0, 13, 1),
        });
        let err = old.job(&backup, &repo()).unwrap_err().to_string();
        assert!(
            err.starts_with("options.compression needs restic 0.14"),
            "{err}"
        );
        let mut vss = backup.clone();
        vss.args = vec!["--use-fs-snapshot".to_owned()];
        let outcome = host().job(&vss, &repo());
        if cfg!(windows) {
            outcome.unwrap();
        } else {
            let err = outcome.unwrap_err().to_string();
            assert!(err.starts_with("options.use_fs_snapshot"), "{err}");
        }
    }

    /// With a host name, backup, forget and snapshots name it (`--host`),
    /// unless the job's arguments name one; other kinds do not.
    #[test]
    fn host_filter() {
        let mut restic = host();
        restic.hostname = Some("web-1".to_owned());
        let mut backup = run(JobKind::Backup);
        backup.includes = vec!["/etc".to_owned()];
        let args = restic.job(&backup, &repo()).unwrap().args;
        assert_eq!(args, ["backup", "--json", "--host=web-1", "--", "/etc"]);
        let mut forget = run(JobKind::Forget);
        forget.retention_policy = Some(RetentionPolicy {
            keep_last: Some(2),
            ..RetentionPolicy::default()
        });
        forget.args = vec!["--host=other".to_owned()];
        let args = restic.job(&forget, &repo()).unwrap().args;
        assert_eq!(
            args,
            ["forget", "--json", "--keep-last", "2", "--host=other"]
        );
        forget.args.clear();
        let args = restic.job(&forget, &repo()).unwrap().args;
        assert_eq!(
            args,
            ["forget", "--json", "--keep-last", "2", "--host=web-1"]
        );
        assert_eq!(
            restic.snapshots(&repo()).unwrap().args,
            ["snapshots", "--json", "--no-lock", "--host=web-1"]
        );
        let prune = restic.job(&run(JobKind::Prune), &repo()).unwrap().args;
        assert_eq!(prune, ["prune", "--json"]);
    }

    /// Report commands read without locking.
    #[test]
    fn report_invocations() {
        let restic = host();
        assert_eq!(
            restic.snapshots(&repo()).unwrap().args,
            ["snapshots", "--json", "--no-lock"]
        );
        assert_eq!(
            restic.stats(&repo(), "raw-data").unwrap().args,
            ["stats", "--json", "--no-lock", "--mode", "raw-data"]
        );
        assert_eq!(
            restic.list_locks(&repo()).unwrap().args,
            ["list", "locks", "--no-lock"]
        );
        assert_eq!(restic.version_invocation().args, ["version", "--json"]);
    }
}
