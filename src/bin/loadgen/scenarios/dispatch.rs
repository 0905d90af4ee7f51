//! `dispatch`: with N agents connected, run-now (`POST /hosts/{id}/jobs`,
//! kind `check`) for uniformly random hosts at a fixed --rate for
//! --duration, open loop (each request starts on its own schedule, not
//! after the previous answer). The figure is the latency from the start
//! of the API call to the agent receiving `command.run`; the agents run
//! each job at once (`command.result`, `job.started`, `job.finished`).
//! With --settle the first request waits that long after every agent is
//! online, so that the writes the greetings left behind (hellos, health
//! and metric points) have drained and the figure is the steady state's;
//! without it the first second of requests queues behind them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Ctx;
use crate::agent::{JobBehaviour, Rng};
use crate::report::{summarize, Report};

/// How long after the last request a missing `command.run` is awaited.
const GRACE: Duration = Duration::from_secs(10);

/// One request's outcome: (sent at, job id or error, answered after).
type Sent = (Instant, anyhow::Result<String>, Duration);

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    let fleet = ctx.connect_all(JobBehaviour::Instant).await?;
    if let Some(settle) = ctx.opts.settle {
        eprintln!("settling for {settle:?}");
        tokio::time::sleep(settle).await;
    }
    fleet.shared.record_runs.store(true, Ordering::Relaxed);
    let rate = ctx.opts.rate;
    let total = (rate * ctx.opts.duration.as_secs_f64()).round().max(1.0) as usize;
    eprintln!("{total} run-now requests at {rate}/s");
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let mut random = Rng::new(0x5eed);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let host = random.below(n);
        let host_id = ctx.hosts[host].host_id.clone();
        let api = ctx.api.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let result = api.run_now(&host_id, "check").await;
            let took = at.elapsed();
            if let Ok(mut sent) = sent.lock() {
                sent.push((at, result, took));
            }
        }));
    }
    let sending = start.elapsed();
    for task in tasks {
        // A panicked request task is counted as missing below.
        let _ = task.await;
    }
    let sent: Vec<Sent> = match Arc::try_unwrap(sent) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(shared) => shared
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default(),
    };
    let created: Vec<(&str, Instant)> = sent
        .iter()
        .filter_map(|(at, r, _)| r.as_ref().ok().map(|id| (id.as_str(), *at)))
        .collect();
    let errors = sent.iter().filter(|(_, r, _)| r.is_err()).count();
    if let Some((_, Err(e), _)) = sent.iter().find(|(_, r, _)| r.is_err()) {
        eprintln!("first run-now error: {e:#}");
    }
    let expected = created.len() as u64;
    let delivered = fleet
        .wait_for("every command.run", GRACE, |s| {
            s.runs_received.load(Ordering::Relaxed) >= expected
        })
        .await
        .is_ok();
    if !delivered {
        eprintln!("not every job reached its agent within {GRACE:?}");
    }
    let mut arrivals: HashMap<String, Instant> = HashMap::new();
    for (job_id, at) in fleet.shared.take_runs() {
        arrivals.entry(job_id).or_insert(at);
    }
    let mut latencies = Vec::with_capacity(created.len());
    let mut missing = 0;
    for (job_id, at) in &created {
        match arrivals.get(*job_id) {
            Some(arrived) => latencies.push(arrived.saturating_duration_since(*at)),
            None => missing += 1,
        }
    }
    let mut api_latencies: Vec<Duration> = sent.iter().map(|(_, _, took)| *took).collect();

    let mut report = Report::new("dispatch", n);
    report
        .float("rate", rate, 1)
        .float(
            "settle_s",
            ctx.opts.settle.unwrap_or_default().as_secs_f64(),
            1,
        )
        .float(
            "achieved_rate",
            sent.len() as f64 / sending.as_secs_f64().max(1e-9),
            1,
        )
        .int("requests", sent.len() as u64)
        .int("errors", errors as u64)
        .int("missing", missing as u64)
        .latency("latency", summarize(&mut latencies).as_ref())
        .latency("api", summarize(&mut api_latencies).as_ref())
        .int("online", fleet.online() as u64);
    fleet.stop().await;
    Ok(report)
}
