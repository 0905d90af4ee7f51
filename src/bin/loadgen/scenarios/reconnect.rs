//! `reconnect`: N agents connected, --jobs of them running a job that
//! lasts --hold; the server is stopped (--signal: SIGKILL, a crash, by
//! default; SIGTERM for a clean stop), stays down for --down, and starts
//! again on the same port and data. The agents reconnect with PROTOCOL.md's
//! back-off; jobs that ended meanwhile wait in their outboxes.
//!
//! Measured: the time from the new server's start (and from the stop)
//! until every agent is greeted again and the API shows all online; then,
//! after the outboxes drained, jobs not `succeeded` (lost) and results
//! never acked (lost). Both must be 0.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use super::Ctx;
use crate::agent::JobBehaviour;
use crate::report::Report;
use crate::StopSignal;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    if ctx.own.is_none() {
        bail!("reconnect restarts the server: run it without --server");
    }
    let n = ctx.hosts.len();
    let jobs = (ctx.opts.jobs as usize).min(n);
    let fleet = ctx.connect_all(JobBehaviour::Hold(ctx.opts.hold)).await?;

    let api = ctx.api.clone();
    let hosts: Vec<String> = ctx.hosts[..jobs]
        .iter()
        .map(|h| h.host_id.clone())
        .collect();
    ctx.for_each_limited(hosts, move |host_id| {
        let api = api.clone();
        async move { api.run_now(&host_id, "check").await }
    })
    .await?;
    fleet
        .wait_for("every job to reach its agent", ctx.opts.timeout, |s| {
            s.runs_received.load(Ordering::Relaxed) >= jobs as u64
        })
        .await?;
    eprintln!("{jobs} jobs running; stopping the server");

    let signal = match ctx.opts.signal {
        StopSignal::Kill => Signal::SIGKILL,
        StopSignal::Term => Signal::SIGTERM,
    };
    let stopped_at = Instant::now();
    let mut server = ctx.own.take().context("no server")?;
    let (server, shutdown) = tokio::task::spawn_blocking(move || {
        let took = server.stop(signal);
        (server, took)
    })
    .await
    .context("stop panicked")?;
    let shutdown = shutdown?;
    tokio::time::sleep(ctx.opts.down).await;
    let (server, started) = tokio::task::spawn_blocking(move || {
        let mut server = server;
        let started = server.start();
        (server, started)
    })
    .await
    .context("start panicked")?;
    ctx.own = Some(server);
    started?;
    let up_at = Instant::now();
    eprintln!(
        "server down for {:.1}s (exit took {:.1}s); waiting for {n} agents",
        up_at.duration_since(stopped_at).as_secs_f64(),
        shutdown.as_secs_f64()
    );
    let agents_back = fleet.wait_online(n, ctx.opts.timeout).await;
    if let Err(e) = &agents_back {
        eprintln!("{e:#}");
    }
    let server_back = ctx.wait_server_online(n, up_at).await;

    // Results drain, then the jobs are read back.
    let drained = fleet
        .wait_for("the outboxes to drain", ctx.opts.timeout, |s| {
            s.results_created.load(Ordering::Relaxed) >= jobs as u64 && s.outbox_total() == 0
        })
        .await
        .is_ok();
    if !drained {
        eprintln!("outboxes not drained");
    }
    let mut succeeded = 0;
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(30) {
        succeeded = ctx.api.count_jobs("succeeded").await?;
        if succeeded >= jobs as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed = ctx.api.count_jobs("failed").await?;
    let online = ctx.api.count_hosts("online").await?;

    let mut report = Report::new("reconnect", n);
    report.int("online", online);
    match (&agents_back, server_back) {
        (Ok(agents), Some(server)) => {
            report.seconds("seconds", (*agents).max(server)).seconds(
                "seconds_from_stop",
                up_at.duration_since(stopped_at) + (*agents).max(server),
            );
        }
        _ => {
            report.text("seconds", "timeout");
        }
    }
    report
        .text("signal", &format!("{:?}", ctx.opts.signal).to_lowercase())
        .seconds("exit_seconds", shutdown)
        .seconds("down_seconds", up_at.duration_since(stopped_at))
        .int("jobs", jobs as u64)
        .int("jobs_succeeded", succeeded)
        .int("jobs_failed", failed)
        .int("jobs_lost", (jobs as u64).saturating_sub(succeeded))
        .int(
            "results_offline",
            fleet.shared.results_offline.load(Ordering::Relaxed),
        )
        .int("results_lost", fleet.shared.outbox_total() as u64)
        .int(
            "connect_errors",
            fleet.shared.connect_errors.load(Ordering::Relaxed),
        );
    fleet.stop().await;
    Ok(report)
}
