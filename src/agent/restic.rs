//! Everything the agent knows about the `restic` command line, without
//! running it: the repository settings pushed by `config.update`, the
//! argument lists of the six job kinds and of the report commands, the
//! environment that carries credentials (never argv), the parsers of restic
//! 0.14–0.18 output, and the exit-code mapping.
//!
//! Running processes is [`runner`](super::runner)'s job; this module is pure
//! and tested against the outputs recorded in `shared/restic-json-samples.txt`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::Secret;
use crate::protocol::{
    CommandRun, ConfigUpdate, FinishStatus, JobKind, JobProgress, LockState, SnapshotInfo,
};

/// Progress frames restic prints per second with `--json` (`RESTIC_PROGRESS_FPS`):
/// matched to the at-most-2-per-second `job.progress` rate.
pub const PROGRESS_FPS: &str = "2";

/// Restic's "some source files could not be read" exit code: the snapshot
/// was made, so the job succeeded with a warning.
pub const EXIT_PARTIAL: i32 = 3;

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

// ---------------------------------------------------------------------------
// Repository settings (config.update)
// ---------------------------------------------------------------------------

/// The repository settings last pushed by `config.update`. Kept in memory
/// only: the server re-sends them after every `hello`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepoSettings {
    /// `RESTIC_REPOSITORY` (may hold REST credentials for restic < 0.17).
    pub url: Option<Secret>,
    /// `RESTIC_PASSWORD`.
    pub password: Option<Secret>,
    /// REST user name, S3 access key id, B2 account id, Azure account name.
    pub username: Option<String>,
    /// REST password, S3 secret key, B2 / Azure account key.
    pub credential: Option<Secret>,
    /// The shell hooks run under.
    pub hook_shell: Option<String>,
}

impl fmt::Debug for RepoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoSettings")
            .field(
                "url",
                &self
                    .url
                    .as_ref()
                    .map(|url| crate::redact::url(url.expose())),
            )
            .field("password", &self.password)
            .field("username", &self.username)
            .field("credential", &self.credential)
            .field("hook_shell", &self.hook_shell)
            .finish()
    }
}

impl RepoSettings {
    /// Applies a `config.update`: an absent or empty field leaves the
    /// current value as is.
    pub fn apply(&mut self, update: &ConfigUpdate) {
        fn set<T>(slot: &mut Option<T>, value: Option<&String>, wrap: impl Fn(String) -> T) {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                *slot = Some(wrap(value.clone()));
            }
        }
        set(&mut self.url, update.repo_url.as_ref(), Secret::new);
        set(
            &mut self.password,
            update.repo_password.as_ref(),
            Secret::new,
        );
        set(
            &mut self.username,
            update.repo_username.as_ref(),
            String::from,
        );
        set(
            &mut self.credential,
            update.repo_credential.as_ref(),
            Secret::new,
        );
        set(
            &mut self.hook_shell,
            update.hook_shell.as_ref(),
            String::from,
        );
    }

    /// Whether restic can be pointed at the repository (URL and password).
    pub fn is_configured(&self) -> bool {
        self.url.is_some() && self.password.is_some()
    }
}

// ---------------------------------------------------------------------------
// restic version
// ---------------------------------------------------------------------------

/// A restic version as `restic version` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResticVersion {
    /// The version text (`"0.14.0"`, `"0.16.4-dev"`).
    pub text: String,
    /// Major, minor and patch numbers (missing parts are 0).
    pub numbers: (u32, u32, u32),
}

impl ResticVersion {
    /// Whether restic reads REST credentials from `RESTIC_REST_USERNAME` /
    /// `RESTIC_REST_PASSWORD` (0.17 and later).
    pub fn has_rest_credential_env(&self) -> bool {
        self.numbers >= (0, 17, 0)
    }
}

/// Parses the output of `restic version` (0.14's text line, or 0.18's
/// `--json` object).
pub fn parse_version(output: &str) -> Option<ResticVersion> {
    #[derive(Deserialize)]
    struct VersionJson {
        message_type: String,
        version: String,
    }
    let text = output.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('{') {
            let parsed: VersionJson = serde_json::from_str(line).ok()?;
            (parsed.message_type == "version").then_some(parsed.version)
        } else {
            let rest = line.strip_prefix("restic ")?;
            rest.split_whitespace().next().map(str::to_owned)
        }
    })?;
    let text = text.trim_start_matches('v').to_owned();
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|part| part.parse::<u32>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(ResticVersion {
        text,
        numbers: (major, minor, patch),
    })
}

