//! `logs`: N agents connected; --writers of them each get a run-now job
//! and stream --lines log lines of --line-bytes as fast as their sockets
//! take them (as restic's `--json` output would, without its pauses), or
//! --line-rate lines a second each (a load below the limit, where lag
//! is not queueing).
//! Measured: lines persisted per second (all lines, from the first line
//! sent to the last line readable through the API), the agents' send
//! rate, and the lag from a line's send to it being readable with
//! `GET /jobs/{id}/logs` (two samplers, each taking a random writer's
//! latest flushed line and polling every 10 ms until it shows), and
//! the server's peak RSS while it ingests.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::Ctx;
use crate::agent::{JobBehaviour, Rng};
use crate::fleet::Shared;
use crate::procstats::CpuMeter;
use crate::report::{summarize, Report};

/// Lag samplers running at once: each waits for its line to show before
/// taking the next sample, so the probing load stays small and fixed.
const SAMPLERS: usize = 2;
/// Pause between two samples of one sampler.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often a sample polls the API.
const SAMPLE_POLL: Duration = Duration::from_millis(10);
/// A line not readable after this long counts as a failed sample.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(120);

/// One lag sample: a writer's latest flushed line, polled until readable.
async fn sample(api: &crate::api::Api, job_id: &str, seq: u64, sent: Instant) -> Option<Duration> {
    while sent.elapsed() < SAMPLE_TIMEOUT {
        match api.log_line_visible(job_id, seq).await {
            Ok(true) => return Some(sent.elapsed()),
            Ok(false) => {}
            Err(e) => {
                eprintln!("lag sample: {e:#}");
                return None;
            }
        }
        tokio::time::sleep(SAMPLE_POLL).await;
    }
    None
}

/// Takes lag samples on random writers until `done`.
async fn sampler(
    api: crate::api::Api,
    shared: Arc<Shared>,
    writers: usize,
    seed: u64,
    done: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut rng = Rng::new(seed);
    let mut samples = Vec::new();
    while !done.load(Ordering::Relaxed) {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let slot = &shared.slots[rng.below(writers)];
        let job = slot.stream_job.lock().ok().and_then(|j| j.clone());
        let seq = slot.stream_seq.load(Ordering::Relaxed);
        let sent = Instant::now();
        if let (Some(job), true) = (job, seq > 0) {
            if let Some(lag) = sample(&api, &job, seq, sent).await {
                samples.push(lag);
            }
        }
    }
    samples
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    let writers = (ctx.opts.writers as usize).min(n);
    let lines = ctx.opts.lines;
    let total = writers as u64 * lines;
    let fleet = ctx
        .connect_all(JobBehaviour::Stream {
            lines,
            line_bytes: ctx.opts.line_bytes as usize,
            per_second: ctx.opts.line_rate,
        })
        .await?;
    let done = Arc::new(AtomicBool::new(false));
    let samplers: Vec<_> = (0..SAMPLERS)
        .map(|i| {
            tokio::spawn(sampler(
                ctx.api.clone(),
                fleet.shared.clone(),
                writers,
                i as u64 + 42,
                done.clone(),
            ))
        })
        .collect();
    let peak_rss = {
        let pid = ctx.pid();
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = pid.and_then(|p| crate::procstats::rss_kib(p).ok()) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            peak
        })
    };
    eprintln!("{writers} writers x {lines} lines");
    let api = ctx.api.clone();
    let writer_hosts: Vec<String> = ctx.hosts[..writers]
        .iter()
        .map(|h| h.host_id.clone())
        .collect();
    let server_cpu = ctx.pid().map(CpuMeter::start).transpose()?;
    let own_cpu = CpuMeter::start(std::process::id())?;
    let start = Instant::now();
    let job_ids = ctx
        .for_each_limited(writer_hosts, move |host_id| {
            let api = api.clone();
            async move { api.run_now(&host_id, "check").await }
        })
        .await?;
    let shared = fleet.shared.clone();
    fleet
        .wait_for("every line sent", ctx.opts.timeout * 4, |s| {
            s.lines_sent.load(Ordering::Relaxed) >= total
        })
        .await
        .with_context(|| format!("{} lines sent", shared.lines_sent.load(Ordering::Relaxed)))?;
    let since_start = |us: u64| shared.instant_at(us).saturating_duration_since(start);
    let first_line = since_start(shared.first_line_us.load(Ordering::Relaxed));
    let all_sent = since_start(shared.last_line_us.load(Ordering::Relaxed));
    let wanted: HashSet<String> = job_ids.iter().cloned().collect();
    let mut persisted = 0u64;
    let mut all_visible = None;
    while start.elapsed() < all_sent + ctx.opts.timeout {
        let jobs = ctx.api.all_jobs("check").await?;
        persisted = jobs
            .iter()
            .filter(|j| wanted.contains(&j.id))
            .map(|j| j.last_log_seq.max(0) as u64)
            .sum();
        if persisted >= total {
            all_visible = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_cpu = server_cpu.map(|c| c.percent()).transpose()?;
    let own_cpu = own_cpu.percent()?;
    done.store(true, Ordering::Relaxed);
    let mut lags = Vec::new();
    for sampler in samplers {
        lags.extend(sampler.await.context("a lag sampler panicked")?);
    }
    let peak_rss = peak_rss.await.context("the RSS sampler panicked")?;
    let succeeded = ctx
        .api
        .all_jobs("check")
        .await?
        .iter()
        .filter(|j| wanted.contains(&j.id) && j.status == "succeeded")
        .count();

    let mut report = Report::new("logs", n);
    report.int("writers", writers as u64).int("lines", total);
    if let Some(rate) = ctx.opts.line_rate {
        report.float("offered_lines_per_sec", rate * writers as f64, 0);
    }
    match all_visible {
        Some(visible) => {
            let window = visible.saturating_sub(first_line).as_secs_f64().max(1e-9);
            report
                .seconds("seconds", visible.saturating_sub(first_line))
                .float("lines_per_sec", total as f64 / window, 0);
        }
        None => {
            report.text("seconds", "timeout");
        }
    }
    let send_window = all_sent.saturating_sub(first_line).as_secs_f64().max(1e-9);
    report
        .float("send_lines_per_sec", total as f64 / send_window, 0)
        .int("persisted", persisted)
        .int("lost", total.saturating_sub(persisted))
        .int("jobs_succeeded", succeeded as u64)
        .latency("lag", summarize(&mut lags).as_ref());
    if let Some(cpu) = server_cpu {
        report.float("server_cpu_pct", cpu, 1);
    }
    report.float("loadgen_cpu_pct", own_cpu, 1);
    if peak_rss > 0 {
        report.float("peak_rss_mib", peak_rss as f64 / 1024.0, 1);
    }
    fleet.stop().await;
    Ok(report)
}
