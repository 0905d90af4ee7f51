//! The download stream (`GET /hosts/{id}/snapshots/{snapshot_id}/download`):
//! its JSON control messages and the binary frame that carries its bytes.
//!
//! ```text
//! server → agent   download.start  {download_id, snapshot_id, path, window}
//! agent  → server  download.ready  {download_id, type, size?}     (before the first byte)
//! agent  → server  binary frame    0x01, id length, id, bytes     (one per credit)
//! server → agent   download.credit {download_id, chunks}          (as the HTTP client reads)
//! agent  → server  download.end    {download_id, bytes, code?, error?}
//! server → agent   download.cancel {download_id}                  (client gone, limit reached)
//! ```
//!
//! Flow control is by credit: the agent may have sent at most `window`
//! data frames more than the credits it was granted, each at most
//! [`DOWNLOAD_CHUNK_BYTES`] of data, so the server holds at most
//! `window × DOWNLOAD_CHUNK_BYTES` per download.

use serde::{Deserialize, Serialize};

/// Most bytes of data one binary data frame carries.
pub const DOWNLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// First byte of a binary frame carrying download data.
pub const DATA_FRAME_KIND: u8 = 0x01;

/// `download.start`: stream `path` of `snapshot_id` to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadStart {
    /// The server's id of this download (at most 255 bytes).
    pub download_id: String,
    /// restic's full snapshot id.
    pub snapshot_id: String,
    /// Absolute path inside the snapshot; `/` is the whole snapshot.
    pub path: String,
    /// Data frames the agent may send before the first `download.credit`.
    pub window: u32,
}

/// `download.credit`: the agent may send `chunks` more data frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadCredit {
    /// The download.
    pub download_id: String,
    /// More data frames allowed.
    pub chunks: u32,
}

/// `download.cancel`: stop the download (restic is stopped; nothing more
/// is sent for it, not even `download.end`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadCancel {
    /// The download.
    pub download_id: String,
}

/// What a download streams: a file as itself, a folder as a tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadType {
    /// A regular file: its bytes.
    File,
    /// A folder: a tar archive of it (`restic dump --archive tar`).
    Dir,
}

/// `download.ready`: the path exists and its first bytes are read; data
/// frames follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadReady {
    /// The download.
    pub download_id: String,
    /// File or folder.
    #[serde(rename = "type")]
    pub kind: DownloadType,
    /// A file's size in bytes (absent for a folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Why a download failed (`download.end.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadErrorCode {
    /// The path is not in the snapshot (or the snapshot is not in the
    /// repository).
    NotFound,
    /// The path is neither a file nor a folder (a symlink, a device).
    Unsupported,
    /// restic failed, or the agent cannot run it; `error` says why.
    Failed,
}

/// `download.end`: the last message of a download the server did not
/// cancel. Without `code` every byte was sent; with it, `error` says why
/// not (before `download.ready` the download never started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadEnd {
    /// The download.
    pub download_id: String,
    /// Data bytes sent.
    pub bytes: u64,
    /// Set when the download failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<DownloadErrorCode>,
    /// restic's error (or the agent's), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a binary frame is not a data frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataFrameError {
    /// Shorter than its header.
    #[error("binary frame shorter than its header")]
    Truncated,
    /// The first byte is not [`DATA_FRAME_KIND`].
    #[error("binary frame of unknown kind {0:#04x}")]
    UnknownKind(u8),
    /// An empty or non-UTF-8 download id.
    #[error("binary frame with an empty or non-UTF-8 download id")]
    BadId,
    /// More data than [`DOWNLOAD_CHUNK_BYTES`].
    #[error("binary frame with {0} bytes of data (at most {DOWNLOAD_CHUNK_BYTES})")]
    TooLarge(usize),
}

/// The header of a data frame for `download_id` (kind, id length, id);
/// the data follows it. `None` if the id is empty or longer than 255 bytes.
pub fn data_frame_header(download_id: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(download_id.len())
        .ok()
        .filter(|len| *len > 0)?;
    let mut header = Vec::with_capacity(2 + download_id.len() + DOWNLOAD_CHUNK_BYTES);
    header.push(DATA_FRAME_KIND);
    header.push(len);
    header.extend_from_slice(download_id.as_bytes());
    Some(header)
}

