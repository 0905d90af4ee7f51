//! The journal's file helpers: entry file names (a hash of the id, so
//! ids from the network never name a path), directory listing, and
//! decoding that sets a damaged entry aside instead of failing.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::JournalError;
use crate::protocol::{AgentToServer, Envelope};

/// `<sha256 hex of id>.json`: ids come from the network and never name a
/// path directly.
pub(super) fn file_name(id: &str) -> String {
    format!("{}.json", hex::encode(Sha256::digest(id.as_bytes())))
}

pub(super) fn io_error(path: &Path, source: io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The `*.json` files of `dir`.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|source| io_error(dir, source))? {
        let entry = entry.map_err(|source| io_error(dir, source))?;
        paths.push(entry.path());
    }
    Ok(paths)
}

/// Decodes one entry file; a file that does not decode is moved aside
/// (`*.corrupt`) and logged, never fatal.
pub(super) fn decode_file<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Option<T> {
    if path.extension().and_then(|ext| ext.to_str()) != Some("json") {
        return None;
    }
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::error!(path = %path.display(), "unreadable journal entry moved aside: {err}");
            let aside = path.with_extension("corrupt");
            if let Err(err) = std::fs::rename(path, &aside) {
                tracing::error!(path = %path.display(), "cannot move it aside: {err}");
            }
            None
        }
    }
}

pub(super) fn decode_envelope(path: &Path, frame: &str) -> Option<Envelope<AgentToServer>> {
    match Envelope::<AgentToServer>::decode(frame) {
        Ok(envelope) => Some(envelope),
        Err(err) => {
            tracing::error!(path = %path.display(), "outbox entry does not decode: {err}");
            None
        }
    }
}
