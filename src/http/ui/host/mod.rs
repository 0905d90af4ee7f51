//! `GET /hosts/{id}`: one host. Versions, last seen, schedule version
//! (current, pushed, acknowledged), the repository (secrets only as "set"
//! / "not set"), source groups, schedules (croner's description and the
//! next five runs, from [`crate::cron`]), recent jobs,
//! snapshots, repository statistics with the size-over-time chart, and
//! missed runs. Operators also get the forms and buttons: repository
//! settings, add/edit/delete groups and schedules, run backup now and
//! forget per group, init, prune, check and unlock, the display name;
//! admins can revoke the host.
//!
//! The page's sections: [`groups`] (source groups and schedules),
//! [`health`] (service health checks and host metrics), [`discovery`]
//! (the Docker database containers, with "Add dump group") and
//! [`history`] (jobs, snapshots, statistics, missed runs), [`verify`]
//! (the last restore drill and the check coverage); the facts and
//! the repository are here.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::future;
use maud::{html, Markup};
use serde_json::json;

use super::dashboard::presence_badge;
use super::hosts::agent_version;
use super::layout::{self, badge, Nav};
use super::{format, html_response, PageCtx, PageReader, UiError};
use crate::agent_release::AgentRelease;
use crate::auth::Role;
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::store::hosts::HostWithVersion;
use crate::store::models::{
    Job, MissedRun, RepoStats, Repository, ScheduleWithGroups, Snapshot, SourceGroup,
};
use crate::store::{self, JobKind, JobStatus};

mod discovery;
pub(super) mod groups;
mod health;
mod history;
mod verify;

use groups::{groups_section, schedules_section};
use history::{jobs_section, missed_section, snapshots_section, stats_section};
use verify::{verification_section, Verification};

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

/// Everything the page shows, read in four groups on four connections
/// at once (see [`page`]).
struct Data {
    history: History,
    watch: Watch,
    verification: Verification,
    setup: Setup,
    reports: Reports,
    /// Every check the host runs, its policies' included (its own are
    /// `watch.own_health_checks`, for the edit form).
    health_checks: Vec<store::health::EffectiveCheck>,
}

/// The host and its history.
struct History {
    host: HostWithVersion,
    jobs: Vec<Job>,
    /// `waiting_for` of the queued jobs among `jobs` that wait for a
    /// lease on a shared repository, by job id.
    waiting: HashMap<String, String>,
    snapshots: Vec<Snapshot>,
    snapshot_total: i64,
    missed: Vec<MissedRun>,
}

/// Health checks and metrics.
struct Watch {
    /// The host's own checks (its edit form).
    own_health_checks: Vec<crate::protocol::HealthCheckSpec>,
    health: Vec<store::health::HealthResultRow>,
    metrics: Vec<store::host_metrics::MetricPoint>,
}

/// Configuration: repository, groups, schedules.
struct Setup {
    repository: Option<Repository>,
    groups: Vec<SourceGroup>,
    schedules: Vec<ScheduleWithGroups>,
}

/// What the agent last reported of its repository and its containers.
struct Reports {
    /// The repository's statistics over [`HISTORY_MS`], for the chart.
    stats: Vec<RepoStats>,
    /// The latest Docker discovery report, if the agent sent one.
    discovery: Option<store::discovery::DiscoveryRow>,
}

/// The first group's reads: the host's row with what hangs off it one to
/// one, and what follows from it.
struct HostReads {
    row: store::host_state::HostPageRow,
    own_health_checks: Vec<crate::protocol::HealthCheckSpec>,
    health_checks: Vec<store::health::EffectiveCheck>,
    verification: Verification,
}

