//! The operator web UI: server-rendered HTML pages (maud, escaped by
//! default) plus one small hand-written script and one style sheet,
//! embedded in the binary ([`assets`]). No build step.
//!
//! Pages read the store directly (read-only, inside `web::block`); every
//! change is made by `app.js` calling the JSON API with the session's CSRF
//! token, so business rules and role checks live in one place, the API.
//! Change controls are only rendered for roles that may use them, and are
//! marked `data-change` (the browser test checks a viewer sees none).
//!
//! Authentication is the API's browser session (`rm_session` cookie,
//! created by `POST /api/v1/auth/login`): [`PageCtx`] extracts it through
//! the API's [`Principal`] extractor and turns "not logged in" into a
//! redirect to `/login?next=<path>`.
//!
//! Every HTML answer carries `Cache-Control: no-store` and the security
//! headers of [`html_response`] (a CSP without inline script, so the CSRF
//! token reaches the script through a `<meta>` tag).
//!
//! # Layout
//!
//! - [`layout`]: the page frame (navigation, CSRF meta tag, logout).
//! - [`assets`]: `app.js` and `app.css` under content-hashed URLs.
//! - [`format`]: sizes, durations and times as text.
//! - [`calendar`]: the fleet calendar SVG; [`chart`]: the size-over-time SVG.
//! - `login`, `dashboard`, `hosts`, `host`, `snapshot` (the file browser
//!   and the Restore dialog), `search` (the fleet-wide catalog search),
//!   `job`, `enrollment`, `users`, `audit`, `policies` (with its form in
//!   `policy_form`), `repositories`: one module per page.
//! - `health_form`: the fields of a list of health checks (the host page's
//!   and the policy form's).
//! - `live`: `GET /ui/events`, the presence stream the badges follow.
//! - `log_lines`: restic's JSON log lines as text for people (the job page).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup, DOCTYPE};

use crate::auth::Role;
use crate::http::auth::{AuthMethod, Principal, Reader};
use crate::http::error::ApiError;

pub mod assets;
pub mod calendar;
pub mod chart;
pub mod format;
pub mod layout;

mod audit;
mod dashboard;
mod enrollment;
mod health_form;
mod host;
mod hosts;
mod job;
mod live;
mod log_lines;
mod login;
mod notifications;
mod policies;
mod policy_form;
mod repositories;
mod search;
mod snapshot;
mod users;

#[cfg(test)]
pub(crate) mod xml_check;

pub use job::LOG_TAIL;
pub use login::safe_next;

/// The Content-Security-Policy of every page: scripts, styles and
/// connections only from this origin, no inline script or style
/// attributes, no framing, no plugins.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Registers every page and the assets.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login::page))
        .route("/", web::get().to(dashboard::page))
        .route("/hosts", web::get().to(hosts::page))
        .route("/hosts/{id}", web::get().to(host::page))
        .route(
            "/hosts/{id}/snapshots/{snapshot_id}",
            web::get().to(snapshot::page),
        )
        .route("/policies", web::get().to(policies::list))
        .route("/policies/{id}", web::get().to(policies::detail))
        .route("/repositories", web::get().to(repositories::page))
        .route("/search", web::get().to(search::page))
        .route("/jobs/{id}", web::get().to(job::page))
        .route("/enrollment", web::get().to(enrollment::page))
        .route("/users", web::get().to(users::page))
        .route("/notifications", web::get().to(notifications::page))
        .route("/audit", web::get().to(audit::page))
        .route("/assets/{name}", web::get().to(assets::serve))
        .route("/ui/events", web::get().to(live::stream));
}

/// Any path no route serves (outside `/api/v1`, whose unknown paths get
/// JSON): an HTML 404 page, with the same headers as every page.
pub async fn not_found() -> HttpResponse {
    let e = ApiError::not_found("page");
    html_response(e.status, error_page(&e))
}

/// Adds the security headers every UI answer carries.
fn secure(builder: &mut actix_web::HttpResponseBuilder) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
}

/// An HTML answer: never cached, with the security headers.
pub fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    secure(&mut HttpResponse::build(status))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// A `303 See Other` to a path of this site.
pub fn redirect(location: &str) -> HttpResponse {
    let mut builder = HttpResponse::SeeOther();
    secure(&mut builder).insert_header((header::CACHE_CONTROL, "no-store"));
    match HeaderValue::from_str(location) {
        Ok(value) => builder.insert_header((header::LOCATION, value)).finish(),
        // Callers pass validated, percent-encoded paths; anything else
        // goes to the dashboard rather than failing.
        Err(_) => builder.insert_header((header::LOCATION, "/")).finish(),
    }
}

