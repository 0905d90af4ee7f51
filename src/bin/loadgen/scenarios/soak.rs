//! `soak`: everything at once for --duration (issue 15 C): N agents
//! connected, run-now jobs at --rate whose agents stream log lines,
//! schedule changes on a sample of hosts every [`CHANGE_EVERY`], and
//! reconnect churn (a [`CHURN_SHARE`] of the hosts connect, go online and
//! disconnect again, wave after wave). Measured: the server's RSS and
//! descriptors after the warm-up (the first fifth of the run) and at the
//! end (within 10 % is the target), and that nothing is lost: every job
//! created reaches `succeeded` and every result the agents made is acked.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Ctx;
use crate::agent::{JobBehaviour, Rng};
use crate::fleet::Fleet;
use crate::procstats;
use crate::report::Report;

/// Hosts whose schedule is changed, per change.
const CHANGED_HOSTS: usize = 50;
/// How often schedules change.
const CHANGE_EVERY: Duration = Duration::from_secs(10);
/// Share of the hosts that churn (connect, go online, disconnect).
const CHURN_SHARE: f64 = 0.02;
/// How long the end waits for jobs in flight.
const DRAIN: Duration = Duration::from_secs(60);

const GROUP: &str = "etc";
const CRONS: [&str; 2] = ["0 2 * * *", "30 3 * * *"];

/// (RSS KiB, open descriptors) of the server now.
fn sample(ctx: &Ctx) -> (Option<u64>, Option<u64>) {
    let fds = ctx
        .pid()
        .and_then(|p| procstats::open_fds(p).ok())
        .map(|n| n as u64);
    (ctx.rss_kib(), fds)
}