// ---------------------------------------------------------------------------
// Invocations
// ---------------------------------------------------------------------------

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
        }
        self.with_repo(args, repo)
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

// ---------------------------------------------------------------------------
// Exit codes
// ---------------------------------------------------------------------------

/// The job outcome of a restic exit code: 0 succeeded, 3 succeeded with a
/// warning (some source files could not be read), anything else failed.
pub fn finish_status(exit_code: i32) -> FinishStatus {
    match exit_code {
        0 | EXIT_PARTIAL => FinishStatus::Succeeded,
        _ => FinishStatus::Failed,
    }
}

// ---------------------------------------------------------------------------
// Output lines
// ---------------------------------------------------------------------------

/// One line of restic output, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputLine {
    /// A backup `status` line (progress).
    Status(BackupStatus),
    /// A backup `verbose_status` line, or a `status` line carrying an
    /// `action` (0.14's `scan_finished`): per-item detail, no progress.
    Verbose,
    /// The backup `summary` object, as restic printed it.
    Summary(Map<String, Value>),
    /// A per-item `error` line (a file that could not be read).
    ItemError(String),
    /// 0.18's `exit_error` line: the fatal error or final warning.
    ExitError {
        /// The exit code restic announces.
        code: i32,
        /// Its message.
        message: String,
    },
    /// Any other JSON value (forget's array, check's summary, …).
    OtherJson,
    /// Plain text.
    Text,
}

/// A backup `status` line. Every field may be absent (restic omits zeros).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BackupStatus {
    /// Seconds since the backup started.
    #[serde(default)]
    pub seconds_elapsed: u64,
    /// Restic's estimate of the seconds left.
    #[serde(default)]
    pub seconds_remaining: Option<u64>,
    /// Fraction done, 0..1.
    #[serde(default)]
    pub percent_done: f64,
    /// Files found so far.
    #[serde(default)]
    pub total_files: u64,
    /// Files processed so far.
    #[serde(default)]
    pub files_done: u64,
    /// Bytes found so far.
    #[serde(default)]
    pub total_bytes: u64,
    /// Bytes processed so far.
    #[serde(default)]
    pub bytes_done: u64,
}

impl BackupStatus {
    /// The `job.progress` payload of this status for `job_id`.
    pub fn to_progress(&self, job_id: &str) -> JobProgress {
        let throughput_bps = self
            .bytes_done
            .checked_div(self.seconds_elapsed)
            .unwrap_or(0);
        let eta_seconds = if self.percent_done >= 1.0 {
            Some(0)
        } else {
            self.seconds_remaining
        };
        JobProgress {
            job_id: job_id.to_owned(),
            percent_done: self.percent_done.clamp(0.0, 1.0),
            files_done: self.files_done,
            total_files: self.total_files,
            bytes_done: self.bytes_done,
            total_bytes: self.total_bytes,
            eta_seconds,
            throughput_bps,
        }
    }
}

/// Classifies one line of restic stdout or stderr.
pub fn parse_line(line: &str) -> OutputLine {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return if trimmed.starts_with('[') && serde_json::from_str::<Value>(trimmed).is_ok() {
            OutputLine::OtherJson
        } else {
            OutputLine::Text
        };
    }
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(trimmed) else {
        return OutputLine::Text;
    };
    match object.get("message_type").and_then(Value::as_str) {
        Some("status") if object.contains_key("action") => OutputLine::Verbose,
        Some("status") => match serde_json::from_value(Value::Object(object)) {
            Ok(status) => OutputLine::Status(status),
            Err(_) => OutputLine::OtherJson,
        },
        Some("verbose_status") => OutputLine::Verbose,
        Some("summary") => OutputLine::Summary(object),
        Some("error") => OutputLine::ItemError(item_error_message(&object)),
        Some("exit_error") => OutputLine::ExitError {
            code: object
                .get("code")
                .and_then(Value::as_i64)
                .and_then(|code| i32::try_from(code).ok())
                .unwrap_or(1),
            message: object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("restic failed")
                .to_owned(),
        },
        _ => OutputLine::OtherJson,
    }
}

