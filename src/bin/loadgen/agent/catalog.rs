//! A simulated agent's `catalog` jobs (the `catalog-live` scenario): the
//! snapshot it reports after its first greeting, and the listing it
//! streams for that snapshot's `catalog` job as `catalog.chunk` frames of
//! [`CHUNK_MAX_ENTRIES`] entries, as fast as the socket takes them, then
//! `job.finished` with `stats.entries`, which the server checks against
//! what it stored before it completes the catalog.

use chrono::{DateTime, Utc};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use anyhow::Context;
use restic_manager::protocol::{
    self, AgentToServer, CatalogEntry, Envelope, SnapshotInfo, CHUNK_MAX_ENTRIES,
};

use super::{Agent, JobBehaviour, Ws};

/// Files per folder of the generated listing (each folder is one more
/// entry).
const PER_FOLDER: u64 = 100;

/// The snapshot agent `index` reports: a 64-hex-digit id of its own.
pub fn snapshot_id(index: usize) -> String {
    format!("{:064x}", 0xca7a_0000_u64 + index as u64)
}

/// Entry `i` (from 0) of the generated listing, in restic's depth-first
/// order: `/data`, then folders `/data/dNNNNN` each followed by its
/// [`PER_FOLDER`] files.
pub fn entry(i: u64) -> CatalogEntry {
    let mtime = DateTime::from_timestamp(1_764_000_000, 0);
    if i == 0 {
        return CatalogEntry {
            path: "/data".to_owned(),
            kind: "dir".to_owned(),
            size: None,
            mtime,
            mode: Some(0o755),
        };
    }
    let folder = (i - 1) / (PER_FOLDER + 1);
    let within = (i - 1) % (PER_FOLDER + 1);
    if within == 0 {
        CatalogEntry {
            path: format!("/data/d{folder:05}"),
            kind: "dir".to_owned(),
            size: None,
            mtime,
            mode: Some(0o755),
        }
    } else {
        CatalogEntry {
            path: format!("/data/d{folder:05}/f{within:03}.txt"),
            kind: "file".to_owned(),
            size: Some(within * 1024),
            mtime,
            mode: Some(0o644),
        }
    }
}

/// Folders directly under `/data` in a listing of `total` entries.
pub fn folders(total: u64) -> u64 {
    total.saturating_sub(1).div_ceil(PER_FOLDER + 1)
}

impl Agent {
    /// `snapshots.report` with this agent's one snapshot, once per run of
    /// the agent (the server queues a `catalog` job for it).
    pub(super) async fn report_snapshot(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        if self.reported || !matches!(self.config.jobs, JobBehaviour::Catalog { .. }) {
            return Ok(());
        }
        self.reported = true;
        let id = snapshot_id(self.index);
        let report = protocol::SnapshotsReport {
            snapshots: vec![SnapshotInfo {
                short_id: id[..8].to_owned(),
                id,
                time: Utc::now(),
                hostname: format!("loadgen-{}", self.index + 1),
                paths: vec!["/data".to_owned()],
                tags: vec!["data".to_owned()],
                size_bytes: None,
                file_count: None,
            }],
        };
        Self::send(ws, report).await
    }

    /// Sends the next `catalog.chunk` of the running `catalog` job;
    /// finishes the job after the last one.
    pub(super) async fn catalog_chunk(&mut self, ws: &mut Ws, total: u64) -> anyhow::Result<()> {
        let Some(at) = self
            .jobs
            .iter()
            .position(|j| j.ends_at.is_none() && j.snapshot_id.is_some())
        else {
            return Ok(());
        };
        let seq = self.jobs[at].next_seq;
        let first = (seq - 1) * CHUNK_MAX_ENTRIES as u64;
        let last = (first + CHUNK_MAX_ENTRIES as u64).min(total);
        let chunk = protocol::CatalogChunk {
            job_id: self.jobs[at].id.clone(),
            snapshot_id: self.jobs[at].snapshot_id.clone().unwrap_or_default(),
            seq,
            entries: (first..last).map(entry).collect(),
        };
        let text = Envelope::new(AgentToServer::CatalogChunk(chunk)).encode();
        ws.send(Message::text(text)).await.context("send")?;
        self.jobs[at].next_seq = seq + 1;
        self.jobs[at].entries_sent = last;
        self.shared
            .lines_sent
            .fetch_add(last - first, std::sync::atomic::Ordering::Relaxed);
        if last >= total {
            let job = self.jobs.swap_remove(at);
            self.finish(job, protocol::FinishStatus::Succeeded, Some(ws))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listing is depth first: a folder comes right before its files,
    /// and `folders` counts the folders a listing of N entries holds.
    #[test]
    fn listing_is_depth_first() {
        assert_eq!(entry(0).path, "/data");
        assert_eq!(entry(1).path, "/data/d00000");
        assert_eq!(entry(1).kind, "dir");
        assert_eq!(entry(2).path, "/data/d00000/f001.txt");
        assert_eq!(entry(101).path, "/data/d00000/f100.txt");
        assert_eq!(entry(102).path, "/data/d00001");
        assert_eq!(folders(1), 0);
        assert_eq!(folders(2), 1);
        assert_eq!(folders(102), 1);
        assert_eq!(folders(103), 2);
        assert_eq!(folders(1_000_000), 9901);
        assert_eq!(snapshot_id(0).len(), 64);
    }
}
