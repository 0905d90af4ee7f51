//! `GET /login?next=<path>`: the login form. The script posts it as JSON
//! to `POST /api/v1/auth/login` (the API's session, rate limiter and audit
//! — there is no second login implementation) and, on success, goes to
//! `next`. It shows the API's message on failure: "invalid username or
//! password" (401) or "too many failed logins; try again in N seconds"
//! (429). A visitor who is already logged in goes straight to `next`.
//!
//! `next` is only followed when [`safe_next`] accepts it: a same-site
//! path, so the login page cannot be used to send people elsewhere.

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use maud::{html, DOCTYPE};
use serde::Deserialize;

use super::{html_response, layout, redirect};
use crate::http::auth::Principal;

/// Longest `next` path followed.
const MAX_NEXT_LEN: usize = 2048;

/// The path to go to after login: `next` if it is a path on this site
/// (starts with one `/`, no `//` or `/\` prefix that a browser would read
/// as another host, no backslash, no control character or space, not the
/// login page itself), else `/`.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(next) = next else {
        return "/".to_owned();
    };
    let acceptable = next.len() <= MAX_NEXT_LEN
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
        && next != "/login"
        && !next.starts_with("/login?")
        && !next.starts_with("/login/");
    if acceptable {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`.
pub(super) async fn page(req: HttpRequest, query: web::Query<LoginQuery>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    if Principal::extract(&req).await.is_ok() {
        return redirect(&next);
    }
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (layout::head("Log in", None))
            body.login-page {
                main.narrow {
                    h1 { "restic-manager" }
                    form #login-form data-next=(next) autocomplete="on" {
                        label for="username" { "Username" }
                        input #username name="username" type="text" autocomplete="username" required autofocus;
                        label for="password" { "Password" }
                        input #password name="password" type="password" autocomplete="current-password" required;
                        button #login-submit type="submit" { "Log in" }
                        p #login-error.error role="alert" aria-live="assertive" {}
                    }
                    noscript { p.error { "This interface needs JavaScript to log in." } }
                }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only same-site paths are followed after login; everything else goes to the dashboard.
    #[test]
    fn next_paths() {
        for good in [
            "/",
            "/hosts",
            "/hosts/0192-abc?tab=jobs",
            "/audit?actor=alice&action=login",
            "/jobs/1#log",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "",
            "hosts",
            "https://evil.example/",
            "//evil.example/path",
            "/\\evil.example",
            "/hosts\\..\\x",
            "/a b",
            "/a\nb",
            "/a\tb",
            "javascript:alert(1)",
            "/login",
            "/login?next=/login",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some(&format!("/{}", "a".repeat(3000)))), "/");
    }
}
