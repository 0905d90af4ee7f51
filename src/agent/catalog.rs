//! The agent's side of the snapshot catalog: reading `restic ls --json`
//! as it prints (never the whole listing in memory) and sending it in
//! bounded chunks.
//!
//! - [`parse_ls_line`]: one line of `restic ls --json`, restic 0.14 to
//!   0.18 (0.14–0.16 tag lines with `struct_type`, 0.17+ also with
//!   `message_type`; the first line is the snapshot, then one node per
//!   line in depth-first order).
//! - [`Chunker`]: entries into frames of at most
//!   [`CHUNK_MAX_ENTRIES`] entries and [`CHUNK_MAX_BYTES`] bytes of paths.
//! - [`CatalogStream`]: a `catalog` job's stdout → `catalog.chunk`s
//!   through the job's sink (a full channel slows restic down).
//! - [`list_dir`]: a live `catalog.list` → `catalog.listing` frames.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::platform;
use super::process::{LineReader, LogSink};
use super::restic::{self, Invocation, OutputDigest};
use crate::protocol::{
    AgentToServer, CatalogChunk, CatalogEntry, CatalogList, CatalogListing, CHUNK_MAX_BYTES,
    CHUNK_MAX_ENTRIES,
};

/// Longest a live listing may run before restic is killed (the server
/// gives up after 60 s).
pub const LIST_DIR_TIMEOUT: Duration = Duration::from_secs(90);

/// Live listings the agent runs at once; more are refused.
pub const MAX_LIVE_LISTINGS: usize = 4;

/// What one line of `restic ls --json` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsLine {
    /// The snapshot header (first line).
    Snapshot,
    /// One node.
    Node(CatalogEntry),
    /// Anything else (a future message type, a stray text line).
    Other,
}

#[derive(Deserialize)]
struct RawLine {
    #[serde(default)]
    struct_type: Option<String>,
    #[serde(default)]
    message_type: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    mtime: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    mode: Option<u32>,
}

/// Parses one line of `restic ls --json`.
pub fn parse_ls_line(line: &str) -> LsLine {
    let Ok(raw) = serde_json::from_str::<RawLine>(line) else {
        return LsLine::Other;
    };
    let tag = raw.message_type.as_deref().or(raw.struct_type.as_deref());
    match (tag, raw.path, raw.kind) {
        (Some("snapshot"), _, _) => LsLine::Snapshot,
        (Some("node"), Some(path), Some(kind)) => LsLine::Node(CatalogEntry {
            path,
            kind,
            size: raw.size,
            mtime: raw.mtime,
            mode: raw.mode,
        }),
        _ => LsLine::Other,
    }
}

/// Gathers entries into bounded frames.
#[derive(Debug, Default)]
pub struct Chunker {
    entries: Vec<CatalogEntry>,
    bytes: usize,
}

impl Chunker {
    /// Adds an entry; returns a full chunk's entries when one is ready.
    pub fn push(&mut self, entry: CatalogEntry) -> Option<Vec<CatalogEntry>> {
        self.bytes += entry.path.len() + 64;
        self.entries.push(entry);
        (self.entries.len() >= CHUNK_MAX_ENTRIES || self.bytes >= CHUNK_MAX_BYTES)
            .then(|| self.take())
    }

    /// The entries gathered so far (maybe none).
    pub fn take(&mut self) -> Vec<CatalogEntry> {
        self.bytes = 0;
        std::mem::take(&mut self.entries)
    }
}

/// A `catalog` job's output turned into `catalog.chunk`s.
#[derive(Debug)]
pub struct CatalogStream {
    snapshot_id: String,
    seq: u64,
    chunker: Chunker,
    saw_snapshot: bool,
    entries: u64,
}

impl CatalogStream {
    /// A stream for the job listing `snapshot_id`.
    pub fn new(snapshot_id: impl Into<String>) -> Self {
        CatalogStream {
            snapshot_id: snapshot_id.into(),
            seq: 0,
            chunker: Chunker::default(),
            saw_snapshot: false,
            entries: 0,
        }
    }

    /// One stdout line; a full chunk goes out through `sink`.
    pub async fn line(&mut self, line: &str, sink: &LogSink) {
        match parse_ls_line(line) {
            LsLine::Snapshot => self.saw_snapshot = true,
            LsLine::Node(entry) => {
                self.entries += 1;
                if let Some(entries) = self.chunker.push(entry) {
                    self.send(entries, sink).await;
                }
            }
            LsLine::Other => {}
        }
    }

    async fn send(&mut self, entries: Vec<CatalogEntry>, sink: &LogSink) {
        self.seq += 1;
        sink.send(AgentToServer::from(CatalogChunk {
            job_id: sink.job_id().to_owned(),
            snapshot_id: self.snapshot_id.clone(),
            seq: self.seq,
            entries,
        }))
        .await;
    }