fn growth_pct(before: Option<u64>, after: Option<u64>) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if b > 0 => Some((a as f64 - b as f64) * 100.0 / b as f64),
        _ => None,
    }
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    let churn = ((n as f64 * CHURN_SHARE).ceil() as usize).clamp(1, n.saturating_sub(1).max(1));
    let steady_hosts: Vec<_> = ctx.hosts[..n - churn].to_vec();
    let churn_hosts: Vec<_> = ctx.hosts[n - churn..].to_vec();
    // Schedules to change: a group and a schedule on the first hosts.
    let sample_ids: Vec<String> = steady_hosts
        .iter()
        .take(CHANGED_HOSTS)
        .map(|h| h.host_id.clone())
        .collect();
    let api = ctx.api.clone();
    let schedules = ctx
        .for_each_limited(sample_ids.clone(), move |host_id| {
            let api = api.clone();
            async move {
                api.create_source_group(&host_id, GROUP).await?;
                api.create_schedule(&host_id, CRONS[0], GROUP).await
            }
        })
        .await?;
    let jobs = JobBehaviour::Stream {
        lines: 50,
        line_bytes: 120,
        per_second: Some(100.0),
    };
    let steady = ctx.launch_hosts(steady_hosts.clone(), jobs);
    steady
        .wait_online(steady_hosts.len(), ctx.opts.timeout)
        .await?;
    eprintln!(
        "{} agents online; soak for {:?} at {}/s with {churn} churning",
        steady_hosts.len(),
        ctx.opts.duration,
        ctx.opts.rate
    );

    let start = Instant::now();
    let warm_up = ctx.opts.duration / 5;
    let mut warm: Option<(Option<u64>, Option<u64>)> = None;
    let mut random = Rng::new(0x50a4);
    let mut created = 0u64;
    let mut errors = 0u64;
    let mut changes = 0u64;
    let mut waves = 0u64;
    let mut next_job = start;
    let mut next_change = start + CHANGE_EVERY;
    let mut churning: Option<(Fleet, Instant)> = None;
    let mut requests = Vec::new();
    while start.elapsed() < ctx.opts.duration {
        let now = Instant::now();
        if warm.is_none() && start.elapsed() >= warm_up {
            warm = Some(sample(ctx));
            eprintln!("warm-up over: {:?}", warm);
        }
        // Jobs at the rate (open loop: each request on its own task).
        while next_job <= now {
            let host = &steady_hosts[random.below(steady_hosts.len())];
            let api = ctx.api.clone();
            let host_id = host.host_id.clone();
            requests.push(tokio::spawn(
                async move { api.run_now(&host_id, "check").await },
            ));
            next_job += Duration::from_secs_f64(1.0 / ctx.opts.rate.max(0.001));
        }
        if now >= next_change {
            // Alternates, starting with the one the schedules do not have.
            let cron = CRONS[((changes + 1) % 2) as usize];
            for (host_id, schedule_id) in sample_ids.iter().zip(&schedules) {
                if let Err(e) = ctx
                    .api
                    .update_schedule(host_id, schedule_id, cron, GROUP)
                    .await
                {
                    eprintln!("schedule change failed: {e:#}");
                    errors += 1;
                }
            }
            changes += 1;
            next_change += CHANGE_EVERY;
        }
        // Churn: a wave connects, stays until online (or 30 s), leaves.
        churning = match churning.take() {
            None => Some((
                ctx.launch_hosts(churn_hosts.clone(), JobBehaviour::Instant),
                now,
            )),
            Some((wave, since)) => {
                if wave.online() >= churn_hosts.len() || since.elapsed() > Duration::from_secs(30) {
                    wave.stop().await;
                    waves += 1;
                    None
                } else {
                    Some((wave, since))
                }
            }
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some((wave, _)) = churning.take() {
        wave.stop().await;
        waves += 1;
    }
    for request in requests {
        match request.await {
            Ok(Ok(_)) => created += 1,
            _ => errors += 1,
        }
    }
    // Drain: every job created ends, every result made is acked.
    let drained = steady
        .wait_for("every result acked", DRAIN, |s| {
            s.results_acked.load(Ordering::Relaxed) >= s.results_created.load(Ordering::Relaxed)
                && s.results_created.load(Ordering::Relaxed) >= created
        })
        .await
        .is_ok();
    let mut active = 0;
    for status in ["queued", "running"] {
        active += ctx.api.count_jobs(status).await.unwrap_or(u64::MAX / 4);
    }
    let succeeded = ctx.api.count_jobs("succeeded").await.unwrap_or(0);
    let end = sample(ctx);
    let mut report = Report::new("soak", n);
    report
        .seconds("duration", ctx.opts.duration)
        .float("rate", ctx.opts.rate, 1)
        .int("jobs_created", created)
        .int("jobs_succeeded", succeeded)
        .int("jobs_not_finished", active)
        .int(
            "results_created",
            steady.shared.results_created.load(Ordering::Relaxed),
        )
        .int(
            "results_acked",
            steady.shared.results_acked.load(Ordering::Relaxed),
        )
        .int(
            "lines_sent",
            steady.shared.lines_sent.load(Ordering::Relaxed),
        )
        .int("schedule_changes", changes * sample_ids.len() as u64)
        .int("churn_waves", waves)
        .int("churn_hosts", churn as u64)
        .int("errors", errors)
        .int(
            "sessions_lost",
            steady.shared.sessions_lost.load(Ordering::Relaxed),
        )
        .int("drained", u64::from(drained));
    if let Some((rss, fds)) = warm {
        if let (Some(r), Some(e)) = (rss, end.0) {
            report.float("rss_warm_mib", r as f64 / 1024.0, 1);
            report.float("rss_end_mib", e as f64 / 1024.0, 1);
        }
        if let Some(g) = growth_pct(rss, end.0) {
            report.float("rss_growth_pct", g, 1);
        }
        if let (Some(f), Some(e)) = (fds, end.1) {
            report.int("fds_warm", f);
            report.int("fds_end", e);
        }
        if let Some(g) = growth_pct(fds, end.1) {
            report.float("fds_growth_pct", g, 1);
        }
    }
    steady.stop().await;
    Ok(report)
}