/// Percent-encodes a query value (everything but unreserved characters
/// and `/`).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum UiError {
    /// Not logged in (or the session expired): go to the login page and
    /// come back to `next` afterwards.
    LoginRequired { next: String },
    /// Anything else, with the API's status and message.
    Api(ApiError),
    /// An error for a logged-in user (a role too low for the page): the
    /// error in the page frame, navigation included, so the user can go on.
    Page { ctx: Box<PageCtx>, error: ApiError },
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::Api(e)
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UiError::LoginRequired { next } => write!(f, "login required for {next}"),
            UiError::Api(e) | UiError::Page { error: e, .. } => e.fmt(f),
        }
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            UiError::Api(e) | UiError::Page { error: e, .. } => e.status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            UiError::LoginRequired { next } => {
                let next = safe_next(Some(next));
                if next == "/" {
                    redirect("/login")
                } else {
                    redirect(&format!("/login?next={}", encode_query_value(&next)))
                }
            }
            UiError::Api(e) => html_response(e.status, error_page(e)),
            UiError::Page { ctx, error } => {
                html_response(error.status, framed_error_page(ctx, error))
            }
        }
    }
}

/// A bare page for an error (it has no user to build navigation for).
fn error_page(e: &ApiError) -> Markup {
    let title = e.status.canonical_reason().unwrap_or("Error").to_owned();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · restic-manager" }
                link rel="stylesheet" href=(assets::css_url());
            }
            body {
                main.narrow {
                    h1 { (e.status.as_u16()) " " (title) }
                    p #error-message { (e.message) }
                    p { a href="/" { "Back to the dashboard" } }
                }
            }
        }
    }
}

/// An error in the page frame of `ctx`'s user (navigation, logout).
fn framed_error_page(ctx: &PageCtx, e: &ApiError) -> Markup {
    let title = format!(
        "{} {}",
        e.status.as_u16(),
        e.status.canonical_reason().unwrap_or("Error")
    );
    layout::page(
        ctx,
        layout::Nav::None,
        &title,
        html! {
            p #error-message { (e.message) }
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

/// The logged-in user a page is rendered for. Extracting it from a
/// request without a valid session answers a redirect to the login page.
#[derive(Debug, Clone)]
pub struct PageCtx {
    pub user: Principal,
    /// The session's CSRF token, rendered into the `<meta>` tag the
    /// script reads (`None` for an API-token caller).
    pub csrf: Option<String>,
    /// The time the page is rendered at (Unix ms).
    pub now: i64,
}

impl PageCtx {
    /// Whether the user may make operator changes (hosts, groups,
    /// schedules, jobs).
    pub fn can_operate(&self) -> bool {
        self.user.role >= Role::Operator
    }

    /// Whether the user may manage users and enrolment tokens.
    pub fn is_admin(&self) -> bool {
        self.user.role >= Role::Admin
    }

    /// `Ok` if the user has `role`, else a 403 page with the navigation.
    pub fn require(&self, role: Role) -> Result<(), UiError> {
        self.user.require(role).map_err(|error| UiError::Page {
            ctx: Box::new(self.clone()),
            error,
        })
    }
}

impl PageCtx {
    /// The page's context for a checked caller, or the answer for one that
    /// failed: the login page (with `next`) for 401, the error otherwise.
    fn checked(
        caller: Result<Principal, ApiError>,
        next: String,
        now: i64,
    ) -> Result<Self, UiError> {
        match caller {
            Ok(user) => {
                let csrf = match &user.method {
                    AuthMethod::Session { csrf_token, .. } => Some(csrf_token.clone()),
                    AuthMethod::ApiToken { .. } => None,
                };
                Ok(PageCtx { user, csrf, now })
            }
            Err(e) => Err(refused(e, next)),
        }
    }
}

/// The answer to a page request whose caller failed its check: the login
/// page (coming back to `next`) for 401, the error otherwise.
fn refused(e: ApiError, next: String) -> UiError {
    if e.status == StatusCode::UNAUTHORIZED {
        UiError::LoginRequired { next }
    } else {
        UiError::Api(e)
    }
}

/// The path and query a login should come back to.
fn next_of(req: &HttpRequest) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned())
}

impl FromRequest for PageCtx {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<PageCtx, UiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let next = next_of(req);
        let principal = Principal::from_request(req, payload);
        Box::pin(async move { PageCtx::checked(principal.await, next, crate::store::now_ms()) })
    }
}

