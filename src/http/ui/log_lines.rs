//! The job log for people: restic's `--json` lines turned into short text
//! (a status line as a compact progress line, the summary as a sentence,
//! an error as its message), plain lines (hook output, restic's text,
//! agent events) left as printed. The stored lines and the API keep the
//! raw text; the page shows both and the reader picks (raw one click
//! away).
//!
//! `app.js` (`logLine`) applies the same rules to the lines that arrive
//! live over the job's event stream. Both are checked against the same
//! cases, `log_cases.json` beside this file: [`tests`] here, and the
//! browser test runs the script's function on each.

use serde_json::{Map, Value};

use super::format::{self, plural};
use super::job::summary_value;
use crate::store::LogStream;

/// What a line is, for its style (`kind-…` class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// restic's progress (`status`): only the last one is shown.
    Status,
    /// One file of `--verbose` output (`verbose_status`).
    Verbose,
    /// The end of a command (`summary`).
    Summary,
    /// An error: highlighted.
    Error,
    /// A warning.
    Warning,
    /// Other JSON output (an unknown message, `snapshots`, `forget`).
    Json,
    /// A plain line, shown as printed.
    Text,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Verbose => "verbose",
            Kind::Summary => "summary",
            Kind::Error => "error",
            Kind::Warning => "warning",
            Kind::Json => "json",
            Kind::Text => "text",
        }
    }
}

/// One line as shown: its kind and, when it differs from the raw line,
/// the text for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub kind: Kind,
    /// `None`: show the raw line as it is.
    pub text: Option<String>,
}

/// How a stored or live line reads.
pub fn show(stream: LogStream, payload: &str) -> Shown {
    let trimmed = payload.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
            let (kind, text) = match &value {
                Value::Object(map) => object(map),
                Value::Array(items) => (Kind::Json, array(items)),
                _ => (Kind::Json, value.to_string()),
            };
            return Shown {
                kind,
                text: Some(text),
            };
        }
    }
    let kind = if stream != LogStream::Event
        && (trimmed.starts_with("Fatal:") || trimmed.to_ascii_lowercase().starts_with("error"))
    {
        Kind::Error
    } else if trimmed.to_ascii_lowercase().starts_with("warning") {
        Kind::Warning
    } else {
        Kind::Text
    };
    Shown { kind, text: None }
}

fn num(map: &Map<String, Value>, key: &str) -> Option<f64> {
    map.get(key).and_then(Value::as_f64)
}

fn count(map: &Map<String, Value>, key: &str) -> u64 {
    map.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `"f535d3c7"` of a full or short id.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A restic JSON message.
fn object(map: &Map<String, Value>) -> (Kind, String) {
    let action = text(map, "action");
    match text(map, "message_type") {
        Some("status" | "verbose_status") if action == Some("scan_finished") => (
            Kind::Verbose,
            format!(
                "scan finished: {}, {}",
                plural(count(map, "total_files"), "file", "files"),
                format::bytes(count(map, "data_size"))
            ),
        ),
        Some("status") => (Kind::Status, status(map)),
        Some("verbose_status") => {
            let mut line = format!(
                "{} {}",
                action.unwrap_or("item"),
                text(map, "item").unwrap_or("")
            );
            if count(map, "data_size") > 0 {
                line.push_str(&format!(" ({})", format::bytes(count(map, "data_size"))));
            }
            (Kind::Verbose, line)
        }
        Some("summary") => (Kind::Summary, summary(map)),
        Some("error") => (Kind::Error, error(map)),
        Some("exit_error") => {
            let message = text(map, "message")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("restic failed (exit code {})", count(map, "code")));
            let kind = if message.to_ascii_lowercase().starts_with("warning") {
                Kind::Warning
            } else {
                Kind::Error
            };
            (kind, message)
        }
        Some("initialized") => (
            Kind::Summary,
            format!(
                "repository {} created at {}",
                short(text(map, "id").unwrap_or("?")),
                text(map, "repository").unwrap_or("?")
            ),
        ),
        Some("version") => (
            Kind::Json,
            format!(
                "restic {} ({} on {}/{})",
                text(map, "version").unwrap_or("?"),
                text(map, "go_version").unwrap_or("?"),
                text(map, "go_os").unwrap_or("?"),
                text(map, "go_arch").unwrap_or("?")
            ),
        ),
        other => (Kind::Json, generic(other, map)),
    }
}

/// `"37.2% · 179 MiB of 192 MiB · 2 of 54 files · ETA 5s"`.
fn status(map: &Map<String, Value>) -> String {
    let mut parts = vec![format!(
        "{:.1}%",
        (num(map, "percent_done").unwrap_or(0.0) * 100.0).clamp(0.0, 100.0)
    )];
    if map.contains_key("total_bytes") {
        parts.push(format!(
            "{} of {}",
            format::bytes(count(map, "bytes_done")),
            format::bytes(count(map, "total_bytes"))
        ));
    }
    if map.contains_key("total_files") {
        parts.push(format!(
            "{} of {}",
            count(map, "files_done"),
            plural(count(map, "total_files"), "file", "files")
        ));
    }
    if let Some(left) = map.get("seconds_remaining").and_then(Value::as_u64) {
        parts.push(format!("ETA {}", format::duration_secs(left)));
    }
    format!("progress {}", parts.join(" · "))
}

