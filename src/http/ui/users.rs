//! `GET /users` (admin): the user accounts. `app.js` sends the changes to
//! the API: add a user (`POST /api/v1/users`), change a role, disable or
//! enable, reset a password (`PATCH /api/v1/users/{id}`), delete
//! (`DELETE /api/v1/users/{id}`). The API refuses what would leave no
//! enabled admin, and the page shows its message.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::html;

use super::layout::{self, badge, Nav};
use super::{format, html_response, PageCtx, UiError};
use crate::auth::Role;
use crate::http::error::with_conn;
use crate::http::AppState;
use crate::store;

pub(super) async fn page(
    state: web::Data<AppState>,
    ctx: PageCtx,
) -> Result<HttpResponse, UiError> {
    ctx.require(Role::Admin)?;
    let users = with_conn(&state.pool, |conn| {
        Ok(store::users::list(conn, store::MAX_PAGE, 0)?)
    })
    .await?;
    let now = ctx.now;
    let body = html! {
        section {
            details.edit #add-user {
                summary { "Add a user" }
                form #user-form data-change data-form="user-create" data-method="POST" data-path="/api/v1/users" data-then="reload" {
                    label for="new-username" { "User name" }
                    input #new-username name="username" type="text" required autocomplete="off";
                    label for="new-password" { "Password" }
                    input #new-password name="password" type="password" required autocomplete="new-password";
                    label for="new-role" { "Role" }
                    select #new-role name="role" {
                        @for role in Role::ALL { option value=(role.as_str()) selected[role == Role::Viewer] { (role.as_str()) } }
                    }
                    button type="submit" { "Add user" }
                }
            }
        }
        table #user-list {
            thead { tr { th { "User" } th { "Role" } th { "State" } th { "Last login" } th { "Actions" } } }
            tbody {
                @for u in &users.items {
                    @let role = u.role;
                    tr data-user-id=(u.id) data-username=(u.username) {
                        td { (u.username) @if u.id == ctx.user.user_id { " " span.muted { "(you)" } } }
                        td {
                            form.inline data-change data-form="user-role" data-method="PATCH"
                                data-path={ "/api/v1/users/" (u.id) } data-then="reload" {
                                select name="role" aria-label={ "Role of " (u.username) } {
                                    @for r in Role::ALL { option value=(r.as_str()) selected[r == role] { (r.as_str()) } }
                                }
                                button type="submit" { "Change role" }
                            }
                        }
                        td { @if u.disabled { (badge("offline", "disabled")) } @else { (badge("online", "enabled")) } }
                        td { @match u.last_login_at { Some(at) => (format::ago(at, now)), None => "never" } }
                        td.actions {
                            button type="button" data-change data-method="PATCH" data-path={ "/api/v1/users/" (u.id) }
                                data-body=(if u.disabled { r#"{"disabled":false}"# } else { r#"{"disabled":true}"# })
                                data-confirm={ (if u.disabled { "Enable " } else { "Disable " }) (u.username) "?" }
                                data-then="reload" {
                                @if u.disabled { "Enable" } @else { "Disable" }
                            }
                            button type="button" data-change data-method="DELETE" data-path={ "/api/v1/users/" (u.id) }
                                data-confirm={ "Delete " (u.username) "? Their sessions and API tokens go too." }
                                data-then="remove-row" data-message="User deleted." { "Delete" }
                            details.edit {
                                summary { "Reset password" }
                                form data-change data-form="user-password" data-method="PATCH"
                                    data-path={ "/api/v1/users/" (u.id) } data-then="message" data-message="Password changed." {
                                    input name="password" type="password" required autocomplete="new-password"
                                        aria-label={ "New password for " (u.username) };
                                    button type="submit" { "Set password" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        layout::page(&ctx, Nav::Users, "Users", body),
    ))
}
