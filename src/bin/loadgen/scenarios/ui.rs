//! `ui`: the web UI and the REST API over a fleet-sized database. The
//! database is seeded before the server starts ([`crate::seed`]: by
//! default 10,000 hosts, 1,000,000 jobs, 10,000,000 log lines; not
//! measured), then every page below is requested `--requests` times one
//! after the other (after one unmeasured warm-up; a page stops early once
//! it has taken `--duration`), as a logged-in client would, and its p50 /
//! p99 / max and body size are reported.
//!
//! Hosts and jobs are picked at random per request, so the figures are
//! not those of one cached row. Works on SQLite (default) and on
//! PostgreSQL (`--database-url`, an empty database).

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::agent::Rng;
use crate::api::Api;
use crate::report::{summarize, Report};
use crate::seed::{self, Plan, Seeded};
use crate::server::OwnServer;
use crate::Options;

/// Log lines per page of the long log.
const LOG_PAGE: u64 = 1000;

/// One measured page: its report name and how to build its path for the
/// `n`-th request.
struct Target {
    name: &'static str,
    path: Box<dyn Fn(&mut Rng) -> String + Send>,
}

fn targets(plan: &Plan, seeded: &Seeded) -> Vec<Target> {
    let hosts = plan.hosts as usize;
    let jobs = plan.jobs.max(1) as usize;
    let (key, value) = seed::LABEL_FILTER;
    let label = format!("{key}%3D{value}");
    let label_ui = label.clone();
    let big = seeded.big_job.clone();
    let big_last = seeded.big_job.clone();
    let big_page = seeded.big_job.clone();
    let last_after = seeded.big_job_lines.saturating_sub(LOG_PAGE);
    let fixed = |name: &'static str, path: String| Target {
        name,
        path: Box::new(move |_| path.clone()),
    };
    vec![
        fixed("dashboard", "/".to_owned()),
        fixed("hosts_ui", "/hosts".to_owned()),
        fixed("hosts_api", "/api/v1/hosts?limit=100".to_owned()),
        Target {
            name: "hosts_label_ui",
            path: Box::new(move |_| format!("/hosts?label={label_ui}")),
        },
        Target {
            name: "hosts_label_api",
            path: Box::new(move |_| format!("/api/v1/hosts?label={label}&limit=100")),
        },
        Target {
            name: "host_page",
            path: Box::new(move |r| format!("/hosts/{}", seed::host_id(r.below(hosts) as u64))),
        },
        Target {
            name: "jobs_by_host",
            path: Box::new(move |r| {
                format!(
                    "/api/v1/jobs?host_id={}",
                    seed::host_id(r.below(hosts) as u64)
                )
            }),
        },
        fixed("jobs_by_status", "/api/v1/jobs?status=failed".to_owned()),
        Target {
            name: "jobs_by_host_status",
            path: Box::new(move |r| {
                format!(
                    "/api/v1/jobs?host_id={}&status=succeeded",
                    seed::host_id(r.below(hosts) as u64)
                )
            }),
        },
        Target {
            name: "job_page",
            path: Box::new(move |r| format!("/jobs/{}", seed::job_id(r.below(jobs) as u64))),
        },
        Target {
            name: "job_page_long_log",
            path: Box::new(move |_| format!("/jobs/{big_page}")),
        },
        Target {
            name: "log_first",
            path: Box::new(move |_| {
                format!("/api/v1/jobs/{big}/logs?after_seq=0&limit={LOG_PAGE}")
            }),
        },
        Target {
            name: "log_last",
            path: Box::new(move |_| {
                format!("/api/v1/jobs/{big_last}/logs?after_seq={last_after}&limit={LOG_PAGE}")
            }),
        },
        fixed("metrics", "/metrics".to_owned()),
    ]
}

pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let plan = Plan {
        hosts: opts.seed_hosts,
        jobs: opts.seed_jobs,
        log_lines: opts.log_lines,
        now: restic_manager::store::now_ms(),
    };
    let keep = opts.keep_data;
    let log = opts.server_log.clone();
    let url = opts.database_url.clone();
    let started = Instant::now();
    let (server, seeded, seed_time) = tokio::task::spawn_blocking(move || {
        let (mut server, _) = OwnServer::prepare(0, keep, &log, url.as_deref())?;
        let seeding = Instant::now();
        let seeded = {
            let pool = restic_manager::store::connect(&server.database_url(), 1)
                .context("cannot open the database to seed it")?;
            let mut conn = pool.get().context("no database connection")?;
            seed::run(&mut conn, &plan)?
        };
        let seed_time = seeding.elapsed();
        server.start()?;
        anyhow::Ok((server, seeded, seed_time))
    })
    .await
    .context("setup panicked")??;
    let addr = server.addr.context("the server has no address")?;
    let backend = super::backend_name(opts.database_url.as_deref());
    eprintln!(
        "seeded {} hosts, {} jobs, {} log lines into {backend} in {:.1}s; server {addr} ready after {:.1}s",
        plan.hosts,
        plan.jobs,
        plan.log_lines,
        seed_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let api = Api::new(&format!("http://{addr}"), &server.api_token)?;
    let mut report = Report::new("ui", 0);
    report
        .text("backend", backend)
        .int("hosts", plan.hosts)
        .int("jobs", plan.jobs)
        .int("log_lines", plan.log_lines)
        .int("long_log_lines", seeded.big_job_lines)
        .int("lines_per_job", seeded.lines_per_job)
        .seconds("seed_seconds", seed_time);
    let outcome = measure(&api, opts, &plan, &seeded, &mut report).await;
    // Dropping stops the server and removes its data directory: blocking.
    let _ = tokio::task::spawn_blocking(move || drop(server)).await;
    outcome?;
    Ok(report)
}

async fn measure(
    api: &Api,
    opts: &Options,
    plan: &Plan,
    seeded: &Seeded,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut random = Rng::new(0x0517);
    for target in targets(plan, seeded) {
        // Warm-up: the first read of a page loads its pages of the
        // database into the cache.
        let first = (target.path)(&mut random);
        api.fetch(&first).await?;
        let mut samples = Vec::with_capacity(opts.requests as usize);
        let mut bytes = 0;
        let start = Instant::now();
        for _ in 0..opts.requests {
            let path = (target.path)(&mut random);
            let at = Instant::now();
            bytes = api.fetch(&path).await?;
            samples.push(at.elapsed());
            if start.elapsed() >= opts.duration {
                break;
            }
        }
        let summary = summarize(&mut samples);
        if let Some(s) = &summary {
            eprintln!(
                "{:<22} n={:<4} p50 {:>8.2} ms  p99 {:>8.2} ms  {} bytes",
                target.name,
                s.count,
                ms(s.p50),
                ms(s.p99),
                bytes
            );
        }
        report.latency(target.name, summary.as_ref());
        report.int(&format!("{}_bytes", target.name), bytes as u64);
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
