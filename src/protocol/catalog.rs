//! The snapshot catalog's payloads (PROTOCOL.md "Snapshot catalog"): the
//! entries a `catalog` job streams to the server (`catalog.chunk`), and the
//! live listing of one directory of a snapshot that is not catalogued yet
//! (`catalog.list` from the server, answered by one or more
//! `catalog.listing` frames).
//!
//! Both directions carry the same [`CatalogEntry`], one node of
//! `restic ls --json`; chunks are bounded by [`CHUNK_MAX_ENTRIES`] and
//! [`CHUNK_MAX_BYTES`] so no frame comes near the server's frame limit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most entries in one `catalog.chunk` or `catalog.listing` frame.
pub const CHUNK_MAX_ENTRIES: usize = 1000;

/// Most bytes of entry text (paths) in one frame: far below the server's
/// smallest useful `max_frame_bytes`, whatever the path lengths.
pub const CHUNK_MAX_BYTES: usize = 512 * 1024;

/// The key of a `catalog` job's `job.finished` stats that holds how many
/// entries it listed (the server checks it stored them all).
pub const ENTRIES_STAT: &str = "entries";

/// The folder key of a directory path, as both sides compare entries
/// with it: `/etc` → `/etc/`, `/` → `/` (an entry's path is its folder
/// key followed by its name).
pub fn dir_key(dir: &str) -> String {
    if dir.ends_with('/') {
        dir.to_owned()
    } else {
        format!("{dir}/")
    }
}

/// One node of a snapshot, as `restic ls --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Absolute path inside the snapshot, `/`-separated (`/etc/nginx`).
    pub path: String,
    /// restic's node type: `dir`, `file`, `symlink` (or `dev`, `chardev`,
    /// `fifo`, `socket`, `irregular`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes (files only; restic omits it for other nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<DateTime<Utc>>,
    /// Go's `os.FileMode` bits as restic records them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// `catalog.chunk`: entries of a running `catalog` job, in restic's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogChunk {
    /// The `catalog` job.
    pub job_id: String,
    /// The snapshot listed (the job's `snapshot_id`).
    pub snapshot_id: String,
    /// Chunk number within the job, from 1, strictly increasing.
    pub seq: u64,
    /// At most [`CHUNK_MAX_ENTRIES`] entries.
    pub entries: Vec<CatalogEntry>,
}

/// `catalog.list`: list one directory of a snapshot now (the snapshot is
/// not catalogued and an operator is browsing it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogList {
    /// Chosen by the server; every answering frame carries it.
    pub request_id: String,
    /// The snapshot (restic's full id).
    pub snapshot_id: String,
    /// The directory, absolute (`/` for the snapshot's root).
    pub path: String,
}

/// `catalog.listing`: (part of) the answer to a `catalog.list`: the
/// directory's direct children. Frames of one answer come in order; the
/// last has `done: true` (and `error` if the listing failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogListing {
    /// The `catalog.list` answered.
    pub request_id: String,
    /// Children of the directory (the directory itself is not listed).
    #[serde(default)]
    pub entries: Vec<CatalogEntry>,
    /// Whether this is the answer's last frame.
    pub done: bool,
    /// Why the listing failed (unknown snapshot, restic error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::{AgentToServer, ServerToAgent};

    fn file() -> CatalogEntry {
        CatalogEntry {
            path: "/etc/hosts".to_owned(),
            kind: "file".to_owned(),
            size: Some(220),
            mtime: Some(ts("2026-11-23T02:00:00Z")),
            mode: Some(420),
        }
    }

    fn dir() -> CatalogEntry {
        CatalogEntry {
            path: "/etc".to_owned(),
            kind: "dir".to_owned(),
            size: None,
            mtime: Some(ts("2026-11-23T01:00:00Z")),
            mode: Some(2147484141),
        }
    }

    /// `catalog.chunk` with a directory (no size) and a file.
    #[test]
    fn golden_catalog_chunk() {
        golden_a2s(
            r#"{"type":"catalog.chunk","id":"c1","data":{"job_id":"j","snapshot_id":"f535d3c7aa","seq":1,"entries":[{"path":"/etc","type":"dir","mtime":"2026-11-23T01:00:00Z","mode":2147484141},{"path":"/etc/hosts","type":"file","size":220,"mtime":"2026-11-23T02:00:00Z","mode":420}]}}"#,
            "c1",
            AgentToServer::CatalogChunk(CatalogChunk {
                job_id: "j".to_owned(),
                snapshot_id: "f535d3c7aa".to_owned(),
                seq: 1,
                entries: vec![dir(), file()],
            }),
        );
    }

    /// `catalog.list` and both shapes of `catalog.listing`.
    #[test]
    fn golden_live_listing() {
        golden_s2a(
            r#"{"type":"catalog.list","id":"l1","data":{"request_id":"r1","snapshot_id":"f535d3c7aa","path":"/etc"}}"#,
            "l1",
            ServerToAgent::CatalogList(CatalogList {
                request_id: "r1".to_owned(),
                snapshot_id: "f535d3c7aa".to_owned(),
                path: "/etc".to_owned(),
            }),
        );
        golden_a2s(
            r#"{"type":"catalog.listing","id":"l2","data":{"request_id":"r1","entries":[{"path":"/etc/hosts","type":"file","size":220,"mtime":"2026-11-23T02:00:00Z","mode":420}],"done":true}}"#,
            "l2",
            AgentToServer::CatalogListing(CatalogListing {
                request_id: "r1".to_owned(),
                entries: vec![file()],
                done: true,
                error: None,
            }),
        );
        golden_a2s(
            r#"{"type":"catalog.listing","id":"l3","data":{"request_id":"r2","entries":[],"done":true,"error":"snapshot f535d3c7aa not found"}}"#,
            "l3",
            AgentToServer::CatalogListing(CatalogListing {
                request_id: "r2".to_owned(),
                entries: vec![],
                done: true,
                error: Some("snapshot f535d3c7aa not found".to_owned()),
            }),
        );
    }

    /// An entry's `type` is required: a node without one is a bad frame.
    #[test]
    fn entry_type_is_required() {
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"catalog.chunk","id":"c","data":{"job_id":"j","snapshot_id":"s","seq":1,"entries":[{"path":"/a"}]}}"#,
        ));
        assert_eq!(detail, "entries[0]: missing field `type`");
    }
}
