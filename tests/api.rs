#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
//! End-to-end tests of the management REST API (shared/API.md) over real
//! TCP: authentication (API tokens, session cookie + CSRF, roles, login
//! rate limit), hosts, repository secrets, source groups, schedules, jobs,
//! snapshots, repo stats and missed runs, and the audit log they write.

mod common;

use common::server::{client, spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use restic_manager::auth::Role;
use restic_manager::store::{self, models};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs a blocking store closure on the app's pool.
async fn db<T: Send + 'static>(
    app: &TestApp,
    f: impl FnOnce(&mut store::DbConnection) -> T + Send + 'static,
) -> T {
    let pool = app.state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        f(&mut conn)
    })
    .await
    .unwrap()
}

/// Creates a host directly in the store; returns its id.
async fn create_host(app: &TestApp, hostname: &str) -> String {
    let hostname = hostname.to_owned();
    db(app, move |conn| {
        let now = store::now_ms();
        store::hosts::insert(
            conn,
            &models::NewHost {
                id: store::new_id(),
                hostname,
                display_name: None,
                labels: "{}".into(),
                os: "linux".into(),
                arch: "amd64".into(),
                agent_version: Some("0.1.0".into()),
                restic_version: Some("0.17.3".into()),
                boot_time: None,
                capabilities: "[]".into(),
                agent_token_hash: restic_manager::auth::hash_token(&store::new_id()),
                enrolled_at: now,
                updated_at: now,
            },
        )
        .unwrap()
        .id
    })
    .await
}

/// Creates a user with this role and password, and an API token for it.
async fn user_with_token(app: &TestApp, username: &str, role: Role, password: &str) -> String {
    let pool = app.state.pool.clone();
    let (username, password) = (username.to_owned(), password.to_owned());
    actix_web::web::block(move || {
        restic_manager::admin::add_user(&pool, &username, role, &password).unwrap();
        restic_manager::admin::create_api_token(&pool, &username, "tests", None).unwrap()
    })
    .await
    .unwrap()
}

/// Sends a request with a bearer token and an optional JSON body; returns
/// the status and the parsed body (`Value::Null` when empty).
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client().request(method, app.api(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, value)
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    call(app, token, Method::GET, path, None).await
}

/// Asserts an API.md error body with this status and code; returns its message.
fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) -> String {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    got.1["error"]["message"].as_str().unwrap().to_owned()
}

/// Audit rows with this action, oldest first.
async fn audit_rows(app: &TestApp, action: &str) -> Vec<models::AuditEntry> {
    let action = action.to_owned();
    db(app, move |conn| {
        let mut rows = store::audit::list(
            conn,
            &store::audit::AuditFilter {
                action: Some(action),
                limit: 1000,
                ..Default::default()
            },
        )
        .unwrap()
        .items;
        rows.reverse();
        rows
    })
    .await
}

/// A browser: the session cookie from a login and its CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Browser {
    /// A request carrying the session cookie (and no CSRF header).
    fn request(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, app.api(path))
            .header("Cookie", &self.cookie)
    }

    fn get(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        self.request(app, Method::GET, path)
    }

    fn post(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        self.request(app, Method::POST, path)
    }

    fn patch(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        self.request(app, Method::PATCH, path)
    }
}