pub(super) async fn page(
    state: web::Data<AppState>,
    page: PageReader,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let id = path.into_inner();
    let since = page.now - HISTORY_MS;
    let metrics_since = page.now - health::METRICS_MS;
    // Four groups of reads on four connections at once, none more than
    // three statements long: on PostgreSQL each statement is a round trip
    // and costs both sides CPU (about 60 µs here), and the page's
    // nineteen one after the other were most of its time (BENCHMARKS.md).
    // Six one-row reads are one statement (`host_state::for_page`), and
    // the policies with checks come from a memo per policy revision. The
    // groups are independent; a host that is gone fails the first group,
    // and the others' empty reads are dropped.
    let host_reads = with_conn(&state.pool, {
        let id = id.clone();
        move |conn| {
            let row = match store::host_state::for_page(conn, &id)? {
                Some(row) if row.host.host.revoked_at.is_none() => row,
                _ => return Err(ApiError::not_found(&format!("host {id}"))),
            };
            let own_checks = row.own_checks.as_deref();
            Ok(HostReads {
                own_health_checks: store::health::parse_checks(own_checks)?,
                health_checks: store::health::effective_checks_of(
                    conn,
                    own_checks,
                    &row.host.host.labels,
                    row.policy_revision,
                )?,
                verification: verify::load(conn, &id, row.check_subsets)?,
                row,
            })
        }
    });
    let history = with_conn(&state.pool, {
        let id = id.clone();
        move |conn| {
            let jobs = store::jobs::list(
                conn,
                &store::jobs::JobFilter {
                    host_id: Some(id.clone()),
                    limit: RECENT_JOBS,
                    ..Default::default()
                },
            )?
            .items;
            let queued: Vec<&str> = jobs
                .iter()
                .filter(|j| j.status == JobStatus::Queued)
                .map(|j| j.id.as_str())
                .collect();
            let waiting: HashMap<String, String> = store::leases::waiting_for(conn, &queued)?
                .into_iter()
                .collect();
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
            Ok((jobs, waiting, snapshots, missed))
        }
    });
    let watch = with_conn(&state.pool, {
        let id = id.clone();
        move |conn| {
            Ok((
                store::health::latest_for_host(conn, &id)?,
                store::host_metrics::list_for_host(
                    conn,
                    &id,
                    metrics_since,
                    health::METRIC_POINTS,
                )?,
                store::repo_stats::list_for_host(conn, &id, Some(since), STATS_SAMPLES)?,
            ))
        }
    });
    let setup = with_conn(&state.pool, move |conn| {
        Ok((
            store::source_groups::list_for_host(conn, &id)?,
            store::schedules::list_with_groups_for_host(conn, &id)?,
        ))
    });
    // Alongside the caller's check (`PageReader`): viewers and up may see it.
    let (ctx, (host_reads, (jobs, waiting, snapshots, missed), (health, metrics, stats), setup)) =
        page.alongside(future::try_join4(host_reads, history, watch, setup))
            .await?;
    ctx.require(Role::Viewer)?;
    let HostReads {
        row,
        own_health_checks,
        health_checks,
        verification,
    } = host_reads;
    let (groups, schedules) = setup;
    let data = Data {
        history: History {
            host: row.host,
            jobs,
            waiting,
            snapshot_total: snapshots.total,
            snapshots: snapshots.items,
            missed,
        },
        watch: Watch {
            own_health_checks,
            health,
            metrics,
        },
        verification,
        setup: Setup {
            repository: row.repository,
            groups,
            schedules,
        },
        reports: Reports {
            stats,
            discovery: row.discovery,
        },
        health_checks,
    };

    let host = &data.history.host.host;
    let title = host.display_name.as_deref().unwrap_or(&host.hostname);
    let body = html! {
        div #host-page data-host-id=(host.id) {
            (facts(&ctx, &data, &state.actors.config.agent_release))
            (first_steps(&ctx, &data))
            (repository_section(&ctx, &data))
            (health::health_section(&ctx, &data))
            (health::metrics_section(&data.watch.metrics))
            (groups_section(&ctx, &data))
            (discovery::discovery_section(&ctx, &data))
            (schedules_section(&ctx, &data))
            (jobs_section(&ctx, &data.history.jobs, &data.history.waiting))
            (snapshots_section(&data))
            (verification_section(&ctx, &data))
            (stats_section(&data.reports.stats))
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

/// Why a job cannot run yet: no repository configured.
const NEEDS_REPOSITORY: &str = "Configure the repository first: this needs it.";

/// A button that creates a job of `kind` (on `group`, if given) and
/// opens its page; disabled, saying why in its title, when `blocked`
/// names what is missing.
fn job_button(
    host_id: &str,
    kind: &str,
    group: Option<&str>,
    label: &str,
    blocked: Option<&str>,
) -> Markup {
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
            data-path=(api_path(host_id, "/jobs")) data-body=(body.to_string()) data-then="job"
            disabled[blocked.is_some()] title=[blocked] {
            (label)
        }
    }
}

fn facts(ctx: &PageCtx, data: &Data, release: &AgentRelease) -> Markup {
    let host = &data.history.host.host;
    let version = data.history.host.schedule.as_ref();
    html! {
        section #host-facts {
            dl.facts {
                dt { "Status" } dd { (presence_badge(&host.id, host.online)) }
                dt { "Host name" } dd #host-hostname { (host.hostname) }
                @if let Some(name) = &host.display_name { dt { "Display name" } dd { (name) } }
                dt { "OS" } dd { (host.os) "/" (host.arch) }
                dt { "Agent version" } dd #agent-version { (agent_version(host.agent_version.as_deref(), release)) }
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
                dt { "Repository settings" } dd #config-version { (config_state(ctx, data)) }
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
                    button #revoke-host.danger type="button" data-change data-method="DELETE" data-path=(api_path(&host.id, ""))
                        data-confirm={ "Revoke " (host.hostname) "? Its agent token stops working at once." }
                        data-then="go" data-href="/hosts" { "Revoke host" }
                }
            }
        }
    }
}

