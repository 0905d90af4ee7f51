//! `GET /`: the fleet dashboard. Counters (hosts online and offline,
//! backups and missed runs of the last 24 hours), the last backup result
//! of every host and source group with failing and missed ones first, and
//! the fleet calendar. Host badges follow presence live (`app.js`
//! listens to `GET /ui/events`).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::calendar::{self, Calendar};
use super::layout::{self, badge, Nav};
use super::{format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::with_conn;
use crate::http::AppState;
use crate::store::models::{Job, MissedRun, SourceGroup};
use crate::store::ui_queries::{self, BackupOutcome, HostBrief};
use crate::store::{JobKind, JobStatus};

/// Rows of the status table shown; the hosts page lists everything.
const MAX_ROWS: usize = 500;
/// Hosts in the calendar (the worst first).
const CALENDAR_HOSTS: usize = 100;
/// A missed run this recent marks its host in the status table.
const MISSED_RECENT_MS: i64 = 7 * 86_400_000;
const DAY_MS: i64 = 86_400_000;

/// How bad a status row is; lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Failed,
    Missed,
    Warning,
    Never,
    Ok,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Failed => "failed",
            Severity::Missed => "missed",
            Severity::Warning => "warning",
            Severity::Never => "never",
            Severity::Ok => "ok",
        }
    }
}

/// One row: a host and one of its source groups (or none).
struct StatusRow<'a> {
    host: &'a HostBrief,
    group: Option<&'a SourceGroup>,
    last: Option<&'a Job>,
    /// Missed runs of the host in the last week after this group's last result.
    missed: usize,
    severity: Severity,
}

fn severity(last: Option<&Job>, missed: usize) -> Severity {
    match last {
        Some(job) if job.status == JobStatus::Failed => Severity::Failed,
        _ if missed > 0 => Severity::Missed,
        Some(job) if job.status == JobStatus::Cancelled || job.warning.is_some() => {
            Severity::Warning
        }
        Some(_) => Severity::Ok,
        None => Severity::Never,
    }
}

/// Builds the status rows, worst first, then by host name and group name.
fn status_rows<'a>(
    hosts: &'a [HostBrief],
    groups: &'a [SourceGroup],
    latest: &'a [Job],
    missed: &'a [MissedRun],
    now: i64,
) -> Vec<StatusRow<'a>> {
    let mut groups_of: HashMap<&str, Vec<&SourceGroup>> = HashMap::new();
    for g in groups {
        groups_of.entry(g.host_id.as_str()).or_default().push(g);
    }
    let latest_of: HashMap<(&str, &str), &Job> = latest
        .iter()
        .filter_map(|j| Some(((j.host_id.as_str(), j.source_group_id.as_deref()?), j)))
        .collect();
    let mut missed_of: HashMap<&str, Vec<i64>> = HashMap::new();
    for m in missed
        .iter()
        .filter(|m| m.scheduled_at >= now - MISSED_RECENT_MS)
    {
        missed_of
            .entry(m.host_id.as_str())
            .or_default()
            .push(m.scheduled_at);
    }
    let mut rows = Vec::new();
    for host in hosts {
        let host_missed = missed_of.get(host.id.as_str());
        let missed_after = |since: Option<i64>| {
            host_missed.map_or(0, |times| {
                times
                    .iter()
                    .filter(|t| since.is_none_or(|s| **t > s))
                    .count()
            })
        };
        match groups_of.get(host.id.as_str()) {
            None => {
                let missed = missed_after(None);
                rows.push(StatusRow {
                    host,
                    group: None,
                    last: None,
                    missed,
                    severity: severity(None, missed),
                });
            }
            Some(list) => {
                for group in list {
                    let last = latest_of
                        .get(&(host.id.as_str(), group.id.as_str()))
                        .copied();
                    let missed = missed_after(last.and_then(|j| j.finished_at));
                    rows.push(StatusRow {
                        host,
                        group: Some(group),
                        last,
                        missed,
                        severity: severity(last, missed),
                    });
                }
            }
        }
    }
    rows.sort_by(|a, b| {
        (a.severity, &a.host.hostname, a.group.map(|g| &g.name)).cmp(&(
            b.severity,
            &b.host.hostname,
            b.group.map(|g| &g.name),
        ))
    });
    rows
}

/// The name a host is shown by.
pub(super) fn host_label(host: &HostBrief) -> &str {
    host.display_name.as_deref().unwrap_or(&host.hostname)
}