/// Logs in as `username`; returns the browser's cookie and CSRF token.
async fn login(app: &TestApp, username: &str, password: &str) -> Browser {
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set_cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    Browser { cookie, csrf }
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

/// Login sets a hardened session cookie, answers {user, csrf_token}, and the cookie reaches /me; logout ends the session.
#[actix_web::test]
async fn login_me_logout_with_cookie_and_csrf() {
    let app = spawn_app().await;
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "admin", "password": app.admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.starts_with("rm_session="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["username"], "admin");
    assert_eq!(body["user"]["role"], "admin");
    assert!(body["user"]["last_login_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 64);
    assert!(body["user"].get("password_hash").is_none());

    let browser = login(&app, "admin", &app.admin_password).await;
    let me: Value = browser
        .get(&app, "/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["username"], "admin");
    assert_eq!(me["auth"], "session");
    assert_eq!(me["csrf_token"], browser.csrf.as_str());

    // Logout without the CSRF header is refused and the session lives on.
    let resp = browser.post(&app, "/auth/logout").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf_failed");
    let resp = browser
        .post(&app, "/auth/logout")
        .header("X-CSRF-Token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        browser.get(&app, "/me").send().await.unwrap().status(),
        StatusCode::OK
    );

    let resp = browser
        .post(&app, "/auth/logout")
        .header("X-CSRF-Token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = browser.get(&app, "/me").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    assert_eq!(audit_rows(&app, "login").await.len(), 2);
    let logouts = audit_rows(&app, "logout").await;
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].actor, "admin");
    assert_eq!(logouts[0].source_addr.as_deref(), Some("127.0.0.1"));
}

/// A cookie session needs the CSRF token on state changes, not on reads; a bearer token needs none.
#[actix_web::test]
async fn csrf_required_for_cookie_state_changes_only() {
    let app = spawn_app().await;
    let host = create_host(&app, "web-1").await;
    let browser = login(&app, "admin", &app.admin_password).await;
    let path = format!("/hosts/{host}");
    let resp = browser.get(&app, &path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = browser
        .patch(&app, &path)
        .json(&json!({"display_name": "Web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = browser
        .patch(&app, &path)
        .header("X-CSRF-Token", &browser.csrf)
        .json(&json!({"display_name": "Web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"display_name": "Web 2"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Web 2");
}

/// Wrong password, unknown user and disabled user all get the same 401, and each is audited as a failed login.
#[actix_web::test]
async fn login_failures_are_401_and_audited() {
    let app = spawn_app().await;
    user_with_token(&app, "olga", Role::Operator, "olga-password-1").await;
    let try_login = |username: &'static str, password: &'static str| {
        let url = app.api("/auth/login");
        async move {
            let resp = client()
                .post(url)
                .json(&json!({"username": username, "password": password}))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let wrong = try_login("olga", "not-her-password").await;
    let unknown = try_login("nobody", "whatever-password").await;
    let m1 = assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    let m2 = assert_error(&unknown, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        m1, m2,
        "the answer must not reveal whether the account exists"
    );

    let pool = app.state.pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let user = store::users::by_username(&mut conn, "olga")
            .unwrap()
            .unwrap();
        store::users::set_disabled(&mut conn, &user.id, true, store::now_ms()).unwrap();
    })
    .await
    .unwrap();
    let disabled = try_login("olga", "olga-password-1").await;
    assert_error(&disabled, StatusCode::UNAUTHORIZED, "unauthorized");

    let failed = audit_rows(&app, "login.failed").await;
    let reasons: Vec<(String, String)> = failed
        .iter()
        .map(|r| {
            let detail: Value = serde_json::from_str(r.detail.as_deref().unwrap()).unwrap();
            (
                r.actor.clone(),
                detail["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("olga".to_owned(), "wrong_password".to_owned()),
            ("nobody".to_owned(), "unknown_user".to_owned()),
            ("olga".to_owned(), "disabled".to_owned()),
        ]
    );
    assert!(failed
        .iter()
        .all(|r| r.source_addr.as_deref() == Some("127.0.0.1")));
    // A malformed body is a 400 naming the field.
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "olga"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
}

/// After five failed logins for one account, the sixth is 429 even with the right password, and is audited.
#[actix_web::test]
async fn login_rate_limited_per_account() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let resp = client()
            .post(app.api("/auth/login"))
            .json(&json!({"username": "admin", "password": "wrong-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = client()
        .post(app.api("/auth/login"))
        .json(&json!({"username": "admin", "password": app.admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    let failed = audit_rows(&app, "login.failed").await;
    assert_eq!(failed.len(), 6);
    assert!(failed[5]
        .detail
        .as_deref()
        .unwrap()
        .contains("rate_limited"));
    // API tokens are not affected by the login limit.
    let (status, _) = get(&app, &app.admin_token, "/me").await;
    assert_eq!(status, StatusCode::OK);
}

/// No credentials, a malformed header, an unknown, expired or revoked token, and an expired session are each 401 JSON.
#[actix_web::test]
async fn unauthenticated_requests_are_401() {
    let app = spawn_app().await;
    let resp = client().get(app.api("/hosts")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let resp = client()
        .get(app.api("/hosts"))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_error(
        &get(&app, &"f".repeat(64), "/hosts").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // Expired and revoked API tokens.
    let pool = app.state.pool.clone();
    let (expired, revoked) = actix_web::web::block(move || {
        let expired = restic_manager::admin::create_api_token(
            &pool,
            "admin",
            "short",
            Some(std::time::Duration::from_millis(1)),
        )
        .unwrap();
        let revoked =
            restic_manager::admin::create_api_token(&pool, "admin", "revoked", None).unwrap();
        let mut conn = pool.get().unwrap();
        let hash = restic_manager::auth::hash_token(&revoked);
        let row = store::api_tokens::find_valid(&mut conn, &hash, store::now_ms())
            .unwrap()
            .unwrap()
            .0;
        store::api_tokens::revoke(&mut conn, &row.id, store::now_ms()).unwrap();
        (expired, revoked)
    })
    .await
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_error(
        &get(&app, &expired, "/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &get(&app, &revoked, "/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // An expired session.
    let browser = login(&app, "admin", &app.admin_password).await;
    db(&app, |conn| {
        use diesel::prelude::*;
        diesel::update(store::schema::sessions::table)
            .set(store::schema::sessions::expires_at.eq(store::now_ms() - 1))
            .execute(conn)
            .unwrap();
    })
    .await;
    let resp = browser.get(&app, "/me").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

/// GET /me with an API token names the user and role and has no CSRF token.
#[actix_web::test]
async fn me_with_api_token() {
    let app = spawn_app().await;
    let viewer = user_with_token(&app, "vera", Role::Viewer, "vera-password-1").await;
    let (status, body) = get(&app, &viewer, "/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["username"], "vera");
    assert_eq!(body["user"]["role"], "viewer");
    assert_eq!(body["auth"], "api_token");
    assert!(body.get("csrf_token").is_none());
}

// ---------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------

/// Hosts list with API.md's fields, filters by status and text, and pages with limit/offset and a total.
#[actix_web::test]
async fn hosts_list_filter_and_pagination() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["alpha", "bravo", "charlie", "delta", "echo"] {
        ids.push(create_host(&app, name).await);
    }
    let online = ids[1].clone();
    db(&app, move |conn| {
        store::hosts::set_online(conn, &online, true, store::now_ms()).unwrap();
    })
    .await;

    let (status, body) = get(&app, &app.admin_token, "/hosts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 5);
    let first = &body["items"][0];
    for field in [
        "id",
        "hostname",
        "display_name",
        "os",
        "arch",
        "agent_version",
        "restic_version",
        "status",
        "last_seen",
        "schedule_version",
        "acked_schedule_version",
    ] {
        assert!(first.get(field).is_some(), "missing {field}: {first}");
    }
    assert_eq!(first["hostname"], "alpha");
    assert_eq!(first["status"], "offline");
    assert_eq!(first["schedule_version"], 1);
    assert_eq!(first["acked_schedule_version"], 0);
    assert!(first.get("agent_token_hash").is_none());

    let (_, body) = get(&app, &app.admin_token, "/hosts?status=online").await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["hostname"], "bravo");
    assert_eq!(body["items"][0]["status"], "online");
    assert!(body["items"][0]["last_seen"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let (_, body) = get(&app, &app.admin_token, "/hosts?status=offline").await;
    assert_eq!(body["total"], 4);
    let (_, body) = get(&app, &app.admin_token, "/hosts?q=HARL").await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["hostname"], "charlie");

    let (_, body) = get(&app, &app.admin_token, "/hosts?limit=2&offset=2").await;
    assert_eq!(body["total"], 5);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["charlie", "delta"]);

    let bad = get(&app, &app.admin_token, "/hosts?status=sleeping").await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("status"));
    let bad = get(&app, &app.admin_token, "/hosts?limit=0").await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("limit"));
    let bad = get(&app, &app.admin_token, "/hosts?limit=abc").await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("limit"));
}

/// GET/PATCH a host: display name and labels change, null clears, bad input is 400, unknown ids 404, and the change is audited.
#[actix_web::test]
async fn host_get_and_patch() {
    let app = spawn_app().await;
    let host = create_host(&app, "db-1").await;
    let path = format!("/hosts/{host}");
    let (status, body) = get(&app, &app.admin_token, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], host.as_str());
    assert_eq!(body["labels"], json!({}));

    let (status, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"display_name": "Database", "labels": {"env": "prod", "team": "ops"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["display_name"], "Database");
    assert_eq!(body["labels"], json!({"env": "prod", "team": "ops"}));

    let (_, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({})),
    )
    .await;
    assert_eq!(body["display_name"], "Database", "absent fields are kept");
    let (_, body) = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"display_name": null})),
    )
    .await;
    assert_eq!(body["display_name"], Value::Null);
    assert_eq!(body["labels"]["env"], "prod");

    let bad = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"labels": {"bad key": "x"}})),
    )
    .await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "validation_failed").contains("labels"));
    let bad = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &path,
        Some(json!({"hostname": "evil"})),
    )
    .await;
    assert!(assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request").contains("hostname"));

    let missing = get(&app, &app.admin_token, "/hosts/no-such-host").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let missing = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        "/hosts/no-such-host",
        Some(json!({"display_name": "x"})),
    )
    .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    let updates = audit_rows(&app, "host.update").await;
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0].target.as_deref(), Some(host.as_str()));
    assert_eq!(updates[0].actor, "admin");
}

/// DELETE /hosts/{id} is admin-only: it revokes the host (gone from the API, agent token dead) and is audited.
#[actix_web::test]
async fn host_revoke_admin_only() {
    let app = spawn_app().await;
    let host = create_host(&app, "old-box").await;
    let operator = user_with_token(&app, "otto", Role::Operator, "otto-password-1").await;
    let path = format!("/hosts/{host}");
    let refused = call(&app, &operator, Method::DELETE, &path, None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");

    let (status, body) = call(&app, &app.admin_token, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        &get(&app, &app.admin_token, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = get(&app, &app.admin_token, "/hosts").await;
    assert_eq!(list["total"], 0);
    let again = call(&app, &app.admin_token, Method::DELETE, &path, None).await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");

    let revoked_at = db(&app, {
        let host = host.clone();
        move |conn| store::hosts::get(conn, &host).unwrap().unwrap().revoked_at
    })
    .await;
    assert!(revoked_at.is_some());
    let rows = audit_rows(&app, "host.revoke").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].target.as_deref(), Some(host.as_str()));
}

/// A viewer reads hosts but may not change them (403 forbidden), an operator may.
#[actix_web::test]
async fn host_roles() {
    let app = spawn_app().await;
    let host = create_host(&app, "web").await;
    let viewer = user_with_token(&app, "vic", Role::Viewer, "vic-password-1").await;
    let operator = user_with_token(&app, "ola", Role::Operator, "ola-password-1").await;
    let path = format!("/hosts/{host}");
    assert_eq!(get(&app, &viewer, "/hosts").await.0, StatusCode::OK);
    assert_eq!(get(&app, &viewer, &path).await.0, StatusCode::OK);
    let patch = Some(json!({"display_name": "x"}));
    let refused = call(&app, &viewer, Method::PATCH, &path, patch.clone()).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let refused = call(&app, &viewer, Method::DELETE, &path, None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        call(&app, &operator, Method::PATCH, &path, patch).await.0,
        StatusCode::OK
    );
}

/// A JSON body over the 1 MiB limit is 413, and an unsupported method is a JSON 405.
#[actix_web::test]
async fn oversized_body_and_wrong_method() {
    let app = spawn_app().await;
    let host = create_host(&app, "big").await;
    let huge = "x".repeat(restic_manager::http::API_JSON_LIMIT + 10);
    let got = call(
        &app,
        &app.admin_token,
        Method::PATCH,
        &format!("/hosts/{host}"),
        Some(json!({"display_name": huge})),
    )
    .await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let got = call(
        &app,
        &app.admin_token,
        Method::PUT,
        "/hosts",
        Some(json!({})),
    )
    .await;
    assert_error(&got, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}
