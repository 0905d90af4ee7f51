//! The size-bounded log file of a process without a terminal (the Windows
//! service): [`RotatingLogFile`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};
/// Size at which the service log is moved aside (one old file is kept).
pub const SERVICE_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// An append-only log file for a process without a terminal (the Windows
/// service), bounded in size: a write that would take it past `max_bytes`
/// first moves it to `<name>.1` (replacing the previous one) and starts a
/// new file. Each tracing event is one write, so events are never split.
#[derive(Debug)]
pub struct RotatingLogFile {
    path: PathBuf,
    max_bytes: u64,
    /// The open file (None after a failed reopen: retried on the next
    /// write) and its length.
    state: std::sync::Mutex<(Option<std::fs::File>, u64)>,
}

impl RotatingLogFile {
    /// Opens (creating it and its directory) the log file `path` for appending.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = Self::open_append(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            state: std::sync::Mutex::new((Some(file), len)),
        })
    }

    fn open_append(path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Appends one record, rotating first if it would pass the limit.
    fn append(&self, record: &[u8]) -> io::Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        let (file, len) = &mut *state;
        let grows = u64::try_from(record.len()).unwrap_or(u64::MAX);
        if *len > 0 && len.saturating_add(grows) > self.max_bytes {
            *file = None; // closed before the rename (Windows)
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, &old)?;
            *len = 0;
        }
        if file.is_none() {
            let opened = Self::open_append(&self.path)?;
            *len = opened.metadata()?.len();
            *file = Some(opened);
        }
        if let Some(file) = file.as_mut() {
            file.write_all(record)?;
            *len = len.saturating_add(grows);
        }
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingLogFile {
    type Writer = RotatingLogWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        RotatingLogWriter(self)
    }
}

/// One event's writer into a [`RotatingLogFile`].
#[derive(Debug)]
pub struct RotatingLogWriter<'a>(&'a RotatingLogFile);

impl Write for RotatingLogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The service log appends, and a write that would pass the limit
    /// first moves the file to `.1` (replacing the older one), keeping
    /// every record whole.
    #[test]
    fn rotating_log_file_moves_aside_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("agent.log");
        let old = dir.path().join("logs").join("agent.log.1");
        let log = RotatingLogFile::open(&path, 10).unwrap();
        let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&log);
        writer.write_all(b"aaaa\n").unwrap();
        writer.write_all(b"bbbb\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"aaaa\nbbbb\n");
        assert!(!old.exists());
        writer.write_all(b"cc\n").unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"aaaa\nbbbb\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"cc\n");
        // A record larger than the limit still goes whole into a new file.
        writer.write_all(b"0123456789abc\n").unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"cc\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789abc\n");
        drop(log);
        // Reopened, it counts what the file already holds.
        let log = RotatingLogFile::open(&path, 20).unwrap();
        tracing_subscriber::fmt::MakeWriter::make_writer(&log)
            .write_all(b"dddddd\n")
            .unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"0123456789abc\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"dddddd\n");
    }
}
