//! `fanout`: every host has the same schedule, and it is changed on every
//! host at once, two ways (`--via`):
//!
//! - `host`: one source group and one cron schedule per host, made
//!   through the REST API before the agents connect, then changed with
//!   `PUT /hosts/{id}/schedules/{sid}` per host (--api-concurrency in
//!   flight);
//! - `policy`: one policy matching every host (selector `{}`) gives each
//!   host its group and schedule, then ONE `PUT /policies/{id}` changes
//!   the schedule for all (issue 12 §7: its own latency ≤ 500 ms and every
//!   `schedule.set` acked ≤ 3 s at 10,000 hosts).
//!
//! Measured: the time from the first change until every agent has
//! received the new `schedule.set` and the server has recorded every
//! `schedule.ack` (read back through the API), the API part (all PUTs, or
//! the one PUT), and per host the latency from its PUT to its
//! `schedule.set`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::Ctx;
use crate::agent::JobBehaviour;
use crate::fleet::Fleet;
use crate::report::{summarize, Report};
use crate::Via;

const GROUP: &str = "etc";
const CRON_BEFORE: &str = "0 2 * * *";
const CRON_AFTER: &str = "30 3 * * *";

/// Whether the API shows every host with a current version above
/// `min_version[i]`, acked. Hosts are matched by id.
async fn all_recorded(ctx: &Ctx, min_version: &HashMap<String, u64>) -> anyhow::Result<bool> {
    let hosts = ctx.api.all_hosts().await?;
    let mut ok = 0;
    for h in &hosts {
        if let Some(min) = min_version.get(&h.id) {
            if h.schedule_version as u64 > *min && h.acked_schedule_version == h.schedule_version {
                ok += 1;
            }
        }
    }
    Ok(ok == min_version.len())
}

/// What the setup made: per host the schedule to change (`host`), or the
/// policy (`policy`).
enum Target {
    Schedules(Vec<String>),
    Policy { id: String, name: String },
}

/// Gives every host the schedule (not measured).
async fn set_up(ctx: &Ctx, host_ids: &[String]) -> anyhow::Result<Target> {
    let setup = Instant::now();
    let target = match ctx.opts.via {
        Via::Host => {
            let api = ctx.api.clone();
            let ids = ctx
                .for_each_limited(host_ids.to_vec(), move |host_id| {
                    let api = api.clone();
                    async move {
                        api.create_source_group(&host_id, GROUP).await?;
                        api.create_schedule(&host_id, CRON_BEFORE, GROUP).await
                    }
                })
                .await?;
            Target::Schedules(ids)
        }
        Via::Policy => {
            // Unique per run: a server may keep the last run's policy.
            let name = format!("loadgen-fanout-{}", std::process::id());
            let id = ctx.api.create_policy(&name, GROUP, CRON_BEFORE).await?;
            Target::Policy { id, name }
        }
    };
    eprintln!(
        "{} hosts given a source group and a schedule in {:.1}s",
        host_ids.len(),
        setup.elapsed().as_secs_f64()
    );
    Ok(target)
}

/// Makes the change; returns per host (index) when its change was sent
/// (µs on the fleet's clock), the time the API part took, and how many
/// hosts the server said it affected (policy only).
async fn change(
    ctx: &Ctx,
    fleet: &Fleet,
    host_ids: &[String],
    target: Target,
) -> anyhow::Result<(Vec<(usize, u64)>, Duration, Option<u64>)> {
    let start = Instant::now();
    match target {
        Target::Schedules(schedule_ids) => {
            let api = ctx.api.clone();
            let shared = fleet.shared.clone();
            let work: Vec<(usize, String, String)> = host_ids
                .iter()
                .cloned()
                .zip(schedule_ids)
                .enumerate()
                .map(|(i, (h, s))| (i, h, s))
                .collect();
            let sent_at = ctx
                .for_each_limited(work, move |(i, host_id, schedule_id)| {
                    let api = api.clone();
                    let shared = shared.clone();
                    async move {
                        let at = shared.now_us();
                        api.update_schedule(&host_id, &schedule_id, CRON_AFTER, GROUP)
                            .await?;
                        Ok((i, at))
                    }
                })
                .await?;
            Ok((sent_at, start.elapsed(), None))
        }
        Target::Policy { id, name } => {
            let at = fleet.shared.now_us();
            let affected = ctx.api.update_policy(&id, &name, GROUP, CRON_AFTER).await?;
            let took = start.elapsed();
            let sent_at = (0..host_ids.len()).map(|i| (i, at)).collect();
            Ok((sent_at, took, Some(affected)))
        }
    }
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Report> {
    let n = ctx.hosts.len();
    let host_ids: Vec<String> = ctx.hosts.iter().map(|h| h.host_id.clone()).collect();
    let target = set_up(ctx, &host_ids).await?;
    let fleet = ctx.connect_all(JobBehaviour::Instant).await?;
    // Every agent acked the version it was greeted with, and the server
    // recorded it.
    let zero: HashMap<String, u64> = host_ids.iter().map(|id| (id.clone(), 0)).collect();
    let settle = Instant::now();
    while !all_recorded(ctx, &zero).await? {
        if settle.elapsed() >= ctx.opts.timeout {
            bail!("the greeting's schedule acks were not all recorded");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before: Vec<u64> = fleet
        .shared
        .slots
        .iter()
        .map(|s| s.schedule_version.load(Ordering::Relaxed))
        .collect();
    let min_version: HashMap<String, u64> = host_ids
        .iter()
        .cloned()
        .zip(before.iter().copied())
        .collect();

    eprintln!("changing {n} schedules");
    let start = Instant::now();
    let epoch_us = fleet.shared.now_us();
    let (sent_at, api_done, affected) = change(ctx, &fleet, &host_ids, target).await?;
    let shared = fleet.shared.clone();
    let before = Arc::new(before);
    fleet
        .wait_for("every schedule.set", ctx.opts.timeout, |s| {
            s.slots
                .iter()
                .zip(before.iter())
                .all(|(slot, v0)| slot.acked_version.load(Ordering::Relaxed) > *v0)
        })
        .await?;
    let agents_done = start.elapsed();
    let mut recorded = None;
    while start.elapsed() < ctx.opts.timeout {
        if all_recorded(ctx, &min_version).await? {
            recorded = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies: Vec<Duration> = sent_at
        .iter()
        .map(|(i, at)| {
            let got = shared.slots[*i].schedule_at_us.load(Ordering::Relaxed);
            Duration::from_micros(got.saturating_sub(*at))
        })
        .collect();
    let last_set_us = shared
        .slots
        .iter()
        .map(|s| s.schedule_at_us.load(Ordering::Relaxed))
        .max()
        .unwrap_or(epoch_us);

    let mut report = Report::new("fanout", n);
    match recorded {
        Some(d) => report.seconds("seconds", d),
        None => report.text("seconds", "timeout"),
    };
    if let Some(affected) = affected {
        report.int("hosts_affected", affected);
    }
    report
        .text(
            "via",
            match ctx.opts.via {
                Via::Host => "host",
                Via::Policy => "policy",
            },
        )
        .seconds("api_seconds", api_done)
        .seconds("agents_seconds", agents_done)
        .seconds(
            "last_set_seconds",
            Duration::from_micros(last_set_us.saturating_sub(epoch_us)),
        )
        .latency("set", summarize(&mut latencies).as_ref())
        .int("api_concurrency", u64::from(ctx.opts.api_concurrency))
        .int(
            "error_frames",
            fleet.shared.error_frames.load(Ordering::Relaxed),
        );
    fleet.stop().await;
    Ok(report)
}
