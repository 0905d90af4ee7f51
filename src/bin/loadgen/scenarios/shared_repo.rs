//! `shared-repo` (issue 12 §3): N simulated agents spread over
//! --repositories shared repositories; every host runs a backup every
//! --backup-every and every repository a prune every --prune-every (on
//! one of its hosts; the server sends it to the maintenance host), for
//! --duration. Each job holds its agent for --hold. Then, from the job
//! API: jobs failed for a lock (must be 0), jobs that ran at the same
//! time as an exclusive job of their repository (what would have failed
//! on restic's lock; must be 0), and how long jobs waited between
//! creation and dispatch (their lease), p50 / p99 per kind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Ctx;
use crate::agent::JobBehaviour;
use crate::api::JobView;
use crate::report::{summarize, Report};

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    let repos = (ctx.opts.repositories as usize).clamp(1, n.max(1));
    let nonce = std::process::id();
    let mut repo_ids = Vec::with_capacity(repos);
    for i in 0..repos {
        let name = format!("loadgen-{nonce}-{i}");
        let id = ctx
            .api
            .create_repository(&name, &format!("/srv/loadgen/{name}"))
            .await?;
        repo_ids.push(id);
    }
    // Host i is on repository i % repos.
    let repo_of: HashMap<String, usize> = ctx
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.host_id.clone(), i % repos))
        .collect();
    let setup: Vec<(String, String)> = ctx
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.host_id.clone(), repo_ids[i % repos].clone()))
        .collect();
    let api = ctx.api.clone();
    ctx.for_each_limited(setup, move |(host, repo)| {
        let api = api.clone();
        async move {
            api.attach_repository(&host, &repo).await?;
            api.create_source_group(&host, "data").await
        }
    })
    .await?;
    let fleet = ctx.connect_all(JobBehaviour::Hold(ctx.opts.hold)).await?;

    let duration = ctx.opts.duration;
    let backup_every = ctx
        .opts
        .backup_every
        .min(duration / 4)
        .max(Duration::from_millis(500));
    let prune_every = ctx.opts.prune_every.min(duration / 2).max(backup_every);
    eprintln!(
        "{n} hosts on {repos} repositories: backups every {backup_every:?}, prunes every {prune_every:?}, for {duration:?}"
    );
    let start = Instant::now();
    let mut next_backup = start;
    let mut next_prune = start + prune_every / 2;
    let mut skipped_prunes = 0u64;
    let mut requests = Vec::new();
    while start.elapsed() < duration {
        let now = Instant::now();
        if now >= next_backup {
            next_backup += backup_every;
            let hosts: Vec<String> = ctx.hosts.iter().map(|h| h.host_id.clone()).collect();
            let api = ctx.api.clone();
            requests.push(tokio::spawn(async move {
                for host in hosts {
                    api.run_job(&host, "backup", Some("data")).await?;
                }
                Ok::<u64, anyhow::Error>(0)
            }));
        }
        if now >= next_prune {
            next_prune += prune_every;
            // The first host of each repository asks.
            let askers: Vec<String> = ctx
                .hosts
                .iter()
                .take(repos)
                .map(|h| h.host_id.clone())
                .collect();
            let api = ctx.api.clone();
            requests.push(tokio::spawn(async move {
                let mut skipped = 0;
                for host in askers {
                    if api.run_job(&host, "prune", None).await?.is_none() {
                        skipped += 1; // one is queued or running already
                    }
                }
                Ok(skipped)
            }));
        }
        let wake = next_backup.min(next_prune).min(start + duration);
        tokio::time::sleep_until(wake.into()).await;
    }
    for request in requests {
        skipped_prunes += request.await.context("a request task panicked")??;
    }
    let drained = Instant::now();
    loop {
        let active = ctx.api.count_jobs("queued").await? + ctx.api.count_jobs("running").await?;
        if active == 0 {
            break;
        }
        if drained.elapsed() > ctx.opts.timeout {
            eprintln!("{active} jobs still active after {:?}", ctx.opts.timeout);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain = drained.elapsed();

    let backups = ctx.api.all_jobs("backup").await?;
    let prunes = ctx.api.all_jobs("prune").await?;
    let unlocks = ctx.api.all_jobs("unlock").await?;
    let failed = |jobs: &[JobView]| jobs.iter().filter(|j| j.status == "failed").count() as u64;
    let lock_failed = backups
        .iter()
        .chain(&prunes)
        .filter(|j| j.error.as_deref().is_some_and(|e| e.contains("lock")))
        .count() as u64;
    let overlaps = overlaps(&prunes, &backups, &repo_of);
    let mut backup_waits = waits(&backups);
    let mut prune_waits = waits(&prunes);

    let mut report = Report::new("shared-repo", n);
    report
        .int("repositories", repos as u64)
        .int("backups", backups.len() as u64)
        .int("prunes", prunes.len() as u64)
        .int("prunes_skipped", skipped_prunes)
        .int("unlocks", unlocks.len() as u64)
        .int("failed", failed(&backups) + failed(&prunes))
        .int("failed_lock", lock_failed)
        .int("exclusive_overlaps", overlaps)
        .latency("backup_wait", summarize(&mut backup_waits).as_ref())
        .latency("prune_wait", summarize(&mut prune_waits).as_ref())
        .float("drain_s", drain.as_secs_f64(), 1)
        .int("online", fleet.online() as u64);
    fleet.stop().await;
    Ok(report)
}

/// Creation to dispatch of every dispatched job.
fn waits(jobs: &[JobView]) -> Vec<Duration> {
    jobs.iter()
        .filter_map(|j| {
            let waited = j.dispatched_at? - j.created_at?;
            waited.to_std().ok()
        })
        .collect()
}

/// Jobs that ran (started to finished) while a prune of their
/// repository ran: each would have failed on restic's lock.
fn overlaps(prunes: &[JobView], others: &[JobView], repo_of: &HashMap<String, usize>) -> u64 {
    let span = |j: &JobView| Some((j.started_at?, j.finished_at?));
    let mut count = 0;
    for prune in prunes {
        let (Some((from, to)), Some(repo)) = (span(prune), repo_of.get(&prune.host_id)) else {
            continue;
        };
        for job in others.iter().chain(prunes) {
            if job.id == prune.id || repo_of.get(&job.host_id) != Some(repo) {
                continue;
            }
            if let Some((start, end)) = span(job) {
                if start < to && from < end {
                    count += 1;
                }
            }
        }
    }
    count
}