/// The badge of a finished job's outcome.
pub(super) fn outcome_badge(job: &Job) -> Markup {
    match (job.status, job.warning.is_some()) {
        (JobStatus::Succeeded, true) => badge("warning", "succeeded with warnings"),
        (status, _) => badge(status.as_str(), status.as_str()),
    }
}

/// Everything the dashboard shows, read in one blocking call.
struct Data {
    hosts: Vec<HostBrief>,
    groups: Vec<SourceGroup>,
    latest: Vec<Job>,
    missed: Vec<MissedRun>,
    outcomes: Vec<BackupOutcome>,
    calendar_hosts: Vec<(String, String)>,
    last_day: (i64, i64, i64),
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let now = ctx.now;
    let (first_day, window_start) = calendar::window(now);
    let data = with_conn(&state.pool, move |conn| {
        let hosts = ui_queries::hosts_brief(conn)?;
        let groups = ui_queries::all_source_groups(conn)?;
        let latest = ui_queries::latest_backup_results(conn)?;
        let ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
        let missed = ui_queries::missed_runs_since(conn, &ids, window_start)?;
        // The calendar shows the worst hosts first, like the table.
        let mut calendar_hosts: Vec<(String, String)> = Vec::new();
        for row in status_rows(&hosts, &groups, &latest, &missed, now) {
            if calendar_hosts.len() >= CALENDAR_HOSTS {
                break;
            }
            if !calendar_hosts.iter().any(|(id, _)| *id == row.host.id) {
                calendar_hosts.push((row.host.id.clone(), host_label(row.host).to_owned()));
            }
        }
        let calendar_ids: Vec<String> = calendar_hosts.iter().map(|(id, _)| id.clone()).collect();
        let outcomes = ui_queries::backup_outcomes_since(conn, &calendar_ids, window_start)?;
        let last_day = ui_queries::job_outcome_counts_since(conn, JobKind::Backup, now - DAY_MS)?;
        Ok(Data {
            hosts,
            groups,
            latest,
            missed,
            outcomes,
            calendar_hosts,
            last_day,
        })
    })
    .await?;

    let online = data.hosts.iter().filter(|h| h.online).count();
    let offline = data.hosts.len() - online;
    let missed_day = data
        .missed
        .iter()
        .filter(|m| m.scheduled_at >= now - DAY_MS)
        .count();
    let rows = status_rows(&data.hosts, &data.groups, &data.latest, &data.missed, now);
    let missed_pairs: Vec<(String, i64)> = data
        .missed
        .iter()
        .map(|m| (m.host_id.clone(), m.scheduled_at))
        .collect();
    let cal = Calendar::build(
        first_day,
        &data.calendar_hosts,
        &data.outcomes,
        &missed_pairs,
    );
    let (succeeded, failed, cancelled) = data.last_day;

    let body = html! {
        section.cards {
            div.card #card-hosts {
                h2 { "Hosts" }
                p.big { (data.hosts.len()) }
                p { span #hosts-online { (online) } " online · " span #hosts-offline { (offline) } " offline" }
            }
            div.card {
                h2 { "Backups, last 24 h" }
                p.big { (succeeded) " ok" }
                p { (failed) " failed · " (cancelled) " cancelled" }
            }
            div.card {
                h2 { "Missed runs, last 24 h" }
                p.big { (missed_day) }
            }
        }
        section {
            h2 { "Last backup per host and source group" }
            @if rows.is_empty() {
                p.muted { "No hosts yet. " @if ctx.is_admin() { a href="/enrollment" { "Enrol a host" } "." } }
            } @else {
                table #backup-status {
                    thead { tr { th { "Host" } th { "Status" } th { "Source group" } th { "Last result" } th { "Finished" } th { "Missed runs" } } }
                    tbody {
                        @for row in rows.iter().take(MAX_ROWS) {
                            tr data-host-id=(row.host.id) data-severity=(row.severity.as_str()) {
                                td { a href={ "/hosts/" (row.host.id) } { (host_label(row.host)) } }
                                td { (presence_badge(&row.host.id, row.host.online)) }
                                td { @match row.group { Some(g) => (g.name), None => span.muted { "no source groups" } } }
                                td {
                                    @match row.last {
                                        Some(job) => a href={ "/jobs/" (job.id) } { (outcome_badge(job)) },
                                        None => span.muted { @if row.group.is_some() { "never run" } @else { "—" } },
                                    }
                                }
                                td { @if let Some(at) = row.last.and_then(|j| j.finished_at) { time datetime=(format::rfc3339(at)) title=(format::time(at)) { (format::ago(at, now)) } } }
                                td { @if row.missed > 0 { (badge("missed", &row.missed.to_string())) } }
                            }
                        }
                    }
                }
                @if rows.len() > MAX_ROWS {
                    p.muted { "Showing the " (MAX_ROWS) " most urgent of " (rows.len()) " rows. " a href="/hosts" { "All hosts" } }
                }
            }
        }
        section {
            h2 { "Fleet calendar" }
            p.muted { "Worst backup outcome per host and day, last " (calendar::DAYS) " days (UTC)"
                @if data.hosts.len() > CALENDAR_HOSTS { ", the " (CALENDAR_HOSTS) " most urgent hosts" } "." }
            div.calendar-wrap { (cal.render()) }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Dashboard, "Dashboard", body),
    ))
}