/// Reads a data frame: its download id and where its data starts.
pub fn parse_data_frame(frame: &[u8]) -> Result<(&str, usize), DataFrameError> {
    let (&kind, rest) = frame.split_first().ok_or(DataFrameError::Truncated)?;
    if kind != DATA_FRAME_KIND {
        return Err(DataFrameError::UnknownKind(kind));
    }
    let (&len, rest) = rest.split_first().ok_or(DataFrameError::Truncated)?;
    let len = usize::from(len);
    let id = rest.get(..len).ok_or(DataFrameError::Truncated)?;
    let id = std::str::from_utf8(id).map_err(|_| DataFrameError::BadId)?;
    if id.is_empty() {
        return Err(DataFrameError::BadId);
    }
    let start = 2 + len;
    let data = frame.len() - start;
    if data > DOWNLOAD_CHUNK_BYTES {
        return Err(DataFrameError::TooLarge(data));
    }
    Ok((id, start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;
    use crate::protocol::{AgentToServer, ServerToAgent};

    /// `download.start`, `download.credit` and `download.cancel` as in
    /// PROTOCOL.md.
    #[test]
    fn golden_server_messages() {
        golden_s2a(
            r#"{"type":"download.start","id":"d1","data":{"download_id":"0193ab","snapshot_id":"4cf8eed27a83","path":"/etc/nginx","window":32}}"#,
            "d1",
            ServerToAgent::DownloadStart(DownloadStart {
                download_id: "0193ab".to_owned(),
                snapshot_id: "4cf8eed27a83".to_owned(),
                path: "/etc/nginx".to_owned(),
                window: 32,
            }),
        );
        golden_s2a(
            r#"{"type":"download.credit","id":"d2","data":{"download_id":"0193ab","chunks":16}}"#,
            "d2",
            ServerToAgent::DownloadCredit(DownloadCredit {
                download_id: "0193ab".to_owned(),
                chunks: 16,
            }),
        );
        golden_s2a(
            r#"{"type":"download.cancel","id":"d3","data":{"download_id":"0193ab"}}"#,
            "d3",
            ServerToAgent::DownloadCancel(DownloadCancel {
                download_id: "0193ab".to_owned(),
            }),
        );
    }

    /// `download.ready` (file with size, folder without) and `download.end`
    /// (success, failure) as in PROTOCOL.md.
    #[test]
    fn golden_agent_messages() {
        golden_a2s(
            r#"{"type":"download.ready","id":"r1","data":{"download_id":"0193ab","type":"file","size":6}}"#,
            "r1",
            AgentToServer::DownloadReady(DownloadReady {
                download_id: "0193ab".to_owned(),
                kind: DownloadType::File,
                size: Some(6),
            }),
        );
        golden_a2s(
            r#"{"type":"download.ready","id":"r2","data":{"download_id":"0193ab","type":"dir"}}"#,
            "r2",
            AgentToServer::DownloadReady(DownloadReady {
                download_id: "0193ab".to_owned(),
                kind: DownloadType::Dir,
                size: None,
            }),
        );
        golden_a2s(
            r#"{"type":"download.end","id":"e1","data":{"download_id":"0193ab","bytes":10240}}"#,
            "e1",
            AgentToServer::DownloadEnd(DownloadEnd {
                download_id: "0193ab".to_owned(),
                bytes: 10240,
                code: None,
                error: None,
            }),
        );
        golden_a2s(
            r#"{"type":"download.end","id":"e2","data":{"download_id":"0193ab","bytes":0,"code":"not_found","error":"path \"/nope\" not found in snapshot 4cf8eed2"}}"#,
            "e2",
            AgentToServer::DownloadEnd(DownloadEnd {
                download_id: "0193ab".to_owned(),
                bytes: 0,
                code: Some(DownloadErrorCode::NotFound),
                error: Some("path \"/nope\" not found in snapshot 4cf8eed2".to_owned()),
            }),
        );
        let (_, detail) = bad_data_detail(decode_a2s(
            r#"{"type":"download.end","id":"e3","data":{"download_id":"x","bytes":0,"code":"oops"}}"#,
        ));
        assert!(
            detail.starts_with("code: unknown variant `oops`"),
            "{detail}"
        );
    }

    /// The binary data frame is pinned byte for byte: kind 0x01, the id's
    /// length, the id, the data.
    #[test]
    fn data_frame_bytes_are_pinned() {
        let mut frame = data_frame_header("ab").unwrap();
        frame.extend_from_slice(b"xyz");
        assert_eq!(frame, [0x01, 2, b'a', b'b', b'x', b'y', b'z']);
        assert_eq!(parse_data_frame(&frame), Ok(("ab", 4)));
        assert_eq!(&frame[4..], b"xyz");
        // No data is a valid (empty) frame.
        assert_eq!(parse_data_frame(&[0x01, 1, b'q']), Ok(("q", 3)));
    }

    /// Bad binary frames are refused with a reason, never a panic.
    #[test]
    fn bad_data_frames() {
        assert_eq!(parse_data_frame(&[]), Err(DataFrameError::Truncated));
        assert_eq!(parse_data_frame(&[0x01]), Err(DataFrameError::Truncated));
        assert_eq!(
            parse_data_frame(&[0x01, 5, b'a']),
            Err(DataFrameError::Truncated)
        );
        assert_eq!(
            parse_data_frame(&[0x02, 1, b'a']),
            Err(DataFrameError::UnknownKind(2))
        );
        assert_eq!(parse_data_frame(&[0x01, 0]), Err(DataFrameError::BadId));
        assert_eq!(
            parse_data_frame(&[0x01, 1, 0xff]),
            Err(DataFrameError::BadId)
        );
        let mut big = data_frame_header("a").unwrap();
        big.resize(3 + DOWNLOAD_CHUNK_BYTES + 1, 0);
        assert_eq!(
            parse_data_frame(&big),
            Err(DataFrameError::TooLarge(DOWNLOAD_CHUNK_BYTES + 1))
        );
        assert!(data_frame_header("").is_none());
        assert!(data_frame_header(&"x".repeat(256)).is_none());
    }
}
