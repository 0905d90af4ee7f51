//! The host page's plan: what is backed up and when. The source groups
//! (paths, excludes, retention, retries, with run-now and forget buttons)
//! and the schedules (their kind, croner's description and the next runs,
//! from [`crate::cron`]), each with its add / edit / delete forms for
//! operators.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::{api_path, job_button, Data, NEEDS_REPOSITORY};
use crate::cron::{CronExpr, NEXT_RUNS};
use crate::http::ui::layout::badge;
use crate::http::ui::{format, PageCtx};
use crate::protocol::RetentionPolicy;
use crate::store::models::{ScheduleWithGroups, SourceGroup};
use crate::store::ScheduleKind;

/// "last 7, daily 14, within 30d".
pub(in crate::http::ui) fn retention_text(policy: Option<&RetentionPolicy>) -> String {
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

/// The retention fields (`keep_last` … `keep_within`) of a group form,
/// filled from `policy` (also the policy form's groups).
pub(in crate::http::ui) fn retention_inputs(policy: Option<&RetentionPolicy>) -> Markup {
    let keep = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    html! {
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
                (retention_inputs(policy))
            }
            label.inline { input type="checkbox" name="prune_after_forget" checked[group.is_some_and(|g| g.prune_after_forget)]; " prune after each forget (restic forget --prune)" }
            fieldset {
                legend { "Retries of a failed backup" }
                label { "at most " input name="retry_max" type="number" min="0" max="10" value=(group.map_or(String::new(), |g| g.retry_max.to_string())); }
                label { "first back-off, seconds " input name="retry_backoff_seconds" type="number" min="0" value=(group.map_or(String::new(), |g| g.retry_backoff_seconds.to_string())); }
            }
            button type="submit" { @if group.is_some() { "Save source group" } @else { "Add source group" } }
        }
    }
}

pub(super) fn groups_section(ctx: &PageCtx, data: &Data) -> Markup {
    let host_id = &data.history.host.host.id;
    let blocked = data.setup.repository.is_none().then_some(NEEDS_REPOSITORY);
    html! {
        section #source-groups {
            h2 { "Source groups" }
            @if data.setup.groups.is_empty() {
                p.muted { "No source groups: nothing is backed up yet." }
            } @else {
                table #groups {
                    thead { tr { th { "Name" } th { "Paths" } th { "Excludes" } th { "Retention" } th { "Retries" } @if ctx.can_operate() { th { "Actions" } } } }
                    tbody {
                        @for g in &data.setup.groups {
                            tr data-group=(g.name) {
                                td { strong { (g.name) } }
                                td { @for p in &g.includes { code { (p) } br; } }
                                td { @for p in &g.excludes { code { (p) } br; } }
                                td { (retention_text(g.retention_policy.as_ref())) @if g.prune_after_forget { ", then prune" } }
                                td {
                                    @if g.retry_max == 0 { "none" }
                                    @else { (g.retry_max) ", first after " (format::duration_secs(u64::try_from(g.retry_backoff_seconds).unwrap_or(0))) }
                                }
                                @if ctx.can_operate() {
                                    td.actions {
                                        (job_button(host_id, "backup", Some(&g.name), "Run backup now", blocked))
                                        @if g.retention_policy.is_some() { (job_button(host_id, "forget", Some(&g.name), "Forget", blocked)) }
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
                details.edit #add-group open[data.setup.groups.is_empty()] {
                    summary { "Add a source group" }
                    (group_form(host_id, None))
                }
                details.edit #add-dump-group {
                    summary { "Add a dump group (a database)" }
                    (super::discovery::dump_group_form(host_id, &data.history.host.host.capabilities, "dg-new", None))
                }
            }
        }
    }
}

/// What a schedule of `kind` does, for its select option.
pub(in crate::http::ui) fn kind_text(kind: ScheduleKind) -> &'static str {
    match kind {
        ScheduleKind::Backup => "backup of its source groups",
        ScheduleKind::Forget => "forget by each group's retention",
        ScheduleKind::Prune => "prune the repository",
        ScheduleKind::Check => "check the repository (next data subset)",
        ScheduleKind::Drill => "restore drill",
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
            label for=(format!("{prefix}-kind")) { "Kind" }
            select id=(format!("{prefix}-kind")) name="kind" {
                @for kind in ScheduleKind::ALL {
                    option value=(kind.as_str()) selected[s.map_or(ScheduleKind::Backup, |s| s.schedule.kind) == *kind] { (kind_text(*kind)) }
                }
            }
            fieldset {
                legend { "Source groups (backup: required; forget, drill: none means all; prune, check: none)" }
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

pub(super) fn schedules_section(ctx: &PageCtx, data: &Data) -> Markup {
    let host_id = &data.history.host.host.id;
    let now = DateTime::from_timestamp_millis(ctx.now).unwrap_or_default();
    html! {
        section #schedules {
            h2 { "Schedules" }
            @if data.setup.schedules.is_empty() {
                p.muted { "No schedules: backups, forgets, prunes, checks and drills only run when started by hand." }
            } @else {
                table #schedule-list {
                    thead { tr { th { "Cron (UTC)" } th { "Kind" } th { "Meaning" } th { "Source groups" } th { "Next runs" } @if ctx.can_operate() { th { "Actions" } } } }
                    tbody {
                        @for s in &data.setup.schedules {
                            @let (description, next) = cron_info(s, now);
                            tr data-schedule-id=(s.schedule.id) {
                                td { code { (s.schedule.cron_expr) } @if !s.schedule.enabled { " " (badge("offline", "disabled")) } }
                                td.schedule-kind { (s.schedule.kind.as_str()) }
                                td { (description) }
                                td {
                                    @for (i, g) in s.groups.iter().enumerate() { @if i > 0 { ", " } (g.name) }
                                    @if s.groups.is_empty() && matches!(s.schedule.kind, ScheduleKind::Forget | ScheduleKind::Drill) { span.muted { "all" } }
                                }
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
                                            (schedule_form(host_id, &data.setup.groups, Some(s)))
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
                    (schedule_form(host_id, &data.setup.groups, None))
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
}
