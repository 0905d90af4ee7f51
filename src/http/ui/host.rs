//! `GET /hosts/{id}`: one host. Versions, last seen, schedule version
//! (current, pushed, acknowledged), the repository (secrets only as "set"
//! / "not set"), source groups, schedules (croner's description and the
//! next five runs, from [`crate::cron`]), recent jobs,
//! snapshots, repository statistics with the size-over-time chart, and
//! missed runs. Operators also get the forms and buttons: repository
//! settings, add/edit/delete groups and schedules, run backup now and
//! forget per group, init, prune, check and unlock, the display name;
//! admins can revoke the host.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde_json::json;

use super::chart::{self, Sample};
use super::dashboard::{outcome_badge, presence_badge};
use super::layout::{self, badge, Nav};
use super::{format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::cron::{CronExpr, NEXT_RUNS};
use crate::http::error::{with_conn, ApiError};
use crate::http::extract::live_host;
use crate::http::AppState;
use crate::protocol::RetentionPolicy;
use crate::store::hosts::HostWithVersion;
use crate::store::models::{
    Job, MissedRun, RepoStats, Repository, ScheduleWithGroups, Snapshot, SourceGroup,
};
use crate::store::{self, JobStatus};

/// Recent jobs listed.
const RECENT_JOBS: i64 = 25;
/// Snapshots listed.
const SNAPSHOTS: i64 = 200;
/// Repository statistics samples charted.
const STATS_SAMPLES: i64 = 1000;
/// How far back the chart and the missed runs go.
const HISTORY_MS: i64 = 90 * 86_400_000;
/// Missed runs listed.
const MISSED_RUNS: i64 = 20;

/// Everything the page shows, read in one blocking call.
struct Data {
    host: HostWithVersion,
    repository: Option<Repository>,
    groups: Vec<SourceGroup>,
    schedules: Vec<ScheduleWithGroups>,
    jobs: Vec<Job>,
    snapshots: Vec<Snapshot>,
    snapshot_total: i64,
    stats: Vec<RepoStats>,
    missed: Vec<MissedRun>,
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let id = path.into_inner();
    let since = ctx.now - HISTORY_MS;
    let data = with_conn(&state.pool, move |conn| {
        live_host(conn, &id)?;
        let host = store::hosts::get_with_version(conn, &id)?
            .ok_or_else(|| ApiError::not_found(&format!("host {id}")))?;
        let jobs = store::jobs::list(
            conn,
            &store::jobs::JobFilter {
                host_id: Some(id.clone()),
                limit: RECENT_JOBS,
                ..Default::default()
            },
        )?
        .items;
        let snapshots = store::api_queries::snapshots_page(conn, &id, SNAPSHOTS, 0)?;
        let missed = store::missed_runs::list(
            conn,
            &store::missed_runs::MissedRunFilter {
                host_id: Some(id.clone()),
                since: Some(since),
                limit: MISSED_RUNS,
                ..Default::default()
            },
        )?
        .items;
        Ok(Data {
            repository: store::repositories::get_for_host(conn, &id)?,
            groups: store::source_groups::list_for_host(conn, &id)?,
            schedules: store::schedules::list_with_groups_for_host(conn, &id)?,
            stats: store::repo_stats::list_for_host(conn, &id, Some(since), STATS_SAMPLES)?,
            snapshot_total: snapshots.total,
            snapshots: snapshots.items,
            jobs,
            missed,
            host,
        })
    })
    .await?;

    let host = &data.host.host;
    let title = host.display_name.as_deref().unwrap_or(&host.hostname);
    let body = html! {
        div #host-page data-host-id=(host.id) {
            (facts(&ctx, &data))
            (repository_section(&ctx, &data))
            (groups_section(&ctx, &data))
            (schedules_section(&ctx, &data))
            (jobs_section(&ctx, &data.jobs))
            (snapshots_section(&data))
            (stats_section(&data.stats))
            (missed_section(&data))
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Hosts, title, body),
    ))
}

/// `/api/v1/hosts/{id}` + `rest`.
fn api_path(host_id: &str, rest: &str) -> String {
    format!("/api/v1/hosts/{host_id}{rest}")
}

