//! The host page's history: recent jobs, the snapshots restic reported,
//! repository statistics with the size-over-time chart, and missed runs.

use std::collections::HashMap;

use maud::{html, Markup};

use super::{Data, SNAPSHOTS};
use crate::http::ui::chart::{self, Sample};
use crate::http::ui::dashboard::outcome_badge;
use crate::http::ui::layout::badge;
use crate::http::ui::{format, PageCtx};
use crate::store::models::{Job, RepoStats};
use crate::store::JobStatus;

/// A table of jobs (also used by nothing else; kept here with the page).
/// A queued job waiting for a lease shows why (`waiting`, by job id).
pub(super) fn jobs_section(
    ctx: &PageCtx,
    jobs: &[Job],
    waiting: &HashMap<String, String>,
) -> Markup {
    html! {
        section #recent-jobs {
            h2 { "Recent jobs" }
            @if jobs.is_empty() {
                p.muted { "No jobs yet." }
            } @else {
                table #job-list {
                    thead { tr { th { "Job" } th { "Source group" } th { "Status" } th { "Trigger" } th { "Created" } th { "Duration" } } }
                    tbody {
                        @for j in jobs {
                            tr data-job-id=(j.id) data-status=(j.status.as_str()) {
                                td { a href={ "/jobs/" (j.id) } { (j.kind.as_str()) } @if j.attempt > 1 { " (attempt " (j.attempt) ")" } }
                                td { (j.tag.as_deref().unwrap_or("—")) }
                                td {
                                    @if j.status.is_terminal() { (outcome_badge(j)) } @else { (badge(j.status.as_str(), j.status.as_str())) }
                                    @if let Some(reason) = waiting.get(j.id.as_str()) { br; span.muted.waiting-for { (reason) } }
                                }
                                td { (j.trigger.as_str()) }
                                td { time datetime=(format::rfc3339(j.created_at)) title=(format::time(j.created_at)) { (format::ago(j.created_at, ctx.now)) } }
                                td {
                                    @if let Some(d) = format::elapsed(j.started_at, j.finished_at) { (d) }
                                    @else if j.status == JobStatus::Running { "running" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn snapshots_section(data: &Data) -> Markup {
    html! {
        section #snapshots {
            h2 { "Snapshots" }
            @if data.history.snapshots.is_empty() {
                p.muted #no-snapshots { "No snapshots reported yet." }
            } @else {
                p.muted { (format::plural(data.history.snapshot_total, "snapshot", "snapshots")) " in the agent's last report"
                    @if data.history.snapshot_total > SNAPSHOTS { ", the newest " (SNAPSHOTS) " shown" } "." }
                table #snapshot-list {
                    thead { tr { th { "ID" } th { "Time" } th { "Paths" } th { "Tags" } th { "Size" } th { "Files" } } }
                    tbody {
                        @for s in &data.history.snapshots {
                            tr data-snapshot=(s.short_id) {
                                td { a.snapshot-link href={ "/hosts/" (s.host_id) "/snapshots/" (s.snapshot_id) } { code title=(s.snapshot_id) { (s.short_id) } } }
                                td { (format::time(s.time)) }
                                td { @for p in &s.paths { code { (p) } br; } }
                                td.tags { @for t in &s.tags { span.tag { (t) } " " } }
                                td.size { (s.size_bytes.map(format::bytes_i64).unwrap_or_else(|| "—".to_owned())) }
                                td.files { (s.file_count.map(|n| n.to_string()).unwrap_or_else(|| "—".to_owned())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn stats_section(stats: &[RepoStats]) -> Markup {
    let latest = stats.last();
    let samples: Vec<Sample> = stats
        .iter()
        .filter_map(|s| {
            Some(Sample {
                at: s.recorded_at,
                bytes: u64::try_from(s.size_bytes?).ok()?,
            })
        })
        .collect();
    html! {
        section #repo-stats {
            h2 { "Repository statistics" }
            @if let Some(s) = latest {
                dl.facts {
                    dt { "Size" } dd #repo-size { (s.size_bytes.map(format::bytes_i64).unwrap_or_else(|| "—".to_owned())) }
                    dt { "Snapshots" } dd { (s.snapshot_count.map(|n| n.to_string()).unwrap_or_else(|| "—".to_owned())) }
                    dt { "Deduplication" } dd { (s.dedup_ratio.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "—".to_owned())) }
                    dt { "Last check" } dd {
                        @match s.last_check_at { Some(at) => (format::time(at)), None => "never" }
                        @if let Some(status) = &s.last_check_status { " " (badge(status, status)) }
                    }
                    dt { "Lock" } dd { (s.lock_state.as_deref().unwrap_or("—")) }
                    dt { "Reported" } dd { (format::time(s.recorded_at)) }
                }
            }
            h3 { "Size over time" }
            (chart::render(&samples))
        }
    }
}

pub(super) fn missed_section(data: &Data) -> Markup {
    html! {
        section #missed-runs {
            h2 { "Missed runs (last 90 days)" }
            @if data.history.missed.is_empty() {
                p.muted { "None." }
            } @else {
                ul {
                    @for m in &data.history.missed {
                        @let cron = data.setup.schedules.iter().find(|s| s.schedule.id.as_str() == m.schedule_id).map(|s| s.schedule.cron_expr.as_str());
                        li { (badge("missed", "missed")) " " (format::time(m.scheduled_at))
                            @if let Some(c) = cron { " — schedule " code { (c) } } }
                    }
                }
            }
        }
    }
}