/// A backup's, check's or restore's summary as a sentence.
fn summary(map: &Map<String, Value>) -> String {
    if map.contains_key("files_new") {
        let mut parts = vec![plural(count(map, "files_new"), "new file", "new files")];
        for (key, what) in [
            ("files_changed", "changed"),
            ("files_unmodified", "unchanged"),
        ] {
            if count(map, key) > 0 {
                parts.push(format!("{} {what}", count(map, key)));
            }
        }
        parts.push(format!("{} added", format::bytes(count(map, "data_added"))));
        if let Some(secs) = num(map, "total_duration") {
            parts.push(format!("{secs:.1} s"));
        }
        if let Some(id) = text(map, "snapshot_id") {
            parts.push(format!("snapshot {}", short(id)));
        }
        return format!("backup done: {}", parts.join(", "));
    }
    if map.contains_key("num_errors") {
        return match count(map, "num_errors") {
            0 => "check done: no errors found".to_owned(),
            n => format!("check done: {} found", plural(n, "error", "errors")),
        };
    }
    if map.contains_key("files_restored") {
        return format!(
            "restore done: {} of {} restored ({} of {})",
            count(map, "files_restored"),
            plural(count(map, "total_files"), "file", "files"),
            format::bytes(count(map, "bytes_restored")),
            format::bytes(count(map, "total_bytes"))
        );
    }
    generic(Some("summary"), map)
}

/// An error message: restic 0.17+ nests `{"message": …}`, 0.14 the Go
/// error's parts (`Op`, `Path`, `Err` as an errno).
fn error(map: &Map<String, Value>) -> String {
    let message = match map.get("error") {
        Some(Value::Object(e)) => match text(e, "message") {
            Some(m) => m.to_owned(),
            None => {
                let errno = match e.get("Err").and_then(Value::as_u64) {
                    Some(2) => "no such file or directory".to_owned(),
                    Some(13) => "permission denied".to_owned(),
                    Some(n) => format!("error {n}"),
                    None => "failed".to_owned(),
                };
                format!(
                    "{} {}: {errno}",
                    text(e, "Op").unwrap_or("access"),
                    text(e, "Path").unwrap_or("")
                )
            }
        },
        Some(Value::String(m)) => m.clone(),
        _ => "unknown error".to_owned(),
    };
    let mut line = "error".to_owned();
    if let Some(during) = text(map, "during") {
        line.push_str(&format!(" during {during}"));
    }
    if let Some(item) = text(map, "item") {
        if !message.contains(item) {
            line.push_str(&format!(" on {item}"));
        }
    }
    format!("{line}: {message}")
}

/// Any other JSON object: its scalar fields as "name value", by name.
fn generic(message_type: Option<&str>, map: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = map
        .iter()
        .filter(|(k, v)| *k != "message_type" && !v.is_object() && !v.is_array())
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    let fields: Vec<String> = keys
        .into_iter()
        .map(|k| format!("{} {}", k.replace('_', " "), summary_value(k, &map[k])))
        .collect();
    let fields = if fields.is_empty() {
        "JSON output".to_owned()
    } else {
        fields.join(", ")
    };
    match message_type {
        Some(t) => format!("{t}: {fields}"),
        None => fields,
    }
}

/// A JSON array: `forget`'s groups, `snapshots`' list, or anything.
fn array(items: &[Value]) -> String {
    let groups = items.iter().filter(|i| i.get("keep").is_some()).count();
    if groups > 0 && groups == items.len() {
        let total = |key: &str| -> u64 {
            items
                .iter()
                .filter_map(|i| i.get(key).and_then(Value::as_array))
                .map(|a| a.len() as u64)
                .sum()
        };
        return format!(
            "forget: keep {}, remove {}",
            plural(total("keep"), "snapshot", "snapshots"),
            plural(total("remove"), "snapshot", "snapshots")
        );
    }
    if !items.is_empty() && items.iter().all(|i| i.get("short_id").is_some()) {
        return format!(
            "{} listed",
            plural(items.len() as u64, "snapshot", "snapshots")
        );
    }
    format!(
        "JSON list of {}",
        plural(items.len() as u64, "entry", "entries")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// One case of `log_cases.json`.
    #[derive(Debug, Deserialize)]
    struct Case {
        stream: String,
        payload: String,
        kind: String,
        /// `null`: the raw line is shown.
        text: Option<String>,
    }

    /// The shared cases (also run against `app.js` by the browser test):
    /// real restic 0.14 and 0.18 lines, hook output, errors.
    #[test]
    fn shared_cases() {
        let cases: Vec<Case> = serde_json::from_str(include_str!("log_cases.json")).unwrap();
        assert!(cases.len() >= 15);
        for case in cases {
            let stream: LogStream = case.stream.parse().unwrap();
            let shown = show(stream, &case.payload);
            assert_eq!(shown.kind.as_str(), case.kind, "{}", case.payload);
            assert_eq!(shown.text, case.text, "{}", case.payload);
        }
    }

    /// No JSON line is shown raw by default.
    #[test]
    fn json_lines_always_get_text() {
        for payload in [
            r#"{"a":{"b":1}}"#,
            "[1,2]",
            r#"{"message_type":"new_kind","x":1}"#,
        ] {
            let shown = show(LogStream::Stdout, payload);
            assert!(shown.text.is_some(), "{payload}");
            assert!(!shown.text.unwrap().contains('{'), "{payload}");
        }
    }
}
