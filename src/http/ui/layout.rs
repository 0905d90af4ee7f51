//! The frame around every logged-in page: head (style sheet, script, the
//! session's CSRF token in `<meta name="csrf-token">`), the top bar with
//! navigation for the user's role and the logout button, a flash area the
//! script writes API errors and confirmations into, the page body, and a
//! footer naming this server's version, git commit and agent protocol
//! (the facts of `GET /api/v1/version`).

use maud::{html, Markup, DOCTYPE};

use super::{assets, PageCtx};

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Hosts,
    Policies,
    Repositories,
    Enrollment,
    Users,
    Notifications,
    Audit,
    /// A page not in the navigation (a job).
    None,
}

/// The `<head>` shared by every page, the login page included.
pub fn head(title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · restic-manager" }
            @if let Some(token) = csrf {
                meta name="csrf-token" content=(token);
            }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::js_url()) defer {}
        }
    }
}

/// A full page for `ctx`'s user.
pub fn page(ctx: &PageCtx, nav: Nav, title: &str, body: Markup) -> Markup {
    let item = |target: Nav, href: &str, label: &str| {
        html! {
            a href=(href) class=(if nav == target { "active" } else { "" }) { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, ctx.csrf.as_deref()))
            body data-role=(ctx.user.role.as_str()) {
                header.topbar {
                    a.brand href="/" { "restic-manager" }
                    // On a narrow screen the navigation folds behind "Menu":
                    // a checkbox and its label, no script (app.css).
                    input #nav-fold.nav-fold type="checkbox" aria-label="Show the navigation";
                    label.nav-fold-label for="nav-fold" { "Menu" }
                    div.fold {
                        nav {
                            (item(Nav::Dashboard, "/", "Dashboard"))
                            (item(Nav::Hosts, "/hosts", "Hosts"))
                            (item(Nav::Policies, "/policies", "Policies"))
                            (item(Nav::Repositories, "/repositories", "Repositories"))
                            @if ctx.is_admin() {
                                (item(Nav::Enrollment, "/enrollment", "Enrolment"))
                                (item(Nav::Users, "/users", "Users"))
                                (item(Nav::Notifications, "/notifications", "Notifications"))
                                (item(Nav::Audit, "/audit", "Audit log"))
                            }
                        }
                        form.topsearch #top-search method="get" action="/search" role="search" {
                            input #top-search-q name="q" type="search" placeholder="Search files…"
                                aria-label="Search files in the catalogued snapshots";
                        }
                        div.who {
                            span #current-user { (ctx.user.username) }
                            " "
                            span.role { (ctx.user.role.as_str()) }
                            " "
                            button #logout type="button" data-logout { "Log out" }
                        }
                    }
                }
                main {
                    div #flash role="status" aria-live="polite" {}
                    h1 { (title) }
                    (body)
                }
                footer.version #server-version {
                    "restic-manager " (crate::cli::VERSION)
                    " · commit " (crate::cli::GIT_COMMIT)
                    " · protocol " (crate::protocol::PROTOCOL_VERSION)
                }
            }
        }
    }
}

/// A status badge (`online`, `failed`, …) styled by its class.
pub fn badge(kind: &str, text: &str) -> Markup {
    html! { span class={ "badge badge-" (kind) } data-badge=(kind) { (text) } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::http::auth::{AuthMethod, Principal};

    fn ctx(role: Role, name: &str) -> PageCtx {
        PageCtx {
            user: Principal {
                user_id: "u1".into(),
                username: name.into(),
                role,
                method: AuthMethod::Session {
                    session_id: "s1".into(),
                    csrf_token: "csrf-abc".into(),
                },
                source_addr: None,
            },
            csrf: Some("csrf-abc".into()),
            now: 0,
        }
    }

    /// The CSRF token is in a meta tag and no script is inline.
    #[test]
    fn csrf_meta_and_no_inline_script() {
        let html = page(
            &ctx(Role::Admin, "alice"),
            Nav::Dashboard,
            "Dashboard",
            html! {},
        )
        .into_string();
        assert!(html.contains(r#"<meta name="csrf-token" content="csrf-abc">"#));
        for chunk in html.split("<script").skip(1) {
            assert!(chunk.starts_with(" src="), "inline script: {chunk}");
        }
        assert!(html.contains(r#"href="/users""#));
    }

    /// The footer names the version, the commit and the protocol.
    #[test]
    fn footer_names_the_version() {
        let html = page(&ctx(Role::Viewer, "v"), Nav::Hosts, "Hosts", html! {}).into_string();
        let footer = format!(
            "restic-manager {} · commit {} · protocol {}",
            crate::cli::VERSION,
            crate::cli::GIT_COMMIT,
            crate::protocol::PROTOCOL_VERSION
        );
        assert!(html.contains(&footer), "{html}");
    }

    /// Admin-only navigation (users, enrolment) is hidden from operators and viewers; user names are escaped.
    #[test]
    fn navigation_follows_role() {
        let html = page(
            &ctx(Role::Viewer, "<i>eve</i>"),
            Nav::Hosts,
            "Hosts",
            html! {},
        )
        .into_string();
        assert!(!html.contains(r#"href="/users""#));
        assert!(!html.contains(r#"href="/enrollment""#));
        assert!(
            !html.contains(r#"href="/audit""#),
            "the audit log is for admins only"
        );
        assert!(html.contains("&lt;i&gt;eve&lt;/i&gt;"));
        let html = page(&ctx(Role::Operator, "op"), Nav::Hosts, "Hosts", html! {}).into_string();
        assert!(!html.contains(r#"href="/users""#));
    }
}