    /// Sends what is left. Returns how many entries were listed, or why
    /// the listing is not a listing (restic 0.14 exits 0 for an unknown
    /// snapshot, printing nothing on stdout).
    pub async fn finish(&mut self, sink: &LogSink) -> Result<u64, String> {
        let rest = self.chunker.take();
        if !rest.is_empty() {
            self.send(rest, sink).await;
        }
        if !self.saw_snapshot {
            return Err(format!("snapshot {} not found", self.snapshot_id));
        }
        Ok(self.entries)
    }
}

/// Runs a live listing (`catalog.list`): `restic ls --json --no-lock
/// <snapshot> <dir>`, the directory's direct children sent as
/// `catalog.listing` frames on `tx`, the last one `done` (with `error`
/// if it failed). `invocation` is `None` with the reason when it could
/// not be built.
pub async fn list_dir(
    request: CatalogList,
    invocation: Result<Invocation, String>,
    tx: mpsc::Sender<AgentToServer>,
) {
    let request_id = request.request_id.clone();
    let outcome = match invocation {
        Ok(invocation) => {
            match tokio::time::timeout(LIST_DIR_TIMEOUT, run_list(&request, &invocation, &tx)).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(format!(
                    "restic ls did not finish within {} s",
                    LIST_DIR_TIMEOUT.as_secs()
                )),
            }
        }
        Err(reason) => Err(reason),
    };
    let last = CatalogListing {
        request_id,
        entries: Vec::new(),
        done: true,
        error: outcome.err(),
    };
    // Err only when the daemon is stopping.
    let _ = tx.send(AgentToServer::from(last)).await;
}

async fn run_list(
    request: &CatalogList,
    invocation: &Invocation,
    tx: &mpsc::Sender<AgentToServer>,
) -> Result<(), String> {
    let mut command = invocation.command();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start restic: {e}"))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("restic started without output pipes".to_owned());
    };
    let dir = crate::protocol::dir_key(&request.path);
    let mut out = LineReader::new(stdout);
    let mut err = LineReader::new(stderr);
    let mut digest = OutputDigest::default();
    let mut chunker = Chunker::default();
    let mut saw_snapshot = false;
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            line = out.next_line(), if out_open => match line {
                Some(line) => match parse_ls_line(&line) {
                    LsLine::Snapshot => saw_snapshot = true,
                    LsLine::Node(entry) if is_child(&entry.path, &dir) => {
                        if let Some(entries) = chunker.push(entry) {
                            send_part(tx, &request.request_id, entries).await;
                        }
                    }
                    _ => {}
                },
                None => out_open = false,
            },
            line = err.next_line(), if err_open => match line {
                Some(line) => digest.stderr(&line, &restic::parse_line(&line)),
                None => err_open = false,
            },
        }
    }
    let code = child
        .wait()
        .await
        .map(platform::exit_code)
        .map_err(|e| format!("cannot wait for restic: {e}"))?;
    if code != 0 {
        return Err(digest
            .error_text(code)
            .unwrap_or_else(|| format!("restic ls exited with code {code}")));
    }
    if !saw_snapshot {
        return Err(format!("snapshot {} not found", request.snapshot_id));
    }
    let rest = chunker.take();
    if !rest.is_empty() {
        send_part(tx, &request.request_id, rest).await;
    }
    Ok(())
}