/// A page that only reads, whose caller may still be being checked: the
/// [`Reader`] of the UI. Its reads run alongside the check
/// ([`PageReader::alongside`]) and the page gets its [`PageCtx`] with them.
pub struct PageReader {
    reader: Reader,
    next: String,
    /// The time the page is rendered at (Unix ms): its [`PageCtx::now`].
    pub now: i64,
}

impl PageReader {
    /// Runs `reads` alongside the caller's check; the page's context and
    /// what was read once both are done. A failed check is the answer (the
    /// login page for 401) whatever the reads found.
    pub async fn alongside<T, E>(
        self,
        reads: impl Future<Output = Result<T, E>>,
    ) -> Result<(PageCtx, T), UiError>
    where
        E: Into<UiError>,
    {
        let (caller, data) = self.reader.join(reads).await;
        let ctx = PageCtx::checked(caller, self.next, self.now)?;
        Ok((ctx, data.map_err(Into::into)?))
    }
}

impl FromRequest for PageReader {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<PageReader, UiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let next = next_of(req);
        let reader = Reader::from_request(req, payload);
        Box::pin(async move {
            let now = crate::store::now_ms();
            match reader.await {
                Ok(reader) => Ok(PageReader { reader, next, now }),
                Err(e) => Err(refused(e, next)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Query values are percent-encoded except unreserved characters and slashes.
    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query_value("/hosts/abc-1"), "/hosts/abc-1");
        assert_eq!(
            encode_query_value("/hosts?status=online&q=a b"),
            "/hosts%3Fstatus%3Donline%26q%3Da%20b"
        );
        assert_eq!(encode_query_value("é"), "%C3%A9");
    }

    /// An unauthenticated page visit redirects to the login page with the path as `next`.
    #[test]
    fn login_required_redirects_with_next() {
        let resp = UiError::LoginRequired {
            next: "/hosts?status=offline".to_owned(),
        }
        .error_response();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            resp.headers().get(header::LOCATION).unwrap(),
            "/login?next=/hosts%3Fstatus%3Doffline"
        );
        let resp = UiError::LoginRequired {
            next: "//evil.example/".to_owned(),
        }
        .error_response();
        assert_eq!(resp.headers().get(header::LOCATION).unwrap(), "/login");
    }

    /// HTML answers are not cached and carry the security headers.
    #[test]
    fn html_headers() {
        let resp = html_response(StatusCode::OK, html! { p { "x" } });
        let h = resp.headers();
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(h.get("X-Frame-Options").unwrap(), "DENY");
        assert!(h
            .get("Content-Security-Policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert!(h.get("Referrer-Policy").is_some());
    }

    /// A page refused for the user's role is a full page: navigation, logout, the reason.
    #[test]
    fn forbidden_page_has_navigation() {
        let ctx = PageCtx {
            user: Principal {
                user_id: "u1".into(),
                username: "vera".into(),
                role: Role::Viewer,
                method: AuthMethod::Session {
                    session_id: "s1".into(),
                    csrf_token: "csrf".into(),
                },
                source_addr: None,
            },
            csrf: Some("csrf".into()),
            now: 0,
        };
        let resp = ctx.require(Role::Admin).unwrap_err().error_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let err = ctx.require(Role::Admin).unwrap_err();
        let UiError::Page { ctx, error } = &err else {
            panic!("not a framed page: {err:?}");
        };
        let html = framed_error_page(ctx, error).into_string();
        assert!(html.contains(r#"href="/hosts""#), "{html}");
        assert!(html.contains(r#"id="logout""#), "{html}");
        assert!(html.contains(r#"id="error-message""#), "{html}");
        assert!(html.contains("403 Forbidden"), "{html}");
    }

    /// Error pages escape the message.
    #[test]
    fn error_page_escapes() {
        let page = error_page(&ApiError::not_found("host <b>x</b>")).into_string();
        assert!(page.contains("host &lt;b&gt;x&lt;/b&gt; not found"));
    }
}
