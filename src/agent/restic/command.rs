//! The `restic` command lines the agent runs, built without running them:
//! the argument lists of the job kinds (restore's in `restore`) and of the report commands, and
//! the environment that carries credentials (never argv) with inherited
//! variables that could redirect restic scrubbed.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{RepoSettings, ResticVersion};
use crate::agent::config::Secret;
use crate::protocol::{CommandRun, JobKind};

/// Progress frames restic prints per second with `--json` (`RESTIC_PROGRESS_FPS`):
/// matched to the at-most-2-per-second `job.progress` rate.
pub const PROGRESS_FPS: &str = "2";

/// Environment variables removed from restic's environment: inherited from
/// the agent's own, they could point restic at another repository or
/// password source than the one the server configured.
const SCRUBBED_ENV: &[&str] = &[
    "RESTIC_REPOSITORY",
    "RESTIC_REPOSITORY_FILE",
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_KEY_HINT",
    "RESTIC_REST_USERNAME",
    "RESTIC_REST_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "B2_ACCOUNT_ID",
    "B2_ACCOUNT_KEY",
    "AZURE_ACCOUNT_NAME",
    "AZURE_ACCOUNT_KEY",
];

/// One restic run: program, arguments (never a secret) and environment
/// (credentials). `Debug` shows the variable names, not their values.
#[derive(Clone)]
pub struct Invocation {
    /// The restic executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it (values may be secrets).
    pub env: Vec<(&'static str, Secret)>,
    /// Variables removed from the inherited environment.
    pub env_remove: &'static [&'static str],
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Invocation")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &names)
            .finish()
    }
}

impl Invocation {
    /// A `tokio::process::Command` for this run (stdio not yet set).
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args);
        for name in self.env_remove {
            command.env_remove(name);
        }
        for (name, value) in &self.env {
            command.env(name, OsString::from(value.expose()));
        }
        command
    }

    /// The value of an environment variable of this run (tests, checks).
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.expose())
    }
}

/// What a job cannot be built from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// No repository URL or password has been pushed yet.
    #[error("no repository is configured for this host")]
    NotConfigured,
    /// A backup without paths.
    #[error("a backup needs at least one include path")]
    NoIncludes,
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
}

impl ResticHost {
    /// A host description for `binary`, caching under `state_dir/cache`.
    pub fn new(binary: impl Into<PathBuf>, state_dir: &Path) -> Self {
        Self {
            binary: binary.into(),
            cache_dir: state_dir.join("cache"),
            version: None,
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
        }
        self.with_repo(args, repo)
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

    /// `restic snapshots --json` (no lock: it only reads).
    pub fn snapshots(&self, repo: &RepoSettings) -> Result<Invocation, BuildError> {
        self.with_repo(strings(&["snapshots", "--json", "--no-lock"]), repo)
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

    /// Adds the repository environment to `args`.
    fn with_repo(&self, args: Vec<String>, repo: &RepoSettings) -> Result<Invocation, BuildError> {
        let (Some(url), Some(password)) = (&repo.url, &repo.password) else {
            return Err(BuildError::NotConfigured);
        };
        let mut env = vec![
            ("RESTIC_PASSWORD", password.clone()),
            ("RESTIC_PROGRESS_FPS", Secret::new(PROGRESS_FPS)),
            (
                "RESTIC_CACHE_DIR",
                Secret::new(self.cache_dir.to_string_lossy()),
            ),
        ];
        let mut repository = url.clone();
        let backend = url.expose().split(':').next().unwrap_or_default();
        if let (Some(username), Some(credential)) = (&repo.username, &repo.credential) {
            let credential = credential.clone();
            let username = Secret::new(username.as_str());
            match backend {
                "rest" => {
                    let env_supported = self
                        .version
                        .as_ref()
                        .is_none_or(ResticVersion::has_rest_credential_env);
                    if env_supported {
                        env.push(("RESTIC_REST_USERNAME", username));
                        env.push(("RESTIC_REST_PASSWORD", credential));
                    } else {
                        // restic < 0.17 reads REST credentials only from the
                        // URL; it goes through the environment, never argv.
                        repository = Secret::new(rest_url_with_credentials(
                            url.expose(),
                            username.expose(),
                            credential.expose(),
                        ));
                    }
                }
                "s3" => {
                    env.push(("AWS_ACCESS_KEY_ID", username));
                    env.push(("AWS_SECRET_ACCESS_KEY", credential));
                }
                "b2" => {
                    env.push(("B2_ACCOUNT_ID", username));
                    env.push(("B2_ACCOUNT_KEY", credential));
                }
                "azure" => {
                    env.push(("AZURE_ACCOUNT_NAME", username));
                    env.push(("AZURE_ACCOUNT_KEY", credential));
                }
                _ => {}
            }
        }
        env.insert(0, ("RESTIC_REPOSITORY", repository));
        Ok(Invocation {
            program: self.binary.clone(),
            args,
            env,
            env_remove: SCRUBBED_ENV,
        })
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
        ],
        JobKind::Init => &["--repository-version="],
        JobKind::Forget => &["--dry-run", "--group-by=", "--host=", "--prune"],
        JobKind::Prune => &[
            "--dry-run",
            "--max-unused=",
            "--max-repack-size=",
            "--repack-cacheable-only",
        ],
        JobKind::Check => &["--read-data", "--read-data-subset=", "--with-cache"],
        JobKind::Unlock => &["--remove-all"],
        JobKind::Restore | JobKind::Catalog => &[],
    }
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
        args.push(arg.clone());
    }
    Ok(())
}

