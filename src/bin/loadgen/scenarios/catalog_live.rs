//! `catalog-live`: the snapshot catalog through real sessions (issue 11
//! §6, "server memory flat"). Each of N agents reports one snapshot after
//! its greeting; the server queues a `catalog` job for it, and the agent
//! streams --catalog-entries entries in `catalog.chunk` frames as fast as
//! the server takes them, then `job.finished` with `stats.entries`.
//! Measured: entries stored per second from launch to the last catalog
//! completed (every result acked, every snapshot `catalogued` with all its
//! folders), and the server's RSS before, at its peak (sampled every
//! [`SAMPLE_EVERY`]) and after, so that memory is seen to stay flat
//! whatever the listing's size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{Ctx, SETTLE};
use crate::agent::{catalog_folders, catalog_snapshot_id, JobBehaviour};
use crate::procstats;
use crate::report::Report;

/// How often the server's RSS is read during the ingest.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    let entries = ctx.opts.catalog_entries;
    let before = ctx.rss_kib();
    let peak = Arc::new(AtomicU64::new(before.unwrap_or(0)));
    let sampler = ctx.pid().map(|pid| {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                match procstats::rss_kib(pid) {
                    Ok(kib) => {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        })
    });
    let start = Instant::now();
    let fleet = ctx.launch(JobBehaviour::Catalog { entries });
    let done = fleet
        .wait_for("every catalog job's result acked", ctx.opts.timeout, |s| {
            s.results_acked.load(Ordering::Relaxed) >= n as u64
        })
        .await;
    let took = start.elapsed();
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    if let Err(e) = done {
        let acked = fleet.shared.results_acked.load(Ordering::Relaxed);
        let sent = fleet.shared.lines_sent.load(Ordering::Relaxed);
        fleet.stop().await;
        bail!("{e:#}: {acked} of {n} acked, {sent} entries sent");
    }
    // Every snapshot is catalogued, with every folder under /data.
    let folders = catalog_folders(entries);
    for (index, host) in ctx.hosts.iter().enumerate() {
        let (catalogued, total) = ctx
            .api
            .snapshot_folder(&host.host_id, &catalog_snapshot_id(index), "/data")
            .await
            .with_context(|| format!("the catalog of host {}", host.host_id))?;
        if !catalogued || total != folders {
            bail!(
                "host {}: catalogued {catalogued}, /data holds {total} folders, {folders} expected",
                host.host_id
            );
        }
    }
    tokio::time::sleep(SETTLE).await;
    let after = ctx.rss_kib();
    fleet.stop().await;

    let stored = entries * n as u64;
    let mut report = Report::new("catalog-live", n);
    report
        .int("entries_per_host", entries)
        .int("entries", stored)
        .seconds("ingest", took)
        .float(
            "entries_per_sec",
            stored as f64 / took.as_secs_f64().max(1e-9),
            0,
        );
    let mib = |kib: u64| kib as f64 / 1024.0;
    if let (Some(before), Some(after)) = (before, after) {
        let peak = peak.load(Ordering::Relaxed).max(after);
        report
            .float("rss_before_mib", mib(before), 1)
            .float("rss_peak_mib", mib(peak), 1)
            .float("rss_after_mib", mib(after), 1)
            .float("rss_peak_growth_mib", mib(peak.saturating_sub(before)), 1);
    }
    Ok(report)
}
