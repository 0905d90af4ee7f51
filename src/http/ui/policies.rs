//! `GET /policies`: the policies (name, selector, groups, schedules,
//! repository, how many hosts match), and for operators the form that
//! creates one ([`super::policy_form`]). `GET /policies/{id}?offset=<n>`:
//! one policy, its edit form and delete button for operators, and the
//! hosts it matches, a page at a time (the store counts and reads one
//! page, never every match).
//!
//! Changes go through the API (`/api/v1/policies`), sent by `app.js`;
//! the API validates, stores and pushes the affected hosts' schedules.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::dashboard::presence_badge;
use super::host::groups::retention_text;
use super::hosts::{pager, parse_offset};
use super::layout::{self, Nav};
use super::policy_form::{policy_form, selector_lines};
use super::{format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::{with_conn, ApiError};
use crate::http::AppState;
use crate::store::hosts::{HostFilter, HostWithVersion};
use crate::store::models::Repository;
use crate::store::policies::{Policy, Selector};
use crate::store::{self, DbConnection, Page};

/// Matching hosts per page of a policy's page.
const PAGE: i64 = 100;

/// The selector as tags, or "every host".
fn selector_markup(selector: &Selector) -> Markup {
    html! {
        @if selector.labels.is_empty() { span.muted { "every host" } }
        @for (k, v) in &selector.labels { span.tag { (k) "=" (v) } " " }
    }
}

/// The name of repository `id` among `repositories` (its id if unknown).
fn repository_name<'a>(repositories: &'a [Repository], id: &'a str) -> &'a str {
    repositories
        .iter()
        .find(|r| r.id == id)
        .and_then(|r| r.name.as_deref())
        .unwrap_or(id)
}

/// The hosts a selector matches, one page of them (and their count).
fn matching(
    conn: &mut DbConnection,
    selector: &Selector,
    limit: i64,
    offset: i64,
) -> Result<Page<HostWithVersion>, ApiError> {
    Ok(store::hosts::list(
        conn,
        &HostFilter {
            labels: selector.pairs(),
            limit,
            offset,
            ..HostFilter::default()
        },
    )?)
}

pub(super) async fn list(
    state: web::Data<AppState>,
    ctx: PageCtx,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let (policies, repositories) = with_conn(&state.pool, |conn| {
        let mut policies = Vec::new();
        for p in store::policies::list(conn)? {
            let matched = matching(conn, &p.selector, 1, 0)?.total;
            policies.push((p, matched));
        }
        Ok((policies, store::repositories::list_shared(conn)?))
    })
    .await?;
    let body = html! {
        p.muted { "A policy gives its source groups and schedules to every host whose labels match its selector." }
        @if ctx.can_operate() {
            details.edit #add-policy open[policies.is_empty()] {
                summary { "Add a policy" }
                (policy_form(None, &repositories))
            }
        }
        @if policies.is_empty() {
            p.empty #no-policies { "No policies yet: every host is configured on its own page." }
        } @else {
            table #policy-list {
                thead { tr { th { "Policy" } th { "Selector" } th { "Source groups" } th { "Schedules" } th { "Repository" } th { "Hosts matched" } } }
                tbody {
                    @for (p, matched) in &policies {
                        tr data-policy-id=(p.id) data-policy-name=(p.name) {
                            td { a href={ "/policies/" (p.id) } { (p.name) } }
                            td { (selector_markup(&p.selector)) }
                            td { (p.source_groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (p.schedules.len()) }
                            td { @match &p.repository_id { Some(id) => (repository_name(&repositories, id)), None => span.muted { "each host's own" } } }
                            td.matched { a href={ "/policies/" (p.id) "#policy-hosts" } { (matched) } }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Policies, "Policies", body),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct DetailQuery {
    offset: Option<String>,
}

/// The policy's groups and schedules, as read-only tables.
fn contents(p: &Policy) -> Markup {
    html! {
        h2 { "Source groups" }
        @if p.source_groups.is_empty() {
            p.muted { "None." }
        } @else {
            table #policy-groups-list {
                thead { tr { th { "Name" } th { "Paths" } th { "Excludes" } th { "Retention" } } }
                tbody {
                    @for g in &p.source_groups {
                        tr data-group=(g.name) {
                            td { strong { (g.name) } }
                            td { @for i in &g.includes { code { (i) } br; } }
                            td { @for e in &g.excludes { code { (e) } br; } }
                            td { (retention_text(g.retention_policy.as_ref())) @if g.prune_after_forget { ", then prune" } }
                        }
                    }
                }
            }
        }
        h2 { "Schedules" }
        @if p.schedules.is_empty() {
            p.muted { "None." }
        } @else {
            table #policy-schedule-list {
                thead { tr { th { "Cron (UTC)" } th { "Kind" } th { "Source groups" } } }
                tbody {
                    @for s in &p.schedules {
                        tr {
                            td { code { (s.cron_expr) } @if !s.enabled { " " (layout::badge("offline", "disabled")) } }
                            td.schedule-kind { (s.kind.as_str()) }
                            td { (s.source_groups.join(", ")) }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn detail(
    state: web::Data<AppState>,
    ctx: PageCtx,
    path: web::Path<String>,
    query: web::Query<DetailQuery>,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Viewer)?;
    let id = path.into_inner();
    let offset = parse_offset(query.offset.as_deref())?;
    let (policy, repositories, hosts) = with_conn(&state.pool, move |conn| {
        let policy = store::policies::get(conn, &id)?
            .ok_or_else(|| ApiError::not_found(&format!("policy {id}")))?;
        let hosts = matching(conn, &policy.selector, PAGE, offset)?;
        Ok((policy, store::repositories::list_shared(conn)?, hosts))
    })
    .await?;
    let now = ctx.now;
    let link = |o: i64| format!("/policies/{}?offset={o}#policy-hosts", policy.id);
    let body = html! {
        div #policy-page data-policy-id=(policy.id) {
            dl.facts {
                dt { "Selector" } dd #policy-selector-text { (selector_markup(&policy.selector)) }
                dt { "Repository" } dd { @match &policy.repository_id { Some(id) => (repository_name(&repositories, id)), None => span.muted { "each host's own" } } }
                dt { "Changed" } dd { (format::ago(policy.updated_at, now)) }
            }
            (contents(&policy))
            @if ctx.can_operate() {
                div.actions {
                    button.danger #policy-delete type="button" data-change data-method="DELETE"
                        data-path={ "/api/v1/policies/" (policy.id) }
                        data-confirm={ "Delete the policy " (policy.name) "? Its groups and schedules leave the hosts it matches." }
                        data-then="go" data-href="/policies" { "Delete policy" }
                }
                details.edit #edit-policy {
                    summary { "Edit" }
                    (policy_form(Some(&policy), &repositories))
                }
            }
            section #policy-hosts {
                h2 { "Hosts matched" }
                p.muted #policy-host-count { (format::plural(hosts.total, "host matches", "hosts match")) " "
                    @if policy.selector.labels.is_empty() { "(every host)" } @else { code { (selector_lines(&policy).replace('\n', ", ")) } } "." }
                @if !hosts.items.is_empty() {
                    table #policy-host-list {
                        thead { tr { th { "Host" } th { "Status" } th { "Labels" } } }
                        tbody {
                            @for row in &hosts.items {
                                @let h = &row.host;
                                tr data-host-id=(h.id) {
                                    td { a href={ "/hosts/" (h.id) } { (h.display_name.as_deref().unwrap_or(&h.hostname)) } }
                                    td { (presence_badge(&h.id, h.online)) }
                                    td { @for (k, v) in &h.labels { span.tag { (k) "=" (v) } " " } }
                                }
                            }
                        }
                    }
                }
                (pager(offset, hosts.items.len(), hosts.total, link))
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(
            &ctx,
            Nav::Policies,
            &format!("Policy {}", policy.name),
            body,
        ),
    ))
}