/// Whether the agent applied the current repository settings: "applied
/// (version N)", or "pending since …" (the last change, else enrolment).
fn config_state(ctx: &PageCtx, data: &Data) -> Markup {
    let config = &data.history.host.config;
    if config.applied() {
        return html! {
            "repository settings applied (version " (config.acked_config_version) ")"
            @if let Some(at) = config.config_acked_at {
                " " time datetime=(format::rfc3339(at)) { (format::ago(at, ctx.now)) }
            }
        };
    }
    let since = config
        .config_changed_at
        .unwrap_or(data.history.host.host.enrolled_at);
    html! {
        (badge("warning", "pending"))
        " version " (config.config_version) ", pending since "
        time datetime=(format::rfc3339(since)) { (format::time(since)) }
        " (" (format::ago(since, ctx.now)) ")"
        @if config.acked_config_version > 0 {
            " · applied: version " (config.acked_config_version)
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
    let host_id = &data.history.host.host.id;
    let repo = data.setup.repository.as_ref();
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
                @if repo.is_none() { (repository_form(host_id, repo)) }
                @let blocked = repo.is_none().then_some(NEEDS_REPOSITORY);
                div.actions #repo-actions {
                    (job_button(host_id, "init", None, "Init repository", blocked))
                    (job_button(host_id, "prune", None, "Prune", blocked))
                    (job_button(host_id, "check", None, "Check", blocked))
                    (job_button(host_id, "unlock", None, "Unlock", blocked))
                }
                @if repo.is_none() {
                    p.muted #repo-actions-why { "Init, Prune, Check and Unlock work once the repository is configured above." }
                } @else {
                    (repository_form(host_id, repo))
                }
            }
        }
    }
}

/// The form that configures the repository: open above the buttons on a
/// new host, folded below them once it is set.
fn repository_form(host_id: &str, repo: Option<&Repository>) -> Markup {
    html! {
        details.edit open[repo.is_none()] {
            summary { @if repo.is_some() { "Change repository settings" } @else { "Configure the repository" } }
            form #repository-form.stacked data-change data-form="repository" data-method="PUT"
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
                div.form-actions { button type="submit" { "Save repository" } }
            }
        }
    }
}

/// The first steps on a new host, in order, each marked done or not,
/// until all are done: configure the repository, initialise it, add a
/// source group, add a schedule. Shown to operators only (viewers cannot
/// take them).
fn first_steps(ctx: &PageCtx, data: &Data) -> Markup {
    let repo = data.setup.repository.is_some();
    // Initialised: a successful init, or the agent reported snapshots or
    // statistics from the repository (it existed already).
    let initialised = repo
        && (data
            .history
            .jobs
            .iter()
            .any(|j| j.kind == JobKind::Init && j.status == JobStatus::Succeeded)
            || !data.history.snapshots.is_empty()
            || !data.reports.stats.is_empty());
    let steps = [
        (repo, "Configure the repository", "#repository"),
        (
            initialised,
            "Initialise it (Init repository), unless it exists already",
            "#repository",
        ),
        (
            !data.setup.groups.is_empty(),
            "Add a source group: the paths to back up",
            "#source-groups",
        ),
        (
            !data.setup.schedules.is_empty(),
            "Add a schedule, or run a backup by hand",
            "#schedules",
        ),
    ];
    let next = steps.iter().position(|(done, _, _)| !done);
    html! {
        @if let (true, Some(next)) = (ctx.can_operate(), next) {
            section #first-steps {
                h2 { "First steps" }
                ol.steps {
                    @for (i, (done, text, anchor)) in steps.iter().enumerate() {
                        li data-step=(i + 1) data-done=(if *done { "true" } else { "false" })
                            class=(if *done { "done" } else if i == next { "next" } else { "" }) {
                            a href=(anchor) { (text) }
                            @if *done { " ✓" }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_buttons() {
        let html = job_button("h1", "backup", Some("docs"), "Run backup now", None).into_string();
        assert!(
            html.contains(r#"data-path="/api/v1/hosts/h1/jobs""#),
            "{html}"
        );
        assert!(html.contains(
            r#"data-body="{&quot;kind&quot;:&quot;backup&quot;,&quot;source_group&quot;:&quot;docs&quot;}""#
        ));
        assert!(html.contains("data-change"));
        assert!(!html.contains("disabled"), "{html}");
        let html = job_button("h1", "init", None, "Init", Some(NEEDS_REPOSITORY)).into_string();
        assert!(html.contains(" disabled"), "{html}");
        assert!(
            html.contains(r#"title="Configure the repository first"#),
            "{html}"
        );
    }
}
