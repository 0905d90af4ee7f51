//! `connect`: N agents connect and say `hello` at once (through the
//! first-connection gate); the time until all are online — greeted, as
//! the agents see it, and shown online by the REST API — and the server's
//! RSS per connected agent (RSS after minus RSS before, over N).
//!
//! With `--policies P`, P policies matching every host (each with a source
//! group and a schedule) are created first (setup, not measured), so every
//! `hello` is answered with a host's own rows plus P policies' (issue 12
//! §7: within 10 % of the time without).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{add_memory, Ctx, SETTLE};
use crate::agent::JobBehaviour;
use crate::procstats;
use crate::report::{summarize, Report};

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    let policies = ctx.opts.policies;
    if policies > 0 {
        let setup = Instant::now();
        let tag = std::process::id();
        for i in 0..policies {
            let name = format!("loadgen-connect-{tag}-{i}");
            ctx.api
                .create_policy(&name, &format!("p{i}"), "0 2 * * *")
                .await?;
        }
        eprintln!(
            "{policies} policies over {n} hosts made in {:.1}s",
            setup.elapsed().as_secs_f64()
        );
    }
    tokio::time::sleep(SETTLE).await;
    let before = ctx.rss_kib();
    // CPU of the server and of this process (the simulated agents) over
    // the connect window: which of the two the 2 cores were busy with.
    let cpu = |pid: Option<u32>| pid.and_then(|p| procstats::CpuMeter::start(p).ok());
    let (server_cpu, loadgen_cpu) = (cpu(ctx.pid()), cpu(Some(std::process::id())));
    let start = Instant::now();
    let fleet = ctx.launch(JobBehaviour::Instant);
    let agents_online = fleet.wait_online(n, ctx.opts.timeout).await;
    if let Err(e) = &agents_online {
        eprintln!("{e:#}");
    }
    let server_online = ctx.wait_server_online(n, start).await;
    let busy = |meter: &Option<procstats::CpuMeter>| meter.as_ref().and_then(|m| m.percent().ok());
    let (server_busy, loadgen_busy) = (busy(&server_cpu), busy(&loadgen_cpu));
    let online = ctx.api.count_hosts("online").await?;
    tokio::time::sleep(SETTLE).await;
    let after = ctx.rss_kib();

    let mut report = Report::new("connect", n);
    report
        .int("online", online)
        .int("policies", u64::from(policies));
    match (agents_online.as_ref().ok(), server_online) {
        (Some(agents), Some(server)) => {
            report.seconds("seconds", server.max(*agents));
        }
        _ => {
            report.text("seconds", "timeout");
        }
    }
    if let Ok(d) = &agents_online {
        report.seconds("agents_seconds", *d);
    }
    add_memory(&mut report, before, after, n);
    if let Some(p) = server_busy {
        report.float("server_cpu_percent", p, 0);
    }
    if let Some(p) = loadgen_busy {
        report.float("loadgen_cpu_percent", p, 0);
    }
    let mut latencies = fleet.shared.first_online_latencies();
    report.latency("online", summarize(&mut latencies).as_ref());
    report.int(
        "connect_errors",
        fleet.shared.connect_errors.load(Ordering::Relaxed),
    );
    if let Some(fds) = ctx.pid().and_then(|p| procstats::open_fds(p).ok()) {
        report.int("server_fds", fds as u64);
    }
    fleet.stop().await;
    Ok(report)
}