/// A button that creates a job of `kind` (on `group`, if given) and
/// opens its page.
fn job_button(host_id: &str, kind: &str, group: Option<&str>, label: &str) -> Markup {
    let body = match group {
        Some(g) => json!({"kind": kind, "source_group": g}),
        None => json!({"kind": kind}),
    };
    let id = match group {
        Some(g) => format!("run-{kind}-{g}"),
        None => format!("run-{kind}"),
    };
    html! {
        button type="button" id=(id) data-change data-method="POST"
            data-path=(api_path(host_id, "/jobs")) data-body=(body.to_string()) data-then="job" {
            (label)
        }
    }
}

fn facts(ctx: &PageCtx, data: &Data) -> Markup {
    let host = &data.host.host;
    let version = data.host.schedule.as_ref();
    html! {
        section #host-facts {
            dl.facts {
                dt { "Status" } dd { (presence_badge(&host.id, host.online)) }
                dt { "Host name" } dd #host-hostname { (host.hostname) }
                @if let Some(name) = &host.display_name { dt { "Display name" } dd { (name) } }
                dt { "OS" } dd { (host.os) "/" (host.arch) }
                dt { "Agent version" } dd { (host.agent_version.as_deref().unwrap_or("—")) }
                dt { "restic version" } dd { (host.restic_version.as_deref().unwrap_or("—")) }
                dt { "Last seen" } dd {
                    @match host.last_seen_at {
                        Some(at) => { time datetime=(format::rfc3339(at)) { (format::time(at)) } " (" (format::ago(at, ctx.now)) ")" }
                        None => "never",
                    }
                }
                dt { "Enrolled" } dd { (format::time(host.enrolled_at)) }
                dt { "Schedule version" } dd #schedule-version {
                    @match version {
                        Some(v) => {
                            "current " (v.version) " · pushed " (v.pushed_version) " · acknowledged " (v.acked_version) " "
                            @if v.acked_version >= v.version { (badge("succeeded", "agent up to date")) }
                            @else { (badge("warning", "waiting for the agent")) }
                        }
                        None => "—",
                    }
                }
            }
            @if ctx.can_operate() {
                details.edit #rename-host {
                    summary { "Change the display name" }
                    form #host-name-form data-change data-form="host-name" data-method="PATCH"
                        data-path=(api_path(&host.id, "")) data-then="reload" {
                        label for="display-name" { "Display name (empty: show the host name)" }
                        input #display-name name="display_name" type="text" maxlength="255"
                            value=(host.display_name.as_deref().unwrap_or(""));
                        button type="submit" { "Save name" }
                    }
                }
            }
            @if ctx.is_admin() {
                div.actions {
                    button #revoke-host type="button" data-change data-method="DELETE" data-path=(api_path(&host.id, ""))
                        data-confirm={ "Revoke " (host.hostname) "? Its agent token stops working at once." }
                        data-then="go" data-href="/hosts" { "Revoke host" }
                }
            }
        }
    }
}

fn set_or_not(set: bool) -> Markup {
    if set {
        badge("set", "set")
    } else {
        badge("not-set", "not set")
    }
}

fn repository_section(ctx: &PageCtx, data: &Data) -> Markup {
    let host_id = &data.host.host.id;
    let repo = data.repository.as_ref();
    html! {
        section #repository {
            h2 { "Repository" }
            @match repo {
                Some(r) => {
                    dl.facts {
                        dt { "URL" } dd #repo-url { code { (r.url) } }
                        dt { "User name" } dd { (r.username.as_deref().unwrap_or("—")) }
                        dt { "Password" } dd #repo-password-set { (set_or_not(r.password_set())) }
                        dt { "Credential" } dd #repo-credential-set { (set_or_not(r.credential_set())) }
                        dt { "Changed" } dd { (format::time(r.updated_at)) }
                    }
                }
                None => p.muted #repo-none { "No repository configured." },
            }
            @if ctx.can_operate() {
                div.actions {
                    (job_button(host_id, "init", None, "Init repository"))
                    (job_button(host_id, "prune", None, "Prune"))
                    (job_button(host_id, "check", None, "Check"))
                    (job_button(host_id, "unlock", None, "Unlock"))
                }
                details.edit open[repo.is_none()] {
                    summary { @if repo.is_some() { "Change repository settings" } @else { "Configure the repository" } }
                    form #repository-form data-change data-form="repository" data-method="PUT"
                        data-path=(api_path(host_id, "/repository")) data-then="reload" {
                        label for="repo-url-input" { "URL" }
                        input #repo-url-input name="url" type="text" required value=(repo.map_or("", |r| r.url.as_str()))
                            placeholder="/srv/restic or s3:https://…";
                        label for="repo-username" { "User name (optional)" }
                        input #repo-username name="username" type="text" autocomplete="off" value=(repo.and_then(|r| r.username.as_deref()).unwrap_or(""));
                        label for="repo-password" { "Password" @if repo.is_some_and(|r| r.password_set()) { " (leave empty to keep)" } }
                        input #repo-password name="password" type="password" autocomplete="new-password";
                        label for="repo-credential" { "Credential (optional; leave empty to keep)" }
                        input #repo-credential name="credential" type="password" autocomplete="new-password";
                        button type="submit" { "Save repository" }
                    }
                }
            }
        }
    }
}