/// The message of an `error` line: 0.18 has `error.message`; 0.14 has Go's
/// `{Op, Path, Err}` (errno).
fn item_error_message(object: &Map<String, Value>) -> String {
    let item = object.get("item").and_then(Value::as_str).unwrap_or("");
    let error = object.get("error");
    if let Some(message) = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str)
    {
        return message.to_owned();
    }
    let op = error
        .and_then(|error| error.get("Op"))
        .and_then(Value::as_str);
    let errno = error
        .and_then(|error| error.get("Err"))
        .and_then(Value::as_i64);
    match (op, errno) {
        (Some(op), Some(errno)) => format!("{item}: {op} failed (errno {errno})"),
        (Some(op), None) => format!("{item}: {op} failed"),
        _ => format!("{item}: cannot be read"),
    }
}

/// What the output of a run tells about how it ended: fed every line,
/// it yields the backup summary and the error or warning text for
/// `job.finished`.
#[derive(Debug, Default, Clone)]
pub struct OutputDigest {
    summary: Option<Map<String, Value>>,
    exit_error: Option<String>,
    fatal: Option<String>,
    /// 0.14's lock failure ("unable to create lock in backend: repository
    /// is already locked by PID …"), which restic follows with three lines
    /// of detail ending in advice; the job's error names the holder.
    lock_failure: Option<String>,
    last_stderr: Option<String>,
    item_errors: Vec<String>,
    item_error_count: usize,
}

/// How restic 0.14 starts the message of a lock it could not take.
const LOCK_FAILURE_PREFIX: &str = "unable to create lock";

/// Item errors quoted in a job's warning; the rest are counted.
const QUOTED_ITEM_ERRORS: usize = 3;

impl OutputDigest {
    /// Takes a parsed stdout line.
    pub fn stdout(&mut self, line: &OutputLine) {
        if let OutputLine::Summary(summary) = line {
            self.summary = Some(summary.clone());
        }
    }

    /// Takes a stderr line and its parsed form.
    pub fn stderr(&mut self, raw: &str, line: &OutputLine) {
        match line {
            OutputLine::ExitError { message, .. } => self.exit_error = Some(message.clone()),
            OutputLine::ItemError(message) => {
                self.item_error_count += 1;
                if self.item_errors.len() < QUOTED_ITEM_ERRORS {
                    self.item_errors.push(message.clone());
                }
            }
            OutputLine::Text => {
                let text = raw.trim();
                if text.is_empty() {
                    return;
                }
                if text.starts_with("Fatal:") {
                    self.fatal = Some(text.to_owned());
                }
                if text.starts_with(LOCK_FAILURE_PREFIX) {
                    self.lock_failure = Some(text.to_owned());
                }
                self.last_stderr = Some(text.to_owned());
            }
            _ => {}
        }
    }

    /// The backup summary, if restic printed one.
    pub fn summary(&self) -> Option<&Map<String, Value>> {
        self.summary.as_ref()
    }