/// A host's online/offline badge; `app.js` updates it on presence events.
pub(super) fn presence_badge(host_id: &str, online: bool) -> Markup {
    let (kind, text) = if online {
        ("online", "online")
    } else {
        ("offline", "offline")
    };
    html! { span class={ "badge badge-" (kind) } data-presence=(host_id) { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::models::Job;
    use crate::store::JobTrigger;

    fn host(id: &str, name: &str) -> HostBrief {
        HostBrief {
            id: id.into(),
            hostname: name.into(),
            display_name: None,
            online: true,
            last_seen_at: None,
        }
    }

    fn group(id: &str, host: &str, name: &str) -> SourceGroup {
        SourceGroup {
            id: id.into(),
            host_id: host.into(),
            name: name.into(),
            includes: "[]".into(),
            excludes: "[]".into(),
            retention_policy: None,
            retry_max: 0,
            retry_backoff_seconds: 300,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn job(host: &str, group: &str, status: JobStatus, finished: i64) -> Job {
        Job {
            id: format!("j-{host}-{group}"),
            host_id: host.into(),
            kind: JobKind::Backup,
            status,
            trigger: JobTrigger::Schedule,
            source_group_id: Some(group.into()),
            tag: None,
            includes: "[]".into(),
            excludes: "[]".into(),
            retention_policy: None,
            args: "[]".into(),
            schedule_id: None,
            scheduled_at: None,
            attempt: 1,
            first_attempt_id: None,
            retry_at: None,
            created_at: 0,
            dispatched_at: None,
            accepted_at: None,
            started_at: None,
            finished_at: Some(finished),
            exit_code: None,
            error: None,
            warning: None,
            stats: None,
            progress: None,
            last_log_seq: 0,
        }
    }

    /// Failing rows come first, then missed, warnings, never-run and healthy ones.
    #[test]
    fn failing_and_missed_first() {
        let now = 100 * DAY_MS;
        let hosts = vec![
            host("a", "alpha"),
            host("b", "bravo"),
            host("c", "charlie"),
            host("d", "delta"),
        ];
        let groups = vec![
            group("ga", "a", "docs"),
            group("gb", "b", "docs"),
            group("gc", "c", "docs"),
        ];
        let latest = vec![
            job("a", "ga", JobStatus::Succeeded, now - 1000),
            job("b", "gb", JobStatus::Succeeded, now - DAY_MS),
            job("c", "gc", JobStatus::Failed, now - 1000),
        ];
        // bravo missed a run after its last backup; alpha's miss is older than its backup.
        let missed = vec![
            MissedRun {
                id: "m1".into(),
                host_id: "b".into(),
                schedule_id: "s".into(),
                scheduled_at: now - 1000,
                detected_at: now,
            },
            MissedRun {
                id: "m2".into(),
                host_id: "a".into(),
                schedule_id: "s".into(),
                scheduled_at: now - DAY_MS,
                detected_at: now,
            },
        ];
        let rows = status_rows(&hosts, &groups, &latest, &missed, now);
        let order: Vec<(&str, Severity)> = rows
            .iter()
            .map(|r| (r.host.hostname.as_str(), r.severity))
            .collect();
        assert_eq!(
            order,
            [
                ("charlie", Severity::Failed),
                ("bravo", Severity::Missed),
                ("delta", Severity::Never),
                ("alpha", Severity::Ok),
            ]
        );
        assert_eq!(rows[1].missed, 1);
        assert_eq!(rows[3].missed, 0);
    }
}
