//! The download's probe: `restic ls --json --no-lock <snapshot> <path>`
//! says whether the path is a file (with its size) or a folder, from its
//! first entry, which is the path itself; the listing is stopped there.

use std::collections::VecDeque;
use std::process::Stdio;

use serde::Deserialize;

use super::{Failure, PROBE_TIMEOUT, STDERR_LINES};
use crate::agent::platform;
use crate::agent::process::LineReader;
use crate::agent::restic::Invocation;
use crate::protocol::{DownloadErrorCode, DownloadType};

/// One `restic ls --json` line, as much as the probe needs (0.14 tags
/// lines with `struct_type`, 0.17+ also with `message_type`).
#[derive(Deserialize)]
struct LsLine {
    #[serde(default)]
    struct_type: Option<String>,
    #[serde(default)]
    message_type: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

/// What `path` is in the snapshot, from `restic ls`'s first entry.
pub(super) async fn probe_path(
    probe: &Invocation,
    path: &str,
    snapshot_id: &str,
) -> Result<(DownloadType, Option<u64>), Failure> {
    let failed = |error: String| (DownloadErrorCode::Failed, error);
    let mut command = probe.command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    platform::own_process_group(&mut command);
    let mut child = command
        .spawn()
        .map_err(|err| failed(format!("cannot start restic: {err}")))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(failed("restic started without output pipes".to_owned()));
    };
    let mut lines = LineReader::new(stdout);
    let mut errors = LineReader::new(stderr);
    let read = async {
        let mut first = None;
        while let Some(line) = lines.next_line().await {
            let Ok(entry) = serde_json::from_str::<LsLine>(&line) else {
                continue;
            };
            let tag = entry
                .message_type
                .as_deref()
                .or(entry.struct_type.as_deref());
            if tag == Some("node") {
                first = Some(entry);
                break;
            }
        }
        let mut tail = VecDeque::new();
        if first.is_none() {
            while let Some(line) = errors.next_line().await {
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        (first, Vec::from(tail).join("\n"))
    };
    let (first, stderr_text) = tokio::time::timeout(PROBE_TIMEOUT, read)
        .await
        .map_err(|_| failed(format!("restic ls took longer than {PROBE_TIMEOUT:?}")))?;
    let not_found = || {
        let short: String = snapshot_id.chars().take(8).collect();
        (
            DownloadErrorCode::NotFound,
            format!("path {path:?} not found in snapshot {short}"),
        )
    };
    let Some(entry) = first else {
        let status = child
            .wait()
            .await
            .map_err(|err| failed(format!("cannot wait for restic: {err}")))?;
        if status.success() {
            return Err(not_found());
        }
        let code = platform::exit_code(status);
        return Err(failed(if stderr_text.is_empty() {
            format!("restic ls exited with code {code}")
        } else {
            stderr_text
        }));
    };
    // The rest of the listing (a folder's children) is not needed.
    if let Err(err) = platform::kill_group(&mut child) {
        tracing::debug!("cannot stop restic ls: {err}");
    }
    // Reap it; it was just killed, so this is quick.
    let _ = child.wait().await;
    if entry.path.as_deref() != Some(path) {
        return Err(not_found());
    }
    match entry.kind.as_deref() {
        Some("dir") => Ok((DownloadType::Dir, None)),
        Some("file") => Ok((DownloadType::File, entry.size)),
        other => Err((
            DownloadErrorCode::Unsupported,
            format!(
                "path {path:?} is a {}; only files and folders can be downloaded",
                other.unwrap_or("special file")
            ),
        )),
    }
}