    /// `job.finished.error` for a run that exited with `exit_code`: `None`
    /// on a clean success, the warning for exit 3, the best error text
    /// otherwise (0.18's `exit_error`, else the `Fatal:` line, else a lock
    /// failure, else the last stderr line, else the bare exit code).
    pub fn error_text(&self, exit_code: i32) -> Option<String> {
        match exit_code {
            0 => None,
            EXIT_PARTIAL => {
                let warning = self
                    .exit_error
                    .clone()
                    .or_else(|| self.last_stderr.clone())
                    .unwrap_or_else(|| {
                        "Warning: at least one source file could not be read".to_owned()
                    });
                if self.item_errors.is_empty() {
                    return Some(warning);
                }
                let mut text = format!("{warning} ({}", self.item_errors.join("; "));
                let more = self.item_error_count - self.item_errors.len();
                if more > 0 {
                    text.push_str(&format!("; and {more} more"));
                }
                text.push(')');
                Some(text)
            }
            code => Some(
                self.exit_error
                    .clone()
                    .or_else(|| self.fatal.clone())
                    .or_else(|| self.lock_failure.clone())
                    .or_else(|| self.last_stderr.clone())
                    .unwrap_or_else(|| format!("restic exited with code {code}")),
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Snapshots, stats, locks
// ---------------------------------------------------------------------------

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
    use crate::protocol::RetentionPolicy;

    fn repo() -> RepoSettings {
        let mut repo = RepoSettings::default();
        repo.apply(&ConfigUpdate {
            repo_url: Some("/srv/restic-test/repo".to_owned()),
            repo_password: Some("pw-123".to_owned()),
            ..ConfigUpdate::default()
        });
        repo
    }

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
        }
    }

    // --- settings ----------------------------------------------------------

    /// `config.update` fields that are absent or empty leave the value as is.
    #[test]
    fn config_update_merges() {
        let mut settings = repo();
        settings.apply(&ConfigUpdate {
            repo_url: Some(String::new()),
            repo_password: None,
            repo_username: Some("alice".to_owned()),
            repo_credential: Some("cred".to_owned()),
            hook_shell: Some("/bin/bash".to_owned()),
        });
        assert_eq!(
            settings.url.as_ref().unwrap().expose(),
            "/srv/restic-test/repo"
        );
        assert_eq!(settings.password.as_ref().unwrap().expose(), "pw-123");
        assert_eq!(settings.username.as_deref(), Some("alice"));
        assert_eq!(settings.credential.as_ref().unwrap().expose(), "cred");
        assert_eq!(settings.hook_shell.as_deref(), Some("/bin/bash"));
        assert!(settings.is_configured());
        assert!(!RepoSettings::default().is_configured());
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

    // --- arguments and environment -----------------------------------------

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

    // --- version --------------------------------------------------------------

    /// `restic version` of 0.14 (text) and 0.18 (JSON) both parse.
    #[test]
    fn versions() {
        let v14 = parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n").unwrap();
        assert_eq!(v14.text, "0.14.0");
        assert_eq!(v14.numbers, (0, 14, 0));
        assert!(!v14.has_rest_credential_env());
        let v18 = parse_version(
            r#"{"message_type":"version","version":"0.18.0","go_version":"go1.24.4","go_os":"linux","go_arch":"amd64"}"#,
        )
        .unwrap();
        assert_eq!(v18.numbers, (0, 18, 0));
        assert!(v18.has_rest_credential_env());
        let dev =
            parse_version("restic 0.16.4-dev (compiled manually) compiled with go1.21").unwrap();
        assert_eq!(dev.text, "0.16.4-dev");
        assert_eq!(dev.numbers, (0, 16, 4));
        assert_eq!(parse_version("bash: restic: command not found"), None);
        assert_eq!(parse_version(""), None);
    }

    // --- exit codes -----------------------------------------------------------

    /// 0 and 3 succeed, everything else fails.
    #[test]
    fn exit_code_mapping() {
        assert_eq!(finish_status(0), FinishStatus::Succeeded);
        assert_eq!(finish_status(3), FinishStatus::Succeeded);
        for code in [1, 2, 10, 11, 12, 130, -1, 137] {
            assert_eq!(finish_status(code), FinishStatus::Failed, "{code}");
        }
    }

    // --- output lines (fixtures from shared/restic-json-samples.txt) --------

    /// 0.14 status lines become progress, omitted fields being zero.
    #[test]
    fn status_lines_014() {
        let OutputLine::Status(first) = parse_line(
            r#"{"message_type":"status","percent_done":0,"total_files":1,"total_bytes":6}"#,
        ) else {
            panic!("not a status")
        };
        assert_eq!(first.total_files, 1);
        assert_eq!(first.files_done, 0);
        let OutputLine::Status(status) = parse_line(
            r#"{"message_type":"status","seconds_elapsed":2,"percent_done":0.99331125,"total_files":1,"total_bytes":400000000,"bytes_done":397324500,"current_files":["/big/r.bin"]}"#,
        ) else {
            panic!("not a status")
        };
        let progress = status.to_progress("j");
        assert_eq!(progress.bytes_done, 397_324_500);
        assert_eq!(progress.throughput_bps, 198_662_250);
        assert_eq!(progress.eta_seconds, None);
        assert!((progress.percent_done - 0.993_311_25).abs() < 1e-9);
        let OutputLine::Status(done) = parse_line(
            r#"{"message_type":"status","percent_done":1,"total_files":3,"files_done":3,"total_bytes":3000012,"bytes_done":3000012,"current_files":["/data/big.bin"]}"#,
        ) else {
            panic!("not a status")
        };
        assert_eq!(done.to_progress("j").eta_seconds, Some(0));
    }

    /// Verbose lines (0.14's status with an action, and verbose_status) are
    /// not progress.
    #[test]
    fn verbose_lines() {
        assert_eq!(
            parse_line(
                r#"{"message_type":"status","action":"scan_finished","item":"","duration":0.204942019,"data_size":3000022,"data_size_in_repo":0,"metadata_size":0,"metadata_size_in_repo":0,"total_files":4}"#
            ),
            OutputLine::Verbose
        );
        assert_eq!(
            parse_line(
                r#"{"message_type":"verbose_status","action":"new","item":"/data/sub/c.txt","duration":0.000916391,"data_size":2,"data_size_in_repo":84,"metadata_size":0,"metadata_size_in_repo":0,"total_files":0}"#
            ),
            OutputLine::Verbose
        );
    }

    /// The summary of 0.14 and 0.18 is kept as printed (short and long ids).
    #[test]
    fn summary_lines() {
        let OutputLine::Summary(v14) = parse_line(
            r#"{"message_type":"summary","files_new":3,"files_changed":0,"files_unmodified":0,"dirs_new":2,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":3,"tree_blobs":3,"data_added":3001768,"total_files_processed":3,"total_bytes_processed":3000012,"total_duration":0.250419552,"snapshot_id":"f535d3c7"}"#,
        ) else {
            panic!("not a summary")
        };
        assert_eq!(v14["snapshot_id"], "f535d3c7");
        assert_eq!(v14["data_added"], 3001768);
        let OutputLine::Summary(v18) = parse_line(
            r#"{"message_type":"summary","files_new":4,"files_changed":0,"files_unmodified":0,"dirs_new":2,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":7,"tree_blobs":3,"data_added":3002323,"data_added_packed":3001916,"total_files_processed":4,"total_bytes_processed":3000022,"total_duration":0.751663629,"backup_start":"2026-11-23T04:13:11.253084513Z","backup_end":"2026-11-23T04:13:12.00474813Z","snapshot_id":"89baf5ff6cec3420b7586d338d39a6638a1b31c328fc1dd5080d1c003ecb8901"}"#,
        ) else {
            panic!("not a summary")
        };
        assert_eq!(v18["snapshot_id"].as_str().unwrap().len(), 64);
        assert_eq!(v18["data_added_packed"], 3001916);
    }

    /// Exit 3 on 0.14: the item error and the text warning make the message.
    #[test]
    fn partial_backup_014() {
        let mut digest = OutputDigest::default();
        for line in [
            r#"{"message_type":"error","error":{"Op":"open","Path":"perm/locked.txt","Err":13},"during":"archival","item":"/srv/restic-test/perm/locked.txt"}"#,
            "Warning: at least one source file could not be read",
        ] {
            digest.stderr(line, &parse_line(line));
        }
        let stdout = r#"{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":0,"dirs_new":2,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":1,"tree_blobs":3,"data_added":1060,"total_files_processed":1,"total_bytes_processed":3,"total_duration":0.210920719,"snapshot_id":"9ec3a154"}"#;
        digest.stdout(&parse_line(stdout));
        assert_eq!(digest.summary().unwrap()["snapshot_id"], "9ec3a154");
        assert_eq!(
            digest.error_text(3).unwrap(),
            "Warning: at least one source file could not be read (/srv/restic-test/perm/locked.txt: open failed (errno 13))"
        );
        assert_eq!(digest.error_text(0), None);
    }

    /// Exit 3 on 0.18: the exit_error message and 0.18's item error.
    #[test]
    fn partial_backup_018() {
        let mut digest = OutputDigest::default();
        for line in [
            r#"{"message_type":"error","error":{"message":"/srv/restic-test/perm/locked.txt: open perm/locked.txt: permission denied"},"during":"archival","item":"/srv/restic-test/perm/locked.txt"}"#,
            r#"{"message_type":"exit_error","code":3,"message":"Warning: at least one source file could not be read"}"#,
        ] {
            digest.stderr(line, &parse_line(line));
        }
        assert_eq!(
            digest.error_text(3).unwrap(),
            "Warning: at least one source file could not be read (/srv/restic-test/perm/locked.txt: open perm/locked.txt: permission denied)"
        );
    }

    /// Fatal errors: 0.14's text lines and 0.18's exit_error.
    #[test]
    fn fatal_errors() {
        let mut v14 = OutputDigest::default();
        for line in [
            "/nonexistent does not exist, skipping",
            "Fatal: all target directories/files do not exist",
        ] {
            v14.stderr(line, &parse_line(line));
        }
        assert_eq!(
            v14.error_text(1).unwrap(),
            "Fatal: all target directories/files do not exist"
        );

        let mut lock = OutputDigest::default();
        for line in [
            "unable to create lock in backend: repository is already locked by PID 11522 on vm by root (UID 0, GID 0)",
            "lock was created at 2026-11-23 04:11:22 (1.440149549s ago)",
            "storage ID 61bfd136",
            "the `unlock` command can be used to remove stale locks",
        ] {
            lock.stderr(line, &parse_line(line));
        }
        assert_eq!(
            lock.error_text(1).unwrap(),
            "unable to create lock in backend: repository is already locked by PID 11522 on vm by root (UID 0, GID 0)"
        );

        let mut v18 = OutputDigest::default();
        let line = r#"{"message_type":"exit_error","code":12,"message":"Fatal: wrong password or no key found"}"#;
        assert_eq!(
            parse_line(line),
            OutputLine::ExitError {
                code: 12,
                message: "Fatal: wrong password or no key found".to_owned()
            }
        );
        v18.stderr(line, &parse_line(line));
        assert_eq!(
            v18.error_text(12).unwrap(),
            "Fatal: wrong password or no key found"
        );

        assert_eq!(
            OutputDigest::default().error_text(137).unwrap(),
            "restic exited with code 137"
        );
    }

    /// Many unreadable files: three are quoted, the rest counted.
    #[test]
    fn many_item_errors_are_bounded() {
        let mut digest = OutputDigest::default();
        for n in 0..10 {
            let line = format!(
                r#"{{"message_type":"error","error":{{"message":"f{n}: denied"}},"during":"archival","item":"f{n}"}}"#
            );
            digest.stderr(&line, &parse_line(&line));
        }
        let text = digest.error_text(3).unwrap();
        assert!(
            text.ends_with("(f0: denied; f1: denied; f2: denied; and 7 more)"),
            "{text}"
        );
    }

    /// Text, forget's JSON array and init's 0.18 JSON are classified.
    #[test]
    fn other_lines() {
        assert_eq!(
            parse_line("created restic repository 4de17cfe8b at /srv/x"),
            OutputLine::Text
        );
        assert_eq!(parse_line(""), OutputLine::Text);
        assert_eq!(parse_line("{not json"), OutputLine::Text);
        assert_eq!(
            parse_line("[0:00] 100.00%  3 / 3 snapshots"),
            OutputLine::Text
        );
        assert_eq!(
            parse_line(
                r#"[{"tags":null,"host":"hostB","paths":["/big"],"keep":[],"remove":null,"reasons":[]}]"#
            ),
            OutputLine::OtherJson
        );
        assert_eq!(
            parse_line(r#"{"message_type":"initialized","id":"db1d","repository":"/srv/r"}"#),
            OutputLine::OtherJson
        );
        // 0.18's `check --json` summary is a summary too; only a backup's
        // becomes job stats.
        assert!(matches!(
            parse_line(
                r#"{"message_type":"summary","num_errors":0,"broken_packs":null,"suggest_repair_index":false,"suggest_prune":false}"#
            ),
            OutputLine::Summary(_)
        ));
    }

    // --- snapshots, stats, locks ---------------------------------------------

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
