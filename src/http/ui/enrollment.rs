//! `GET /enrollment` (admin): enrol new hosts. A form creates a one-time
//! token with an expiry (`POST /api/v1/enrollment-tokens` from `app.js`);
//! the page then shows the token once, inside the exact command to run on
//! the new host (`restic-manager-agent enroll --server <this server's URL>
//! --token <token>`). Below, the unused tokens (no secret, only their id
//! and times) with a revoke button each.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::layout::{self, Nav};
use super::{format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::with_conn;
use crate::http::AppState;
use crate::store;

/// Lifetimes offered for a new token, in seconds, with their labels.
const TTLS: [(u64, &str); 4] = [
    (3_600, "1 hour"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
];

/// The URL agents reach this server at, as the browser sees it.
fn server_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
    req: HttpRequest,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Admin)?;
    let now = ctx.now;
    let (tokens, users) = with_conn(&state.pool, move |conn| {
        let tokens = store::enrollment::list_unused(conn, now)?;
        let users: HashMap<String, String> = store::users::list(conn, store::MAX_PAGE, 0)?
            .items
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect();
        Ok((tokens, users))
    })
    .await?;
    let url = server_url(&req);
    let body = html! {
        section #new-token {
            h2 { "Enrol a new host" }
            p { "Create a one-time token, then run the command it shows on the new host. The token is shown only once." }
            form #enroll-form data-change data-form="enrollment" data-server-url=(url) {
                label for="enroll-ttl" { "Valid for" }
                select #enroll-ttl name="ttl_seconds" {
                    @for (secs, label) in TTLS {
                        option value=(secs) selected[secs == 86_400] { (label) }
                    }
                }
                button #create-token type="submit" { "Create enrolment token" }
            }
            div #enroll-result hidden {
                p { "Run this on the new host (token valid until " span #enroll-expires {} "):" }
                pre #enroll-command {}
                button #copy-command type="button" data-copy="enroll-command" { "Copy" }
            }
        }
        section {
            h2 { "Unused tokens" }
            table #token-list {
                thead { tr { th { "Token id" } th { "Created by" } th { "Created" } th { "Expires" } th { "" } } }
                tbody {
                    @for t in &tokens {
                        tr data-token-id=(t.id) {
                            td { code { (t.id) } }
                            td { (t.created_by.as_ref().and_then(|id| users.get(id)).map_or("—", String::as_str)) }
                            td { (format::time(t.created_at)) }
                            td { (format::time(t.expires_at)) }
                            td {
                                button type="button" data-change data-method="DELETE"
                                    data-path={ "/api/v1/enrollment-tokens/" (t.id) }
                                    data-confirm="Revoke this enrolment token?" data-then="remove-row" { "Revoke" }
                            }
                        }
                    }
                }
            }
            p.muted #no-tokens hidden[!tokens.is_empty()] { "No unused tokens." }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Enrollment, "Enrolment", body),
    ))
}
