//! `idle`: N connected agents heartbeat (every --heartbeat, spread) for
//! --duration; the server's CPU use over that window (% of one core),
//! its RSS per agent, and this process's own CPU for comparison.

use super::{add_memory, Ctx, SETTLE};
use crate::agent::JobBehaviour;
use crate::procstats::{self, CpuMeter};
use crate::report::Report;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    tokio::time::sleep(SETTLE).await;
    let before = ctx.rss_kib();
    let fleet = ctx.connect_all(JobBehaviour::Instant).await?;
    // Let the greeting's writes drain before measuring.
    tokio::time::sleep(SETTLE).await;
    let server_cpu = ctx.pid().map(CpuMeter::start).transpose()?;
    let own_cpu = CpuMeter::start(std::process::id())?;
    eprintln!("idle for {:?}", ctx.opts.duration);
    tokio::time::sleep(ctx.opts.duration).await;
    let mut report = Report::new("idle", n);
    report.int("online", fleet.online() as u64);
    report.seconds("duration", ctx.opts.duration);
    report.float("heartbeat_s", ctx.opts.heartbeat.as_secs_f64(), 1);
    if let Some(cpu) = server_cpu {
        report.float("server_cpu_pct", cpu.percent()?, 2);
    }
    report.float("loadgen_cpu_pct", own_cpu.percent()?, 2);
    add_memory(&mut report, before, ctx.rss_kib(), n);
    if let Some(fds) = ctx.pid().and_then(|p| procstats::open_fds(p).ok()) {
        report.int("server_fds", fds as u64);
    }
    report.int(
        "sessions_lost",
        fleet
            .shared
            .sessions_lost
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    fleet.stop().await;
    Ok(report)
}