/// "last 7, daily 14, within 30d".
fn retention_text(policy: Option<&RetentionPolicy>) -> String {
    let Some(p) = policy else {
        return "keep everything".to_owned();
    };
    let mut parts: Vec<String> = [
        ("last", p.keep_last),
        ("hourly", p.keep_hourly),
        ("daily", p.keep_daily),
        ("weekly", p.keep_weekly),
        ("monthly", p.keep_monthly),
        ("yearly", p.keep_yearly),
    ]
    .into_iter()
    .filter_map(|(what, n)| n.map(|n| format!("{what} {n}")))
    .collect();
    if let Some(within) = &p.keep_within {
        parts.push(format!("within {within}"));
    }
    if parts.is_empty() {
        "keep everything".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The add / edit form of a source group.
fn group_form(host_id: &str, group: Option<&SourceGroup>) -> Markup {
    let (method, path, prefix) = match group {
        Some(g) => (
            "PUT",
            api_path(host_id, &format!("/source-groups/{}", g.id)),
            format!("g-{}", g.id),
        ),
        None => (
            "POST",
            api_path(host_id, "/source-groups"),
            "g-new".to_owned(),
        ),
    };
    let policy = group.and_then(|g| g.retention_policy.as_ref());
    let keep = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    let field = |name: &str| format!("{prefix}-{name}");
    html! {
        form.group-form data-change data-form="source-group" data-method=(method) data-path=(path) data-then="reload"
            id=(format!("{prefix}-form")) {
            label for=(field("name")) { "Name (also the restic tag)" }
            input id=(field("name")) name="name" type="text" required pattern="[A-Za-z0-9._-]{1,64}"
                value=(group.map_or("", |g| g.name.as_str()));
            label for=(field("includes")) { "Paths to back up, one per line" }
            textarea id=(field("includes")) name="includes" rows="3" required { (group.map(|g| g.includes.join("\n")).unwrap_or_default()) }
            label for=(field("excludes")) { "Exclude patterns, one per line" }
            textarea id=(field("excludes")) name="excludes" rows="2" { (group.map(|g| g.excludes.join("\n")).unwrap_or_default()) }
            fieldset {
                legend { "Retention (empty: keep everything)" }
                div.grid {
                    @for (name, label, value) in [
                        ("keep_last", "last", keep(policy.and_then(|p| p.keep_last))),
                        ("keep_hourly", "hourly", keep(policy.and_then(|p| p.keep_hourly))),
                        ("keep_daily", "daily", keep(policy.and_then(|p| p.keep_daily))),
                        ("keep_weekly", "weekly", keep(policy.and_then(|p| p.keep_weekly))),
                        ("keep_monthly", "monthly", keep(policy.and_then(|p| p.keep_monthly))),
                        ("keep_yearly", "yearly", keep(policy.and_then(|p| p.keep_yearly))),
                    ] {
                        label { (label) " " input name=(name) type="number" min="0" step="1" value=(value); }
                    }
                    label { "within " input name="keep_within" type="text" placeholder="30d" value=(policy.and_then(|p| p.keep_within.as_deref()).unwrap_or("")); }
                }
            }
            fieldset {
                legend { "Retries of a failed backup" }
                label { "at most " input name="retry_max" type="number" min="0" max="10" value=(group.map_or(String::new(), |g| g.retry_max.to_string())); }
                label { "first back-off, seconds " input name="retry_backoff_seconds" type="number" min="0" value=(group.map_or(String::new(), |g| g.retry_backoff_seconds.to_string())); }
            }
            button type="submit" { @if group.is_some() { "Save source group" } @else { "Add source group" } }
        }
    }
}

fn groups_section(ctx: &PageCtx, data: &Data) -> Markup {
    let host_id = &data.host.host.id;
    html! {
        section #source-groups {
            h2 { "Source groups" }
            @if data.groups.is_empty() {
                p.muted { "No source groups: nothing is backed up yet." }
            } @else {
                table #groups {
                    thead { tr { th { "Name" } th { "Paths" } th { "Excludes" } th { "Retention" } th { "Retries" } @if ctx.can_operate() { th { "Actions" } } } }
                    tbody {
                        @for g in &data.groups {
                            tr data-group=(g.name) {
                                td { strong { (g.name) } }
                                td { @for p in &g.includes { code { (p) } br; } }
                                td { @for p in &g.excludes { code { (p) } br; } }
                                td { (retention_text(g.retention_policy.as_ref())) }
                                td {
                                    @if g.retry_max == 0 { "none" }
                                    @else { (g.retry_max) ", first after " (format::duration_secs(u64::try_from(g.retry_backoff_seconds).unwrap_or(0))) }
                                }
                                @if ctx.can_operate() {
                                    td.actions {
                                        (job_button(host_id, "backup", Some(&g.name), "Run backup now"))
                                        @if g.retention_policy.is_some() { (job_button(host_id, "forget", Some(&g.name), "Forget")) }
                                        button type="button" data-change data-method="DELETE"
                                            data-path=(api_path(host_id, &format!("/source-groups/{}", g.id)))
                                            data-confirm={ "Delete source group " (g.name) "?" } data-then="reload" { "Delete" }
                                        details.edit {
                                            summary { "Edit" }
                                            (group_form(host_id, Some(g)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if ctx.can_operate() {
                details.edit #add-group open[data.groups.is_empty()] {
                    summary { "Add a source group" }
                    (group_form(host_id, None))
                }
            }
        }
    }
}

/// croner's description and the next runs of a schedule.
fn cron_info(s: &ScheduleWithGroups, now: DateTime<Utc>) -> (String, Vec<DateTime<Utc>>) {
    match CronExpr::parse(&s.schedule.cron_expr) {
        Ok(cron) => {
            let next = if s.schedule.enabled {
                cron.next_runs(now, NEXT_RUNS)
            } else {
                Vec::new()
            };
            (cron.describe(), next)
        }
        Err(e) => (format!("invalid: cron_expr: {e}"), Vec::new()),
    }
}

fn schedule_form(host_id: &str, groups: &[SourceGroup], s: Option<&ScheduleWithGroups>) -> Markup {
    let (method, path, prefix) = match s {
        Some(s) => (
            "PUT",
            api_path(host_id, &format!("/schedules/{}", s.schedule.id)),
            format!("s-{}", s.schedule.id),
        ),
        None => ("POST", api_path(host_id, "/schedules"), "s-new".to_owned()),
    };
    let chosen = |name: &str| s.is_some_and(|s| s.groups.iter().any(|g| g.name == name));
    html! {
        form.schedule-form data-change data-form="schedule" data-method=(method) data-path=(path) data-then="reload"
            id=(format!("{prefix}-form")) {
            label for=(format!("{prefix}-cron")) { "Cron expression (minute hour day month weekday, UTC)" }
            input id=(format!("{prefix}-cron")) name="cron_expr" type="text" required placeholder="0 2 * * *"
                value=(s.map_or("", |s| s.schedule.cron_expr.as_str()));
            fieldset {
                legend { "Source groups" }
                @if groups.is_empty() { p.muted { "Add a source group first." } }
                @for g in groups {
                    label.inline { input type="checkbox" name="source_groups" value=(g.name) checked[chosen(&g.name)]; " " (g.name) }
                }
            }
            label.inline { input type="checkbox" name="enabled" checked[s.is_none_or(|s| s.schedule.enabled)]; " enabled" }
            button type="submit" { @if s.is_some() { "Save schedule" } @else { "Add schedule" } }
        }
    }
}

fn schedules_section(ctx: &PageCtx, data: &Data) -> Markup {
    let host_id = &data.host.host.id;
    let now = DateTime::from_timestamp_millis(ctx.now).unwrap_or_default();
    html! {
        section #schedules {
            h2 { "Schedules" }
            @if data.schedules.is_empty() {
                p.muted { "No schedules: backups only run when started by hand." }
            } @else {
                table #schedule-list {
                    thead { tr { th { "Cron (UTC)" } th { "Meaning" } th { "Source groups" } th { "Next runs" } @if ctx.can_operate() { th { "Actions" } } } }
                    tbody {
                        @for s in &data.schedules {
                            @let (description, next) = cron_info(s, now);
                            tr data-schedule-id=(s.schedule.id) {
                                td { code { (s.schedule.cron_expr) } @if !s.schedule.enabled { " " (badge("offline", "disabled")) } }
                                td { (description) }
                                td { @for (i, g) in s.groups.iter().enumerate() { @if i > 0 { ", " } (g.name) } }
                                td.next-runs {
                                    @for t in &next { time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (t.format("%Y-%m-%d %H:%M UTC")) } br; }
                                    @if next.is_empty() { span.muted { "—" } }
                                }
                                @if ctx.can_operate() {
                                    td.actions {
                                        button type="button" data-change data-method="DELETE"
                                            data-path=(api_path(host_id, &format!("/schedules/{}", s.schedule.id)))
                                            data-confirm="Delete this schedule?" data-then="reload" { "Delete" }
                                        details.edit {
                                            summary { "Edit" }
                                            (schedule_form(host_id, &data.groups, Some(s)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if ctx.can_operate() {
                details.edit #add-schedule {
                    summary { "Add a schedule" }
                    (schedule_form(host_id, &data.groups, None))
                }
            }
        }
    }
}

/// A table of jobs (also used by nothing else; kept here with the page).
fn jobs_section(ctx: &PageCtx, jobs: &[Job]) -> Markup {
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
                                td { @if j.status.is_terminal() { (outcome_badge(j)) } @else { (badge(j.status.as_str(), j.status.as_str())) } }
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

fn snapshots_section(data: &Data) -> Markup {
    html! {
        section #snapshots {
            h2 { "Snapshots" }
            @if data.snapshots.is_empty() {
                p.muted #no-snapshots { "No snapshots reported yet." }
            } @else {
                p.muted { (data.snapshot_total) " snapshots in the agent's last report"
                    @if data.snapshot_total > SNAPSHOTS { ", the newest " (SNAPSHOTS) " shown" } "." }
                table #snapshot-list {
                    thead { tr { th { "ID" } th { "Time" } th { "Paths" } th { "Tags" } th { "Size" } th { "Files" } } }
                    tbody {
                        @for s in &data.snapshots {
                            tr data-snapshot=(s.short_id) {
                                td { code title=(s.snapshot_id) { (s.short_id) } }
                                td { (format::time(s.time)) }
                                td { @for p in &s.paths { code { (p) } br; } }
                                td.tags { @for t in &s.tags { span.tag { (t) } " " } }
                                td { (s.size_bytes.map(format::bytes_i64).unwrap_or_else(|| "—".to_owned())) }
                                td { (s.file_count.map(|n| n.to_string()).unwrap_or_else(|| "—".to_owned())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn stats_section(stats: &[RepoStats]) -> Markup {
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

fn missed_section(data: &Data) -> Markup {
    html! {
        section #missed-runs {
            h2 { "Missed runs (last 90 days)" }
            @if data.missed.is_empty() {
                p.muted { "None." }
            } @else {
                ul {
                    @for m in &data.missed {
                        @let cron = data.schedules.iter().find(|s| s.schedule.id.as_str() == m.schedule_id).map(|s| s.schedule.cron_expr.as_str());
                        li { (badge("missed", "missed")) " " (format::time(m.scheduled_at))
                            @if let Some(c) = cron { " — schedule " code { (c) } } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retention policies read as short text; none means keep everything.
    #[test]
    fn retention_texts() {
        assert_eq!(retention_text(None), "keep everything");
        let p = RetentionPolicy {
            keep_last: Some(7),
            keep_daily: Some(14),
            keep_within: Some("30d".into()),
            ..Default::default()
        };
        assert_eq!(retention_text(Some(&p)), "last 7, daily 14, within 30d");
        assert_eq!(
            retention_text(Some(&RetentionPolicy::default())),
            "keep everything"
        );
    }

    /// Job buttons carry the API path and a JSON body with the kind and group, escaped.
    #[test]
    fn job_buttons() {
        let html = job_button("h1", "backup", Some("docs"), "Run backup now").into_string();
        assert!(
            html.contains(r#"data-path="/api/v1/hosts/h1/jobs""#),
            "{html}"
        );
        assert!(html.contains(
            r#"data-body="{&quot;kind&quot;:&quot;backup&quot;,&quot;source_group&quot;:&quot;docs&quot;}""#
        ));
        assert!(html.contains("data-change"));
    }
}
