//! The log spool: `log.stream` lines of a job that could not be sent
//! (no connection) are appended to a file of their own under
//! `<state_dir>/offline-logs/`, one JSON line each, and sent after the
//! next `hello` so that the job's log on the server is whole.
//!
//! - Bounded: at most [`MAX_SPOOLED_LINES`] lines per job; later lines are
//!   counted, and the count goes out as one event line "N log lines
//!   dropped …" under the last dropped line's `seq` (free on the server:
//!   that line never arrived), so the log stays in order.
//! - Crash-safe: append-only; [`LogSpool::sync`] fsyncs at the job's end.
//!   A torn last line (a crash mid-append) is skipped when read.
//! - Removed once the server acked the job's `job.finished`, which the
//!   agent sends after the spooled lines (the server writes a session's
//!   lines before its next other write, so the ack covers them).
//!
//! File names are a hash of the job id, as in the journal.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::agent::platform;
use crate::protocol::{LogStream, LogStreamKind};

/// Most lines kept per job while offline; the rest are counted.
pub const MAX_SPOOLED_LINES: u64 = 10_000;

/// The spool directory under the state directory.
pub const SPOOL_DIR: &str = "offline-logs";

/// What is known of one job's spool file.
#[derive(Debug, Default)]
struct Spooled {
    /// Lines in the file.
    lines: u64,
    /// Lines not kept since the last drop notice.
    dropped: u64,
    /// The `seq` of the last line not kept (the notice's `seq`).
    last_dropped_seq: u64,
    /// The open file, appended to (closed by [`LogSpool::sync`]).
    file: Option<File>,
}

/// Every job's spooled lines.
#[derive(Debug)]
pub struct LogSpool {
    dir: PathBuf,
    jobs: HashMap<String, Spooled>,
}

impl LogSpool {
    /// Opens (creating) the spool under `state_dir` and counts the lines
    /// of the files a previous run left.
    pub fn open(state_dir: &Path) -> io::Result<Self> {
        let dir = state_dir.join(SPOOL_DIR);
        std::fs::create_dir_all(&dir)?;
        let mut jobs = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let mut job_id = None;
            let mut lines = 0;
            for line in read_lines(&path)? {
                job_id.get_or_insert_with(|| line.job_id.clone());
                lines += 1;
            }
            match job_id {
                Some(job_id) => {
                    jobs.insert(
                        job_id,
                        Spooled {
                            lines,
                            ..Spooled::default()
                        },
                    );
                }
                // Nothing readable in it: nothing to send.
                None => std::fs::remove_file(&path)?,
            }
        }
        Ok(Self { dir, jobs })
    }

    /// The jobs with spooled lines.
    pub fn job_ids(&self) -> Vec<String> {
        self.jobs.keys().cloned().collect()
    }

    /// Whether `job_id` has spooled lines (or a pending drop notice).
    pub fn contains(&self, job_id: &str) -> bool {
        self.jobs.contains_key(job_id)
    }

    /// Keeps a line that could not be sent, or counts it when its job has
    /// [`MAX_SPOOLED_LINES`] already.
    pub fn append(&mut self, line: &LogStream) -> io::Result<()> {
        let path = self.path(&line.job_id);
        let spooled = self.jobs.entry(line.job_id.clone()).or_default();
        if spooled.lines >= MAX_SPOOLED_LINES {
            spooled.dropped += 1;
            spooled.last_dropped_seq = line.seq;
            return Ok(());
        }
        write_line(spooled, &path, line)
    }

    /// Writes the notice of the lines dropped since the last one, if any.
    pub fn note_dropped(&mut self, job_id: &str) -> io::Result<()> {
        let path = self.path(job_id);
        let Some(spooled) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        if spooled.dropped == 0 {
            return Ok(());
        }
        let notice = LogStream {
            job_id: job_id.to_owned(),
            seq: spooled.last_dropped_seq,
            ts: Utc::now(),
            stream: LogStreamKind::Event,
            payload: format!(
                "{} log lines dropped: the agent was offline and keeps at most {MAX_SPOOLED_LINES} lines per job",
                spooled.dropped
            ),
        };
        spooled.dropped = 0;
        write_line(spooled, &path, &notice)
    }

    /// At a job's end: writes its drop notice, fsyncs and closes its file.
    pub fn sync(&mut self, job_id: &str) -> io::Result<()> {
        self.note_dropped(job_id)?;
        if let Some(file) = self.jobs.get_mut(job_id).and_then(|s| s.file.take()) {
            file.sync_all()?;
        }
        Ok(())
    }

    /// The spooled lines of `job_id`, in the order written (its drop
    /// notice written first; damaged lines skipped). At most
    /// [`MAX_SPOOLED_LINES`] and the notices, each line at most
    /// `MAX_LINE_BYTES` long, so the memory this takes is bounded.
    pub fn lines(&mut self, job_id: &str) -> io::Result<Vec<LogStream>> {
        self.note_dropped(job_id)?;
        if !self.jobs.contains_key(job_id) {
            return Ok(Vec::new());
        }
        if let Some(file) = self.jobs.get_mut(job_id).and_then(|s| s.file.as_mut()) {
            file.flush()?;
        }
        read_lines(&self.path(job_id))
    }

    /// Drops `job_id`'s spool (the server has its lines).
    pub fn remove(&mut self, job_id: &str) -> io::Result<()> {
        if self.jobs.remove(job_id).is_none() {
            return Ok(());
        }
        let path = self.path(job_id);
        match std::fs::remove_file(&path) {
            Ok(()) => platform::sync_dir(&self.dir),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn path(&self, job_id: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.jsonl",
            hex::encode(Sha256::digest(job_id.as_bytes()))
        ))
    }
}