/// Whether `path` is a direct child of the folder `dir` (ending in `/`).
fn is_child(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

async fn send_part(tx: &mpsc::Sender<AgentToServer>, request_id: &str, entries: Vec<CatalogEntry>) {
    let part = CatalogListing {
        request_id: request_id.to_owned(),
        entries,
        done: false,
        error: None,
    };
    // Err only when the daemon is stopping.
    let _ = tx.send(AgentToServer::from(part)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// restic 0.14's lines (captured from a real repository) and 0.17's
    /// `message_type` both parse; the snapshot header and other lines
    /// are told apart.
    #[test]
    fn ls_lines_of_restic_0_14_and_0_17() {
        let header = r#"{"time":"2026-12-03T11:26:04.400859096Z","tree":"e566a3e6","paths":["/tmp/cat-d"],"hostname":"vm","username":"root","tags":["t"],"id":"a50085c3c3a8ae1a","short_id":"a50085c3","struct_type":"snapshot"}"#;
        assert_eq!(parse_ls_line(header), LsLine::Snapshot);
        let file = r#"{"name":"a.txt","type":"file","path":"/cat-d/a.txt","uid":0,"gid":0,"size":6,"mode":420,"permissions":"-rw-r--r--","mtime":"2026-12-03T11:26:02.302416993Z","atime":"2026-12-03T11:26:02.302416993Z","ctime":"2026-12-03T11:26:02.302416993Z","struct_type":"node"}"#;
        let LsLine::Node(entry) = parse_ls_line(file) else {
            panic!("a node");
        };
        assert_eq!(entry.path, "/cat-d/a.txt");
        assert_eq!(entry.kind, "file");
        assert_eq!(entry.size, Some(6));
        assert_eq!(entry.mode, Some(420));
        assert_eq!(
            entry.mtime.unwrap().to_rfc3339(),
            "2026-12-03T11:26:02.302416993+00:00"
        );
        let dir = r#"{"name":"sub","type":"dir","path":"/cat-d/sub","uid":0,"gid":0,"mode":2147484141,"permissions":"drwxr-xr-x","mtime":"2026-12-03T11:26:02.302416993Z","struct_type":"node"}"#;
        let LsLine::Node(entry) = parse_ls_line(dir) else {
            panic!("a node");
        };
        assert_eq!((entry.kind.as_str(), entry.size), ("dir", None));
        let v017 = r#"{"name":"l","type":"symlink","path":"/l","mode":134218239,"mtime":"2026-12-03T11:26:02Z","message_type":"node","struct_type":"node","inode":5}"#;
        assert!(matches!(parse_ls_line(v017), LsLine::Node(e) if e.kind == "symlink"));
        assert_eq!(
            parse_ls_line(r#"{"message_type":"snapshot","id":"x"}"#),
            LsLine::Snapshot
        );
        assert_eq!(
            parse_ls_line("Ignoring \"x\": no matching ID"),
            LsLine::Other
        );
        assert_eq!(parse_ls_line(r#"{"struct_type":"node"}"#), LsLine::Other);
    }

    /// Chunks are cut at the entry bound and at the byte bound.
    #[test]
    fn chunks_are_bounded() {
        let entry = |path: String| CatalogEntry {
            path,
            kind: "file".to_owned(),
            size: None,
            mtime: None,
            mode: None,
        };
        let mut chunker = Chunker::default();
        let mut full = Vec::new();
        for i in 0..CHUNK_MAX_ENTRIES * 2 + 5 {
            if let Some(chunk) = chunker.push(entry(format!("/f{i}"))) {
                full.push(chunk.len());
            }
        }
        assert_eq!(full, vec![CHUNK_MAX_ENTRIES, CHUNK_MAX_ENTRIES]);
        assert_eq!(chunker.take().len(), 5);
        let long = "x".repeat(100_000);
        let mut cut_at = None;
        for i in 0..100 {
            if let Some(chunk) = chunker.push(entry(format!("/{long}{i}"))) {
                cut_at = Some((i, chunk.len()));
                break;
            }
        }
        let (_, len) = cut_at.unwrap();
        assert!(len * 100_000 <= CHUNK_MAX_BYTES + 100_100, "{len}");
    }

    /// The catalog job runs `restic ls --json -- <snapshot>`, the live
    /// listing `restic ls --json --no-lock -- <snapshot> <dir>`; a snapshot
    /// id that is not hexadecimal, extra arguments and a relative folder
    /// are refused before restic runs.
    #[test]
    fn ls_invocations() {
        use crate::agent::restic::{BuildError, RepoSettings, ResticHost};
        use crate::protocol::{CommandRun, ConfigUpdate, JobKind};
        let host = ResticHost::new("/usr/bin/restic", std::path::Path::new("/var/lib/rm"));
        let mut repo = RepoSettings::default();
        repo.apply(&ConfigUpdate {
            repo_url: Some("/srv/repo".to_owned()),
            repo_password: Some("pw".to_owned()),
            ..ConfigUpdate::default()
        });
        let run = |snapshot: Option<&str>, args: Vec<String>| CommandRun {
            job_id: "j".to_owned(),
            kind: JobKind::Catalog,
            args,
            includes: Vec::new(),
            excludes: Vec::new(),
            tag: None,
            retention_policy: None,
            snapshot_id: snapshot.map(str::to_owned),
            restore: None,
            drill: None,
            dump: None,
        };
        let id = "a50085c3c3a8ae1afed2b4395d4ea9e2f19255e3401531a40aae20cb6f1b20f6";
        let job = host.job(&run(Some(id), Vec::new()), &repo).unwrap();
        assert_eq!(job.args, ["ls", "--json", "--", id]);
        for bad in [
            None,
            Some("--password-command=x"),
            Some("abc"),
            Some("latest"),
        ] {
            assert!(matches!(
                host.job(&run(bad, Vec::new()), &repo),
                Err(BuildError::BadSnapshotId(_))
            ));
        }
        assert!(matches!(
            host.job(&run(Some(id), vec!["--host=x".to_owned()]), &repo),
            Err(BuildError::ArgNotAllowed { .. })
        ));
        let live = host.ls_dir(&repo, "a50085c3", "/etc").unwrap();
        assert_eq!(
            live.args,
            ["ls", "--json", "--no-lock", "--", "a50085c3", "/etc"]
        );
        assert!(matches!(
            host.ls_dir(&repo, "a50085c3", "etc"),
            Err(BuildError::BadPath(_))
        ));
    }

    /// Only direct children of the folder are live-listed.
    #[test]
    fn direct_children_only() {
        assert!(is_child("/etc/hosts", "/etc/"));
        assert!(!is_child("/etc", "/etc/"));
        assert!(!is_child("/etc/nginx/x.conf", "/etc/"));
        assert!(is_child("/etc", "/"));
        assert!(!is_child("/etcetera/x", "/etc/"));
    }
}
