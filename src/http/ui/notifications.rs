//! `GET /notifications` (admin): the notification channels and the last
//! deliveries. `app.js` sends the changes to the API: add a channel
//! (`POST /api/v1/notification-channels`), send a test message
//! (`POST …/{id}/test`), delete (`DELETE …/{id}`). What the events are and
//! when they go out is `notify`'s and docs/API.md's "Notifications".

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::html;

use super::layout::{self, badge, Nav};
use super::{format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::with_conn;
use crate::http::AppState;
use crate::notify;
use crate::store::notifications as store_n;

/// Deliveries listed on the page.
const RECENT: i64 = 50;

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Admin)?;
    let (channels, recent) = with_conn(&state.pool, |conn| {
        Ok((store_n::list(conn)?, store_n::recent(conn, RECENT)?))
    })
    .await?;
    let now = ctx.now;
    let smtp = state.config.notify.smtp_url.is_some();
    let body = html! {
        section {
            details.edit #add-channel {
                summary { "Add a channel" }
                form #channel-form data-change data-form="channel" data-method="POST" data-path="/api/v1/notification-channels" data-then="reload" {
                    label for="channel-name" { "Name" }
                    input #channel-name name="name" type="text" required autocomplete="off";
                    label for="channel-type" { "Type" }
                    select #channel-type name="type" {
                        option value="webhook" selected { "webhook" }
                        option value="email" { "email" }
                    }
                    label for="channel-url" { "Webhook URL" }
                    input #channel-url name="url" type="url" placeholder="https://hooks.example.com/restic";
                    label for="channel-secret" { "Webhook secret (signs each body)" }
                    input #channel-secret name="secret" type="password" autocomplete="new-password";
                    label for="channel-to" { "Mail to (comma-separated)" }
                    input #channel-to name="to" type="text" placeholder="ops@example.com";
                    @if !smtp { p.muted { "Mail needs the server's --smtp-url." } }
                    fieldset {
                        legend { "Events (a failure brings its recovery)" }
                        @for (failure, recovery) in notify::PAIRS {
                            label.check {
                                input type="checkbox" name="events" value=(failure) checked;
                                " " (failure) " / " (recovery)
                            }
                        }
                    }
                    label for="channel-labels" { "Only hosts with labels (key=value, comma-separated)" }
                    input #channel-labels name="labels" type="text" placeholder="env=prod";
                    button type="submit" { "Add channel" }
                }
            }
        }
        @if channels.is_empty() {
            p.empty #no-channels { "No channels yet: failures show on the dashboard only. Add a webhook or mail channel above." }
        } @else {
            table #channel-list {
                thead { tr { th { "Channel" } th { "Type" } th { "Goes to" } th { "Events" } th { "Hosts" } th { "Actions" } } }
                tbody {
                    @for c in &channels {
                        tr data-channel-id=(c.id) {
                            td { (c.name) }
                            td { (c.kind) }
                            td {
                                @match &c.url { Some(url) => code { (crate::redact::url(url)) }, None => (c.recipients.join(", ")) }
                                @if c.secret_sealed.is_some() { " " span.muted { "(signed)" } }
                            }
                            td { (c.events.join(", ")) }
                            td {
                                @match &c.selector {
                                    Some(labels) if !labels.is_empty() => {
                                        (labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
                                    }
                                    _ => "all",
                                }
                            }
                            td.actions {
                                button type="button" data-change data-method="POST"
                                    data-path={ "/api/v1/notification-channels/" (c.id) "/test" }
                                    data-then="message" data-message="Test message delivered." { "Send test" }
                                button type="button" data-change data-method="DELETE"
                                    data-path={ "/api/v1/notification-channels/" (c.id) }
                                    data-confirm={ "Delete the channel " (c.name) "? Its pending deliveries go too." }
                                    data-then="remove-row" data-message="Channel deleted." { "Delete" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Last deliveries" }
        @if recent.is_empty() {
            p.empty #no-deliveries { "Nothing sent yet." }
        } @else {
            table #delivery-list {
                thead { tr { th { "When" } th { "Channel" } th { "Event" } th { "Status" } th { "Attempts" } th { "Last error" } } }
                tbody {
                    @for (row, channel) in &recent {
                        @let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap_or_default();
                        tr {
                            td { (format::ago(row.created_at, now)) }
                            td { (channel) }
                            td { (notify::one_line(&payload)) }
                            td {
                                @match row.status.as_str() {
                                    "delivered" => (badge("online", if row.summary_id.is_some() { "delivered in a summary" } else { "delivered" })),
                                    "failed" => (badge("failed", "gave up")),
                                    _ => (badge("queued", "pending")),
                                }
                            }
                            td { (row.attempts) }
                            td { (row.last_error.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Notifications, "Notifications", body),
    ))
}
