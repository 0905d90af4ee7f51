//! What restic prints while it runs: each `--json` line parsed by message
//! type ([`OutputLine`]: status, summary, errors, text), the
//! [`OutputDigest`] that keeps the stats and the best error of a run, and
//! the exit-code mapping.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::protocol::{FinishStatus, JobProgress};

/// Restic's "some source files could not be read" exit code: the snapshot
/// was made, so the job succeeded with a warning.
pub const EXIT_PARTIAL: i32 = 3;

/// The job outcome of a restic exit code: 0 succeeded, 3 succeeded with a
/// warning (some source files could not be read), anything else failed.
pub fn finish_status(exit_code: i32) -> FinishStatus {
    match exit_code {
        0 | EXIT_PARTIAL => FinishStatus::Succeeded,
        _ => FinishStatus::Failed,
    }
}

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

/// A backup `status` line, or a restore one (0.16 and later, whose
/// `files_restored` / `bytes_restored` are read as done). Every field may
/// be absent (restic omits zeros).
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
    #[serde(default, alias = "files_restored")]
    pub files_done: u64,
    /// Bytes found so far.
    #[serde(default)]
    pub total_bytes: u64,
    /// Bytes processed so far.
    #[serde(default, alias = "bytes_restored")]
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
            step: None,
            dumped_bytes: None,
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
    /// 0.14 restore's per-file errors ("ignoring error for …", text).
    ignored_errors: usize,
    /// The first plain-text stdout line (0.14 restore's header).
    first_text: Option<String>,
}

/// How restic 0.14's restore reports a file it could not restore.
const IGNORED_ERROR_PREFIX: &str = "ignoring error for ";

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

    /// Takes a raw stdout line that parsed as [`OutputLine::Text`]; the
    /// first is kept.
    pub fn stdout_text(&mut self, raw: &str) {
        if self.first_text.is_none() && !raw.trim().is_empty() {
            self.first_text = Some(raw.to_owned());
        }
    }

    /// The first plain-text stdout line, if any.
    pub fn first_text(&self) -> Option<&str> {
        self.first_text.as_deref()
    }

    /// Per-item errors: JSON `error` lines, and 0.14 restore's
    /// "ignoring error for …" lines.
    pub fn errors(&self) -> usize {
        self.item_error_count + self.ignored_errors
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
                if text.starts_with(IGNORED_ERROR_PREFIX) {
                    self.ignored_errors += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Restore output: 0.16+ status lines become progress (restored
    /// counts as done), JSON error lines and 0.14's "ignoring error for"
    /// text lines are counted, 0.14's header line is kept.
    #[test]
    fn restore_lines() {
        let OutputLine::Status(status) = parse_line(
            r#"{"message_type":"status","seconds_elapsed":2,"percent_done":0.5,"total_files":4,"files_restored":2,"total_bytes":2000,"bytes_restored":1000}"#,
        ) else {
            panic!("not a status")
        };
        let progress = status.to_progress("j");
        assert_eq!((progress.files_done, progress.bytes_done), (2, 1000));
        assert_eq!(progress.throughput_bps, 500);
        let mut digest = OutputDigest::default();
        let header = "restoring <Snapshot 9b8cd4d5 of [/srv/data] at 2026-11-23 04:10:01 +0000 UTC by root@hostA> to /r";
        digest.stdout_text(header);
        digest.stdout_text("verifying files in /r");
        assert_eq!(digest.first_text(), Some(header));
        for line in [
            "ignoring error for /srv/data/a: open /r/srv/data/a: permission denied",
            r#"{"message_type":"error","error":{"message":"write failed"},"during":"restore","item":"/srv/data/b"}"#,
            "Fatal: There were 2 errors",
        ] {
            digest.stderr(line, &parse_line(line));
        }
        assert_eq!(digest.errors(), 2);
        assert_eq!(digest.error_text(1).unwrap(), "Fatal: There were 2 errors");
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
}