/// `rest:https://host/path` with `user:password@` inserted into the
/// authority (percent-encoded), for restic < 0.17.
fn rest_url_with_credentials(url: &str, username: &str, password: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find('/').unwrap_or(rest.len());
    if rest[..authority_len].contains('@') {
        return url.to_owned(); // the URL already carries credentials
    }
    format!(
        "{}{}:{}@{}",
        &url[..authority_start],
        percent_encode_userinfo(username),
        percent_encode_userinfo(password),
        rest
    )
}

fn percent_encode_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse_version;
    use super::super::settings::tests::repo;
    use super::*;
    use crate::protocol::{ConfigUpdate, RetentionPolicy};

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
        }
    }

    /// Debug of the settings and of an invocation shows no secret.
    #[test]
    fn debug_hides_secrets() {
        let mut settings = repo();
        settings.apply(&ConfigUpdate {
            repo_url: Some("rest:https://u:urlpass@h/r".to_owned()),
            repo_credential: Some("cred-secret".to_owned()),
            repo_username: Some("u".to_owned()),
            ..ConfigUpdate::default()
        });
        let invocation = host().job(&run(JobKind::Check), &settings).unwrap();
        let shown = format!("{settings:?} {invocation:?}");
        for secret in ["pw-123", "urlpass", "cred-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("RESTIC_PASSWORD"));
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

    /// REST credentials go to RESTIC_REST_* on restic ≥ 0.17 (or unknown),
    /// into the URL (environment only) before; S3 keys to AWS_*.
    #[test]
    fn backend_credentials() {
        let mut settings = repo();
        settings.apply(&ConfigUpdate {
            repo_url: Some("rest:https://backup.example:8000/web".to_owned()),
            repo_username: Some("alice".to_owned()),
            repo_credential: Some("p@ss:w/rd".to_owned()),
            ..ConfigUpdate::default()
        });
        let mut restic = host();
        let modern = restic.job(&run(JobKind::Check), &settings).unwrap();
        assert_eq!(modern.env_value("RESTIC_REST_USERNAME"), Some("alice"));
        assert_eq!(modern.env_value("RESTIC_REST_PASSWORD"), Some("p@ss:w/rd"));
        assert_eq!(
            modern.env_value("RESTIC_REPOSITORY"),
            Some("rest:https://backup.example:8000/web")
        );

        restic.version = parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64");
        let old = restic.job(&run(JobKind::Check), &settings).unwrap();
        assert_eq!(old.env_value("RESTIC_REST_USERNAME"), None);
        assert_eq!(
            old.env_value("RESTIC_REPOSITORY"),
            Some("rest:https://alice:p%40ss%3Aw%2Frd@backup.example:8000/web")
        );
        assert!(!old.args.iter().any(|arg| arg.contains("alice")));

        settings.apply(&ConfigUpdate {
            repo_url: Some("s3:s3.amazonaws.com/bucket".to_owned()),
            ..ConfigUpdate::default()
        });
        let s3 = restic.job(&run(JobKind::Check), &settings).unwrap();
        assert_eq!(s3.env_value("AWS_ACCESS_KEY_ID"), Some("alice"));
        assert_eq!(s3.env_value("AWS_SECRET_ACCESS_KEY"), Some("p@ss:w/rd"));
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