fn write_line(spooled: &mut Spooled, path: &Path, line: &LogStream) -> io::Result<()> {
    let file = match &mut spooled.file {
        Some(file) => file,
        slot => {
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            slot.insert(options.open(path)?)
        }
    };
    let mut bytes = serde_json::to_vec(line)?;
    bytes.push(b'\n');
    file.write_all(&bytes)?;
    spooled.lines += 1;
    Ok(())
}

/// The decodable lines of a spool file (a torn or damaged line is skipped).
fn read_lines(path: &Path) -> io::Result<Vec<LogStream>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut lines = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        if let Ok(line) = serde_json::from_slice::<LogStream>(&line?) {
            lines.push(line);
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(job_id: &str, seq: u64) -> LogStream {
        LogStream {
            job_id: job_id.to_owned(),
            seq,
            ts: Utc::now(),
            stream: LogStreamKind::Stdout,
            payload: format!("line {seq}"),
        }
    }

    /// Lines survive a restart in order; a torn last line is skipped;
    /// removing the spool deletes its file.
    #[test]
    fn lines_survive_a_restart_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = LogSpool::open(dir.path()).unwrap();
        for seq in 1..=3 {
            spool.append(&line("j1", seq)).unwrap();
        }
        spool.sync("j1").unwrap();
        let file = spool.path("j1");
        drop(spool);
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"{\"job_id\":\"j1\",\"se").unwrap();
        drop(f);
        let mut spool = LogSpool::open(dir.path()).unwrap();
        assert_eq!(spool.job_ids(), vec!["j1".to_owned()]);
        let seqs: Vec<u64> = spool.lines("j1").unwrap().iter().map(|l| l.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        spool.remove("j1").unwrap();
        assert!(!file.exists());
        assert!(spool.lines("j1").unwrap().is_empty());
        assert!(LogSpool::open(dir.path()).unwrap().job_ids().is_empty());
    }

    /// Past the bound, lines are counted and reported as one notice under
    /// the last dropped line's seq.
    #[test]
    fn lines_past_the_bound_become_one_notice() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = LogSpool::open(dir.path()).unwrap();
        let total = MAX_SPOOLED_LINES + 25;
        for seq in 1..=total {
            spool.append(&line("big", seq)).unwrap();
        }
        spool.sync("big").unwrap();
        let lines = spool.lines("big").unwrap();
        assert_eq!(lines.len() as u64, MAX_SPOOLED_LINES + 1);
        assert_eq!(lines[9_999].seq, MAX_SPOOLED_LINES);
        let notice = lines.last().unwrap();
        assert_eq!(notice.seq, total);
        assert_eq!(notice.stream, LogStreamKind::Event);
        assert!(
            notice.payload.starts_with("25 log lines dropped"),
            "{}",
            notice.payload
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(spool.path("big"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
