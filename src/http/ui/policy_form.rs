//! The create / edit form of a policy (the Policies page and a policy's
//! page). `app.js` builds the `PolicyRequest` JSON from it (the `policy`
//! form: name, selector lines, repository, one fieldset per source group
//! and per schedule, blank ones left out) and sends it to
//! `POST /api/v1/policies` or `PUT /api/v1/policies/{id}`. The server
//! validates; its error (naming the field, e.g.
//! `schedules[0].cron_expr: …`) is shown in the form's `[data-form-error]`
//! box while everything typed stays in the fields. The policy's health
//! checks use [`super::health_form`]'s fields. "Add another source
//! group / schedule" copies the last fieldset, emptied; the fields sit
//! inside their labels (no ids), so a copy is as good as the original.

use maud::{html, Markup};

use super::host::groups::{kind_text, retention_inputs};
use crate::store::models::Repository;
use crate::store::policies::{Policy, PolicyGroup, PolicySchedule};
use crate::store::ScheduleKind;

/// The selector as text: one `key=value` per line.
pub(super) fn selector_lines(p: &Policy) -> String {
    p.selector
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One source group's fields (blank for `None`).
fn group_fieldset(g: Option<&PolicyGroup>) -> Markup {
    let policy = g.and_then(|g| g.retention_policy.as_ref());
    html! {
        fieldset.policy-group data-policy-group {
            legend { "Source group" }
            label { "Name (also the restic tag) "
                input name="name" type="text" pattern="[A-Za-z0-9._-]{1,64}" value=(g.map_or("", |g| g.name.as_str())); }
            label { "Paths to back up, one per line "
                textarea name="includes" rows="3" { (g.map(|g| g.includes.join("\n")).unwrap_or_default()) } }
            label { "Exclude patterns, one per line "
                textarea name="excludes" rows="2" { (g.map(|g| g.excludes.join("\n")).unwrap_or_default()) } }
            fieldset {
                legend { "Retention (empty: keep everything)" }
                (retention_inputs(policy))
            }
            label.inline { input type="checkbox" name="prune_after_forget" checked[g.is_some_and(|g| g.prune_after_forget)]; " prune after each forget" }
        }
    }
}

/// One schedule's fields (blank for `None`).
fn schedule_fieldset(s: Option<&PolicySchedule>) -> Markup {
    let kind = s.map_or(ScheduleKind::Backup, |s| s.kind);
    html! {
        fieldset.policy-schedule data-policy-schedule {
            legend { "Schedule" }
            label { "Cron expression (minute hour day month weekday, UTC) "
                input name="cron_expr" type="text" placeholder="0 2 * * *" value=(s.map_or("", |s| s.cron_expr.as_str())); }
            label { "Kind "
                select name="kind" {
                    @for k in ScheduleKind::ALL {
                        option value=(k.as_str()) selected[kind == *k] { (kind_text(*k)) }
                    }
                }
            }
            label { "Source groups of this policy, comma-separated "
                input name="source_groups" type="text" placeholder="system, home" value=(s.map(|s| s.source_groups.join(", ")).unwrap_or_default()); }
            label.inline { input type="checkbox" name="enabled" checked[s.is_none_or(|s| s.enabled)]; " enabled" }
        }
    }
}

/// The form: create when `policy` is `None`, else edit it.
pub(super) fn policy_form(policy: Option<&Policy>, repositories: &[Repository]) -> Markup {
    let (method, path) = match policy {
        Some(p) => ("PUT", format!("/api/v1/policies/{}", p.id)),
        None => ("POST", "/api/v1/policies".to_owned()),
    };
    let groups: Vec<Option<&PolicyGroup>> = policy
        .map(|p| p.source_groups.iter().map(Some).collect())
        .unwrap_or_default();
    let schedules: Vec<Option<&PolicySchedule>> = policy
        .map(|p| p.schedules.iter().map(Some).collect())
        .unwrap_or_default();
    let repository = policy.and_then(|p| p.repository_id.as_deref());
    html! {
        form #policy-form data-change data-form="policy" data-method=(method) data-path=(path)
            data-then="open" data-href="/policies/" {
            p.error.form-error #policy-error data-form-error role="alert" {}
            label { "Name "
                input #policy-name name="policy_name" type="text" required value=(policy.map_or("", |p| p.name.as_str())); }
            label { "Hosts with these labels (key=value, one per line; empty: every host) "
                textarea #policy-selector name="selector" rows="2" placeholder="env=prod" { (policy.map(selector_lines).unwrap_or_default()) } }
            label { "Repository "
                select #policy-repository name="repository_id" {
                    option value="" selected[repository.is_none()] { "each host's own" }
                    @for r in repositories {
                        option value=(r.id) selected[repository == Some(r.id.as_str())] { (r.name.as_deref().unwrap_or(&r.id)) }
                    }
                }
            }
            h3 { "Source groups (a blank one is left out)" }
            div #policy-groups {
                @for g in &groups { (group_fieldset(*g)) }
                (group_fieldset(None))
            }
            button type="button" data-add-fieldset="policy-groups" { "Add another source group" }
            h3 { "Schedules (a blank one is left out)" }
            div #policy-schedules {
                @for s in &schedules { (schedule_fieldset(*s)) }
                (schedule_fieldset(None))
            }
            button type="button" data-add-fieldset="policy-schedules" { "Add another schedule" }
            h3 { "Health checks every matching host runs (a blank one is left out; a host's own check of the same name wins)" }
            (super::health_form::checks_inputs("policy-health-checks", policy.map_or(&[][..], |p| p.health_checks.as_slice())))
            div.form-actions {
                button #policy-submit type="submit" { @if policy.is_some() { "Save policy" } @else { "Create policy" } }
            }
        }
    }
}
