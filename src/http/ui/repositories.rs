//! `GET /repositories`: the shared repositories (issue 12 §3): name, URL
//! (credentials in it replaced by `crate::redact::url`), user name,
//! whether a password and a credential are set, the maintenance host,
//! the hosts attached (a count and the first few), and the current
//! leases (which job holds or waits for the repository, and why).
//! Operators get the create form, an edit form per repository and a
//! delete button; `app.js` sends them to `/api/v1/repositories`, whose
//! refusal to delete a repository still in use (409 naming the hosts) is
//! shown as it comes.
//!
//! The maintenance host select names the first [`HOSTS_NAMED`] attached
//! hosts; with more attached, a search field beside it (`host_search.js`)
//! fills it from `GET /api/v1/hosts?repository_id=&q=`, so any attached
//! host of a 10,000-host repository can be chosen.
//!
//! Secrets are write-only: the password and credential fields are always
//! rendered empty ("leave empty to keep"); the page says only "set" or
//! "not set".

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};

use super::layout::{self, badge, Nav};
use super::{html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::with_conn;
use crate::http::AppState;
use crate::store::leases::CurrentLease;
use crate::store::models::Repository;
use crate::store::{self, DbConnection};

/// Attached hosts named per repository (the rest are counted); also the
/// choices of its maintenance host.
const HOSTS_NAMED: i64 = 50;
/// Attached hosts shown in the list's cell.
const HOSTS_SHOWN: usize = 5;

/// A repository and what the page shows beside it.
struct Row {
    repo: Repository,
    /// How many live hosts use it.
    host_count: i64,
    /// The first [`HOSTS_NAMED`] of them (id, name).
    hosts: Vec<(String, String)>,
    /// The maintenance host's name, if one is set.
    maintenance: Option<(String, String)>,
    leases: Vec<CurrentLease>,
}

fn load(conn: &mut DbConnection) -> Result<Vec<Row>, crate::http::error::ApiError> {
    let repos = store::repositories::list_shared(conn)?;
    let ids: Vec<&str> = repos.iter().map(|r| r.id.as_str()).collect();
    let mut leases: HashMap<String, Vec<CurrentLease>> = HashMap::new();
    for (repo, lease) in store::leases::current(conn, &ids)? {
        leases.entry(repo).or_default().push(lease);
    }
    let mut rows = Vec::with_capacity(repos.len());
    for repo in repos {
        let (host_count, hosts) =
            store::repositories::attached_summary(conn, &repo.id, HOSTS_NAMED)?;
        let maintenance = match &repo.maintenance_host_id {
            Some(id) => Some(match store::hosts::get(conn, id)? {
                Some(h) => (String::from(h.id), h.hostname),
                None => (id.clone(), id.clone()),
            }),
            None => None,
        };
        rows.push(Row {
            leases: leases.remove(&repo.id).unwrap_or_default(),
            repo,
            host_count,
            hosts,
            maintenance,
        });
    }
    Ok(rows)
}

/// "set" / "not set".
fn set_badge(set: bool) -> Markup {
    if set {
        badge("set", "set")
    } else {
        badge("not-set", "not set")
    }
}

/// The create form (`row: None`) or the edit form of a repository.
fn repository_form(row: Option<&Row>) -> Markup {
    let repo = row.map(|r| &r.repo);
    let (method, path, prefix) = match repo {
        Some(r) => (
            "PUT",
            format!("/api/v1/repositories/{}", r.id),
            format!("r-{}", r.id),
        ),
        None => (
            "POST",
            "/api/v1/repositories".to_owned(),
            "r-new".to_owned(),
        ),
    };
    let field = |name: &str| format!("{prefix}-{name}");
    let keep = if repo.is_some() {
        " (leave empty to keep)"
    } else {
        ""
    };
    let maintenance = repo.and_then(|r| r.maintenance_host_id.as_deref());
    html! {
        form.repository-form data-change data-form="shared-repository" data-method=(method) data-path=(path)
            data-then="reload" id=(field("form")) {
            p.error.form-error data-form-error role="alert" {}
            label for=(field("name")) { "Name" }
            input id=(field("name")) name="name" type="text" required autocomplete="off"
                value=(repo.and_then(|r| r.name.as_deref()).unwrap_or(""));
            label for=(field("url")) { "URL (a path, sftp:…, s3:…, rest:…)" }
            input id=(field("url")) name="url" type="text" required autocomplete="off"
                value=(repo.map(|r| crate::redact::url(&r.url)).unwrap_or_default());
            label for=(field("username")) { "User name (optional)" }
            input id=(field("username")) name="username" type="text" autocomplete="off"
                value=(repo.and_then(|r| r.username.as_deref()).unwrap_or(""));
            label for=(field("password")) { "Password" (keep) }
            // Write-only: never rendered back.
            input id=(field("password")) name="password" type="password" autocomplete="new-password" required[repo.is_none()];
            label for=(field("credential")) { "Backend credential (optional)" (keep) }
            input id=(field("credential")) name="credential" type="password" autocomplete="new-password";
            label for=(field("maintenance")) { "Maintenance host (runs prune and check)" }
            @if let Some(row) = row.filter(|r| r.host_count > HOSTS_NAMED) {
                label for=(field("maintenance-search")) {
                    "Find the maintenance host among the " (row.host_count) " attached (the list names the first " (HOSTS_NAMED) ")"
                }
                input id=(field("maintenance-search")) type="search" autocomplete="off"
                    placeholder="hostname contains…" data-host-search=(field("maintenance"))
                    data-repository-id=(row.repo.id) data-host-search-status=(field("maintenance-found"));
                span.muted id=(field("maintenance-found")) aria-live="polite" {}
            }
            select id=(field("maintenance")) name="maintenance_host_id" {
                option value="" selected[maintenance.is_none()] { "any online host attached" }
                @if let Some(row) = row {
                    @if let Some((id, name)) = &row.maintenance {
                        @if !row.hosts.iter().any(|(h, _)| h == id) {
                            option value=(id) selected { (name) }
                        }
                    }
                    @for (id, name) in &row.hosts {
                        option value=(id) selected[maintenance == Some(id.as_str())] { (name) }
                    }
                }
            }
            button type="submit" { @if repo.is_some() { "Save repository" } @else { "Create repository" } }
        }
    }
}

/// The leases cell: who holds the repository and who waits, and why.
fn leases_cell(leases: &[CurrentLease]) -> Markup {
    html! {
        @if leases.is_empty() { span.muted { "none" } }
        @for l in leases {
            div.lease data-lease-job=(l.job_id) {
                @if l.held { (badge("running", "holds")) } @else { (badge("queued", "waits")) }
                " " (l.mode) " · "
                a href={ "/jobs/" (l.job_id) } { (l.kind.as_str()) } " on "
                a href={ "/hosts/" (l.host_id) } { (l.hostname) }
                @if let Some(reason) = &l.waiting_for { br; span.muted.waiting-for { (reason) } }
            }
        }
    }
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let rows = with_conn(&state.pool, load).await?;
    let body = html! {
        p.muted { "A shared repository holds the backups of several hosts (restic deduplicates across them); the server lets one job at a time prune or check it while backups share it. Attach a host on its page." }
        @if ctx.can_operate() {
            details.edit #add-repository open[rows.is_empty()] {
                summary { "Add a repository" }
                (repository_form(None))
            }
        }
        @if rows.is_empty() {
            p.empty #no-repositories { "No shared repositories yet: each host has its own." }
        } @else {
            table #repository-list {
                thead { tr {
                    th { "Repository" } th { "URL" } th { "User" } th { "Password" } th { "Credential" }
                    th { "Maintenance host" } th { "Hosts" } th { "Leases" }
                    @if ctx.can_operate() { th { "Actions" } }
                } }
                tbody {
                    @for row in &rows {
                        @let r = &row.repo;
                        tr data-repository-id=(r.id) data-repository-name=(r.name.as_deref().unwrap_or("")) {
                            td { strong { (r.name.as_deref().unwrap_or("")) } }
                            td { code.repo-url { (crate::redact::url(&r.url)) } }
                            td { (r.username.as_deref().unwrap_or("—")) }
                            td.password-set { (set_badge(r.password_set())) }
                            td.credential-set { (set_badge(r.credential_set())) }
                            td { @match &row.maintenance { Some((id, name)) => a href={ "/hosts/" (id) } { (name) }, None => span.muted { "any online host" } } }
                            td.attached {
                                (row.host_count)
                                @if !row.hosts.is_empty() {
                                    ": "
                                    @for (i, (id, name)) in row.hosts.iter().take(HOSTS_SHOWN).enumerate() {
                                        @if i > 0 { ", " }
                                        a href={ "/hosts/" (id) } { (name) }
                                    }
                                    @if row.host_count > i64::try_from(HOSTS_SHOWN).unwrap_or(i64::MAX) { ", …" }
                                }
                            }
                            td.leases { (leases_cell(&row.leases)) }
                            @if ctx.can_operate() {
                                td.actions {
                                    button.danger type="button" data-change data-method="DELETE"
                                        data-path={ "/api/v1/repositories/" (r.id) }
                                        data-confirm={ "Delete the repository " (r.name.as_deref().unwrap_or("")) "? Its data stays where it is; the server forgets it." }
                                        data-then="remove-row" data-message="Repository deleted." { "Delete" }
                                    details.edit {
                                        summary { "Edit" }
                                        (repository_form(Some(row)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (body)
        @if rows.iter().any(|r| r.host_count > HOSTS_NAMED) && ctx.can_operate() {
            script src=(super::assets::host_search_js_url()) defer {}
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Repositories, "Repositories", body),
    ))
}
